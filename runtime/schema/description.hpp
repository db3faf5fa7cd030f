// description.hpp: the schema description of wire messages, its canonical text and a strict parser.
//
// A Description is what a sage node knows about the messages it can send or receive: per
// packet_type the wire message's table, and every table, struct, enum and union reachable from it.
// Definitions refer to each other by index (`@3`), so recursive schemas are fine. sagec builds
// descriptions from FlatBuffers' parse (codegen/), the generated header of each schema embeds one per
// wire message (`T::schema_description`), and compat.hpp compares two of them: `sagec check
// --against` and the runtime's handshake call the same compare().
//
// Canonical text, format "sage-schema 1" (docs/schemas.md has the full grammar). Every line ends
// with "\n", tokens are separated by exactly one space:
//
//   sage-schema 1
//   message <packet_type> <definition index>                   one per wire message, ascending
//   table <index> <qualified name>
//   field <id> <name> <type> <default|->[ required][ deprecated]
//   struct <index> <qualified name> size <bytes> align <bytes>
//   field <offset> <name> <type> -
//   enum <index> <qualified name> <underlying scalar>
//   value <name> <integer>
//   union <index> <qualified name>
//   value <name> <integer> <@table index|->
//
// <type> is a scalar (bool byte ubyte short ushort int uint long ulong float double), `string`,
// `@N` (definition N: a table, struct, enum or union), `utype@N` (the hidden type field of union N),
// `[T]` (vector of T) or `[T:N]` (fixed-size array of T, structs only). <default> is the parser's
// normalised constant of a scalar field (`0`, `1.5`, `-inf`, `null` for optional scalars), `-` for
// the others. Definition indices equal their position (0, 1, ...), in the order the builder met them.
//
// Contracts:
// - to_text(parse(t)) == t for every text parse() accepts, and parse(to_text(d)) gives d back for
//   every valid d: the text is canonical, so equal descriptions are equal strings (fingerprint()
//   hashes the text).
// - parse() is strict and bounded: anything but the grammar above (a stray space, "\r", an unknown
//   keyword, a dangling or ill-kinded index, duplicate names or packet_types, a number out of range)
//   is an error with a line number and a reason; it never throws, never recurses over the input and
//   reads at most max_description_bytes. Hostile input is expected (it arrives in a hello): it is
//   fuzzed by tests/fuzz/fuzz_schema_description.cpp.
// - Pure values, no global state: safe to use from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sage::schema {

inline constexpr std::string_view format_line = "sage-schema 1";
// Upper bound of a description's text (a hello carries one): 256 KiB. parse() refuses longer text.
inline constexpr std::size_t max_description_bytes = 256 * 1024;
// Upper bounds parse() enforces besides the size (a schema past them is refused by sagec too).
inline constexpr std::size_t max_definitions = 4096;
inline constexpr std::size_t max_name_bytes = 255;    // qualified names; field and value names
inline constexpr std::uint32_t max_field_id = 32764;  // FlatBuffers' field offsets wrap past 32,765 fields
inline constexpr std::uint32_t max_array_length = 65535;

enum class Scalar : std::uint8_t { bool_, byte_, ubyte, short_, ushort, int_, uint, long_, ulong, float_, double_ };
std::string_view to_string(Scalar s);  // schema spelling: "bool", "byte", ...

enum class Kind : std::uint8_t { table, struct_, enum_, union_ };
std::string_view to_string(Kind k);  // "table", "struct", "enum", "union"

// A field's type. `element` says what one element is; `shape` whether it is one, a vector or an array.
struct Type {
  enum class Element : std::uint8_t { scalar, string, definition, union_type };
  enum class Shape : std::uint8_t { single, vector, array };
  Element element = Element::scalar;
  Scalar scalar = Scalar::int_;  // element == scalar
  std::uint32_t definition = 0;  // element == definition or union_type: index into Description::definitions
  Shape shape = Shape::single;
  std::uint32_t array_length = 0;  // shape == array: 1..max_array_length
  bool operator==(const Type&) const = default;
};

struct Field {
  std::uint32_t id = 0;  // tables: the field id; structs: the byte offset
  std::string name;
  Type type;
  std::string default_value = "-";  // scalars and enums of tables: the normalised constant; else "-"
  bool required = false;
  bool deprecated = false;
  bool operator==(const Field&) const = default;
};

struct EnumValue {
  std::string name;
  std::string value;                // canonical decimal integer
  std::int64_t table = -1;          // unions: the member's table index; -1 for NONE and for enums
  bool operator==(const EnumValue&) const = default;
};

struct Definition {
  Kind kind = Kind::table;
  std::string name;                   // qualified: "pancakes.Plate"
  std::vector<Field> fields;          // tables and structs, ascending id / offset
  std::vector<EnumValue> values;      // enums and unions, in declaration order
  Scalar underlying = Scalar::int_;   // enums
  std::uint32_t size = 0, align = 0;  // structs
  bool operator==(const Definition&) const = default;
};

struct Message {
  int packet_type = 0;          // 101..255
  std::uint32_t definition = 0;  // a table
  bool operator==(const Message&) const = default;
};

struct Description {
  std::vector<Message> messages;  // ascending packet_type
  std::vector<Definition> definitions;
  bool operator==(const Description&) const = default;

  const Definition* message_table(int packet_type) const;  // nullptr when absent
};

// The canonical text (see above). `d` must be valid (as parse() would accept it).
std::string to_text(const Description& d);
// The spelling of a type in diagnostics: "int", "[string]", "table evo.Inner", "enum evo.Mood:byte".
std::string type_name(const Description& d, const Type& t);

struct ParseResult {
  Description description;
  std::string error;  // empty on success: "line 3: unknown keyword \"tabel\""
  explicit operator bool() const { return error.empty(); }
};
ParseResult parse(std::string_view text);

// Adds `from`'s messages and the definitions they reach to `into`, reusing definitions of the same
// kind and name. Returns an error (and leaves `into` unchanged) when a name is defined differently in
// the two, or a packet_type is used by two different messages. The runtime merges the descriptions of
// the message types it links into the one it sends; sagec merges per-message descriptions.
std::string merge(Description& into, const Description& from);

// Parses and merges several descriptions (e.g. the `T::schema_description` of every wire message type
// a node links) into one: what a node sends in its hello. An error names the first text that does not
// parse or conflicts with the others.
ParseResult combine(const std::vector<std::string_view>& texts);

// FNV-1a 64 of to_text(d): the exact-match fingerprint (process groups; generated `fingerprint`).
std::uint64_t fingerprint(const Description& d);
std::uint64_t fnv1a64(std::string_view bytes);

}  // namespace sage::schema

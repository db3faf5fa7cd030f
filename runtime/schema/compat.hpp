// compat.hpp: can peers built from two schema descriptions exchange messages? One implementation,
// called by `sagec check --against` and by the runtime's handshake (docs/schemas.md, "Compatibility",
// is the table of rules; tests/codegen/compat_table_test.cpp runs every row of it through both).
//
// compare(old, new, options) walks every wire message of `old` and what it reaches, matching wire
// messages by packet_type and qualified name, table fields by id, enum values by name (then value),
// union members by value, structs field by field. It returns diagnostics in a deterministic order;
// their `text` is the sentence `sagec check` prints after "file:line:col: error: ". It never throws
// for valid descriptions (as parse() returns them) and terminates on recursive schemas (each pair of
// definitions is compared once, with a work list: no recursion over the input).
//
// Levels: `wire` judges only what the binary encoding sees (a renamed field or enum value is a note);
// `json` also judges names, because sagec encode/decode and JSON tools use them (a rename is an error).
// The runtime uses `wire`. Directions: `both` (sagec check: a rolling upgrade sends both ways);
// `old_to_new` (old writes, new reads) and `new_to_old` keep only the rules that break that direction
// (e.g. a field that became required breaks old_to_new only). `history` (below) says whether `old`
// is an earlier version of `new` (sagec check) or just another peer (the handshake).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "description.hpp"

namespace sage::schema {

// compare() visits at most this many fields and enum values (over all pairs of definitions); past it,
// it reports one error and stops. Descriptions sagec accepts stay far below it.
inline constexpr std::size_t max_compare_steps = std::size_t{1} << 21;
// compare() reports at most this many diagnostics; one more error says that it stopped there.
inline constexpr std::size_t max_compare_diagnostics = 256;

enum class Level { wire, json };
enum class Direction { both, old_to_new, new_to_old };
enum class Severity { note, error };
std::string_view to_string(Severity s);  // "note", "error"
std::string_view to_string(Level l);     // "wire", "json"

struct CompareOptions {
  Level level = Level::wire;
  Direction direction = Direction::both;
  // true (sagec check): `old` is an earlier version of `new`, so removing a field that was not
  // deprecated, a wire message, an enum value or a union member is an error (peers built from the
  // old schemas still send it; a later field would reuse the id). false (the handshake): two peers,
  // neither known to be older, so only conflicts are errors (the same id, value or packet_type meaning
  // different things; a required field the other side may omit; a struct layout) and what only one
  // side has is not: messages only one side has are listed in Comparison::only_old / only_new (sending
  // one to a peer that does not know it fails at send_message), fields and enum values only one side
  // has are ignored or defaulted by FlatBuffers. compare(a, b) and compare(b, a) then agree on
  // compatible().
  bool history = true;
  // Who `old` and `new` are in the sentences when history is false (neither side is older): the
  // handshake passes the peer's name and "this node", so a diagnostic reads "field x.T.f is long in
  // peer 1.2.3.4:5 but int in this node". With history, sentences speak of the old and new schemas.
  std::string old_name = "the old schemas";
  std::string new_name = "the new schemas";
};

struct Diagnostic {
  enum class Side { old_schema, new_schema };
  enum class Anchor { definition, field, packet_type };
  Severity severity = Severity::error;
  std::string text;        // "field evo.Order.id changed type from int to long" (history; else "is int in A but long in B")
  Side side = Side::new_schema;  // the description `definition` is looked up in for a location
  std::string definition;  // qualified name of the table/struct/enum/union concerned
  std::string field;       // field or value name within it, or ""
  Anchor anchor = Anchor::definition;
  bool operator==(const Diagnostic&) const = default;
};

struct Comparison {
  std::vector<Diagnostic> diagnostics;
  std::vector<int> only_old;  // packet_types of wire messages only `old` has (by name and packet_type)
  std::vector<int> only_new;  // packet_types of wire messages only `new` has
  bool compatible() const;    // no diagnostic of severity error
  std::string text() const;   // one line per diagnostic: "error: <text>\n"
};

Comparison compare(const Description& old_desc, const Description& new_desc, const CompareOptions& options = {});

}  // namespace sage::schema

// schema.hpp: loading .fbs schemas with flatbuffers::Parser, source positions and diagnostics.
// Used by every sagec subcommand; single-threaded.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/idl.h>

namespace sagec {

// One message for people, in compiler form: `file:line:col: error: message`.
struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string severity = "error";
  std::string message;
};

struct Position {
  std::string file;
  int line = 0;
  int column = 0;
};

// Collects diagnostics in the order found; printed at the end of a command.
class Diagnostics {
 public:
  void error(const Position& at, std::string message);
  void add(Diagnostic d) { items_.push_back(std::move(d)); }
  bool has_errors() const { return error_count() > 0; }
  std::size_t error_count() const;
  const std::vector<Diagnostic>& items() const { return items_; }
  std::string text() const;  // one line per diagnostic
  std::string json() const;  // {"errors": N, "diagnostics": [...]}

 private:
  std::vector<Diagnostic> items_;
};

std::string format_position(const Position& p);
// Splits a flatbuffers::Parser error ("file:line: col: error: msg") into `d`; false if it is not one.
bool split_parser_error(const std::string& error, Diagnostic& d);  // "file:line" (or "file:line:col" when col > 0)
std::string json_escape(const std::string& s);

// One schema file given on the command line, parsed by its own flatbuffers::Parser (with the
// files it includes). Definitions whose `file` equals `parser_path` belong to this schema.
struct Schema {
  std::string path;         // as given on the command line (used in diagnostics)
  std::string parser_path;  // the name the parser knows the file by (== path)
  std::string text;
  std::unique_ptr<flatbuffers::Parser> parser;

  bool owns(const flatbuffers::Definition& d) const { return d.file == parser_path; }
};

// Where to look for `include "x.fbs"`: the schema's own directory, -I directories, then sage's
// shipped schema directories (the source tree for in-tree builds, share/sage/schemas next to an
// installed sagec).
struct IncludeDirs {
  std::vector<std::string> user;
  std::vector<std::string> builtin;
};
IncludeDirs default_include_dirs(const char* argv0, std::vector<std::string> user);

// Parses `path`. Returns nullptr after adding a diagnostic when the file is missing or has a syntax
// error; never throws for bad input.
std::unique_ptr<Schema> load_schema(const std::string& path, const IncludeDirs& dirs, Diagnostics& diags);
// Same, for schema text already in memory that diagnostics call `path` (includes are still looked
// up relative to `path`'s directory and `dirs`). Never throws or exits for bad text: the fuzz
// target tests/fuzz/fuzz_schema_loading.cpp feeds it arbitrary bytes.
std::unique_ptr<Schema> load_schema_text(const std::string& path, std::string text, const IncludeDirs& dirs,
                                         Diagnostics& diags);
// Positions in diagnostics come from the text of each file; this sets the text used for `file`
// (load_schema_text does, so a name can be reused for new text).
void remember_source(const std::string& file, const std::string& text);

// Names and positions.
std::string qualified_name(const flatbuffers::Definition& d);  // "pancakes.FoodAvailableMessage"
std::vector<std::string> namespace_of(const flatbuffers::Definition& d);
Position position_of(const flatbuffers::StructDef& s);
Position position_of(const flatbuffers::EnumDef& e);
Position position_of(const flatbuffers::StructDef& s, const flatbuffers::FieldDef& f);
Position attribute_position(const flatbuffers::StructDef& s, const std::string& attribute);

// The packet_type attribute of a table: nullopt when absent; `error` set when present but invalid.
struct PacketType {
  bool present = false;
  int value = 0;
  std::string error;  // empty when valid
};
PacketType packet_type_of(const flatbuffers::StructDef& s);

// True when a table field path (fields, vectors, union members) leads from `from` to `target`
// (`from` == `target` counts only through a field: a table that contains itself).
bool reaches_table(const flatbuffers::StructDef& from, const flatbuffers::StructDef& target);

// How many tables deep a message of table `s` can nest (the root counts 1, as the FlatBuffers
// Verifier counts); -1 when a table it reaches contains itself (the depth is up to the sender).
int nesting_depth(const flatbuffers::StructDef& s);

// Checks one call's schemas: packet_type values, uniqueness across all schemas, unsupported
// constructs. Adds diagnostics; returns true when clean.
bool check_schemas(const std::vector<std::unique_ptr<Schema>>& schemas, Diagnostics& diags);

// sagec check --against (compatibility with older schemas) is in describe.hpp.

}  // namespace sagec

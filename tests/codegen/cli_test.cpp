// The real sagec binary on fixture schemas (tests/codegen/fixtures): exit codes and diagnostics of
// `check`, `check --against`, `generate`, `encode` and `decode`.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <flatbuffers/idl.h>
#include <flatbuffers/util.h>

#include <map>
#include <regex>

#include "pancakes.sage.hpp"
#include "sage/wire.hpp"
#include "generate.hpp"
#include "namer.hpp"
#include "schema.hpp"
#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

using Run = sage::test_support::ShellRun;

// A scratch directory for one test, removed at scope exit.
struct TempDir : sage::test_support::TempDir {
  explicit TempDir(const std::string& name) : sage::test_support::TempDir("sage_cli", name) {}
};

const std::string sagec = SAGEC_PATH;
const fs::path fixtures = SAGE_FIXTURE_DIR;
const fs::path schema_dir = SAGE_SCHEMA_DIR;

// Runs `sagec args` in `dir` through the shell (arguments are simple paths: no quoting needed).
Run sagec_in(const fs::path& dir, const std::string& args) {
  return sage::test_support::run_shell("cd '" + dir.string() + "' && '" + sagec + "' " + args);
}

Run check(const std::string& args) { return sagec_in(fixtures, "check " + args); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

void expect_error(const std::string& args, const std::string& diagnostic) {
  INFO("sagec check " << args);
  const auto r = check(args);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.out.find(diagnostic) != std::string::npos, r.out);
}

}  // namespace

TEST_CASE("sagec check passes clean schemas with exit 0 and says nothing") {
  const auto r = check("clean.fbs " + (schema_dir / "pancakes.fbs").string());
  CHECK(r.code == 0);
  CHECK(r.out.empty());
}

TEST_CASE("a schema with a syntax error gives file:line:col: error and exit 1") {
  expect_error("syntax_error.fbs", "syntax_error.fbs:6:7: error: expecting: ; instead got: name");
}

TEST_CASE("packet_type outside 101..255 is an error") {
  expect_error("packet_type_low.fbs",
               "packet_type_low.fbs:4:15: error: packet_type 50 of TooLow is outside 101..255");
  expect_error("packet_type_high.fbs", "packet_type_high.fbs:4:16: error: packet_type 300 of TooHigh is outside 101..255");
}

TEST_CASE("packet_type must be an integer with a value") {
  expect_error("packet_type_string.fbs",
               "packet_type_string.fbs:4:14: error: packet_type of Named must be an integer, not \"chef\"");
  expect_error("packet_type_float.fbs", "packet_type_float.fbs:4:37: error: ");
  expect_error("packet_type_float.fbs", "packet_type is an integer 101..255");
  expect_error("packet_type_no_value.fbs",
               "packet_type_no_value.fbs:4:13: error: packet_type of Bare needs a value, e.g. (packet_type: 101)");
}

TEST_CASE("a packet_type used twice in one schema names the first user and its line") {
  expect_error("duplicate_packet_type.fbs",
               "duplicate_packet_type.fbs:6:13: error: packet_type 101 of Chef already used by "
               "FoodAvailableMessage (duplicate_packet_type.fbs:4)");
}

TEST_CASE("a packet_type used in two schemas of one call is an error in compiler form") {
  const auto r = check("dup_a.fbs dup_b.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "dup_b.fbs:5:13: error: packet_type 101 of Chef already used by FoodAvailableMessage (dup_a.fbs:5)\n");
}

TEST_CASE("a message name defined in two schemas is an error") {
  expect_error("name_a.fbs name_b.fbs", "name_b.fbs:4:1: error: message name shared.Order already defined at name_a.fbs:4");
}

TEST_CASE("packet_type on a struct or on a field is an error") {
  expect_error("packet_type_on_struct.fbs",
               "packet_type_on_struct.fbs:4:15: error: packet_type on struct Point: only tables can be wire messages");
  expect_error("packet_type_on_field.fbs",
               "packet_type_on_field.fbs:5:3: error: packet_type is a table attribute");
}

TEST_CASE("unsupported constructs are reported where they are written") {
  expect_error("nested_flatbuffer.fbs",
               "nested_flatbuffer.fbs:7:3: error: field Envelope.data: nested_flatbuffer is not supported");
  expect_error("rpc.fbs", "rpc.fbs:7:1: error: rpc_service Kitchen is not supported by sagec");
}

TEST_CASE("unions, fixed-size arrays in structs and recursive tables pass sagec check") {
  for (const char* f : {"union.fbs", "fixed_array.fbs", "recursive.fbs"}) {
    INFO(f);
    const auto r = check(f);
    CHECK(r.code == 0);
    CHECK(r.out.empty());
  }
}

TEST_CASE("a schema without include \"sage.fbs\" is told to include it") {
  expect_error("no_include.fbs", "no_include.fbs:3:26: error: user define attributes must be declared before use: "
                                 "packet_type (add `include \"sage.fbs\";` at the top of the schema)");
}

TEST_CASE("a missing schema file is an error, not a crash") {
  expect_error("does_not_exist.fbs", "does_not_exist.fbs: error: cannot read schema file");
}

TEST_CASE("usage errors exit with 2") {
  CHECK(sagec_in(fixtures, "").code == 2);
  CHECK(sagec_in(fixtures, "check").code == 2);
  CHECK(sagec_in(fixtures, "check --format xml clean.fbs").code == 2);
  CHECK(sagec_in(fixtures, "frobnicate clean.fbs").code == 2);
  CHECK(sagec_in(fixtures, "generate clean.fbs").code == 2);  // no -o
  CHECK(sagec_in(fixtures, "decode --raw clean.fbs").code == 2);
  const auto help = sagec_in(fixtures, "--help");
  CHECK(help.code == 0);
  CHECK(help.out.find("generate") != std::string::npos);
}

TEST_CASE("--format json lists the diagnostics for tools") {
  const auto r = check("--format json dup_a.fbs dup_b.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("\"errors\": 1") != std::string::npos);
  CHECK(r.out.find(R"j({"file": "dup_b.fbs", "line": 5, "column": 13, "severity": "error", "message": "packet_type 101 of Chef already used by FoodAvailableMessage (dup_a.fbs:5)"})j") !=
        std::string::npos);
  const auto clean = check("--format json clean.fbs");
  CHECK(clean.code == 0);
  CHECK(clean.out == "{\n  \"errors\": 0,\n  \"diagnostics\": []\n}\n");
}

// --against: each way of breaking peers built from evolve/base.fbs.
TEST_CASE("--against accepts compatible changes: new fields at the end, deprecation, new messages and enum values") {
  const auto r = sagec_in(fixtures / "evolve", "check --against base.fbs compatible.fbs");
  CHECK(r.code == 0);
  CHECK(r.out.empty());
}

namespace {
void expect_break(const std::string& file, const std::string& diagnostic) {
  INFO("sagec check --against base.fbs " << file);
  const auto r = sagec_in(fixtures / "evolve", "check --against base.fbs " + file);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.out.find(diagnostic) != std::string::npos, r.out);
}
}  // namespace

TEST_CASE("--against: a removed field, also a trailing one, breaks peers") {
  expect_break("removed_field.fbs", "removed_field.fbs:10:1: error: field evo.Order.extra (id 5) was removed; mark it "
                                    "(deprecated) instead of deleting it");
  expect_break("nested_field_removed.fbs", "nested_field_removed.fbs:8:1: error: field evo.Inner.note (id 0) was removed");
}

TEST_CASE("--against: a retyped field breaks peers") {
  expect_break("retyped_field.fbs", "retyped_field.fbs:11:3: error: field evo.Order.id changed type from int to long");
}

TEST_CASE("--against: reordered or inserted fields break peers") {
  expect_break("reordered_fields.fbs", "reordered_fields.fbs:12:3: error: field evo.Order.id moved from id 0 to id 1");
  expect_break("inserted_field.fbs", "inserted_field.fbs:17:3: error: field evo.Order.extra moved from id 5 to id 6");
}

TEST_CASE("--against: a changed default breaks peers") {
  expect_break("default_changed.fbs", "default_changed.fbs:12:3: error: field evo.Order.size changed its default from 1 to 2");
}

TEST_CASE("--against: a changed packet_type breaks peers") {
  expect_break("packet_type_changed.fbs",
               "packet_type_changed.fbs:19:12: error: packet_type of evo.Tip changed from 121 to 125");
}

TEST_CASE("--against: a packet_type reused by another message breaks peers") {
  expect_break("packet_type_reused.fbs", "packet_type_reused.fbs:19:17: error: packet_type 121 of evo.Gratuity was used by "
                                         "evo.Tip in the old schemas; peers would decode one as the other");
}

TEST_CASE("--against: a removed message breaks peers") {
  expect_break("removed_message.fbs",
               "base.fbs:19:1: error: message evo.Tip (packet_type 121) was removed; peers built from the old schemas still send it");
}

TEST_CASE("--against: removed or renumbered enum values break peers") {
  expect_break("enum_value_removed.fbs", "enum_value_removed.fbs:4:1: error: enum value evo.Mood.sleepy (2) was removed");
  expect_break("enum_value_changed.fbs", "enum_value_changed.fbs:4:1: error: enum value evo.Mood.angry changed from 1 to 5");
}

TEST_CASE("--against: a changed struct breaks peers") {
  expect_break("struct_changed.fbs", "struct_changed.fbs:6:1: error: struct evo.Point changed its layout");
}

TEST_CASE("FlatBuffers' own ConformTo misses a deleted trailing field and a deleted enum value") {
  auto parse = [](const fs::path& file) {
    auto p = std::make_unique<flatbuffers::Parser>();
    std::string text;
    REQUIRE(flatbuffers::LoadFile(file.c_str(), false, &text));
    const std::string dir = schema_dir.string() + "/";
    const char* include_dirs[] = {dir.c_str(), nullptr};
    REQUIRE(p->Parse(text.c_str(), include_dirs, file.c_str()));
    return p;
  };
  const auto base = parse(fixtures / "evolve" / "base.fbs");
  CHECK(parse(fixtures / "evolve" / "removed_field.fbs")->ConformTo(*base).empty());
  CHECK(parse(fixtures / "evolve" / "enum_value_removed.fbs")->ConformTo(*base).empty());
}

TEST_CASE("sagec generate writes byte-identical headers from any directory and names the schema in a banner") {
  TempDir a("gen_a");
  TempDir b("gen_b");
  fs::copy_file(schema_dir / "pancakes.fbs", b.path / "pancakes.fbs");
  fs::copy_file(schema_dir / "sage.fbs", b.path / "sage.fbs");
  REQUIRE(sagec_in(schema_dir, "generate -o " + (a.path / "out").string() + " pancakes.fbs").code == 0);
  REQUIRE(sagec_in(b.path, "generate -o out " + (b.path / "pancakes.fbs").string()).code == 0);
  const auto first = read_file(a.path / "out" / "pancakes.sage.hpp");
  CHECK(first == read_file(b.path / "out" / "pancakes.sage.hpp"));
  CHECK(first.rfind("// pancakes.sage.hpp: generated by sagec from pancakes.fbs. DO NOT EDIT.\n", 0) == 0);
  CHECK(first.find(a.path.string()) == std::string::npos);
  CHECK(first.find(schema_dir.string()) == std::string::npos);
}

TEST_CASE("sagec generate refuses schemas that fail the checks and writes nothing") {
  TempDir out("gen_bad");
  const auto r = sagec_in(fixtures, "generate -o " + out.path.string() + " rpc.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("rpc.fbs:7:1: error:") != std::string::npos);
  CHECK_FALSE(fs::exists(out.path / "rpc.sage.hpp"));
}

TEST_CASE("sagec encode writes the runtime's wire record, which the generated class decodes") {
  TempDir dir("encode");
  write_file(dir.path / "msg.json", "{ amount: 42 }");
  const auto r = sagec_in(schema_dir, "encode -t pancakes.FoodAvailableMessage -i " + (dir.path / "msg.json").string() +
                                          " -o " + (dir.path / "msg.bin").string() + " pancakes.fbs");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto bytes = read_file(dir.path / "msg.bin");
  REQUIRE(bytes.size() >= 16);
  CHECK(bytes.size() % 8 == 0);
  std::vector<std::uint64_t> aligned((bytes.size() + 7) / 8);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  std::vector<sage::wire::Record> records;
  auto walk = sage::wire::for_each_record(
      std::span(reinterpret_cast<const std::byte*>(aligned.data()), bytes.size()),
      [&](sage::wire::Record rec) { records.push_back(rec); });
  REQUIRE(walk.ok());
  REQUIRE(records.size() == 1);
  CHECK(records[0].packet_type == 101);
  auto m = pancakes::FoodAvailableMessage::decode(records[0].payload);
  REQUIRE(m.ok());
  CHECK(m->amount == 42);
}

TEST_CASE("sagec decode prints each record of a transport message as a JSON line") {
  TempDir dir("decode");
  std::vector<std::byte> msg;
  sage::wire::append_record(msg, 101, pancakes::FoodAvailableMessage{.amount = 3}.to_bytes());
  sage::wire::append_record(msg, 103, pancakes::PancakeStackMessage{.values = {1, 2, 3}}.to_bytes());
  write_file(dir.path / "in.bin", std::string(reinterpret_cast<const char*>(msg.data()), msg.size()));
  const auto r = sagec_in(schema_dir, "decode -i " + (dir.path / "in.bin").string() + " pancakes.fbs");
  CHECK(r.code == 0);
  CHECK(r.out ==
        "{\"packet_type\": 101, \"type\": \"pancakes.FoodAvailableMessage\", \"message\": {\"amount\": 3}}\n"
        "{\"packet_type\": 103, \"type\": \"pancakes.PancakeStackMessage\", \"message\": {\"values\": [1,2,3]}}\n");
}

TEST_CASE("sagec encode and decode round trip through --raw FlatBuffers too") {
  TempDir dir("raw");
  write_file(dir.path / "m.json", R"({"values": [5, 6]})");
  REQUIRE(sagec_in(schema_dir, "encode --raw -t PancakeStackMessage -i " + (dir.path / "m.json").string() + " -o " +
                                   (dir.path / "m.fb").string() + " pancakes.fbs")
              .code == 0);
  const auto r = sagec_in(schema_dir, "decode --raw -t pancakes.PancakeStackMessage -i " + (dir.path / "m.fb").string() +
                                          " pancakes.fbs");
  CHECK(r.code == 0);
  CHECK(r.out == "{\"values\": [5,6]}\n");
}

TEST_CASE("sagec decode reports truncated, corrupt and unknown records with exit 1") {
  TempDir dir("decode_bad");
  std::vector<std::byte> msg;
  sage::wire::append_record(msg, 101, pancakes::FoodAvailableMessage{.amount = 3}.to_bytes());
  write_file(dir.path / "short.bin", std::string(reinterpret_cast<const char*>(msg.data()), msg.size() - 6));
  auto r = sagec_in(schema_dir, "decode -i " + (dir.path / "short.bin").string() + " pancakes.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("error: record 1: truncated: record declares") != std::string::npos);

  std::vector<std::byte> unknown;
  sage::wire::append_record(unknown, 200, pancakes::FoodAvailableMessage{.amount = 3}.to_bytes());
  write_file(dir.path / "unknown.bin", std::string(reinterpret_cast<const char*>(unknown.data()), unknown.size()));
  r = sagec_in(schema_dir, "decode -i " + (dir.path / "unknown.bin").string() + " pancakes.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("error: record 1: unknown packet_type 200") != std::string::npos);

  std::vector<std::byte> wrong;
  sage::wire::append_record(wrong, 103, pancakes::FoodAvailableMessage{.amount = 1000000}.to_bytes());
  write_file(dir.path / "wrong.bin", std::string(reinterpret_cast<const char*>(wrong.data()), wrong.size()));
  r = sagec_in(schema_dir, "decode -i " + (dir.path / "wrong.bin").string() + " pancakes.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("are not a valid pancakes.PancakeStackMessage") != std::string::npos);
}

TEST_CASE("sagec encode reports bad JSON with its position, and local-only messages without --raw") {
  TempDir dir("encode_bad");
  write_file(dir.path / "bad.json", "{\n  amount: \"three\"\n}");
  auto r = sagec_in(dir.path, "encode -t pancakes.FoodAvailableMessage -i bad.json " +
                                  (schema_dir / "pancakes.fbs").string());
  CHECK(r.code == 1);
  CHECK(r.out.find("bad.json:2:") != std::string::npos);
  r = sagec_in(fixtures, "encode -t fixtures.LocalNote -i " + (dir.path / "bad.json").string() + " clean.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("fixtures.LocalNote is a local-only message (no packet_type); use --raw") != std::string::npos);
}

// To accept a deliberate change of the generator's output:
//   SAGE_UPDATE_GOLDEN=1 ctest --test-dir build -R "golden"   (then review and commit the diff)
// One golden file per feature: golden.fbs (the basics), then one schema per feature of issue 11.
TEST_CASE("generated code for each golden schema matches its golden file") {
  const fs::path schemas = SAGE_TEST_SCHEMA_DIR;
  for (const std::string stem : {"golden", "unions", "union_vectors", "arrays", "recursive", "defaults", "names", "views",
                                 "members", "interop"}) {
    INFO(stem);
    TempDir out("golden_" + stem);
    const fs::path golden = fs::path(SAGE_GOLDEN_DIR) / (stem + ".sage.hpp");
    const auto r = sagec_in(schemas, "generate -o " + out.path.string() + " " + stem + ".fbs");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    const auto fresh = read_file(out.path / (stem + ".sage.hpp"));
    if (std::getenv("SAGE_UPDATE_GOLDEN") != nullptr) {
      write_file(golden, fresh);
      MESSAGE("updated " << golden);
    }
    CHECK(fresh == read_file(golden));
  }
}

// sagec's JSON for the features flatc -t cannot print (vectors of unions): encode, decode, and the
// same JSON back.
TEST_CASE("sagec encode and decode round trip unions, vectors of unions, arrays and recursive tables") {
  TempDir dir("features_json");
  const fs::path schemas = SAGE_TEST_SCHEMA_DIR;
  const std::pair<const char*, std::string> cases[] = {
      {"unions.fbs", R"({"packet_type": 200, "type": "feat.unions.Serve", "message": {"table_no": 1,"food_type": "Waffle","food": {"grid": [1,2]},"spare_type": "NONE"}})"},
      {"union_vectors.fbs", R"({"packet_type": 201, "type": "feat.union_vectors.Document", "message": {"parts_type": ["Text","Group"],"parts": [{"body": "a"},{"title": "g","parts_type": ["Image"],"parts": [{"width": 5,"height": 6}]}],"cover_type": "NONE"}})"},
      {"arrays.fbs", R"({"packet_type": 202, "type": "feat.arrays.Placed", "message": {"at": {"matrix": [1.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,1.0],"ids": [1,2,3],"suits": ["hearts","spades"],"corners": [{"x": 0.0,"y": 0.0},{"x": 1.0,"y": 0.0},{"x": 1.0,"y": 1.0},{"x": 0.0,"y": 1.0}],"tag": 0}}})"},
      {"recursive.fbs", R"({"packet_type": 203, "type": "feat.recursive.Node", "message": {"name": "a","children": [{"name": "b","children": [{"name": "c"}]}]}})"},
  };
  for (const auto& [schema, expected] : cases) {
    INFO(std::string(schema));
    const std::string message = expected.substr(expected.find("\"message\": ") + 11, expected.size() - expected.find("\"message\": ") - 12);
    write_file(dir.path / "in.json", message);
    const auto type = expected.substr(expected.find("\"type\": \"") + 9, expected.find("\", \"message") - expected.find("\"type\": \"") - 9);
    auto r = sagec_in(schemas, "encode -t " + type + " -i " + (dir.path / "in.json").string() + " -o " +
                                   (dir.path / "out.bin").string() + " " + schema);
    REQUIRE_MESSAGE(r.code == 0, r.out);
    r = sagec_in(schemas, "decode -i " + (dir.path / "out.bin").string() + " " + schema);
    CHECK_MESSAGE(r.code == 0, r.out);
    CHECK(r.out == expected + "\n");
  }
}

namespace {
// top.fbs includes common.fbs from dir/lib; both use packet_type 150.
void write_dup_across_include(const fs::path& dir) {
  fs::create_directories(dir / "lib");
  write_file(dir / "lib" / "common.fbs", "include \"sage.fbs\";\nnamespace inc;\ntable A (packet_type: 150) { x: int; }\n");
  write_file(dir / "top.fbs", "include \"common.fbs\";\nnamespace inc;\ntable B (packet_type: 150) { a: A; }\n");
}
}  // namespace

TEST_CASE("-I takes one directory per occurrence, before, between or after the schemas") {
  TempDir dir("include_positions");
  write_dup_across_include(dir.path);
  for (const std::string args : {"-I lib top.fbs lib/common.fbs", "top.fbs -I lib lib/common.fbs",
                                 "top.fbs lib/common.fbs -I lib", "--include lib top.fbs lib/common.fbs",
                                 "-I lib -I . top.fbs lib/common.fbs"}) {
    INFO("sagec check " << args);
    const auto r = sagec_in(dir.path, "check " + args);
    CHECK(r.code == 1);
    CHECK(r.out == "top.fbs:3:10: error: packet_type 150 of B already used by A (lib/common.fbs:3)\n");
  }
  // generate writes a header for each schema given, whatever the position of -I.
  write_file(dir.path / "top.fbs", "include \"common.fbs\";\nnamespace inc;\ntable B (packet_type: 151) { a: A; }\n");
  for (const std::string args : {"-I lib -o out1 top.fbs lib/common.fbs", "-o out2 top.fbs -I lib lib/common.fbs"}) {
    INFO("sagec generate " << args);
    const auto r = sagec_in(dir.path, "generate " + args);
    CHECK_MESSAGE(r.code == 0, r.out);
    const fs::path out = dir.path / args.substr(args.find("out"), 4);
    CHECK(fs::exists(out / "top.sage.hpp"));
    CHECK(fs::exists(out / "common.sage.hpp"));
  }
}

TEST_CASE("sagec --version prints the version and exits 0") {
  const auto r = sagec_in(fixtures, "--version");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("sagec ", 0) == 0);
  CHECK(r.out.find('.') != std::string::npos);
}

TEST_CASE("a non-ASCII or stray character in a schema is named in words at its position") {
  TempDir dir("lexer");
  write_file(dir.path / "na.fbs", "include \"sage.fbs\";\ntable Caf\xc3\xa9 { x: int; }\n");
  auto r = sagec_in(dir.path, "check na.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "na.fbs:2:11: error: non-ASCII character (byte 0xC3): names in a schema are ASCII letters, digits "
                 "and _ (other text belongs in strings and comments)\n");
  write_file(dir.path / "stray.fbs", "include \"sage.fbs\";\ntable T { x: int; } $\n");
  r = sagec_in(dir.path, "check stray.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "stray.fbs:2:22: error: unexpected character '$' (not part of the schema language)\n");
}

TEST_CASE("two fields that escape to one C++ name are refused with file:line") {
  TempDir dir("collide");
  write_file(dir.path / "c.fbs", "include \"sage.fbs\";\ntable T {\n  class: int;\n  class_: int;\n}\n");
  const auto r = sagec_in(dir.path, "check c.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "c.fbs:4:3: error: field T.class_ and field T.class both become the C++ member `class_` (see \"Names\" "
                 "in docs/schemas.md); rename one\n");
  write_file(dir.path / "e.fbs", "include \"sage.fbs\";\nenum E : byte { EOF, EOF_ }\n");
  const auto e = sagec_in(dir.path, "check e.fbs");
  CHECK(e.code == 1);
  CHECK(e.out == "e.fbs:2:1: error: enum E: values EOF and EOF_ both become the C++ name `EOF_`; rename one\n");
  write_file(dir.path / "t.fbs", "include \"sage.fbs\";\ntable Field { a: int; }\ntable Field_ { b: int; }\n");
  const auto t = sagec_in(dir.path, "check t.fbs");
  CHECK(t.code == 1);
  CHECK(t.out == "t.fbs:3:1: error: Field_ and Field both become the C++ type ::Field_; rename one\n");
}

TEST_CASE("an include cycle is refused, naming the cycle at the include that closes it") {
  TempDir dir("cycle");
  write_file(dir.path / "a.fbs", "include \"sage.fbs\";\ninclude \"b.fbs\";\ntable A { b: B; }\n");
  write_file(dir.path / "b.fbs", "include \"sage.fbs\";\n\ninclude \"a.fbs\";\ntable B { x: int; }\n");
  const auto r = sagec_in(dir.path, "check a.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "b.fbs:3:1: error: include cycle: a.fbs -> b.fbs -> a.fbs; each schema gets its own header and "
                 "headers cannot include each other in a circle (move what the schemas share into a schema that both "
                 "include)\n");
  CHECK(sagec_in(dir.path, "generate -o out a.fbs").code == 1);
  CHECK_FALSE(fs::exists(dir.path / "out" / "a.sage.hpp"));
}

TEST_CASE("a table with more than 32,765 fields is refused where the first field too many is") {
  TempDir dir("many_fields");
  std::string text = "include \"sage.fbs\";\ntable Wide {\n";
  for (int i = 0; i < 40000; ++i) text += "  f" + std::to_string(i) + ": byte;\n";
  write_file(dir.path / "wide.fbs", text + "}\n");
  const auto r = sagec_in(dir.path, "check wide.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "wide.fbs:32768:3: error: table Wide has 40000 fields (a union counts 2); a FlatBuffers table holds "
                 "at most 32765 (16-bit vtable offsets: from field f32765 on they would wrap)\n");
  std::string fits = "include \"sage.fbs\";\ntable Wide {\n";
  for (int i = 0; i < 32765; ++i) fits += "  f" + std::to_string(i) + ": byte;\n";
  write_file(dir.path / "fits.fbs", fits + "}\n");
  CHECK(sagec_in(dir.path, "check fits.fbs").code == 0);
}

TEST_CASE("a message nested deeper than decoders accept gets a warning, recursive ones do not") {
  TempDir dir("deep");
  std::string text = "include \"sage.fbs\";\n";
  for (int i = 0; i < 70; ++i) text += "table L" + std::to_string(i) + " { next: L" + std::to_string(i + 1) + "; }\n";
  text += "table L70 { x: int; }\ntable Top (packet_type: 150) { first: L0; }\n";
  text += "table Tree (packet_type: 151) { kids: [Tree]; }\n";
  write_file(dir.path / "deep.fbs", text);
  const auto r = sagec_in(dir.path, "check deep.fbs");
  CHECK(r.code == 0);  // a warning, not an error
  CHECK(r.out.find("deep.fbs:73:1: warning: message Top nests 72 tables deep (Top.first -> L0.next -> L1.next") == 0);
  CHECK(r.out.find("decoders refuse messages deeper than 64 tables, so it can never be received\n") != std::string::npos);
  CHECK(r.out.find("Tree") == std::string::npos);
}

TEST_CASE("a union that lists one table twice is refused") {
  TempDir dir("union_dup");
  write_file(dir.path / "u.fbs", "include \"sage.fbs\";\ntable A { x: int; }\nunion U { a1: A, a2: A }\ntable T { u: U; }\n");
  const auto r = sagec_in(dir.path, "check u.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "u.fbs:3:1: error: union U lists table A twice; sagec maps a union to a std::variant of its tables, "
                 "which must differ\n");
}

TEST_CASE("a union with a struct or a string member is refused, saying that flatc --cpp takes it") {
  for (const auto& [schema, member] : {std::pair{"union_struct.fbs", "Point"}, std::pair{"union_string.fbs", "Text"}}) {
    INFO(schema);
    TempDir out("union_member");
    const auto flatc = sage::test_support::run_shell("'" SAGE_FLATC_PATH "' --cpp -I '" + schema_dir.string() + "' -o '" +
                                                     out.path.string() + "' '" + (fixtures / schema).string() + "' 2>&1");
    CHECK_MESSAGE(flatc.code == 0, flatc.out);
    expect_error(schema, std::string("error: only tables can be union elements in the generated language: ") + member +
                             " (sagec takes only tables as union members; flatc --cpp also takes structs and strings)\n");
  }
}

// Every name the Namer escapes (codegen/namer.cpp), used as a field, an enum value, a namespace and
// a type name where the schema language allows it; the header must compile as gnu++20 after the
// standard headers that define the macros.
TEST_CASE("a schema using every escaped name as field, enum value, namespace and type compiles") {
  TempDir dir("every_name");
  std::set<std::string> names(sagec::cpp_keywords().begin(), sagec::cpp_keywords().end());
  names.insert(sagec::reserved_macros().begin(), sagec::reserved_macros().end());
  names.insert(sagec::generated_members().begin(), sagec::generated_members().end());
  // Schema-language keywords cannot be names in a schema at all.
  for (const char* k : {"table", "struct", "enum", "union", "namespace", "include", "attribute", "root_type",
                        "rpc_service", "file_identifier", "file_extension", "true", "false", "bool", "double",
                        "float", "int", "long", "short", "string"})
    names.erase(k);
  std::string fields, values, types;
  int i = 0;
  for (const auto& n : names) {
    fields += "  " + n + ": int;\n";
    values += std::string(values.empty() ? "" : ", ") + n;
    types += "table " + n + " { x" + std::to_string(i++) + ": int; }\n";
  }
  // The types in their own namespace: FlatBuffers refuses a field named like a type of its namespace.
  write_file(dir.path / "every.fbs", "include \"sage.fbs\";\nnamespace errno.class.EOF;\nenum E : int { " + values +
                                         " }\ntable Every (packet_type: 150) {\n" + fields +
                                         "  e: E = delete;\n}\nnamespace unix.types;\n" + types);
  auto r = sagec_in(dir.path, "generate -o out every.fbs");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  write_file(dir.path / "use.cpp", R"(#include <cassert>
#include <cerrno>
#include <cfloat>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/sysmacros.h>
#include "every.sage.hpp"
int main() {
  errno_::class_::EOF_::Every e;
  e.errno_ = 1;
  e.class_ = 2;
  e.packet_type_ = 3;
  auto back = errno_::class_::EOF_::Every::decode(e.to_bytes());
  return back.has_value() && *back == e ? 0 : 1;
}
)");
  r = sage::test_support::run_shell("cd '" + dir.path.string() + "' && '" SAGE_CXX_COMPILER "' -std=gnu++20 -Wall -Wextra -Werror -I out -I '" SAGE_INCLUDE_DIR "' use.cpp -o use && ./use");
  CHECK_MESSAGE(r.code == 0, r.out);
}

TEST_CASE("--against: a union member removed, renumbered or with a changed table breaks peers, an appended one does not") {
  const auto r = sagec_in(fixtures / "evolve", "check --against union_base.fbs union_changed.fbs");
  CHECK(r.code == 1);
  INFO(r.out);  // the one compatibility model (runtime/schema/compat.cpp) judges union members by value
  CHECK(r.out.find("union_changed.fbs:4:1: error: field evo.Pancake.syrup (id 1) was removed") != std::string::npos);
  CHECK(r.out.find("union_changed.fbs:8:1: error: union member evo.Food.Waffle (2) is now evo.Crepe instead of evo.Waffle") !=
        std::string::npos);
  CHECK(r.out.find("union_changed.fbs:8:1: error: union member evo.Food.Crepe moved from 3 to 2") != std::string::npos);
  const auto ok = sagec_in(fixtures / "evolve", "check --against union_base.fbs union_appended.fbs");
  CHECK(ok.code == 0);
  CHECK(ok.out.empty());
}

TEST_CASE("sagec describe prints each wire message's packet_type, name, fingerprint and the generated schema_description") {
  const auto r = sagec_in(schema_dir, "describe pancakes.fbs");
  CHECK(r.code == 0);
  char fp[32];
  std::snprintf(fp, sizeof fp, "0x%016llx", static_cast<unsigned long long>(pancakes::FoodAvailableMessage::fingerprint));
  CHECK_MESSAGE(r.out.find("packet_type 101  pancakes.FoodAvailableMessage  fingerprint " + std::string(fp) + "\n") !=
                    std::string::npos,
                r.out);
  std::string indented;
  const std::string text(pancakes::FoodAvailableMessage::schema_description);
  for (std::size_t pos = 0; pos < text.size();) {
    const auto end = text.find('\n', pos);
    indented += "    " + text.substr(pos, end - pos) + "\n";
    pos = end + 1;
  }
  CHECK_MESSAGE(r.out.find(indented) != std::string::npos, r.out);
  CHECK(r.out.find("packet_type 102  pancakes.FoodOnTableMessage") != std::string::npos);
}

TEST_CASE("sagec describe --format json gives tools the description text the handshake sends") {
  const auto r = sagec_in(schema_dir, "describe --format json pancakes.fbs");
  CHECK(r.code == 0);
  CHECK(r.out.find("\"format\": \"sage-schema 1\"") != std::string::npos);
  std::string escaped;
  for (char c : std::string(pancakes::FoodAvailableMessage::schema_description)) escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
  CHECK_MESSAGE(r.out.find("{\"packet_type\": 101, \"name\": \"pancakes.FoodAvailableMessage\", \"fingerprint\": \"0x") !=
                    std::string::npos,
                r.out);
  CHECK_MESSAGE(r.out.find("\"description\": \"" + escaped + "\"}") != std::string::npos, r.out);
  CHECK(r.out.find("\"description\": \"sage-schema 1\\nmessage 101 ") != std::string::npos);
  // Two fingerprints of all the messages, named apart: the merged description's (FNV-1a 64 of the
  // text) and the hello's schema fingerprint (over the entries).
  std::uint64_t h = 0xcbf29ce484222325ull;  // docs/wire-format.md "Schema fingerprint"
  for (const auto& [pt, fp] : {std::pair{pancakes::FoodAvailableMessage::packet_type, pancakes::FoodAvailableMessage::fingerprint},
                              std::pair{pancakes::FoodOnTableMessage::packet_type, pancakes::FoodOnTableMessage::fingerprint},
                              std::pair{pancakes::PancakeStackMessage::packet_type, pancakes::PancakeStackMessage::fingerprint}}) {
    h = (h ^ static_cast<std::uint64_t>(pt)) * 0x100000001b3ull;
    for (int i = 0; i < 8; ++i) h = (h ^ ((static_cast<std::uint64_t>(fp) >> (8 * i)) & 0xff)) * 0x100000001b3ull;
  }
  char hex[24];
  std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(h));
  CHECK_MESSAGE(r.out.find("\"schema_fingerprint\": \"" + std::string(hex) + "\"") != std::string::npos, r.out);
  CHECK(r.out.find("\"description_fingerprint\": \"0x") != std::string::npos);
}

TEST_CASE("sagec check --peers judges two schemas as the handshake judges two running peers, naming each side") {
  const auto changed = sagec_in(fixtures / "compat", "check --peers --against base.fbs field_type_changed.fbs");
  CHECK(changed.code == 1);
  CHECK_MESSAGE(changed.out.find("error: field evo.Order.id is int in the peer but long in this node") != std::string::npos,
                changed.out);
  CHECK(changed.out.find("old schemas") == std::string::npos);
  // No history rule between peers: a removed last field connects (sagec check without --peers refuses it).
  CHECK(sagec_in(fixtures / "compat", "check --peers --against base.fbs field_removed.fbs").code == 0);
  CHECK(sagec_in(fixtures / "compat", "check --against base.fbs field_removed.fbs").code == 1);
}

TEST_CASE("sagec describe refuses schemas that fail the checks") {
  const auto r = sagec_in(fixtures, "describe duplicate_packet_type.fbs");
  CHECK(r.code == 1);
  CHECK(r.out.find("error: packet_type") != std::string::npos);
}

TEST_CASE("--level chooses wire (the default: a rename is a note) or json (a rename is an error)") {
  const auto wire = sagec_in(fixtures / "compat", "check --against base.fbs field_renamed.fbs");
  CHECK(wire.code == 0);
  CHECK_MESSAGE(wire.out.find("field_renamed.fbs:17:3: note: field evo.Order.extra (id 5) was renamed to bonus") !=
                    std::string::npos,
                wire.out);
  CHECK(wire.out.find("removed") == std::string::npos);
  const auto json = sagec_in(fixtures / "compat", "check --level json --against base.fbs field_renamed.fbs");
  CHECK(json.code == 1);
  CHECK(json.out.find("field_renamed.fbs:17:3: error: field evo.Order.extra (id 5) was renamed to bonus") != std::string::npos);
  CHECK(sagec_in(fixtures / "compat", "check --level binary --against base.fbs field_renamed.fbs").code == 2);
}

TEST_CASE("a field named schema_description gets a trailing underscore beside the generated constant") {
  TempDir d("schema_description_field");
  write_file(d.path / "notes.fbs",
             "include \"sage.fbs\";\nnamespace notes;\ntable Note (packet_type: 150) { schema_description: string; }\n");
  const auto r = sagec_in(d.path, "generate -o out notes.fbs");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto header = read_file(d.path / "out" / "notes.sage.hpp");
  CHECK(header.find("std::string schema_description_") != std::string::npos);
  CHECK(header.find("static constexpr std::string_view schema_description =\n      \"sage-schema 1\\n\"\n"
                    "      \"message 150 0\\n\"\n      \"table 0 notes.Note\\n\"\n"
                    "      \"field 0 schema_description string -\\n\";") != std::string::npos);
}

TEST_CASE("two tables named alike in two namespaces are named by qualified name at their own lines") {
  TempDir dir("same_short_name");
  write_file(dir.path / "a.fbs", "include \"sage.fbs\";\nnamespace a;\ntable T (packet_type: 101) { x: int; }\n");
  write_file(dir.path / "b.fbs", "include \"sage.fbs\";\nnamespace other;\ntable Q { y: int; }\nnamespace b;\n\n"
                                 "table T (packet_type: 101) { class: int; class_: int; }\n");
  const auto r = sagec_in(dir.path, "check a.fbs b.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "b.fbs:6:10: error: packet_type 101 of b.T already used by a.T (a.fbs:3)\n"
                 "b.fbs:6:42: error: field b.T.class_ and field b.T.class both become the C++ member `class_` (see "
                 "\"Names\" in docs/schemas.md); rename one\n");
  // In one file: the error is at the second T, not at the first.
  write_file(dir.path / "n.fbs", "include \"sage.fbs\";\nnamespace a;\ntable T { x: int; }\nnamespace b;\n"
                                 "table T { class: int; class_: int; }\n");
  const auto n = sagec_in(dir.path, "check n.fbs");
  CHECK(n.code == 1);
  CHECK(n.out == "n.fbs:5:23: error: field b.T.class_ and field b.T.class both become the C++ member `class_` (see "
                 "\"Names\" in docs/schemas.md); rename one\n");
}

TEST_CASE("a union that lists one table three times is one error, also when another schema includes it") {
  TempDir dir("union_thrice");
  write_file(dir.path / "u.fbs",
             "include \"sage.fbs\";\ntable A { x: int; }\nunion U { a1: A, a2: A, a3: A }\ntable T { u: U; }\n");
  write_file(dir.path / "v.fbs", "include \"sage.fbs\";\ninclude \"u.fbs\";\ntable V { t: T; }\n");
  const auto r = sagec_in(dir.path, "check u.fbs v.fbs");
  CHECK(r.code == 1);
  CHECK(r.out == "u.fbs:3:1: error: union U lists table A 3 times; sagec maps a union to a std::variant of its "
                 "tables, which must differ\n");
}

namespace {

// The names a generated class declares for itself, read from a generated header: for each class
// (`struct T {` or `class T::View {`, keyed by T), every identifier declared at its top level (data
// members, functions, nested types), fields included.
std::map<std::string, std::set<std::string>> declared_members(const std::string& header) {
  static const std::regex class_start(R"(^(?:struct|class) (\w+)(?:::View)? \{$)");
  static const std::regex nested(R"(^  (?:struct|class)(?: alignas\(\d+\))? (\w+))");
  static const std::regex function(R"(^  [^(=]*?(\w+)\s*=?=?\s*\()");
  static const std::regex data(R"(^  [^(=]*?(\w+)\s*(?:=|\{\};|;))");
  std::map<std::string, std::set<std::string>> out;
  std::string current;
  std::istringstream in(header);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (current.empty()) {
      if (std::regex_search(line, m, class_start)) current = m[1];
      continue;
    }
    if (line == "};") {
      current.clear();
      continue;
    }
    if (line.size() < 3 || line[2] == ' ' || line.rfind("  //", 0) == 0) continue;  // nested code, comments
    if (std::regex_search(line, m, nested) || std::regex_search(line, m, function) || std::regex_search(line, m, data))
      out[current].insert(m[1]);
  }
  return out;
}

}  // namespace

TEST_CASE("every member a generated class declares is a reserved name or one of its fields") {
  const fs::path schemas = SAGE_TEST_SCHEMA_DIR;
  std::size_t checked = 0;
  for (const std::string stem : {"golden", "alltypes", "unions", "union_vectors", "arrays", "recursive", "defaults",
                                 "names", "views", "members", "interop"}) {
    INFO(stem);
    sagec::Diagnostics diags;
    const auto schema =
        sagec::load_schema((schemas / (stem + ".fbs")).string(), sagec::default_include_dirs(nullptr, {}), diags);
    REQUIRE_MESSAGE(schema != nullptr, diags.text());
    std::map<std::string, std::set<std::string>> fields;  // C++ class name -> C++ member names of its fields
    for (const auto* s : schema->parser->structs_.vec)
      for (const auto* f : s->fields.vec) fields[sagec::cpp_type_name(s->name)].insert(sagec::cpp_member_name(f->name, s->name));
    for (const auto& [cls, names] : declared_members(sagec::generate_header(*schema)))
      for (const auto& n : names) {
        INFO(cls << "::" << n);
        CHECK((sagec::generated_members().count(n) > 0 || sagec::cpp_keywords().count(n) > 0 || fields[cls].count(n) > 0));
        ++checked;
      }
  }
  CHECK(checked > 100);
}

TEST_CASE("members.fbs has a field named after every reserved member name, in a struct and in a wire message") {
  sagec::Diagnostics diags;
  const auto schema = sagec::load_schema((fs::path(SAGE_TEST_SCHEMA_DIR) / "members.fbs").string(),
                                         sagec::default_include_dirs(nullptr, {}), diags);
  REQUIRE_MESSAGE(schema != nullptr, diags.text());
  const auto* packed = schema->parser->LookupStruct("feat.members.Packed");
  const auto* members = schema->parser->LookupStruct("feat.members.Members");
  REQUIRE(packed != nullptr);
  REQUIRE(members != nullptr);
  for (const auto& n : sagec::generated_members()) {
    INFO(n);
    CHECK(packed->fields.Lookup(n) != nullptr);
    CHECK(members->fields.Lookup(n) != nullptr);
    CHECK(sagec::cpp_member_name(n, "Members") == n + "_");
  }
}

TEST_CASE("a schema that includes itself passes check and its header does not include itself, as with flatc") {
  TempDir dir("self_include");
  write_file(dir.path / "self.fbs", "include \"sage.fbs\";\ninclude \"self.fbs\";\nnamespace me;\n"
                                    "table A (packet_type: 120) { x: int; }\n");
  const auto r = sagec_in(dir.path, "check self.fbs");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.empty());
  REQUIRE(sagec_in(dir.path, "generate -o out --depfile out/self.d self.fbs").code == 0);
  const auto header = read_file(dir.path / "out" / "self.sage.hpp");
  CHECK(header.find("#include \"self.sage.hpp\"") == std::string::npos);
  write_file(dir.path / "use.cpp", "#include \"self.sage.hpp\"\nint main() { me::A a{.x = 3}; auto b = "
                                   "me::A::decode(a.to_bytes()); return b.has_value() && b->x == 3 ? 0 : 1; }\n");
  const auto c = sage::test_support::run_shell("cd '" + dir.path.string() + "' && '" SAGE_CXX_COMPILER
                                               "' -std=c++20 -Wall -Wextra -Werror -I out -I '" SAGE_INCLUDE_DIR
                                               "' use.cpp -o use -lflatbuffers && ./use");
  CHECK_MESSAGE(c.code == 0, c.out);
}

// sage's buffers as other FlatBuffers tools see them (issue 24): the root type's file_identifier,
// vectors of keyed tables and structs sorted by key, absent fields that stay absent through
// decode -> encode. The judges are flatc itself (flatc -t, flatc -b) and flatc's generated C++
// for the same schema (interop_fb: VerifyInventoryBuffer, LookupByKey).
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "interop.sage.hpp"
#include "interop_fb_generated.h"
#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

struct TempDir : sage::test_support::TempDir {
  explicit TempDir(const std::string& name) : sage::test_support::TempDir("sage_interop", name) {}
};

const std::string flatc = SAGE_FLATC_PATH;
const std::string schema = SAGE_TEST_SCHEMA_DIR "/interop.fbs";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::vector<std::byte>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::byte> read_bytes(const fs::path& p) {
  const auto s = read_file(p);
  const auto* b = reinterpret_cast<const std::byte*>(s.data());
  return {b, b + s.size()};
}

// `flatc -t` of the buffer file `bin`: its JSON, or a failed check with flatc's output.
std::string flatc_json(const fs::path& bin) {
  const auto r = sage::test_support::run_shell("'" + flatc + "' -t --strict-json -I '" SAGE_SCHEMA_DIR "' -o '" +
                                               bin.parent_path().string() + "' '" + schema + "' -- '" + bin.string() +
                                               "' 2>&1");
  INFO(r.out);
  REQUIRE(r.code == 0);
  return read_file(fs::path(bin).replace_extension(".json"));
}

const std::uint8_t* data_of(const std::vector<std::byte>& bytes) { return reinterpret_cast<const std::uint8_t*>(bytes.data()); }

// Items, slots and cells out of key order.
interop::Inventory sample() {
  interop::Inventory inv;
  inv.owner = "ada";
  inv.items = {{.name = "pear", .count = 3}, {.name = "apple", .count = 1}, {.name = "fig", .count = 2},
               {.name = "Zucchini", .count = 4}};
  inv.slots = {{.id = 30, .weight = 3}, {.id = 7, .weight = 1}, {.id = 12, .weight = 2}};
  inv.cells = {{.id = 5, .value = 50}, {.id = -1, .value = -10}, {.id = 2, .value = 20}};
  inv.at = interop::Vec2{1, 2};
  inv.tags = {"b", "a"};
  return inv;
}

}  // namespace

TEST_CASE("to_bytes of the root type writes its file_identifier, which flatc's generated verifier checks") {
  static_assert(interop::Inventory::file_identifier == "INVY");
  CHECK(interop::Inventory::file_identifier == interop_fb::InventoryIdentifier());
  const auto bytes = sample().to_bytes();
  CHECK(flatbuffers::BufferHasIdentifier(data_of(bytes), "INVY"));
  flatbuffers::Verifier verifier(data_of(bytes), bytes.size());
  CHECK(interop_fb::VerifyInventoryBuffer(verifier));
  // What flatc's object API reads from it is what sage wrote.
  const auto unpacked = interop_fb::UnPackInventory(bytes.data());
  CHECK(unpacked->owner == "ada");
  CHECK(unpacked->tags == std::vector<std::string>{"b", "a"});
  REQUIRE(unpacked->at != nullptr);
  CHECK(unpacked->at->y() == 2);
}

TEST_CASE("decode and verify_bytes accept a root type's buffer with and without its file_identifier") {
  const auto inv = sample();
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(inv.pack(fbb));  // no identifier, as a tool that does not write one
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  const std::vector<std::byte> without(p, p + fbb.GetSize());
  CHECK_FALSE(flatbuffers::BufferHasIdentifier(data_of(without), "INVY"));
  for (const auto& bytes : {without, inv.to_bytes()}) {
    auto back = interop::Inventory::decode(bytes);
    REQUIRE_MESSAGE(back.has_value(), back.error().message());
    CHECK(back->owner == "ada");
    CHECK(interop::Inventory::verify_bytes(bytes).has_value());
    const interop::Inventory::View view(bytes);
    CHECK(view.owner() == "ada");
  }
}

TEST_CASE("vectors of keyed tables and structs are written sorted by key, and flatc's LookupByKey finds each") {
  const auto bytes = sample().to_bytes();
  const auto* inv = interop_fb::GetInventory(bytes.data());
  std::vector<std::string> names;
  for (const auto* item : *inv->items()) names.push_back(item->name()->str());
  CHECK(names == std::vector<std::string>{"Zucchini", "apple", "fig", "pear"});  // bytewise, as flatc sorts
  for (const auto& [name, count] : {std::pair{"pear", 3}, {"apple", 1}, {"fig", 2}, {"Zucchini", 4}}) {
    const auto* found = inv->items()->LookupByKey(name);
    REQUIRE_MESSAGE(found != nullptr, name);
    CHECK(found->count() == count);
  }
  CHECK(inv->items()->LookupByKey("plum") == nullptr);
  for (const std::uint16_t id : {30, 7, 12}) {
    const auto* slot = inv->slots()->LookupByKey(id);
    REQUIRE(slot != nullptr);
    CHECK(slot->id() == id);
  }
  CHECK(inv->slots()->Get(0)->id() == 7);
  for (const int id : {5, -1, 2}) {
    const auto* cell = inv->cells()->LookupByKey(id);
    REQUIRE(cell != nullptr);
    CHECK(cell->value() == id * 10);
  }
  CHECK(inv->cells()->Get(0)->id() == -1);
  // Decoded, the vectors come back in key order; the value class looks elements up by key.
  auto back = interop::Inventory::decode(bytes);
  REQUIRE(back.has_value());
  CHECK(back->items.front().name == "Zucchini");
  const auto* fig = interop::Item::lookup_by_key(back->items, "fig");
  REQUIRE(fig != nullptr);
  CHECK(fig->count == 2);
  CHECK(interop::Item::lookup_by_key(back->items, "plum") == nullptr);
  CHECK(interop::Slot::lookup_by_key(back->slots, 12)->weight == 2);
  CHECK(interop::Cell::lookup_by_key(back->cells, -1)->value == -10);
  interop::Cell::lookup_by_key(back->cells, 5)->value = 55;  // the non-const overload
  CHECK(back->cells.back().value == 55);
}

TEST_CASE("flatc -t reads a buffer sage wrote, with its identifier and its keyed vectors sorted") {
  TempDir dir("flatc_t");
  write_file(dir.path / "sage.inv", sample().to_bytes());
  const auto json = flatc_json(dir.path / "sage.inv");
  CHECK(json.find("\"owner\": \"ada\"") != std::string::npos);
  const auto apple = json.find("\"apple\""), fig = json.find("\"fig\""), pear = json.find("\"pear\"");
  CHECK(apple < fig);
  CHECK(fig < pear);
}

TEST_CASE("a buffer flatc wrote round-trips through decode and to_bytes to the same JSON, absent fields absent") {
  TempDir dir("round_trip");
  // No slots, cells, at or score; an empty tags vector present; a tree whose nodes mostly have no
  // children vector, one an empty one.
  const std::string json = R"({
  "owner": "bo",
  "items": [{"name": "apple", "count": 1}, {"name": "fig"}],
  "tags": [],
  "tree": {"name": "a", "children": [{"name": "b"}, {"name": "c", "children": []}, {"children": [{"name": "e"}]}]}
})";
  {
    std::ofstream(dir.path / "in.json") << json;
  }
  const auto r = sage::test_support::run_shell("cd '" + dir.path.string() + "' && '" + flatc + "' -b -I '" SAGE_SCHEMA_DIR
                                               "' '" + schema + "' in.json 2>&1");
  INFO(r.out);
  REQUIRE(r.code == 0);
  fs::rename(dir.path / "in.inv", dir.path / "flatc.inv");
  const auto original = flatc_json(dir.path / "flatc.inv");
  auto decoded = interop::Inventory::decode(read_bytes(dir.path / "flatc.inv"));
  REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message());
  CHECK(decoded->tags.empty());
  CHECK(decoded->at == interop::Vec2{});
  write_file(dir.path / "sage.inv", decoded->to_bytes());
  const auto again = flatc_json(dir.path / "sage.inv");
  CHECK(again == original);
  CHECK(again.find("\"slots\"") == std::string::npos);
  CHECK(again.find("\"at\"") == std::string::npos);
  CHECK(again.find("\"tags\": [\n\n  ]") != std::string::npos);  // present and empty, as in the input
  // A value changed after decoding is written: a field left out is absent only while it holds
  // what absence decodes to.
  decoded->at = interop::Vec2{3, 4};
  decoded->slots = {{.id = 1}};
  write_file(dir.path / "changed.inv", decoded->to_bytes());
  const auto changed = flatc_json(dir.path / "changed.inv");
  CHECK(changed.find("\"at\"") != std::string::npos);
  CHECK(changed.find("\"slots\"") != std::string::npos);
}

TEST_CASE("a nested table absent from a flatc buffer stays absent through decode and to_bytes, an empty one present") {
  TempDir dir("absent_table");
  // The first buffer has no tree; the second an empty tree (a table with no fields).
  for (const bool empty_tree : {false, true}) {
    INFO("empty tree: " << empty_tree);
    const std::string json = empty_tree ? R"({"owner": "cy", "tree": {}})" : R"({"owner": "cy"})";
    {
      std::ofstream(dir.path / "in.json") << json;
    }
    const auto r = sage::test_support::run_shell("cd '" + dir.path.string() + "' && '" + flatc + "' -b -I '" SAGE_SCHEMA_DIR
                                                 "' '" + schema + "' in.json 2>&1");
    INFO(r.out);
    REQUIRE(r.code == 0);
    const auto original = flatc_json(dir.path / "in.inv");
    CHECK((original.find("\"tree\"") != std::string::npos) == empty_tree);
    auto decoded = interop::Inventory::decode(read_bytes(dir.path / "in.inv"));
    REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message());
    CHECK(decoded->tree.has_value() == empty_tree);
    write_file(dir.path / "sage.inv", decoded->to_bytes());
    CHECK(flatc_json(dir.path / "sage.inv") == original);
    // flatc's own verifier and accessors see the same: a null tree, or an empty one.
    const auto bytes = decoded->to_bytes();
    const auto* inv = interop_fb::GetInventory(data_of(bytes));
    CHECK((inv->tree() != nullptr) == empty_tree);
  }
}

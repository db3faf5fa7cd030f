// Round trips of the schema features of issue 11 through the generated classes: unions, vectors
// of unions (nested), fixed-size arrays in structs, recursive tables, string defaults, escaped
// names. Bytes are checked against FlatBuffers' own reading of the schema (JSON -> bytes ->
// generated decode -> to_bytes -> the same JSON; sage writes empty vectors, so the JSON has them),
// and bad bytes against the decoders.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include <flatbuffers/idl.h>
#include <flatbuffers/util.h>

#include "arrays.sage.hpp"
#include "defaults.sage.hpp"
#include "names.sage.hpp"
#include "recursive.sage.hpp"
#include "union_vectors.sage.hpp"
#include "unions.sage.hpp"

namespace {

template <class T>
T round_trip(const T& in) {
  const auto bytes = in.to_bytes();
  auto out = T::decode(bytes);
  REQUIRE_MESSAGE(out.has_value(), out.error().message());
  return *out;
}

// FlatBuffers' parser for one test schema: JSON <-> bytes.
class SchemaParser {
 public:
  explicit SchemaParser(const std::string& file) {
    parser_.opts.strict_json = true;
    parser_.opts.indent_step = -1;
    std::string text;
    const std::string path = SAGE_TEST_SCHEMA_DIR "/" + file;
    REQUIRE(flatbuffers::LoadFile(path.c_str(), false, &text));
    const char* include_dirs[] = {SAGE_SCHEMA_DIR "/", nullptr};
    REQUIRE_MESSAGE(parser_.Parse(text.c_str(), include_dirs, path.c_str()), parser_.error_);
  }
  std::vector<std::byte> bytes(const char* root, const std::string& json) {
    REQUIRE(parser_.SetRootType(root));
    REQUIRE_MESSAGE(parser_.ParseJson(json.c_str()), parser_.error_);
    const auto* b = reinterpret_cast<const std::byte*>(parser_.builder_.GetBufferPointer());
    return {b, b + parser_.builder_.GetSize()};
  }
  std::string json(const char* root, const std::vector<std::byte>& bytes) {
    REQUIRE(parser_.SetRootType(root));
    std::string out;
    REQUIRE(flatbuffers::GenerateText(parser_, bytes.data(), &out));
    return out;
  }

 private:
  flatbuffers::Parser parser_;
};

// JSON -> bytes (FlatBuffers) -> T::decode -> to_bytes -> JSON (FlatBuffers): the same JSON.
template <class T>
T json_round_trip(const char* schema, const char* root, const std::string& json) {
  SchemaParser p(schema);
  const auto in = p.bytes(root, json);
  auto decoded = T::decode(in);
  REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message());
  CHECK(p.json(root, decoded->to_bytes()) == json);
  return *decoded;
}

}  // namespace

TEST_CASE("a union holds none or one of its tables and round trips with its own tag values") {
  using namespace feat::unions;
  Serve s;
  CHECK(std::holds_alternative<std::monostate>(s.food));
  CHECK(round_trip(s) == s);
  s.food = Pancake{.size = 3, .syrup = true};
  s.spare = Waffle{.grid = {1, 2, 3}};
  const auto back = round_trip(s);
  CHECK(back == s);
  REQUIRE(std::holds_alternative<Pancake>(back.food));
  CHECK(std::get<Pancake>(back.food).size == 3);
  CHECK(std::get<Waffle>(back.spare).grid == std::vector<int>{1, 2, 3});
  // The wire tag is the schema's value (Waffle = 5), as FlatBuffers writes it.
  const auto json = json_round_trip<Serve>(
      "unions.fbs", "feat.unions.Serve",
      R"({"table_no": 7,"food_type": "Waffle","food": {"grid": [4,5]},"spare_type": "Pancake","spare": {"size": 2}})");
  CHECK(std::get<Waffle>(json.food).grid == std::vector<int>{4, 5});
  CHECK(std::get<Pancake>(json.spare).size == 2);
}

TEST_CASE("a union tag nobody knows, or a tag without its table, is a decode error, never none") {
  using namespace feat::unions;
  SchemaParser p("unions.fbs");
  auto bytes = p.bytes("feat.unions.Serve", R"({"food_type": "Waffle", "food": {"grid": [1]}})");
  // Find the tag byte (5) through the generated Field offsets and make it 9.
  const auto* root = flatbuffers::GetRoot<flatbuffers::Table>(bytes.data());
  const auto* tag = root->GetAddressOf(Serve::Field::food_type);
  REQUIRE(tag != nullptr);
  REQUIRE(*tag == 5);
  const_cast<std::uint8_t*>(tag)[0] = 9;
  auto r = Serve::decode(bytes);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == sage::Errc::verify_failed);
  CHECK_FALSE(Serve::decode(p.bytes("feat.unions.Serve", R"({"food_type": "Pancake"})")).has_value());
}

TEST_CASE("vectors of unions round trip, with unions nested in vectors inside union members") {
  using namespace feat::union_vectors;
  Document d;
  d.parts.push_back(Text{.body = "intro"});
  d.parts.push_back(Image{.width = 640, .height = 480});
  Group inner{.title = "inner", .parts = {Text{.body = "deep"}, Image{.width = 1, .height = 2}}};
  d.parts.push_back(sage::Box<Group>(Group{.title = "outer", .parts = {sage::Box<Group>(inner), Text{.body = "x"}}}));
  d.cover = Image{.width = 3, .height = 4};
  d.parts.push_back(std::monostate{});  // none inside a vector: tag 0 and an empty table
  const auto back = round_trip(d);
  CHECK(back == d);
  REQUIRE(back.parts.size() == 4);
  CHECK(std::holds_alternative<std::monostate>(back.parts[3]));
  const auto& outer = *std::get<sage::Box<Group>>(back.parts[2]);
  CHECK(outer.title == "outer");
  CHECK(std::get<Text>(std::get<sage::Box<Group>>(outer.parts[0])->parts[0]).body == "deep");
  // flatc -t refuses vectors of unions; FlatBuffers' parser reads and prints them.
  const auto json = json_round_trip<Document>(
      "union_vectors.fbs", "feat.union_vectors.Document",
      R"({"parts_type": ["Text","Group"],"parts": [{"body": "a"},{"title": "g","parts_type": ["Image"],"parts": [{"width": 5,"height": 6}]}]})");
  REQUIRE(json.parts.size() == 2);
  CHECK(std::get<Image>(std::get<sage::Box<Group>>(json.parts[1])->parts[0]).width == 5);
}

TEST_CASE("a vector of union tags whose length differs from its tables is a decode error") {
  using namespace feat::union_vectors;
  // Hand-built: two tags, one table.
  flatbuffers::FlatBufferBuilder fbb;
  const auto text = Text{.body = "t"}.pack(fbb);
  const std::vector<std::uint8_t> tags = {1, 1};
  const auto tag_vec = fbb.CreateVector(tags);
  const std::vector<flatbuffers::Offset<flatbuffers::Table>> values = {text};
  const auto value_vec = fbb.CreateVector(values);
  const auto start = fbb.StartTable();
  fbb.AddOffset(Document::Field::parts_type, tag_vec);
  fbb.AddOffset(Document::Field::parts, value_vec);
  fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
  const auto bytes = sage::detail::finished_bytes(fbb);
  const auto r = Document::decode(bytes);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == sage::Errc::verify_failed);
}

TEST_CASE("fixed-size arrays in structs are std::arrays, of scalars, enums and structs") {
  using namespace feat::arrays;
  static_assert(std::is_same_v<decltype(Transform{}.matrix), std::array<float, 16>>);
  static_assert(sizeof(Transform::Layout) == 64 + 6 + 2 + 4 * 8 + 1 + 1 + 2);  // as flatc lays it out
  Placed p;
  for (int i = 0; i < 16; ++i) p.at.matrix[i] = static_cast<float>(i) / 2;
  p.at.ids = {1, 2, 65535};
  p.at.suits = {Suit::spades, Suit::hearts};
  p.at.corners = {Vec2{1, 2}, Vec2{3, 4}, Vec2{5, 6}, Vec2{7, 8}};
  p.at.tag = -3;
  p.path = {p.at, Transform{}};
  CHECK(round_trip(p) == p);
  const auto json = json_round_trip<Placed>(
      "arrays.fbs", "feat.arrays.Placed",
      R"({"at": {"matrix": [1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0],"ids": [7,8,9],"suits": ["spades","hearts"],"corners": [{"x": 1.0,"y": 2.0},{"x": 3.0,"y": 4.0},{"x": 5.0,"y": 6.0},{"x": 7.0,"y": 8.0}],"tag": 5},"path": []})");
  CHECK(json.at.matrix[15] == 16.0f);
  CHECK(json.at.corners[3].y == 8.0f);
  CHECK(json.at.suits[0] == Suit::spades);
}

TEST_CASE("a recursive tree three levels deep round trips, and a single child is a sage::Box") {
  using namespace feat::recursive;
  static_assert(std::is_same_v<decltype(Node{}.next), sage::Box<Node>>);
  static_assert(std::is_same_v<decltype(Note{}.about), sage::Box<Node>>);
  Node root{.name = "root"};
  Node child{.name = "child"};
  child.children.push_back(Node{.name = "grandchild"});
  child.next = Node{.name = "next"};
  root.children.push_back(child);
  root.note = Note{.text = "n", .about = Node{.name = "about"}};
  const auto back = round_trip(root);
  CHECK(back == root);
  CHECK(back.children[0].children[0].name == "grandchild");
  CHECK(back.children[0].next->name == "next");
  CHECK(back.note->about->name == "about");
  CHECK_FALSE(back.next.has_value());
  // Copies are deep.
  auto copy = back;
  copy.children[0].next->name = "changed";
  CHECK(back.children[0].next->name == "next");
  CHECK_FALSE(copy == back);
  json_round_trip<Node>("recursive.fbs", "feat.recursive.Node",
                        R"({"name": "a","children": [{"name": "b","children": [{"name": "c","children": []}],"next": {"name": "d","children": []}}]})");
}

TEST_CASE("a string default is the member's initial value and what a missing field decodes to") {
  using namespace feat::defaults;
  const Greeting g;
  CHECK(g.greeting == "hello");
  CHECK(g.quoted == "say \"hi\"\\ \t tab");
  CHECK(g.plain.empty());
  CHECK(round_trip(g) == g);
  Greeting changed;
  changed.greeting = "";
  CHECK(round_trip(changed).greeting.empty());  // an empty string is written, not left out
  // A buffer without the field (an empty table) decodes to the default.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(fbb.StartTable())));
  const auto empty = Greeting::decode(sage::detail::finished_bytes(fbb));
  REQUIRE(empty.has_value());
  CHECK(empty->greeting == "hello");
  CHECK(empty->quoted == g.quoted);
  CHECK(empty->counts.empty());
}

TEST_CASE("escaped names compile and round trip: keywords, macros, members and the class's own names") {
  using namespace feat::names::class_;
  Field_ f;
  f.class_ = 1;
  f.errno_ = 2;
  f.EOF_ = 3;
  f.linux_ = "penguin";
  f.unix_ = {4};
  f.assert_ = true;
  f.Layout_ = 5;
  f.where = Layout_{.stdin_ = 6, .Field_ = 7};
  f.encode_ = 8;
  f.packet_type_ = 9;
  f.fingerprint_ = 10;
  f.fbb = 11;
  f.start = 12;
  f.kind = errno_::delete_;
  static_assert(Field_::packet_type == 205);
  static_assert(Field_::message_name == "feat.names.class.Field");
  CHECK(f.kind != errno_::EOF_);
  CHECK(to_string(errno_::NULL_) == "NULL");
  CHECK(round_trip(f) == f);
}

#if !defined(linux) || !defined(unix)
#error "features_test is compiled as gnu++20 so that names.fbs meets the linux and unix macros"
#endif

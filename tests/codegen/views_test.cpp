// Zero-copy views (sage/view.hpp): every field kind read in place through T::View, absent fields
// as defaults, bytes of an older or newer schema, and bad bytes refused before a view reads them.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "alltypes.sage.hpp"
#include "arrays.sage.hpp"
#include "union_vectors.sage.hpp"
#include "views.sage.hpp"

using namespace feat::views;

// Views cannot outlive the call they were handed to by being copied or moved somewhere.
static_assert(!std::is_copy_constructible_v<Everything::View>);
static_assert(!std::is_move_constructible_v<Everything::View>);
static_assert(!std::is_copy_assignable_v<Everything::View>);
static_assert(!std::is_move_assignable_v<Everything::View>);
// Views are not built from values by accident.
static_assert(!std::is_constructible_v<Everything::View, const Everything&>);

namespace {

// Bytes on an 8-byte boundary, as the runtime hands them to view handlers.
struct Aligned {
  std::vector<std::uint64_t> words;
  std::size_t size = 0;
  explicit Aligned(const std::vector<std::byte>& bytes) : words((bytes.size() + 7) / 8), size(bytes.size()) {
    std::memcpy(words.data(), bytes.data(), bytes.size());
  }
  std::span<const std::byte> span() const { return {reinterpret_cast<const std::byte*>(words.data()), size}; }
};

Everything full() {
  Everything m;
  m.flag = false;
  m.small = -128;
  m.big = 18446744073709551615ULL;
  m.ratio = -1.5;
  m.mood = Mood::calm;
  m.maybe = 0;
  m.title = "a title";
  m.plain = std::string(300, 'p');
  m.at = Point{1.5f, -2.5f};
  m.shape.corners = {Point{1, 2}, Point{3, 4}, Point{5, 6}};
  m.shape.sides = {7, 8};
  m.tag = Tag{"tagged", 11};
  m.must = Tag{"required", -4};
  Tree leaf;
  leaf.name = "leaf";
  Tree root;
  root.name = "root";
  root.kids = {leaf, leaf};
  root.kids[1].name = "second";
  root.parent = Tree{};
  root.parent->name = "grandparent";
  m.tree = root;
  m.payload = Tree{"in a union", {}, {}};
  m.payloads = {Payload{}, Payload{Tag{"first", 1}}, Payload{Tree{"second", {}, {}}}};
  for (int i = 0; i < 10000; ++i) m.numbers.push_back(i * 7 - 3);
  m.flags = {true, false, true};
  m.moods = {Mood::angry, Mood::calm, static_cast<Mood>(9)};
  m.words = {"", "one", std::string(1000, 'w'), "ünïcödé"};
  m.points = {Point{0.5f, 1}, Point{-3, 4}};
  m.tags = {Tag{"x", 1}, Tag{}, Tag{"z", 3}};
  m.last = -1;
  return m;
}

}  // namespace

TEST_CASE("every field kind reads through a View as the value that was encoded") {
  const Everything m = full();
  const Aligned bytes(m.to_bytes());
  REQUIRE(Everything::verify_bytes(bytes.span()).has_value());
  const Everything::View v(bytes.span());
  CHECK(static_cast<bool>(v));
  CHECK(v.flag() == false);
  CHECK(v.small() == -128);
  CHECK(v.big() == 18446744073709551615ULL);
  CHECK(v.ratio() == -1.5);
  CHECK(v.mood() == Mood::calm);
  CHECK(v.maybe() == std::optional<std::int32_t>(0));
  CHECK(v.title() == "a title");
  CHECK(v.plain() == std::string(300, 'p'));
  CHECK(v.at() == Point{1.5f, -2.5f});
  CHECK(v.shape() == m.shape);
  CHECK(v.shape().corners[2] == Point{5, 6});
  CHECK(v.tag().label() == "tagged");
  CHECK(v.tag().weight() == 11);
  CHECK(v.must().label() == "required");
  CHECK(v.must().weight() == -4);
  // Recursive (boxed) tables: nested Views all the way down.
  CHECK(v.tree().name() == "root");
  REQUIRE(v.tree().kids().size() == 2);
  CHECK(v.tree().kids()[1].name() == "second");
  CHECK(v.tree().parent().name() == "grandparent");
  CHECK_FALSE(static_cast<bool>(v.tree().parent().parent()));
  // Unions: tag, index, typed access and visit.
  CHECK(v.payload().tag() == 4);
  CHECK(v.payload().index() == 2);
  CHECK(v.payload().holds<Tree>());
  CHECK_FALSE(v.payload().holds<Tag>());
  CHECK(v.payload().get<Tree>().name() == "in a union");
  CHECK_FALSE(static_cast<bool>(v.payload().get<Tag>()));  // the wrong table: absent, never misread
  CHECK(v.payload().get<Tag>().weight() == 2);
  const std::string visited = v.payload().visit([](const auto& alt) -> std::string {
    if constexpr (std::is_same_v<std::decay_t<decltype(alt)>, Tree::View>) return std::string(alt.name());
    else return "other";
  });
  CHECK(visited == "in a union");
  CHECK(v.payload().to_value() == m.payload);
  REQUIRE(v.payloads().size() == 3);
  CHECK(v.payloads()[0].empty());
  CHECK(v.payloads()[1].get<Tag>().label() == "first");
  CHECK(v.payloads()[2].get<Tree>().name() == "second");
  CHECK(v.payloads().to_vector() == m.payloads);
  // Vectors: scalars, bools, enums (unnamed values too), strings, structs, tables.
  REQUIRE(v.numbers().size() == 10000);
  CHECK(v.numbers()[9999] == 9999 * 7 - 3);
  long long sum = 0, expected = 0;
  for (const std::int32_t n : v.numbers()) sum += n;
  for (const std::int32_t n : m.numbers) expected += n;
  CHECK(sum == expected);
  CHECK(v.flags().to_vector() == m.flags);
  CHECK(v.moods().to_vector() == m.moods);
  CHECK(v.words().to_vector() == m.words);
  CHECK(v.words()[3] == "ünïcödé");
  CHECK(v.points()[1] == Point{-3, 4});
  CHECK(v.points().to_vector() == m.points);
  REQUIRE(v.tags().size() == 3);
  CHECK(v.tags()[2].label() == "z");
  CHECK(v.tags()[1].weight() == 2);
  std::string labels;
  for (const auto& t : v.tags()) labels += t.label();
  CHECK(labels == "xz");
  CHECK(v.tags().to_vector() == m.tags);
  CHECK(v.last() == -1);
  // The owning value has every field.
  CHECK(v.to_value() == m);
}

TEST_CASE("a View of a message whose fields are absent reads the schema's defaults") {
  Everything m;
  m.must.label = "only this";
  // The encoder writes no scalar equal to its default and no absent table, string or vector.
  const Aligned bytes(m.to_bytes());
  REQUIRE(Everything::verify_bytes(bytes.span()).has_value());
  const Everything::View v(bytes.span());
  CHECK(v.flag() == true);
  CHECK(v.small() == -3);
  CHECK(v.big() == 0);
  CHECK(v.ratio() == 0.25);
  CHECK(v.mood() == Mood::angry);
  CHECK_FALSE(v.maybe().has_value());
  CHECK(v.title() == "untitled");
  CHECK(v.plain().empty());
  CHECK(v.at() == Point{});
  CHECK_FALSE(static_cast<bool>(v.tag()));  // absent table: false, and its fields read as defaults
  CHECK(v.tag().weight() == 2);
  CHECK(v.tag().label().empty());
  CHECK(static_cast<bool>(v.must()));
  CHECK_FALSE(static_cast<bool>(v.tree()));
  CHECK(v.tree().kids().empty());
  CHECK(v.payload().empty());
  CHECK(v.payload().index() == 0);
  CHECK(v.payloads().empty());
  CHECK(v.numbers().empty());
  CHECK(v.numbers().begin() == v.numbers().end());
  CHECK(v.words().empty());
  CHECK(v.tags().empty());
  CHECK(v.last() == 9);
  CHECK(v.to_value() == m);
}

TEST_CASE("a View reads bytes of an older schema as defaults and skips fields of a newer one") {
  using sagetest::Defaults;
  SUBCASE("older: a sender whose Defaults had only its first field") {
    flatbuffers::FlatBufferBuilder fbb;
    const auto start = fbb.StartTable();
    fbb.AddElement<std::int32_t>(Defaults::Field::count, 5, 0);
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
    const Aligned bytes(sage::detail::finished_bytes(fbb));
    REQUIRE(Defaults::verify_bytes(bytes.span()).has_value());
    const Defaults::View v(bytes.span());
    CHECK(v.count() == 5);
    CHECK(v.ratio() == 0.5f);
    CHECK(v.on() == true);
    CHECK(v.color() == sagetest::Color::blue);
    CHECK_FALSE(v.maybe().has_value());
    CHECK(v.big() == sagetest::Big::huge);
    CHECK(v.lowest() == std::numeric_limits<std::int64_t>::min());
  }
  SUBCASE("newer: a sender whose Defaults has two more fields after the last one we know") {
    flatbuffers::FlatBufferBuilder fbb;
    const auto text = fbb.CreateString("a field from the future");
    const auto start = fbb.StartTable();
    constexpr flatbuffers::voffset_t after_last = Defaults::Field::far + 2;
    fbb.AddElement<std::int32_t>(Defaults::Field::count, -7, 0);
    fbb.AddElement<std::int64_t>(after_last, 1234, 0);
    fbb.AddOffset(after_last + 2, text);
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
    const Aligned bytes(sage::detail::finished_bytes(fbb));
    REQUIRE(Defaults::verify_bytes(bytes.span()).has_value());
    const Defaults::View v(bytes.span());
    CHECK(v.count() == -7);
    CHECK(v.ratio() == 0.5f);
    CHECK(v.to_value().count == -7);
  }
}

TEST_CASE("verify_bytes refuses misaligned, truncated and corrupt bytes before a View reads them") {
  const std::vector<std::byte> raw = full().to_bytes();
  std::vector<std::uint64_t> words(raw.size() / 8 + 2);
  auto* base = reinterpret_cast<std::byte*>(words.data());
  std::memcpy(base + 1, raw.data(), raw.size());
  const auto misaligned = Everything::verify_bytes({base + 1, raw.size()});
  REQUIRE_FALSE(misaligned.has_value());
  CHECK(misaligned.error().code == sage::Errc::misaligned);

  const Aligned whole(raw);
  const auto truncated = Everything::verify_bytes(whole.span().first(raw.size() / 2));
  REQUIRE_FALSE(truncated.has_value());
  CHECK(truncated.error().code == sage::Errc::verify_failed);
  const auto tiny = Everything::verify_bytes(whole.span().first(4));
  REQUIRE_FALSE(tiny.has_value());
  CHECK(tiny.error().code == sage::Errc::truncated);

  // Another message type's bytes: Everything's `must` is required, so an empty table is refused.
  const Aligned other(sagetest::Empty{}.to_bytes());
  const auto wrong = Everything::verify_bytes(other.span());
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().message().find("feat.views.Everything") != std::string::npos);
}

TEST_CASE("fixed-size arrays and nested unions read through Views like their decoded values") {
  feat::arrays::Placed placed;
  placed.at.matrix[15] = 2.5f;
  placed.at.suits = {feat::arrays::Suit::spades, feat::arrays::Suit::hearts};
  placed.at.corners[3] = feat::arrays::Vec2{9, 8};
  placed.path.resize(3);
  placed.path[2].ids = {1, 2, 65535};
  const Aligned a(placed.to_bytes());
  REQUIRE(feat::arrays::Placed::verify_bytes(a.span()).has_value());
  const feat::arrays::Placed::View pv(a.span());
  CHECK(pv.at().matrix[15] == 2.5f);
  CHECK(pv.at().corners[3] == feat::arrays::Vec2{9, 8});
  CHECK(pv.path()[2].ids[2] == 65535);
  CHECK(pv.to_value() == placed);

  using namespace feat::union_vectors;
  Group inner;
  inner.title = "inner";
  inner.parts = {Part{Text{"deep text"}}, Part{Image{3, 4}}};
  Document doc;
  doc.parts = {Part{inner}, Part{Text{"top"}}};
  doc.cover = Part{Image{640, 480}};
  const Aligned d(doc.to_bytes());
  REQUIRE(Document::verify_bytes(d.span()).has_value());
  const Document::View dv(d.span());
  CHECK(dv.cover().get<Image>().width() == 640);
  const auto group = dv.parts()[0].get<Group>();
  CHECK(group.title() == "inner");
  CHECK(group.parts()[0].get<Text>().body() == "deep text");
  CHECK(group.parts()[1].get<Image>().height() == 4);
  CHECK(dv.to_value() == doc);
}

TEST_CASE("bytes with any one byte flipped are refused by verify_bytes or read safely through a View") {
  Everything m = full();
  m.numbers.resize(4);
  m.plain = "p";
  const std::vector<std::byte> good = m.to_bytes();
  std::size_t accepted = 0, refused = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= std::byte{0xff};
    const Aligned bytes(bad);
    if (!Everything::verify_bytes(bytes.span())) {
      ++refused;
      continue;
    }
    ++accepted;  // some bytes are values, padding or unused: reading must still stay in bounds
    const Everything::View v(bytes.span());
    (void)v.to_value();
    std::size_t n = v.words().size() + v.tags().size() + v.payloads().size() + v.tree().kids().size();
    for (const auto w : v.words()) n += w.size();
    for (std::size_t k = 0; k < v.payloads().size(); ++k) n += v.payloads()[k].index();
    CHECK(n < bytes.size);
  }
  CHECK(refused > 0);
  CHECK(accepted > 0);
}

TEST_CASE("a table named View with fields named like the View's own members reads through its View") {
  feat::views::View_ m;
  m.to_value_ = 5;
  m.table__ = "t";
  m.verify_bytes_ = true;
  const Aligned bytes(m.to_bytes());
  REQUIRE(feat::views::View_::verify_bytes(bytes.span()).has_value());
  const feat::views::View_::View v(bytes.span());
  CHECK(v.to_value_() == 5);
  CHECK(v.table__() == "t");
  CHECK(v.verify_bytes_());
  CHECK(v.to_value() == m);
}

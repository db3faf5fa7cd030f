// Round trips of every supported property type through the classes sagec generates, and the
// check that their bytes are real FlatBuffers of the schema (flatbuffers::Parser reads them).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include <flatbuffers/idl.h>
#include <flatbuffers/util.h>

#include "alltypes.sage.hpp"
#include "golden.sage.hpp"
#include "pancakes.sage.hpp"

using namespace sagetest;

static_assert(sage::WireMessage<pancakes::FoodAvailableMessage>);
static_assert(sage::WireMessage<Scalars>);
static_assert(sage::WireMessage<Empty>);
static_assert(!sage::WireMessage<LocalOnly>, "a table without packet_type must not be sendable");
static_assert(!sage::WireMessage<Inner>);
static_assert(!sage::WireMessage<Vec3>);
static_assert(sage::Message<LocalOnly>);
static_assert(pancakes::FoodAvailableMessage::packet_type == 101);
static_assert(pancakes::PancakeStackMessage::message_name == "pancakes.PancakeStackMessage");
static_assert(sage::name_of<LocalOnly>() == "sagetest.LocalOnly");
static_assert(pancakes::pancakes_wire_messages::size == 3);
static_assert(alltypes_wire_messages::size == 8);
static_assert(kitchen::orders::golden_wire_messages::size == 1);
static_assert(!sage::WireMessage<kitchen::orders::StockChecked>);
static_assert(sizeof(Mixed::Layout) == 40 && alignof(Mixed::Layout) == 8);

namespace {

template <class T>
T round_trip(const T& in) {
  const auto bytes = in.to_bytes();
  auto out = T::decode(bytes);
  REQUIRE_MESSAGE(out.ok(), out.error().message());
  return *out;
}

// The schema's own parser, to read our bytes as JSON and to write bytes from JSON.
flatbuffers::Parser& schema_parser() {
  static const auto parser = [] {
    auto parser = std::make_unique<flatbuffers::Parser>();
    auto& p = *parser;
    p.opts.strict_json = true;
    p.opts.indent_step = -1;
    std::string text;
    const std::string path = SAGE_TEST_SCHEMA_DIR "/alltypes.fbs";
    REQUIRE(flatbuffers::LoadFile(path.c_str(), false, &text));
    const char* include_dirs[] = {SAGE_SCHEMA_DIR "/", nullptr};
    REQUIRE_MESSAGE(p.Parse(text.c_str(), include_dirs, path.c_str()), p.error_);
    return parser;
  }();
  return *parser;
}

std::string as_json(const char* root, const std::vector<std::byte>& bytes) {
  auto& p = schema_parser();
  REQUIRE(p.SetRootType(root));
  std::string json;
  REQUIRE(flatbuffers::GenerateText(p, bytes.data(), &json));
  return json;
}

std::vector<std::byte> from_json(const char* root, const std::string& json) {
  auto& p = schema_parser();
  REQUIRE(p.SetRootType(root));
  REQUIRE_MESSAGE(p.ParseJson(json.c_str()), p.error_);
  const auto* b = reinterpret_cast<const std::byte*>(p.builder_.GetBufferPointer());
  return {b, b + p.builder_.GetSize()};
}

Scalars scalars_at(bool high) {
  Scalars s;
  s.b = high;
  s.i8 = high ? std::numeric_limits<std::int8_t>::max() : std::numeric_limits<std::int8_t>::min();
  s.u8 = high ? std::numeric_limits<std::uint8_t>::max() : 0;
  s.i16 = high ? std::numeric_limits<std::int16_t>::max() : std::numeric_limits<std::int16_t>::min();
  s.u16 = high ? std::numeric_limits<std::uint16_t>::max() : 0;
  s.i32 = high ? std::numeric_limits<std::int32_t>::max() : std::numeric_limits<std::int32_t>::min();
  s.u32 = high ? std::numeric_limits<std::uint32_t>::max() : 0;
  s.i64 = high ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
  s.u64 = high ? std::numeric_limits<std::uint64_t>::max() : 0;
  s.f32 = high ? std::numeric_limits<float>::max() : std::numeric_limits<float>::lowest();
  s.f64 = high ? std::numeric_limits<double>::max() : std::numeric_limits<double>::denorm_min();
  return s;
}

}  // namespace

TEST_CASE("the pancake messages round trip, the stack with 10,000 ints") {
  CHECK(round_trip(pancakes::FoodAvailableMessage{.amount = 3}).amount == 3);
  CHECK(round_trip(pancakes::FoodOnTableMessage{.amount = -5}).amount == -5);
  pancakes::PancakeStackMessage stack;
  for (int i = 0; i < 10000; ++i) stack.values.push_back(i * 7 - 35000);
  CHECK(round_trip(stack) == stack);
}

TEST_CASE("every integer width round trips at its limits, with float, double and bool") {
  for (bool high : {false, true}) {
    const auto s = scalars_at(high);
    CHECK(round_trip(s) == s);
  }
  Scalars odd;
  odd.f32 = 0.1f;
  odd.f64 = -1e-300;
  CHECK(round_trip(odd) == odd);
  Scalars nan;
  nan.f64 = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(round_trip(nan).f64));
}

TEST_CASE("defaults are member initializers and optional scalars distinguish absent from zero") {
  const Defaults d;
  CHECK(d.count == 42);
  CHECK(d.ratio == 0.5f);
  CHECK(d.on);
  CHECK(d.color == Color::blue);
  CHECK(d.big == Big::huge);
  CHECK(d.lowest == std::numeric_limits<std::int64_t>::min());
  CHECK(std::isinf(d.far));
  CHECK_FALSE(d.maybe.has_value());
  CHECK(round_trip(d) == d);

  Defaults set;
  set.count = 0;
  set.on = false;
  set.color = Color::red;
  set.maybe = 0;
  set.maybe_flag = false;
  set.maybe_color = Color::green;
  set.big = Big::small;
  const auto back = round_trip(set);
  CHECK(back == set);
  REQUIRE(back.maybe.has_value());
  CHECK(*back.maybe == 0);
  CHECK(to_string(Color::blue) == "blue");
  CHECK(to_string(static_cast<Color>(3)).empty());
}

TEST_CASE("strings round trip empty, at 255 and 100,000 bytes, and in UTF-8") {
  for (std::size_t n : {std::size_t{0}, std::size_t{255}, std::size_t{100000}}) {
    Texts t;
    t.text = std::string(n, 'x');
    t.must = "m";
    CHECK(round_trip(t) == t);
  }
  Texts utf8;
  utf8.text = "Pfannkuchen \xC3\xBC \xE2\x82\xAC \xF0\x9F\xA5\x9E";
  utf8.names = {"", "\xE3\x83\x91\xE3\x83\xB3\xE3\x82\xB1\xE3\x83\xBC\xE3\x82\xAD", std::string(300, 'n')};
  utf8.must = std::string("nul\0inside", 10);
  CHECK(round_trip(utf8) == utf8);
}

TEST_CASE("vectors round trip empty and with 10,000 elements of every element kind") {
  CHECK(round_trip(Vectors{}) == Vectors{});
  Vectors v;
  for (int i = 0; i < 10000; ++i) {
    v.ints.push_back(i - 5000);
    v.bytes.push_back(static_cast<std::uint8_t>(i));
    v.bools.push_back(i % 3 == 0);
    v.doubles.push_back(i * 0.25);
    v.colors.push_back(i % 2 ? Color::green : Color::blue);
    v.points.push_back(Vec3{static_cast<float>(i), -1.5f, 2.0f});
    v.longs.push_back(std::numeric_limits<std::int64_t>::max() - i);
  }
  v.mixed = {Mixed{.a = -1, .b = 2.5, .c = Color::blue, .v = Vec3{1, 2, 3}, .flag = true}, Mixed{}};
  v.inners = {Inner{.name = "a", .score = 1}, Inner{}, Inner{.name = std::string(1000, 'z'), .score = -7}};
  CHECK(round_trip(v) == v);
}

TEST_CASE("structs and nested tables round trip, absent nested tables stay absent") {
  Nested n;
  n.pos = Vec3{1.5f, -2.5f, 1e30f};
  n.mixed = Mixed{.a = std::numeric_limits<std::int8_t>::min(), .b = -0.0, .c = Color::green,
                  .v = Vec3{4, 5, 6}, .flag = true};
  n.must = Inner{.name = "required", .score = 0};
  CHECK(round_trip(n) == n);
  CHECK_FALSE(round_trip(n).inner.has_value());

  n.inner = Inner{.name = "inner", .score = 9};
  n.deep = Deep{.inner = Inner{.name = "deeper"}, .list = {Inner{.name = "x"}, Inner{.name = "y", .score = 2}}};
  const auto back = round_trip(n);
  CHECK(back == n);
  REQUIRE(back.deep.has_value());
  CHECK(back.deep->list.at(1).score == 2);
}

TEST_CASE("keyword and reserved field names get a trailing underscore and still round trip") {
  Keywords k;
  k.class_ = 1;
  k.namespace_ = "ns";
  k.packet_type_ = 3;
  k.decode_ = {4, 5};
  k.fbb = 6;
  k.start = "7";
  k.fbb_ref = 8;
  CHECK(round_trip(k) == k);
  CHECK(Keywords::packet_type == 115);
}

TEST_CASE("empty tables and deprecated fields round trip") {
  CHECK(round_trip(Empty{}) == Empty{});
  WithDeprecated w{.a = 1, .b = "b"};
  CHECK(round_trip(w) == w);
}

TEST_CASE("encoded bytes are FlatBuffers the schema's own parser reads") {
  const auto s = scalars_at(true);
  const auto json = as_json("sagetest.Scalars", s.to_bytes());
  CHECK(json.find("\"i64\": 9223372036854775807") != std::string::npos);
  CHECK(json.find("\"u8\": 255") != std::string::npos);

  Nested n;
  n.pos = Vec3{1, 2, 3};
  n.must = Inner{.name = "deep value"};
  n.deep = Deep{.list = {Inner{.name = "listed", .score = 11}}};
  const auto nested = as_json("sagetest.Nested", n.to_bytes());
  CHECK(nested.find("\"name\": \"deep value\"") != std::string::npos);
  CHECK(nested.find("\"score\": 11") != std::string::npos);
  CHECK(nested.find("\"x\": 1.0") != std::string::npos);
}

TEST_CASE("bytes the schema's own parser writes from JSON decode into the generated classes") {
  const auto bytes = from_json("sagetest.Vectors",
                               R"({"ints": [1, -2, 3], "colors": ["green", "blue"], "bools": [true, false],
                                   "points": [{"x": 1, "y": 2, "z": 3}],
                                   "mixed": [{"a": 1, "b": 2.5, "c": "green", "v": {"x": 4, "y": 5, "z": 6}, "flag": true}],
                                   "inners": [{"name": "n"}]})");
  auto v = Vectors::decode(bytes);
  REQUIRE_MESSAGE(v.ok(), v.error().message());
  CHECK(v->ints == std::vector<std::int32_t>{1, -2, 3});
  CHECK(v->colors == std::vector<Color>{Color::green, Color::blue});
  CHECK(v->bools == std::vector<bool>{true, false});
  CHECK(v->points.at(0) == Vec3{1, 2, 3});
  CHECK(v->mixed.at(0) == Mixed{.a = 1, .b = 2.5, .c = Color::green, .v = Vec3{4, 5, 6}, .flag = true});
  REQUIRE(v->inners.size() == 1);
  CHECK(v->inners[0].name == "n");
  CHECK(v->inners[0].score == 7);  // absent: the schema default

  auto d = Defaults::decode(from_json("sagetest.Defaults", R"({"maybe": 0, "count": 5})"));
  REQUIRE(d.ok());
  CHECK(d->count == 5);
  CHECK(d->maybe == std::optional<std::int32_t>(0));
  CHECK_FALSE(d->maybe_flag.has_value());
  CHECK(d->color == Color::blue);
}

TEST_CASE("the same message encodes to the same bytes every time") {
  Nested n;
  n.must = Inner{.name = "same"};
  n.deep = Deep{.list = {Inner{.name = "a"}}};
  CHECK(n.to_bytes() == n.to_bytes());
  CHECK(Nested(n).to_bytes() == n.to_bytes());
}

TEST_CASE("decode_packet picks the decoder by packet_type from a schema's wire-message list") {
  const auto bytes = pancakes::FoodOnTableMessage{.amount = 4}.to_bytes();
  int seen = 0;
  auto r = sage::decode_packet(pancakes::pancakes_wire_messages{}, 102, bytes, [&](auto&& m) {
    if constexpr (std::is_same_v<std::decay_t<decltype(m)>, pancakes::FoodOnTableMessage>) seen = m.amount;
  });
  REQUIRE(r.ok());
  CHECK(seen == 4);
  CHECK(sage::decode_packet(pancakes::pancakes_wire_messages{}, 200, bytes, [](auto&&) {}).error() ==
        sage::Errc::unknown_packet_type);
}

TEST_CASE("fingerprints differ between messages and are fixed by the layout") {
  CHECK(pancakes::FoodAvailableMessage::fingerprint != pancakes::FoodOnTableMessage::fingerprint);
  CHECK(Scalars::fingerprint != Defaults::fingerprint);
  CHECK(Nested::fingerprint != 0);
}

TEST_CASE("the golden schema's message round trips with its required string, struct and optional float") {
  kitchen::orders::OrderMessage order{.guest = "Ada", .seat = {.table_no = 7, .chair = 2}};
  order.plate = kitchen::orders::Plate{.toppings = {"syrup"}};
  order.tip = 1.5f;
  CHECK(round_trip(order) == order);
  CHECK(round_trip(order).plate->count == 3);
}

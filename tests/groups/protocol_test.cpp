#include <doctest/doctest.h>

#include "channel/protocol.hpp"

using namespace sage::detail::protocol;

TEST_CASE("a hello survives encoding and decoding and its layout matches docs/wire-format.md") {
  Hello h;
  h.pid = 1234;
  h.entries = {{101, 0x1122334455667788ull}, {103, 7}};
  h.schema_fingerprint = schema_fingerprint(h.entries);
  h.name = "chefs";
  h.description = "sage-schema 1\n";
  auto bytes = encode_hello(h);
  REQUIRE(bytes.size() == 32 + 2 * 16 + 5 + 14);
  CHECK(bytes[0] == std::byte{'S'});
  CHECK(bytes[3] == std::byte{'E'});
  CHECK(bytes[4] == std::byte{2});  // protocol version 2
  CHECK(bytes[24] == std::byte{14});  // description length
  CHECK(bytes[32] == std::byte{101});
  CHECK(bytes[40] == std::byte{0x88});
  CHECK(bytes[64] == std::byte{'c'});
  CHECK(bytes[69] == std::byte{'s'});
  auto back = decode_hello(bytes);
  REQUIRE(back.ok());
  CHECK(back->version == 2);
  CHECK(back->pid == 1234);
  CHECK(back->entries == h.entries);
  CHECK(back->name == "chefs");
  CHECK(back->description == h.description);
  CHECK(back->schema_fingerprint == h.schema_fingerprint);
}

namespace {
// A version-1 hello as sage before schema negotiation sent it.
std::vector<std::byte> v1_hello(std::string_view name) {
  std::vector<std::byte> out;
  auto put = [&](std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
  };
  put(hello_magic, 4);
  put(1, 2);
  put(name.size(), 2);
  put(0x1234, 8);
  put(77, 4);
  put(1, 4);
  put(101, 1);
  put(0, 7);
  put(0xabc, 8);
  for (char c : name) out.push_back(std::byte(c));
  return out;
}
}  // namespace

TEST_CASE("a version-1 hello is read far enough to be refused with 'upgrade it'") {
  auto h = decode_hello(v1_hello("old"));
  REQUIRE(h.ok());
  CHECK(h->version == 1);
  CHECK(h->name == "old");
  CHECK(h->pid == 77);
  Hello mine;
  auto r = check_negotiated(mine, *h, "this node", "peer 127.0.0.1:1");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::incompatible);
  CHECK(r.error().detail.find("peer 127.0.0.1:1 speaks protocol 1; upgrade it") != std::string::npos);
  // A future version is refused the other way round.
  auto v3 = v1_hello("new");
  v3[4] = std::byte{3};
  auto h3 = decode_hello(v3);
  REQUIRE(h3.ok());
  CHECK(check_negotiated(mine, *h3, "this node", "x").error().detail.find("upgrade this node") != std::string::npos);
}

TEST_CASE("the hello decoder refuses non-zero padding, control packet_types, duplicates, long or non-UTF-8 names") {
  Hello h;
  h.entries = {{101, 1}, {102, 2}};
  h.name = "ok";
  const auto good = encode_hello(h);
  REQUIRE(decode_hello(good).ok());
  auto with = [&](std::size_t at, std::byte b) {
    auto bytes = good;
    bytes[at] = b;
    return decode_hello(bytes);
  };
  CHECK(with(28, std::byte{1}).error().detail.find("reserved") != std::string::npos);
  CHECK(with(33, std::byte{1}).error().detail.find("padding") != std::string::npos);
  CHECK(with(39, std::byte{1}).error().detail.find("padding") != std::string::npos);
  CHECK(with(32, std::byte{100}).error().detail.find("101..255") != std::string::npos);
  CHECK(with(48, std::byte{101}).error().detail.find("twice") != std::string::npos);
  CHECK(with(64, std::byte{0xff}).error().detail.find("UTF-8") != std::string::npos);
  Hello long_name;
  long_name.name = std::string(256, 'x');
  CHECK(decode_hello(encode_hello(long_name)).error().detail.find("at most 255") != std::string::npos);
  long_name.name = std::string(255, 'x');
  CHECK(decode_hello(encode_hello(long_name)).ok());
  CHECK(valid_utf8("caf\xc3\xa9"));
  CHECK_FALSE(valid_utf8("\xc0\xaf"));        // overlong
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));    // surrogate
  CHECK_FALSE(valid_utf8("\xe2\x82"));         // cut short
}

TEST_CASE("an announce round-trips and refuses lengths that do not add up") {
  Announce a{{{150, 9}}, "sage-schema 1\n"};
  auto bytes = encode_announce(a);
  auto back = decode_announce(bytes);
  REQUIRE(back.ok());
  CHECK(back->entries == a.entries);
  CHECK(back->description == a.description);
  bytes.push_back(std::byte{0});
  CHECK(decode_announce(bytes).error() == sage::Errc::malformed);
}

TEST_CASE("the schema fingerprint does not depend on registration order but on every entry") {
  auto a = schema_fingerprint({{101, 1}, {102, 2}});
  CHECK(a == schema_fingerprint({{102, 2}, {101, 1}}));
  CHECK(a != schema_fingerprint({{101, 1}, {102, 3}}));
  CHECK(schema_fingerprint({}) == 0xcbf29ce484222325ull);
}

TEST_CASE("a truncated or inconsistent hello is refused with a reason") {
  Hello h;
  h.name = "x";
  auto bytes = encode_hello(h);
  CHECK(decode_hello(std::span(bytes).first(10)).error() == sage::Errc::truncated);
  bytes.push_back(std::byte{0});
  CHECK(decode_hello(bytes).error() == sage::Errc::malformed);
  bytes.pop_back();
  bytes[0] = std::byte{'X'};
  CHECK(decode_hello(bytes).error() == sage::Errc::malformed);
}

TEST_CASE("tables that disagree on a packet_type are incompatible and the error names both fingerprints") {
  Hello mine, theirs;
  mine.entries = {{101, 0xaaa}};
  theirs.entries = {{101, 0xbbb}, {102, 1}};
  mine.schema_fingerprint = schema_fingerprint(mine.entries);
  theirs.schema_fingerprint = schema_fingerprint(theirs.entries);
  auto r = check_compatible(mine, theirs, "main", "group 'chefs'");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::fingerprint_mismatch);
  CHECK(r.error().detail.find("0x0000000000000aaa") != std::string::npos);
  CHECK(r.error().detail.find("0x0000000000000bbb") != std::string::npos);
  CHECK(r.error().detail.find("packet_type 101") != std::string::npos);
  theirs.entries = {{102, 1}};
  CHECK(check_compatible(mine, theirs, "main", "x").ok());
}

TEST_CASE("names and error reports round-trip and reject wrong lengths") {
  auto n = encode_name("consumers");
  CHECK(decode_name(n).value() == "consumers");
  n.pop_back();
  CHECK(decode_name(n).error() == sage::Errc::malformed);
  auto e = encode_error({ErrorKind::constructor_threw, "boom"});
  auto back = decode_error(e);
  REQUIRE(back.ok());
  CHECK(back->kind == ErrorKind::constructor_threw);
  CHECK(back->text == "boom");
  CHECK(decode_error(std::span(e).first(4)).error() == sage::Errc::truncated);
}

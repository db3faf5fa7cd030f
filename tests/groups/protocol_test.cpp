#include <doctest/doctest.h>

#include "channel/protocol.hpp"

using namespace sage::detail::protocol;

TEST_CASE("a hello survives encoding and decoding and its layout matches docs/wire-format.md") {
  Hello h;
  h.pid = 1234;
  h.entries = {{101, 0x1122334455667788ull}, {103, 7}};
  h.schema_fingerprint = schema_fingerprint(h.entries);
  h.name = "chefs";
  auto bytes = encode_hello(h);
  REQUIRE(bytes.size() == 24 + 2 * 16 + 5);
  CHECK(bytes[0] == std::byte{'S'});
  CHECK(bytes[3] == std::byte{'E'});
  CHECK(bytes[24] == std::byte{101});
  CHECK(bytes[32] == std::byte{0x88});
  auto back = decode_hello(bytes);
  REQUIRE(back.ok());
  CHECK(back->pid == 1234);
  CHECK(back->entries == h.entries);
  CHECK(back->name == "chefs");
  CHECK(back->schema_fingerprint == h.schema_fingerprint);
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

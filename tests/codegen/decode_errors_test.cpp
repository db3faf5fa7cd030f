// Bytes from outside the process: truncated, corrupted, misaligned or of another type. decode()
// must report an Error (or, for bytes that happen to verify, return some value), never read out of
// bounds. Run under ASan/UBSan (SAGE_SANITIZE=address) to make "never UB" a checked claim.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "alltypes.sage.hpp"
#include "pancakes.sage.hpp"

using namespace sagetest;

namespace {

Nested full_nested() {
  Nested n;
  n.pos = Vec3{1, 2, 3};
  n.mixed = Mixed{.a = 1, .b = 2, .c = Color::blue, .v = Vec3{4, 5, 6}, .flag = true};
  n.inner = Inner{.name = "inner", .score = 3};
  n.must = Inner{.name = "must"};
  n.deep = Deep{.inner = Inner{.name = "deep"}, .list = {Inner{.name = "x"}, Inner{.name = "yy", .score = 5}}};
  return n;
}

Vectors full_vectors() {
  Vectors v;
  v.ints = {1, 2, 3};
  v.doubles = {0.5, 1.5};
  v.longs = {std::numeric_limits<std::int64_t>::min()};
  v.points = {Vec3{1, 1, 1}};
  v.mixed = {Mixed{}};
  v.inners = {Inner{.name = "a"}};
  v.bools = {true};
  return v;
}

// Every decode of a prefix or a one-byte corruption either fails or gives back a well-formed value.
template <class T>
void hammer(const T& original) {
  const auto bytes = original.to_bytes();
  std::size_t failures = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto r = T::decode(std::span(bytes.data(), n));
    if (!r) {
      ++failures;
      CHECK((r.error() == sage::Errc::truncated || r.error() == sage::Errc::verify_failed));
    }
  }
  CHECK(failures >= bytes.size() / 2);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (std::uint8_t x : {0xffu, 0x80u, 0x01u}) {
      auto copy = bytes;
      copy[i] ^= std::byte{x};
      auto r = T::decode(copy);
      if (!r) CHECK(r.error() == sage::Errc::verify_failed);
    }
  }
}

}  // namespace

TEST_CASE("an empty or tiny buffer is reported as truncated") {
  auto r = pancakes::FoodAvailableMessage::decode({});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::truncated);
  CHECK(r.error().message().find("pancakes.FoodAvailableMessage") != std::string::npos);
  const std::byte few[4]{};
  CHECK(pancakes::FoodAvailableMessage::decode(few).error() == sage::Errc::truncated);
}

TEST_CASE("a buffer cut in half fails verification with a useful detail") {
  pancakes::PancakeStackMessage stack;
  stack.values.assign(10000, 7);
  const auto bytes = stack.to_bytes();
  auto r = pancakes::PancakeStackMessage::decode(std::span(bytes.data(), bytes.size() / 2));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::verify_failed);
  CHECK(r.error().message().find("not a valid pancakes.PancakeStackMessage") != std::string::npos);
}

TEST_CASE("a root offset pointing outside the buffer is refused") {
  auto bytes = pancakes::FoodAvailableMessage{.amount = 1}.to_bytes();
  bytes[0] = std::byte{0xff};
  bytes[1] = std::byte{0xff};
  auto r = pancakes::FoodAvailableMessage::decode(bytes);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::verify_failed);
  CHECK(r.error().message().find("root offset") != std::string::npos);
}

TEST_CASE("every prefix and every one-byte corruption of nested and vector messages is handled") {
  hammer(full_nested());
  hammer(full_vectors());
  hammer(Texts{.text = "hello", .names = {"a", "bc"}, .must = "m"});
}

TEST_CASE("bytes of another message type whose offsets do not fit are refused") {
  const auto bytes = pancakes::FoodAvailableMessage{.amount = 1000000}.to_bytes();
  auto stack = pancakes::PancakeStackMessage::decode(bytes);
  REQUIRE_FALSE(stack.ok());
  CHECK(stack.error() == sage::Errc::verify_failed);
  auto texts = Texts::decode(bytes);  // its required string is missing
  REQUIRE_FALSE(texts.ok());
  CHECK(texts.error() == sage::Errc::verify_failed);
}

TEST_CASE("a required field that is absent fails verification") {
  const auto bytes = Empty{}.to_bytes();
  CHECK(Nested::decode(bytes).error() == sage::Errc::verify_failed);
  CHECK(Texts::decode(bytes).error() == sage::Errc::verify_failed);
}

TEST_CASE("a buffer at an odd address decodes through an aligned copy") {
  const auto n = full_nested();
  const auto bytes = n.to_bytes();
  std::vector<std::byte> storage(bytes.size() + 8);
  auto* odd = storage.data() + 1;
  if (reinterpret_cast<std::uintptr_t>(odd) % 8 == 0) ++odd;
  std::memcpy(odd, bytes.data(), bytes.size());
  auto r = Nested::decode(std::span(odd, bytes.size()));
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(*r == n);
}

TEST_CASE("a vector whose length runs past the end of the buffer is refused") {
  pancakes::PancakeStackMessage stack;
  stack.values = {1, 2, 3};
  auto bytes = stack.to_bytes();
  // The vector's length is the u32 just before its three elements: find "3, 0, 0, 0, 1, 0, 0, 0".
  const std::byte pattern[] = {std::byte{3}, std::byte{0}, std::byte{0}, std::byte{0},
                               std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}};
  auto it = std::search(bytes.begin(), bytes.end(), std::begin(pattern), std::end(pattern));
  REQUIRE(it != bytes.end());
  *(it + 2) = std::byte{0x10};  // 1 Mi elements
  auto r = pancakes::PancakeStackMessage::decode(bytes);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::verify_failed);
}

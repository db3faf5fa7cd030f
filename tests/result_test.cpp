// sage::Result<T>: the std::expected vocabulary (has_value, value, error, operator*, operator->,
// value_or) and what reading a failed result does.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "sage/result.hpp"

namespace {

// Generic code written against std::expected's names compiles against sage::Result.
template <class E>
auto doubled_or_minus_one(const E& e) -> typename E::value_type {
  return e.has_value() ? *e * 2 : e.value_or(-1);
}

}  // namespace

TEST_CASE("a Result with a value answers has_value, value, operator* and value_or like std::expected") {
  sage::Result<int> r = 21;
  CHECK(r.has_value());
  CHECK(r.ok());
  CHECK(static_cast<bool>(r));
  CHECK(r.value() == 21);
  CHECK(*r == 21);
  CHECK(r.value_or(7) == 21);
  CHECK(doubled_or_minus_one(r) == 42);
  static_assert(std::is_same_v<sage::Result<int>::value_type, int>);
  static_assert(std::is_same_v<sage::Result<int>::error_type, sage::Error>);
}

TEST_CASE("a Result with an error gives value_or's fallback, its error, and throws from value()") {
  sage::Result<std::string> r = sage::Error{sage::Errc::truncated, "3 bytes"};
  CHECK_FALSE(r.has_value());
  CHECK(r.value_or("fallback") == "fallback");
  CHECK(r.error() == sage::Errc::truncated);
  CHECK(r.error().message() == "truncated: 3 bytes");
  CHECK_THROWS_AS((void)r.value(), sage::bad_result_access);
  sage::Result<int> e(sage::Errc::malformed);
  CHECK(doubled_or_minus_one(e) == -1);
}

TEST_CASE("value_or on an rvalue Result moves the value out (move-only types work)") {
  sage::Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  auto p = std::move(r).value_or(nullptr);
  REQUIRE(p != nullptr);
  CHECK(*p == 5);
  CHECK(r->get() == nullptr);  // moved from
}

TEST_CASE("Result<void> has has_value and a value() that throws only on an error") {
  sage::Result<void> ok;
  CHECK(ok.has_value());
  CHECK_NOTHROW(ok.value());
  sage::Result<void> bad(sage::Errc::peer_gone, "exited");
  CHECK_FALSE(bad.has_value());
  CHECK_THROWS_AS(bad.value(), sage::bad_result_access);
  CHECK(bad.error() == sage::Errc::peer_gone);
}

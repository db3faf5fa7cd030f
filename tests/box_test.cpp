// sage::Box<T>: the optional-on-the-heap that generated code uses for tables containing themselves.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sage/box.hpp"

namespace {
struct Tree {
  std::string name{};
  sage::Box<Tree> next{};  // Tree is incomplete here
  std::vector<Tree> kids{};
  bool operator==(const Tree&) const = default;
};
}  // namespace

TEST_CASE("an empty Box behaves like an empty optional, and value() throws bad_optional_access") {
  sage::Box<int> b;
  CHECK_FALSE(b.has_value());
  CHECK_FALSE(b);
  CHECK(b == std::nullopt);
  CHECK_THROWS_AS((void)b.value(), std::bad_optional_access);
  b = 5;
  CHECK(b.has_value());
  CHECK(*b == 5);
  b = std::nullopt;
  CHECK_FALSE(b.has_value());
  CHECK(b.emplace(7) == 7);
  b.reset();
  CHECK(b == sage::Box<int>{});
}

TEST_CASE("copying a Box copies the value, moving leaves the source empty, and == compares values") {
  Tree t{.name = "a"};
  t.next = Tree{.name = "b", .next = Tree{.name = "c"}};
  Tree copy = t;
  CHECK(copy == t);
  copy.next->next->name = "changed";
  CHECK(t.next->next->name == "c");
  CHECK_FALSE(copy == t);
  sage::Box<Tree> moved = std::move(t.next);
  CHECK_FALSE(t.next.has_value());  // NOLINT: moved-from state is specified: empty
  CHECK(moved->name == "b");
  copy = t;  // copy assignment replaces the whole tree
  CHECK(copy == t);
  CHECK_FALSE(sage::Box<Tree>{} == moved);
}

// sage/box.hpp: sage::Box<T>, an optional T on the heap with value semantics.
//
// Generated code uses it for a single table field whose table contains, directly or through other
// tables, the table holding the field (`table Node { parent: Node; }`): std::optional<Node> cannot
// be a member of Node, an owning pointer can. A Box behaves like std::optional<T>:
//   - empty or holding one T; copying copies the T (deep), moving moves the pointer (noexcept) and
//     leaves the source empty;
//   - operator== compares the held values (two empty boxes are equal), as optional's does;
//   - *box, box->x and value() on an empty box are caller bugs: value() throws
//     std::bad_optional_access, operator* and operator-> are unchecked, like std::optional's.
// T may be incomplete where Box<T> is declared; it must be complete where a Box<T> is created,
// copied, compared or destroyed.
#pragma once

#include <memory>
#include <optional>
#include <utility>

namespace sage {

template <class T>
class Box {
 public:
  using value_type = T;

  Box() noexcept = default;
  Box(std::nullopt_t) noexcept {}                                 // NOLINT: like optional
  Box(T value) : p_(std::make_unique<T>(std::move(value))) {}    // NOLINT: like optional
  Box(const Box& other) : p_(other.p_ ? std::make_unique<T>(*other.p_) : nullptr) {}
  Box(Box&&) noexcept = default;
  Box& operator=(const Box& other) {
    if (this != &other) p_ = other.p_ ? std::make_unique<T>(*other.p_) : nullptr;
    return *this;
  }
  Box& operator=(Box&&) noexcept = default;
  Box& operator=(std::nullopt_t) noexcept {
    p_.reset();
    return *this;
  }
  ~Box() = default;

  bool has_value() const noexcept { return p_ != nullptr; }
  explicit operator bool() const noexcept { return has_value(); }
  T& operator*() & noexcept { return *p_; }
  const T& operator*() const& noexcept { return *p_; }
  T* operator->() noexcept { return p_.get(); }
  const T* operator->() const noexcept { return p_.get(); }
  T& value() & {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  const T& value() const& {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  template <class... Args>
  T& emplace(Args&&... args) {
    p_ = std::make_unique<T>(std::forward<Args>(args)...);
    return *p_;
  }
  void reset() noexcept { p_.reset(); }

  friend bool operator==(const Box& a, const Box& b) {
    if (!a.p_ || !b.p_) return !a.p_ && !b.p_;
    return *a.p_ == *b.p_;
  }
  friend bool operator==(const Box& a, std::nullopt_t) noexcept { return !a.p_; }

 private:
  std::unique_ptr<T> p_;
};

}  // namespace sage

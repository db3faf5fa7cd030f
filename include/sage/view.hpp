// sage/view.hpp: zero-copy views of wire messages, the types a generated `T::View` returns.
//
//   bool handle(const game::EntityUpdate::View& m) {    // read in place, nothing decoded
//     float x = m.position().x;                         // structs are copied out (a few bytes)
//     std::string_view name = m.name();                 // strings point into the buffer
//     for (float d : m.damage()) total += d;            // vectors of scalars: VectorView<float>
//     game::EntityUpdate owned = m.to_value();          // the owning value, when one is needed
//   }
//
// Contract:
//  - Lifetime. A view points into a buffer it does not own. A view handed to a handler
//    (`handle(const T::View&)`, sage/actor.hpp) is valid for the duration of that call only; so is
//    every string_view, VectorView, UnionView and nested View read from it. Keep a copy with
//    to_value() (or std::string(...)) to use the data later. A View built by hand from bytes
//    (T::View(bytes)) is valid while those bytes are alive and unchanged.
//  - Misuse is hard: Views are neither copyable nor movable (they cannot be stored in containers
//    or members, captured by value, or returned from a handler); they live as locals and
//    references. VectorView and UnionView are small read-only handles with the same lifetime as
//    the view they came from. Coroutine handlers cannot take views (a Task outlives the call).
//  - Input. A view reads only bytes that were verified as a T (T::verify_bytes(), or the runtime's
//    check on receipt) and start on an 8-byte boundary. It never allocates and never throws.
//  - Schema evolution. A field the sender's schema lacks reads as its default (scalars, strings
//    with a default), as empty (strings, vectors), absent (optional scalars: std::nullopt; tables:
//    a View whose operator bool is false and whose fields read as defaults) or none (unions). Fields
//    the reader's schema lacks are not looked at. Deprecated fields have no accessor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "sage/detail/generated.hpp"

namespace sage {

namespace detail {

// How one element of a FlatBuffers vector is read: its stride and a read(p) giving the value.
template <class T>
struct ScalarElement {
  using value_type = T;
  static constexpr std::size_t stride = sizeof(wire_scalar_t<T>);
  static T read(const std::uint8_t* p) noexcept { return load<T>(p); }
};
struct StringElement {
  using value_type = std::string_view;
  static constexpr std::size_t stride = sizeof(flatbuffers::uoffset_t);
  static std::string_view read(const std::uint8_t* p) noexcept {
    const auto* s = reinterpret_cast<const flatbuffers::String*>(p + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(p));
    return {s->c_str(), s->size()};
  }
};
template <class S>
struct StructElement {
  using value_type = S;
  static constexpr std::size_t stride = sizeof(typename S::Layout);
  static S read(const std::uint8_t* p) noexcept { return S::from_layout(p); }
};
template <class V>
struct TableElement {
  using value_type = V;
  static constexpr std::size_t stride = sizeof(flatbuffers::uoffset_t);
  static V read(const std::uint8_t* p) noexcept {
    return V(*reinterpret_cast<const flatbuffers::Table*>(p + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(p)));
  }
};

// The Element of a vector whose elements read as T: string_view, a struct (T::Layout), a table's
// View (constructible from a flatbuffers::Table), else a scalar, bool or enum.
template <class T>
struct vector_element {
  using type = ScalarElement<T>;
};
template <>
struct vector_element<std::string_view> {
  using type = StringElement;
};
template <class T>
  requires requires { typename T::Layout; }
struct vector_element<T> {
  using type = StructElement<T>;
};
template <class T>
  requires std::is_constructible_v<T, const flatbuffers::Table&>
struct vector_element<T> {
  using type = TableElement<T>;
};

// A table with no fields, which absent sub-tables are read as: every field reads as its default.
// A vtable of 4 bytes (vtable size 4, table size 4) followed by the table (soffset 4 to the vtable).
alignas(8) inline constexpr std::uint8_t empty_table_bytes[8] = {4, 0, 4, 0, 4, 0, 0, 0};
inline const flatbuffers::Table& empty_table() noexcept {
  return *reinterpret_cast<const flatbuffers::Table*>(empty_table_bytes + 4);
}

// The table at `field` of `t`, or the empty table.
inline const flatbuffers::Table& sub_table(const flatbuffers::Table& t, flatbuffers::voffset_t field) noexcept {
  const auto* sub = t.GetPointer<const flatbuffers::Table*>(field);
  return sub != nullptr ? *sub : empty_table();
}

inline const std::uint8_t* vector_data(const flatbuffers::Table& t, flatbuffers::voffset_t field, flatbuffers::uoffset_t& size) noexcept {
  const auto* vec = t.GetPointer<const flatbuffers::Vector<std::uint8_t>*>(field);
  size = vec != nullptr ? vec->size() : 0;
  return vec != nullptr ? vec->Data() : nullptr;
}

// The root table of `bytes` if they are a finished FlatBuffer whose root is a T, checked in place
// (they must start on an 8-byte boundary: a view reads them where they are); nullptr otherwise.
// The fast path of verify_in_place(), which says why.
template <class T>
const flatbuffers::Table* verified_root(std::span<const std::byte> bytes) noexcept {
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(std::uint64_t) != 0 || bytes.size() < min_buffer_size ||
      bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return nullptr;
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size(), wire::max_message_depth, wire::max_message_tables);
  const auto root = verifier.VerifyOffset(0);
  if (root == 0) return nullptr;
  const auto* table = reinterpret_cast<const flatbuffers::Table*>(data + root);
  return T::verify(verifier, *table) ? table : nullptr;
}

// verified_root(), with an Error saying what is wrong with the bytes.
template <class T>
Result<const flatbuffers::Table*> verify_in_place(std::span<const std::byte> bytes) {
  if (const auto* table = verified_root<T>(bytes)) [[likely]]
    return table;
  const auto name = [] { return std::string(T::message_name); };
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(std::uint64_t) != 0)
    return Error{Errc::misaligned, name() + ": a view needs bytes that start on an 8-byte boundary"};
  if (bytes.size() < min_buffer_size)
    return Error{Errc::truncated, name() + ": " + std::to_string(bytes.size()) + " bytes, a FlatBuffer has at least " +
                                      std::to_string(min_buffer_size)};
  if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return Error{Errc::too_large, name() + ": " + std::to_string(bytes.size()) + " bytes"};
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size(), wire::max_message_depth, wire::max_message_tables);
  const auto root = verifier.VerifyOffset(0);
  if (root == 0)
    return Error{Errc::verify_failed, name() + ": root offset points outside the " + std::to_string(bytes.size()) +
                                          " bytes (truncated or not a FlatBuffer)"};
  const auto* table = reinterpret_cast<const flatbuffers::Table*>(data + root);
  if (!T::verify(verifier, *table))
    return Error{Errc::verify_failed, "the " + std::to_string(bytes.size()) + " bytes are not a valid " + name() +
                                          " (truncated, corrupt, another message type" +
                                          (may_nest_too_deep<T>() ? ", or nested deeper than " +
                                                                        std::to_string(wire::max_message_depth) + " tables"
                                                                  : std::string()) +
                                          ")"};
  return table;
}

// The root table of verified bytes.
inline const flatbuffers::Table& root_table(std::span<const std::byte> verified) noexcept {
  const auto* data = reinterpret_cast<const std::uint8_t*>(verified.data());
  return *reinterpret_cast<const flatbuffers::Table*>(data + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(data));
}

}  // namespace detail

// A read-only, random-access view of a FlatBuffers vector, span-like: of scalars, bools and enums
// (VectorView<float>), strings (VectorView<std::string_view>), structs (VectorView<Vec3>, each
// copied out when read) or tables (VectorView<Item::View>). Elements are returned by value; size()
// is 0 for an absent vector. Valid as long as the View it came from.
template <class T>
class VectorView {
  using Element = typename detail::vector_element<T>::type;

 public:
  using value_type = typename Element::value_type;
  using size_type = std::size_t;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = typename Element::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    value_type operator*() const noexcept { return Element::read(p_); }
    iterator& operator++() noexcept {
      p_ += Element::stride;
      return *this;
    }
    iterator operator++(int) noexcept {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    friend class VectorView;
    explicit iterator(const std::uint8_t* p) noexcept : p_(p) {}
    const std::uint8_t* p_ = nullptr;
  };

  VectorView() = default;
  VectorView(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  // Precondition: i < size().
  value_type operator[](std::size_t i) const noexcept { return Element::read(data_ + i * Element::stride); }
  iterator begin() const noexcept { return iterator(data_); }
  iterator end() const noexcept { return iterator(data_ + size_ * Element::stride); }
  // The elements as owning values (for table elements, each one's to_value()).
  auto to_vector() const {
    if constexpr (requires(const value_type& v) { v.to_value(); }) {
      std::vector<decltype(std::declval<const value_type&>().to_value())> out;
      out.reserve(size_);
      for (std::size_t i = 0; i < size_; ++i) out.push_back((*this)[i].to_value());
      return out;
    } else {
      std::vector<std::conditional_t<std::is_same_v<value_type, std::string_view>, std::string, value_type>> out;
      out.reserve(size_);
      for (std::size_t i = 0; i < size_; ++i) out.emplace_back((*this)[i]);
      return out;
    }
  }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// A view of one union value: none, or one of the union's tables, read in place. V is the schema
// union (std::variant<std::monostate, A, B, ...>), Tags the wire tags of A, B, ...
//   if (m.shape().holds<Circle>()) radius = m.shape().get<Circle>().radius();
//   m.shape().visit([](const auto& alt) { ... });  // std::monostate, or A::View, B::View, ...
template <class V, std::uint8_t... Tags>
class UnionView {
 public:
  UnionView() = default;
  UnionView(std::uint8_t tag, const flatbuffers::Table* value) noexcept
      : tag_(value != nullptr ? tag : 0), value_(value) {}

  // The wire type tag (0 = none).
  std::uint8_t tag() const noexcept { return tag_; }
  // The variant index of the alternative held (0 = none), as V::index() of to_value() would be.
  std::size_t index() const noexcept {
    constexpr std::uint8_t tags[] = {0, Tags...};
    for (std::size_t i = 1; i < sizeof tags; ++i)
      if (tags[i] == tag_) return i;
    return 0;
  }
  bool empty() const noexcept { return tag_ == 0; }
  // Whether it holds table A (one of the union's tables).
  template <class A>
  bool holds() const noexcept {
    return tag_ != 0 && index() == index_of<A>();
  }
  // A's view; when it holds another table (or none), a view of an absent A (false, defaults): the
  // bytes of one table are never read as another.
  template <class A>
  typename A::View get() const noexcept {
    return typename A::View(holds<A>() ? *value_ : detail::empty_table());
  }
  // f(std::monostate{}) for none, else f(A::View) for the table held; returns what f returns.
  template <class F>
  decltype(auto) visit(F&& f) const {
    return visit_from<1>(std::forward<F>(f));
  }
  V to_value() const { return detail::read_union_value<V, Tags...>(tag_, value_); }

 private:
  template <class A>
  static constexpr std::size_t index_of() noexcept {
    return []<std::size_t... I>(std::index_sequence<I...>) {
      std::size_t found = 0;
      ((std::is_same_v<detail::unboxed_t<std::variant_alternative_t<I + 1, V>>, A> ? (found = I + 1) : 0), ...);
      return found;
    }(std::make_index_sequence<sizeof...(Tags)>{});
  }
  template <std::size_t I, class F>
  decltype(auto) visit_from(F&& f) const {
    if constexpr (I > sizeof...(Tags)) {
      return f(std::monostate{});
    } else {
      using A = detail::unboxed_t<std::variant_alternative_t<I, V>>;
      if (tag_ != 0 && index() == I) return f(typename A::View(*value_));
      return visit_from<I + 1>(std::forward<F>(f));
    }
  }

  std::uint8_t tag_ = 0;
  const flatbuffers::Table* value_ = nullptr;
};

// A vector of unions: element i is a UnionView.
template <class V, std::uint8_t... Tags>
class UnionVectorView {
 public:
  using value_type = UnionView<V, Tags...>;
  UnionVectorView() = default;
  UnionVectorView(const flatbuffers::Vector<std::uint8_t>* types,
                  const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>* values) noexcept
      : types_(types), values_(values) {}

  std::size_t size() const noexcept { return types_ != nullptr && values_ != nullptr ? types_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  value_type operator[](std::size_t i) const noexcept {
    const auto tag = types_->Get(static_cast<flatbuffers::uoffset_t>(i));
    return value_type(tag, tag == 0 ? nullptr : values_->Get(static_cast<flatbuffers::uoffset_t>(i)));
  }
  std::vector<V> to_vector() const {
    std::vector<V> out;
    out.reserve(size());
    for (std::size_t i = 0; i < size(); ++i) out.push_back((*this)[i].to_value());
    return out;
  }

 private:
  const flatbuffers::Vector<std::uint8_t>* types_ = nullptr;
  const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>* values_ = nullptr;
};

}  // namespace sage

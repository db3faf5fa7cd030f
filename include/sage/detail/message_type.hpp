// sage/detail/message_type.hpp: run-time identity of message types, without a registry.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>

#include "sage/message.hpp"

namespace sage::detail {

// The wire bytes of one message of type T in an 8-aligned buffer the queued record owns: what
// handle(const T::View&) handlers read (sage/actor.hpp). Queued under its own MessageType, next to
// (or instead of) the decoded T; never seen by wildcard observers.
template <class T>
struct Encoded {
  std::unique_ptr<std::uint64_t[]> words;
  std::size_t size = 0;

  static Encoded copy_of(std::span<const std::byte> bytes) {
    Encoded e;
    e.size = bytes.size();
    e.words.reset(new std::uint64_t[(bytes.size() + 7) / 8]);
    if (!bytes.empty()) std::memcpy(e.words.get(), bytes.data(), bytes.size());
    return e;
  }
  // `msg` encoded once (a builder reused per thread; it lets go of buffers over 1 MiB, so one big
  // message does not stay resident).
  static Encoded of(const T& msg) {
    thread_local flatbuffers::FlatBufferBuilder fbb;
    fbb.Clear();
    msg.encode(fbb);
    Encoded e = copy_of({reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()});
    if (fbb.GetSize() > (std::size_t{1} << 20)) fbb.Reset();
    return e;
  }
  std::span<const std::byte> bytes() const noexcept { return {reinterpret_cast<const std::byte*>(words.get()), size}; }
};

// A generated wire message, which has a zero-copy View (sage/view.hpp).
template <class T>
concept Viewable = requires(flatbuffers::Verifier& v, const flatbuffers::Table& t) {
  typename T::View;
  { T::verify(v, t) } -> std::same_as<bool>;
  { T::unpack(t) } -> std::same_as<T>;
};

template <class T>
inline constexpr bool is_encoded_v = false;
template <class T>
inline constexpr bool is_encoded_v<Encoded<T>> = true;

// What the runtime knows about one message type. There is one constant-initialised object per type
// (message_type_v<T>); its address is the type's identity in this process.
struct MessageType {
  std::string_view name;            // name_of<T>()
  std::uint32_t size;               // sizeof(T)
  std::uint32_t align;              // alignof(T)
  void (*destroy)(void*) noexcept;  // runs ~T(); nullptr when T is trivially destructible
  bool schema;                      // T was generated from a schema (has message_name)
  bool encoded;                     // T is Encoded<U>: the bytes View handlers of U read
  // Dense index (1, 2, ...) managers use to find the type's subscribers in a flat vector; 0 until
  // the type is first used. Assigned once per process by assign_type_index().
  mutable std::atomic<std::uint32_t> index{0};
};

template <class T>
void destroy_as(void* p) noexcept {
  static_cast<T*>(p)->~T();
}

template <class T>
inline constinit MessageType message_type_v{name_of<T>(), static_cast<std::uint32_t>(sizeof(T)),
                                            static_cast<std::uint32_t>(alignof(T)),
                                            std::is_trivially_destructible_v<T> ? nullptr : &destroy_as<T>,
                                            HasMessageName<T>, is_encoded_v<T>};

// Any thread; gives `type` the next free index unless it has one, and returns its index.
std::uint32_t assign_type_index(const MessageType& type) noexcept;

// Any thread; the dense index of `type`, never 0.
inline std::uint32_t type_index(const MessageType& type) noexcept {
  const std::uint32_t i = type.index.load(std::memory_order_acquire);
  return i != 0 ? i : assign_type_index(type);
}

}  // namespace sage::detail

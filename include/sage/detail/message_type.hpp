// sage/detail/message_type.hpp: run-time identity of message types, without a registry.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "sage/message.hpp"

namespace sage::detail {

// What the runtime knows about one message type. There is one constant-initialised object per type
// (message_type_v<T>); its address is the type's identity in this process.
struct MessageType {
  std::string_view name;            // name_of<T>()
  std::uint32_t size;               // sizeof(T)
  std::uint32_t align;              // alignof(T)
  void (*destroy)(void*) noexcept;  // runs ~T(); nullptr when T is trivially destructible
  bool schema;                      // T was generated from a schema (has message_name)
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
                                            HasMessageName<T>};

// Any thread; gives `type` the next free index unless it has one, and returns its index.
std::uint32_t assign_type_index(const MessageType& type) noexcept;

// Any thread; the dense index of `type`, never 0.
inline std::uint32_t type_index(const MessageType& type) noexcept {
  const std::uint32_t i = type.index.load(std::memory_order_acquire);
  return i != 0 ? i : assign_type_index(type);
}

}  // namespace sage::detail

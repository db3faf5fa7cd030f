// sage/actor_id.hpp: the id of an actor, unique in its process.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace sage {

// A 64-bit value naming one registered actor: bits 63..48 are the index of the group the actor
// lives in (0 = this process's main group), bits 47..0 a serial that is never reused in a process.
// ActorId{} (0) names no actor. Value type: copy, compare and hash it freely.
class ActorId {
 public:
  static constexpr unsigned group_shift = 48;
  static constexpr std::uint64_t serial_mask = (std::uint64_t{1} << group_shift) - 1;

  constexpr ActorId() noexcept = default;
  constexpr explicit ActorId(std::uint64_t value) noexcept : value_(value) {}
  static constexpr ActorId make(std::uint16_t group, std::uint64_t serial) noexcept {
    return ActorId((std::uint64_t{group} << group_shift) | (serial & serial_mask));
  }

  constexpr std::uint64_t value() const noexcept { return value_; }
  constexpr std::uint16_t group() const noexcept { return static_cast<std::uint16_t>(value_ >> group_shift); }
  constexpr std::uint64_t serial() const noexcept { return value_ & serial_mask; }
  constexpr explicit operator bool() const noexcept { return value_ != 0; }

  friend constexpr auto operator<=>(const ActorId&, const ActorId&) noexcept = default;

 private:
  std::uint64_t value_ = 0;
};

}  // namespace sage

template <>
struct std::hash<sage::ActorId> {
  std::size_t operator()(const sage::ActorId& id) const noexcept { return std::hash<std::uint64_t>{}(id.value()); }
};

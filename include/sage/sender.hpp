// sage/sender.hpp: where a message came from.
#pragma once

#include <cstdint>

namespace sage {

// A trivially copyable value telling where a delivered message came from: this process (local),
// a group of this application (group, index = group index) or a network peer (peer, index = the
// transport's peer index). Messages queued or triggered in this process carry Sender::local().
struct Sender {
  enum class Kind : std::uint8_t { local = 0, group = 1, peer = 2 };

  Kind kind = Kind::local;
  std::uint32_t index = 0;

  static constexpr Sender local() noexcept { return {}; }
  static constexpr Sender group(std::uint32_t group_index) noexcept { return {Kind::group, group_index}; }
  static constexpr Sender peer(std::uint32_t peer_index) noexcept { return {Kind::peer, peer_index}; }

  constexpr bool is_local() const noexcept { return kind == Kind::local; }
  friend constexpr bool operator==(const Sender&, const Sender&) noexcept = default;
};

static_assert(sizeof(Sender) == 8);

}  // namespace sage

// sage/sender.hpp: where a message came from.
#pragma once

#include <cstdint>

namespace sage {

// A trivially copyable value telling where a delivered message came from: this process (local),
// a group of this application (group, index = group index) or a network peer (peer, index = the
// transport's peer index). Messages queued or triggered in this process carry Sender::local().
//
// `generation` tells the incarnations of one process group apart (docs/groups.md "Incarnations"):
// in the main group, a group's first process sends with generation 0 and each restart by its
// RestartPolicy adds one (modulo 2^16), so the Sender of a restarted group's messages differs
// from its predecessor's, and a reply addressed to the dead incarnation's Sender is refused
// (send_error, peer_gone) rather than reaching the new process. Every other Sender has generation 0.
struct Sender {
  enum class Kind : std::uint8_t { local = 0, group = 1, peer = 2 };

  Kind kind = Kind::local;
  std::uint8_t reserved = 0;  // always 0 (keeps the layout explicit)
  std::uint16_t generation = 0;
  std::uint32_t index = 0;

  constexpr Sender() noexcept = default;
  constexpr Sender(Kind k, std::uint32_t i, std::uint16_t g = 0) noexcept : kind(k), generation(g), index(i) {}

  static constexpr Sender local() noexcept { return {}; }
  static constexpr Sender group(std::uint32_t group_index, std::uint16_t generation = 0) noexcept {
    return {Kind::group, group_index, generation};
  }
  static constexpr Sender peer(std::uint32_t peer_index) noexcept { return {Kind::peer, peer_index}; }

  constexpr bool is_local() const noexcept { return kind == Kind::local; }
  friend constexpr bool operator==(const Sender&, const Sender&) noexcept = default;
};

static_assert(sizeof(Sender) == 8);

}  // namespace sage

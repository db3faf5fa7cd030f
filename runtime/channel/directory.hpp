// runtime/channel/directory.hpp: where every group lives and how every wire type decodes.
//
// One Directory per Manager, owned by it. It is the only place that maps group names to routes
// (this process, a child process, a remote group node, or "through the main group") and to
// Sender::group indices, and the only codec table (packet_type -> WireCodec). Lifecycle owners
// (runtime/groups, runtime/network) register routes as their channels come and go; channels look
// routes up to relay and codecs up to decode. Pumps never call each other.
// Threads: the manager's thread only. Resource type (not copyable).
#pragma once

#include <array>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "channel/protocol.hpp"
#include "sage/detail/wire_codec.hpp"
#include "sage/sender.hpp"

namespace sage::detail {

class Channel;

// Where a group is reached from this manager.
struct Route {
  enum class Kind : std::uint8_t {
    none,   // unknown group
    self,   // this manager's own group
    child,  // main group: a child process (runtime/groups)
    node,   // main group: a remote group node connected over TCP (runtime/network)
    uplink, // a child or node: every other group is reached through the main group, which relays
  };
  Kind kind = Kind::none;
  Channel* channel = nullptr;  // the channel to use (child, node, uplink); nullptr for self and none
};

class Directory {
 public:
  Directory();
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  // ---- codecs ----
  // Registers a wire type once (the same type again is a no-op). Throws packet_type_conflict if
  // another type already has its packet_type.
  void register_codec(const WireCodec& codec);
  // The codec of `packet_type`, or nullptr.
  const WireCodec* codec(std::uint8_t packet_type) const noexcept {
    return codecs_[packet_type].decode ? &codecs_[packet_type] : nullptr;
  }
  // Every registered codec, by packet_type.
  std::vector<WireCodec> codecs() const;
  // This manager's hello: its codec table, `name` and pid. `describe` (network): only the types
  // with a schema_description, and their combined description (cached until a type is added).
  protocol::Hello hello(std::string_view name, bool describe = false) const;
  // The announce of the described types not in `told` (then added to it); nullopt if none.
  std::optional<protocol::Announce> announce(std::array<bool, 256>& told) const;
  // Bumped by every new codec: a channel compares it to know whether it has something to announce.
  std::uint64_t generation() const noexcept { return generation_; }

  // ---- groups ----
  // This manager's own group: main_group (index 0) by default; a child's name and index.
  void set_self(std::string_view name, std::uint32_t index);
  std::string_view self_name() const noexcept { return names_[self_index_].name; }
  std::uint32_t self_index() const noexcept { return self_index_; }
  // Main group: a new Sender index for a group that starts now (never reused while it lives);
  // its route follows with set_route() once its channel exists.
  std::uint32_t add_group(std::string_view name);
  void set_route(std::uint32_t index, Route route) noexcept;
  // Forgets group `name`: its route, and its index (a later group of that name gets a new one).
  // The index keeps naming the group (name_of), marked gone, so that a reply to it says which
  // group is gone.
  void remove_group(std::string_view name) noexcept;
  // Main group: the incarnation of the group at `index` now (a restart adds one; Sender::generation).
  void set_generation(std::uint32_t index, std::uint16_t generation) noexcept;
  // What a group Sender names now: a live group's current incarnation, an earlier incarnation of
  // it (restarted since), a group that is gone (removed, failed for good, its node lost), or nothing.
  enum class SenderState : std::uint8_t { none, current, earlier_incarnation, gone };
  SenderState state_of(Sender sender) const noexcept;
  // The Sender of the group at `index` now (its current generation).
  Sender current_sender(std::uint32_t index) const noexcept;
  // The index of `name`, assigned on first use (a child learns other groups as relayed records arrive).
  Sender sender_of(std::string_view name);
  // The group a Sender names ("" if none).
  std::string_view name_of(Sender sender) const noexcept;
  // Child / node: the channel to the main group (nullptr: none).
  void set_uplink(Channel* uplink) noexcept { uplink_ = uplink; }
  Channel* uplink() const noexcept { return uplink_; }
  // Where `name` is reached: self, a registered child or node, else the uplink (the link to the main group) if there is one.
  Route route(std::string_view name) const noexcept;
  // Groups registered with a route of `kind`, in the order they were added.
  std::vector<std::string> groups(Route::Kind kind) const;

 private:
  struct Group {
    std::string name;  // "" = free slot
    Route route;
    std::uint16_t generation = 0;  // the incarnation running now
    bool gone = false;             // removed: the index names it, nothing reaches it
  };
  // The combined "sage-schema 1" text of the described codecs in `types` ("" if none or on a conflict).
  std::string describe(const std::array<bool, 256>& types) const;

  std::array<WireCodec, 256> codecs_{};
  std::uint64_t generation_ = 0;
  mutable std::uint64_t described_generation_ = ~std::uint64_t{0};
  mutable std::string described_;
  std::vector<Group> names_;  // names_[i] is the group with Sender::group(i)
  std::uint32_t self_index_ = 0;
  Channel* uplink_ = nullptr;
};

}  // namespace sage::detail

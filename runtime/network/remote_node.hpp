// runtime/network/remote_node.hpp: a remote group node's link to its main group
// (docs/network.md "Remote groups"; sage/remote_group.hpp).
//
// The node dials the main group's listener as a main_group peer of its PeerPump; its hello is
// followed by join_group(name). Its state:
//   none --join()--> joining --join_ack--> joined --bye--> bye_received (answer_bye())
//   joining/joined --the link is lost--> lost (main_lost() says why)
// While joining or joined, the Directory's uplink is this link: every record for another group
// goes there, tagged with its destination. Every member on the manager's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "network/peer_pump.hpp"

namespace sage::detail {

class RemoteNode {
 public:
  enum class State : std::uint8_t { none, joining, joined, bye_received, lost };

  explicit RemoteNode(PeerPump& pump) : pump_(pump) {}

  // Connects to the main group's listener and registers as group `name`; blocks until the main
  // group accepted (it must be ticking) or refused. Throws network_error, usage_error (already
  // joined, a bad name).
  void join(std::string_view host, std::uint16_t port, std::string_view name);
  const std::string& name() const noexcept { return name_; }
  // The main group said bye (it ended on purpose).
  bool bye_received() const noexcept { return state_ == State::bye_received; }
  // The link to the main group was lost, and why.
  std::optional<std::string> main_lost() const {
    return state_ == State::lost ? std::optional<std::string>(lost_) : std::nullopt;
  }
  // After bye_received(): answers bye_ack and waits (bounded by heartbeat_timeout) for the main
  // group to close the link.
  void answer_bye();

  // The pump's events for the main_group peer: join_ack and bye; the link is gone.
  Verdict on_control(PeerPump::Peer& p, protocol::Control control);
  void on_lost(const Error& why);
  // The pump shuts down: the uplink goes.
  void shutdown();

 private:
  PeerPump& pump_;
  State state_ = State::none;
  std::string name_;
  std::string lost_;
  std::uint32_t index_ = 0;  // the main_group peer
};

}  // namespace sage::detail

// runtime/network/net_pump.hpp: a manager's TCP and TLS peers and its remote groups
// (docs/network.md): the one peer lifecycle (peer_pump.hpp) over the stream transport, plus what
// only streams carry: remote groups. On the main group's side, an incoming peer that sends
// join_group becomes the remote group `name` (its channel is registered in the Directory as the
// group's route, tagged as the hub's end); remove_group() says bye and waits for bye_ack. On the
// node's side, RemoteNode (remote_node.hpp) owns the link to the main group.
// Every member runs on the manager's thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "network/peer_pump.hpp"
#include "network/remote_node.hpp"
#include "sage/groups.hpp"

namespace sage::detail {

class NetPump final : public PeerPump {
 public:
  NetPump(Manager& manager, const NetworkOptions& options);
  // Says goodbye to every peer (close, or bye to remote groups), waits up to a second for the
  // bytes to leave, then closes everything.
  ~NetPump() override;

  // The one connect()ed server (send_message without a peer). Throws no_server.
  Sender server() const;
  Result<void> queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload) {
    return PeerPump::queue_record(peer, codec, payload, Delivery{});  // a stream is always reliable
  }
  std::size_t broadcast_record(const WireCodec& codec, std::span<const std::byte> payload) {
    return PeerPump::broadcast_record(codec, payload, Delivery{});
  }
  NetworkStats stats() const;

  // ---- remote groups: the main group's side ----
  std::vector<std::string> remote_groups() const;
  // Manager::remove_process_group: says bye to the node, reads until its bye_ack (queueing what it
  // sent), closes. Throws no_such_group; group_error if it was lost or silent past
  // heartbeat_timeout (it is removed either way).
  void remove_group(std::string_view name);

  // ---- remote groups: the node's side (RemoteNode) ----
  void join_group(std::string_view host, std::uint16_t port, std::string_view name) { node_.join(host, port, name); }
  std::string_view joined_group() const noexcept { return node_.name(); }
  bool bye_received() const noexcept { return node_.bye_received(); }
  std::optional<std::string> main_lost() const { return node_.main_lost(); }
  void answer_bye() { node_.answer_bye(); }

  // A remote group lost since the last poll is queued as a group_error behind what its node sent
  // (ManagerAccess::report_failure): the tick that reaches it throws it.
  void poll(Manager& manager) override;

 private:
  Verdict on_role_control(Peer& p, protocol::Control control, std::span<const std::byte> payload) override;
  void on_role_lost(Peer& p, const Error& why) override;
  void goodbye(Peer& p) override;
  Verdict join(Peer& p, std::span<const std::byte> payload);

  NetworkOptions options_;
  RemoteNode node_;
  std::vector<group_error> failures_;  // remote groups lost, queued by poll()
};

}  // namespace sage::detail

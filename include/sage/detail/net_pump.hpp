// sage/detail/net_pump.hpp: the Pump behind a manager's network API (internal; runtime/network).
//
// One NetPump per manager that uses the network (Manager::enable_network). It owns the listener,
// one StreamConn per peer, the per-peer batches and the handshake/heartbeat logic. Every member
// runs on the manager's thread; nng's threads only fill the connections' inboxes and wake the
// Waker. docs/network.md describes the behaviour, docs/wire-format.md the bytes.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "sage/detail/protocol.hpp"
#include "sage/detail/pump.hpp"
#include "sage/detail/stream.hpp"
#include "sage/groups.hpp"
#include "sage/network.hpp"

namespace sage::detail {

// Control packets of the network protocol, next to the group protocol's (sage/detail/protocol.hpp:
// hello = 1 and error = 6 are reused over TCP, bye = 4 is what the main group sends a remote group).
enum class NetControl : std::uint8_t {
  heartbeat = 32,   // nothing to say; proves the sender is alive. Empty payload.
  close = 33,       // the sender closes this connection on purpose; payload: reason text (UTF-8)
  join_group = 34,  // node -> main: host the group named in the payload (u16 length + name)
  join_ack = 35,    // main -> node: the group is registered; empty payload
};

class NetPump final : public Pump {
 public:
  explicit NetPump(const NetworkOptions& options);
  // Says goodbye to every peer (close, or bye to remote groups), waits up to a second for the
  // bytes to leave, then closes everything.
  ~NetPump() override;

  const NetworkOptions& options() const noexcept { return options_; }
  void register_codec(const WireCodec& codec);

  // Throws network_error, usage_error (already listening).
  Endpoint listen(std::string_view host, std::uint16_t port);
  const std::optional<Endpoint>& listening() const noexcept { return endpoint_; }
  // Dials and sends our hello; returns as soon as the connection is up (the handshake completes
  // in later polls: PeerConnected). Throws network_error.
  Sender connect(std::string_view host, std::uint16_t port);
  // Sends `close` and drops the peer after its queued bytes left (at most a second later).
  void disconnect(Sender peer);
  void disconnect_outgoing();
  Sender server() const;

  flatbuffers::FlatBufferBuilder& builder() noexcept { return builder_; }
  Result<void> queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload);
  // Queues for every connected peer; returns how many accepted it. Throws send_error (too_large).
  std::size_t broadcast_record(const WireCodec& codec, std::span<const std::byte> payload);
  // Sends raw bytes as one frame to a peer (tests and tools: garbage must be survived).
  Result<void> send_raw_frame(Sender peer, std::span<const std::byte> body);

  std::vector<PeerInfo> peers() const;
  const NetworkStats& stats() const noexcept { return stats_; }

  // ---- remote groups ----
  // Node side: connects to the main group's listener and registers as group `name`; blocks until
  // the main group accepted (it must be ticking) or refused. Throws network_error.
  void join_group(Manager& manager, std::string_view host, std::uint16_t port, std::string_view name);
  std::string_view joined_group() const noexcept { return joined_; }
  // Node side: the main group said bye (ended on purpose), or the connection to it is lost (why).
  bool bye_received() const noexcept { return bye_received_; }
  std::optional<std::string> main_lost() const { return main_lost_; }
  // Whether queue_message_to_group(name) goes through this pump.
  bool routes_group(std::string_view name) const;
  Result<void> queue_group_record(std::string_view group, const WireCodec& codec, std::span<const std::byte> payload);
  std::string_view group_name_of(Sender sender) const;
  std::vector<std::string> remote_groups() const;
  // Main side: appends a record relayed from group `origin` (a local child or another node) to
  // remote group `to`, tagged with a `from` record. peer_gone if `to` is not connected.
  Result<void> relay_record(std::string_view to, std::uint8_t packet_type, std::span<const std::byte> payload,
                            std::string_view origin);
  // Main side (Manager::remove_process_group): says bye to the node, reads until its bye_ack
  // (queueing what it sent), closes. Throws no_such_group; group_error if it was lost or silent
  // past heartbeat_timeout (it is removed either way).
  void remove_group(Manager& manager, std::string_view name);
  // Node side, after bye_received(): answers bye_ack and waits (bounded by heartbeat_timeout) for
  // the main group to close the connection.
  void answer_bye();

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  bool wait_until(std::chrono::steady_clock::time_point deadline) override;

 private:
  struct Peer;
  Peer* find(Sender s) const;
  Peer& add_peer(std::unique_ptr<StreamConn> conn, bool outgoing);
  void start_connection(Peer& p);
  // tag: the destination (node side) or origin (main side) of the record; "" = the main group.
  Result<void> append(Peer& p, std::uint8_t packet_type, std::span<const std::byte> payload,
                      std::string_view tag = {});
  void relay(Manager& manager, Peer& from, const std::string& to, const wire::Record& rec);
  Sender node_sender_of(std::string_view name);
  void append_control(Peer& p, std::uint8_t c, std::span<const std::byte> payload = {});
  Result<void> push_batch(Peer& p);
  void receive_from(Manager& manager, Peer& p);
  // Handles one frame; returns why the peer must be dropped (and whether that is bad input).
  std::optional<std::pair<Error, bool>> handle_frame(Manager& manager, Peer& p, std::span<const std::byte> body);
  void refuse(Peer& p, Error why);
  void drop(Manager& manager, Peer& p, Error why, bool bad);
  void announce(Manager& manager, Peer& p);
  void overflow(Peer& p, const Error& e);
  void service_reconnect(Peer& p);
  protocol::Hello my_hello() const;
  StreamOptions stream_options() const;
  TlsSettings tls_settings(bool dialing, std::string_view host) const;

  NetworkOptions options_;
  std::shared_ptr<Waker> waker_ = std::make_shared<Waker>();
  std::unique_ptr<StreamListener> listener_;
  std::optional<Endpoint> endpoint_;
  std::map<std::uint32_t, std::unique_ptr<Peer>> peers_;  // by Sender::peer index, never reused
  std::uint32_t next_index_ = 1;
  std::vector<WireCodec> codecs_;  // indexed by packet_type
  flatbuffers::FlatBufferBuilder builder_{1024};
  NetworkStats stats_;
  std::vector<group_error> failures_;  // remote groups lost, thrown by poll()
  std::vector<std::string> group_names_{std::string(main_group)};  // own indices when groups are off
  // node side
  std::string joined_;
  std::vector<std::string> node_names_{std::string(main_group)};  // Sender::group(i) in the node
  bool join_acked_ = false;
  bool bye_received_ = false;
  std::optional<std::string> main_lost_;
};

// The loop of a remote group node (sage/remote_group.hpp).
int run_remote_group_loop(Manager& manager, ActorFactory factory, std::string_view host, std::uint16_t port,
                          std::string_view name, std::chrono::milliseconds interval);

}  // namespace sage::detail

// runtime/network/net_pump.hpp: a manager's network: listen, dial, accept, reconnect, heartbeats,
// remote groups (docs/network.md).
//
// One NetPump per manager that uses the network. It is a lifecycle owner only: each connection is
// a Connection (runtime/transport: a SocketConn made by TcpListener/TcpDialer for tcp://, a
// StreamConn over nng for tls+tcp://) wrapped in a Channel (runtime/channel: hello, batching, relay,
// decode); a remote group node's channel is registered in the Directory as that group's route.
// Every member runs on the manager's thread.
//
// A peer's role (Peer::Role) is fixed when it appears: client (we connect()ed), incoming (accepted;
// becomes remote_group when it sends join_group), main_group (a node's connection to its main group).
// Its lifecycle (Peer::State):
//   handshaking --their hello accepted--> connected (PeerConnected; a remote group is registered)
//   handshaking/connected --disconnect(), refused hello, overflow policy--> lingering
//   lingering --queued bytes left, or 1 s--> dropped
//   handshaking/connected --lost, timeout, bad input--> dropped, or reconnecting (client with
//     ReconnectPolicy) --dialed--> handshaking
// Dropped peers leave the table (PeerDisconnected if they were connected).
// Timers: heartbeats go out in rounds, one shared timer for all peers (every heartbeat_interval, to
// each peer that was sent nothing since the last round); reconnect attempts and lingering closes
// add their own deadlines. next_deadline() is the earliest, so an idle manager sleeps until then.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "channel/channel.hpp"
#include "network/drop_log.hpp"
#include "local/pump.hpp"
#include "sage/groups.hpp"
#include "sage/network.hpp"
#include "transport/stream.hpp"
#include "transport/tcp.hpp"

namespace sage::detail {

class NetPump final : public Pump {
 public:
  NetPump(Manager& manager, const NetworkOptions& options);
  // Says goodbye to every peer (close, or bye to remote groups), waits up to a second for the
  // bytes to leave, then closes everything.
  ~NetPump() override;

  // Throws network_error (io_error: address in use, bad TLS files...), usage_error (already listening).
  Endpoint listen(std::string_view host, std::uint16_t port);
  const std::optional<Endpoint>& listening() const noexcept { return endpoint_; }
  // Dials and queues our hello; returns as soon as the connection is up (the handshake completes
  // in later polls: PeerConnected). Throws network_error.
  Sender connect(std::string_view host, std::uint16_t port);
  // Sends `close` and drops the peer after its queued bytes left (at most a second later).
  void disconnect(Sender peer);
  void disconnect_outgoing();
  Sender server() const;

  Result<void> queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload);
  // Queues for every connected peer; returns how many accepted it. Throws send_error (too_large).
  std::size_t broadcast_record(const WireCodec& codec, std::span<const std::byte> payload);

  std::vector<PeerInfo> peers() const;
  NetworkStats stats() const;

  // ---- remote groups ----
  // Node side: connects to the main group's listener and registers as group `name`; blocks until
  // the main group accepted (it must be ticking) or refused. Throws network_error.
  void join_group(std::string_view host, std::uint16_t port, std::string_view name);
  std::string_view joined_group() const noexcept { return joined_; }
  // Node side: the main group said bye (ended on purpose), or the connection to it is lost (why).
  bool bye_received() const noexcept { return bye_received_; }
  std::optional<std::string> main_lost() const { return main_lost_; }
  std::vector<std::string> remote_groups() const;
  // Main side (Manager::remove_process_group): says bye to the node, reads until its bye_ack
  // (queueing what it sent), closes. Throws no_such_group; group_error if it was lost or silent
  // past heartbeat_timeout (it is removed either way).
  void remove_group(std::string_view name);
  // Node side, after bye_received(): answers bye_ack and waits (bounded by heartbeat_timeout) for
  // the main group to close the connection.
  void answer_bye();

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  Clock::time_point next_deadline() const override;

 private:
  struct Peer;
  Peer* find(Sender s) const;
  Peer& add_peer(std::unique_ptr<Connection> conn, int role);
  void start_connection(Peer& p, std::unique_ptr<Connection> conn);
  std::unique_ptr<Dialer> make_dialer(std::string_view host, std::uint16_t port);
  std::unique_ptr<Connection> dial_blocking(std::string_view host, std::uint16_t port, std::unique_ptr<Dialer>* keep);
  void receive_from(Peer& p);
  void linger(Peer& p, Error why, bool bad);
  void linger_refused(Peer& p, Error why);
  // The handshake was refused (by us, or `by_peer`): logged, counted, PeerRefused queued, and
  // later sends to that peer fail with the reason.
  void refused(Peer& p, const Error& why, bool by_peer);
  void check_name() const;
  void drop(Peer& p, Error why, bool bad);
  void overflow(Peer& p, const Error& e);
  void service_reconnect(Peer& p);
  void log_drop(const std::string& address, const Error& why);
  ConnectionLimits limits() const;
  TlsSettings tls_settings(bool dialing, std::string_view host) const;

  Manager& manager_;
  Waker& waker_;
  Directory& directory_;
  NetworkOptions options_;
  std::unique_ptr<Listener> listener_;
  std::optional<Endpoint> endpoint_;
  std::map<std::uint32_t, std::unique_ptr<Peer>> peers_;  // by Sender::peer index, never reused
  std::uint32_t next_index_ = 1;
  ChannelCounters counters_;
  std::map<std::uint32_t, Error> refused_;  // peers whose handshake was refused, by index
  NetworkStats stats_;  // the lifecycle counters (connections, peers, timeouts, overflows)
  std::vector<group_error> failures_;  // remote groups lost, thrown by poll()
  Clock::time_point next_round_ = Clock::time_point::max();  // the shared heartbeat timer
  DropLog drop_log_;  // rate limit of log_drop()
  // node side
  std::string joined_;
  bool join_acked_ = false;
  bool bye_received_ = false;
  std::optional<std::string> main_lost_;
};

}  // namespace sage::detail

// runtime/network/peer_pump.hpp: the one lifecycle of network peers, for TCP, TLS and ENet alike
// (docs/network.md). The transport is reached only through the PeerTransport seam
// (peer_transport.hpp); TCP/TLS (NetPump, net_pump.hpp, which adds remote groups) and ENet
// (DatagramPump, datagram_pump.hpp) are this class over their transport and options.
//
// A peer's role is fixed when it appears: client (we connect()ed), incoming (accepted; becomes
// remote_group when it joins as a group, NetPump), main_group (a remote group node's link to its
// main group, RemoteNode). Its lifecycle (Peer::State):
//   dialing --transport connected--> handshaking --their hello accepted--> connected
//     (PeerConnected for clients and incoming peers)
//   handshaking/connected --disconnect(), refused hello, overflow policy--> lingering
//   lingering --what it queued left (drained / the transport's disconnect), or 1 s--> gone
//   dialing/handshaking/connected --lost, timeout, bad input--> gone, or reconnecting (a client
//     with ReconnectPolicy) --its delay passed--> dialing (a failed dial waits twice as long)
// Gone peers leave the table (PeerDisconnected if PeerConnected was queued, or the caller holds
// the Sender of a dial that never connected); their index is never reused.
// Timers: with heartbeats (streams), one shared round timer for all peers (a heartbeat to each
// peer sent nothing for heartbeat_interval/2) and the heartbeat and frame timeouts; without
// (ENet), the transport keeps the link alive. Lingering, dialing, reconnecting and handshaking
// peers add their deadlines; next_deadline() is the earliest, so an idle manager sleeps until then.
// Threads: every member on the manager's thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "channel/channel.hpp"
#include "local/pump.hpp"
#include "network/drop_log.hpp"
#include "network/peer_transport.hpp"
#include "sage/datagram.hpp"
#include "sage/network.hpp"

namespace sage::detail {

// What the lifecycle needs of NetworkOptions / DatagramOptions.
struct PeerConfig {
  const char* component = "network";                // log lines: "sage: network: ..."
  std::string_view options_name = "NetworkOptions";  // named in errors
  std::uint32_t first_index = 1;                     // Sender::peer indices count from here
  std::string name;                                  // ours, in the hello
  std::size_t max_message_size = std::size_t{1} << 20;
  std::size_t send_buffer_limit = std::size_t{8} << 20;
  OverflowPolicy on_send_buffer_full = OverflowPolicy::refuse;
  std::size_t max_peers = 0;  // 0 = no limit
  std::size_t max_peers_per_address = 0;  // accepted peers from one IP address; 0 = no limit
  std::chrono::milliseconds hello_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
  // Streams: sage's heartbeats and the heartbeat / frame timeouts (zero: none; ENet pings itself).
  std::chrono::milliseconds heartbeat_interval{0};
  std::chrono::milliseconds heartbeat_timeout{0};
  std::chrono::milliseconds frame_timeout{0};
  // connect() returns once the transport connected (and throws network_error if it cannot), or at
  // once with the peer dialing (a failure is then PeerDisconnected).
  bool connect_waits = true;
  unsigned drop_log_burst = 10;
  std::chrono::milliseconds drop_log_interval{10000};
  ReconnectPolicy reconnect{};
  AdmissionHook admit;  // unset: every incoming peer whose schemas can talk to ours
  std::string identity;  // what every accepted peer proved (a TLS listener's client CA); "" = nothing
};

// The lifecycle counters (NetworkStats / DatagramStats take theirs from here).
struct PeerCounters {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_dialed = 0;
  std::uint64_t peers_connected = 0;
  std::uint64_t peers_disconnected = 0;
  std::uint64_t peers_refused = 0;
  std::uint64_t handshakes_refused = 0;
  std::uint64_t admissions_refused = 0;
  std::uint64_t hello_timeouts = 0;
  std::uint64_t heartbeat_timeouts = 0;
  std::uint64_t frame_timeouts = 0;
  std::uint64_t bad_input = 0;
  std::uint64_t send_buffer_full = 0;
  std::uint64_t unknown_type_skipped = 0;
  std::uint64_t drop_logs_suppressed = 0;
  std::string last_bad_input;
};

class PeerPump : public Pump, PeerIntake {
 public:
  enum class Role : std::uint8_t { client, incoming, remote_group, main_group };
  enum class State : std::uint8_t { dialing, handshaking, connected, lingering, reconnecting };
  struct Peer;

  PeerPump(Manager& manager, PeerConfig config, std::unique_ptr<PeerTransport> transport);
  ~PeerPump() override;

  // Throws network_error (address in use...), usage_error (already listening, a bad name).
  Endpoint listen(std::string_view host, std::uint16_t port);
  const std::optional<Endpoint>& listening() const noexcept { return endpoint_; }
  // Dials; queues our hello once connected (PeerConnected follows the other end's hello).
  // Throws network_error (connect_waits: cannot connect), usage_error (a bad name).
  Sender connect(std::string_view host, std::uint16_t port);
  // Sends `close` and drops the peer once its queued bytes left (at most a second later).
  void disconnect(Sender peer);
  void disconnect_outgoing();
  // The clients this manager dialed and did not disconnect().
  std::vector<Sender> servers() const;

  // Throws not_a_peer for a Sender that is not one of this pump's peers.
  Result<void> queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery);
  // Queues for every connected client and incoming peer; how many accepted it. Throws send_error (too_large).
  std::size_t broadcast_record(const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery);
  std::vector<PeerInfo> peers() const;
  const PeerCounters& counters() const noexcept { return stats_; }
  const ChannelCounters& channel_counters() const noexcept { return channels_; }
  std::uint64_t receive_buffered_bytes() const;

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  Clock::time_point next_deadline() const override;

 protected:
  friend class RemoteNode;
  // Roles beyond client and incoming (NetPump: remote groups). A control record other than
  // heartbeat, close and error; the default refuses it as unknown.
  virtual Verdict on_role_control(Peer& p, protocol::Control control, std::span<const std::byte> payload);
  // A peer was refused or lost; a remote_group's owner reports it (the peer is erased afterwards).
  virtual void on_role_lost(Peer&, const Error&) {}
  // The goodbye record a live peer gets when the manager shuts down (default: close).
  virtual void goodbye(Peer& p);
  // Derived destructors call this first: goodbyes, up to a second for them to leave, close all.
  void shutdown();

  Peer& add_peer(Role role);
  Peer* find(Sender s) const;  // throws not_a_peer
  Peer* at(std::uint32_t index) const;
  Peer* peer_of(const Channel* channel) const;  // the peer whose channel it is, or nullptr
  // connect() for a role: the dial (waiting or not, per the config).
  Peer& dial(Role role, std::string_view host, std::uint16_t port, std::string hello_name);
  void receive_from(Peer& p);
  void drop(Peer& p, Error why, bool bad, bool log = false);
  void linger(Peer& p, Error why, bool bad);
  void erase(Peer& p);
  void check_name(const std::string& name) const;
  // Admission refused `p` (its hello, or what it asked for): the reason goes to the peer, the
  // refusal is counted and logged at the drop-log rate, and the peer closes; nothing is kept.
  Verdict refuse_admission(Peer& p, const std::string& reason);

  Manager& manager_;
  Waker& waker_;
  Directory& directory_;
  PeerConfig config_;
  std::unique_ptr<PeerTransport> transport_;
  PeerCounters stats_;
  ChannelCounters channels_;

 private:
  // PeerIntake
  std::optional<Error> admit(const std::string& address) override;
  void accepted(std::unique_ptr<Connection> conn) override;
  void rejected(const std::string& address, const Error& why) override;
  void dialed(Dialer& dialer) override;

  void start_connection(Peer& p, std::unique_ptr<Connection> conn);
  void service_dial(Peer& p);
  void linger_refused(Peer& p, const Error& why);
  void refused(Peer& p, const Error& why, bool by_peer);
  void overflow(Peer& p, const Error& e);
  void log_drop(const std::string& who, const Error& why);
  Verdict common_control(Peer& p, protocol::Control control, std::span<const std::byte> payload);

  std::optional<Endpoint> endpoint_;
  std::map<std::uint32_t, std::unique_ptr<Peer>> peers_;  // by Sender::peer index, never reused
  std::uint32_t next_index_;
  std::map<std::uint32_t, Error> refused_;  // peers whose handshake was refused, by index
  Clock::time_point next_round_ = Clock::time_point::max();  // the shared heartbeat timer
  DropLog drop_log_;
};

struct PeerPump::Peer final : ChannelEvents {
  Peer(PeerPump& pump, std::uint32_t index, Role role);

  Sender sender() const noexcept { return Sender::peer(index); }
  bool live() const noexcept {
    return channel.connection() && (state == State::handshaking || state == State::connected);
  }
  std::string who() const { return pump.transport_->who(address); }

  Verdict on_hello(Channel&, const protocol::Hello& theirs, const Result<void>& check) override;
  Verdict on_control(Channel&, protocol::Control control, std::span<const std::byte> payload) override;

  PeerPump& pump;
  const std::uint32_t index;
  Role role;
  State state = State::dialing;
  Channel channel;
  std::string address;       // "ip:port" of the other end (the dialed host:port until connected)
  std::string name;          // the name in its hello
  std::string identity;      // what it proved: "key:<id>" (shared key), the TLS listener's client identity, or ""
  std::string hello_name;    // the name we give ourselves in our hello on this connection
  bool announced = false;    // PeerDisconnected is owed (PeerConnected was queued, or a dial's Sender returned)
  bool overflow_logged = false;
  bool refusal_logged = false;  // refused() wrote this connection's one line: its drop writes none
  bool user_closed = false;  // disconnect() was called: never reconnect
  bool bye_acked = false;    // remote_group: it answered remove_group()'s bye
  Clock::time_point started{};  // this connection's start: the hello deadline counts from it
  // lingering: gone once drained, at `until` at the latest; reconnecting: dial again at `until`
  Clock::time_point until{};
  Error linger_reason;
  bool linger_bad = false;
  // client: where to dial (again)
  std::string host;
  std::uint16_t port = 0;
  std::unique_ptr<Dialer> dialer;
  int attempts = 0;
  std::chrono::milliseconds delay{0};
};

}  // namespace sage::detail

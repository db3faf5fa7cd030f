// runtime/network/datagram_pump.hpp: a manager's datagram peers (ENet over UDP; docs/network.md
// "Datagrams"), modelled on the NetPump (net_pump.hpp).
//
// One DatagramPump per manager that uses datagrams. A lifecycle owner only: each peer is a
// DatagramConn (runtime/transport/datagram.hpp) wrapped in a Channel (hello, schema check,
// batching per delivery mode and channel, decode). It owns up to two ENet hosts: the listening one
// (listen_datagram) and an unbound one for connect_datagram. Every member runs on the manager's
// thread; ENet is serviced in poll() (and in blocking calls through the Waker's nested wait).
//
// A peer's role is fixed when it appears: client (we dialed) or incoming (accepted). Its lifecycle:
//   [dialing --ENet connected--> ] handshaking --their hello accepted--> connected (PeerConnected)
//   handshaking/connected --disconnect(), refused hello--> lingering (ENet's graceful disconnect)
//   lingering --ENet disconnected, or 1 s--> dropped
//   handshaking/connected --ENet timeout or disconnect, bad input--> dropped, or reconnecting
//     (client with ReconnectPolicy) --dialed--> dialing
// Dropped peers leave the table (PeerDisconnected if they were connected).
// Timers: no heartbeats of sage's own: ENet pings idle peers (DatagramOptions::ping_interval) and
// times out silent ones (peer_timeout). next_deadline() is the earliest of the hosts' service
// deadlines (DatagramHost::next_deadline: ~2 wake-ups per ping interval per idle peer), lingering
// peers, reconnect attempts, handshakes (hello_timeout) and the drop log's summary; a manager
// without datagram peers never wakes for them.
// Handshake: the same negotiation as the NetPump (Channel::Config::negotiate, check_negotiated):
// a refused handshake queues PeerRefused on both ends and later sends to that peer fail with
// Errc::incompatible; max_peers, hello_timeout and the drop log work as for TCP.
// Indices: Sender::peer(datagram_peer_base + n), never reused.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "channel/channel.hpp"
#include "local/pump.hpp"
#include "network/drop_log.hpp"
#include "sage/datagram.hpp"
#include "transport/datagram.hpp"

namespace sage::detail {

class DatagramPump final : public Pump, HostEvents {
 public:
  DatagramPump(Manager& manager, const DatagramOptions& options);
  // Closes every peer (ENet disconnect with datagram_code::shutdown) after up to a second for
  // queued reliable data to be acknowledged.
  ~DatagramPump() override;

  // Throws network_error (address in use, not IPv4), usage_error (already listening).
  Endpoint listen(std::string_view host, std::uint16_t port);
  const std::optional<Endpoint>& listening() const noexcept { return endpoint_; }
  // Blocks until ENet connected (at most connect_timeout; the name is resolved blocking), then
  // queues our hello; PeerConnected follows the other end's hello. Throws network_error.
  Sender connect(std::string_view host, std::uint16_t port);
  void disconnect(Sender peer);
  void disconnect_outgoing();
  // The clients this manager dialed and did not disconnect().
  std::vector<Sender> servers() const;

  Result<void> queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery);
  std::size_t broadcast_record(const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery);

  std::vector<PeerInfo> peers() const;
  DatagramStats stats() const;
  bool owns(Sender s) const noexcept { return is_datagram_peer(s); }
  // Test hook: ENet's round-trip estimate for a peer (ms), 0 if unknown.
  std::uint32_t round_trip_ms(Sender peer) const;

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  Clock::time_point next_deadline() const override;

 private:
  struct Peer;
  Peer* find(Sender s) const;
  Peer& add_peer(int role);
  void attach(Peer& p, DatagramHost& host, _ENetPeer* enet_peer);
  void on_host_event(DatagramHost& host, const HostEvent& ev) override;
  void on_connected(DatagramHost& host, const HostEvent& ev);
  void on_disconnected(const HostEvent& ev);
  void receive_from(Peer& p);
  void linger(Peer& p, Error why, bool bad, std::uint32_t code);
  void drop(Peer& p, Error why, bool bad);
  void dial(Peer& p);
  void log_drop(const std::string& who, const Error& why);
  // The handshake was refused (by us, or `by_peer`): logged, counted, PeerRefused queued, and
  // later sends to that peer fail with the reason.
  void refused(Peer& p, const Error& why, bool by_peer);
  DatagramSettings settings() const;
  DatagramHost& client_host();

  Manager& manager_;
  Waker& waker_;
  Directory& directory_;
  DatagramOptions options_;
  std::unique_ptr<DatagramHost> listener_;
  std::unique_ptr<DatagramHost> dialer_;
  std::optional<Endpoint> endpoint_;
  std::map<std::uint32_t, std::unique_ptr<Peer>> peers_;  // by Sender::peer index, never reused
  std::uint32_t next_index_ = datagram_peer_base + 1;
  ChannelCounters counters_;
  DatagramStats stats_;
  std::map<std::uint32_t, Error> refused_;  // peers whose handshake was refused, by index
  DropLog drop_log_;
};

}  // namespace sage::detail

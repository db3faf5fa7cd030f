// runtime/transport/datagram.hpp: the datagram transport (ENet 1.3.17 over UDP, docs/network.md
// "Datagrams"): a DatagramHost (one ENet host: a UDP socket and its peers) and a DatagramConn (the
// Connection of one ENet peer).
//
// Threads: no thread of its own. ENet does all its work (receive, acknowledge, retransmit, ping,
// time out) inside enet_host_service(), which DatagramHost::service() calls in a loop on the
// manager's thread. The host's socket is watched on the manager's Waker, so an arriving datagram
// wakes the manager; ENet's timers are not visible to poll(), so next_deadline() computes when
// ENet next needs servicing and the owner bounds the manager's sleep by it:
//   - a peer with unacknowledged reliable data: its retransmit timer (peer->nextTimeout, the
//     round-trip estimate plus 4 deviations; doubling per retry up to the peer timeout);
//   - a connected peer with nothing in flight: its next ping (last receive + ping interval).
// So an idle connected peer costs about 2 wake-ups per ping interval (the ping, the pong's
// arrival), a peer with data in flight one more per retransmit, a host without peers none.
// Ownership: the host outlives its connections (the owner destroys connections first); a
// DatagramConn is the ENet peer's `data`, cleared when either goes.
// Challenge (secure/challenge.hpp): every host drops an ENet CONNECT whose data word is not a
// cookie it gave to that address (no slot, no reply); a listening host answers challenge requests
// with a cookie, statelessly. dial() therefore starts with send_challenge() and connects with the
// cookie the reply carries (the transport's EnetDialer runs these steps).
// Sealing (secure/seal.hpp): after a shared-key handshake on channel 0 (the transport runs it
// before the connection becomes a peer), a DatagramConn seals every packet with one
// DatagramSealer per ENet channel; one that does not open is dropped and counted (unreliable
// channels) or fails the connection (reliable channels, whose order it would break).
// Addresses: ENet 1.3.17 is IPv4 only; names are resolved with enet_address_set_host, which blocks
// (getaddrinfo) — numeric addresses do not.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "secure/challenge.hpp"
#include "secure/seal.hpp"
#include "transport/connection.hpp"

struct _ENetHost;
struct _ENetPeer;
struct _ENetPacket;

namespace sage::detail {

class DatagramConn;

// What the data word of ENet's connect and disconnect means between sage peers.
namespace datagram_code {
// (A connect's data word is the listener's challenge cookie; 3 was "not a sage peer" before it.)
inline constexpr std::uint32_t timeout = 0;           // ENet's own timeout (sage never sends 0)
inline constexpr std::uint32_t closed = 1;            // disconnect() or a refused handshake
inline constexpr std::uint32_t full = 2;              // the listener has max_peers peers
inline constexpr std::uint32_t shutdown = 4;          // the manager was destroyed
}  // namespace datagram_code

struct DatagramSettings {
  std::size_t peer_slots = 72;         // ENet peers of the host (max_peers + slack)
  std::uint8_t channels_per_mode = 4;  // ENet channels = 3 * channels_per_mode
  ConnectionLimits limits{};
  std::chrono::milliseconds peer_timeout{10000};
  std::chrono::milliseconds ping_interval{500};
  // ENet's host->duplicatePeers: connections from one IP address at once (further connects from
  // it are ignored by ENet, unanswered: no slot, no reply); 0 keeps ENet's default (4095).
  std::size_t peers_per_address = 0;
  // ENet's host->maximumWaitingData: bytes of packets one peer has in reassembly or waiting to be
  // taken; past it ENet drops that peer's further fragments (0 keeps ENet's default, 32 MiB).
  std::size_t max_waiting_data = 0;
};

// Why service() reports a peer (connections have their own failure()).
struct HostEvent {
  enum class Kind : std::uint8_t { connected, disconnected };
  Kind kind;
  _ENetPeer* peer;
  std::uint32_t data;
  bool had_conn;  // disconnected: the peer had a DatagramConn (now failed)
};

// The owner's side of a host: told of connects and disconnects inline, during service(), so that
// a connection exists before the packets that follow its connect in the same service() call.
class HostEvents {
 public:
  virtual ~HostEvents() = default;
  virtual void on_host_event(class DatagramHost& host, const HostEvent& ev) = 0;
  // A challenge reply (not yet checked) from address:port (ENet's encoding): true if a dial
  // took it, else the host counts it as a bad datagram.
  virtual bool on_challenge_reply(class DatagramHost& host, std::uint32_t address, std::uint16_t port,
                                  std::span<const std::byte> reply) = 0;
};

// An IPv4 address and port as ENet holds them (address in network order, port in host order).
struct UdpAddress {
  std::uint32_t host = 0;
  std::uint16_t port = 0;
  friend bool operator==(const UdpAddress&, const UdpAddress&) = default;
};

class DatagramHost {
 public:
  // Binds host:port (listening) or, with bind = false, an ephemeral port for dialing. Throws
  // nothing: io_error when the socket cannot be made or bound, malformed for an unusable address.
  static Result<std::unique_ptr<DatagramHost>> open(bool bind, const std::string& host, std::uint16_t port,
                                                    const DatagramSettings& settings, std::shared_ptr<Waker> waker);
  ~DatagramHost();
  DatagramHost(const DatagramHost&) = delete;
  DatagramHost& operator=(const DatagramHost&) = delete;

  std::uint16_t port() const noexcept;
  const DatagramSettings& settings() const noexcept { return settings_; }
  // Resolves host:port (malformed if it cannot: ENet is IPv4 only).
  static Result<UdpAddress> resolve(const std::string& host, std::uint16_t port);
  // Sends a challenge request with `nonce` to `to` (one UDP datagram, now).
  void send_challenge(UdpAddress to, std::uint64_t nonce);
  // Starts an ENet connect carrying `cookie` (no packet leaves before the next service()/flush()).
  // Fails with io_error (no free peer slot).
  Result<_ENetPeer*> dial(UdpAddress to, std::uint32_t cookie);
  // Who hears of connects and disconnects (nullptr: connects are dropped at once).
  void set_events(HostEvents* events) noexcept { events_ = events; }
  // Runs ENet until it has nothing more to do now: receives go to their connection's inbox;
  // connects and disconnects go to the HostEvents. Never blocks.
  void service();
  // Sends what connections queued (enet_host_flush).
  void flush();
  // When service() must run next at the latest (see the header comment); max() = never.
  Clock::time_point next_deadline() const;
  // Blocks (nested wait) until pred() or deadline, servicing ENet meanwhile (wait_sent()).
  template <class Pred>
  bool serve_until(Clock::time_point deadline, Pred pred) {
    while (!pred()) {
      if (Clock::now() >= deadline) return false;
      service();
      flush();
      if (pred()) return true;
      waker_->wait_nested(std::min(deadline, next_deadline()));
    }
    return true;
  }
  // Drops the peer at once (no goodbye beyond one unreliable disconnect datagram).
  void drop_now(_ENetPeer* peer, std::uint32_t code) noexcept;
  // Disconnects after the queued reliable data left; a `disconnected` event follows.
  void disconnect_later(_ENetPeer* peer, std::uint32_t code) noexcept;
  static std::string address_of(const _ENetPeer* peer);

  std::uint64_t bad_datagrams() const noexcept { return bad_datagrams_; }
  std::uint64_t early_unreliable() const noexcept { return early_unreliable_; }
  void note_early_unreliable() noexcept { ++early_unreliable_; }
  std::uint64_t challenges_answered() const noexcept { return challenges_answered_; }
  std::uint64_t unproven_connects() const noexcept { return unproven_connects_; }
  std::uint64_t sealed_dropped() const noexcept { return sealed_dropped_; }
  void note_sealed_dropped() noexcept { ++sealed_dropped_; }
  // What the intercept hook does with a raw datagram from from_host:from_port before ENet sees it:
  // true = consumed here (a challenge request answered, a reply handed to the events, a datagram
  // that is not plausible or an unproven connect dropped and counted).
  bool intercept(const std::uint8_t* data, std::size_t size, std::uint32_t from_host, std::uint16_t from_port);
  // Whether a raw UDP datagram is plausible ENet traffic for this host (else counted and dropped).
  // Pure function of the bytes and the host's peer table: the fuzz target calls it directly.
  bool plausible(const std::uint8_t* data, std::size_t size, std::uint32_t from_host, std::uint16_t from_port) const;
  _ENetHost* raw() const noexcept { return host_; }

 private:
  DatagramHost(_ENetHost* host, bool listening, const DatagramSettings& settings, std::shared_ptr<Waker> waker);
  friend struct HostAccess;
  _ENetHost* host_;
  DatagramSettings settings_;
  std::shared_ptr<Waker> waker_;
  int fd_;
  HostEvents* events_ = nullptr;
  bool listening_;
  secure::CookieJar cookies_;
  std::uint64_t bad_datagrams_ = 0;
  std::uint64_t early_unreliable_ = 0;
  std::uint64_t challenges_answered_ = 0;
  std::uint64_t unproven_connects_ = 0;
  std::uint64_t sealed_dropped_ = 0;
};

class DatagramConn final : public Connection {
 public:
  // Takes a connected ENet peer of `host`.
  DatagramConn(DatagramHost& host, _ENetPeer* peer);
  ~DatagramConn() override;

  Result<void> send(std::span<const std::byte> body, Delivery delivery = {}) override;
  std::size_t pending_bytes() const override;
  std::size_t received_bytes() const override;
  bool wait_sent(Clock::time_point deadline) override;
  std::optional<Error> failure() const override { return failure_; }
  Clock::duration idle_for() const override { return Clock::now() - last_receive_; }
  const std::string& remote_address() const noexcept override { return address_; }
  const ConnectionLimits& limits() const noexcept override { return host_.settings().limits; }
  void close() override;
  void pause_receiving(bool paused) override { paused_ = paused; }

  // Starts ENet's graceful disconnect (after queued reliable data); the host reports when done.
  void disconnect_later(std::uint32_t code);
  // Round-trip estimate of ENet (ms).
  std::uint32_t round_trip_ms() const noexcept;
  const std::string& identity() const noexcept override { return identity_; }

  // The shared-key handshake on channel 0, before any sage record (run by the transport):
  // begin_handshake() holds every packet that arrives; take_handshake_packet() gives the next one
  // of channel 0; send_handshake() sends one (reliable, channel 0, unsealed); seal_with() switches
  // to sealed packets both ways and passes the packets still held through the sealed path.
  void begin_handshake() noexcept { proving_ = true; }
  std::optional<std::vector<std::byte>> take_handshake_packet();
  Result<void> send_handshake(std::span<const std::byte> bytes);
  void seal_with(const secure::SessionKeys& keys);

  // Called by the host's service() only.
  void deliver(_ENetPacket* packet, std::uint8_t channel);
  void fail(Error e) noexcept;

 private:
  // fail(), and drops the ENet peer at once (the connection found its input bad).
  void fail_now(Error e) noexcept;
  struct Inbound {  // a received packet and where its plain text is in it (after the seal's number)
    _ENetPacket* packet;
    std::uint32_t offset;
    std::uint32_t size;
    std::uint8_t channel;
  };
  Result<void> send_bytes(std::span<const std::byte> bytes, std::uint8_t channel, std::uint32_t flags);
  void accept(_ENetPacket* packet, std::uint8_t channel);
  std::size_t receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) override;
  struct Pending;
  DatagramHost& host_;
  _ENetPeer* peer_;
  std::string address_;
  Pending* pending_;  // shared with the packets in flight (freed by the last of them)
  std::deque<Inbound> inbox_;
  std::optional<Error> failure_;
  Clock::time_point last_receive_ = Clock::now();
  std::deque<Inbound> held_;  // reliable packets of channels 1.. that overtook the hello
  std::size_t held_bytes_ = 0;
  bool hello_seen_ = false;  // the first packet on channel 0 (it opens with the peer's hello) arrived
  bool paused_ = false;
  bool proving_ = false;                // in the shared-key handshake: packets wait in pre_seal_
  std::deque<Inbound> pre_seal_;        // what arrived during the handshake (channel order kept)
  std::size_t pre_seal_bytes_ = 0;
  std::vector<secure::DatagramSealer> sealers_;  // one per ENet channel once sealed; empty: plain
  std::vector<std::byte> sealed_;       // scratch for send()
  std::string identity_;
};

}  // namespace sage::detail

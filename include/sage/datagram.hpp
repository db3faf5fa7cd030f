// sage/datagram.hpp: real-time messages over UDP (ENet), pysage's UDP / RakNet transports
// (docs/network.md "Datagrams").
//
//   sage::Manager server;
//   server.register_messages(game::wire_messages{});
//   auto at = server.listen_datagram("0.0.0.0", 0);          // enet://0.0.0.0:<port>
//
//   sage::Manager client;
//   client.register_messages(game::wire_messages{});
//   auto srv = client.connect_datagram("127.0.0.1", at.port);  // blocks until ENet connected
//   client.send_message(game::Chat{"hi"}, srv);                // reliable, ordered (the default)
//   client.send_message(game::Pos{...}, srv, sage::Delivery::sequenced(0));  // newest wins
//
// Datagram peers are network peers like TCP ones: the same Sender::peer(i) (their indices count
// from datagram_peer_base, so they never collide with TCP peers), PeerConnected / PeerDisconnected,
// Manager::peers(), the same hello and schema negotiation (PeerRefused; a send of a type the
// peer's schemas lack fails at the call with Errc::incompatible). What differs is the delivery,
// chosen per send (Delivery below), and that ENet, not sage, keeps the link alive (its pings and
// timeouts replace sage's heartbeats).
//
// Contract of a send: it is refused at the call (send_error / Result) with too_large (over
// DatagramOptions::max_message_size), send_buffer_full (the peer has not acknowledged
// send_buffer_limit bytes), peer_gone, or incompatible (the peer's schemas do not have the type, or
// its handshake was refused); what is accepted is queued in the peer's batch for its
// delivery mode and channel and leaves at the end of the tick. Reliable messages arrive all and in
// order per channel; unreliable ones may be lost (a lost datagram loses every message batched in
// it) but never arrive corrupted.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "sage/network.hpp"

namespace sage {

// How one message travels to a datagram peer, chosen per send.
//  - reliable (default): every message arrives, in send order within its channel; a lost datagram
//    is retransmitted and holds back the later ones of that channel (not of other channels).
//  - unreliable_sequenced: may be lost; an older message never arrives after a newer one of the
//    same channel (it is dropped): "newest wins", e.g. positions 30 times a second.
//  - unreliable (unsequenced): may be lost or arrive out of order; ENet drops duplicates.
// Each mode has its own ENet channels (DatagramOptions::channels of each), so unreliable messages
// never wait behind a reliable retransmit. TCP peers ignore the Delivery: a stream is always
// reliable and ordered (a stronger guarantee than any mode asks for).
// A message bigger than one datagram (about 1,350 bytes of payload at ENet's MTU of 1,400) sent
// unreliably travels as unreliable fragments (ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT): a lost
// fragment loses the whole message; it is never silently made reliable. Fragments of an
// unsequenced message are sequenced (ENet's rule): an older one is dropped after a newer one.
struct Delivery {
  enum class Mode : std::uint8_t {
    reliable,
    unreliable_sequenced,
    unreliable,
  };
  Mode mode = Mode::reliable;
  std::uint8_t channel = 0;  // 0 .. DatagramOptions::channels - 1; independent streams of one mode

  static constexpr Delivery reliable_on(std::uint8_t ch = 0) noexcept { return {Mode::reliable, ch}; }
  static constexpr Delivery sequenced(std::uint8_t ch = 0) noexcept { return {Mode::unreliable_sequenced, ch}; }
  static constexpr Delivery unsequenced(std::uint8_t ch = 0) noexcept { return {Mode::unreliable, ch}; }
  friend constexpr bool operator==(const Delivery&, const Delivery&) = default;
};

// Peer indices (Sender::peer(i)) of datagram peers start here; TCP peers count from 1.
inline constexpr std::uint32_t datagram_peer_base = 0x4000'0000u;
constexpr bool is_datagram_peer(Sender s) noexcept {
  return s.kind == Sender::Kind::peer && s.index >= datagram_peer_base;
}

// Per manager datagram options (Manager::enable_datagrams); they apply to every datagram peer.
struct DatagramOptions {
  // Name this manager gives itself in the handshake (PeerConnected::name on the other end).
  std::string name;
  // Most datagram peers (accepted, dialed or reconnecting) at once, 1..4000, as NetworkOptions::
  // max_peers for TCP: a connect to listen_datagram() while max_peers exist is answered with a
  // disconnect (counted in DatagramStats::peers_refused, logged at the drop-log rate). ENet itself
  // ignores connects silently once max_peers + 8 slots (handshakes, lingering peers) are in use;
  // connect_datagram() fails with network_error once this manager dialed max_peers.
  std::size_t max_peers = 64;
  // Most ENet connections from one IP address at once (ENet's duplicatePeers): further connects from
  // it are ignored, unanswered. A peer also holds at most 2 * max_message_size of packets in
  // reassembly or waiting (ENet's maximumWaitingData), so one that never completes a fragmented
  // message cannot pin more (docs/network.md "Limits, timers and bad input").
  std::size_t max_peers_per_address = 8;
  // An ENet connection whose sage hello has not arrived within hello_timeout of its start is
  // dropped (DatagramStats::hello_timeouts), as NetworkOptions::hello_timeout.
  std::chrono::milliseconds hello_timeout{std::chrono::seconds(5)};
  // Dropped-peer log lines (sage/log.hpp), as NetworkOptions: the first drop_log_burst in each
  // drop_log_interval, then one summary line per interval (DatagramStats::drop_logs_suppressed).
  unsigned drop_log_burst = 10;
  std::chrono::milliseconds drop_log_interval{std::chrono::seconds(10)};
  // ENet channels per delivery mode (1..80): Delivery::channel must be below it.
  std::uint8_t channels = 4;
  // Largest transport message (one batch of records, sent as one ENet packet) sent or accepted;
  // ENet refuses to reassemble a bigger one. Both ends must agree.
  std::size_t max_message_size = std::size_t{1} << 20;
  // Unreliable messages of one tick are batched into packets of at most this many bytes, so that
  // one lost datagram loses few messages (a larger single message is still sent, fragmented).
  std::size_t unreliable_batch_size = 1200;
  // Reliable messages of one tick are batched into packets of at most this many bytes (ENet cuts
  // a packet into ~1,400-byte reliable fragments; all must arrive before any of its messages).
  std::size_t reliable_batch_size = 16 * 1024;
  // Bytes queued for one peer and not yet acknowledged (reliable) or sent (unreliable).
  std::size_t send_buffer_limit = std::size_t{8} << 20;
  // A peer that acknowledges nothing for peer_timeout is disconnected (ENet's timeout: PeerDisconnected
  // with reason peer_gone "timed out"). ENet pings each idle peer every ping_interval.
  std::chrono::milliseconds peer_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds ping_interval{500};
  // How long connect_datagram() waits for ENet's connection and each reconnect attempt.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  ReconnectPolicy reconnect{};
  // Admission hook, as NetworkOptions::admit (peers only: datagram peers host no groups); unset:
  // every peer whose schemas can talk to ours is admitted.
  AdmissionHook admit;
  // Shared-key mode (docs/security.md "Shared keys"), as NetworkOptions::keys: a listener with keys
  // admits only a connection that proves one of them (the handshake runs on ENet channel 0 within
  // hello_timeout, before the connection becomes a peer); a client proves keys[0] within
  // connect_timeout. Then every packet is sealed (ChaCha20-Poly1305, per-connection keys, a
  // counter per ENet channel with a 256-number replay window): a sealed unreliable packet that
  // does not open is dropped and counted (DatagramStats::sealed_dropped), a reliable one drops the
  // peer as bad input. Identity "key:<id>" as for TCP. Empty: plain packets.
  std::vector<SharedKey> keys;
};

// Counters of a manager's datagram traffic since enable_datagrams().
struct DatagramStats {
  std::uint64_t connections_accepted = 0;  // ENet connects accepted by listen_datagram()
  std::uint64_t peers_refused = 0;         // ... refused at once: max_peers reached
  std::uint64_t connections_dialed = 0;
  std::uint64_t peers_connected = 0;       // handshakes completed
  std::uint64_t peers_disconnected = 0;
  std::uint64_t timeouts = 0;              // peers ENet timed out (nothing acknowledged for peer_timeout)
  std::uint64_t packets_sent = 0;          // ENet packets (batches)
  std::uint64_t packets_received = 0;
  std::uint64_t records_sent = 0;
  std::uint64_t records_received = 0;
  std::uint64_t bad_datagrams = 0;         // UDP datagrams that are not ENet traffic of a known peer (dropped)
  std::uint64_t early_unreliable = 0;      // unreliable packets that arrived before the peer's hello (dropped)
  std::uint64_t bad_input = 0;             // peers dropped for bad sage records (corrupt, unknown types...)
                                           // and connects refused as not from a sage peer
  std::uint64_t hello_timeouts = 0;        // dropped: no hello within hello_timeout
  std::uint64_t handshakes_refused = 0;    // schemas cannot talk, old protocol: PeerRefused (both ends)
  // Records not sent to a peer whose schemas do not have the type: skipped by broadcast_message, or
  // sent before its handshake completed (logged). A send_message of such a type fails at the call
  // (Errc::incompatible), as for TCP peers.
  std::uint64_t unknown_type_skipped = 0;
  std::uint64_t drop_logs_suppressed = 0;  // dropped-peer lines not written (rate limit)
  std::uint64_t send_buffer_full = 0;
  std::uint64_t admissions_refused = 0;    // peers refused by DatagramOptions::admit
  // The challenge (docs/network.md "Datagrams"): requests answered with a cookie, and ENet connects
  // without a valid cookie (dropped unanswered: no slot, no reply).
  std::uint64_t challenges_answered = 0;
  std::uint64_t unproven_connects = 0;
  std::uint64_t authentication_failures = 0;  // connections that did not prove a shared key (DatagramOptions::keys)
  std::uint64_t sealed_dropped = 0;           // sealed unreliable packets that did not open (dropped)
  std::string last_bad_input;
};

namespace detail {
class DatagramPump;
}

}  // namespace sage

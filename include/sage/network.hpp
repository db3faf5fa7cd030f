// sage/network.hpp: messages between machines over TCP, pysage's network messaging (docs/network.md).
//
//   sage::Manager server;                          // on one machine
//   server.register_messages(chat::wire_messages{});
//   auto at = server.listen("0.0.0.0", 0);         // port 0: any free port; at.port is the one bound
//
//   sage::Manager client;                          // on another
//   client.register_messages(chat::wire_messages{});
//   client.connect("server.example", at.port);
//   client.send_message(chat::Line{"hi"});         // to its server; delivered with Sender = the peer
//
// Received messages are queued in the manager (dispatched by its next tick) with a Sender of kind
// peer, usable for replies: mgr.send_message(reply, sender). Peers coming and going are the local
// messages PeerConnected / PeerDisconnected below. The Manager members are declared in
// sage/manager.hpp ("network").
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sage/result.hpp"
#include "sage/sender.hpp"

namespace sage {

// Optional TLS (tls+tcp://, nng's mbedTLS engine). Paths name PEM files.
struct TlsOptions {
  bool enabled = false;
  std::string cert_file;    // this end's certificate (chain); required to listen
  std::string key_file;     // the private key of cert_file
  // CA certificate(s) the other end's certificate is checked against. connect(): the server's.
  // listen(): every client must present a certificate signed by it (required: a client without
  // one, or with another CA's, fails the TLS handshake and never reaches sage).
  std::string ca_file;
  std::string server_name;  // connect(): the name the server's certificate must carry ("" = the host)
  bool verify_peer = true;  // connect(): refuse a server whose certificate does not verify (needs ca_file)
  // listen() with ca_file: the identity every verified client has (AdmissionRequest::identity).
  // nng 1.5.2 cannot read a certificate's subject, so identity comes from the CA: one CA per role
  // (e.g. a CA for worker nodes, given to a listener with client_identity = "workers"). Empty:
  // "tls:" + ca_file.
  std::string client_identity;
};

// A shared key (docs/security.md "Shared keys"): 32 random bytes and the id that names it. Give the
// same key to both ends; keep it secret like a password. Made with generate() (libsodium's CSPRNG)
// or read as 64 hex digits (as hex() writes them).
struct SharedKey {
  std::string id;                     // 1..64 bytes, not secret; the other end's identity is "key:" + id
  std::array<std::byte, 32> bytes{};  // the secret

  static SharedKey generate(std::string id);
  // 64 hex digits; Errc::malformed otherwise.
  static Result<SharedKey> from_hex(std::string id, std::string_view hex);
  // A file holding 64 hex digits (surrounding whitespace ignored); io_error or malformed, naming it.
  static Result<SharedKey> from_file(std::string id, const std::string& path);
  std::string hex() const;
};

// What connect()'s connection does when it is lost (closed, reset, heartbeat timeout).
struct ReconnectPolicy {
  // false: the peer is gone for good (PeerDisconnected{reconnecting = false}); call connect() again.
  // true: the manager dials again, waiting initial_delay, then twice as long each failed attempt
  // (at most max_delay); the peer keeps its Sender; PeerDisconnected{reconnecting = true} then
  // PeerConnected again. Messages sent meanwhile fail with peer_gone (nothing is buffered).
  bool enabled = false;
  std::chrono::milliseconds initial_delay{100};
  std::chrono::milliseconds max_delay{std::chrono::seconds(5)};
  int max_attempts = 0;  // 0 = forever; past it PeerDisconnected{reconnecting = false}
};

// What happens to a peer whose send buffer is full (it does not read fast enough).
enum class OverflowPolicy : std::uint8_t {
  refuse,      // the send fails with send_buffer_full (logged once per peer); the peer stays
  disconnect,  // same, and the peer is disconnected (PeerDisconnected, reason send_buffer_full)
};

// Who asks to come in through a listener, and for what (NetworkOptions::admit, docs/network.md
// "Admission").
struct AdmissionRequest {
  enum class Kind : std::uint8_t {
    peer,   // an accepted connection whose hello (schemas, name) passed the schema check
    group,  // such a peer asks to host remote group `name` (Manager::join_as_group on the other end)
  };
  Kind kind = Kind::peer;
  std::string address;   // "ip:port" of the other end
  std::string name;      // peer: the name in its hello (NetworkOptions::name of the other end); group: the group
  std::string identity;  // the authenticated identity of the other end; "" when the link does not authenticate
};
// Decides an AdmissionRequest: nullopt admits, a string refuses with that reason. The reason is
// sent to the other end (which gets PeerRefused, or network_error from join_as_group), logged at
// the drop-log rate and counted (admissions_refused); a refusal keeps no state. Called on the
// manager's thread during tick(); an exception it throws propagates out of tick() (a caller bug).
using AdmissionHook = std::function<std::optional<std::string>(const AdmissionRequest&)>;

// Per manager network options (Manager::enable_network); they apply to every connection.
struct NetworkOptions {
  // Name this manager gives itself in the handshake (PeerConnected::name on the other end): at most
  // 255 bytes of valid UTF-8 (listen() and connect() throw usage_error otherwise).
  std::string name;
  // Largest frame (transport message) sent or accepted: messages sent to a peer in one tick travel
  // together in frames of up to 256 KiB (or this size, if smaller; a single larger message goes
  // alone); one message too big for a frame is refused at send time
  // (too_large). A peer announcing a bigger frame is dropped before anything is allocated.
  // Both ends must agree (the receiver's limit is what counts).
  std::size_t max_message_size = std::size_t{1} << 20;
  // Bytes queued for one peer and not yet written to its socket.
  std::size_t send_buffer_limit = std::size_t{8} << 20;
  OverflowPolicy on_send_buffer_full = OverflowPolicy::disconnect;
  // Memory bound of the receiving end, per peer. A tick takes at most this many bytes from a
  // connection (plus the rest of the frame that crossed it) and decodes them; the rest waits for
  // the next tick, which then comes at once. Between ticks a connection holds at most this much
  // plus one frame received and then stops reading, so a peer that floods a receiver that lags
  // fills the kernel's buffers and then its own send buffer (on_send_buffer_full) instead of the
  // receiver's memory. NetworkStats::receive_buffered_bytes shows what is held (docs/network.md).
  std::size_t receive_buffer_limit = std::size_t{1} << 20;
  // A tick sends a heartbeat to each peer it sent nothing to for heartbeat_interval. A peer from
  // which nothing (data or heartbeat) arrived for heartbeat_timeout is dropped as dead.
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(1)};
  std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(10)};
  // How long connect() (and each reconnect attempt) waits for the TCP (and TLS) connection; every
  // address a name resolves to is tried within it. A refused connection fails at once. Name
  // resolution runs before it, on the manager's thread (docs/network.md).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  // Slow and silent peers (docs/reliability.md). A connection whose hello has not fully arrived
  // within hello_timeout of its start is dropped; so is a peer that started a frame and did not
  // finish it within frame_timeout (a trickle of bytes does not reset it, unlike the heartbeat).
  // frame_timeout bounds the time to receive max_message_size: keep it above that size divided by
  // the slowest link's rate.
  std::chrono::milliseconds hello_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds frame_timeout{std::chrono::seconds(30)};
  // Most peers (connections accepted, dialed or reconnecting) at once. A connection accepted while
  // max_peers exist is closed at once and counted (NetworkStats::peers_refused). 0 = no limit.
  // Datagram peers have their own, counted the same way (DatagramOptions::max_peers).
  std::size_t max_peers = 1024;
  // Most peers from one IP address at once (accepted connections, counted like max_peers: closed
  // at once, NetworkStats::peers_refused). 0 = no limit.
  std::size_t max_peers_per_address = 256;
  // Dropped-peer log lines (sage/log.hpp; stderr by default): the first drop_log_burst in each drop_log_interval, then
  // one summary line ("N more dropped peers not logged") per interval.
  unsigned drop_log_burst = 10;
  std::chrono::milliseconds drop_log_interval{std::chrono::seconds(10)};
  ReconnectPolicy reconnect{};
  TlsOptions tls{};
  // Closed by default: a listener hosts a remote group only if its name is listed here (or
  // `admit` admits it); any other join_group is refused with a reason. A name stays taken while
  // its node lives.
  std::vector<std::string> remote_groups;
  // Admission hook (see AdmissionHook): when set, it decides every peer and every group; when not,
  // every peer whose schemas can talk to ours is admitted, and the groups named in remote_groups.
  AdmissionHook admit;
  // Shared-key mode for tcp:// (docs/security.md "Shared keys"; not with tls, which authenticates
  // with certificates). listen(): a connection becomes a peer only after it proved one of these
  // keys in a handshake with fresh nonces on both sides (nothing is created for it before; a
  // recorded handshake replays to nothing); its identity is "key:" + the key's id. connect(): proves
  // keys[0] and requires the server to prove it too, within connect_timeout (as TLS, the handshake
  // is part of the connection: the listener must be ticking, in another thread or process), and
  // throws network_error with the listener's reason when it is refused. Every frame is then sealed (ChaCha20-Poly1305,
  // per-connection keys, a counter nonce): a tampered, replayed or injected frame drops the peer as
  // bad input. Failed handshakes are closed, counted (authentication_failures) and logged at the
  // drop-log rate. Empty: plain TCP.
  std::vector<SharedKey> keys;
  // Handshakes in progress at once on a listener, in all and from one IP address; more are closed
  // at once (counted as authentication_failures). Each must finish within hello_timeout.
  std::size_t max_handshakes = 128;
  std::size_t max_handshakes_per_address = 8;
};

// Where a listener is bound.
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string url;  // "tcp://host:port" or "tls+tcp://host:port"
};

// Local message queued to this manager when a peer finished its handshake (Sender = the peer).
struct PeerConnected {
  Sender peer;
  std::string address;  // "ip:port" of the other end
  std::string name;     // NetworkOptions::name of the other end
  bool outgoing = false;  // we connected to it (connect()), or it connected to us (listen())
  // What the other end proved: "key:<id>" (shared keys, either direction), the TLS listener's
  // TlsOptions::client_identity (incoming TLS peers), or "" (nothing proven).
  std::string identity;
};

// Local message queued when a connected peer is gone (Sender = the peer).
struct PeerDisconnected {
  Sender peer;
  std::string address;
  std::string name;
  Error reason;              // peer_gone (closed, reset, heartbeat timeout), send_buffer_full, bad input...
  bool reconnecting = false;  // ReconnectPolicy: a new attempt is under way
};

// Local message queued when the handshake with a peer was refused because the two ends' schemas
// cannot talk (docs/network.md "Schema evolution"), or it speaks another protocol version. Both
// ends get one: `by_peer` is false on the end that found the problem, true on the end that was told.
// `reason.detail` holds the diagnostics `sagec check --level wire` prints ("error: field
// evo.Order.id changed type from int to long"), also logged. The peer is then disconnected (no
// reconnect); send_message to it fails with Errc::incompatible and this reason.
struct PeerRefused {
  Sender peer;
  std::string address;  // "ip:port" of the other end
  std::string name;     // NetworkOptions::name of the other end ("" if its hello was not read)
  Error reason;         // Errc::incompatible (or malformed: a description that does not parse)
  bool by_peer = false;
};

// A connected or reconnecting peer (Manager::peers()).
struct PeerInfo {
  Sender peer;
  std::string address;
  std::string name;
  bool outgoing = false;
  bool connected = false;  // handshake done and not lost
  std::size_t pending_bytes = 0;
  std::string identity;  // as PeerConnected::identity
};

// Counters of a manager's network traffic since enable_network().
struct NetworkStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t accept_errors = 0;        // connections that failed before they were accepted (TLS, out of fds, aborted...)
  std::uint64_t connections_dialed = 0;
  std::uint64_t peers_connected = 0;      // handshakes completed
  std::uint64_t peers_disconnected = 0;
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t records_sent = 0;
  std::uint64_t records_received = 0;
  std::uint64_t bad_input = 0;            // connections dropped for garbage, bad frames, unknown types...
  std::uint64_t send_buffer_full = 0;     // sends refused because a peer's buffer was full
  std::uint64_t heartbeat_timeouts = 0;
  std::uint64_t hello_timeouts = 0;       // dropped: no complete hello within hello_timeout
  std::uint64_t frame_timeouts = 0;       // dropped: a frame not completed within frame_timeout
  std::uint64_t peers_refused = 0;        // accepted connections closed at once: max_peers reached
  std::uint64_t drop_logs_suppressed = 0; // dropped-peer lines not written (rate limit)
  std::uint64_t records_relayed = 0;      // main group: records of a remote group node forwarded to another group
  std::uint64_t undeliverable = 0;        // ... for a group that does not exist or does not know the type (logged once per node)
  std::uint64_t relays_refused = 0;       // ... between two remote groups whose schemas disagree about the type
                                          //     (logged once per pair and type with sagec check's diagnostics)
  std::uint64_t handshakes_refused = 0;   // handshakes refused (schemas cannot talk, old protocol): PeerRefused
  std::uint64_t admissions_refused = 0;   // peers and join_group requests refused by admission (remote_groups, admit)
  std::uint64_t authentication_failures = 0;  // connections that did not prove a shared key (NetworkOptions::keys)
  // Records not sent to a peer because its schemas do not have the message type: skipped by
  // broadcast_message, or sent before its handshake completed (logged). A send_message of such a
  // type fails at the call (Errc::incompatible) and is not counted here.
  std::uint64_t unknown_type_skipped = 0;
  std::string last_bad_input;             // why the last bad connection was dropped
  // Now, not a counter: bytes received from stream peers and not yet taken by a tick (each
  // connection holds at most receive_buffer_limit + one frame; docs/network.md "Memory").
  std::uint64_t receive_buffered_bytes = 0;
};

// listen() / connect() failed (address in use, refused, TLS files, timeout): an expected failure.
class network_error : public std::runtime_error {
 public:
  explicit network_error(Error e) : std::runtime_error("sage: network: " + e.message()), error_(std::move(e)) {}
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

// Caller bugs of the network API.
class not_a_peer : public usage_error {
 public:
  not_a_peer() : usage_error("sage: the Sender does not name a network peer") {}
};
class no_server : public usage_error {
 public:
  explicit no_server(std::size_t n)
      : usage_error("sage: send_message(msg) without a peer needs exactly one connect()ed server, this manager has " +
                    std::to_string(n)) {}
};

namespace detail {
class NetPump;
}

}  // namespace sage

// runtime/network/peer_transport.hpp: the narrow seam between the one peer lifecycle
// (peer_pump.hpp) and a network transport: TCP/TLS streams (stream_transport.cpp) and ENet
// datagrams (datagram_transport.cpp).
//
// The lifecycle owns every peer and every rule about peers (states, linger, drop, reconnect,
// hello timeout, max_peers, admission); a transport only makes connections and says when they
// arrive: listen, dial, accept (through PeerIntake), service, next deadline, and how to close one
// gracefully. Ownership: the PeerPump owns its transport; the transport outlives every Connection
// it made. Threads: every call on the manager's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sage/network.hpp"
#include "transport/connection.hpp"

namespace sage::detail {

// The lifecycle's side of a transport: told of every incoming connection, inline (during
// service(), so that ENet's packets that follow a connect in the same service() find it).
class PeerIntake {
 public:
  virtual ~PeerIntake() = default;
  // Whether a connection from `address` ("ip:port") may take a peer slot: nullopt, or why not (the
  // transport then closes it at once with its "full" signal; the lifecycle counted and logged it).
  virtual std::optional<Error> admit(const std::string& address) = 0;
  // An admitted connection: the lifecycle takes it (a new incoming peer, handshaking).
  virtual void accepted(std::unique_ptr<Connection> conn) = 0;
  // A connect that is not from a sage peer (ENet's connect data): bad input, counted and logged.
  virtual void rejected(const std::string& address, const Error& why) = 0;
  // A dialer of this intake connected inline, during service(): take() it now, so our hello
  // leaves with ENet's acknowledgement of the connect (a stream dialer's result waits for the poll).
  virtual void dialed(Dialer& dialer) = 0;
};

struct TransportCounters {
  std::uint64_t accept_errors = 0;     // connections that failed before they were accepted (TLS, out of fds)
  std::uint64_t timeouts = 0;          // peers the transport timed out itself (ENet)
  std::uint64_t bad_datagrams = 0;     // datagrams that are not traffic of a known peer (ENet)
  std::uint64_t early_unreliable = 0;  // unreliable packets that overtook the peer's hello (ENet)
  std::uint64_t authentication_failures = 0;  // connections that did not prove a shared key
  std::uint64_t challenges_answered = 0;      // challenge requests answered with a cookie (ENet listener)
  std::uint64_t unproven_connects = 0;        // ENet connects without a valid cookie: dropped, no reply
  std::uint64_t sealed_dropped = 0;           // sealed unreliable packets that did not open (ENet)
};

// Why a connection is closed gracefully (ENet sends it as its disconnect code).
enum class CloseReason : std::uint8_t { closed, shutdown };

class PeerTransport {
 public:
  virtual ~PeerTransport() = default;
  PeerTransport() = default;
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Binds and starts accepting into `intake`. Throws network_error (address in use, bad TLS files).
  virtual Endpoint listen(std::string_view host, std::uint16_t port, PeerIntake& intake) = 0;
  // A dialer for host:port (one attempt at a time; a failure is "cannot connect to URL: why").
  // Throws network_error when it cannot even be made (bad TLS files, no socket).
  virtual std::unique_ptr<Dialer> dialer(std::string_view host, std::uint16_t port, PeerIntake& intake) = 0;
  // Runs the transport's own work: accepts (into the intake), ENet's receive and timers. Never blocks.
  virtual void service() = 0;
  // After the channels flushed: sends what they queued (ENet's host flush), else nothing.
  virtual void flush() {}
  // When service() must run next at the latest (accept back-off, ENet timers); max() = never.
  virtual Clock::time_point next_deadline() const = 0;
  // Starts a graceful close of `conn` once what it queued has left (ENet's disconnect_later; a
  // stream closes when the lifecycle destroys the connection after drained()).
  virtual void start_close(Connection& conn, CloseReason why) = 0;
  // Whether a lingering connection can be destroyed now without losing what it queued (streams:
  // nothing pending; ENet: never: its disconnect arrives as the connection's failure()).
  virtual bool drained(const Connection& conn) const = 0;
  // Stops taking new connections (the lifecycle shuts down).
  virtual void stop_accepting() = 0;
  // What the transport counted itself (NetworkStats / DatagramStats).
  virtual TransportCounters counters() const = 0;
  // "ip:port" as the transport names it in messages ("enet://ip:port" for datagrams).
  virtual std::string who(const std::string& address) const { return address; }
  // The URL of a listener or a dial target ("tcp://h:p", "tls+tcp://h:p", "enet://h:p").
  virtual std::string url(std::string_view host, std::uint16_t port) const = 0;
};

}  // namespace sage::detail

namespace sage {
struct DatagramOptions;
}

namespace sage::detail {

// tcp:// on sage's own sockets (transport/tcp.hpp), or tls+tcp:// on nng's streams
// (transport/stream.hpp) when options.tls.enabled. stream_transport.cpp.
std::unique_ptr<PeerTransport> make_stream_transport(const NetworkOptions& options, std::shared_ptr<Waker> waker);
// ENet over UDP (transport/datagram.hpp): a listening host and an unbound one for dialing.
// datagram_transport.cpp.
std::unique_ptr<PeerTransport> make_datagram_transport(const DatagramOptions& options, std::shared_ptr<Waker> waker);

}  // namespace sage::detail

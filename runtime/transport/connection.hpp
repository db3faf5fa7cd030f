// runtime/transport/connection.hpp: the one seam under every sage transport.
//
// A Connection moves opaque transport messages (byte strings made of wire records, see
// docs/wire-format.md) between this process and one peer. It knows nothing about records, hellos,
// peers or actors: runtime/channel does that, once, over any Connection. Implementations: the link
// of process groups and the network's tcp:// connections (transport/socket_conn.hpp, a Unix
// socketpair or a TCP socket sage reads and writes itself, no nng; TCP ones made by
// transport/tcp.hpp), the network's TLS stream (transport/stream.hpp, nng streams); a datagram
// transport implements it too (per-send Delivery; ENet's servicing and timers belong to its host,
// reached through the peer lifecycle's transport seam, network/peer_transport.hpp). Listener and Dialer (below)
// make stream connections for the network.
//
// Readiness: a Connection is made with its manager's Waker and wakes it when something arrived or
// the peer went away: a SocketConn by having the Waker poll its fd (readable; writable only while
// output is queued), the nng streams by notify() from a transport callback. The owner then calls
// receive() on its own thread, at least once per wake-up (a SocketConn also writes queued output
// and rearms its fd there).
// Threads: every member is called by the owning (manager's) thread; transport threads (nng's)
// touch only the implementation's own synchronised state and the Waker.
// Ownership: a Connection is a resource (not copyable); destroying it closes it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sage/datagram.hpp"
#include "sage/result.hpp"
#include "transport/waker.hpp"

namespace sage::detail {

// Per-connection buffers (a channel's batch, a stream's outbound and read buffers) keep at most
// this much capacity once a burst is over, so a peer that once sent or received a big message does
// not hold that memory for the life of its connection (1,000 peers x 1 MiB otherwise).
inline constexpr std::size_t idle_buffer_bytes = 64 * 1024;

// Call with `v` empty, after it held `used_bytes`: frees its capacity when that is over
// idle_buffer_bytes and the last use took under a quarter of it (a steady stream of big batches
// keeps its buffer); the next use grows it again from nothing.
template <class T>
void release_excess(std::vector<T>& v, std::size_t used_bytes) {
  const std::size_t cap = v.capacity() * sizeof(T);
  if (cap <= idle_buffer_bytes || used_bytes * 4 >= cap) return;
  std::vector<T>().swap(v);
}

// Stream transports (IPC links, TCP): the Channel's batches stop growing at this size
// (ConnectionLimits::batch_size), so a burst travels as many moderate messages, not a few of
// max_message_size that each sit whole in the sender's, the transport's and the receiver's memory
// (measured: docs/performance.md "Memory"); a single larger record still goes alone.
inline constexpr std::size_t stream_batch_bytes = 256 * 1024;

// How one message travels (sage/datagram.hpp). Stream transports are always reliable and ordered
// and ignore it; the datagram transport maps each mode to ENet channels of its own.
using Delivery = sage::Delivery;

struct ConnectionLimits {
  // Largest transport message sent or accepted. send() refuses a bigger one (too_large) before
  // anything reaches the transport; a peer announcing a bigger one is dropped before allocation.
  std::size_t max_message_size = std::size_t{1} << 20;
  // Bytes given to send() and not yet taken by the transport: past it send() fails with
  // send_buffer_full and keeps nothing of the refused message. A connection with nothing pending
  // takes any one message (up to max_message_size): the Channel's batch, filled to its own
  // send_buffer_limit, grows by a frame header or its hello when handed over, and must still leave.
  std::size_t max_pending_bytes = std::size_t{8} << 20;
  // Received bytes not yet taken by receive(): past it the connection stops reading, so a slow
  // receiver fills the sender's buffers (back-pressure), not its own memory.
  std::size_t max_inbox_bytes = std::size_t{8} << 20;
  // The Channel starts a new transport message once a batch would pass this size (a single larger
  // record still goes alone, up to max_message_size). Datagram transports keep reliable batches
  // to a few datagrams, so that one retransmit holds back few records.
  std::size_t batch_size = SIZE_MAX;
  // Datagram transports: the Channel batches unreliable records into transport messages of at
  // most this size (one lost datagram loses one batch); a single larger record still goes alone.
  std::size_t unreliable_batch_size = SIZE_MAX;
};

class Connection {
 public:
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Queues one transport message (copies `body`). Never blocks, never drops: fails with
  // too_large, send_buffer_full or peer_gone and then has queued nothing.
  virtual Result<void> send(std::span<const std::byte> body, Delivery delivery = {}) = 0;
  // send() of a buffer the caller gives up (a Channel's batch): a transport that queues it may
  // keep the buffer itself instead of copying it. On success `body` is left empty, holding
  // whatever capacity the transport hands back (a buffer it finished writing, or its own again);
  // on failure it is untouched and nothing was queued.
  virtual Result<void> send_batch(std::vector<std::byte>& body, Delivery delivery = {}) {
    auto r = send(body, delivery);
    if (r) body.clear();
    return r;
  }
  // Bytes accepted by send() and not yet taken by the transport.
  virtual std::size_t pending_bytes() const = 0;
  // Bytes received and not yet taken by receive(): at most max_inbox_bytes plus the one message
  // whose arrival passed it (reading stops there). Stats and tests read it.
  virtual std::size_t received_bytes() const = 0;
  // Blocks until every accepted byte was taken by the transport, the connection failed, or the
  // deadline passed. Returns whether everything was taken.
  virtual bool wait_sent(Clock::time_point deadline) = 0;

  // Calls visit(std::span<const std::byte>) for up to `max` received transport messages, oldest
  // first. Each span starts on an 8-byte boundary and lives until visit returns. Never blocks.
  template <class Visitor>
  std::size_t receive(std::size_t max, Visitor&& visit) {
    return receive_impl(max, [](void* ctx, std::span<const std::byte> b) { (*static_cast<Visitor*>(ctx))(b); },
                        &visit);
  }

  // Set once the connection ended: peer_gone (closed, reset, the peer exited), truncated (it ended
  // inside a message), too_large / malformed (a bad frame header arrived). Messages received
  // before the failure can still be taken with receive().
  virtual std::optional<Error> failure() const = 0;
  // Time since bytes last arrived (a message in progress counts).
  virtual Clock::duration idle_for() const = 0;
  // Time since the first byte of a message that has not fully arrived yet (zero when none is in
  // progress): a peer that starts a frame and trickles it is caught by a deadline on this, which a
  // trickle never resets. Transports that deliver whole messages return zero.
  virtual Clock::duration partial_for() const { return Clock::duration::zero(); }
  // "ip:port" of the other end, or the IPC path.
  virtual const std::string& remote_address() const noexcept = 0;
  // What the other end proved in a shared-key handshake ("key:<id>"), else "" (see
  // secure/handshake.hpp; TLS identity is the listener's, PeerConfig::identity).
  virtual const std::string& identity() const noexcept {
    static const std::string none;
    return none;
  }
  virtual const ConnectionLimits& limits() const noexcept = 0;
  // Stops all I/O now (idempotent). What was not yet taken by the transport is lost.
  virtual void close() = 0;

  // Test hook: stop / resume reading (a slow receiver).
  virtual void pause_receiving(bool paused) = 0;

 protected:
  Connection() = default;
  virtual std::size_t receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) = 0;
};

// Accepts stream connections (TcpListener: tcp://, StreamListener: tls+tcp://). Every member on
// the owning thread.
class Listener {
 public:
  virtual ~Listener() = default;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  // The bound TCP port (the chosen one when listening on port 0).
  virtual std::uint16_t port() const noexcept = 0;
  // Connections accepted since the last call, already reading.
  virtual std::vector<std::unique_ptr<Connection>> take_accepted() = 0;
  // Connections that failed before they could be accepted (TLS handshake, out of fds...).
  virtual std::uint64_t accept_errors() const = 0;
  // Connections closed because they did not prove a shared key (wrong or unknown key, not the
  // handshake, too slow, too many at once), since the last call: their address and why.
  virtual std::vector<std::pair<std::string, Error>> take_refused() { return {}; }
  // When take_accepted() must run next at the latest (a back-off after an error), else max().
  virtual Clock::time_point next_deadline() const { return Clock::time_point::max(); }

 protected:
  Listener() = default;
};

// Dials one address, one attempt at a time (TcpDialer, StreamDialer). Every member on the owning
// thread; the Waker is woken when an attempt ends.
class Dialer {
 public:
  virtual ~Dialer() = default;
  Dialer(const Dialer&) = delete;
  Dialer& operator=(const Dialer&) = delete;
  // Starts one attempt that gives up after `timeout`. Precondition: !busy().
  virtual void start(std::chrono::milliseconds timeout) = 0;
  virtual bool busy() const = 0;
  // The result of the finished attempt (once), or nullopt while it runs / when none was started.
  // A failure is peer_gone ("cannot connect to URL: why").
  virtual std::optional<Result<std::unique_ptr<Connection>>> take() = 0;
  virtual const std::string& url() const noexcept = 0;
  // While an attempt runs: when take() must run next at the latest (its timeout), else max().
  virtual Clock::time_point next_deadline() const { return Clock::time_point::max(); }

 protected:
  Dialer() = default;
};

// Whether this process used the network: nng objects (TLS), a tcp:// socket (transport/tcp.hpp) or
// an ENet host (transport/datagram.hpp). The fork server must be started before that: nng's threads do not
// survive fork(), and a fork server must not hold copies of network sockets.
bool network_started() noexcept;
void mark_network_started() noexcept;

}  // namespace sage::detail

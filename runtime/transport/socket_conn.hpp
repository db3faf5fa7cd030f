// runtime/transport/socket_conn.hpp: a Connection over a plain stream socket owned by sage (the
// main <-> child link of process groups: one end of a Unix socketpair each; the network's tcp://
// connections, made by transport/tcp.hpp), no nng.
//
// Why: nng 1.5.2 does all I/O on its own threads, so every message crossed threads twice on each
// side (docs/performance.md "Where a round trip's time goes"). A SocketConn does its I/O on the
// owning (manager's) thread, inline:
// * send() writes the frame at once with one non-blocking sendmsg() (header and body, MSG_NOSIGNAL)
//   when nothing is queued; whatever the socket does not take is queued in user space and written
//   when the fd polls writable (the Waker watches POLLOUT only while output is queued) or at the
//   next send()/receive()/wait_sent(), several queued frames per sendmsg(). send_batch() queues
//   the caller's buffer itself (a Channel's batch: no copy) and hands back a spare one.
// * receive() reads from the socket, non-blocking, and hands out the frames it holds; the Waker
//   watches POLLIN while the connection reads. Nothing reads between receive() calls, so a manager
//   that stops ticking leaves the bytes in the kernel and the peer's sends queue up on its side
//   until its max_pending_bytes refuses them (back-pressure); one receive() reads at most
//   max(max_inbox_bytes, the frame in progress) bytes before it returns.
// * Buffers grown for a burst are kept while it lasts and let go at the first idle tick: the read
//   buffer (grown to the largest frame in progress; a big frame is read up to its end only, so it
//   never moves) by the second receive() in a row that reads and hands out nothing; the bodies of
//   written frames, kept as spares for the next queued ones (at most max_pending_bytes of them),
//   by a receive() that finds the queue empty with nothing queued since the receive() before.
// Frames are transport/frame.hpp (the framing of docs/wire-format.md "TCP framing"); a bad or
// oversize header fails the connection before its body is allocated. Bodies are handed out in place
// when they sit on an 8-byte boundary of the read buffer, else copied to aligned storage first.
//
// Failure: peer_gone when the peer closed or reset (EOF, ECONNRESET, EPIPE) with nothing of a frame
// left unread, truncated when it ended inside a frame, malformed / too_large for a bad header.
// The peer's loss is reported only once every byte that arrived before it was read, so what the
// peer sent before it left is never lost: receive() reads up to the end of file; failure() between
// receives answers from the last one when it read the socket dry (no system call), else peeks
// (MSG_PEEK, nothing consumed) for an end of file with nothing before it.
// Threads: none of its own; every member on the owning thread (Connection's contract).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "transport/connection.hpp"

namespace sage::detail::secure {
struct SessionKeys;
}

namespace sage::detail {

class SocketConn final : public Connection {
 public:
  // Takes ownership of `fd`, a connected stream socket (closed on error too); makes it non-blocking
  // and watches it on `waker`. `remote` is what remote_address() says.
  static Result<std::unique_ptr<SocketConn>> adopt(int fd, std::string remote, const ConnectionLimits& limits,
                                                   std::shared_ptr<Waker> waker);
  // A connection whose frames are sealed under `keys` (a shared-key handshake that already ran on
  // `fd`; secure/seal.hpp): every frame sent is sealed, every frame received must open, or the
  // connection fails (malformed: tampered, replayed, dropped or injected). max_message_size
  // counts plain bytes. identity() is "key:" + keys.key_id.
  static Result<std::unique_ptr<SocketConn>> adopt_sealed(int fd, std::string remote, const ConnectionLimits& limits,
                                                          std::shared_ptr<Waker> waker, const secure::SessionKeys& keys);
  // A connected pair of Unix stream sockets (socketpair, SOCK_CLOEXEC): {fd, fd}, or io_error.
  static Result<std::pair<int, int>> socket_pair();
  ~SocketConn() override;  // closes the socket; output not yet written is lost (see wait_sent())

  Result<void> send(std::span<const std::byte> body, Delivery delivery = {}) override;
  // Keeps `body`'s buffer in the queue (no copy) when the socket does not take it all at once.
  Result<void> send_batch(std::vector<std::byte>& body, Delivery delivery = {}) override;
  std::size_t pending_bytes() const override;
  std::size_t received_bytes() const override;  // read from the socket, not yet handed out
  bool wait_sent(Clock::time_point deadline) override;
  std::optional<Error> failure() const override;
  Clock::duration idle_for() const override;
  Clock::duration partial_for() const override;
  const std::string& remote_address() const noexcept override;
  const std::string& identity() const noexcept override;
  const ConnectionLimits& limits() const noexcept override;
  void close() override;
  void pause_receiving(bool paused) override;
  // Test hook: bytes of capacity its read and write buffers hold now.
  std::size_t buffer_capacity() const noexcept;

 private:
  struct Impl;
  explicit SocketConn(std::unique_ptr<Impl> impl);
  Result<void> submit(std::span<const std::byte> body, std::vector<std::byte>* owned);
  std::size_t receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) override;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sage::detail

// runtime/transport/link.hpp: the IPC Connection of process groups (nng pair0 over ipc://).
//
// A Link is one pair0 socket with exactly one peer (pair0 refuses a second pipe). An nng_recv_aio
// callback (on nng's threads) moves each arrival into the Link's inbox and notifies the manager's
// Waker, as the TCP StreamConn does; receive() takes them on the owner's thread, each body on an
// 8-byte boundary (copied when nng's is not). Past ConnectionLimits::max_inbox_bytes the Link stops
// receiving until receive() takes some, so a manager that stops ticking fills the peer's send
// buffer (back-pressure), not its own memory. NNG_OPT_RECVFD is never asked for: nng 1.5.2's pair0
// leaks the pipe behind it (2 fds per socket, fixed in nng 1.6), and nng creates it lazily.
// nng's threads run the receive, send-completion and pipe callbacks, which touch only the Link's
// mutex-protected queues and atomics and notify the Waker.
#pragma once

#include <memory>
#include <string>

#include "transport/connection.hpp"

namespace sage::detail {

class Link final : public Connection {
 public:
  enum class Role { listen, dial };

  // Opens a pair0 socket and listens on / dials `url` ("ipc:///path"). Dial blocks until
  // connected or fails. Errc::io_error when the socket cannot be made (out of fds, bad path).
  static Result<std::unique_ptr<Link>> open(Role role, const std::string& url, const ConnectionLimits& limits,
                                            std::shared_ptr<Waker> waker);
  ~Link() override;  // closes the socket; unsent and unreceived messages are freed

  Result<void> send(std::span<const std::byte> body, Delivery delivery = {}) override;
  std::size_t pending_bytes() const override;
  std::size_t received_bytes() const override;
  bool wait_sent(Clock::time_point deadline) override;
  std::optional<Error> failure() const override;
  Clock::duration idle_for() const override;
  const std::string& remote_address() const noexcept override;  // the URL
  const ConnectionLimits& limits() const noexcept override;
  void close() override;
  void pause_receiving(bool paused) override;

  bool connected() const noexcept;  // a peer pipe was attached at least once
  bool peer_gone() const noexcept;  // the peer's pipe went away after being attached

 private:
  struct Impl;
  explicit Link(std::unique_ptr<Impl> impl);
  std::size_t receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) override;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sage::detail

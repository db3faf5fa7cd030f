// runtime/transport/tcp.hpp: plain tcp:// listening and dialing owned by sage, no nng. Each
// connection is a SocketConn (transport/socket_conn.hpp): framed, non-blocking, read and written
// on the owning (manager's) thread. tls+tcp:// stays on nng streams (transport/stream.hpp).
//
// TcpListener: a non-blocking listening socket (SOCK_CLOEXEC, SO_REUSEADDR, backlog SOMAXCONN)
// watched by the manager's Waker (a waiting connection wakes wait_for_next_tick()); take_accepted()
// accept4()s what is waiting on every call, one EAGAIN when nothing is (a manager that calls
// tick() in a loop never waits, so "only after the Waker saw it" would never accept). Accepted sockets get
// TCP_NODELAY and SOCK_CLOEXEC. Resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) counts an
// accept error and stops accepting for 50 ms (next_deadline()), so the error does not spin;
// aborted connections (ECONNABORTED, EPROTO) count an error and are skipped.
//
// TcpDialer: one attempt at a time. start() resolves the host, then connects non-blocking
// (EINPROGRESS, then the Waker watches the socket for POLLOUT and take() reads SO_ERROR), trying
// each resolved address in turn, all within the attempt's timeout; past it take() reports
// "timed out". Name resolution is getaddrinfo() on the calling thread: a numeric address
// (127.0.0.1, ::1) never blocks, a name may block the manager's thread for as long as the system
// resolver takes (localhost and /etc/hosts names answer at once).
//
// Addresses: host "" (or "*") listens on every IPv4 address; a name listens on its first address
// that binds, IPv4 ones first (localhost: 127.0.0.1); an IPv6 literal may come with or without
// brackets. remote_address() is "a.b.c.d:port" or "[v6]:port".
// Shared-key mode (KeyOptions with keys): before a connection exists for anyone, the dialer and
// the listener run the handshake of secure/handshake.hpp on the socket, non-blocking, within the
// handshake timeout; the connection they hand out is sealed (SocketConn::adopt_sealed). A listener
// holds at most KeyOptions::max_handshakes handshakes in progress (max_handshakes_per_address from
// one IP address); past that, or when a handshake fails or times out, the socket is closed (with a
// refusal code when the client named a key) and take_refused() reports it. Nothing but the
// handshake's few hundred bytes is held per socket before the client proved the key.
// Threads: none; every member on the owning thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "secure/handshake.hpp"
#include "transport/connection.hpp"

namespace sage::detail {

struct KeyOptions {
  std::vector<secure::NamedKey> keys;  // listener: the keys it accepts; dialer: keys[0] is proved. Empty: plain
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(5)};
  std::size_t max_handshakes = 128;
  std::size_t max_handshakes_per_address = 8;
};

class TcpListener final : public Listener {
 public:
  // Errc::io_error naming tcp://host:port if the address cannot be resolved or bound.
  static Result<std::unique_ptr<TcpListener>> open(std::string_view host, std::uint16_t port,
                                                   const ConnectionLimits& limits, std::shared_ptr<Waker> waker,
                                                   KeyOptions keys = {});
  ~TcpListener() override;

  std::uint16_t port() const noexcept override;
  std::vector<std::unique_ptr<Connection>> take_accepted() override;
  std::uint64_t accept_errors() const override;
  std::vector<std::pair<std::string, Error>> take_refused() override;
  Clock::time_point next_deadline() const override;

 private:
  struct Impl;
  explicit TcpListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class TcpDialer final : public Dialer {
 public:
  // Never fails today (resolution happens in start()); a Result for symmetry with StreamDialer.
  static Result<std::unique_ptr<TcpDialer>> open(std::string_view host, std::uint16_t port,
                                                 const ConnectionLimits& limits, std::shared_ptr<Waker> waker,
                                                 KeyOptions keys = {});
  ~TcpDialer() override;

  void start(std::chrono::milliseconds timeout) override;
  bool busy() const override;
  std::optional<Result<std::unique_ptr<Connection>>> take() override;
  const std::string& url() const noexcept override;
  Clock::time_point next_deadline() const override;

 private:
  struct Impl;
  explicit TcpDialer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sage::detail

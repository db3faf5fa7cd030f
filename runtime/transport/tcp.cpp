// Plain TCP listening and dialing (runtime/transport/tcp.hpp): sockets owned by sage, each
// connection a SocketConn.
#include "transport/tcp.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "transport/socket_conn.hpp"
#include "transport/stream.hpp"

namespace sage::detail {

using namespace std::chrono_literals;

namespace {

constexpr auto accept_backoff = 50ms;

std::string address_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a.sin6_port));
  }
  return "?";
}

std::string strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::string(host);
}

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) ::freeaddrinfo(list);
  }
};

// getaddrinfo for a stream socket; an error text, or "" with `out` filled.
std::string resolve(const std::string& host, std::uint16_t port, bool passive, AddrInfo& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  const bool any = host.empty() || host == "*";
  if (any) hints.ai_family = AF_INET;  // every IPv4 address, as nng's tcp://:port
  const std::string service = std::to_string(port);
  const int rv = ::getaddrinfo(any ? nullptr : host.c_str(), service.c_str(), &hints, &out.list);
  if (rv != 0) return "cannot resolve '" + host + "': " + (rv == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rv));
  if (!out.list) return "'" + host + "' has no address";
  return {};
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// TcpListener

struct TcpListener::Impl {
  int fd = -1;
  std::uint16_t port = 0;
  ConnectionLimits limits;
  std::shared_ptr<Waker> waker;
  std::uint64_t errors = 0;
  Clock::time_point backoff_until{};  // epoch: not backing off

  ~Impl() {
    if (fd >= 0) {
      waker->unwatch(fd);
      ::close(fd);
    }
  }
};

TcpListener::TcpListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpListener::~TcpListener() = default;

Result<std::unique_ptr<TcpListener>> TcpListener::open(std::string_view host_in, std::uint16_t port,
                                                       const ConnectionLimits& limits, std::shared_ptr<Waker> waker) {
  // No nng here, but the rule "enable_groups() before any network call" stays: a fork server
  // started later would hold copies of this process's sockets (a listener that never closes, peers
  // that never see EOF).
  mark_network_started();
  const std::string host = strip_brackets(host_in);
  const std::string url = stream_url(host, port, false);
  auto fail = [&](const std::string& what) -> Result<std::unique_ptr<TcpListener>> {
    return Error{Errc::io_error, "cannot listen on " + url + ": " + what};
  };
  AddrInfo ai;
  if (auto err = resolve(host, port, true, ai); !err.empty()) return fail(err);
  // A name with both (localhost: 127.0.0.1 and ::1) binds its IPv4 address when it can: that is
  // the one numeric clients use.
  std::vector<addrinfo*> order;
  for (addrinfo* a = ai.list; a; a = a->ai_next) order.push_back(a);
  std::stable_partition(order.begin(), order.end(), [](const addrinfo* a) { return a->ai_family == AF_INET; });
  std::string last = "no usable address";
  for (addrinfo* a : order) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      last = std::strerror(errno);
      ::close(fd);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      last = std::strerror(errno);
      ::close(fd);
      continue;
    }
    auto impl = std::make_unique<Impl>();
    impl->fd = fd;
    impl->port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                                 : reinterpret_cast<sockaddr_in&>(ss).sin_port);
    impl->limits = limits;
    impl->waker = std::move(waker);
    impl->waker->watch(fd, true, false);
    return std::unique_ptr<TcpListener>(new TcpListener(std::move(impl)));
  }
  return fail(last);
}

std::uint16_t TcpListener::port() const noexcept { return impl_->port; }
std::uint64_t TcpListener::accept_errors() const { return impl_->errors; }

Clock::time_point TcpListener::next_deadline() const {
  return impl_->backoff_until == Clock::time_point{} ? Clock::time_point::max() : impl_->backoff_until;
}

std::vector<std::unique_ptr<Connection>> TcpListener::take_accepted() {
  Impl& im = *impl_;
  std::vector<std::unique_ptr<Connection>> out;
  if (im.backoff_until != Clock::time_point{}) {
    if (Clock::now() < im.backoff_until) return out;
    im.backoff_until = {};
  }
  // accept4() every call, not only after the Waker saw the socket readable: a manager that ticks
  // without waiting (tick(0) in a loop) never polls, and one EAGAIN per tick is cheap.
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int fd = ::accept4(im.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd);
      auto conn = SocketConn::adopt(fd, address_text(ss), im.limits, im.waker);
      if (conn) out.push_back(std::move(*conn));
      else ++im.errors;
      continue;
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (would_block(e)) break;
    ++im.errors;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
      // Stay disarmed and retry after a pause: the connection stays in the backlog meanwhile.
      im.backoff_until = Clock::now() + accept_backoff;
      return out;
    }
    // ECONNABORTED, EPROTO, ...: that connection is gone; accept the next one.
  }
  im.waker->rearm(im.fd);
  return out;
}

// ---------------------------------------------------------------------------------------------
// TcpDialer

struct TcpDialer::Impl {
  std::string host;
  std::uint16_t port = 0;
  std::string url;
  ConnectionLimits limits;
  std::shared_ptr<Waker> waker;
  bool busy = false;
  std::optional<Result<std::unique_ptr<Connection>>> result;
  Clock::time_point deadline{};
  std::chrono::milliseconds timeout{0};
  AddrInfo addrs;
  addrinfo* next = nullptr;  // the next address to try
  int fd = -1;               // the connect in progress
  std::string last_error;

  ~Impl() { close_fd(); }

  void close_fd() {
    if (fd < 0) return;
    waker->unwatch(fd);
    ::close(fd);
    fd = -1;
  }

  void finish(Result<std::unique_ptr<Connection>> r) {
    close_fd();
    if (addrs.list) {
      ::freeaddrinfo(addrs.list);
      addrs.list = nullptr;
    }
    next = nullptr;
    busy = false;
    result = std::move(r);
  }

  Error failed(const std::string& why) const { return Error{Errc::peer_gone, "cannot connect to " + url + ": " + why}; }

  // The connection is up: hand the socket to a SocketConn.
  void connected() {
    const int s = fd;
    waker->unwatch(fd);
    fd = -1;
    set_nodelay(s);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    std::string remote = ::getpeername(s, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? address_text(ss) : url;
    auto conn = SocketConn::adopt(s, std::move(remote), limits, waker);
    if (!conn) return finish(failed(conn.error().message()));
    finish(std::unique_ptr<Connection>(std::move(*conn)));
  }

  // Starts connecting to the next address; finishes the attempt when none is left.
  void try_next() {
    while (next) {
      addrinfo* a = next;
      next = a->ai_next;
      fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        last_error = std::strerror(errno);
        continue;
      }
      int rv;
      do rv = ::connect(fd, a->ai_addr, a->ai_addrlen);
      while (rv != 0 && errno == EINTR);
      if (rv == 0) return connected();
      if (errno == EINPROGRESS) {
        waker->watch(fd, false, true);
        return;
      }
      last_error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
    finish(failed(last_error));
  }

  // The connect in progress: done (either way), or still running.
  void check() {
    if (fd < 0) return;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 0) > 0 && p.revents) {
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) return connected();
      last_error = std::strerror(err);
      close_fd();
      if (Clock::now() < deadline) return try_next();
      return finish(failed(last_error));
    }
    if (Clock::now() >= deadline)
      return finish(failed("timed out after " + std::to_string(timeout.count()) + " ms (connect_timeout)"));
    waker->rearm(fd);
  }
};

TcpDialer::TcpDialer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpDialer::~TcpDialer() = default;

Result<std::unique_ptr<TcpDialer>> TcpDialer::open(std::string_view host, std::uint16_t port,
                                                   const ConnectionLimits& limits, std::shared_ptr<Waker> waker) {
  mark_network_started();  // as TcpListener::open
  auto impl = std::make_unique<Impl>();
  impl->host = strip_brackets(host);
  impl->port = port;
  impl->url = stream_url(impl->host, port, false);
  impl->limits = limits;
  impl->waker = std::move(waker);
  return std::unique_ptr<TcpDialer>(new TcpDialer(std::move(impl)));
}

void TcpDialer::start(std::chrono::milliseconds timeout) {
  Impl& im = *impl_;
  if (im.busy) return;
  im.result.reset();
  im.busy = true;
  im.timeout = timeout;
  im.deadline = Clock::now() + timeout;
  im.last_error = "no address";
  if (im.addrs.list) {
    ::freeaddrinfo(im.addrs.list);
    im.addrs.list = nullptr;
  }
  if (auto err = resolve(im.host, im.port, false, im.addrs); !err.empty()) return im.finish(im.failed(err));
  im.next = im.addrs.list;
  im.try_next();
  if (!im.busy) im.waker->notify();  // finished at once: the owner's next wait returns for take()
}

bool TcpDialer::busy() const { return impl_->busy; }

std::optional<Result<std::unique_ptr<Connection>>> TcpDialer::take() {
  Impl& im = *impl_;
  if (im.busy) im.check();
  if (im.busy || !im.result) return std::nullopt;
  auto r = std::move(im.result);
  im.result.reset();
  return r;
}

const std::string& TcpDialer::url() const noexcept { return impl_->url; }

Clock::time_point TcpDialer::next_deadline() const {
  return impl_->busy ? impl_->deadline : Clock::time_point::max();
}

}  // namespace sage::detail

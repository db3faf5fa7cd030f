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
#include <utility>

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

// Reads up to `want` bytes in all into `buf`, non-blocking: 1 when it holds them, 0 when the socket
// has nothing more now, -1 on end of file or an error (`why` says which).
int read_up_to(int fd, std::vector<std::byte>& buf, std::size_t want, std::string& why) {
  while (buf.size() < want) {
    const std::size_t at = buf.size();
    buf.resize(want);
    const ssize_t n = ::recv(fd, buf.data() + at, want - at, MSG_DONTWAIT);
    buf.resize(at + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) return 0;
    why = n == 0 ? "the other end closed the connection" : std::strerror(errno);
    return -1;
  }
  return 1;
}

// Writes a handshake message whole, non-blocking: a fresh socket's buffer always has room for a
// few hundred bytes, so a short write means the connection is broken.
bool write_all(int fd, std::span<const std::byte> bytes) {
  ssize_t n;
  do n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(bytes.size());
}

std::string ip_of(const std::string& address) {  // "a.b.c.d:port" / "[v6]:port" -> the address part
  const auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

std::string ms_text(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

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
  KeyOptions keys;

  // A shared-key handshake in progress on an accepted socket (nothing else exists for it yet).
  struct Handshake {
    int fd = -1;
    std::string remote, ip;
    std::vector<std::byte> buf;
    std::size_t want = secure::magic_bytes + 1;  // bytes of the message being read
    bool hello_done = false;                    // K1 read and K2 sent: reading K3
    secure::ServerHandshake hs;
    Clock::time_point deadline;
  };
  std::vector<std::unique_ptr<Handshake>> handshakes;
  std::vector<std::pair<std::string, Error>> refused;  // since the last take_refused() (at most 1024)

  ~Impl() {
    for (auto& h : handshakes) close_handshake(*h);
    if (fd >= 0) {
      waker->unwatch(fd);
      ::close(fd);
    }
  }

  void close_handshake(Handshake& h) {
    if (h.fd < 0) return;
    waker->unwatch(h.fd);
    ::close(h.fd);
    h.fd = -1;
  }

  void refuse(const std::string& remote, std::string why) {
    if (refused.size() < 1024) refused.emplace_back(remote, Error{Errc::not_admitted, std::move(why)});
  }

  // Fails handshake `h` (its socket is closed; `code`, if any, is sent first).
  void fail(Handshake& h, std::string why, std::optional<secure::KeyRefusal> code = std::nullopt) {
    if (code) (void)write_all(h.fd, secure::refusal_bytes(*code));
    close_handshake(h);
    refuse(h.remote, "shared-key handshake failed: " + std::move(why));
  }

  // Starts the handshake of a socket just accepted, or refuses it (too many at once).
  void begin(int s, std::string remote) {
    const std::string ip = ip_of(remote);
    const auto from_ip = std::count_if(handshakes.begin(), handshakes.end(), [&](const auto& h) { return h->ip == ip; });
    if (handshakes.size() >= keys.max_handshakes || static_cast<std::size_t>(from_ip) >= keys.max_handshakes_per_address) {
      (void)write_all(s, secure::refusal_bytes(secure::KeyRefusal::busy));
      ::close(s);
      refuse(remote, "too many shared-key handshakes in progress (" + std::to_string(handshakes.size()) + " in all, " +
                         std::to_string(from_ip) + " from " + ip + ")");
      return;
    }
    auto h = std::make_unique<Handshake>();
    h->fd = s;
    h->remote = std::move(remote);
    h->ip = ip;
    h->deadline = Clock::now() + keys.handshake_timeout;
    waker->watch(s, true, false);
    handshakes.push_back(std::move(h));
  }

  // Advances handshake `h`: a sealed connection once K3 verified, else nothing (still running, or
  // failed: fd closed).
  std::unique_ptr<Connection> advance(Handshake& h) {
    for (;;) {
      std::string why;
      const int r = read_up_to(h.fd, h.buf, h.want, why);
      if (r < 0) {
        fail(h, why);
        return nullptr;
      }
      if (r == 0) {
        if (Clock::now() >= h.deadline) fail(h, "not finished within " + ms_text(keys.handshake_timeout));
        else waker->rearm(h.fd);
        return nullptr;
      }
      if (!h.hello_done && h.buf.size() == secure::magic_bytes + 1) {
        // The start of K1: its size comes from the key id's length.
        if (!secure::is_k1_magic(h.buf)) {
          fail(h, "the other end sent no shared-key hello (a sage peer without NetworkOptions::keys, or another protocol)",
               secure::KeyRefusal::version);
          return nullptr;
        }
        const auto size = secure::k1_size(h.buf);
        if (!size) {
          fail(h, "a shared-key hello with a key id of the wrong length", secure::KeyRefusal::version);
          return nullptr;
        }
        h.want = *size;
        continue;
      }
      if (!h.hello_done) {
        const std::string id(reinterpret_cast<const char*>(h.buf.data() + secure::magic_bytes + 1),
                             h.buf.size() - secure::k1_fixed);
        if (std::none_of(keys.keys.begin(), keys.keys.end(), [&](const auto& k) { return k.id == id; })) {
          fail(h, "unknown key id", secure::KeyRefusal::unknown_key);
          return nullptr;
        }
        auto k2 = h.hs.on_hello(h.buf, keys.keys);
        if (!k2) {
          fail(h, k2.error().detail, secure::KeyRefusal::bad_proof);
          return nullptr;
        }
        if (!write_all(h.fd, *k2)) {
          fail(h, "cannot write the handshake's answer");
          return nullptr;
        }
        h.hello_done = true;
        h.buf.clear();
        h.want = secure::k3_bytes;
        continue;
      }
      auto session = h.hs.on_finish(h.buf);
      if (!session) {
        fail(h, session.error().detail);
        return nullptr;
      }
      const int s = h.fd;
      waker->unwatch(s);
      h.fd = -1;
      auto conn = SocketConn::adopt_sealed(s, h.remote, limits, waker, *session);
      if (!conn) {
        refuse(h.remote, conn.error().message());
        return nullptr;
      }
      return std::move(*conn);
    }
  }

  void advance_all(std::vector<std::unique_ptr<Connection>>& out) {
    for (auto& h : handshakes)
      if (auto c = advance(*h)) out.push_back(std::move(c));
    std::erase_if(handshakes, [](const auto& h) { return h->fd < 0; });
  }
};

TcpListener::TcpListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpListener::~TcpListener() = default;

Result<std::unique_ptr<TcpListener>> TcpListener::open(std::string_view host_in, std::uint16_t port,
                                                       const ConnectionLimits& limits, std::shared_ptr<Waker> waker,
                                                       KeyOptions keys) {
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
    impl->keys = std::move(keys);
    impl->waker->watch(fd, true, false);
    return std::unique_ptr<TcpListener>(new TcpListener(std::move(impl)));
  }
  return fail(last);
}

std::uint16_t TcpListener::port() const noexcept { return impl_->port; }
std::uint64_t TcpListener::accept_errors() const { return impl_->errors; }

Clock::time_point TcpListener::next_deadline() const {
  Clock::time_point t = impl_->backoff_until == Clock::time_point{} ? Clock::time_point::max() : impl_->backoff_until;
  for (const auto& h : impl_->handshakes) t = std::min(t, h->deadline);
  return t;
}

std::vector<std::pair<std::string, Error>> TcpListener::take_refused() { return std::exchange(impl_->refused, {}); }

std::vector<std::unique_ptr<Connection>> TcpListener::take_accepted() {
  Impl& im = *impl_;
  std::vector<std::unique_ptr<Connection>> out;
  im.advance_all(out);
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
      if (!im.keys.keys.empty()) {
        im.begin(fd, address_text(ss));
        continue;
      }
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
  if (!im.keys.keys.empty()) im.advance_all(out);  // the ones just accepted may have sent K1 already
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
  KeyOptions keys;
  // Shared-key mode: the handshake runs on `fd` once it connected.
  std::optional<secure::ClientHandshake> hs;
  std::vector<std::byte> reply;
  std::string remote;

  ~Impl() { close_fd(); }

  void close_fd() {
    if (fd < 0) return;
    waker->unwatch(fd);
    ::close(fd);
    fd = -1;
  }

  void finish(Result<std::unique_ptr<Connection>> r) {
    close_fd();
    hs.reset();
    reply.clear();
    if (addrs.list) {
      ::freeaddrinfo(addrs.list);
      addrs.list = nullptr;
    }
    next = nullptr;
    busy = false;
    result = std::move(r);
  }

  Error failed(const std::string& why) const { return Error{Errc::peer_gone, "cannot connect to " + url + ": " + why}; }

  // The connection is up: hand the socket to a SocketConn, or start the shared-key handshake.
  void connected() {
    set_nodelay(fd);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    remote = ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? address_text(ss) : url;
    if (!keys.keys.empty()) {
      hs.emplace(keys.keys.front());
      if (!write_all(fd, hs->hello())) return finish(failed("cannot write the shared-key hello"));
      waker->unwatch(fd);  // watched for the connect (or not at all, if it connected at once)
      waker->watch(fd, true, false);
      return handshake();
    }
    const int s = fd;
    waker->unwatch(fd);
    fd = -1;
    auto conn = SocketConn::adopt(s, remote, limits, waker);
    if (!conn) return finish(failed(conn.error().message()));
    finish(std::unique_ptr<Connection>(std::move(*conn)));
  }

  // Reads K2 (or a refusal), answers K3 and hands out the sealed connection.
  void handshake() {
    const std::size_t want = reply.size() < secure::magic_bytes                 ? secure::magic_bytes
                             : secure::is_refusal_magic(reply)                    ? secure::k2_refusal_bytes
                             : secure::is_k2_magic(reply)                         ? secure::k2_bytes
                                                                                  : 0;
    if (want == 0)
      return finish(Error{Errc::not_admitted, "cannot connect to " + url +
                                                  ": it does not speak the shared-key handshake (does it listen with "
                                                  "NetworkOptions::keys?)"});
    std::string why;
    const int r = read_up_to(fd, reply, want, why);
    if (r < 0)
      return finish(failed(why + " during the shared-key handshake (a listener without NetworkOptions::keys closes "
                                 "such connections)"));
    if (r == 0) {
      if (Clock::now() >= deadline)
        return finish(failed("the shared-key handshake did not finish within " + ms_text(timeout) + " (connect_timeout)"));
      waker->rearm(fd);
      return;
    }
    if (reply.size() == secure::magic_bytes) return handshake();  // the magic says how much follows
    auto done = hs->on_reply(reply);
    if (!done) return finish(Error{done.error().code, "cannot connect to " + url + ": " + done.error().detail});
    if (!write_all(fd, done->second)) return finish(failed("cannot write the shared-key finish"));
    const int s = fd;
    waker->unwatch(fd);
    fd = -1;
    auto conn = SocketConn::adopt_sealed(s, remote, limits, waker, done->first);
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
    if (hs) return handshake();
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
                                                   const ConnectionLimits& limits, std::shared_ptr<Waker> waker,
                                                   KeyOptions keys) {
  mark_network_started();  // as TcpListener::open
  auto impl = std::make_unique<Impl>();
  impl->host = strip_brackets(host);
  impl->port = port;
  impl->url = stream_url(impl->host, port, false);
  impl->limits = limits;
  impl->waker = std::move(waker);
  impl->keys = std::move(keys);
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

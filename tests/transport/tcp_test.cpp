// sage's own TCP listener and dialer (runtime/transport/tcp.hpp) over real loopback sockets:
// refused and timed-out dials, IPv6, accepting many at once, half-open and silent peers, a peer
// that ends inside a frame, and buffers let go after a burst. No threads: each loop waits on the
// Wakers the way a manager's tick does.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "connection_support.hpp"
#include "raw_tcp.hpp"
#include "transport/frame.hpp"
#include "transport/socket_conn.hpp"
#include "transport/tcp.hpp"

using namespace sage::detail;
using sage::detail::test::bytes;
using sage::detail::test::receive_n;
using namespace std::chrono_literals;

namespace {

// Waits (on `w`) for the dial to end; nullopt if it did not end within `limit`.
std::optional<sage::Result<std::unique_ptr<Connection>>> finish(Dialer& d, Waker& w, Clock::duration limit) {
  const auto deadline = Clock::now() + limit;
  std::optional<sage::Result<std::unique_ptr<Connection>>> r;
  while (!(r = d.take()) && Clock::now() < deadline) w.wait_until(std::min(d.next_deadline(), Clock::now() + 50ms));
  return r;
}

// Accepts until `count` connections were taken or 10 s passed.
std::vector<std::unique_ptr<Connection>> accept_n(Listener& l, Waker& w, std::size_t count) {
  std::vector<std::unique_ptr<Connection>> out;
  const auto deadline = Clock::now() + 10s;
  while (out.size() < count && Clock::now() < deadline) {
    for (auto& c : l.take_accepted()) out.push_back(std::move(c));
    if (out.size() < count) w.wait_until(Clock::now() + 50ms);
  }
  return out;
}

// A plain blocking client socket connected to 127.0.0.1:port.
int raw_client(std::uint16_t port) { return sage::test_support::raw_tcp_connect(port); }

// A port nothing listens on: bound by us (so nobody else takes it) but never listening.
struct ClosedPort {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  std::uint16_t port = 0;
  ClosedPort() {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    port = ntohs(sa.sin_port);
  }
  ~ClosedPort() { ::close(fd); }
};

}  // namespace

TEST_CASE("a TCP dial to a port nobody listens on fails with 'connection refused' naming the address, well within the deadline") {
  auto waker = std::make_shared<Waker>();
  ClosedPort closed;
  auto dialer = TcpDialer::open("127.0.0.1", closed.port, {}, waker).value();
  const auto started = Clock::now();
  dialer->start(5s);
  auto r = finish(*dialer, *waker, 10s);
  REQUIRE(r);
  REQUIRE_FALSE(r->ok());
  CHECK(r->error().code == sage::Errc::peer_gone);
  CHECK(r->error().detail.find("tcp://127.0.0.1:" + std::to_string(closed.port)) != std::string::npos);
  CHECK(r->error().detail.find("refused") != std::string::npos);
  CHECK(Clock::now() - started < 5s);
  CHECK_FALSE(dialer->busy());
  CHECK_FALSE(dialer->take());  // the result is handed out once
}

TEST_CASE("a TCP dial to a listener whose backlog is full gives up at its timeout with 'timed out'") {
  // A listening socket that never accepts, with the smallest backlog: once its queue is full the
  // kernel drops further SYNs, so the next connect neither succeeds nor fails by itself.
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(lfd, 0) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  const std::uint16_t port = ntohs(sa.sin_port);
  auto waker = std::make_shared<Waker>();
  std::vector<std::unique_ptr<Dialer>> fillers;
  std::optional<sage::Result<std::unique_ptr<Connection>>> r;
  // Dial until one attempt hangs: the first few complete into the backlog.
  for (int i = 0; i < 16 && !r; ++i) {
    auto d = TcpDialer::open("127.0.0.1", port, {}, waker).value();
    d->start(300ms);
    auto got = finish(*d, *waker, 5s);
    REQUIRE(got);
    if (!got->ok()) r = std::move(got);
    fillers.push_back(std::move(d));
  }
  ::close(lfd);
  REQUIRE(r);
  CHECK(r->error().code == sage::Errc::peer_gone);
  CHECK(r->error().detail.find("timed out after 300 ms") != std::string::npos);
}

TEST_CASE("a TCP dial to a name that does not resolve fails with the resolver's reason") {
  auto waker = std::make_shared<Waker>();
  auto dialer = TcpDialer::open("no-such-host.invalid", 1, {}, waker).value();
  dialer->start(2s);
  auto r = finish(*dialer, *waker, 30s);
  REQUIRE(r);
  REQUIRE_FALSE(r->ok());
  CHECK(r->error().detail.find("cannot resolve 'no-such-host.invalid'") != std::string::npos);
}

TEST_CASE("a TCP listener on IPv6 loopback accepts a dial to ::1 and names both ends with brackets") {
  auto wa = std::make_shared<Waker>(), wb = std::make_shared<Waker>();
  auto listener = TcpListener::open("::1", 0, {}, wa);
  if (!listener) {
    MESSAGE("no IPv6 loopback here: " << listener.error().message());
    return;
  }
  CHECK((*listener)->port() != 0);
  auto dialer = TcpDialer::open("[::1]", (*listener)->port(), {}, wb).value();
  CHECK(dialer->url() == "tcp://[::1]:" + std::to_string((*listener)->port()));
  dialer->start(5s);
  auto r = finish(*dialer, *wb, 10s);
  REQUIRE(r);
  REQUIRE(r->ok());
  auto accepted = accept_n(**listener, *wa, 1);
  REQUIRE(accepted.size() == 1);
  CHECK(accepted[0]->remote_address().rfind("[::1]:", 0) == 0);
  CHECK((**r)->remote_address() == "[::1]:" + std::to_string((*listener)->port()));
  REQUIRE((**r)->send(bytes(100, 1)).ok());
  auto got = receive_n(*accepted[0], *wa, 1, r->value().get());
  REQUIRE(got.size() == 1);
  CHECK(got[0] == bytes(100, 1));
}

TEST_CASE("a TCP listener on 'localhost' takes its IPv4 address, reached both by 127.0.0.1 and by the name") {
  auto wa = std::make_shared<Waker>(), wb = std::make_shared<Waker>();
  auto listener = TcpListener::open("localhost", 0, {}, wa).value();
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto dialer = TcpDialer::open(host, listener->port(), {}, wb).value();
    dialer->start(5s);
    auto r = finish(*dialer, *wb, 10s);
    REQUIRE(r);
    REQUIRE(r->ok());
    CHECK(r->value()->remote_address() == "127.0.0.1:" + std::to_string(listener->port()));
    CHECK(accept_n(*listener, *wa, 1).size() == 1);
  }
}

TEST_CASE("a TCP listener on a port in use fails with io_error naming tcp://host:port") {
  auto waker = std::make_shared<Waker>();
  auto first = TcpListener::open("127.0.0.1", 0, {}, waker).value();
  auto second = TcpListener::open("127.0.0.1", first->port(), {}, waker);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == sage::Errc::io_error);
  CHECK(second.error().detail.find("tcp://127.0.0.1:" + std::to_string(first->port())) != std::string::npos);
  CHECK(second.error().detail.find("in use") != std::string::npos);
}

TEST_CASE("a TCP listener hands out every connection waiting in its backlog, and none when nothing waits") {
  auto waker = std::make_shared<Waker>();
  auto listener = TcpListener::open("127.0.0.1", 0, {}, waker).value();
  CHECK(listener->take_accepted().empty());
  std::vector<int> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(raw_client(listener->port()));
  auto accepted = accept_n(*listener, *waker, 20);
  CHECK(accepted.size() == 20);
  CHECK(listener->take_accepted().empty());
  CHECK(listener->accept_errors() == 0);
  for (auto& c : accepted) CHECK(c->remote_address().rfind("127.0.0.1:", 0) == 0);
  for (int fd : clients) ::close(fd);
}

TEST_CASE("a half-open TCP peer: silence is not a failure, its end of file with nothing pending is peer_gone") {
  auto waker = std::make_shared<Waker>();
  auto listener = TcpListener::open("127.0.0.1", 0, {}, waker).value();
  const int fd = raw_client(listener->port());
  auto accepted = accept_n(*listener, *waker, 1);
  REQUIRE(accepted.size() == 1);
  Connection& c = *accepted[0];
  // Silent: nothing arrives, nothing fails; idle_for() grows (the network's hello and heartbeat
  // deadlines act on it).
  CHECK(c.receive(SIZE_MAX, [](std::span<const std::byte>) {}) == 0);
  CHECK_FALSE(c.failure());
  waker->wait_until(Clock::now() + 30ms);
  CHECK(c.idle_for() >= 20ms);
  // The peer shuts down its sending half: that is the end of what it will ever send.
  REQUIRE(::shutdown(fd, SHUT_WR) == 0);
  const auto deadline = Clock::now() + 10s;
  while (!c.failure() && Clock::now() < deadline) {
    c.receive(SIZE_MAX, [](std::span<const std::byte>) {});
    waker->wait_until(Clock::now() + 50ms);
  }
  REQUIRE(c.failure());
  CHECK(c.failure()->code == sage::Errc::peer_gone);
  ::close(fd);
}

TEST_CASE("a TCP peer that ends inside a frame is reported truncated, after the whole frames before it") {
  auto waker = std::make_shared<Waker>();
  auto listener = TcpListener::open("127.0.0.1", 0, {}, waker).value();
  const int fd = raw_client(listener->port());
  auto accepted = accept_n(*listener, *waker, 1);
  REQUIRE(accepted.size() == 1);
  std::byte frame[frame_header_size + 16] = {};
  write_frame_header(frame, 16);
  REQUIRE(::write(fd, frame, sizeof frame) == static_cast<ssize_t>(sizeof frame));
  write_frame_header(frame, 64);
  REQUIRE(::write(fd, frame, frame_header_size + 10) == static_cast<ssize_t>(frame_header_size + 10));
  ::close(fd);
  Connection& c = *accepted[0];
  std::size_t whole = 0;
  const auto deadline = Clock::now() + 10s;
  while (!c.failure() && Clock::now() < deadline) {
    whole += c.receive(SIZE_MAX, [](std::span<const std::byte>) {});
    waker->wait_until(Clock::now() + 50ms);
  }
  REQUIRE(c.failure());
  CHECK(whole == 1);
  CHECK(c.failure()->code == sage::Errc::truncated);
}

// Issue 13: 1,000 peers that each once sent or received a big message must not keep its size each.
TEST_CASE("a TCP socket connection lets go of buffers grown for big frames once they are sent and read") {
  auto wa = std::make_shared<Waker>(), wb = std::make_shared<Waker>();
  auto listener = TcpListener::open("127.0.0.1", 0, {}, wa).value();
  auto dialer = TcpDialer::open("127.0.0.1", listener->port(), {}, wb).value();
  dialer->start(5s);
  auto r = finish(*dialer, *wb, 10s);
  REQUIRE(r);
  REQUIRE(r->ok());
  auto accepted = accept_n(*listener, *wa, 1);
  REQUIRE(accepted.size() == 1);
  auto& sender = dynamic_cast<SocketConn&>(*r->value());
  auto& receiver = dynamic_cast<SocketConn&>(*accepted[0]);
  for (int i = 0; i < 8; ++i) REQUIRE(sender.send(bytes(512 * 1024, i)).ok());
  const auto got = receive_n(receiver, *wa, 8, &sender);
  REQUIRE(got.size() == 8);
  CHECK(got[7] == bytes(512 * 1024, 7));
  REQUIRE(sender.wait_sent(Clock::now() + 10s));
  // Let go at the first idle tick: the second receive() in a row that finds nothing.
  for (int tick = 0; tick < 2; ++tick) {
    receiver.receive(SIZE_MAX, [](std::span<const std::byte>) {});
    sender.receive(SIZE_MAX, [](std::span<const std::byte>) {});
  }
  CHECK(sender.buffer_capacity() <= idle_buffer_bytes);
  CHECK(receiver.buffer_capacity() <= idle_buffer_bytes);
}

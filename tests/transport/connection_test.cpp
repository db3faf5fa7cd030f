// The Connection implementations on their own (runtime/transport): the IPC link (a socketpair)
// and the TCP connections (sage's sockets for tcp://, nng's stream for tls+tcp://), through the one interface the Channel uses. Real sockets on loopback; nng's
// callback threads run for TCP, so this is a `threaded` test (TSan). A socket link has no thread
// of its own: loops that wait for one end let the other end write what it queued (wait_sent with a
// deadline of now), as its manager's tick would.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "groups/process.hpp"
#include "connection_support.hpp"
#include "transport/socket_conn.hpp"
#include "transport/stream.hpp"
#include "transport/tcp.hpp"

using namespace sage::detail;
using sage::detail::test::bytes;
using sage::detail::test::receive_n;
using namespace std::chrono_literals;

namespace {

struct Ends {
  std::shared_ptr<Waker> wa = std::make_shared<Waker>(), wb = std::make_shared<Waker>();
  std::unique_ptr<Connection> a, b;
  std::unique_ptr<Listener> listener;  // TCP only
};

Ends ipc_pair(ConnectionLimits la = {}, ConnectionLimits lb = {}) {
  Ends e;
  auto fds = SocketConn::socket_pair().value();
  e.a = SocketConn::adopt(fds.first, "a", la, e.wa).value();
  e.b = SocketConn::adopt(fds.second, "b", lb, e.wb).value();
  return e;
}

// Both ends of one TCP connection on loopback: `listener` accepts the one `dialer` makes.
Ends connect_pair(Ends e, std::unique_ptr<Dialer> dialer) {
  dialer->start(5s);
  const auto deadline = Clock::now() + 10s;
  std::optional<sage::Result<std::unique_ptr<Connection>>> r;
  while (!(r = dialer->take()) && Clock::now() < deadline) e.wb->wait_until(Clock::now() + 50ms);
  REQUIRE(r);
  REQUIRE(r->ok());
  e.b = std::move(**r);
  while (!e.a && Clock::now() < deadline) {
    auto acc = e.listener->take_accepted();
    if (!acc.empty()) e.a = std::move(acc.front());
    else e.wa->wait_until(Clock::now() + 50ms);
  }
  REQUIRE(e.a);
  return e;
}

// nng's TCP stream (the transport of tls+tcp://, here without TLS).
Ends tcp_pair(ConnectionLimits la = {}, ConnectionLimits lb = {}) {
  Ends e;
  e.listener = StreamListener::open("tcp://127.0.0.1:0", {}, la, e.wa).value();
  auto dialer = StreamDialer::open(stream_url("127.0.0.1", e.listener->port(), false), {}, lb, e.wb).value();
  return connect_pair(std::move(e), std::move(dialer));
}

// sage's own TCP sockets (the transport of tcp://): TcpListener / TcpDialer, SocketConn ends.
Ends tcp_socket_pair(ConnectionLimits la = {}, ConnectionLimits lb = {}) {
  Ends e;
  e.listener = TcpListener::open("127.0.0.1", 0, la, e.wa).value();
  auto dialer = TcpDialer::open("127.0.0.1", e.listener->port(), lb, e.wb).value();
  return connect_pair(std::move(e), std::move(dialer));
}

void delivers_in_order(Ends e) {
  for (int i = 0; i < 200; ++i) REQUIRE(e.b->send(bytes(static_cast<std::size_t>(i * 13 + 1), i)).ok());
  REQUIRE(e.a->send(bytes(5, 42)).ok());
  auto at_a = receive_n(*e.a, *e.wa, 200, e.b.get());
  REQUIRE(at_a.size() == 200);
  for (int i = 0; i < 200; ++i) CHECK(at_a[static_cast<std::size_t>(i)] == bytes(static_cast<std::size_t>(i * 13 + 1), i));
  auto at_b = receive_n(*e.b, *e.wb, 1);
  REQUIRE(at_b.size() == 1);
  CHECK(at_b[0] == bytes(5, 42));
  CHECK(e.b->wait_sent(Clock::now() + 10s));
  CHECK(e.b->pending_bytes() == 0);
  CHECK_FALSE(e.a->failure());
}

void refuses_oversize(Ends e) {
  auto r = e.b->send(bytes(e.b->limits().max_message_size + 1, 1));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::too_large);
  CHECK(e.b->pending_bytes() == 0);  // nothing of it was kept
  REQUIRE(e.b->send(bytes(e.b->limits().max_message_size, 2)).ok());  // the limit itself is fine
  CHECK(receive_n(*e.a, *e.wa, 1, e.b.get()).size() == 1);
}

void reports_peer_gone(Ends e) {
  REQUIRE(e.b->send(bytes(16, 3)).ok());
  CHECK(e.b->wait_sent(Clock::now() + 10s));
  e.b.reset();  // the peer goes away
  const auto deadline = Clock::now() + 20s;
  std::size_t got = 0;
  while (!e.a->failure() && Clock::now() < deadline) {
    got += e.a->receive(SIZE_MAX, [](std::span<const std::byte>) {});
    e.wa->wait_until(Clock::now() + 100ms);
  }
  got += e.a->receive(SIZE_MAX, [](std::span<const std::byte>) {});
  REQUIRE(e.a->failure());
  CHECK(e.a->failure()->code == sage::Errc::peer_gone);
  CHECK(got == 1);  // what arrived before the loss is still delivered
  auto r = e.a->send(bytes(8, 4));
  const auto send_deadline = Clock::now() + 10s;
  while (r.ok() && Clock::now() < send_deadline) {  // the failure may need a write to show
    e.wa->wait_until(Clock::now() + 50ms);
    r = e.a->send(bytes(8, 4));
  }
  CHECK_FALSE(r.ok());
}

using MakeEnds = Ends (*)(ConnectionLimits, ConnectionLimits);

void back_pressure_fills_the_senders_buffer(ConnectionLimits sender, ConnectionLimits receiver, MakeEnds make) {
  Ends e = make(receiver, sender);
  e.a->pause_receiving(true);  // a receiver that does not read
  std::size_t accepted = 0;
  sage::Result<void> r;
  const auto deadline = Clock::now() + 30s;
  while ((r = e.b->send(bytes(64 * 1024, 5))).ok() && Clock::now() < deadline) {
    ++accepted;
    if (accepted % 16 == 0) e.wb->wait_until(Clock::now() + 5ms);  // let the transport take some
  }
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::send_buffer_full);
  CHECK(e.b->pending_bytes() <= sender.max_pending_bytes);
  e.a->pause_receiving(false);  // reading again drains everything that was accepted
  CHECK(receive_n(*e.a, *e.wa, accepted, e.b.get()).size() == accepted);
}

// A Channel fills its batch up to send_buffer_limit (= max_pending_bytes) and hands it over with
// a frame header: an idle connection must take it, or the batch never leaves (a group that
// flooded its link to exactly the limit stopped sending for good).
void idle_takes_one_message_over_the_limit(MakeEnds make) {
  ConnectionLimits sender;
  sender.max_pending_bytes = 4096;
  Ends e = make({}, sender);
  REQUIRE(e.b->pending_bytes() == 0);
  REQUIRE(e.b->send(bytes(sender.max_pending_bytes, 6)).ok());  // frame = limit + header
  auto got = receive_n(*e.a, *e.wa, 1, e.b.get());
  REQUIRE(got.size() == 1);
  CHECK(got[0] == bytes(sender.max_pending_bytes, 6));
  // The limit still holds while anything is pending.
  e.a->pause_receiving(true);
  sage::Result<void> r;
  const auto deadline = Clock::now() + 30s;
  while ((r = e.b->send(bytes(1024, 7))).ok() && Clock::now() < deadline) {}
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::send_buffer_full);
  CHECK(e.b->pending_bytes() <= sender.max_pending_bytes);
}

}  // namespace

TEST_CASE("an IPC link with nothing pending takes one message over its pending limit, so a full batch always leaves") {
  idle_takes_one_message_over_the_limit(ipc_pair);
}
TEST_CASE("a TCP stream with nothing pending takes one message over its pending limit, so a full batch always leaves") {
  idle_takes_one_message_over_the_limit(tcp_pair);
}
TEST_CASE("a TCP socket connection with nothing pending takes one message over its pending limit, so a full batch "
          "always leaves") {
  idle_takes_one_message_over_the_limit(tcp_socket_pair);
}

TEST_CASE("an IPC link delivers messages both ways, in order, 8-aligned, and drains on wait_sent") {
  delivers_in_order(ipc_pair());
}
TEST_CASE("a TCP stream delivers messages both ways, in order, 8-aligned, and drains on wait_sent") {
  delivers_in_order(tcp_pair());
}
TEST_CASE("a TCP socket connection delivers messages both ways, in order, 8-aligned, and drains on wait_sent") {
  delivers_in_order(tcp_socket_pair());
}
TEST_CASE("an IPC link refuses a message over its size limit at send and keeps nothing of it") {
  ConnectionLimits l;
  l.max_message_size = 4096;
  refuses_oversize(ipc_pair(l, l));
}
TEST_CASE("a TCP stream refuses a message over its size limit at send and keeps nothing of it") {
  ConnectionLimits l;
  l.max_message_size = 4096;
  refuses_oversize(tcp_pair(l, l));
}
TEST_CASE("a TCP socket connection refuses a message over its size limit at send and keeps nothing of it") {
  ConnectionLimits l;
  l.max_message_size = 4096;
  refuses_oversize(tcp_socket_pair(l, l));
}
TEST_CASE("an IPC link reports the peer gone after delivering what arrived before") {
  reports_peer_gone(ipc_pair());
}
TEST_CASE("a TCP stream reports the peer gone after delivering what arrived before") {
  reports_peer_gone(tcp_pair());
}
TEST_CASE("a TCP socket connection reports the peer gone after delivering what arrived before") {
  reports_peer_gone(tcp_socket_pair());
}
TEST_CASE("an IPC link whose receiver stops reading fails sends with send_buffer_full, then drains") {
  ConnectionLimits s, r;
  s.max_pending_bytes = 1 << 20;
  r.max_inbox_bytes = 256 * 1024;
  back_pressure_fills_the_senders_buffer(s, r, ipc_pair);
}
TEST_CASE("a TCP stream whose receiver stops reading fails sends with send_buffer_full, then drains") {
  ConnectionLimits s, r;
  s.max_pending_bytes = 1 << 20;
  r.max_inbox_bytes = 256 * 1024;
  back_pressure_fills_the_senders_buffer(s, r, tcp_pair);
}
TEST_CASE("a TCP socket connection whose receiver stops reading fails sends with send_buffer_full, then drains") {
  ConnectionLimits s, r;
  s.max_pending_bytes = 1 << 20;
  r.max_inbox_bytes = 256 * 1024;
  back_pressure_fills_the_senders_buffer(s, r, tcp_socket_pair);
}

TEST_CASE("a TCP stream drops a peer announcing a frame over the limit before allocating it") {
  ConnectionLimits l;
  l.max_message_size = 4096;
  auto waker = std::make_shared<Waker>();
  auto listener = StreamListener::open("tcp://127.0.0.1:0", {}, l, waker).value();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(listener->port());
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  std::byte header[frame_header_size];
  write_frame_header(header, 0x7ffffff0u);
  REQUIRE(::write(fd, header, sizeof header) == static_cast<ssize_t>(sizeof header));
  std::unique_ptr<Connection> conn;
  const auto deadline = Clock::now() + 20s;
  while ((!conn || !conn->failure()) && Clock::now() < deadline) {
    if (!conn) {
      auto acc = listener->take_accepted();
      if (!acc.empty()) conn = std::move(acc.front());
    }
    waker->wait_until(Clock::now() + 50ms);
  }
  ::close(fd);
  REQUIRE(conn);
  REQUIRE(conn->failure());
  CHECK(conn->failure()->code == sage::Errc::too_large);
  CHECK(conn->remote_address().find("127.0.0.1") == 0);
}

TEST_CASE("a TCP listener on an address in use fails with io_error naming it") {
  auto waker = std::make_shared<Waker>();
  auto first = StreamListener::open("tcp://127.0.0.1:0", {}, {}, waker).value();
  const std::string url = stream_url("127.0.0.1", first->port(), false);
  auto second = StreamListener::open(url, {}, {}, waker);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == sage::Errc::io_error);
  CHECK(second.error().detail.find(url) != std::string::npos);
}

// Issue 13: 1,000 peers that each once sent or received a big message must not keep its size each.
TEST_CASE("a TCP stream lets go of buffers grown for big frames once they are sent and read") {
  Ends e = tcp_pair();
  auto& sender = dynamic_cast<StreamConn&>(*e.b);
  auto& receiver = dynamic_cast<StreamConn&>(*e.a);
  REQUIRE(sender.buffer_capacity() <= sage::detail::idle_buffer_bytes + 16 * 1024);  // the read buffer
  for (int i = 0; i < 8; ++i) REQUIRE(e.b->send(bytes(512 * 1024, i)).ok());
  const auto got = receive_n(*e.a, *e.wa, 8);
  REQUIRE(got.size() == 8);
  CHECK(got[7] == bytes(512 * 1024, 7));
  REQUIRE(e.b->wait_sent(Clock::now() + 10s));
  // The release runs on nng's callback thread right after the last write: wait for it.
  const auto deadline = Clock::now() + 10s;
  while ((sender.buffer_capacity() > sage::detail::idle_buffer_bytes + 16 * 1024 ||
          receiver.buffer_capacity() > sage::detail::idle_buffer_bytes + 16 * 1024) &&
         Clock::now() < deadline)
    e.wb->wait_until(Clock::now() + 10ms);
  CHECK(sender.buffer_capacity() <= sage::detail::idle_buffer_bytes + 16 * 1024);
  CHECK(receiver.buffer_capacity() <= sage::detail::idle_buffer_bytes + 16 * 1024);
}

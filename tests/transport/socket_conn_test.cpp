// The socket Connection of process groups (runtime/transport/socket_conn.hpp) on real Unix
// socketpairs, and the frame parser it shares with the TCP stream (runtime/transport/frame.hpp).
// Both ends live on this thread, as a SocketConn has no thread of its own: a loop that waits for
// one end keeps the other one's manager "ticking" (writing what it queued).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "transport/frame.hpp"
#include "connection_support.hpp"
#include "transport/socket_conn.hpp"

using namespace sage::detail;
using sage::detail::test::bytes;
using sage::detail::test::receive_n;
using namespace std::chrono_literals;

namespace {

struct Pair {
  std::shared_ptr<Waker> wa = std::make_shared<Waker>(), wb = std::make_shared<Waker>();
  std::unique_ptr<SocketConn> a, b;
  explicit Pair(ConnectionLimits la = {}, ConnectionLimits lb = {}, int sndbuf = 0) {
    auto fds = SocketConn::socket_pair().value();
    if (sndbuf > 0) {
      ::setsockopt(fds.first, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      ::setsockopt(fds.second, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    a = SocketConn::adopt(fds.first, "a", la, wa).value();
    b = SocketConn::adopt(fds.second, "b", lb, wb).value();
  }
};

}  // namespace

TEST_CASE("the frame parser asks for the header, then for the whole body, then yields the frame") {
  std::vector<std::byte> f(frame_header_size + 5);
  write_frame_header(f.data(), 5);
  auto s = next_frame(std::span(f.data(), 3), 100);
  CHECK(s.kind == FrameStep::Kind::need_more);
  CHECK(s.need == frame_header_size);
  s = next_frame(std::span(f.data(), frame_header_size + 2), 100);
  CHECK(s.kind == FrameStep::Kind::need_more);
  CHECK(s.need == frame_header_size + 5);
  s = next_frame(f, 100);
  CHECK(s.kind == FrameStep::Kind::frame);
  CHECK(s.length == 5);
}

TEST_CASE("the frame parser refuses a foreign header and an oversize length from the header alone") {
  std::vector<std::byte> f(frame_header_size);
  write_frame_header(f.data(), 0x7ffffff0u);
  CHECK(next_frame(f, 4096).kind == FrameStep::Kind::too_large);
  CHECK(next_frame(f, 4096).length == 0x7ffffff0u);
  f[5] = std::byte{'X'};
  CHECK(next_frame(f, SIZE_MAX).kind == FrameStep::Kind::malformed);
}

TEST_CASE("a socket connection delivers messages both ways in order, each 8-aligned, without copying aligned ones") {
  Pair p;
  for (int i = 0; i < 300; ++i) REQUIRE(p.b->send(bytes(static_cast<std::size_t>(i * 13 + 1), i)).ok());
  REQUIRE(p.a->send(bytes(5, 42)).ok());
  auto at_a = receive_n(*p.a, *p.wa, 300, p.b.get());
  REQUIRE(at_a.size() == 300);
  for (int i = 0; i < 300; ++i) CHECK(at_a[static_cast<std::size_t>(i)] == bytes(static_cast<std::size_t>(i * 13 + 1), i));
  auto at_b = receive_n(*p.b, *p.wb, 1);
  REQUIRE(at_b.size() == 1);
  CHECK(at_b[0] == bytes(5, 42));
  CHECK(p.b->wait_sent(Clock::now() + 10s));
  CHECK(p.b->pending_bytes() == 0);
  CHECK_FALSE(p.a->failure());
  CHECK_FALSE(p.b->failure());
}

TEST_CASE("a socket connection writes a big message through a small socket buffer in pieces and loses nothing") {
  Pair p({}, {}, 4096);
  std::vector<std::vector<std::byte>> sent;
  for (int i = 0; i < 3; ++i) sent.push_back(bytes(700 * 1024 + static_cast<std::size_t>(i), i));
  for (auto& m : sent) REQUIRE(p.b->send(m).ok());
  CHECK(p.b->pending_bytes() > 0);  // the socket took only a piece
  auto got = receive_n(*p.a, *p.wa, 3, p.b.get());
  REQUIRE(got.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(got[i] == sent[i]);
  CHECK(p.b->pending_bytes() == 0);
  // While the burst lasts, the buffers grown for it are kept (the read buffer, the written frames'
  // bodies as spares); they are let go at the first idle tick: a receive() that finds nothing
  // after one that found nothing either (the first one ends a busy tick's reading).
  CHECK(p.a->buffer_capacity() > idle_buffer_bytes);
  for (int tick = 0; tick < 2; ++tick) {
    CHECK(p.a->receive(SIZE_MAX, [](std::span<const std::byte>) { FAIL("nothing more was sent"); }) == 0);
    CHECK(p.b->receive(SIZE_MAX, [](std::span<const std::byte>) { FAIL("nothing was sent this way"); }) == 0);
  }
  CHECK(p.a->buffer_capacity() <= idle_buffer_bytes);
  CHECK(p.b->buffer_capacity() <= idle_buffer_bytes);
}

TEST_CASE("a socket connection queues a batch's own buffer, reuses written ones and lets them go when idle") {
  ConnectionLimits lb;
  lb.batch_size = 256 * 1024;
  Pair p({}, lb, 4096);
  std::vector<std::vector<std::byte>> sent;
  std::vector<std::byte> batch;
  for (int i = 0; i < 6; ++i) {
    sent.push_back(bytes(200 * 1024 + 8 * static_cast<std::size_t>(i), i));
    batch = sent.back();
    const std::byte* const data = batch.data();
    REQUIRE(p.b->send_batch(batch).ok());
    CHECK(batch.empty());
    // The socket took a piece of the first one; the queue kept the buffer itself, not a copy,
    // and handed back a spare (none yet: nothing was written whole).
    if (i == 0) CHECK(batch.data() != data);
  }
  CHECK(p.b->pending_bytes() > 5 * 200 * 1024);
  auto got = receive_n(*p.a, *p.wa, 6, p.b.get());
  REQUIRE(got.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(got[i] == sent[i]);
  CHECK(p.b->pending_bytes() == 0);
  // Written bodies stay as spares while the burst lasts: the next batch needs no allocation.
  CHECK(p.b->buffer_capacity() > idle_buffer_bytes);
  for (int tick = 0; tick < 2; ++tick) {
    CHECK(p.a->receive(SIZE_MAX, [](std::span<const std::byte>) { FAIL("nothing more was sent"); }) == 0);
    CHECK(p.b->receive(SIZE_MAX, [](std::span<const std::byte>) { FAIL("nothing was sent this way"); }) == 0);
  }
  CHECK(p.a->buffer_capacity() <= idle_buffer_bytes);
  CHECK(p.b->buffer_capacity() <= idle_buffer_bytes);
}

TEST_CASE("a socket connection's waker watches for writing only while output waits") {
  Pair p({}, {}, 4096);
  REQUIRE(p.b->send(bytes(256 * 1024, 1)).ok());
  REQUIRE(p.b->pending_bytes() > 0);
  // The reader takes some: the socket polls writable and wakes b's waker.
  std::size_t got = 0;
  const auto deadline = Clock::now() + 20s;
  bool woke = false;
  while (!woke && Clock::now() < deadline) {
    got += p.a->receive(SIZE_MAX, [](std::span<const std::byte>) {});
    woke = p.wb->wait_until(Clock::now() + 10ms);
  }
  CHECK(woke);
  REQUIRE(receive_n(*p.a, *p.wa, 1 - got, p.b.get()).size() == 1 - got);
  REQUIRE(p.b->pending_bytes() == 0);
  // Nothing queued, nothing arriving: an idle connection does not wake its manager.
  (void)p.b->receive(SIZE_MAX, [](std::span<const std::byte>) {});
  CHECK_FALSE(p.wb->wait_until(Clock::now() + 50ms));
}

TEST_CASE("a socket connection refuses a message over its size limit at send and keeps nothing of it") {
  ConnectionLimits l;
  l.max_message_size = 1024;
  Pair p(l, l);
  auto r = p.b->send(bytes(1025, 0));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::too_large);
  CHECK(r.error().message().find("1025") != std::string::npos);
  CHECK(p.b->pending_bytes() == 0);
  REQUIRE(p.b->send(bytes(1024, 0)).ok());
  CHECK(receive_n(*p.a, *p.wa, 1).size() == 1);
}

TEST_CASE("a socket connection drops a peer announcing a frame over the limit before allocating it") {
  ConnectionLimits l;
  l.max_message_size = 4096;
  auto w = std::make_shared<Waker>();
  auto fds = SocketConn::socket_pair().value();
  auto conn = SocketConn::adopt(fds.first, "raw peer", l, w).value();
  std::byte header[frame_header_size];
  write_frame_header(header, 0x7ffffff0u);
  REQUIRE(::write(fds.second, header, sizeof header) == static_cast<ssize_t>(sizeof header));
  REQUIRE(w->wait_until(Clock::now() + 20s));
  CHECK(conn->receive(SIZE_MAX, [](std::span<const std::byte>) {}) == 0);
  REQUIRE(conn->failure());
  CHECK(conn->failure()->code == sage::Errc::too_large);
  CHECK(conn->buffer_capacity() <= 4096);  // nothing was allocated for the announced body
  CHECK(conn->failure()->message().find("raw peer") != std::string::npos);
  ::close(fds.second);
}

TEST_CASE("a socket connection whose peer closes inside a frame reports truncated after the whole frames") {
  auto w = std::make_shared<Waker>();
  auto fds = SocketConn::socket_pair().value();
  auto conn = SocketConn::adopt(fds.first, "peer", {}, w).value();
  std::vector<std::byte> stream(frame_header_size + 3);
  write_frame_header(stream.data(), 3);
  std::vector<std::byte> half(frame_header_size + 10);
  write_frame_header(half.data(), 100);  // announces 100 bytes, sends 10
  stream.insert(stream.end(), half.begin(), half.end());
  REQUIRE(::write(fds.second, stream.data(), stream.size()) == static_cast<ssize_t>(stream.size()));
  ::close(fds.second);
  std::size_t got = 0;
  const auto deadline = Clock::now() + 20s;
  while (!conn->failure() && Clock::now() < deadline) {
    got += conn->receive(SIZE_MAX, [](std::span<const std::byte> b) { CHECK(b.size() == 3); });
    w->wait_until(Clock::now() + 100ms);
  }
  CHECK(got == 1);
  REQUIRE(conn->failure());
  CHECK(conn->failure()->code == sage::Errc::truncated);
  CHECK(conn->failure()->message().find("18 of 108") != std::string::npos);
}

TEST_CASE("a socket connection reports the peer gone only after delivering what arrived before") {
  Pair p;
  REQUIRE(p.b->send(bytes(16, 3)).ok());
  REQUIRE(p.b->send(bytes(24, 4)).ok());
  p.b.reset();
  CHECK_FALSE(p.a->failure());  // two messages wait: not gone yet
  auto got = receive_n(*p.a, *p.wa, 2);
  CHECK(got.size() == 2);
  (void)p.a->receive(SIZE_MAX, [](std::span<const std::byte>) {});
  REQUIRE(p.a->failure());
  CHECK(p.a->failure()->code == sage::Errc::peer_gone);
  auto r = p.a->send(bytes(8, 4));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::peer_gone);  // EPIPE, without a SIGPIPE
  // A closed peer stops being watched: the waker does not spin on its end of file.
  CHECK_FALSE(p.wa->wait_until(Clock::now() + 50ms));
}

TEST_CASE("a socket connection whose receiver stops reading fails sends with send_buffer_full, then drains all") {
  ConnectionLimits sender;
  sender.max_pending_bytes = 1 << 20;
  ConnectionLimits receiver;
  receiver.max_inbox_bytes = 256 * 1024;
  Pair p(receiver, sender);
  p.a->pause_receiving(true);
  std::size_t accepted = 0;
  sage::Result<void> last;
  const auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline) {
    last = p.b->send(bytes(64 * 1024, static_cast<int>(accepted)));
    if (!last) break;
    ++accepted;
  }
  REQUIRE_FALSE(last.ok());
  CHECK(last.error() == sage::Errc::send_buffer_full);
  CHECK(p.b->pending_bytes() > 0);
  CHECK(p.b->pending_bytes() <= sender.max_pending_bytes);
  CHECK(p.a->receive(SIZE_MAX, [](std::span<const std::byte>) {}) == 0);  // paused: nothing is read
  p.a->pause_receiving(false);
  auto got = receive_n(*p.a, *p.wa, accepted, p.b.get());
  REQUIRE(got.size() == accepted);
  for (std::size_t i = 0; i < accepted; ++i) CHECK(got[i] == bytes(64 * 1024, static_cast<int>(i)));
  CHECK(p.b->wait_sent(Clock::now() + 20s));
  CHECK(p.b->pending_bytes() == 0);
}

TEST_CASE("one receive reads at most the inbox limit, and what it leaves wakes the next wait") {
  ConnectionLimits receiver;
  receiver.max_inbox_bytes = 8 * 1024;
  Pair p(receiver, {});
  for (int i = 0; i < 64; ++i) REQUIRE(p.b->send(bytes(1024, i)).ok());
  REQUIRE(p.b->wait_sent(Clock::now() + 10s));
  REQUIRE(p.wa->wait_until(Clock::now() + 20s));
  const std::size_t first = p.a->receive(SIZE_MAX, [](std::span<const std::byte>) {});
  CHECK(first > 0);
  CHECK(first < 64);
  CHECK(p.wa->wait_until(Clock::now() + 20s));  // the rest is still in the socket: woken at once
  CHECK(receive_n(*p.a, *p.wa, 64 - first).size() == 64 - first);
}

TEST_CASE("a socket connection hands out bodies of any length on 8-byte boundaries") {
  Pair p;
  for (std::size_t n : {1u, 3u, 7u, 9u, 13u, 8u, 0u, 5u}) REQUIRE(p.b->send(bytes(n, static_cast<int>(n))).ok());
  auto got = receive_n(*p.a, *p.wa, 8);  // receive_n checks each body's alignment
  REQUIRE(got.size() == 8);
  CHECK(got[2] == bytes(7, 7));
  CHECK(got[6].empty());
}

TEST_CASE("waiting on a waker returns at the deadline when nothing arrives and early when notified") {
  Waker w;
  const auto t0 = Clock::now();
  CHECK_FALSE(w.wait_until(t0 + 20ms));
  CHECK(Clock::now() - t0 >= 20ms);
  std::thread t([&] { w.notify(); });
  CHECK(w.wait_until(Clock::now() + 20s));
  t.join();
}

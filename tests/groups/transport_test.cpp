#include <doctest/doctest.h>

#include <numeric>
#include <thread>

#include "groups/process.hpp"
#include "transport/link.hpp"

using namespace sage::detail;
using namespace std::chrono_literals;

namespace {
struct Pair {
  IpcDir dir = IpcDir::create().value();
  std::shared_ptr<Waker> waker_a = std::make_shared<Waker>();
  std::shared_ptr<Waker> waker_b = std::make_shared<Waker>();
  std::unique_ptr<Link> a, b;
  explicit Pair(ConnectionLimits oa = {}, ConnectionLimits ob = {}) {
    const std::string url = "ipc://" + dir.path() + "/t.ipc";
    a = Link::open(Link::Role::listen, url, oa, waker_a).value();
    b = Link::open(Link::Role::dial, url, ob, waker_b).value();
  }
};

std::vector<std::byte> bytes(std::size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::byte((i * 7 + seed) & 0xff);
  return v;
}

// Receives until `count` messages arrived on `link` or 20 s passed.
std::vector<std::vector<std::byte>> receive_n(Link& link, Waker& waker, std::size_t count) {
  std::vector<std::vector<std::byte>> got;
  const auto deadline = Clock::now() + 20s;
  while (got.size() < count && Clock::now() < deadline) {
    link.receive(1000, [&](std::span<const std::byte> b) {
      CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 8 == 0);
      got.emplace_back(b.begin(), b.end());
    });
    if (got.size() < count) waker.wait_until(Clock::now() + 100ms);
  }
  return got;
}
}  // namespace

TEST_CASE("a link delivers messages both ways in order and each 8-aligned") {
  Pair p;
  for (int i = 0; i < 100; ++i) REQUIRE(p.b->send(bytes(static_cast<std::size_t>(i + 1), i)).ok());
  REQUIRE(p.a->send(bytes(5, 42)).ok());
  auto at_a = receive_n(*p.a, *p.waker_a, 100);
  REQUIRE(at_a.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(at_a[static_cast<std::size_t>(i)] == bytes(static_cast<std::size_t>(i + 1), i));
  auto at_b = receive_n(*p.b, *p.waker_b, 1);
  REQUIRE(at_b.size() == 1);
  CHECK(at_b[0] == bytes(5, 42));
  CHECK(p.a->connected());
  CHECK(p.b->connected());
}

TEST_CASE("a message over the size limit is refused at send time with too_large") {
  ConnectionLimits o;
  o.max_message_size = 1024;
  Pair p(o, o);
  auto r = p.b->send(bytes(1025, 0));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::too_large);
  CHECK(r.error().message().find("1025") != std::string::npos);
  REQUIRE(p.b->send(bytes(1024, 0)).ok());
  CHECK(receive_n(*p.a, *p.waker_a, 1).size() == 1);
}

TEST_CASE("a sender whose receiver stops reading fails loudly at its limit and loses nothing it accepted") {
  ConnectionLimits sender;
  sender.max_pending_bytes = 1 << 20;
  ConnectionLimits receiver;
  receiver.max_inbox_bytes = 256 * 1024;
  Pair p(receiver, sender);
  p.a->pause_receiving(true);
  std::size_t accepted = 0;
  sage::Result<void> last;
  const auto deadline = Clock::now() + 20s;
  // Kernel and nng buffers absorb some megabytes; the sage limit then refuses.
  while (Clock::now() < deadline) {
    auto msg = bytes(64 * 1024, static_cast<int>(accepted));
    last = p.b->send(msg);
    if (!last) break;
    ++accepted;
  }
  REQUIRE_FALSE(last.ok());
  CHECK(last.error() == sage::Errc::send_buffer_full);
  CHECK(p.b->pending_bytes() > 0);
  p.a->pause_receiving(false);
  auto got = receive_n(*p.a, *p.waker_a, accepted);
  REQUIRE(got.size() == accepted);
  for (std::size_t i = 0; i < accepted; ++i) CHECK(got[i] == bytes(64 * 1024, static_cast<int>(i)));
  CHECK(p.b->wait_sent(Clock::now() + 20s));
  CHECK(p.b->pending_bytes() == 0);
}

TEST_CASE("a link notices when its peer goes away") {
  Pair p;
  REQUIRE(p.b->send(bytes(8, 1)).ok());
  REQUIRE(receive_n(*p.a, *p.waker_a, 1).size() == 1);
  p.b.reset();
  const auto deadline = Clock::now() + 20s;
  while (!p.a->peer_gone() && Clock::now() < deadline) p.waker_a->wait_until(Clock::now() + 100ms);
  CHECK(p.a->peer_gone());
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

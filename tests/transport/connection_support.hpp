// Helpers of the transport tests: test bytes and a receive loop with a deadline.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "transport/connection.hpp"

namespace sage::detail::test {

using namespace std::chrono_literals;

inline std::vector<std::byte> bytes(std::size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::byte((i * 7 + seed) & 0xff);
  return v;
}

// Receives on `c` until `count` messages arrived or 20 s passed, checking each is 8-aligned and
// waiting on `w` in between. `peer` (if any) writes what it queued meanwhile (wait_sent with a
// deadline of now), as its manager's tick would: a socket link has no thread of its own.
inline std::vector<std::vector<std::byte>> receive_n(Connection& c, Waker& w, std::size_t count,
                                                     Connection* peer = nullptr) {
  std::vector<std::vector<std::byte>> got;
  const auto deadline = Clock::now() + 20s;
  while (got.size() < count && Clock::now() < deadline) {
    if (peer) (void)peer->wait_sent(Clock::now());
    c.receive(SIZE_MAX, [&](std::span<const std::byte> b) {
      CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 8 == 0);
      got.emplace_back(b.begin(), b.end());
    });
    if (got.size() < count) w.wait_until(Clock::now() + (peer ? 5ms : 100ms));
  }
  return got;
}

}  // namespace sage::detail::test

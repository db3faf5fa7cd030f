// tests/support/enet_challenge.hpp: the client's side of the datagram listener's challenge
// (runtime/secure/challenge.hpp) for tests that speak raw ENet: ask for the cookie through the
// ENet host's own UDP socket, so that it is the cookie for the address its connect comes from.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "secure/challenge.hpp"

namespace enet_challenge {

// Sends requests to 127.0.0.1:port every 100 ms and returns the cookie of the first reply to one,
// calling tick() (the listener's manager) meanwhile; nullopt after `limit`.
template <class Tick>
std::optional<std::uint32_t> cookie(int socket, std::uint16_t port, Tick tick,
                                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  namespace secure = sage::detail::secure;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  const std::uint64_t nonce = secure::random_u64();
  const auto request = secure::challenge_request(nonce);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto resend = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::chrono::steady_clock::now() >= resend) {
      ::sendto(socket, request.data(), request.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
      resend += std::chrono::milliseconds(100);
    }
    tick();
    pollfd p{socket, POLLIN, 0};
    if (::poll(&p, 1, 5) <= 0) continue;
    std::byte buf[64];
    const auto n = ::recv(socket, buf, sizeof buf, 0);
    if (n <= 0) continue;
    if (auto c = secure::read_challenge_reply({buf, static_cast<std::size_t>(n)}, nonce)) return c;
  }
  return std::nullopt;
}

}  // namespace enet_challenge

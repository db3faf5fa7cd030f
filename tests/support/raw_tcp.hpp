// tests/support/raw_tcp.hpp: a plain blocking TCP client below sage's API, for tests of peers that
// misbehave (silent, half-open, truncated frames) and of the listener itself.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

namespace sage::test_support {

// A socket connected to 127.0.0.1:port (the caller closes it); the test fails if it cannot connect.
inline int raw_tcp_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

}  // namespace sage::test_support

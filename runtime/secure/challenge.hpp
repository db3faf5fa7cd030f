// runtime/secure/challenge.hpp: the datagram listener's challenge (docs/wire-format.md "Datagram
// challenge"), netcode.io's idea on ENet: no peer slot and no more than one small reply before a
// client proves it receives at its address. Pure byte-level functions over libsodium: no I/O; the
// caller passes the time; fuzzed by tests/fuzz/fuzz_key_handshake.cpp.
//
//   request  client -> listener  "SAGEUDQ1" | nonce u64 | zero padding to 64 bytes
//   reply    listener -> client  "SAGEUDR1" | nonce u64 (the request's) | cookie u32     (20 bytes)
//   connect  client -> listener  ENet's CONNECT with the cookie as its 32-bit data word
// The cookie is a keyed BLAKE2b of the client's IPv4 address and port and a 10-second time slot,
// under a secret the listener draws at start: the listener keeps nothing per request and accepts a
// cookie of the current or the previous slot (so a cookie lives 10 to 20 s). A reply is 20 bytes
// for a 64-byte request: a spoofed request reflects less than it costs (amplification <= 0.32).
// 32 bits of cookie: an off-path party that cannot receive at the address it claims guesses one
// in 2^32 per forged connect.
//
// Ownership: values. Threads: one owner.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "secure/handshake.hpp"

namespace sage::detail::secure {

inline constexpr std::size_t challenge_request_bytes = 64;
inline constexpr std::size_t challenge_reply_bytes = 20;
inline constexpr std::chrono::seconds cookie_slot{10};

using ChallengeRequest = std::array<std::byte, challenge_request_bytes>;
using ChallengeReply = std::array<std::byte, challenge_reply_bytes>;

// Whether a datagram starts like a request or a reply (8 magic bytes): the kind to look at further.
bool is_challenge_request(std::span<const std::byte> datagram) noexcept;
bool is_challenge_reply(std::span<const std::byte> datagram) noexcept;

ChallengeRequest challenge_request(std::uint64_t nonce) noexcept;
// The cookie in a reply to the request with `nonce`; nullopt for anything else (wrong size, magic
// or nonce).
std::optional<std::uint32_t> read_challenge_reply(std::span<const std::byte> datagram, std::uint64_t nonce) noexcept;

// The listener's side. `address` and `port` are the sender's as the socket reports them (any
// fixed encoding: the listener computes and checks with the same).
class CookieJar {
 public:
  CookieJar();  // draws the secret
  // The reply to a well-formed request (exactly 64 bytes, zero padding), else nullopt.
  std::optional<ChallengeReply> answer(std::span<const std::byte> request, std::uint32_t address, std::uint16_t port,
                                       std::chrono::steady_clock::time_point now) const noexcept;
  // Whether `cookie` was given to address:port in this time slot or the one before.
  bool check(std::uint32_t cookie, std::uint32_t address, std::uint16_t port,
             std::chrono::steady_clock::time_point now) const noexcept;

 private:
  std::uint32_t cookie(std::uint32_t address, std::uint16_t port, std::uint64_t slot) const noexcept;
  Key secret_{};
};

// A fresh random u64 (libsodium's CSPRNG) for request nonces.
std::uint64_t random_u64();

}  // namespace sage::detail::secure

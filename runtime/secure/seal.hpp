// runtime/secure/seal.hpp: sealing transport messages under the session keys of a shared-key
// handshake (docs/wire-format.md "Shared-key mode"). Pure byte-level functions over libsodium's
// ChaCha20-Poly1305 (IETF); fuzzed by tests/fuzz/fuzz_key_handshake.cpp.
//
// Streams (StreamSealer): a sealed frame's body is the ciphertext of the plain body followed by a
// 16-byte tag; the nonce is the frame's number in its direction (0, 1, 2, ...; never sent), the
// associated data is the frame header. A tampered, reordered, replayed, dropped or injected frame
// fails to open, and a stream that failed cannot be trusted again (the connection is dropped).
//
// Datagrams (DatagramSealer): each message carries its 8-byte number in front (little endian),
// which is its nonce (with the sealer's lane, the ENet channel, in the nonce's first byte) and the
// associated data; the receiver accepts each number once within a window of the last 256
// (netcode.io's replay protection), so unreliable messages may arrive out of order or not at all,
// and a replayed or injected one is dropped and counted. One sealer per lane and direction: a
// message moved to another channel does not open.
//
// Ownership: values. Threads: one owner.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "secure/handshake.hpp"

namespace sage::detail::secure {

inline constexpr std::size_t tag_bytes = 16;
inline constexpr std::size_t counter_bytes = 8;

class StreamSealer {
 public:
  explicit StreamSealer(const SessionKeys& keys) : send_key_(keys.send), receive_key_(keys.receive) {}
  // Seals `body` in place (it grows by tag_bytes); `header` is the frame header written for the
  // sealed length.
  void seal(std::span<const std::byte> header, std::vector<std::byte>& body);
  // Opens a received body in place: true and the plain text is body[0, size - tag_bytes).
  bool open(std::span<const std::byte> header, std::span<std::byte> body);

 private:
  Key send_key_, receive_key_;
  std::uint64_t sent_ = 0, received_ = 0;
};

class DatagramSealer {
 public:
  explicit DatagramSealer(const SessionKeys& keys, std::uint8_t lane = 0)
      : send_key_(keys.send), receive_key_(keys.receive), lane_(lane) {}
  // counter | ciphertext | tag of `plain`, appended to `out` (cleared first).
  void seal(std::span<const std::byte> plain, std::vector<std::byte>& out);
  // Opens `sealed` in place: the plain text's span inside it, or an empty optional (tampered,
  // injected, too short, or a number already seen or older than the window).
  std::optional<std::span<std::byte>> open(std::span<std::byte> sealed);

 private:
  Key send_key_, receive_key_;
  std::uint8_t lane_;
  std::uint64_t sent_ = 0;
  std::uint64_t highest_ = 0;        // highest number received + 1 (0: none yet)
  std::array<std::uint64_t, 4> window_{};  // bit i: number highest_-1-i was received
};

}  // namespace sage::detail::secure

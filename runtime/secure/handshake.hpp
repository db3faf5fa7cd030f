// runtime/secure/handshake.hpp: the shared-key handshake (docs/wire-format.md "Shared-key mode").
// Pure byte-level functions over libsodium: no I/O, no clock; fuzzed by
// tests/fuzz/fuzz_key_handshake.cpp.
//
// Three messages, before any sage frame and before the listener creates any peer state:
//   K1 client -> server  "SAGEK1H\0" | id_len u8 | key id | client kx public key[32] | client nonce[32]
//                        | HMAC-SHA-256(key, "sage k1 hello" | everything before)
//   K2 server -> client  "SAGEK1S\0" | server kx public key[32] | server nonce[32]
//                        | HMAC-SHA-256(key, "sage k1 server" | K1 | everything before)
//      or a refusal      "SAGEK1X\0" | code u8 (KeyRefusal)
//   K3 client -> server  "SAGEK1C\0" | HMAC-SHA-256(key, "sage k1 client" | K1 | K2)
// K2 proves the server holds the key, K3 that the client does and is live now (it covers the
// server's fresh nonce, so a recorded K1/K3 replays to nothing). Session keys: crypto_kx of the two
// ephemeral key pairs (forward secrecy), each mixed with the shared key and both nonces by keyed
// BLAKE2b, one key per direction. Neither side keeps anything but these few hundred bytes until K3
// verifies.
//
// Ownership: values only. Threads: any; no shared state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sage/result.hpp"

namespace sage::detail::secure {

inline constexpr std::size_t key_bytes = 32;
inline constexpr std::size_t max_key_id = 64;
inline constexpr std::size_t magic_bytes = 8;
inline constexpr std::size_t k1_fixed = magic_bytes + 1 + 32 + 32 + 32;  // K1 without the key id
inline constexpr std::size_t k1_max = k1_fixed + max_key_id;
inline constexpr std::size_t k2_bytes = magic_bytes + 32 + 32 + 32;
inline constexpr std::size_t k2_refusal_bytes = magic_bytes + 1;
inline constexpr std::size_t k3_bytes = magic_bytes + 32;

using Key = std::array<std::byte, key_bytes>;

struct NamedKey {
  std::string id;  // 1..64 bytes; reaches the other end's admission hook as identity "key:<id>"
  Key key{};
};

enum class KeyRefusal : std::uint8_t { unknown_key = 1, bad_proof = 2, version = 3, busy = 4 };
std::string to_text(KeyRefusal why);

// Keys of one direction each, from the handshake.
struct SessionKeys {
  Key send{};
  Key receive{};
  std::string key_id;
};

// Whether K1's first bytes can start a shared-key hello (the magic; used to tell a plain sage
// frame or a stranger apart at the first 8 bytes).
bool is_k1_magic(std::span<const std::byte> first8) noexcept;
bool is_k2_magic(std::span<const std::byte> first8) noexcept;
bool is_refusal_magic(std::span<const std::byte> first8) noexcept;
// K1's total size from its first magic_bytes + 1 bytes; nullopt if the id length is out of range.
std::optional<std::size_t> k1_size(std::span<const std::byte> head) noexcept;

class ClientHandshake {
 public:
  // Fills K1 (fresh ephemeral key pair and nonce). `key.id` must be 1..64 bytes (checked by the
  // caller's options validation; asserted here).
  explicit ClientHandshake(const NamedKey& key);
  ~ClientHandshake();
  const std::vector<std::byte>& hello() const noexcept { return k1_; }
  // Reads K2 (k2_bytes, or a refusal of k2_refusal_bytes): the session keys and K3 to send, or
  // why not (Errc::not_admitted for a refusal, Errc::malformed for a server that does not prove
  // the key).
  Result<std::pair<SessionKeys, std::vector<std::byte>>> on_reply(std::span<const std::byte> k2);

 private:
  NamedKey key_;
  std::array<std::byte, 32> pk_{}, sk_{};
  std::vector<std::byte> k1_;
};

class ServerHandshake {
 public:
  ~ServerHandshake();
  // Reads K1 against `keys` (found by id): K2 to send, or a refusal (refusal_bytes() to send).
  Result<std::vector<std::byte>> on_hello(std::span<const std::byte> k1, std::span<const NamedKey> keys);
  // Reads K3: the session keys, or Errc::not_admitted.
  Result<SessionKeys> on_finish(std::span<const std::byte> k3);

 private:
  Key key_{};
  std::string id_;
  std::array<std::byte, 32> pk_{}, sk_{};
  std::vector<std::byte> transcript_;  // K1 | K2
  std::array<std::byte, 32> client_pk_{};
  bool hello_ok_ = false;
};

std::vector<std::byte> refusal_bytes(KeyRefusal why);

// A fresh random key (libsodium's CSPRNG); keys as 64 hex digits.
Key random_key();
std::string to_hex(const Key& key);
std::optional<Key> key_from_hex(std::string_view hex);

// Makes sure libsodium is initialised (sodium_init); idempotent, thread-safe.
void init();

}  // namespace sage::detail::secure

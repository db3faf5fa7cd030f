// The shared-key handshake (runtime/secure/handshake.hpp).
#include "secure/handshake.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "runtime_assert.hpp"

namespace sage::detail::secure {

namespace {

constexpr char k1_magic[magic_bytes] = {'S', 'A', 'G', 'E', 'K', '1', 'H', 0};
constexpr char k2_magic[magic_bytes] = {'S', 'A', 'G', 'E', 'K', '1', 'S', 0};
constexpr char refusal_magic[magic_bytes] = {'S', 'A', 'G', 'E', 'K', '1', 'X', 0};
constexpr char k3_magic[magic_bytes] = {'S', 'A', 'G', 'E', 'K', '1', 'C', 0};

using Bytes = std::vector<std::byte>;
using Mac = std::array<std::byte, crypto_auth_hmacsha256_BYTES>;

const unsigned char* u(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* u(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

bool has_magic(std::span<const std::byte> b, const char (&magic)[magic_bytes]) noexcept {
  return b.size() >= magic_bytes && std::memcmp(b.data(), magic, magic_bytes) == 0;
}

void append(Bytes& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}

// HMAC-SHA-256 under `key` of a label and parts.
Mac mac(const Key& key, std::string_view label, std::initializer_list<std::span<const std::byte>> parts) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, u(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(label.data()), label.size());
  for (auto p : parts) crypto_auth_hmacsha256_update(&st, u(p.data()), p.size());
  Mac out;
  crypto_auth_hmacsha256_final(&st, u(out.data()));
  return out;
}

bool same(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A direction's key: keyed BLAKE2b of the label, its crypto_kx key and the transcript (K1 | K2).
Key derive(const Key& shared, std::string_view label, const unsigned char* kx, std::span<const std::byte> transcript) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, u(shared.data()), shared.size(), key_bytes);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()), label.size());
  crypto_generichash_update(&st, kx, crypto_kx_SESSIONKEYBYTES);
  crypto_generichash_update(&st, u(transcript.data()), transcript.size());
  Key out;
  crypto_generichash_final(&st, u(out.data()), out.size());
  return out;
}

}  // namespace

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("sage: libsodium could not be initialised");
  });
}

std::string to_text(KeyRefusal why) {
  switch (why) {
    case KeyRefusal::unknown_key: return "the listener does not know this key id";
    case KeyRefusal::bad_proof: return "the key does not match the listener's key of that id";
    case KeyRefusal::version: return "the listener speaks another version of the shared-key handshake";
    case KeyRefusal::busy: return "the listener has too many handshakes in progress";
  }
  return "refused (code " + std::to_string(static_cast<int>(why)) + ")";
}

bool is_k1_magic(std::span<const std::byte> b) noexcept { return has_magic(b, k1_magic); }
bool is_k2_magic(std::span<const std::byte> b) noexcept { return has_magic(b, k2_magic); }
bool is_refusal_magic(std::span<const std::byte> b) noexcept { return has_magic(b, refusal_magic); }

std::optional<std::size_t> k1_size(std::span<const std::byte> head) noexcept {
  if (head.size() < magic_bytes + 1) return std::nullopt;
  const auto id = std::to_integer<std::size_t>(head[magic_bytes]);
  if (id == 0 || id > max_key_id) return std::nullopt;
  return k1_fixed + id;
}

std::vector<std::byte> refusal_bytes(KeyRefusal why) {
  Bytes out;
  append(out, refusal_magic, magic_bytes);
  out.push_back(std::byte(static_cast<std::uint8_t>(why)));
  return out;
}

// ---- client ----

ClientHandshake::ClientHandshake(const NamedKey& key) : key_(key) {
  init();
  SAGE_ASSERT(!key.id.empty() && key.id.size() <= max_key_id);
  crypto_kx_keypair(u(pk_.data()), u(sk_.data()));
  std::array<std::byte, 32> nonce;
  randombytes_buf(nonce.data(), nonce.size());
  append(k1_, k1_magic, magic_bytes);
  k1_.push_back(std::byte(static_cast<std::uint8_t>(key.id.size())));
  append(k1_, key.id.data(), key.id.size());
  append(k1_, pk_.data(), pk_.size());
  append(k1_, nonce.data(), nonce.size());
  const Mac m = mac(key_.key, "sage k1 hello", {k1_});
  append(k1_, m.data(), m.size());
}

ClientHandshake::~ClientHandshake() {
  sodium_memzero(sk_.data(), sk_.size());
  sodium_memzero(key_.key.data(), key_.key.size());
}

Result<std::pair<SessionKeys, std::vector<std::byte>>> ClientHandshake::on_reply(std::span<const std::byte> k2) {
  if (k2.size() == k2_refusal_bytes && has_magic(k2, refusal_magic))
    return Error{Errc::not_admitted, "shared key '" + key_.id + "' refused: " +
                                         to_text(static_cast<KeyRefusal>(std::to_integer<std::uint8_t>(k2[magic_bytes])))};
  if (k2.size() != k2_bytes || !has_magic(k2, k2_magic))
    return Error{Errc::malformed, "the other end did not answer the shared-key handshake (is it listening with "
                                  "NetworkOptions::keys?)"};
  const auto body = k2.first(k2_bytes - 32);
  if (!same(mac(key_.key, "sage k1 server", {k1_, body}), k2.last(32)))
    return Error{Errc::not_admitted, "the other end does not hold shared key '" + key_.id + "'"};
  const unsigned char* server_pk = u(k2.data() + magic_bytes);
  unsigned char rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
  if (crypto_kx_client_session_keys(rx, tx, u(pk_.data()), u(sk_.data()), server_pk) != 0)
    return Error{Errc::malformed, "the other end's key exchange value is not valid"};
  Bytes transcript = k1_;
  transcript.insert(transcript.end(), k2.begin(), k2.end());
  SessionKeys keys;
  keys.send = derive(key_.key, "sage k1 c2s", tx, transcript);
  keys.receive = derive(key_.key, "sage k1 s2c", rx, transcript);
  keys.key_id = key_.id;
  sodium_memzero(rx, sizeof rx);
  sodium_memzero(tx, sizeof tx);
  Bytes k3;
  append(k3, k3_magic, magic_bytes);
  const Mac m = mac(key_.key, "sage k1 client", {k1_, k2});
  append(k3, m.data(), m.size());
  return std::pair{std::move(keys), std::move(k3)};
}

// ---- server ----

ServerHandshake::~ServerHandshake() {
  sodium_memzero(sk_.data(), sk_.size());
  sodium_memzero(key_.data(), key_.size());
}

Result<std::vector<std::byte>> ServerHandshake::on_hello(std::span<const std::byte> k1, std::span<const NamedKey> keys) {
  init();
  hello_ok_ = false;
  if (!has_magic(k1, k1_magic)) return Error{Errc::malformed, "not a shared-key hello"};
  const auto size = k1_size(k1);
  if (!size || k1.size() != *size) return Error{Errc::malformed, "a shared-key hello of the wrong size"};
  const std::size_t id_len = *size - k1_fixed;
  const std::string id(reinterpret_cast<const char*>(k1.data() + magic_bytes + 1), id_len);
  auto it = std::find_if(keys.begin(), keys.end(), [&](const NamedKey& k) { return k.id == id; });
  if (it == keys.end()) return Error{Errc::not_admitted, "unknown shared key id"};
  const auto body = k1.first(k1.size() - 32);
  if (!same(mac(it->key, "sage k1 hello", {body}), k1.last(32)))
    return Error{Errc::not_admitted, "a hello for shared key '" + id + "' that does not prove it"};
  key_ = it->key;
  id_ = id;
  std::memcpy(client_pk_.data(), k1.data() + magic_bytes + 1 + id_len, 32);
  crypto_kx_keypair(u(pk_.data()), u(sk_.data()));
  std::array<std::byte, 32> nonce;
  randombytes_buf(nonce.data(), nonce.size());
  Bytes k2;
  append(k2, k2_magic, magic_bytes);
  append(k2, pk_.data(), pk_.size());
  append(k2, nonce.data(), nonce.size());
  const Mac m = mac(key_, "sage k1 server", {k1, k2});
  append(k2, m.data(), m.size());
  transcript_.assign(k1.begin(), k1.end());
  transcript_.insert(transcript_.end(), k2.begin(), k2.end());
  hello_ok_ = true;
  return k2;
}

Result<SessionKeys> ServerHandshake::on_finish(std::span<const std::byte> k3) {
  if (!hello_ok_) return Error{Errc::malformed, "a shared-key finish before a hello"};
  hello_ok_ = false;  // one finish per hello
  if (k3.size() != k3_bytes || !has_magic(k3, k3_magic)) return Error{Errc::malformed, "not a shared-key finish"};
  const std::span<const std::byte> k1 = std::span(transcript_).first(transcript_.size() - k2_bytes);
  const std::span<const std::byte> k2 = std::span(transcript_).last(k2_bytes);
  if (!same(mac(key_, "sage k1 client", {k1, k2}), k3.last(32)))
    return Error{Errc::not_admitted, "a finish for shared key '" + id_ + "' that does not prove it"};
  unsigned char rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
  if (crypto_kx_server_session_keys(rx, tx, u(pk_.data()), u(sk_.data()), u(client_pk_.data())) != 0)
    return Error{Errc::malformed, "the client's key exchange value is not valid"};
  SessionKeys keys;
  keys.receive = derive(key_, "sage k1 c2s", rx, transcript_);
  keys.send = derive(key_, "sage k1 s2c", tx, transcript_);
  keys.key_id = id_;
  sodium_memzero(rx, sizeof rx);
  sodium_memzero(tx, sizeof tx);
  return keys;
}

// ---- keys ----

Key random_key() {
  init();
  Key k;
  randombytes_buf(k.data(), k.size());
  return k;
}

std::string to_hex(const Key& key) {
  char out[key_bytes * 2 + 1];
  sodium_bin2hex(out, sizeof out, u(key.data()), key.size());
  return std::string(out, key_bytes * 2);
}

std::optional<Key> key_from_hex(std::string_view hex) {
  init();
  Key k;
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(u(k.data()), k.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 || len != k.size() ||
      end != hex.data() + hex.size())
    return std::nullopt;
  return k;
}

}  // namespace sage::detail::secure

// The datagram listener's challenge (runtime/secure/challenge.hpp).
#include "secure/challenge.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace sage::detail::secure {

namespace {

constexpr char request_magic[8] = {'S', 'A', 'G', 'E', 'U', 'D', 'Q', '1'};
constexpr char reply_magic[8] = {'S', 'A', 'G', 'E', 'U', 'D', 'R', '1'};

void put_u64(std::byte* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint64_t get_u64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(std::to_integer<std::uint8_t>(p[i])) << (8 * i);
  return v;
}

std::uint64_t slot_of(std::chrono::steady_clock::time_point now) noexcept {
  return static_cast<std::uint64_t>(now.time_since_epoch() / cookie_slot);
}

}  // namespace

bool is_challenge_request(std::span<const std::byte> d) noexcept {
  return d.size() >= 8 && std::memcmp(d.data(), request_magic, 8) == 0;
}
bool is_challenge_reply(std::span<const std::byte> d) noexcept {
  return d.size() >= 8 && std::memcmp(d.data(), reply_magic, 8) == 0;
}

ChallengeRequest challenge_request(std::uint64_t nonce) noexcept {
  ChallengeRequest r{};
  std::memcpy(r.data(), request_magic, 8);
  put_u64(r.data() + 8, nonce);
  return r;
}

std::optional<std::uint32_t> read_challenge_reply(std::span<const std::byte> d, std::uint64_t nonce) noexcept {
  if (d.size() != challenge_reply_bytes || !is_challenge_reply(d) || get_u64(d.data() + 8) != nonce) return std::nullopt;
  std::uint32_t c = 0;
  for (int i = 0; i < 4; ++i) c |= std::uint32_t(std::to_integer<std::uint8_t>(d[16 + i])) << (8 * i);
  return c;
}

CookieJar::CookieJar() {
  init();
  randombytes_buf(secret_.data(), secret_.size());
}

std::uint32_t CookieJar::cookie(std::uint32_t address, std::uint16_t port, std::uint64_t slot) const noexcept {
  unsigned char in[4 + 2 + 8];
  std::memcpy(in, &address, 4);
  std::memcpy(in + 4, &port, 2);
  std::memcpy(in + 6, &slot, 8);
  unsigned char out[crypto_generichash_BYTES_MIN];
  crypto_generichash(out, sizeof out, in, sizeof in, reinterpret_cast<const unsigned char*>(secret_.data()),
                     secret_.size());
  std::uint32_t c;
  std::memcpy(&c, out, 4);
  return c;
}

std::optional<ChallengeReply> CookieJar::answer(std::span<const std::byte> request, std::uint32_t address,
                                                std::uint16_t port, std::chrono::steady_clock::time_point now) const noexcept {
  if (request.size() != challenge_request_bytes || !is_challenge_request(request)) return std::nullopt;
  if (std::any_of(request.begin() + 16, request.end(), [](std::byte b) { return b != std::byte{0}; })) return std::nullopt;
  ChallengeReply r{};
  std::memcpy(r.data(), reply_magic, 8);
  std::memcpy(r.data() + 8, request.data() + 8, 8);
  const std::uint32_t c = cookie(address, port, slot_of(now));
  for (int i = 0; i < 4; ++i) r[16 + static_cast<std::size_t>(i)] = std::byte(static_cast<std::uint8_t>(c >> (8 * i)));
  return r;
}

bool CookieJar::check(std::uint32_t c, std::uint32_t address, std::uint16_t port,
                      std::chrono::steady_clock::time_point now) const noexcept {
  const std::uint64_t slot = slot_of(now);
  // Both compared, in constant time for each: the answer does not tell which slot matched.
  const bool current = sodium_memcmp(&c, std::array{cookie(address, port, slot)}.data(), 4) == 0;
  const bool previous = slot > 0 && sodium_memcmp(&c, std::array{cookie(address, port, slot - 1)}.data(), 4) == 0;
  return current || previous;
}

std::uint64_t random_u64() {
  init();
  std::uint64_t v;
  randombytes_buf(&v, sizeof v);
  return v;
}

}  // namespace sage::detail::secure

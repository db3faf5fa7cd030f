// Sealing transport messages (runtime/secure/seal.hpp).
#include "secure/seal.hpp"

#include <sodium.h>

#include <cstring>

namespace sage::detail::secure {

namespace {

static_assert(tag_bytes == crypto_aead_chacha20poly1305_ietf_ABYTES);

using Nonce = std::array<unsigned char, crypto_aead_chacha20poly1305_ietf_NPUBBYTES>;

Nonce nonce_of(std::uint64_t n, std::uint8_t lane = 0) {
  // The lane (datagrams: the ENet channel; streams: 0), 3 zero bytes, then the number, little
  // endian (each direction has its own key).
  Nonce out{};
  out[0] = lane;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<unsigned char>(n >> (8 * i));
  return out;
}

const unsigned char* u(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* u(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

void StreamSealer::seal(std::span<const std::byte> header, std::vector<std::byte>& body) {
  const std::size_t plain = body.size();
  body.resize(plain + tag_bytes);
  const Nonce n = nonce_of(sent_++);
  unsigned long long out_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(u(body.data()), &out_len, u(body.data()), plain, u(header.data()),
                                            header.size(), nullptr, n.data(), u(send_key_.data()));
}

bool StreamSealer::open(std::span<const std::byte> header, std::span<std::byte> body) {
  if (body.size() < tag_bytes) return false;
  const Nonce n = nonce_of(received_);
  unsigned long long out_len = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(u(body.data()), &out_len, nullptr, u(body.data()), body.size(),
                                                u(header.data()), header.size(), n.data(),
                                                u(receive_key_.data())) != 0)
    return false;
  ++received_;
  return true;
}

void DatagramSealer::seal(std::span<const std::byte> plain, std::vector<std::byte>& out) {
  const std::uint64_t number = sent_++;
  out.resize(counter_bytes + plain.size() + tag_bytes);
  for (std::size_t i = 0; i < counter_bytes; ++i) out[i] = std::byte(static_cast<std::uint8_t>(number >> (8 * i)));
  const Nonce n = nonce_of(number, lane_);
  unsigned long long out_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(u(out.data() + counter_bytes), &out_len, u(plain.data()), plain.size(),
                                            u(out.data()), counter_bytes, nullptr, n.data(), u(send_key_.data()));
}

std::optional<std::span<std::byte>> DatagramSealer::open(std::span<std::byte> sealed) {
  if (sealed.size() < counter_bytes + tag_bytes) return std::nullopt;
  std::uint64_t number = 0;
  for (std::size_t i = 0; i < counter_bytes; ++i) number |= std::uint64_t(std::to_integer<std::uint8_t>(sealed[i])) << (8 * i);
  // Seen before, or older than the window: a replay (or too late to tell).
  const std::size_t window_bits = window_.size() * 64;
  if (number < highest_) {
    const std::uint64_t back = highest_ - 1 - number;
    if (back >= window_bits) return std::nullopt;
    if (window_[back / 64] >> (back % 64) & 1) return std::nullopt;
  }
  const Nonce n = nonce_of(number, lane_);
  unsigned long long out_len = 0;
  std::byte* text = sealed.data() + counter_bytes;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(u(text), &out_len, nullptr, u(text), sealed.size() - counter_bytes,
                                                u(sealed.data()), counter_bytes, n.data(),
                                                u(receive_key_.data())) != 0)
    return std::nullopt;
  // Authentic: record it. The window slides when a newer number arrives.
  if (number >= highest_) {
    const std::uint64_t shift = number + 1 - highest_;
    if (shift >= window_bits) {
      window_.fill(0);
    } else {
      for (std::uint64_t s = 0; s < shift; ++s) {  // shift the bitmap by one, `shift` times (at most 255)
        std::uint64_t carry = 0;
        for (auto& w : window_) {
          const std::uint64_t next = w >> 63;
          w = (w << 1) | carry;
          carry = next;
        }
      }
    }
    highest_ = number + 1;
    window_[0] |= 1;  // bit 0: highest_ - 1 = number
  } else {
    const std::uint64_t back = highest_ - 1 - number;
    window_[back / 64] |= std::uint64_t{1} << (back % 64);
  }
  return std::span<std::byte>(text, static_cast<std::size_t>(out_len));
}

}  // namespace sage::detail::secure

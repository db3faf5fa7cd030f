// libFuzzer target: the shared-key handshake and sealing (runtime/secure) on bytes from outside.
// The first byte picks the path: the listener reading K1 (then K3), the client reading K2, a sealed
// stream frame, a sealed datagram, the datagram challenge. Nothing may crash, and nothing unauthenticated may verify.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "secure/challenge.hpp"
#include "secure/handshake.hpp"
#include "secure/seal.hpp"

namespace secure = sage::detail::secure;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const std::vector<secure::NamedKey> keys = [] {
    secure::NamedKey k{"workers", {}};
    for (std::size_t i = 0; i < k.key.size(); ++i) k.key[i] = std::byte(i);
    return std::vector<secure::NamedKey>{k};
  }();
  std::vector<std::byte> in(size - 1);
  if (size > 1) std::memcpy(in.data(), data + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {  // listener: K1, then the rest as K3
      secure::ServerHandshake hs;
      const std::size_t k1 = std::min(in.size(), secure::k1_max);
      auto k2 = hs.on_hello(std::span(in).first(k1), keys);
      // Without the key no K1 can verify (an HMAC forgery), so no K3 can either.
      if (k2) std::abort();
      if (hs.on_finish(std::span(in).subspan(k1))) std::abort();
      break;
    }
    case 1: {  // client: K2 or a refusal from a stranger
      secure::ClientHandshake hs(keys.front());
      if (hs.on_reply(in)) std::abort();  // no stranger can prove the key
      break;
    }
    case 2: {  // a sealed stream frame: header, then body
      if (in.size() < 8) break;
      secure::SessionKeys k{keys.front().key, keys.front().key, "workers"};
      secure::StreamSealer s(k);
      std::vector<std::byte> body(in.begin() + 8, in.end());
      (void)s.open(std::span(in).first(8), body);
      break;
    }
    case 3: {  // a sealed datagram
      secure::SessionKeys k{keys.front().key, keys.front().key, "workers"};
      secure::DatagramSealer s(k);
      (void)s.open(in);
      break;
    }
    case 4: {  // the datagram challenge: a request from anyone, a reply to a client
      static const secure::CookieJar jar;
      const auto now = std::chrono::steady_clock::now();
      if (auto reply = jar.answer(in, 0x0100007f, 4242, now)) {
        // Only a well-formed request is answered, with fewer bytes than it carried, and its cookie
        // checks for that address only.
        if (in.size() != secure::challenge_request_bytes || reply->size() >= in.size()) std::abort();
        auto c = secure::read_challenge_reply(*reply, 0);
        (void)c;
      }
      (void)secure::read_challenge_reply(in, 0);
      std::uint32_t guess = 0;
      if (!in.empty()) std::memcpy(&guess, in.data(), std::min<std::size_t>(in.size(), 4));
      (void)jar.check(guess, 0x0100007f, 4242, now);
      break;
    }
  }
  return 0;
}

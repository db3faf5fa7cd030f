// runtime/secure on its own: the handshake's three messages between a client and a listener object,
// and sealing (docs/wire-format.md "Shared-key mode"). The network side is tests/network/shared_key_test.cpp.
#include <doctest/doctest.h>

#include <cstring>

#include "secure/handshake.hpp"
#include "secure/seal.hpp"

namespace secure = sage::detail::secure;

namespace {

secure::NamedKey key(std::string id, int seed) {
  secure::NamedKey k{std::move(id), {}};
  for (std::size_t i = 0; i < k.key.size(); ++i) k.key[i] = std::byte((i * 13 + static_cast<std::size_t>(seed)) & 0xff);
  return k;
}

struct Session {
  secure::SessionKeys client, server;
};

Session handshake(const secure::NamedKey& k) {
  secure::ClientHandshake c(k);
  secure::ServerHandshake s;
  auto k2 = s.on_hello(c.hello(), std::vector{k});
  REQUIRE(k2.ok());
  auto done = c.on_reply(*k2);
  REQUIRE(done.ok());
  auto keys = s.on_finish(done->second);
  REQUIRE(keys.ok());
  return {done->first, *keys};
}

std::vector<std::byte> text(std::string_view s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

}  // namespace

TEST_CASE("a shared-key handshake gives each side the other's receive key as its send key, fresh every time") {
  const auto k = key("workers", 1);
  const Session a = handshake(k), b = handshake(k);
  CHECK(a.client.send == a.server.receive);
  CHECK(a.client.receive == a.server.send);
  CHECK(a.client.send != a.client.receive);
  CHECK(a.client.send != b.client.send);  // fresh ephemeral keys and nonces
  CHECK(a.server.key_id == "workers");
  CHECK(a.client.key_id == "workers");
}

TEST_CASE("a listener refuses a hello under another key of the same id, and a client refuses a listener without the key") {
  secure::ClientHandshake c(key("workers", 1));
  secure::ServerHandshake s;
  auto k2 = s.on_hello(c.hello(), std::vector{key("workers", 2)});
  REQUIRE_FALSE(k2.ok());
  CHECK(k2.error().code == sage::Errc::not_admitted);

  secure::ServerHandshake impostor;  // holds another key under the same id: its K2 does not prove ours
  secure::ClientHandshake c2(key("workers", 2));
  auto forged = impostor.on_hello(c2.hello(), std::vector{key("workers", 2)});
  REQUIRE(forged.ok());
  secure::ClientHandshake victim(key("workers", 1));
  auto r = victim.on_reply(*forged);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::not_admitted);
}

TEST_CASE("a sealed stream frame opens once, in order, and not after a flipped bit or under its header changed") {
  const Session s = handshake(key("workers", 1));
  secure::StreamSealer tx(s.client), rx(s.server);
  const std::byte header[8] = {std::byte{21}, {}, {}, {}, std::byte{'S'}, std::byte{'G'}, std::byte{1}, {}};
  auto first = text("first");
  auto second = text("second");
  tx.seal(header, first);
  tx.seal(header, second);
  CHECK(first.size() == 5 + secure::tag_bytes);
  auto tampered = second;
  tampered[2] ^= std::byte{1};
  CHECK_FALSE(rx.open(header, tampered));  // second's number is 1: out of order and tampered
  auto copy = first;
  CHECK(rx.open(header, copy));
  CHECK(std::memcmp(copy.data(), "first", 5) == 0);
  auto again = first;
  CHECK_FALSE(rx.open(header, again));  // a replay: the receiver expects frame 1 now
  std::byte other_header[8];
  std::memcpy(other_header, header, 8);
  other_header[7] = std::byte{1};
  auto moved = second;
  CHECK_FALSE(rx.open(other_header, moved));  // the header is authenticated too
  CHECK(rx.open(header, second));
}

TEST_CASE("a sealed datagram opens once: out of order within the window is fine, a replay or a very old one is not") {
  const Session s = handshake(key("workers", 1));
  secure::DatagramSealer tx(s.client), rx(s.server);
  std::vector<std::vector<std::byte>> sent(300);
  for (int i = 0; i < 300; ++i) tx.seal(text("datagram " + std::to_string(i)), sent[static_cast<std::size_t>(i)]);
  auto open = [&](int i) {
    auto copy = sent[static_cast<std::size_t>(i)];
    auto r = rx.open(copy);
    return r && std::string(reinterpret_cast<const char*>(r->data()), r->size()) == "datagram " + std::to_string(i);
  };
  CHECK(open(5));
  CHECK(open(3));   // older, not seen: fine
  CHECK_FALSE(open(3));  // replay
  CHECK_FALSE(open(5));  // replay of the newest
  CHECK(open(290));
  CHECK_FALSE(open(4));   // older than the 256 numbers the window remembers
  CHECK(open(100));       // 190 back: inside the window
  CHECK_FALSE(open(100));
  auto junk = sent[7];
  junk[10] ^= std::byte{0x80};
  CHECK_FALSE(rx.open(junk));
  CHECK(open(7 + 280));
}

// Trust at the datagram edge (docs/security.md): the listener's challenge before any ENet slot,
// shared keys over ENet (DatagramOptions::keys) and sealed packets. The attacks are real: raw UDP
// sockets and raw ENet hosts on loopback, and an attacker on the path (lossy::Relay's tap) that
// reads, tampers with and replays datagrams between two real managers. Every test is "security: ...".
#include <doctest/doctest.h>

#include <enet/enet.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "enet_challenge.hpp"
#include "lossy_relay.hpp"
#include "net_util.hpp"
#include "sage/datagram.hpp"
#include "secure/challenge.hpp"

using namespace nt;
using namespace nettest;
using namespace std::chrono_literals;
namespace secure = sage::detail::secure;

namespace {

using Inbox = Recorder<IntMessage, StringMessage, sage::PeerConnected, sage::PeerDisconnected, sage::PeerRefused>;

const sage::SharedKey players_key = sage::SharedKey::generate("players");

sage::DatagramOptions options(std::vector<sage::SharedKey> keys = {}) {
  sage::DatagramOptions o;
  o.peer_timeout = 5s;
  o.ping_interval = 100ms;
  o.connect_timeout = 3s;
  o.hello_timeout = 2s;
  o.reconnect.max_attempts = 1;
  o.keys = std::move(keys);
  return o;
}

struct Node {
  sage::Manager m;
  Inbox in;
  explicit Node(const sage::DatagramOptions& o) {
    m.register_messages(messages{});
    m.enable_datagrams(o);
    m.register_actor(in);
  }
};

// ENet's commands in a datagram: where each starts, its number and its whole size (with payload).
struct Command {
  std::size_t at;
  std::uint8_t number;
  std::size_t size;
};
std::uint16_t be16(const std::vector<std::uint8_t>& d, std::size_t at) {
  return static_cast<std::uint16_t>(d[at] << 8 | d[at + 1]);
}
std::vector<Command> commands_of(const std::vector<std::uint8_t>& d) {
  std::vector<Command> out;
  if (d.size() < 2) return out;
  std::size_t at = (be16(d, 0) & ENET_PROTOCOL_HEADER_FLAG_SENT_TIME) ? 4 : 2;
  while (at + sizeof(ENetProtocolCommandHeader) <= d.size()) {
    const std::uint8_t number = d[at] & ENET_PROTOCOL_COMMAND_MASK;
    const std::size_t fixed = enet_protocol_command_size(number);
    if (fixed == 0 || at + fixed > d.size()) break;
    std::size_t payload = 0;
    switch (number) {
      case ENET_PROTOCOL_COMMAND_SEND_RELIABLE: payload = be16(d, at + offsetof(ENetProtocolSendReliable, dataLength)); break;
      case ENET_PROTOCOL_COMMAND_SEND_UNRELIABLE: payload = be16(d, at + offsetof(ENetProtocolSendUnreliable, dataLength)); break;
      case ENET_PROTOCOL_COMMAND_SEND_UNSEQUENCED: payload = be16(d, at + offsetof(ENetProtocolSendUnsequenced, dataLength)); break;
      case ENET_PROTOCOL_COMMAND_SEND_FRAGMENT:
      case ENET_PROTOCOL_COMMAND_SEND_UNRELIABLE_FRAGMENT: payload = be16(d, at + offsetof(ENetProtocolSendFragment, dataLength)); break;
      default: break;
    }
    if (at + fixed + payload > d.size()) break;
    out.push_back({at, number, fixed + payload});
    at += fixed + payload;
  }
  return out;
}
std::optional<Command> find_command(const std::vector<std::uint8_t>& d, std::uint8_t number) {
  for (const Command& c : commands_of(d))
    if (c.number == number) return c;
  return std::nullopt;
}
bool contains(const std::vector<std::uint8_t>& d, std::string_view text) {
  return std::search(d.begin(), d.end(), text.begin(), text.end()) != d.end();
}

// The attacker on the path between a client and the server: reads every client -> server
// datagram and, once armed, tampers with or replays one carrying a message of `kind`.
struct PathAttacker {
  enum class Attack { none, tamper, replay };
  std::atomic<Attack> attack{Attack::none};
  std::atomic<std::uint8_t> kind{ENET_PROTOCOL_COMMAND_SEND_UNSEQUENCED};
  std::atomic<int> done{0};         // attacks carried out
  std::atomic<bool> saw_marker{false};
  const std::string marker = "secret-marker-text";  // text whose bytes on the path mean plaintext
  std::vector<std::uint8_t> captured;  // relay thread only
  std::uint16_t last_group = 0;        // relay thread only: the newest unsequenced group seen

  lossy::Relay::Tap tap() {
    return [this](std::vector<std::uint8_t> d, bool to_server) -> std::vector<std::vector<std::uint8_t>> {
      if (!to_server) return {d};
      if (contains(d, marker)) saw_marker = true;
      auto c = find_command(d, kind);
      if (!c) return {d};
      if (c->number == ENET_PROTOCOL_COMMAND_SEND_UNSEQUENCED)
        last_group = be16(d, c->at + offsetof(ENetProtocolSendUnsequenced, unsequencedGroup));
      switch (attack.load()) {
        case Attack::none:
          captured = d;
          return {d};
        case Attack::tamper:
          d[c->at + c->size - 1] ^= 0x01;  // the last byte of the message: its seal's tag
          attack = Attack::none;
          ++done;
          return {d};
        case Attack::replay: {
          // The captured datagram again, with the next unsequenced group so that ENet's own
          // duplicate check lets it through: only the seal's replay window is left to catch it.
          auto again = captured;
          auto old = find_command(again, ENET_PROTOCOL_COMMAND_SEND_UNSEQUENCED);
          if (!old) return {d};
          const std::uint16_t group = static_cast<std::uint16_t>(last_group + 1);
          again[old->at + offsetof(ENetProtocolSendUnsequenced, unsequencedGroup)] = static_cast<std::uint8_t>(group >> 8);
          again[old->at + offsetof(ENetProtocolSendUnsequenced, unsequencedGroup) + 1] = static_cast<std::uint8_t>(group);
          attack = Attack::none;
          ++done;
          return {d, again};
        }
      }
      return {d};
    };
  }
};

// Server and client managers, the client dialing through a relay with an attacker on it.
struct Path {
  Node server, client;
  std::uint16_t server_port;
  PathAttacker attacker;  // outlives the relay, whose thread calls its tap
  lossy::Relay relay;
  sage::Sender to_server{};
  Path(const sage::DatagramOptions& so, const sage::DatagramOptions& co)
      : server(so), client(co), server_port(server.m.listen_datagram("127.0.0.1", 0).port), relay(server_port, {}) {
    relay.set_tap(attacker.tap());
  }
  bool tick(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
    return tick_until({&server.m, &client.m}, pred, limit);
  }
  void connect() {
    to_server = client.m.connect_datagram("127.0.0.1", relay.port());
    REQUIRE(tick([&] {
      return server.in.all<sage::PeerConnected>().size() == 1 && client.in.all<sage::PeerConnected>().size() == 1;
    }));
  }
};

std::set<int> values(Inbox& in) {
  std::set<int> s;
  for (const auto& m : in.all<IntMessage>()) s.insert(m.value);
  return s;
}

}  // namespace

TEST_CASE("security: a UDP connect flood without the challenge's cookie takes no ENet slot, gets no byte back, and a real client still connects") {
  Node server(options());
  const std::uint16_t port = server.m.listen_datagram("127.0.0.1", 0).port;
  // 80 ENet connects from one address, each a guess at the cookie (ENet resends each until it
  // gives up): before the challenge, 8 of them (max_peers_per_address) took every slot this
  // address may hold and were answered with several times their bytes.
  ENetHost* flood = enet_host_create(nullptr, 80, 12, 0, 0);
  REQUIRE(flood);
  ENetAddress a{};
  enet_address_set_host_ip(&a, "127.0.0.1");
  a.port = port;
  for (std::uint32_t i = 0; i < 80; ++i) REQUIRE(enet_host_connect(flood, &a, 12, 0x53414745 + i));
  auto service_flood = [&] {
    ENetEvent ev;
    while (enet_host_service(flood, &ev, 0) > 0)
      if (ev.type == ENET_EVENT_TYPE_RECEIVE) enet_packet_destroy(ev.packet);
  };
  REQUIRE(tick_until({&server.m}, [&] { service_flood(); return server.m.datagram_stats().unproven_connects >= 160; }));
  CHECK(flood->totalReceivedData == 0);
  CHECK(server.m.peers().empty());
  // A real client from the same address, while the flood goes on.
  Node client(options());
  client.m.connect_datagram("127.0.0.1", port);
  REQUIRE(tick_until({&server.m, &client.m}, [&] {
    service_flood();
    return client.in.all<sage::PeerConnected>().size() == 1;
  }));
  CHECK(flood->totalReceivedData == 0);
  CHECK(server.m.datagram_stats().challenges_answered >= 1);
  enet_host_destroy(flood);
}

TEST_CASE("security: challenge requests are answered once each with fewer bytes than they carry, and malformed ones not at all") {
  Node server(options());
  const std::uint16_t port = server.m.listen_datagram("127.0.0.1", 0).port;
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  std::size_t sent = 0;
  for (std::uint64_t i = 0; i < 100; ++i) {
    const auto r = secure::challenge_request(i);
    REQUIRE(::sendto(fd, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 64);
    sent += r.size();
  }
  for (int i = 0; i < 20; ++i) {  // short, or with something in the padding: not answered
    auto r = secure::challenge_request(1000 + static_cast<std::uint64_t>(i));
    const std::size_t n = i % 2 ? 40 : r.size();
    if (i % 2 == 0) r[63] = std::byte{1};
    REQUIRE(::sendto(fd, r.data(), n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == static_cast<ssize_t>(n));
    sent += n;
  }
  std::size_t replies = 0, received = 0;
  std::set<std::uint64_t> answered;
  REQUIRE(tick_until({&server.m}, [&] {
    std::byte buf[128];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
      ++replies;
      received += static_cast<std::size_t>(n);
      for (std::uint64_t i = 0; i < 100; ++i)
        if (secure::read_challenge_reply({buf, static_cast<std::size_t>(n)}, i)) answered.insert(i);
    }
    return server.m.datagram_stats().challenges_answered + server.m.datagram_stats().bad_datagrams == 120;
  }));
  // Whatever the socket still holds has arrived by now: the counters are bumped after the sends.
  std::byte buf[128];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) ++replies, received += static_cast<std::size_t>(n);
  ::close(fd);
  CHECK(server.m.datagram_stats().challenges_answered == 100);
  CHECK(server.m.datagram_stats().bad_datagrams == 20);
  CHECK(replies == 100);
  CHECK(answered.size() == 100);
  CHECK(received * 3 < sent);  // amplification under 1/3
  CHECK(server.m.peers().empty());
}

TEST_CASE("security: a datagram client with the shared key connects sealed, and both ends see the key's identity") {
  Path p(options({players_key}), options({players_key}));
  p.connect();
  CHECK(p.server.in.all<sage::PeerConnected>().front().identity == "key:players");
  CHECK(p.client.in.all<sage::PeerConnected>().front().identity == "key:players");
  REQUIRE(p.server.m.peers().size() == 1);
  CHECK(p.server.m.peers().front().identity == "key:players");
  for (auto d : {sage::Delivery{}, sage::Delivery::sequenced(), sage::Delivery::unsequenced()})
    p.client.m.send_message(StringMessage{"secret-marker-text"}, p.to_server, d);
  REQUIRE(p.tick([&] { return p.server.in.all<StringMessage>().size() == 3; }));
  const sage::Sender client = p.server.in.all<sage::PeerConnected>().front().peer;
  p.server.m.send_message(IntMessage{7}, client);
  REQUIRE(p.tick([&] { return p.client.in.all<IntMessage>().size() == 1; }));
  CHECK_FALSE(p.attacker.saw_marker);  // the path saw ciphertext only
  CHECK(p.server.m.datagram_stats().authentication_failures == 0);

  // The same without keys: the path reads the text (so the check above can fail).
  Path plain(options(), options());
  plain.connect();
  plain.client.m.send_message(StringMessage{"secret-marker-text"}, plain.to_server);
  REQUIRE(plain.tick([&] { return plain.server.in.all<StringMessage>().size() == 1; }));
  CHECK(plain.attacker.saw_marker);
}

TEST_CASE("security: a datagram client with the wrong key or an unknown key id is refused with the reason, gets no peer, and the listener counts it") {
  Node server(options({players_key}));
  const std::uint16_t port = server.m.listen_datagram("127.0.0.1", 0).port;
  const sage::SharedKey impostor = [] {
    auto k = sage::SharedKey::generate("players");  // the right id, another key
    return k;
  }();
  struct Case {
    sage::SharedKey key;
    const char* reason;
  };
  int n = 0;
  for (const Case& c : {Case{impostor, "does not match"}, Case{sage::SharedKey::generate("admins"), "does not know this key id"}}) {
    CAPTURE(c.reason);
    Node client(options({c.key}));
    client.m.connect_datagram("127.0.0.1", port);
    REQUIRE(tick_until({&server.m, &client.m}, [&] { return client.in.all<sage::PeerDisconnected>().size() == 1; }));
    const auto reason = client.in.all<sage::PeerDisconnected>().front().reason;
    CHECK(reason.detail.find(c.reason) != std::string::npos);
    ++n;
    REQUIRE(tick_until({&server.m}, [&] { return server.m.datagram_stats().authentication_failures == static_cast<std::uint64_t>(n); }));
    CHECK(client.in.all<sage::PeerConnected>().empty());
  }
  CHECK(server.in.all<sage::PeerConnected>().empty());
  CHECK(server.m.peers().empty());
  CHECK(server.m.datagram_stats().last_bad_input.find("shared-key handshake failed") != std::string::npos);
}

TEST_CASE("security: a plain datagram client at a keyed listener, and a keyed client at a plain one, are refused naming DatagramOptions::keys") {
  {
    Node server(options({players_key}));
    const std::uint16_t port = server.m.listen_datagram("127.0.0.1", 0).port;
    Node client(options());
    client.m.connect_datagram("127.0.0.1", port);
    REQUIRE(tick_until({&server.m, &client.m}, [&] { return client.in.all<sage::PeerDisconnected>().size() == 1; }));
    CHECK(client.in.all<sage::PeerDisconnected>().front().reason.detail.find("requires the shared-key handshake (DatagramOptions::keys)") !=
          std::string::npos);
    CHECK(server.m.datagram_stats().authentication_failures == 1);
    CHECK(server.in.all<sage::PeerConnected>().empty());
  }
  {
    Node server(options());
    const std::uint16_t port = server.m.listen_datagram("127.0.0.1", 0).port;
    Node client(options({players_key}));
    client.m.connect_datagram("127.0.0.1", port);
    REQUIRE(tick_until({&server.m, &client.m}, [&] { return client.in.all<sage::PeerDisconnected>().size() == 1; }));
    CHECK(client.in.all<sage::PeerDisconnected>().front().reason.detail.find("DatagramOptions::keys") != std::string::npos);
    CHECK(client.in.all<sage::PeerConnected>().empty());
  }
}

TEST_CASE("security: sealed unreliable datagrams tampered with or replayed on the path are dropped and counted, and the peer stays") {
  Path p(options({players_key}), options({players_key}));
  p.connect();
  int next = 0;
  auto send_until = [&](auto done) {
    return p.tick([&] {
      p.client.m.send_message(IntMessage{next++}, p.to_server, sage::Delivery::unsequenced());
      return done();
    });
  };
  REQUIRE(send_until([&] { return values(p.server.in).size() >= 5; }));

  p.attacker.attack = PathAttacker::Attack::tamper;
  REQUIRE(send_until([&] { return p.server.m.datagram_stats().sealed_dropped == 1; }));
  CHECK(p.attacker.done == 1);

  p.attacker.attack = PathAttacker::Attack::replay;
  REQUIRE(send_until([&] { return p.server.m.datagram_stats().sealed_dropped == 2; }));
  CHECK(p.attacker.done == 2);

  // The peer stays, later messages arrive, and none arrived twice.
  const std::size_t before = p.server.in.all<IntMessage>().size();
  REQUIRE(send_until([&] { return p.server.in.all<IntMessage>().size() >= before + 5; }));
  CHECK(values(p.server.in).size() == p.server.in.all<IntMessage>().size());
  CHECK(p.server.m.peers().size() == 1);
  CHECK(p.server.in.all<sage::PeerDisconnected>().empty());
  CHECK(p.server.m.datagram_stats().bad_input == 0);
}

TEST_CASE("security: a sealed reliable datagram tampered with on the path drops the peer as bad input, after what came before it was delivered") {
  Path p(options({players_key}), options({players_key}));
  p.connect();
  p.client.m.send_message(IntMessage{1}, p.to_server);
  REQUIRE(p.tick([&] { return values(p.server.in).count(1) == 1; }));
  p.attacker.kind = ENET_PROTOCOL_COMMAND_SEND_RELIABLE;
  p.attacker.attack = PathAttacker::Attack::tamper;
  p.client.m.send_message(IntMessage{2}, p.to_server);
  REQUIRE(p.tick([&] { return p.server.in.all<sage::PeerDisconnected>().size() == 1; }));
  CHECK(p.attacker.done == 1);
  CHECK(p.server.m.datagram_stats().bad_input == 1);
  CHECK(p.server.m.datagram_stats().last_bad_input.find("did not open") != std::string::npos);
}

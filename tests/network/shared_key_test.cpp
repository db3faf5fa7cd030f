// Shared keys over tcp:// (docs/security.md "Shared keys"): only a peer that proves the key gets a
// peer slot, and every frame after the handshake is sealed. The attacks are real: raw sockets
// that speak the handshake with the wrong key or replay a recorded one, and a relay on the path
// between two real managers that tampers with, replays and injects frames. Every test is
// "security: ...".
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <variant>
#include <string>
#include <thread>

#include "net_util.hpp"
#include "secure/handshake.hpp"
#include "transport/frame.hpp"

using namespace nt;
using namespace nettest;
using namespace std::chrono_literals;
namespace secure = sage::detail::secure;

namespace {

using Inbox = Recorder<IntMessage, sage::PeerConnected, sage::PeerDisconnected, sage::PeerRefused>;

const sage::SharedKey workers_key = sage::SharedKey::generate("workers");

sage::NetworkOptions keyed(std::vector<sage::SharedKey> keys) {
  sage::NetworkOptions o;
  o.keys = std::move(keys);
  o.hello_timeout = 2s;
  return o;
}

secure::NamedKey named(const sage::SharedKey& k) {
  secure::NamedKey n{k.id, {}};
  std::memcpy(n.key.data(), k.bytes.data(), n.key.size());
  return n;
}

// Reads exactly n bytes from a blocking socket while ticking `server`; fewer if it closes first.
std::vector<std::byte> read_n(int fd, std::size_t n, sage::Manager& server, std::chrono::milliseconds limit = 10s) {
  std::vector<std::byte> got;
  const auto deadline = Clock::now() + limit;
  while (got.size() < n && Clock::now() < deadline) {
    server.tick();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    std::byte buf[512];
    const auto r = ::recv(fd, buf, std::min(sizeof buf, n - got.size()), 0);
    if (r <= 0) break;
    got.insert(got.end(), buf, buf + r);
  }
  return got;
}

// Whether the server closed `fd` (EOF) within `limit`, ticking it meanwhile.
bool closed_by(int fd, sage::Manager& server, std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    server.tick();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    char c[256];
    const auto r = ::recv(fd, c, sizeof c, 0);
    if (r <= 0) return true;
  }
  return false;
}

// A relay on the path: listens on a free port, connects each client to `target` and copies bytes
// both ways on its own thread. Client -> server frames after the handshake can be tampered with,
// replayed or preceded by an injected one, once, when `attack` is set.
struct Relay {
  enum class Attack { none, tamper, replay, inject };
  std::atomic<Attack> attack{Attack::none};
  std::atomic<int> frames_seen{0};  // client -> server frames after the handshake
  std::atomic<bool> attacked{false};
  std::uint16_t port = 0;
  int lfd = -1;
  std::atomic<bool> stop{false};
  std::thread worker;

  explicit Relay(std::uint16_t target) {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(lfd, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    worker = std::thread([this, target] { run(target); });
  }
  ~Relay() {
    stop = true;
    worker.join();
    ::close(lfd);
  }

  void run(std::uint16_t target) {
    pollfd lp{lfd, POLLIN, 0};
    while (!stop && ::poll(&lp, 1, 20) <= 0) {}
    if (stop) return;
    const int c = ::accept(lfd, nullptr, nullptr);
    RawSocket s(target);
    std::vector<std::byte> up;  // client -> server bytes not yet forwarded (whole messages)
    std::size_t handshake_left = 0;
    bool k1_sized = false;
    while (!stop) {
      pollfd p[2] = {{c, POLLIN, 0}, {s.fd, POLLIN, 0}};
      if (::poll(p, 2, 20) <= 0) continue;
      std::byte buf[65536];
      if (p[1].revents) {
        const auto n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (::send(c, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      if (p[0].revents) {
        const auto n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        up.insert(up.end(), buf, buf + n);
        forward(s, up, handshake_left, k1_sized);
      }
    }
    ::close(c);
  }

  // Forwards K1 and K3 as they are, then whole frames, attacking one of them.
  void forward(RawSocket& s, std::vector<std::byte>& up, std::size_t& handshake_left, bool& k1_sized) {
    for (;;) {
      if (!k1_sized) {
        if (up.size() < secure::magic_bytes + 1) return;
        handshake_left = *secure::k1_size(up) + secure::k3_bytes;
        k1_sized = true;
      }
      if (handshake_left > 0) {
        const std::size_t n = std::min(handshake_left, up.size());
        if (n == 0) return;
        s.write_all(std::vector<std::byte>(up.begin(), up.begin() + static_cast<long>(n)));
        up.erase(up.begin(), up.begin() + static_cast<long>(n));
        handshake_left -= n;
        continue;
      }
      const auto step = sage::detail::next_frame(up, 1 << 24);
      if (step.kind != sage::detail::FrameStep::Kind::frame) return;
      std::vector<std::byte> f(up.begin(), up.begin() + static_cast<long>(step.need));
      up.erase(up.begin(), up.begin() + static_cast<long>(step.need));
      ++frames_seen;
      const Attack a = attack.load();
      if (a != Attack::none && !attacked.exchange(true)) {
        if (a == Attack::tamper) f[sage::detail::frame_header_size + 3] ^= std::byte{0x40};
        if (a == Attack::replay) s.write_all(f);  // the same sealed frame twice
        if (a == Attack::inject) {
          std::vector<std::byte> junk(64, std::byte{0x5a});
          s.write_all(frame(junk));  // a well-framed body that was never sealed
        }
      }
      s.write_all(f);
    }
  }
};

// client.connect() while `server` ticks on another thread: the shared-key handshake, like TLS's,
// is part of the connection, so the listener must answer while connect() waits. Returns the peer,
// or the network_error's text.
std::variant<sage::Sender, std::string> connect_ticking(sage::Manager& client, sage::Manager& server,
                                                       std::uint16_t port) {
  std::atomic<bool> done{false};
  std::thread ticker([&] {
    while (!done) {
      server.tick();
      server.wait_for_next_tick(2ms);
    }
  });
  std::variant<sage::Sender, std::string> out;
  try {
    out = client.connect("127.0.0.1", port);
  } catch (const sage::network_error& e) {
    out = std::string(e.what());
  }
  done = true;
  ticker.join();
  return out;
}

// A client manager connected through `port` with `key`, and a server with its inbox.
struct KeyedPair {
  sage::Manager server, client;
  Inbox at_server, at_client;
  std::uint16_t port = 0;
  explicit KeyedPair(std::vector<sage::SharedKey> server_keys) {
    server.register_messages(messages{});
    client.register_messages(messages{});
    server.register_actor(at_server);
    client.register_actor(at_client);
    server.enable_network(keyed(std::move(server_keys)));
    port = server.listen("127.0.0.1", 0).port;
  }
};

}  // namespace

TEST_CASE("security: a tcp:// peer that proves the listener's shared key connects, both ends see its identity, and "
          "messages flow both ways sealed") {
  KeyedPair p({sage::SharedKey::generate("other"), workers_key});
  std::optional<sage::AdmissionRequest> asked;
  p.client.enable_network(keyed({workers_key}));
  const auto connected = connect_ticking(p.client, p.server, p.port);
  REQUIRE(std::holds_alternative<sage::Sender>(connected));
  const sage::Sender server = std::get<sage::Sender>(connected);
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    return !p.at_server.all<sage::PeerConnected>().empty() && !p.at_client.all<sage::PeerConnected>().empty();
  }));
  CHECK(p.at_server.all<sage::PeerConnected>().front().identity == "key:workers");
  CHECK(p.at_client.all<sage::PeerConnected>().front().identity == "key:workers");
  CHECK(p.server.peers().front().identity == "key:workers");
  p.client.send_message(IntMessage{41}, server);
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
  p.server.send_message(IntMessage{42}, p.at_server.all<sage::PeerConnected>().front().peer);
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_client.all<IntMessage>().empty(); }));
  CHECK(p.at_server.all<IntMessage>().front().value == 41);
  CHECK(p.at_client.all<IntMessage>().front().value == 42);
  CHECK(p.server.network_stats().authentication_failures == 0);
}

TEST_CASE("security: the admission hook sees the shared key's identity and may refuse by it") {
  sage::Manager server, client;
  server.register_messages(messages{});
  client.register_messages(messages{});
  Inbox at_client;
  client.register_actor(at_client);
  std::vector<std::string> identities;
  auto o = keyed({workers_key});
  o.admit = [&](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    identities.push_back(r.identity);
    return std::string("workers may not connect as plain peers");
  };
  server.enable_network(o);
  const auto port = server.listen("127.0.0.1", 0).port;
  client.enable_network(keyed({workers_key}));
  REQUIRE(std::holds_alternative<sage::Sender>(connect_ticking(client, server, port)));
  REQUIRE(tick_until({&server, &client}, [&] { return !at_client.all<sage::PeerRefused>().empty(); }));
  REQUIRE(identities.size() == 1);
  CHECK(identities.front() == "key:workers");
  CHECK(at_client.all<sage::PeerRefused>().front().reason.message().find("workers may not connect") != std::string::npos);
}

TEST_CASE("security: a client with the wrong key or an unknown key id is refused with the reason, gets no peer "
          "slot, and the listener counts it") {
  KeyedPair p({workers_key});
  sage::SharedKey wrong = sage::SharedKey::generate("workers");  // same id, other bytes
  sage::SharedKey unknown = sage::SharedKey::generate("visitors");
  int n = 0;
  for (const auto& key : {wrong, unknown}) {
    sage::Manager client;
    client.register_messages(messages{});
    Inbox at_client;
    client.register_actor(at_client);
    client.enable_network(keyed({key}));
    const auto r = connect_ticking(client, p.server, p.port);
    REQUIRE(std::holds_alternative<std::string>(r));
    const std::string error = std::get<std::string>(r);
    INFO(error);
    if (key.id == "workers") CHECK(error.find("does not match the listener's key") != std::string::npos);
    else CHECK(error.find("does not know this key id") != std::string::npos);
    ++n;
    REQUIRE(tick_until({&p.server}, [&] { return p.server.network_stats().authentication_failures == std::uint64_t(n); }));
    CHECK(p.server.peers().empty());
    CHECK(p.at_server.all<sage::PeerConnected>().empty());
  }
  CHECK(p.server.network_stats().connections_accepted == 0);
}

TEST_CASE("security: a plain client to a keyed listener and a keyed client to a plain listener each fail with a "
          "reason that names the shared keys") {
  KeyedPair keyed_server({workers_key});
  sage::Manager plain;
  plain.register_messages(messages{});
  Inbox at_plain;
  plain.register_actor(at_plain);
  plain.enable_network();
  plain.connect("127.0.0.1", keyed_server.port);  // plain TCP connects; the refusal comes as bytes
  REQUIRE(tick_until({&keyed_server.server, &plain}, [&] { return !at_plain.all<sage::PeerDisconnected>().empty(); }));
  CHECK(at_plain.all<sage::PeerDisconnected>().front().reason.message().find("requires the shared-key handshake") !=
        std::string::npos);
  CHECK(keyed_server.server.peers().empty());
  CHECK(keyed_server.server.network_stats().authentication_failures == 1);

  sage::Manager plain_server, client;
  plain_server.register_messages(messages{});
  client.register_messages(messages{});
  plain_server.enable_network();
  const auto port = plain_server.listen("127.0.0.1", 0).port;
  Inbox at_client;
  client.register_actor(at_client);
  client.enable_network(keyed({workers_key}));
  const auto r = connect_ticking(client, plain_server, port);
  REQUIRE(std::holds_alternative<std::string>(r));
  const std::string error = std::get<std::string>(r);
  INFO(error);
  CHECK(error.find("NetworkOptions::keys") != std::string::npos);
}

TEST_CASE("security: a recorded shared-key handshake replayed to the listener gets no peer") {
  KeyedPair p({workers_key});
  // Record a real handshake from a client that holds the key.
  std::vector<std::byte> k1, k3;
  {
    RawSocket s(p.port);
    secure::ClientHandshake hs(named(workers_key));
    k1 = hs.hello();
    REQUIRE(s.write_all(k1));
    const auto k2 = read_n(s.fd, secure::k2_bytes, p.server);
    REQUIRE(k2.size() == secure::k2_bytes);
    auto done = hs.on_reply(k2);
    REQUIRE(done.ok());
    k3 = done->second;
    REQUIRE(s.write_all(k3));
    REQUIRE(tick_until({&p.server}, [&] { return p.server.network_stats().connections_accepted == 1; }));
  }
  // The attacker replays both messages: the listener's fresh nonce makes K3 wrong.
  RawSocket replay(p.port);
  REQUIRE(replay.write_all(k1));
  const auto k2 = read_n(replay.fd, secure::k2_bytes, p.server);
  CHECK(k2.size() == secure::k2_bytes);
  REQUIRE(replay.write_all(k3));
  CHECK(closed_by(replay.fd, p.server));
  CHECK(p.server.network_stats().connections_accepted == 1);  // the recorded one only
  CHECK(p.server.network_stats().authentication_failures == 1);
}

TEST_CASE("security: a sealed frame tampered with, replayed or injected on the path drops the peer as bad input, "
          "after the frames before it were delivered") {
  for (auto attack : {Relay::Attack::tamper, Relay::Attack::replay, Relay::Attack::inject}) {
    KeyedPair p({workers_key});
    Relay relay(p.port);
    p.client.enable_network(keyed({workers_key}));
    const auto connected = connect_ticking(p.client, p.server, relay.port);
    REQUIRE(std::holds_alternative<sage::Sender>(connected));
    const sage::Sender server = std::get<sage::Sender>(connected);
    p.client.send_message(IntMessage{1}, server);
    REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
    relay.attack = attack;
    p.client.send_message(IntMessage{2}, server);
    REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<sage::PeerDisconnected>().empty(); }));
    CHECK(relay.attacked);
    const auto& gone = p.at_server.all<sage::PeerDisconnected>().front();
    INFO(gone.reason.message());
    CHECK(gone.reason.message().find("does not open under the session key") != std::string::npos);
    CHECK(p.server.network_stats().bad_input == 1);
    // The first message got through; nothing arrived twice (the attacked frame may have been a
    // heartbeat or the second message).
    const auto& got = p.at_server.all<IntMessage>();
    REQUIRE_FALSE(got.empty());
    CHECK(got.front().value == 1);
    CHECK(got.size() <= 2);
    if (got.size() == 2) CHECK(got.back().value == 2);
  }
}

TEST_CASE("security: shared-key handshakes past the per-address bound are closed at once, silent ones after "
          "hello_timeout, and a real client still gets in") {
  sage::NetworkOptions o = keyed({workers_key});
  o.max_handshakes_per_address = 4;
  o.hello_timeout = 500ms;
  sage::Manager server, client;
  server.register_messages(messages{});
  client.register_messages(messages{});
  server.enable_network(o);
  const auto port = server.listen("127.0.0.1", 0).port;
  std::vector<std::unique_ptr<RawSocket>> silent;
  for (int i = 0; i < 4; ++i) silent.push_back(std::make_unique<RawSocket>(port));
  REQUIRE(tick_until({&server}, [&] { return true; }));
  RawSocket fifth(port);
  const auto refusal = read_n(fifth.fd, secure::k2_refusal_bytes, server);
  REQUIRE(refusal.size() == secure::k2_refusal_bytes);
  CHECK(secure::is_refusal_magic(refusal));
  CHECK(std::to_integer<int>(refusal.back()) == static_cast<int>(secure::KeyRefusal::busy));
  CHECK(closed_by(fifth.fd, server));
  for (auto& s : silent) CHECK(closed_by(s->fd, server));  // hello_timeout
  CHECK(server.network_stats().authentication_failures == 5);
  client.enable_network(keyed({workers_key}));
  REQUIRE(std::holds_alternative<sage::Sender>(connect_ticking(client, server, port)));
  REQUIRE(tick_until({&server, &client}, [&] { return server.network_stats().connections_accepted == 1; }));
}

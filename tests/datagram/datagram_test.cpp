// Datagram peers over ENet (docs/network.md "Datagrams"): delivery modes through a lossy link,
// timeouts, reconnects, the handshake, bad datagrams and max_peers. Every test is "datagram: ...".
#include <doctest/doctest.h>

#include <enet/enet.h>

#include <cstring>
#include <memory>
#include <random>
#include <set>

#include "enet_challenge.hpp"
#include "lossy_relay.hpp"
#include "net_util.hpp"
#include "sage/datagram.hpp"
#include "transport/datagram.hpp"

using namespace nt;
using namespace nettest;

namespace {

using Inbox = Recorder<IntMessage, StringMessage, Seq, sage::PeerConnected, sage::PeerDisconnected, sage::PeerRefused>;

sage::DatagramOptions quick(std::chrono::milliseconds timeout = 5s) {
  sage::DatagramOptions o;
  o.peer_timeout = timeout;
  o.ping_interval = 100ms;
  o.connect_timeout = 3s;
  return o;
}

// A server and one client; the client dials `port` (the server's, or a relay's in front of it).
struct Duo {
  sage::Manager server, client;
  Inbox at_server, at_client;
  sage::Sender to_server{};
  std::uint16_t server_port = 0;
  Duo(const sage::DatagramOptions& so = quick(), const sage::DatagramOptions& co = quick()) {
    server.register_messages(messages{});
    client.register_messages(messages{});
    server.enable_datagrams(so);
    client.enable_datagrams(co);
    server.register_actor(at_server);
    client.register_actor(at_client);
    server_port = server.listen_datagram("127.0.0.1", 0).port;
  }
  void connect(std::uint16_t port) {
    to_server = client.connect_datagram("127.0.0.1", port);
    REQUIRE(tick_until({&server, &client}, [&] {
      return at_server.all<sage::PeerConnected>().size() == 1 && at_client.all<sage::PeerConnected>().size() == 1;
    }));
  }
  sage::Sender client_at_server() { return at_server.all<sage::PeerConnected>().front().peer; }
  bool tick(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
    return tick_until({&server, &client}, pred, limit);
  }
};

Seq numbered(std::uint64_t n, std::size_t blob = 24) {
  Seq s;
  s.client = 1;
  s.n = n;
  for (std::size_t i = 0; i < blob; ++i) s.blob.push_back(static_cast<std::uint8_t>(n * 31 + i));
  return s;
}
bool intact(const Seq& s) {
  for (std::size_t i = 0; i < s.blob.size(); ++i)
    if (s.blob[i] != static_cast<std::uint8_t>(s.n * 31 + i)) return false;
  return true;
}

}  // namespace

TEST_CASE("datagram: listen_datagram on port 0 reports the bound port and an enet:// url") {
  sage::Manager m;
  const auto at = m.listen_datagram("127.0.0.1", 0);
  CHECK(at.port != 0);
  CHECK(at.url == "enet://127.0.0.1:" + std::to_string(at.port));
  sage::Manager other;
  CHECK_THROWS_AS(other.listen_datagram("127.0.0.1", at.port), sage::network_error);
  CHECK_THROWS_AS(other.listen_datagram("::1", 0), sage::network_error);  // ENet is IPv4 only
}

TEST_CASE("datagram: a message arrives with the peer as Sender, replies go back, peers() and stats agree") {
  Duo d;
  d.connect(d.server_port);
  CHECK(sage::is_datagram_peer(d.to_server));
  CHECK(d.at_client.all<sage::PeerConnected>().front().outgoing);
  CHECK_FALSE(d.at_server.all<sage::PeerConnected>().front().outgoing);
  d.client.send_message(IntMessage{7});  // the one server: reliable by default
  REQUIRE(d.tick([&] { return !d.at_server.all<IntMessage>().empty(); }));
  CHECK(d.at_server.all<IntMessage>().front().value == 7);
  CHECK(d.at_server.from.back() == d.client_at_server());
  d.server.send_message(StringMessage{"pong"}, d.client_at_server(), sage::Delivery::unsequenced());
  REQUIRE(d.tick([&] { return !d.at_client.all<StringMessage>().empty(); }));
  CHECK(d.at_client.from.back() == d.to_server);
  REQUIRE(d.server.peers().size() == 1);
  CHECK(d.server.peers().front().connected);
  const auto s = d.server.datagram_stats();
  CHECK(s.connections_accepted == 1);
  CHECK(s.peers_connected == 1);
  CHECK(s.records_received == 1);
  CHECK(s.records_sent == 1);
  CHECK_THROWS_AS(d.client.send_message(IntMessage{1}, d.to_server, sage::Delivery::sequenced(4)), sage::usage_error);
}

TEST_CASE("datagram: disconnect() is reported on both ends with the reason") {
  Duo d;
  d.connect(d.server_port);
  d.client.disconnect(d.to_server);
  REQUIRE(d.tick([&] {
    return d.at_server.all<sage::PeerDisconnected>().size() == 1 && d.at_client.all<sage::PeerDisconnected>().size() == 1;
  }));
  CHECK(d.at_server.all<sage::PeerDisconnected>().front().reason.detail.find("closed by the peer") != std::string::npos);
  CHECK(d.server.peers().empty());
  CHECK_THROWS_AS(d.server.send_message(IntMessage{1}, d.client_at_server()), sage::send_error);
}

TEST_CASE("datagram: a reliable channel delivers everything in order at 20% loss") {
  Duo d;
  lossy::Relay relay(d.server_port, {.drop = 0.2, .duplicate = 0.1, .reorder = 0.2, .delay_ms = 2});
  d.connect(relay.port());
  constexpr std::uint64_t total = 300;
  std::uint64_t sent = 0;
  REQUIRE(d.tick([&] {
    for (int i = 0; i < 5 && sent < total; ++i) d.client.send_message(numbered(sent++), d.to_server, sage::Delivery::reliable_on(1));
    return d.at_server.all<Seq>().size() == total;
  }, 60s));
  for (std::uint64_t i = 0; i < total; ++i) {
    REQUIRE(d.at_server.all<Seq>()[i].n == i);
    REQUIRE(intact(d.at_server.all<Seq>()[i]));
  }
  CHECK(relay.dropped() > 0);
}

TEST_CASE("datagram: unreliable-sequenced never delivers an older message after a newer one") {
  Duo d;
  lossy::Relay relay(d.server_port, {.drop = 0.2, .duplicate = 0.2, .reorder = 0.3, .delay_ms = 1});
  d.connect(relay.port());
  std::uint64_t sent = 0;
  REQUIRE(d.tick([&] {
    if (sent < 400) d.client.send_message(numbered(sent++), d.to_server, sage::Delivery::sequenced(2));
    return sent == 400;
  }, 60s));
  d.client.send_message(IntMessage{1}, d.to_server);  // reliable marker: everything before it was sent
  REQUIRE(d.tick([&] { return !d.at_server.all<IntMessage>().empty(); }, 30s));
  const auto& got = d.at_server.all<Seq>();
  CHECK(got.size() > 100);   // most arrive
  CHECK(got.size() < 400);   // some were lost (20% loss, no retransmits)
  for (std::size_t i = 1; i < got.size(); ++i) REQUIRE(got[i].n > got[i - 1].n);
}

TEST_CASE("datagram: unsequenced messages may be lost but never arrive corrupted or twice") {
  Duo d;
  lossy::Relay relay(d.server_port, {.drop = 0.2, .duplicate = 0.2, .reorder = 0.3, .delay_ms = 1});
  d.connect(relay.port());
  std::uint64_t sent = 0;
  REQUIRE(d.tick([&] {
    // Three per tick: they share a datagram batch; some are larger than one datagram (fragments).
    for (int i = 0; i < 3 && sent < 300; ++i, ++sent)
      d.client.send_message(numbered(sent, sent % 50 == 0 ? 3000 : 40), d.to_server, sage::Delivery::unsequenced(1));
    return sent == 300;
  }, 60s));
  d.client.send_message(IntMessage{1}, d.to_server);
  REQUIRE(d.tick([&] { return !d.at_server.all<IntMessage>().empty(); }, 30s));
  const auto& got = d.at_server.all<Seq>();
  CHECK(got.size() > 100);
  CHECK(got.size() < 300);
  for (const Seq& s : got) REQUIRE(intact(s));
  std::set<std::uint64_t> seen;  // the relay duplicates 20% of the datagrams: none arrives twice
  for (const Seq& s : got) REQUIRE(seen.insert(s.n).second);
  CHECK(d.server.datagram_stats().bad_input == 0);
}

TEST_CASE("datagram: a blackholed peer times out with PeerDisconnected on both ends") {
  Duo d(quick(800ms), quick(800ms));
  lossy::Relay relay(d.server_port, {});
  d.connect(relay.port());
  relay.blackhole(true);
  REQUIRE(d.tick([&] {
    return d.at_server.all<sage::PeerDisconnected>().size() == 1 && d.at_client.all<sage::PeerDisconnected>().size() == 1;
  }));
  CHECK(d.at_server.all<sage::PeerDisconnected>().front().reason.detail.find("timed out") != std::string::npos);
  CHECK(d.server.datagram_stats().timeouts == 1);
  CHECK(d.client.datagram_stats().timeouts == 1);
  CHECK(d.server.peers().empty());
}

TEST_CASE("datagram: a client reconnects after the link heals and keeps its Sender") {
  auto co = quick(800ms);
  co.reconnect.enabled = true;
  co.reconnect.initial_delay = 100ms;
  co.reconnect.max_delay = 400ms;
  Duo d(quick(800ms), co);
  lossy::Relay relay(d.server_port, {});
  d.connect(relay.port());
  relay.blackhole(true);
  REQUIRE(d.tick([&] { return d.at_client.all<sage::PeerDisconnected>().size() == 1; }));
  CHECK(d.at_client.all<sage::PeerDisconnected>().front().reconnecting);
  relay.blackhole(false);
  REQUIRE(d.tick([&] { return d.at_client.all<sage::PeerConnected>().size() == 2; }));
  CHECK(d.at_client.all<sage::PeerConnected>().back().peer == d.to_server);
  d.client.send_message(IntMessage{99}, d.to_server);
  REQUIRE(d.tick([&] { return !d.at_server.all<IntMessage>().empty(); }));
  CHECK(d.at_server.all<IntMessage>().back().value == 99);
}

TEST_CASE("datagram: connecting to nothing ends in PeerDisconnected after connect_timeout") {
  sage::Manager client;
  Inbox in;
  client.register_actor(in);
  auto o = quick();
  o.connect_timeout = 300ms;
  client.enable_datagrams(o);
  std::uint16_t port = 0;
  {
    sage::Manager gone;  // a port nobody listens on any more
    port = gone.listen_datagram("127.0.0.1", 0).port;
  }
  const auto peer = client.connect_datagram("127.0.0.1", port);
  REQUIRE(tick_until({&client}, [&] { return in.all<sage::PeerDisconnected>().size() == 1; }));
  CHECK(in.all<sage::PeerDisconnected>().front().peer == peer);
  CHECK(client.peers().empty());
}

namespace {

// A raw ENet client (no sage): for bad input inside valid ENet packets.
struct RawEnet {
  ENetHost* host = enet_host_create(nullptr, 1, 12, 0, 0);
  ENetPeer* peer = nullptr;
  bool connected = false, disconnected = false;
  std::uint32_t disconnect_data = 0;
  ~RawEnet() { enet_host_destroy(host); }
  // Connects to the sage listener `server` at port, with the cookie of its challenge.
  void dial(sage::Manager& server, std::uint16_t port) {
    auto c = enet_challenge::cookie(static_cast<int>(host->socket), port, [&] { server.tick(); });
    REQUIRE(c);
    dial_with(port, *c);
  }
  // Connects with `data` as the connect's data word (a cookie, or not).
  void dial_with(std::uint16_t port, std::uint32_t data) {
    ENetAddress a{};
    enet_address_set_host_ip(&a, "127.0.0.1");
    a.port = port;
    peer = enet_host_connect(host, &a, 12, data);
  }
  void service() {
    ENetEvent ev;
    while (enet_host_service(host, &ev, 0) > 0) {
      if (ev.type == ENET_EVENT_TYPE_CONNECT) connected = true;
      if (ev.type == ENET_EVENT_TYPE_DISCONNECT) disconnected = true, disconnect_data = ev.data;
      if (ev.type == ENET_EVENT_TYPE_RECEIVE) enet_packet_destroy(ev.packet);
    }
  }
  void send(std::span<const std::byte> b, std::uint8_t channel = 0) {
    enet_peer_send(peer, channel, enet_packet_create(b.data(), b.size(), ENET_PACKET_FLAG_RELIABLE));
    enet_host_flush(host);
  }
};

}  // namespace

TEST_CASE("datagram: random datagrams are counted and dropped, and the server keeps serving") {
  Duo d;
  d.connect(d.server_port);
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(d.server_port);
  std::mt19937 rng(7);
  for (int i = 0; i < 50; ++i) {
    std::vector<std::uint8_t> junk(1 + rng() % 200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    junk[0] = 0x0f;  // peer id 0xf.. (no such peer): ENet would drop it silently
    REQUIRE(::sendto(fd, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) > 0);
  }
  ::close(fd);
  REQUIRE(d.tick([&] { return d.server.datagram_stats().bad_datagrams == 50; }));
  d.client.send_message(IntMessage{5}, d.to_server);
  REQUIRE(d.tick([&] { return !d.at_server.all<IntMessage>().empty(); }));
  CHECK(d.server.peers().size() == 1);
}

TEST_CASE("datagram: corrupt sage records inside valid ENet packets drop that peer as bad input") {
  Duo d;
  d.connect(d.server_port);
  RawEnet raw;
  raw.dial(d.server, d.server_port);
  REQUIRE(d.tick([&] { raw.service(); return raw.connected; }));
  std::vector<std::byte> body = hello_record({}, "raw");
  std::vector<std::byte> junk(16, std::byte{0xff});
  sage::wire::append_record(body, IntMessage::packet_type, junk);
  raw.send(body);
  REQUIRE(d.tick([&] { raw.service(); return d.server.datagram_stats().bad_input == 1; }));
  CHECK(d.server.datagram_stats().last_bad_input.find("verify") != std::string::npos);
  REQUIRE(d.tick([&] { raw.service(); return raw.disconnected; }));
  d.client.send_message(IntMessage{5}, d.to_server);
  REQUIRE(d.tick([&] { return !d.at_server.all<IntMessage>().empty(); }));
}

TEST_CASE("datagram: a connect without the listener's challenge cookie gets no slot and no answer, and is counted") {
  Duo d;
  RawEnet raw;
  raw.dial_with(d.server_port, 0x53414745);  // what sage sent before the challenge: a guess, not a cookie
  // ENet resends an unanswered connect: three arrivals mean the listener had time to answer one.
  REQUIRE(d.tick([&] { raw.service(); return d.server.datagram_stats().unproven_connects >= 3; }));
  CHECK_FALSE(raw.connected);
  CHECK(raw.host->totalReceivedData == 0);  // not one byte came back
  CHECK(d.server.peers().empty());
  CHECK(d.server.datagram_stats().connections_accepted == 0);
}

TEST_CASE("datagram: messages sent before the server's hello arrived are held on every delivery and sent after it") {
  Duo d;
  // 150 ms each way: the client is ENet-connected (sends accepted) about 300 ms before the
  // server's hello reaches it.
  lossy::Relay relay(d.server_port, {.delay_ms = 150});
  d.to_server = d.client.connect_datagram("127.0.0.1", relay.port());
  bool held = false;
  REQUIRE(d.tick([&] {
    if (!d.client.try_send_message(IntMessage{41}, d.to_server, sage::Delivery::sequenced(1))) return false;
    held = !d.client.peers().front().connected;  // accepted before the handshake completed
    d.client.send_message(StringMessage{"early"}, d.to_server, sage::Delivery::reliable_on(2));
    d.client.send_message(IntMessage{42}, d.to_server);
    return true;
  }));
  CHECK(held);
  REQUIRE(d.tick([&] { return d.at_server.all<IntMessage>().size() == 2 && !d.at_server.all<StringMessage>().empty(); }));
  CHECK(d.at_server.all<StringMessage>().front().text == "early");
  CHECK(d.server.datagram_stats().bad_input == 0);
  CHECK(d.client.datagram_stats().unknown_type_skipped == 0);
}

TEST_CASE("datagram: dropped peers are logged for the first drop_log_burst in an interval, then counted") {
  auto so = quick();
  so.drop_log_burst = 1;
  so.drop_log_interval = 60s;
  Duo d(so);
  std::vector<std::unique_ptr<RawEnet>> raws;
  for (int i = 0; i < 3; ++i) {
    raws.push_back(std::make_unique<RawEnet>());
    raws.back()->dial(d.server, d.server_port);
  }
  REQUIRE(d.tick([&] {
    for (auto& r : raws) r->service();
    return std::all_of(raws.begin(), raws.end(), [](auto& r) { return r->connected; });
  }));
  const std::vector<std::byte> junk(16, std::byte{0xff});  // not a hello: dropped and logged
  for (auto& r : raws) r->send(junk);
  REQUIRE(d.tick([&] {
    for (auto& r : raws) r->service();
    return d.server.datagram_stats().bad_input == 3;
  }));
  CHECK(d.server.datagram_stats().drop_logs_suppressed == 2);
}

TEST_CASE("datagram: a peer whose schemas cannot talk to ours is refused at the handshake with sagec check's diagnostic") {
  Duo d;
  RawEnet raw;
  raw.dial(d.server, d.server_port);
  REQUIRE(d.tick([&] { raw.service(); return raw.connected; }));
  // The same message with its field's type changed (int -> long), in a v2 hello.
  std::string desc(IntMessage::schema_description);
  desc.replace(desc.find("value int"), 9, "value long");
  raw.send(hello_record({{IntMessage::packet_type, 0xdeadbeef}}, "other", desc));
  REQUIRE(d.tick([&] { raw.service(); return d.server.datagram_stats().bad_input == 1; }));
  CHECK(d.server.datagram_stats().last_bad_input.find("is long in peer ") != std::string::npos);
  CHECK(d.server.datagram_stats().handshakes_refused == 1);
  REQUIRE(d.at_server.all<sage::PeerRefused>().size() == 1);
  const sage::PeerRefused refused = d.at_server.all<sage::PeerRefused>().front();
  CHECK_FALSE(refused.by_peer);
  CHECK(refused.name == "other");
  CHECK(refused.reason.code == sage::Errc::incompatible);
  auto r = d.server.try_send_message(IntMessage{1}, refused.peer, sage::Delivery::sequenced());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
  REQUIRE(d.tick([&] { raw.service(); return raw.disconnected; }));
  CHECK(d.at_server.all<sage::PeerConnected>().empty());
}

TEST_CASE("datagram: a peer speaking protocol 1 (a hello without schema description) is refused with 'upgrade it'") {
  Duo d;
  RawEnet raw;
  raw.dial(d.server, d.server_port);
  REQUIRE(d.tick([&] { raw.service(); return raw.connected; }));
  raw.send(protocol1_hello_record("old"));
  REQUIRE(d.tick([&] { raw.service(); return d.server.datagram_stats().bad_input == 1; }));
  CHECK(d.server.datagram_stats().last_bad_input.find("speaks protocol 1; upgrade it") != std::string::npos);
  REQUIRE(d.tick([&] { raw.service(); return raw.disconnected; }));
}

TEST_CASE("datagram: a connection that sends no hello is dropped at hello_timeout") {
  auto so = quick();
  so.hello_timeout = 300ms;
  Duo d(so);
  RawEnet raw;
  raw.dial(d.server, d.server_port);
  REQUIRE(d.tick([&] { raw.service(); return d.server.datagram_stats().hello_timeouts == 1; }));
  REQUIRE(d.tick([&] { raw.service(); return raw.disconnected; }));
  CHECK(d.server.peers().empty());
  CHECK(d.at_server.all<sage::PeerConnected>().empty());
}

TEST_CASE("datagram: max_peers is enforced and the refused client is told") {
  auto so = quick();
  so.max_peers = 2;
  Duo d(so);
  d.connect(d.server_port);
  sage::Manager b, c;
  Inbox in_b, in_c;
  for (auto [m, in] : {std::pair{&b, &in_b}, std::pair{&c, &in_c}}) {
    m->register_messages(messages{});
    m->register_actor(*in);
    m->enable_datagrams(quick());
  }
  b.connect_datagram("127.0.0.1", d.server_port);
  REQUIRE(tick_until({&d.server, &d.client, &b}, [&] { return in_b.all<sage::PeerConnected>().size() == 1; }));
  c.connect_datagram("127.0.0.1", d.server_port);
  REQUIRE(tick_until({&d.server, &d.client, &b, &c}, [&] { return in_c.all<sage::PeerDisconnected>().size() == 1; }));
  CHECK(in_c.all<sage::PeerDisconnected>().front().reason.detail.find("max_peers") != std::string::npos);
  CHECK(d.server.datagram_stats().peers_refused == 1);
  CHECK(d.server.peers().size() == 2);
}

TEST_CASE("datagram: enable_groups() after listen_datagram() is a usage_error naming the rule") {
  // A fork server started now would hold a copy of the UDP socket: the port would stay bound after
  // this manager closed it. (Each ctest runs one case in its own process.)
  sage::Manager server;
  server.listen_datagram("127.0.0.1", 0);
  sage::Manager later;
  CHECK_THROWS_WITH_AS(later.enable_groups(), doctest::Contains("before any listen, connect, listen_datagram"),
                       sage::usage_error);
  CHECK_FALSE(later.groups_enabled());
}

// Network messaging over TCP: pysage's network tests (packing, SYN/SYN-ACK/ACK with a group over
// the network) and sage's own (many clients, bad peers, slow peers, TLS, remote groups).
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "sage/log.hpp"

#include "net_util.hpp"
#include "waiting.hpp"
#include "channel/protocol.hpp"
#include "transport/stream.hpp"
#include "sage/remote_group.hpp"

using namespace nt;
using namespace nettest;
namespace proto = sage::detail::protocol;

namespace {

using Inbox = Recorder<IntMessage, TupleMessage, ArrayMessage, StringMessage, ComplexMessage, Seq,
                       sage::PeerConnected, sage::PeerDisconnected>;

// A server and one client in this thread, connected on a port chosen by the system.
struct Duo {
  sage::Manager server, client;
  Inbox at_server, at_client;
  sage::Sender to_server;
  explicit Duo(const sage::NetworkOptions& so = {}, const sage::NetworkOptions& co = {}) {
    server.register_messages(messages{});
    client.register_messages(messages{});
    server.enable_network(so);
    client.enable_network(co);
    server.register_actor(at_server);
    client.register_actor(at_client);
    const auto at = server.listen("127.0.0.1", 0);
    to_server = client.connect("127.0.0.1", at.port);
    REQUIRE(tick_until({&server, &client}, [&] {
      return at_server.all<sage::PeerConnected>().size() == 1 && at_client.all<sage::PeerConnected>().size() == 1;
    }));
  }
  sage::Sender client_at_server() { return at_server.all<sage::PeerConnected>().front().peer; }
};

template <class M>
M round_trip(const M& msg) {
  Duo p;
  p.client.send_message(msg);
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<M>().empty(); }));
  CHECK(p.at_server.from.back() == p.client_at_server());
  return p.at_server.all<M>().front();
}

std::uint16_t port_of(sage::Manager& m) { return m.listening()->port; }

}  // namespace

TEST_CASE("listen on port 0 picks a free port and reports it") {
  sage::Manager m;
  const auto at = m.listen("127.0.0.1", 0);
  CHECK(at.port != 0);
  CHECK(at.url == "tcp://127.0.0.1:" + std::to_string(at.port));
  CHECK(m.listening()->port == at.port);
  sage::Manager other;
  CHECK_THROWS_AS(other.listen("127.0.0.1", at.port), sage::network_error);
  try {
    other.listen("127.0.0.1", at.port);
  } catch (const sage::network_error& e) {
    CHECK(e.error().code == sage::Errc::io_error);  // a local failure, not the peer's (peer_gone)
  }
}

TEST_CASE("enable_groups() after listen() on tcp:// is a usage_error naming the rule") {
  // tcp:// uses no nng, but a fork server started now would hold a copy of the listening socket: the
  // port would stay bound and peers would not see EOF. (Each ctest runs one case in its own process.)
  sage::Manager server;
  server.listen("127.0.0.1", 0);
  sage::Manager later;
  CHECK_THROWS_WITH_AS(later.enable_groups(), doctest::Contains("before any listen, connect, listen_datagram"),
                       sage::usage_error);
  CHECK_FALSE(later.groups_enabled());
}

TEST_CASE("connect() to a port nobody listens on throws network_error naming the address, well before connect_timeout") {
  std::uint16_t port = 0;
  {
    sage::Manager gone;
    port = gone.listen("127.0.0.1", 0).port;
  }
  sage::NetworkOptions o;
  o.connect_timeout = 5s;
  sage::Manager m;
  m.enable_network(o);
  const auto started = Clock::now();
  try {
    (void)m.connect("127.0.0.1", port);
    FAIL("connect() succeeded");
  } catch (const sage::network_error& e) {
    CHECK(e.error().code == sage::Errc::peer_gone);
    CHECK(e.error().detail.find("tcp://127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(e.error().detail.find("refused") != std::string::npos);
  }
  CHECK(Clock::now() - started < 5s);
  CHECK(m.peers().empty());
}

TEST_CASE("a plain int arrives intact") { CHECK(round_trip(IntMessage{-123456}).value == -123456); }

TEST_CASE("a tuple-like struct arrives intact") {
  auto m = round_trip(TupleMessage{nettest::Pair{7, 2.5f}});
  CHECK(m.pair.a == 7);
  CHECK(m.pair.b == 2.5f);
}

TEST_CASE("an array arrives intact") {
  std::vector<std::int32_t> v(1000);
  for (int i = 0; i < 1000; ++i) v[static_cast<std::size_t>(i)] = i * i;
  CHECK(round_trip(ArrayMessage{v}).values == v);
}

TEST_CASE("a short and a long string arrive intact") {
  CHECK(round_trip(StringMessage{"hi"}).text == "hi");
  const std::string long_text(200000, 'x');
  CHECK(round_trip(StringMessage{long_text}).text == long_text);
}

TEST_CASE("a complex message with a struct and a double arrives intact") {
  auto m = round_trip(ComplexMessage{Vec2{1.5f, -2.0f}, 3.141592653589793, "ship"});
  CHECK(m.pos.x == 1.5f);
  CHECK(m.pos.y == -2.0f);
  CHECK(m.speed == 3.141592653589793);
  CHECK(m.name == "ship");
}

TEST_CASE("a reply to the sender reaches the client that sent the message") {
  Duo p;
  p.client.send_message(IntMessage{1});
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
  p.server.send_message(IntMessage{2}, p.at_server.from.back());
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_client.all<IntMessage>().empty(); }));
  CHECK(p.at_client.all<IntMessage>().front().value == 2);
  CHECK(p.at_client.from.back() == p.to_server);
  CHECK(p.at_client.all<sage::PeerConnected>().front().outgoing);
  CHECK_FALSE(p.at_server.all<sage::PeerConnected>().front().outgoing);
}

TEST_CASE("messages to one peer arrive complete and in order") {
  Duo p;
  constexpr std::uint64_t n = 5000;
  std::uint64_t sent = 0;
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    for (int i = 0; i < 100 && sent < n; ++i) p.client.send_message(Seq{0, sent++, {}});
    return p.at_server.all<Seq>().size() == n;
  }));
  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(p.at_server.all<Seq>()[i].n == i);
}

TEST_CASE("send_message without a peer needs exactly one server") {
  sage::Manager m;
  m.register_messages(messages{});
  CHECK_THROWS_AS(m.send_message(IntMessage{1}), sage::no_server);
  CHECK_THROWS_AS(m.send_message(IntMessage{1}, sage::Sender::local()), sage::not_a_peer);
}

TEST_CASE("a manager listens and holds several outgoing connections at once") {
  sage::Manager a, b, hub;
  Inbox in_a, in_b, in_hub;
  for (auto* m : {&a, &b, &hub}) m->register_messages(messages{});
  a.register_actor(in_a);
  b.register_actor(in_b);
  hub.register_actor(in_hub);
  const auto pa = a.listen("127.0.0.1", 0).port;
  const auto pb = b.listen("127.0.0.1", 0).port;
  hub.listen("127.0.0.1", 0);
  const auto to_a = hub.connect("127.0.0.1", pa);
  const auto to_b = hub.connect("127.0.0.1", pb);
  CHECK(to_a != to_b);
  CHECK_THROWS_AS(hub.send_message(IntMessage{0}), sage::no_server);
  hub.send_message(IntMessage{1}, to_a);
  hub.send_message(IntMessage{2}, to_b);
  REQUIRE(tick_until({&a, &b, &hub}, [&] { return !in_a.all<IntMessage>().empty() && !in_b.all<IntMessage>().empty(); }));
  CHECK(in_a.all<IntMessage>().front().value == 1);
  CHECK(in_b.all<IntMessage>().front().value == 2);
  REQUIRE(tick_until({&a, &b, &hub}, [&] { return in_hub.all<sage::PeerConnected>().size() == 2; }));
  CHECK(hub.broadcast_message(StringMessage{"all"}) == 2);
  REQUIRE(tick_until({&a, &b, &hub}, [&] { return !in_a.all<StringMessage>().empty() && !in_b.all<StringMessage>().empty(); }));
}

TEST_CASE("peers disconnecting are reported to subscribers on both ends") {
  Duo p;
  p.client.disconnect();
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    return p.at_server.all<sage::PeerDisconnected>().size() == 1 && p.at_client.all<sage::PeerDisconnected>().size() == 1;
  }));
  const auto& d = p.at_server.all<sage::PeerDisconnected>().front();
  CHECK(d.peer == p.client_at_server());
  CHECK(d.reason.code == sage::Errc::peer_gone);
  CHECK(d.reason.detail.find("closed by the peer") != std::string::npos);
  CHECK_FALSE(d.reconnecting);
  CHECK(p.server.peers().empty());
  CHECK_THROWS_AS(p.server.send_message(IntMessage{1}, d.peer), sage::send_error);
}

TEST_CASE("a message bigger than max_message_size is refused at send time") {
  sage::NetworkOptions o;
  o.max_message_size = 4096;
  Duo p(o, o);
  try {
    p.client.send_message(StringMessage{std::string(5000, 'y')});
    FAIL("no exception");
  } catch (const sage::send_error& e) {
    CHECK(e.error().code == sage::Errc::too_large);
  }
  p.client.send_message(StringMessage{std::string(3000, 'y')});  // fits
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<StringMessage>().empty(); }));
}

namespace {
// A server with one well-behaved client; `bad` bytes come from a raw socket; the server must drop
// the raw peer (counting it) and keep serving the good client. Returns the server's last_bad_input.
std::string expect_dropped(const std::vector<std::byte>& bad, std::string_view why, bool close_after = false) {
  Duo p;
  RawSocket raw(port_of(p.server));
  REQUIRE(raw.fd >= 0);
  REQUIRE(raw.write_all(bad));
  if (close_after) raw.shutdown_write();
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.server.network_stats().bad_input == 1; }));
  const std::string reason = p.server.network_stats().last_bad_input;
  CHECK(reason.find(why) != std::string::npos);
  p.client.send_message(IntMessage{42});
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
  CHECK(p.server.peers().size() == 1);
  return reason;
}

std::size_t occurrences(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("a peer sending garbage is dropped and counted and the server keeps serving") {
  std::vector<std::byte> junk;
  for (char c : std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) junk.push_back(std::byte(c));
  expect_dropped(junk, "not a sage frame header");
}

TEST_CASE("a frame header announcing more than max_message_size is dropped before allocating") {
  std::vector<std::byte> h(8);
  sage::detail::write_frame_header(h.data(), 0xfffffff0u);
  expect_dropped(h, "exceeds the limit");
}

TEST_CASE("a truncated frame (connection ends inside it) is dropped and counted") {
  auto f = frame(hello_record({}, "cut"));
  f.erase(f.end() - 5, f.end());  // (not resize: g++ 12 -O1 -fsanitize=address warns stringop-overflow)
  expect_dropped(f, "ended after", true);
}

TEST_CASE("a record of an unknown packet_type is dropped with its reason") {
  std::vector<std::byte> body = hello_record({}, "x");
  const auto payload = Stranger{1}.to_bytes();
  sage::wire::append_record(body, 200, payload);  // no message of the schema has packet_type 200
  expect_dropped(frame(body), "unknown packet type");
}

TEST_CASE("a plain peer sending route (relay) or bye_ack is dropped: only remote group nodes may") {
  std::vector<std::byte> body = hello_record({}, "x");
  sage::wire::append_record(body, static_cast<std::uint8_t>(proto::Control::route), proto::encode_name("other"));
  expect_dropped(frame(body), "route from a peer that is not a remote group");
  std::vector<std::byte> ack = hello_record({}, "y");
  sage::wire::append_record(ack, static_cast<std::uint8_t>(proto::Control::bye_ack), std::span<const std::byte>{});
  expect_dropped(frame(ack), "bye_ack from a peer that is not a remote group");
}

TEST_CASE("a payload failing the Verifier is dropped, its reason naming the message type once") {
  std::vector<std::byte> body = hello_record({}, "x");
  std::vector<std::byte> junk(16, std::byte{0xff});  // the root offset points far outside
  sage::wire::append_record(body, IntMessage::packet_type, junk);
  const std::string why = expect_dropped(frame(body), "verify failed: nettest.IntMessage: root offset points outside");
  CHECK(occurrences(why, "nettest.IntMessage") == 1);
  std::vector<std::byte> body2 = hello_record({}, "y");
  std::vector<std::byte> bad_table(16, std::byte{0});
  bad_table[0] = std::byte{8};  // a root table at 8 whose vtable offset points outside
  bad_table[8] = std::byte{0x7f};
  bad_table[11] = std::byte{0x7f};
  sage::wire::append_record(body2, IntMessage::packet_type, bad_table);
  const std::string why2 = expect_dropped(frame(body2), "verify failed: the 16 bytes are not a valid nettest.IntMessage");
  CHECK(occurrences(why2, "nettest.IntMessage") == 1);
}

TEST_CASE("a record followed by nonzero padding is dropped as malformed, over a real connection") {
  // The hello, then an IntMessage record whose padding (the payload is 12 bytes: 4 of padding)
  // has one nonzero byte, then a valid record that must not be delivered.
  std::vector<std::byte> body = hello_record({}, "padder");
  const auto payload = IntMessage{7}.to_bytes();
  REQUIRE(payload.size() % 8 != 0);
  sage::wire::append_record(body, IntMessage::packet_type, payload);
  body.back() = std::byte{0x01};
  body = cat(body, record(IntMessage{8}));
  const std::string why = expect_dropped(frame(body), "malformed: padding after a record must be zero");
  CHECK(why.find("padding") != std::string::npos);
}

TEST_CASE("a peer whose schemas cannot talk to ours is refused at the handshake with sagec check's diagnostic") {
  // The same message with its field's type changed (int -> long).
  std::string desc(IntMessage::schema_description);
  desc.replace(desc.find("value int"), 9, "value long");
  expect_dropped(frame(hello_record({{IntMessage::packet_type, 0xdeadbeef}}, "other", desc)),
                 "error: field nettest.IntMessage.value is long in peer 127.0.0.1:");
}

namespace {
// Every log line sage writes while it lives (set_log_handler), for counting them.
struct CapturedLog {
  std::mutex mutex;
  std::vector<std::string> lines;
  CapturedLog() {
    sage::set_log_handler([this](sage::LogLevel, std::string_view, std::string_view text) {
      std::lock_guard lock(mutex);
      lines.emplace_back(text);
    });
  }
  ~CapturedLog() { sage::set_log_handler({}); }
  std::size_t count(std::string_view what) {
    std::lock_guard lock(mutex);
    return static_cast<std::size_t>(
        std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(what) != std::string::npos; }));
  }
};
}  // namespace

TEST_CASE("a refused handshake writes one log line, 'refused', not a 'dropped' line besides") {
  std::string desc(IntMessage::schema_description);
  desc.replace(desc.find("value int"), 9, "value long");
  CapturedLog log;
  Duo p;
  RawSocket raw(port_of(p.server));
  REQUIRE(raw.fd >= 0);
  REQUIRE(raw.write_all(frame(hello_record({{IntMessage::packet_type, 0xdeadbeef}}, "other", desc))));
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    return p.server.network_stats().handshakes_refused == 1 && p.server.network_stats().bad_input == 1 &&
           p.server.peers().size() == 1;
  }));
  CHECK(log.count("network: refused 127.0.0.1:") == 1);
  CHECK(log.count("dropped") == 0);
  CHECK(log.count("cannot talk") == 1);
}

TEST_CASE("a client past the server's max_peers is told why: PeerDisconnected 'the server has max_peers peers', "
          "not an I/O error") {
  sage::NetworkOptions so;
  so.max_peers = 1;
  CapturedLog log;
  Duo p(so);
  sage::Manager late;
  late.register_messages(messages{});
  late.enable_network({});
  Inbox at_late;
  late.register_actor(at_late);
  const sage::Sender to = late.connect("127.0.0.1", port_of(p.server));
  REQUIRE(tick_until({&p.server, &p.client, &late}, [&] { return !at_late.all<sage::PeerDisconnected>().empty(); }));
  const auto& gone = at_late.all<sage::PeerDisconnected>().front();
  CHECK(gone.peer == to);
  CHECK(gone.reason.code == sage::Errc::peer_gone);
  CHECK(gone.reason.detail.find("refused by the peer: the server has max_peers peers (1, NetworkOptions::max_peers)") !=
        std::string::npos);
  CHECK(at_late.all<sage::PeerConnected>().empty());
  CHECK(late.network_stats().handshakes_refused == 0);  // not a refusal of its schemas: it may come back
  CHECK(p.server.network_stats().peers_refused == 1);
  CHECK(log.count("not admitted: the server has max_peers peers") == 1);  // the server's line
  CHECK(log.count("peer gone: refused by the peer: the server has max_peers peers") == 1);  // the client's
  CHECK(log.count("I/O error") == 0);
  p.client.send_message(IntMessage{5});  // the admitted client is still served
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
}

TEST_CASE("a NetworkOptions::name the handshake could not carry is a usage_error at listen and connect") {
  for (const std::string& bad : {std::string(256, 'x'), std::string("\xff\xfe")}) {
    sage::NetworkOptions o;
    o.name = bad;
    sage::Manager m;
    m.enable_network(o);
    CHECK_THROWS_AS(m.listen("127.0.0.1", 0), sage::usage_error);
    CHECK_THROWS_AS(m.connect("127.0.0.1", 1), sage::usage_error);
  }
  sage::NetworkOptions ok;
  ok.name = std::string(255, 'x');
  sage::Manager m;
  m.enable_network(ok);
  CHECK(m.listen("127.0.0.1", 0).port != 0);
}

TEST_CASE("a peer speaking protocol 1 (sage before schema negotiation) is refused with 'upgrade it'") {
  expect_dropped(frame(protocol1_hello_record("old")), "speaks protocol 1; upgrade it");
}

TEST_CASE("a peer listing message types without a description, or a table that is not its description, is refused") {
  expect_dropped(frame(hello_record({{IntMessage::packet_type, IntMessage::fingerprint}}, "bare")),
                 "sent no schema description");
  expect_dropped(frame(hello_record({{121, 1}}, "liar", std::string(IntMessage::schema_description))),
                 "does not list the wire messages of its description");
}

TEST_CASE("entry fingerprints are not compared, and a record of a type the sender did not declare is delivered "
          "if the receiver knows it") {
  Duo p;
  RawSocket raw(port_of(p.server));
  REQUIRE(raw.fd >= 0);
  // Declares IntMessage with a made-up message fingerprint (0) but its real description; then
  // sends an IntMessage and a StringMessage, which it never declared.
  auto h = hello_record({{IntMessage::packet_type, 0}}, "tool", std::string(IntMessage::schema_description));
  REQUIRE(raw.write_all(frame(cat(cat(h, record(IntMessage{11})), record(StringMessage{"undeclared"})))));
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<StringMessage>().empty(); }));
  CHECK(p.at_server.all<IntMessage>().front().value == 11);
  CHECK(p.at_server.all<StringMessage>().front().text == "undeclared");
  CHECK(p.server.network_stats().bad_input == 0);
  CHECK(p.server.network_stats().handshakes_refused == 0);
}

TEST_CASE("an announce that lists no message types (k = 0) is dropped as malformed, saying so") {
  std::vector<std::byte> body = hello_record({}, "x");
  sage::wire::append_record(body, static_cast<std::uint8_t>(proto::Control::announce),
                            proto::encode_announce(proto::Announce{}));
  expect_dropped(frame(body), "malformed: announce lists no message types (k = 0");
}

TEST_CASE("an announce is checked as a hello is: entries without a description, or not its description, are refused") {
  auto announce = [](std::vector<proto::SchemaEntry> entries, std::string description) {
    std::vector<std::byte> body = hello_record({}, "x");
    sage::wire::append_record(body, static_cast<std::uint8_t>(proto::Control::announce),
                              proto::encode_announce(proto::Announce{std::move(entries), std::move(description)}));
    return frame(body);
  };
  expect_dropped(announce({{IntMessage::packet_type, IntMessage::fingerprint}}, ""),
                 "announces 1 message types but sent no schema description");
  expect_dropped(announce({{121, 1}}, std::string(IntMessage::schema_description)),
                 "does not list the wire messages of its description");
}

TEST_CASE("a hello of protocol version 0 (or 3) is refused, naming the version") {
  for (const std::uint16_t v : {0, 3}) {
    std::vector<std::byte> hello = hello_record({}, "v");
    hello[8 + 4] = std::byte(v & 0xff);  // the version, after the record header and the magic
    hello[8 + 5] = std::byte(v >> 8);
    const std::string why = expect_dropped(frame(hello), "speaks protocol " + std::to_string(v));
    CHECK(why.find(v == 0 ? "which no sage speaks (this build speaks 2)" : "upgrade this node (it speaks 2)") !=
          std::string::npos);
  }
}

TEST_CASE("a connection that does not start with a hello is dropped") {
  expect_dropped(frame(record(IntMessage{1})), "must be a hello");
}

TEST_CASE("a silent peer is dropped after the heartbeat timeout") {
  sage::NetworkOptions o;
  o.heartbeat_interval = 50ms;
  o.heartbeat_timeout = 400ms;
  Duo p(o, o);
  RawSocket raw(port_of(p.server));
  REQUIRE(raw.write_all(frame(hello_record({}, "mute"))));
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.at_server.all<sage::PeerConnected>().size() == 2; }));
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.at_server.all<sage::PeerDisconnected>().size() == 1; }));
  const auto& d = p.at_server.all<sage::PeerDisconnected>().front();
  CHECK(d.name == "mute");
  CHECK(d.reason.detail.find("heartbeat_timeout") != std::string::npos);
  CHECK(p.server.network_stats().heartbeat_timeouts == 1);
  // The real client heartbeats and stays.
  CHECK(p.at_client.all<sage::PeerDisconnected>().empty());
  CHECK(p.server.peers().size() == 1);
}

TEST_CASE("a client killed mid-stream is reported and the others keep being served") {
  Duo p;
  Child child({"client", std::to_string(port_of(p.server))});
  REQUIRE(child.pid > 0);
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.at_server.all<Seq>().size() > 50; }));
  child.kill();
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.at_server.all<sage::PeerDisconnected>().size() == 1; }));
  CHECK(p.at_server.all<sage::PeerDisconnected>().front().reason.code == sage::Errc::peer_gone);
  CHECK(child.wait() != -1);
  p.client.send_message(IntMessage{5});
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
}

TEST_CASE("a slow client fills its bounded buffer: a loud per-peer error, then a disconnect") {
  sage::NetworkOptions o;
  o.send_buffer_limit = 256 * 1024;
  Duo p(o, o);
  RawSocket slow(port_of(p.server));  // says hello, then never reads
  REQUIRE(slow.write_all(frame(hello_knowing<Seq>("slow"))));
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.at_server.all<sage::PeerConnected>().size() == 2; }));
  const sage::Sender slow_peer = p.at_server.all<sage::PeerConnected>().back().peer;
  const std::vector<std::uint8_t> kib(1024, 7);
  std::optional<sage::Error> refused;
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    for (int i = 0; i < 64 && !refused; ++i) {
      auto r = p.server.try_send_message(Seq{0, 0, kib}, slow_peer);
      if (!r) refused = r.error();
    }
    p.server.send_message(IntMessage{9}, p.client_at_server());  // the fast client is unaffected
    return refused.has_value();
  }));
  CHECK(refused->code == sage::Errc::send_buffer_full);
  CHECK(p.server.network_stats().send_buffer_full >= 1);
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return p.at_server.all<sage::PeerDisconnected>().size() == 1; }));
  CHECK(p.at_server.all<sage::PeerDisconnected>().front().reason.code == sage::Errc::send_buffer_full);
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_client.all<IntMessage>().empty(); }));
}

TEST_CASE("200 clients connected at once each exchange messages with the server") {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 4096) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  constexpr int n = 200;
  struct Echo : sage::Actor<Echo, sage::subscribes<Seq>> {
    sage::Manager* m = nullptr;
    bool handle(const Seq& s, const sage::Sender& from) {
      m->send_message(Seq{s.client, s.n + 1000, {}}, from);
      return true;
    }
  };
  sage::Manager server;
  server.register_messages(messages{});
  Echo echo;
  echo.m = &server;
  server.register_actor(echo);
  const auto port = server.listen("127.0.0.1", 0).port;
  std::vector<std::unique_ptr<sage::Manager>> clients;
  std::vector<std::unique_ptr<Recorder<Seq>>> inboxes;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<sage::Manager>());
    inboxes.push_back(std::make_unique<Recorder<Seq>>());
    clients.back()->register_messages(messages{});
    clients.back()->register_actor(*inboxes.back());
    clients.back()->connect("127.0.0.1", port);
    for (std::uint64_t k = 0; k < 3; ++k) clients.back()->send_message(Seq{i, k, {}});
  }
  const auto deadline = Clock::now() + 30s;
  auto done = [&] {
    for (auto& in : inboxes)
      if (in->all<Seq>().size() < 3) return false;
    return true;
  };
  while (!done() && Clock::now() < deadline) {
    server.tick();
    for (auto& c : clients) c->tick();
  }
  REQUIRE(done());
  for (int i = 0; i < n; ++i) {
    auto& got = inboxes[static_cast<std::size_t>(i)]->all<Seq>();
    for (std::uint64_t k = 0; k < 3; ++k) {
      CHECK(got[k].client == i);
      CHECK(got[k].n == k + 1000);
    }
  }
  CHECK(server.network_stats().peers_connected == n);
}

namespace {
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "sage-tls-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
}  // namespace

TEST_CASE("TLS: a round trip over tls+tcp with a throwaway self-signed certificate") {
  std::string why;
  if (!sage::detail::tls_available(&why)) {
    MESSAGE("skipped: nng has no TLS here: " << why);
    return;
  }
  TempDir dir;
  const auto cert = (dir.path / "cert.pem").string(), key = (dir.path / "key.pem").string();
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
                          "subjectAltName=DNS:localhost -keyout " + key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    MESSAGE("skipped: openssl could not make a certificate (install openssl)");
    return;
  }
  sage::NetworkOptions so, co;
  so.tls = {true, cert, key, "", "", true, ""};
  co.tls = {true, "", "", cert, "localhost", true, ""};
  sage::Manager server, client;
  Inbox in_server, in_client;
  server.register_messages(messages{});
  client.register_messages(messages{});
  server.enable_network(so);
  client.enable_network(co);
  server.register_actor(in_server);
  client.register_actor(in_client);
  const auto at = server.listen("127.0.0.1", 0);
  CHECK(at.url.rfind("tls+tcp://", 0) == 0);
  client.connect("127.0.0.1", at.port);
  client.send_message(StringMessage{"secret"});
  REQUIRE(tick_until({&server, &client}, [&] { return !in_server.all<StringMessage>().empty(); }));
  server.send_message(StringMessage{"reply"}, in_server.from.back());
  REQUIRE(tick_until({&server, &client}, [&] { return !in_client.all<StringMessage>().empty(); }));
  CHECK(in_client.all<StringMessage>().front().text == "reply");

  // A client that does not trust the certificate cannot connect.
  sage::NetworkOptions wrong;
  wrong.tls = {true, "", "", key /* not a CA */, "localhost", true, ""};
  sage::Manager stranger;
  CHECK_THROWS_AS(
      {
        stranger.enable_network(wrong);
        stranger.connect("127.0.0.1", at.port);
      },
      sage::network_error);
}

TEST_CASE("reconnect: a client with ReconnectPolicy dials again and keeps its Sender") {
  sage::NetworkOptions co;
  co.reconnect.enabled = true;
  co.reconnect.initial_delay = 20ms;
  Duo p({}, co);
  // The server drops the client; the client reconnects by itself.
  p.server.disconnect(p.client_at_server());
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    return p.at_client.all<sage::PeerDisconnected>().size() == 1 && p.at_client.all<sage::PeerConnected>().size() == 2;
  }));
  CHECK(p.at_client.all<sage::PeerDisconnected>().front().reconnecting);
  CHECK(p.at_client.all<sage::PeerConnected>().back().peer == p.to_server);
  p.client.send_message(IntMessage{77});
  REQUIRE(tick_until({&p.server, &p.client}, [&] { return !p.at_server.all<IntMessage>().empty(); }));
}

// ---- remote groups ----

namespace {
struct MainSide : sage::Actor<MainSide, sage::subscribes<SynAck, Ack>> {
  sage::Manager* m = nullptr;
  std::vector<std::string> log;
  bool handle(const SynAck& s, const sage::Sender& from) {
    log.push_back("synack:" + s.from + " from " + std::string(m->group_name(from)));
    m->queue_message_to_group(from, Ack{"main"});
    return true;
  }
  bool handle(const Ack& a, const sage::Sender& from) {
    log.push_back("ack:" + a.from + " from " + std::string(m->group_name(from)));
    return true;
  }
};
}  // namespace

TEST_CASE("SYN / SYN-ACK / ACK between the main group and a child group over the network on an automatic port") {
  sage::Manager main;
  main.register_messages(messages{});
  MainSide side;
  side.m = &main;
  main.register_actor(side);
  const auto port = listen_hosting(main, {"child"});
  Child node({"group", std::to_string(port), "child"});
  REQUIRE(node.pid > 0);
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("child"); }));
  CHECK(main.remote_groups() == std::vector<std::string>{"child"});
  main.queue_message_to_group("child", Syn{"main"});
  REQUIRE(tick_until({&main}, [&] { return side.log.size() == 2; }));
  CHECK(side.log[0] == "synack:child got main from child");
  CHECK(side.log[1] == "ack:ack main from child");
}

TEST_CASE("a dead remote group node makes the main group's tick raise group_error") {
  sage::Manager main;
  main.register_messages(messages{});
  const auto port = listen_hosting(main, {"doomed"});
  Child node({"group", std::to_string(port), "doomed"});
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("doomed"); }));
  node.kill();
  // Only this loop ticks: a tick_until() predicate that ticks too would let tick_until's own
  // tick() throw the error past it.
  const std::optional<sage::group_error> err = sage::test_support::tick_until_failure(main);
  REQUIRE(err.has_value());
  CHECK(err->group() == "doomed");
  CHECK_FALSE(main.has_remote_group("doomed"));
  CHECK_THROWS_AS(main.queue_message_to_group("doomed", Syn{"x"}), sage::usage_error);
}

TEST_CASE("a remote group ends cleanly when the main group goes away") {
  auto main = std::make_unique<sage::Manager>();
  main->register_messages(messages{});
  const auto port = listen_hosting(*main, {"polite"});
  Child node({"group", std::to_string(port), "polite"});
  REQUIRE(tick_until({main.get()}, [&] { return main->has_remote_group("polite"); }));
  main.reset();  // says bye
  const int st = node.wait();
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
}

// ---- relaying through the main group, and removing a remote group ----

namespace {
using Texts = Recorder<StringMessage>;

// Ticks `main` until `texts` holds `n` StringMessages.
bool await_texts(sage::Manager& main, Texts& texts, std::size_t n) {
  return tick_until({&main}, [&] { return texts.all<StringMessage>().size() >= n; });
}
}  // namespace

TEST_CASE("a remote group node reaches another remote group through the main group, which names the original sender") {
  sage::Manager main;
  main.register_messages(messages{});
  Texts texts;
  main.register_actor(texts);
  const auto port = listen_hosting(main, {"a", "b"});
  Child a({"relay", std::to_string(port), "a"});
  Child b({"relay", std::to_string(port), "b"});
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("a") && main.has_remote_group("b"); }));

  main.queue_message_to_group("a", StringMessage{"fwd b hello"});
  REQUIRE(await_texts(main, texts, 1));
  CHECK(texts.all<StringMessage>()[0].text == "b got 'hello' from a");
  CHECK(main.group_name(texts.from[0]) == "b");

  // b answers the relayed sender by its Sender: back through the main group to a.
  main.queue_message_to_group("a", StringMessage{"fwd b ping"});
  REQUIRE(await_texts(main, texts, 2));
  CHECK(texts.all<StringMessage>()[1].text == "a got 'pong from b' from b");
  CHECK(main.network_stats().records_relayed == 3);
  CHECK(main.network_stats().undeliverable == 0);
  CHECK(main.network_stats().bad_input == 0);
}

TEST_CASE("a relay from a remote group node to a group that does not exist is counted as undeliverable") {
  sage::Manager main;
  main.register_messages(messages{});
  Texts texts;
  main.register_actor(texts);
  const auto port = listen_hosting(main, {"lonely"});
  Child a({"relay", std::to_string(port), "lonely"});
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("lonely"); }));
  main.queue_message_to_group("lonely", StringMessage{"fwd nobody lost"});
  main.queue_message_to_group("lonely", StringMessage{"after"});  // the node keeps working
  REQUIRE(await_texts(main, texts, 1));
  CHECK(texts.all<StringMessage>()[0].text == "lonely got 'after' from __main__");
  CHECK(main.network_stats().undeliverable == 1);
  CHECK(main.network_stats().records_relayed == 0);
  CHECK(main.has_remote_group("lonely"));
}

TEST_CASE("remove_process_group on a remote group delivers what was sent both ways, ends the node with 0 and forgets the name") {
  sage::Manager main;
  main.register_messages(messages{});
  Texts texts;
  main.register_actor(texts);
  const auto port = listen_hosting(main, {"leaving"});
  Child node({"relay", std::to_string(port), "leaving"});
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("leaving"); }));

  // Queued right before the removal: the node handles all of them and its answers arrive first.
  constexpr int n = 50;
  for (int i = 0; i < n; ++i) main.queue_message_to_group("leaving", StringMessage{std::to_string(i)});
  main.remove_process_group("leaving");
  main.tick();  // what the removal read is delivered at the next tick
  REQUIRE(texts.all<StringMessage>().size() == static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    CHECK(texts.all<StringMessage>()[static_cast<std::size_t>(i)].text ==
          "leaving got '" + std::to_string(i) + "' from __main__");

  const int st = node.wait();
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK_FALSE(main.has_remote_group("leaving"));
  CHECK(main.remote_groups().empty());
  CHECK_THROWS_AS(main.queue_message_to_group("leaving", StringMessage{"late"}), sage::no_such_group);
  CHECK_THROWS_AS(main.remove_process_group("leaving"), sage::no_such_group);
  main.tick();  // nothing is raised for the removed node
  CHECK(main.network_stats().bad_input == 0);
}

TEST_CASE("run_remote_group returns once the main group closed after remove_process_group, not at the node's heartbeat_timeout") {
  sage::Manager main;
  main.register_messages(messages{});
  const auto port = listen_hosting(main, {"quick"});
  std::atomic<int> rc{-1};
  std::thread node([&] {
    sage::RemoteGroupOptions o;
    o.network.heartbeat_timeout = 60s;  // the longest a node may wait for the close after its bye_ack
    rc = sage::run_remote_group<Texts>(messages{}, "127.0.0.1", port, "quick", o);
  });
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("quick"); }));
  main.remove_process_group("quick");
  // The main group closed the connection; the node reads that close instead of waiting 60 s.
  const auto deadline = Clock::now() + 30s;
  while (rc == -1 && Clock::now() < deadline) main.wait_for_next_tick(10ms);
  CHECK(rc == 0);
  node.join();
}

TEST_CASE("a remote group node that does not answer bye is removed anyway and reported by remove_process_group") {
  sage::Manager main;
  main.register_messages(messages{});
  sage::NetworkOptions o;
  o.heartbeat_interval = 50ms;
  o.heartbeat_timeout = 1000ms;  // the silent raw "node" is dropped by this while remove waits for bye_ack
  RawSocket raw(listen_hosting(main, {"mute"}, o));
  REQUIRE(raw.write_all(raw_join("mute")));
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("mute"); }));
  try {
    main.remove_process_group("mute");
    FAIL("no group_error");
  } catch (const sage::group_error& e) {
    CHECK(e.group() == "mute");
  }
  CHECK_FALSE(main.has_remote_group("mute"));
  CHECK_NOTHROW(main.tick());  // reported once, by the call
  CHECK_THROWS_AS(main.remove_process_group("mute"), sage::no_such_group);
}

TEST_CASE("a remote group node sending a malformed route is dropped as bad input and raised as group_error") {
  sage::Manager main;
  main.register_messages(messages{});
  RawSocket raw(listen_hosting(main, {"broken"}));
  std::vector<std::byte> bad_route;
  std::vector<std::byte> name = proto::encode_name("other");
  name.pop_back();  // the length says 5 bytes, 4 follow
  sage::wire::append_record(bad_route, static_cast<std::uint8_t>(proto::Control::route), name);
  REQUIRE(raw.write_all(raw_join("broken", bad_route)));
  // Only this loop ticks: a tick_until() predicate that ticks too would let tick_until's own
  // tick() throw the error past it.
  const std::optional<sage::group_error> err = sage::test_support::tick_until_failure(main);
  REQUIRE(err.has_value());
  CHECK(err->group() == "broken");
  CHECK(main.network_stats().bad_input == 1);
  CHECK(main.network_stats().last_bad_input.find("group name declares 5 bytes") != std::string::npos);
  CHECK_FALSE(main.has_remote_group("broken"));
}

namespace {
struct Go {
  std::uint16_t port = 0;
};
// Starts networking from inside its handler, as pysage's network test does from an actor: listens
// (enabling the network on first use), connects and sends in the same dispatch.
struct Starter : sage::Actor<Starter, sage::subscribes<Go>> {
  std::uint16_t listening_on = 0;
  bool handle(const Go& go) {
    listening_on = manager()->listen("127.0.0.1", 0).port;
    const sage::Sender server = manager()->connect("127.0.0.1", go.port);
    manager()->send_message(IntMessage{7}, server);  // flushed with this tick, after our hello
    return true;
  }
};
}  // namespace

TEST_CASE("listen, connect and send_message work from inside a handler and take effect at the end of its tick") {
  sage::Manager server, client;
  server.register_messages(messages{});
  client.register_messages(messages{});
  Inbox at_server;
  server.register_actor(at_server);
  const auto at = server.listen("127.0.0.1", 0);
  Starter starter;
  client.register_actor(starter);
  CHECK_FALSE(client.network_enabled());
  client.queue_message(Go{at.port});
  client.tick();  // the handler runs: the network is enabled, a listener bound, the server dialled
  CHECK(client.network_enabled());
  CHECK(starter.listening_on != 0);
  REQUIRE(tick_until({&server, &client}, [&] { return !at_server.all<IntMessage>().empty(); }));
  CHECK(at_server.all<IntMessage>().front().value == 7);
  CHECK(at_server.all<sage::PeerConnected>().size() == 1);
  // The listener bound inside the handler accepts connections too.
  sage::Manager third;
  third.register_messages(messages{});
  third.connect("127.0.0.1", starter.listening_on);
  REQUIRE(tick_until({&client, &third}, [&] { return client.peers().size() == 2; }));
}

namespace {
struct StringViews : sage::Actor<StringViews, sage::subscribes<StringMessage>> {
  std::vector<std::string> texts;
  std::vector<sage::Sender> from;
  bool handle(const StringMessage::View& m, const sage::Sender& s) {
    texts.emplace_back(m.text());
    from.push_back(s);
    return false;
  }
};
}  // namespace

TEST_CASE("a View handler reads a message from a TCP peer in place, beside a value handler") {
  Duo p;
  StringViews views;
  p.server.register_actor(views);
  p.client.send_message(StringMessage{std::string(5000, 'v')});
  REQUIRE(tick_until({&p.server, &p.client},
                     [&] { return !views.texts.empty() && !p.at_server.all<StringMessage>().empty(); }));
  CHECK(views.texts[0] == std::string(5000, 'v'));
  CHECK(views.from[0] == p.client_at_server());
  CHECK(p.at_server.all<StringMessage>()[0].text == views.texts[0]);
}

TEST_CASE("a receiver that stops ticking while a peer floods it holds at most receive_buffer_limit plus one frame, "
          "the sender is refused with send_buffer_full, and after it ticks again every accepted message arrives in order") {
  sage::NetworkOptions server_options, client_options;
  server_options.receive_buffer_limit = 64 * 1024;
  client_options.send_buffer_limit = 64 * 1024;  // so no frame is larger than this
  client_options.on_send_buffer_full = sage::OverflowPolicy::refuse;
  Duo p(server_options, client_options);
  // The documented bound: the limit plus one socket read (64 KiB; frames are smaller here).
  const std::size_t bound = server_options.receive_buffer_limit + 64 * 1024;
  const std::vector<std::uint8_t> kib(1024, 7);
  std::uint64_t accepted = 0;
  std::optional<sage::Error> refused;  // the last refusal seen once the server's connection was full
  std::uint64_t most_buffered = 0;
  // Only the client ticks: the server reads only when it ticks (a tcp:// connection is read on the
  // manager's thread), so the kernel's buffers and then the client's send buffer fill, and the
  // client is refused; the server holds nothing of it in its own memory meanwhile.
  const auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline && !(refused && accepted * kib.size() > 4 * bound)) {
    for (int i = 0; i < 32; ++i) {  // 32 KiB a tick
      auto r = p.client.try_send_message(Seq{0, accepted, kib}, p.to_server);
      if (!r) {
        refused = r.error();
        break;
      }
      ++accepted;
    }
    p.client.tick();
    most_buffered = std::max(most_buffered, p.server.network_stats().receive_buffered_bytes);
    p.client.wait_for_next_tick(1ms);
  }
  REQUIRE(refused.has_value());
  CHECK(refused->code == sage::Errc::send_buffer_full);
  // What the server's connection read is within its limit (nothing: it did not tick); the rest
  // waited in the kernel and the client.
  CHECK(most_buffered <= bound);
  CHECK(p.server.network_stats().records_received == 0);
  // The server ticks again: everything accepted arrives, in order, and nobody was disconnected.
  REQUIRE(tick_until({&p.server, &p.client}, [&] {
    most_buffered = std::max(most_buffered, p.server.network_stats().receive_buffered_bytes);
    return p.at_server.all<Seq>().size() == accepted;
  }));
  CHECK(most_buffered <= bound);
  for (std::uint64_t i = 0; i < accepted; ++i) REQUIRE(p.at_server.all<Seq>()[i].n == i);
  CHECK(p.at_server.all<sage::PeerDisconnected>().empty());
  CHECK(p.at_client.all<sage::PeerDisconnected>().empty());
}

// Trust at the network edge (docs/network.md "Admission", issue: only admitted peers get in):
// each attack from outside is a test that fails on a listener open to anyone, plus the good paths.
// Every test is "security: ...".
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "net_util.hpp"
#include "channel/protocol.hpp"
#include "sage/datagram.hpp"
#include "transport/stream.hpp"

using namespace nt;
using namespace nettest;
using namespace std::chrono_literals;

namespace {

using Inbox = Recorder<IntMessage, sage::PeerConnected, sage::PeerDisconnected, sage::PeerRefused>;

// Everything the server writes to a raw socket until it closes it (or `limit` passes).
std::string read_until_closed(int fd, sage::Manager& server, std::chrono::milliseconds limit = 10s) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    server.tick();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    char buf[4096];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

}  // namespace

TEST_CASE("security: a listener that hosts no groups refuses join_group with a reason and keeps no group") {
  sage::Manager server;  // like examples/chat's server: plain peers only
  server.register_messages(messages{});
  RawSocket stranger(listen_hosting(server, {}));
  REQUIRE(stranger.write_all(raw_join("workers")));
  const std::string answer = read_until_closed(stranger.fd, server);
  CHECK(answer.find("not admitted") != std::string::npos);
  CHECK(answer.find("does not host group 'workers'") != std::string::npos);
  CHECK_FALSE(server.has_remote_group("workers"));
  CHECK(server.remote_groups().empty());
  CHECK(server.network_stats().admissions_refused == 1);
}

TEST_CASE("security: a stranger that asks to join and vanishes never makes tick() throw") {
  sage::Manager server;
  server.register_messages(messages{});
  const auto port = listen_hosting(server, {"workers"});
  for (int i = 0; i < 20; ++i) {
    RawSocket stranger(port);
    REQUIRE(stranger.write_all(raw_join("squatter" + std::to_string(i))));
  }  // each closes at once
  CHECK_NOTHROW(REQUIRE(tick_until({&server}, [&] {
    return server.network_stats().admissions_refused + server.network_stats().peers_disconnected >= 20 &&
           server.peers().empty();
  })));
  CHECK(server.remote_groups().empty());
  CHECK_NOTHROW(server.tick());
}

TEST_CASE("security: the admission hook sees the peer's address and name, and its refusal reaches the peer") {
  sage::NetworkOptions so;
  std::vector<sage::AdmissionRequest> asked;
  so.admit = [&](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    asked.push_back(r);
    if (r.name == "mallory") return "not on the guest list";
    return std::nullopt;
  };
  sage::Manager server;
  server.register_messages(messages{});
  Inbox at_server;
  server.register_actor(at_server);
  server.enable_network(so);
  const auto port = server.listen("127.0.0.1", 0).port;

  sage::Manager mallory, alice;
  Inbox at_mallory, at_alice;
  sage::NetworkOptions mo, ao;
  mo.name = "mallory";
  ao.name = "alice";
  for (auto [m, in, o] : {std::tuple{&mallory, &at_mallory, &mo}, std::tuple{&alice, &at_alice, &ao}}) {
    m->register_messages(messages{});
    m->register_actor(*in);
    m->enable_network(*o);
    m->connect("127.0.0.1", port);
  }
  REQUIRE(tick_until({&server, &mallory, &alice}, [&] {
    return !at_mallory.all<sage::PeerRefused>().empty() && !at_alice.all<sage::PeerConnected>().empty();
  }));
  const auto& refused = at_mallory.all<sage::PeerRefused>().front();
  CHECK(refused.by_peer);
  CHECK(refused.reason.detail.find("not admitted: not on the guest list") != std::string::npos);
  REQUIRE(asked.size() == 2);
  for (const auto& r : asked) {
    CHECK(r.kind == sage::AdmissionRequest::Kind::peer);
    CHECK(r.address.rfind("127.0.0.1:", 0) == 0);
    CHECK(r.identity.empty());
  }
  CHECK(server.network_stats().admissions_refused == 1);
  CHECK(at_server.all<sage::PeerConnected>().size() == 1);  // alice only: a refusal queues nothing here
  CHECK(at_server.all<sage::PeerConnected>().front().name == "alice");
  // mallory's client does not reconnect after a refusal, and its sends fail with the reason
  auto r = mallory.try_send_message(IntMessage{1}, at_mallory.all<sage::PeerRefused>().front().peer);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
}

TEST_CASE("security: the admission hook decides groups by name: an admitted node joins, another name is refused") {
  sage::NetworkOptions so;
  so.admit = [](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    if (r.kind == sage::AdmissionRequest::Kind::group && r.name != "workers") return "only 'workers' may join";
    return std::nullopt;
  };
  sage::Manager server;
  server.register_messages(messages{});
  server.enable_network(so);
  const auto port = server.listen("127.0.0.1", 0).port;
  RawSocket good(port), bad(port);
  REQUIRE(good.write_all(raw_join("workers")));
  REQUIRE(bad.write_all(raw_join("payments")));
  const std::string answer = read_until_closed(bad.fd, server);
  CHECK(answer.find("only 'workers' may join") != std::string::npos);
  REQUIRE(tick_until({&server}, [&] { return server.has_remote_group("workers"); }));
  CHECK_FALSE(server.has_remote_group("payments"));
  CHECK(server.network_stats().admissions_refused == 1);
}

TEST_CASE("security: a real node is refused by a listener that does not host its group, and join_as_group says why") {
  sage::Manager server;
  server.register_messages(messages{});
  const auto port = listen_hosting(server, {"workers"});
  sage::Manager node;
  node.register_messages(messages{});
  std::optional<std::string> why;
  std::atomic<bool> done{false};
  std::thread t([&] {
    try {
      node.join_as_group("127.0.0.1", port, "payments");
    } catch (const sage::network_error& e) {
      why = e.what();
    }
    done = true;
  });
  const bool returned = tick_until({&server}, [&] { return done.load(); });
  t.join();
  REQUIRE(returned);
  REQUIRE(why.has_value());
  CHECK(why->find("cannot join as group 'payments'") != std::string::npos);
  CHECK(why->find("does not host group 'payments'") != std::string::npos);
}

TEST_CASE("security: datagram admission refuses a peer by name and the refused client is told why") {
  sage::DatagramOptions so;
  so.admit = [](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    return r.name == "mallory" ? std::optional<std::string>("banned") : std::nullopt;
  };
  sage::Manager server, mallory;
  Inbox at_mallory;
  server.register_messages(messages{});
  mallory.register_messages(messages{});
  mallory.register_actor(at_mallory);
  server.enable_datagrams(so);
  sage::DatagramOptions mo;
  mo.name = "mallory";
  mallory.enable_datagrams(mo);
  const auto port = server.listen_datagram("127.0.0.1", 0).port;
  mallory.connect_datagram("127.0.0.1", port);
  REQUIRE(tick_until({&server, &mallory}, [&] { return !at_mallory.all<sage::PeerRefused>().empty(); }));
  CHECK(at_mallory.all<sage::PeerRefused>().front().reason.detail.find("not admitted: banned") != std::string::npos);
  CHECK(server.datagram_stats().admissions_refused == 1);
  CHECK(server.datagram_stats().peers_connected == 0);
}

namespace {
std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("security: 100 strangers each sending a 512 KiB error text leave no more than a few MiB behind") {
  namespace proto = sage::detail::protocol;
  sage::Manager server;
  server.register_messages(messages{});
  Inbox at_server;
  server.register_actor(at_server);
  const auto port = listen_hosting(server, {});
  const std::string text(512 * 1024, 'x');
  std::vector<std::byte> body = hello_record({}, "stranger");
  sage::wire::append_record(body, proto::code(proto::Control::error),
                            proto::encode_error({proto::ErrorKind::handshake_refused, text}));
  const std::vector<std::byte> bytes = frame(body);
  server.tick();
  const std::size_t before = rss_bytes();
  for (int round = 0; round < 10; ++round) {
    std::vector<std::unique_ptr<RawSocket>> socks;
    for (int i = 0; i < 10; ++i) {
      socks.push_back(std::make_unique<RawSocket>(port));
      REQUIRE(socks.back()->write_all(bytes));
    }
    REQUIRE(tick_until({&server}, [&] { return server.network_stats().handshakes_refused == 10u * (round + 1); }));
  }
  REQUIRE(tick_until({&server}, [&] { return server.peers().empty(); }));
  server.tick();
  for (const auto& r : at_server.all<sage::PeerRefused>()) CHECK(r.reason.detail.size() < 2048);
  const std::size_t after = rss_bytes();
#if defined(__SANITIZE_ADDRESS__)
  (void)before, (void)after;  // ASan's quarantine keeps freed memory resident: RSS says nothing here
#else
  CHECK(after < before + 16 * 1024 * 1024);  // 100 x 512 KiB = 50 MiB if the texts were kept
#endif
}

TEST_CASE("security: connections from one address past max_peers_per_address are closed at once and counted") {
  sage::NetworkOptions o;
  o.max_peers_per_address = 3;
  sage::Manager server;
  server.register_messages(messages{});
  const auto port = listen_hosting(server, {}, o);
  std::vector<std::unique_ptr<RawSocket>> socks;
  for (int i = 0; i < 5; ++i) socks.push_back(std::make_unique<RawSocket>(port));
  REQUIRE(tick_until({&server}, [&] { return server.network_stats().connections_accepted == 5; }));
  CHECK(server.network_stats().peers_refused == 2);
  CHECK(server.peers().size() == 3);
}

namespace {

struct CertDir {
  std::filesystem::path path;
  CertDir() {
    std::string t = (std::filesystem::temp_directory_path() / "sage-tls-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~CertDir() { std::filesystem::remove_all(path); }
  std::string operator/(const char* f) const { return (path / f).string(); }
  bool run(const std::string& cmd) const {
    return std::system(("cd " + path.string() + " && " + cmd + " >/dev/null 2>&1").c_str()) == 0;
  }
  // A CA `name` (name.pem, name.key), and a certificate `leaf` signed by it (leaf.pem, leaf.key).
  bool ca(const std::string& name) const {
    return run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name + " -keyout " + name +
               ".key -out " + name + ".pem");
  }
  bool signed_by(const std::string& ca, const std::string& leaf) const {
    return run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + leaf + " -keyout " + leaf + ".key -out " + leaf +
               ".csr") &&
           run("openssl x509 -req -in " + leaf + ".csr -CA " + ca + ".pem -CAkey " + ca + ".key -CAcreateserial -days 1 -out " +
               leaf + ".pem");
  }
};

// Whether a client with `tls` gets through the TLS listener at `port` (connect() and a handshake).
bool tls_client_gets_in(sage::Manager& server, std::uint16_t port, const sage::TlsOptions& tls) {
  sage::NetworkOptions o;
  o.tls = tls;
  o.connect_timeout = 3s;
  sage::Manager client;
  client.register_messages(messages{});
  Inbox in;
  client.register_actor(in);
  client.enable_network(o);
  try {
    client.connect("127.0.0.1", port);
  } catch (const sage::network_error&) {
    return false;
  }
  tick_until({&server, &client}, [&] {
    return !in.all<sage::PeerConnected>().empty() || !in.all<sage::PeerDisconnected>().empty() ||
           client.peers().empty();
  }, 10s);
  return !in.all<sage::PeerConnected>().empty();
}

}  // namespace

TEST_CASE("security: a TLS listener with a CA requires client certificates of that CA and names the verified identity") {
  std::string why;
  if (!sage::detail::tls_available(&why)) {
    MESSAGE("skipped: nng has no TLS here: " << why);
    return;
  }
  CertDir d;
  if (!d.run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
             "subjectAltName=DNS:localhost -keyout server.key -out server.pem") ||
      !d.ca("workers_ca") || !d.ca("other_ca") || !d.signed_by("workers_ca", "worker") ||
      !d.signed_by("other_ca", "impostor")) {
    MESSAGE("skipped: openssl could not make the certificates (install openssl)");
    return;
  }
  sage::NetworkOptions so;
  so.tls.enabled = true;
  so.tls.cert_file = d / "server.pem";
  so.tls.key_file = d / "server.key";
  so.tls.ca_file = d / "workers_ca.pem";
  so.tls.client_identity = "workers";
  std::vector<std::string> identities;
  so.admit = [&](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    identities.push_back(r.identity);
    return std::nullopt;
  };
  sage::Manager server;
  server.register_messages(messages{});
  server.enable_network(so);
  const auto port = server.listen("127.0.0.1", 0).port;

  sage::TlsOptions base;
  base.enabled = true;
  base.ca_file = d / "server.pem";
  base.server_name = "localhost";
  sage::TlsOptions none = base, impostor = base, worker = base;
  impostor.cert_file = d / "impostor.pem";
  impostor.key_file = d / "impostor.key";
  worker.cert_file = d / "worker.pem";
  worker.key_file = d / "worker.key";

  CHECK_FALSE(tls_client_gets_in(server, port, none));
  CHECK_FALSE(tls_client_gets_in(server, port, impostor));
  CHECK(identities.empty());  // neither reached sage
  CHECK(tls_client_gets_in(server, port, worker));
  REQUIRE(identities.size() == 1);
  CHECK(identities.front() == "workers");
}

TEST_CASE("security: a bad record relayed by one remote group drops its sender, and the group it was sent to stays") {
  namespace proto = sage::detail::protocol;
  sage::Manager main;
  main.register_messages(messages{});
  Recorder<StringMessage> texts;
  main.register_actor(texts);
  const auto port = listen_hosting(main, {"workers", "evil"});
  Child node({"relay", std::to_string(port), "workers"});
  REQUIRE(tick_until({&main}, [&] { return main.has_remote_group("workers"); }));

  // "evil" joins (admitted: its name is hosted) and routes 24 bytes of 0xFF, as a StringMessage, to workers.
  std::vector<std::byte> extra;
  sage::wire::append_record(extra, proto::code(proto::Control::route), proto::encode_name("workers"));
  sage::wire::append_record(extra, StringMessage::packet_type, std::vector<std::byte>(24, std::byte{0xFF}));
  RawSocket evil(port);
  REQUIRE(evil.write_all(raw_join("evil", extra)));
  std::vector<std::string> lost;
  auto tick = [&] {
    try {
      main.tick();
    } catch (const sage::group_error& e) {
      lost.push_back(e.group());
    }
  };
  const auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline && (main.network_stats().bad_input == 0 || main.has_remote_group("evil"))) {
    tick();
    main.wait_for_next_tick(2ms);
  }
  CHECK(main.network_stats().bad_input == 1);
  CHECK(main.network_stats().last_bad_input.find("relayed to 'workers'") != std::string::npos);
  CHECK_FALSE(main.has_remote_group("evil"));
  // workers still answers: its link was never given the bad record
  main.queue_message_to_group("workers", StringMessage{"ping"});
  while (Clock::now() < deadline && texts.all<StringMessage>().empty()) {
    tick();
    main.wait_for_next_tick(2ms);
  }
  REQUIRE_FALSE(texts.all<StringMessage>().empty());
  CHECK(texts.all<StringMessage>().front().text == "pong from workers");
  CHECK(main.has_remote_group("workers"));
  for (const auto& g : lost) CHECK(g == "evil");  // the sender's loss only, never the receiver's
}

TEST_CASE("security: a peer repeating announce past one description's limit is dropped as bad input") {
  namespace proto = sage::detail::protocol;
  sage::Manager server;
  server.register_messages(messages{});
  RawSocket stranger(listen_hosting(server, {}));
  proto::Announce a;
  a.entries = {{static_cast<std::uint8_t>(IntMessage::packet_type), IntMessage::fingerprint}};
  a.description = sage::schema::to_text(sage::schema::combine({IntMessage::schema_description}).description);
  std::vector<std::byte> body = hello_knowing<IntMessage>("stranger");
  const std::size_t n = 2 * sage::schema::max_description_bytes / a.description.size() + 1;
  for (std::size_t i = 0; i < n; ++i) proto::append_control(body, proto::Control::announce, proto::encode_announce(a));
  REQUIRE(body.size() < (std::size_t{1} << 20));  // one frame
  REQUIRE(stranger.write_all(frame(body)));
  REQUIRE(tick_until({&server}, [&] { return server.network_stats().bad_input == 1; }));
  CHECK(server.network_stats().last_bad_input.find("announces of more than") != std::string::npos);
}

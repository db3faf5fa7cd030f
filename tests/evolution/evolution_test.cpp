// Schema evolution over TCP between real processes (docs/network.md "Schema evolution"). This test
// is the new build (v2/evo.fbs); evolution_v1_node is the old build (v1/evo.fbs) and
// evolution_bad_node an incompatible one (bad/evo.fbs). The helpers print what they receive.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "evo.sage.hpp"
#include "sage/datagram.hpp"
#include "sage/manager.hpp"
#include "sage/network.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A helper process whose stdout is read through a pipe; killed and reaped by the destructor.
struct Node {
  pid_t pid = -1;
  int out = -1;
  std::string text;
  Node(const char* exe, std::vector<std::string> args) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    std::vector<char*> argv{const_cast<char*>(exe)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, exe, &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out = fds[0];
    ::fcntl(out, F_SETFL, O_NONBLOCK);
  }
  // Reads what the node printed so far.
  const std::string& read() {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    return text;
  }
  bool printed(std::string_view s) { return read().find(s) != std::string::npos; }
  // The exit code, or -1 if it did not exit normally within the limit.
  int wait(std::chrono::milliseconds limit = 20s) {
    const auto deadline = Clock::now() + limit;
    int st = 0;
    while (pid > 0 && Clock::now() < deadline) {
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        read();
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      ::usleep(5000);  // polling a child's exit, not synchronising with it
    }
    return -1;
  }
  ~Node() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) ::close(out);
  }
};

struct Inbox : sage::Actor<Inbox, sage::subscribes<evo::Order, evo::Ping, sage::PeerConnected, sage::PeerRefused>> {
  std::vector<evo::Order> orders;
  std::vector<sage::Sender> order_from;
  std::vector<evo::Ping> pings;
  std::vector<sage::PeerConnected> connected;
  std::vector<sage::PeerRefused> refused;
  bool handle(const evo::Order& o, const sage::Sender& s) {
    orders.push_back(o);
    order_from.push_back(s);
    return true;
  }
  bool handle(const evo::Ping& p, const sage::Sender&) {
    pings.push_back(p);
    return true;
  }
  bool handle(const sage::PeerConnected& c, const sage::Sender&) {
    connected.push_back(c);
    return true;
  }
  bool handle(const sage::PeerRefused& r, const sage::Sender&) {
    refused.push_back(r);
    return true;
  }
};

// A v2 server listening on a free port.
struct Server {
  sage::Manager m;
  Inbox inbox;
  std::uint16_t port = 0;
  explicit Server(bool datagram = false) {
    m.register_messages(evo::evo_wire_messages{});
    m.register_actor(inbox);
    if (datagram) {
      sage::DatagramOptions o;
      o.name = "new server";
      m.enable_datagrams(o);
      port = m.listen_datagram("127.0.0.1", 0).port;
      return;
    }
    sage::NetworkOptions o;
    o.name = "new server";
    o.remote_groups = {"old", "x", "y"};  // the nodes of the tests below
    m.enable_network(o);
    port = m.listen("127.0.0.1", 0).port;
  }
  bool tick_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
    const auto deadline = Clock::now() + limit;
    while (!pred()) {
      if (Clock::now() > deadline) return false;
      m.tick();
      m.wait_for_next_tick(2ms);
    }
    return true;
  }
};

}  // namespace

TEST_CASE("a v1 client and a v2 server exchange messages both ways: unknown fields ignored, defaults filled, a rename talks") {
  Server s;
  Node old(SAGE_EVO_V1_NODE, {"client", std::to_string(s.port)});
  REQUIRE(s.tick_until([&] { return !s.inbox.orders.empty() && !s.inbox.pings.empty(); }));
  REQUIRE(s.inbox.connected.size() == 1);
  CHECK(s.inbox.connected[0].name == "old client");
  // v1 -> v2: the renamed field carries its value, the new fields take their defaults.
  const evo::Order& got = s.inbox.orders[0];
  CHECK(got.id == 7);
  CHECK(got.product == "tea");
  CHECK(got.mood == evo::Mood::angry);
  CHECK(got.note.empty());
  CHECK(got.priority == 5);
  CHECK(s.inbox.pings[0].n == 1);

  // v2 -> v1: the v1 node ignores note and priority, reads the deprecated qty's default and keeps
  // the new enum value as its number.
  const sage::Sender peer = s.inbox.order_from[0];
  evo::Order reply;
  reply.id = 8;
  reply.product = "coffee";
  reply.mood = evo::Mood::happy;
  reply.note = "extra hot";
  reply.priority = 9;
  s.m.send_message(reply, peer);

  // A message the v1 build does not know: refused at the call, skipped (and counted) by a broadcast.
  auto r = s.m.try_send_message(evo::Receipt{42}, peer);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
  CHECK(r.error().detail.find("does not know message evo.Receipt (packet_type 152)") != std::string::npos);
  CHECK(s.m.broadcast_message(evo::Receipt{43}) == 0);
  CHECK(s.m.network_stats().unknown_type_skipped == 1);
  CHECK(s.m.broadcast_message(evo::Ping{2}) == 1);

  REQUIRE(s.tick_until([&] { return old.printed("order id=8"); }));
  CHECK(old.wait() == 0);
  CHECK(old.text.find("connected to new server") != std::string::npos);
  CHECK(old.text.find("order id=8 item=coffee qty=1 mood=2") != std::string::npos);
  CHECK(s.m.network_stats().bad_input == 0);
  CHECK(s.m.network_stats().handshakes_refused == 0);
}

TEST_CASE("a v1 remote group node joins a v2 main group and both read each other's messages") {
  Server s;
  Node old(SAGE_EVO_V1_NODE, {"group", std::to_string(s.port)});
  REQUIRE(s.tick_until([&] { return s.m.has_remote_group("old"); }));
  evo::Order order;
  order.id = 1;
  order.product = "bread";
  order.mood = evo::Mood::happy;
  order.note = "sliced";
  order.priority = 2;
  s.m.queue_message_to_group("old", order);
  // The group does not know Receipt: refused at the call with a clear error.
  auto r = s.m.try_queue_message_to_group("old", evo::Receipt{1});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
  CHECK(r.error().detail.find("evo.Receipt") != std::string::npos);
  REQUIRE(s.tick_until([&] { return !s.inbox.orders.empty(); }));
  const evo::Order& back = s.inbox.orders[0];
  CHECK(back.id == 2);
  CHECK(back.product == "bread!");
  CHECK(back.mood == evo::Mood::happy);  // the v1 node kept the value it did not know
  CHECK(back.note.empty());              // v1 does not have these fields: they come back as defaults
  CHECK(back.priority == 5);
  CHECK(old.printed("order id=1 item=bread qty=1 mood=2"));
  s.m.remove_process_group("old");
  CHECK(old.wait() == 0);
}

TEST_CASE("an incompatible build is refused on both sides with sagec check's diagnostic, and the applications see it") {
  Server s;
  Node bad(SAGE_EVO_BAD_NODE, {"client", std::to_string(s.port)});
  REQUIRE(s.tick_until([&] { return !s.inbox.refused.empty(); }));
  const sage::PeerRefused& here = s.inbox.refused[0];
  CHECK(here.reason.code == sage::Errc::incompatible);
  CHECK_FALSE(here.by_peer);
  CHECK(here.name == "old client");
  // Whose type is whose: the peer's first, then this node's; no "old schemas" between two peers.
  CHECK(here.reason.detail.find("error: field evo.Order.id is long in peer 127.0.0.1:") != std::string::npos);
  CHECK(here.reason.detail.find(" but int in this node") != std::string::npos);
  CHECK(here.reason.detail.find("error: packet_type 151 is evo.Pong in peer 127.0.0.1:") != std::string::npos);
  CHECK(here.reason.detail.find(" but evo.Ping in this node; peers would decode one as the other") != std::string::npos);
  CHECK(here.reason.detail.find("old schemas") == std::string::npos);
  CHECK(s.inbox.connected.empty());
  CHECK(s.inbox.orders.empty());  // what it sent before the handshake never reached us
  CHECK(s.m.network_stats().handshakes_refused == 1);
  auto r = s.m.try_send_message(evo::Ping{1}, here.peer);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
  CHECK(r.error().detail.find("refused") != std::string::npos);
  // The other side: its own check refuses too (diagnostics from its point of view), or our error
  // record tells it; either way its application gets a PeerRefused and its next send fails.
  REQUIRE(s.tick_until([&] { return bad.printed("send after:"); }));
  CHECK(bad.wait() == 0);
  CHECK(bad.text.find("refused by_peer=") != std::string::npos);
  CHECK(bad.text.find("code=incompatible peer") != std::string::npos);
  CHECK(bad.text.find("evo.Order.id is ") != std::string::npos);
  CHECK(bad.text.find("send after: incompatible peer") != std::string::npos);
}

TEST_CASE("a type registered after the handshake is announced: the peer may send it from then on") {
  struct Receipts : sage::Actor<Receipts, sage::subscribes<evo::Receipt, sage::PeerConnected>> {
    std::vector<evo::Receipt> got;
    int connected = 0;
    bool handle(const evo::Receipt& r, const sage::Sender&) {
      got.push_back(r);
      return true;
    }
    bool handle(const sage::PeerConnected&, const sage::Sender&) {
      ++connected;
      return true;
    }
  };
  sage::Manager server, client;
  server.register_messages(sage::type_list<evo::Order, evo::Ping>{});
  client.register_messages(evo::evo_wire_messages{});
  const auto port = server.listen("127.0.0.1", 0).port;
  Receipts at_client;
  client.register_actor(at_client);
  const sage::Sender to_server = client.connect("127.0.0.1", port);
  const auto until = [&](const std::function<bool()>& pred) {
    const auto deadline = Clock::now() + 20s;
    while (!pred() && Clock::now() < deadline) {
      server.tick();
      client.tick();
      client.wait_for_next_tick(2ms);
    }
    return pred();
  };
  REQUIRE(until([&] { return at_client.connected == 1; }));
  auto r = client.try_send_message(evo::Receipt{1}, to_server);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
  // The server starts handling receipts: its next flush announces the type, after which the
  // client's sends are accepted and arrive.
  Receipts at_server;
  server.register_actor(at_server);
  REQUIRE(until([&] { return client.try_send_message(evo::Receipt{2}, to_server).ok(); }));
  REQUIRE(until([&] { return !at_server.got.empty(); }));
  CHECK(at_server.got[0].total == 2);
  CHECK(server.network_stats().bad_input == 0);
}

TEST_CASE("a main group does not relay a message between two remote groups whose schemas disagree about it, and relays the others") {
  // x and y are each compatible with this v2 main group, but Order's field `tag` is an int in x and
  // a string in y: relayed unchecked, y's verifier would drop it (or read garbage).
  Server s;
  Node y(SAGE_EVO_Y_NODE, {"relay", std::to_string(s.port), "y", "x"});
  Node x(SAGE_EVO_X_NODE, {"relay", std::to_string(s.port), "x", "y"});
  REQUIRE(s.tick_until([&] { return s.m.has_remote_group("x") && s.m.has_remote_group("y"); }));
  evo::Order order;
  order.id = 1;
  order.product = "tea";
  s.m.queue_message_to_group("x", order);
  // x sends Order{2, tag 7} and then Ping{2} to y, in that order: Ping arrives, Order does not.
  REQUIRE(s.tick_until([&] { return y.printed("ping n=2"); }));
  CHECK(x.printed("order id=1 item=tea"));
  CHECK_FALSE(y.printed("order id=2"));
  const auto st = s.m.network_stats();
  CHECK(st.relays_refused == 1);
  CHECK(st.records_relayed == 1);
  CHECK(st.undeliverable == 0);
  CHECK(st.bad_input == 0);
  // The other direction is refused the same way (the verdict is per pair of groups and type).
  order.id = 10;
  s.m.queue_message_to_group("y", order);
  REQUIRE(s.tick_until([&] { return x.printed("ping n=11"); }));
  CHECK_FALSE(x.printed("order id=11"));
  CHECK(s.m.network_stats().relays_refused == 2);
  s.m.remove_process_group("x");
  s.m.remove_process_group("y");
  CHECK(x.wait() == 0);
  CHECK(y.wait() == 0);
}

TEST_CASE("datagram: a v1 client and a v2 server negotiate over ENet as over TCP: unknown types refused at the call") {
  Server s(true);
  Node old(SAGE_EVO_V1_NODE, {"dclient", std::to_string(s.port)});
  REQUIRE(s.tick_until([&] { return !s.inbox.orders.empty() && !s.inbox.pings.empty(); }));
  REQUIRE(s.inbox.connected.size() == 1);
  CHECK(s.inbox.connected[0].name == "old client");
  CHECK(s.inbox.orders[0].id == 7);
  CHECK(s.inbox.orders[0].priority == 5);  // a field v1 does not have: its default
  const sage::Sender peer = s.inbox.order_from[0];
  CHECK(sage::is_datagram_peer(peer));
  // A message the v1 build does not know: refused at the call on every delivery, skipped by a broadcast.
  for (sage::Delivery d : {sage::Delivery{}, sage::Delivery::sequenced(1), sage::Delivery::unsequenced()}) {
    auto r = s.m.try_send_message(evo::Receipt{42}, peer, d);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == sage::Errc::incompatible);
    CHECK(r.error().detail.find("does not know message evo.Receipt (packet_type 152)") != std::string::npos);
  }
  CHECK(s.m.broadcast_message(evo::Receipt{43}, sage::Delivery::sequenced()) == 0);
  CHECK(s.m.datagram_stats().unknown_type_skipped == 1);
  evo::Order reply;
  reply.id = 8;
  reply.product = "coffee";
  reply.mood = evo::Mood::happy;
  s.m.send_message(reply, peer, sage::Delivery::reliable_on(2));
  REQUIRE(s.tick_until([&] { return old.printed("order id=8"); }));
  CHECK(old.wait() == 0);
  CHECK(old.text.find("connected to new server") != std::string::npos);
  CHECK(s.m.datagram_stats().bad_input == 0);
  CHECK(s.m.datagram_stats().handshakes_refused == 0);
}

TEST_CASE("datagram: an incompatible build is refused on both sides (PeerRefused), as over TCP") {
  Server s(true);
  Node bad(SAGE_EVO_BAD_NODE, {"dclient", std::to_string(s.port)});
  REQUIRE(s.tick_until([&] { return !s.inbox.refused.empty(); }));
  const sage::PeerRefused& here = s.inbox.refused[0];
  CHECK(here.reason.code == sage::Errc::incompatible);
  CHECK_FALSE(here.by_peer);
  CHECK(here.name == "old client");
  CHECK(sage::is_datagram_peer(here.peer));
  CHECK(here.reason.detail.find("error: field evo.Order.id is long in peer ") != std::string::npos);
  CHECK(s.inbox.connected.empty());
  CHECK(s.inbox.orders.empty());  // what it sent before the handshake never reached us
  CHECK(s.m.datagram_stats().handshakes_refused == 1);
  auto r = s.m.try_send_message(evo::Ping{1}, here.peer, sage::Delivery::unsequenced());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == sage::Errc::incompatible);
  CHECK(r.error().detail.find("refused") != std::string::npos);
  REQUIRE(s.tick_until([&] { return bad.printed("send after:"); }));
  CHECK(bad.wait() == 0);
  CHECK(bad.text.find("refused by_peer=") != std::string::npos);
  CHECK(bad.text.find("code=incompatible peer") != std::string::npos);
  CHECK(bad.text.find("evo.Order.id is ") != std::string::npos);
  CHECK(bad.text.find("send after: incompatible peer") != std::string::npos);
}

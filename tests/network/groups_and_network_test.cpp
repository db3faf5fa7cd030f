// One manager with both process groups and network peers, as a game server with worker groups
// and remote clients would have. Its own executable: enable_groups() must run before this process
// uses nng.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <functional>
#include <vector>

#include "net_util.hpp"
#include "nettest.sage.hpp"
#include "relayer.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;
using nettest::IntMessage;

namespace {

// Child group "doublers": answers each IntMessage with twice its value, to whoever sent it.
struct Doubler : sage::Actor<Doubler, sage::subscribes<IntMessage>> {
  bool handle(const IntMessage& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, IntMessage{m.value * 2});
    return true;
  }
};

// Main group: a value from a network peer goes to the doublers; their answer goes back to the peer.
struct Server : sage::Actor<Server, sage::subscribes<IntMessage>> {
  sage::Sender client{};
  bool handle(const IntMessage& m, const sage::Sender& from) {
    if (from.kind == sage::Sender::Kind::peer) {
      client = from;
      manager()->queue_message_to_group("doublers", m);
    } else {
      manager()->send_message(m, client);
    }
    return true;
  }
};

struct Client : sage::Actor<Client, sage::subscribes<IntMessage>> {
  std::vector<int> got;
  bool handle(const IntMessage& m) {
    got.push_back(m.value);
    return true;
  }
};

bool tick_until(sage::Manager& a, sage::Manager& b, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    a.tick();
    b.tick();
    a.wait_for_next_tick(2ms);
  }
  return done();
}

}  // namespace

TEST_CASE("a manager with process groups also serves network peers: client to group and back, in order") {
  sage::Manager server;
  server.enable_groups();  // before anything in this process uses nng
  Server relay;
  server.register_actor(relay);
  server.add_process_group<Doubler>("doublers");
  const sage::Endpoint at = server.listen("127.0.0.1", 0);
  REQUIRE(at.port != 0);

  sage::Manager client_mgr;
  Client client;
  client_mgr.register_actor(client);
  client_mgr.connect("127.0.0.1", at.port);
  for (int i = 1; i <= 100; ++i) client_mgr.send_message(IntMessage{i});

  REQUIRE(tick_until(server, client_mgr, [&] { return client.got.size() == 100; }));
  std::vector<int> expected;
  for (int i = 1; i <= 100; ++i) expected.push_back(2 * i);
  CHECK(client.got == expected);
  CHECK(server.group_stats().bad_input == 0);
  CHECK(server.network_stats().bad_input == 0);
  server.clear_process_groups();
}

TEST_CASE("a local child group and a remote group node reach each other through the main group, naming the sender") {
  sage::Manager main;
  main.enable_groups();  // before anything in this process uses nng
  main.register_messages(nettest::nettest_wire_messages{});
  nt::Recorder<nettest::StringMessage> texts;
  main.register_actor(texts);
  main.add_process_group<nt::Relayer>("local");
  const auto port = nt::listen_hosting(main, {"far"});
  nt::Child node({"relay", std::to_string(port), "far"});
  REQUIRE(nt::tick_until({&main}, [&] { return main.has_remote_group("far"); }));
  auto& got = texts.all<nettest::StringMessage>();

  main.queue_message_to_group("far", nettest::StringMessage{"fwd local hi"});  // node -> child
  REQUIRE(nt::tick_until({&main}, [&] { return got.size() == 1; }));
  CHECK(got[0].text == "local got 'hi' from far");

  main.queue_message_to_group("local", nettest::StringMessage{"fwd far yo"});  // child -> node
  REQUIRE(nt::tick_until({&main}, [&] { return got.size() == 2; }));
  CHECK(got[1].text == "far got 'yo' from local");

  // The node answers the child by the Sender it got: child -> node -> child.
  main.queue_message_to_group("local", nettest::StringMessage{"fwd far ping"});
  REQUIRE(nt::tick_until({&main}, [&] { return got.size() == 3; }));
  CHECK(got[2].text == "local got 'pong from far' from far");

  // A child naming a group that does not exist: counted like any other undeliverable relay.
  main.queue_message_to_group("local", nettest::StringMessage{"fwd nowhere x"});
  REQUIRE(nt::tick_until({&main}, [&] { return main.group_stats().undeliverable == 1; }));

  CHECK(main.network_stats().records_relayed == 2);  // hi, pong
  CHECK(main.group_stats().records_relayed == 2);    // yo, ping
  CHECK(main.network_stats().bad_input == 0);
  CHECK(main.group_stats().bad_input == 0);

  main.remove_process_group("far");
  const int st = node.wait();
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(main.process_groups() == std::vector<std::string>{"local"});
  main.clear_process_groups();
}

namespace {
// Voluntary context switches of the calling thread so far: each time it went to sleep.
long thread_sleeps() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_nvcsw;
}

struct Idle : sage::Actor<Idle> {};
}  // namespace

TEST_CASE("an idle manager with a process group and a TCP listener sleeps until its interval ends") {
  sage::Manager mgr;
  mgr.enable_groups();
  mgr.add_process_group<Idle>("idle");
  mgr.listen("127.0.0.1", 0);
  for (int i = 0; i < 5; ++i) {  // the group's hello arrives and is read
    mgr.tick();
    mgr.wait_for_next_tick(50ms);
  }
  const long before = thread_sleeps();
  const auto start = std::chrono::steady_clock::now();
  int woken_early = 0;
  for (int i = 0; i < 3; ++i) {
    mgr.tick();
    woken_early += mgr.wait_for_next_tick(1s) ? 1 : 0;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long sleeps = thread_sleeps() - before;
  INFO("sleeps: " << sleeps << " in " << seconds << " s; woken early: " << woken_early);
  CHECK(seconds >= 2.9);           // it did wait the intervals out
  CHECK(sleeps <= 5 * seconds);    // the old per-pump polling slept 1 ms at a time: ~900/s
  CHECK(woken_early == 0);
}

TEST_CASE("an idle manager with a connected peer wakes only for heartbeats") {
  sage::Manager server;
  server.enable_groups();
  server.add_process_group<Idle>("idle");
  sage::NetworkOptions o;
  o.heartbeat_interval = 200ms;
  o.heartbeat_timeout = 5s;
  server.enable_network(o);
  const auto at = server.listen("127.0.0.1", 0);
  std::atomic<bool> stop{false};
  std::atomic<bool> connected{false};
  std::thread client_thread([&] {
    sage::Manager client;
    client.enable_network(o);
    client.connect("127.0.0.1", at.port);
    while (!stop) {
      client.tick();
      connected = !client.peers().empty() && client.peers().front().connected;
      client.wait_for_next_tick(1s);
    }
  });
  const auto settle = std::chrono::steady_clock::now() + 10s;
  while ((!connected || server.peers().empty() || !server.peers().front().connected) &&
         std::chrono::steady_clock::now() < settle) {
    server.tick();
    server.wait_for_next_tick(20ms);
  }
  REQUIRE(connected);
  const long before = thread_sleeps();
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 2s) {
    server.tick();
    server.wait_for_next_tick(1s);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long sleeps = thread_sleeps() - before;
  stop = true;
  client_thread.join();
  INFO("sleeps: " << sleeps << " in " << seconds << " s");
  // Our heartbeat round (5/s at 200 ms) plus the client's heartbeats arriving (5/s), with slack
  // for a loaded machine: far from one wake-up per millisecond.
  CHECK(sleeps <= 20 * seconds);
  CHECK(server.peers().size() == 1);
  CHECK(server.peers().front().connected);  // heartbeats kept it alive
}

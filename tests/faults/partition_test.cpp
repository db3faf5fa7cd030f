// Partitions (docs/reliability.md "Partitions"): a remote group node and a TCP client that stay
// alive while the path to them is cut. Each runs in a network namespace of its own, reached over a
// veth pair the test makes (root: `ip netns`); the link is set down and up again. Without the
// privileges to make a namespace the tests say so and check nothing.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sage/manager.hpp"
#include "sage/remote_group.hpp"
#include "test_messages.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

bool run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

// A network namespace joined to this one by a veth pair: here `host` (x.x.x.1/30), there `far`
// (x.x.x.2/30). Removed (with its veth pair) on destruction.
struct Netns {
  std::string name, here_if, there_if, host, far;
  bool ok = false;
  Netns() {
    const int pid = static_cast<int>(::getpid());
    const int k = pid & 0x3fff;  // a /30 of 10.200.0.0/16 per test process
    const std::string net = "10.200." + std::to_string(k >> 6) + ".";
    host = net + std::to_string(((k & 63) << 2) + 1);
    far = net + std::to_string(((k & 63) << 2) + 2);
    name = "sage-pt-" + std::to_string(pid);
    here_if = "sgp" + std::to_string(pid) + "a";
    there_if = "sgp" + std::to_string(pid) + "b";
    if (!run("ip netns add " + name)) return;
    ok = run("ip link add " + here_if + " type veth peer name " + there_if) &&
         run("ip link set " + there_if + " netns " + name) && run("ip addr add " + host + "/30 dev " + here_if) &&
         run("ip link set " + here_if + " up") && run("ip -n " + name + " addr add " + far + "/30 dev " + there_if) &&
         run("ip -n " + name + " link set " + there_if + " up") && run("ip -n " + name + " link set lo up");
  }
  ~Netns() {
    run("ip link del " + here_if);
    run("ip netns del " + name);
  }
  bool cut() { return run("ip link set " + here_if + " down"); }
  bool heal() { return run("ip link set " + here_if + " up"); }
  // Moves the calling (child) process into the namespace.
  bool enter() const {
    const int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return entered;
  }
};

#define SKIP_WITHOUT_NETNS(ns)                                                                                    \
  if (!(ns).ok) {                                                                                                 \
    MESSAGE("skipped: cannot make a network namespace with a veth pair (needs root and `ip netns`; this is not " \
            "a failure of sage)");                                                                                \
    return;                                                                                                       \
  }

sage::NetworkOptions quick_heartbeat() {
  sage::NetworkOptions o;
  o.heartbeat_interval = 200ms;
  o.heartbeat_timeout = 1s;
  o.connect_timeout = 500ms;
  return o;
}

// Runs `body` in a child process inside `ns`; the child dies with this process.
pid_t spawn_in(const Netns& ns, const std::function<void()>& body) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!ns.enter()) ::_exit(3);
  body();
  ::_exit(0);
}

// A child process, killed and reaped when the test ends (also when a REQUIRE failed).
struct Child {
  pid_t pid;
  ~Child() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

struct Echo : sage::Actor<Echo, sage::subscribes<test::Ping>> {
  bool handle(const test::Ping& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Pong{m.value});
    return true;
  }
};

struct PongLog : sage::Actor<PongLog, sage::subscribes<test::Pong>> {
  std::vector<std::pair<int, sage::Sender>> got;
  bool handle(const test::Pong& m, const sage::Sender& from) {
    got.emplace_back(m.value, from);
    return true;
  }
  std::optional<sage::Sender> from_of(int value) const {
    for (auto& [v, s] : got)
      if (v == value) return s;
    return std::nullopt;
  }
};

// Ticks until `done` (30 s at most), collecting the group_errors thrown meanwhile.
bool tick_collecting(sage::Manager& mgr, std::vector<sage::group_error>& errors, const std::function<bool()>& done,
                     std::chrono::milliseconds span = 30s) {
  const auto deadline = Clock::now() + span;
  while (!done() && Clock::now() < deadline) {
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {
      errors.push_back(e);
    }
    mgr.wait_for_next_tick(5ms);
  }
  return done();
}

}  // namespace

TEST_CASE("a remote group node cut off by a partition is reported once within the heartbeat timeout, sends to it "
          "are refused, and it rejoins under its name when the link heals") {
  Netns ns;
  SKIP_WITHOUT_NETNS(ns);
  sage::Manager mgr;
  mgr.register_messages(test::all_messages{});
  auto options = quick_heartbeat();
  options.remote_groups = {"edge"};
  mgr.enable_network(options);
  const std::uint16_t port = mgr.listen(ns.host, 0).port;
  PongLog pongs;
  mgr.register_actor(pongs);

  // The node's operator: run_remote_group again whenever it ends (1: the main group was lost, 2:
  // it could not join), as a service manager would.
  const Child node{spawn_in(ns, [&] {
    sage::RemoteGroupOptions o;
    o.network = quick_heartbeat();
    o.interval = 5ms;
    for (;;) (void)sage::run_remote_group<Echo>(test::all_messages{}, ns.host, port, "edge", o);
  })};
  std::vector<sage::group_error> errors;
  auto ping = [&](int value) {
    return tick_collecting(mgr, errors, [&] {
      if (!pongs.from_of(value) && mgr.has_remote_group("edge")) (void)mgr.try_queue_message_to_group("edge", test::Ping{value});
      return pongs.from_of(value).has_value();
    });
  };
  REQUIRE(ping(1));
  const sage::Sender before = *pongs.from_of(1);
  CHECK(errors.empty());

  // Cut: the node lives, nothing crosses. A send accepted now is lost with the connection, and
  // that loss is the group_error.
  REQUIRE(ns.cut());
  const auto cut_at = Clock::now();
  CHECK(mgr.try_queue_message_to_group("edge", test::Ping{2}).ok());
  REQUIRE(tick_collecting(mgr, errors, [&] { return !errors.empty(); }));
  const auto detected_after = Clock::now() - cut_at;
  INFO("detected after " << std::chrono::duration_cast<std::chrono::milliseconds>(detected_after).count() << " ms");
  CHECK(detected_after >= options.heartbeat_timeout - options.heartbeat_interval);
  CHECK(detected_after < options.heartbeat_timeout + 2s);  // the timeout, plus a loaded machine's ticks
  CHECK(errors.front().group() == "edge");
  CHECK(errors.front().reason().find("remote group node") != std::string::npos);
  CHECK(errors.front().reason().find("nothing arrived") != std::string::npos);
  CHECK_FALSE(errors.front().restarted());
  CHECK_FALSE(mgr.has_remote_group("edge"));
  CHECK_THROWS_AS(mgr.queue_message_to_group("edge", test::Ping{3}), sage::no_such_group);
  CHECK_THROWS_AS(mgr.queue_message_to_group(before, test::Ping{3}), sage::no_such_group);
  // Reported once: another heartbeat timeout of partition adds nothing.
  tick_collecting(mgr, errors, [] { return false; }, options.heartbeat_timeout + 500ms);
  CHECK(errors.size() == 1);
  CHECK_FALSE(mgr.has_remote_group("edge"));

  // Healed: the node joins again under its name, with a new Sender; the old one stays refused.
  REQUIRE(ns.heal());
  REQUIRE(tick_collecting(mgr, errors, [&] { return mgr.has_remote_group("edge"); }));
  REQUIRE(ping(4));
  const sage::Sender after = *pongs.from_of(4);
  CHECK(mgr.group_name(after) == "edge");
  CHECK(after != before);
  CHECK_FALSE(pongs.from_of(2).has_value());  // lost with the cut connection (reported above)
  CHECK_THROWS_AS(mgr.queue_message_to_group(before, test::Ping{5}), sage::no_such_group);
  CHECK(errors.size() == 1);
}

TEST_CASE("a TCP client cut off by a partition is reported once as PeerDisconnected within the heartbeat timeout, "
          "sends to it are refused, and it reconnects under its name when the link heals") {
  Netns ns;
  SKIP_WITHOUT_NETNS(ns);
  sage::Manager server;
  server.register_messages(test::all_messages{});
  auto options = quick_heartbeat();
  server.enable_network(options);
  const std::uint16_t port = server.listen(ns.host, 0).port;
  struct Events : sage::Actor<Events, sage::subscribes<sage::PeerConnected, sage::PeerDisconnected, test::Food>> {
    std::vector<sage::PeerConnected> connected;
    std::vector<sage::PeerDisconnected> disconnected;
    std::vector<int> food;
    bool handle(const sage::PeerConnected& m) {
      connected.push_back(m);
      return true;
    }
    bool handle(const sage::PeerDisconnected& m) {
      disconnected.push_back(m);
      return true;
    }
    bool handle(const test::Food& m) {
      food.push_back(m.value);
      return true;
    }
  } events;
  server.register_actor(events);

  // The client reconnects by itself (ReconnectPolicy) and sends Food{n} once per tick while connected.
  const Child client{spawn_in(ns, [&] {
    sage::Manager c;
    c.register_messages(test::all_messages{});
    auto o = quick_heartbeat();
    o.name = "far-client";
    o.reconnect.enabled = true;
    o.reconnect.initial_delay = 100ms;
    o.reconnect.max_delay = 400ms;
    c.enable_network(o);
    const sage::Sender srv = c.connect(ns.host, port);
    for (int n = 0;; ++n) {
      (void)c.try_send_message(test::Food{n}, srv);
      c.tick();
      c.wait_for_next_tick(20ms);
    }
  })};
  std::vector<sage::group_error> none;
  REQUIRE(tick_collecting(server, none, [&] { return !events.connected.empty() && !events.food.empty(); }));
  const sage::Sender first = events.connected.front().peer;
  CHECK(events.connected.front().name == "far-client");

  REQUIRE(ns.cut());
  const auto cut_at = Clock::now();
  REQUIRE(tick_collecting(server, none, [&] { return !events.disconnected.empty(); }));
  const auto detected_after = Clock::now() - cut_at;
  INFO("detected after " << std::chrono::duration_cast<std::chrono::milliseconds>(detected_after).count() << " ms");
  CHECK(detected_after >= options.heartbeat_timeout - options.heartbeat_interval);
  CHECK(detected_after < options.heartbeat_timeout + 2s);
  CHECK(events.disconnected.front().peer == first);
  CHECK(events.disconnected.front().reason.code == sage::Errc::peer_gone);
  CHECK(server.network_stats().heartbeat_timeouts == 1);
  auto refused = server.try_send_message(test::Ping{1}, first);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == sage::Errc::peer_gone);
  tick_collecting(server, none, [] { return false; }, options.heartbeat_timeout + 500ms);
  CHECK(events.disconnected.size() == 1);
  CHECK(events.connected.size() == 1);

  // Healed: the client dials again; the server sees a new connection under the client's name.
  REQUIRE(ns.heal());
  const std::size_t food_before = events.food.size();
  REQUIRE(tick_collecting(server, none, [&] { return events.connected.size() == 2 && events.food.size() > food_before + 5; }));
  CHECK(events.connected.back().name == "far-client");
  CHECK(events.disconnected.size() == 1);
  CHECK(none.empty());
}

// Process groups end to end: real child processes, real nng sockets (docs/groups.md).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "groups/child.hpp"
#include "groups/group_pump.hpp"
#include "local/manager_access.hpp"
#include "sage/manager.hpp"
#include "test_messages.hpp"
#include "waiting.hpp"

using namespace std::chrono_literals;
using sage::Manager;
using Clock = std::chrono::steady_clock;

namespace {

using sage::test_support::process_alive;
using sage::test_support::tick_until;
using sage::test_support::tick_until_failure;


// ---- actors that run in children ----

// Answers every Ping with a Pong of the same value, to whoever sent it.
struct Ponger : sage::Actor<Ponger, sage::subscribes<test::Ping>> {
  bool handle(const test::Ping& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Pong{m.value});
    return true;
  }
};

struct ThrowsInConstructor : sage::Actor<ThrowsInConstructor> {
  ThrowsInConstructor() { throw std::runtime_error("no pans in this kitchen"); }
};

struct ThrowsInUpdate : sage::Actor<ThrowsInUpdate> {
  void update() override { throw std::runtime_error("burnt the pancakes"); }
};

struct SendsBigArray : sage::Actor<SendsBigArray> {
  bool sent = false;
  void update() override {
    if (sent) return;
    test::IntArray a;
    for (int i = 0; i < 10000; ++i) a.values.push_back(i * 3 - 7);
    manager()->queue_message_to_group(sage::main_group, a);
    sent = true;
  }
};

// Sends Seq 0..999'999 to the main group, 20'000 per tick.
struct Counter : sage::Actor<Counter> {
  std::uint64_t next = 0;
  void update() override {
    for (int i = 0; i < 20000 && next < 1000000; ++i) manager()->queue_message_to_group(sage::main_group, test::Seq{next++});
  }
};

// Floods the main group until the send limit refuses, writes the error next to its endpoint,
// then tells the main group how many messages were accepted.
struct Flooder : sage::Actor<Flooder> {
  std::uint64_t accepted = 0;
  bool hit = false, done_sent = false;
  void update() override {
    if (!hit) {
      for (int i = 0; i < 2000; ++i) {
        try {
          manager()->queue_message_to_group(sage::main_group, test::Seq{accepted});
          ++accepted;
        } catch (const sage::send_error& e) {
          hit = true;
          std::string url = sage::detail::ManagerAccess::child(*manager())->endpoint_url();
          // "socketpair <ipc dir>/g<N>"
          const std::string dir = url.substr(url.find(' ') + 1, url.rfind('/') - url.find(' ') - 1);
          std::ofstream(dir + "/flood.tmp") << e.what();
          std::filesystem::rename(dir + "/flood.tmp", dir + "/flood.done");
          return;
        }
      }
    } else if (!done_sent) {
      done_sent = manager()->try_queue_message_to_group(sage::main_group, test::Done{accepted}).ok();
    }
  }
};

// Writes garbage transport messages to the main group, then a valid Food.
struct Garbler : sage::Actor<Garbler, sage::subscribes<test::Ping>> {
  bool sent = false;
  bool handle(const test::Ping& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Pong{m.value});
    return true;
  }
  void update() override {
    if (sent) return;
    sent = true;
    auto& pump = *sage::detail::ManagerAccess::child(*manager());
    auto raw = [&](std::vector<int> v) {
      std::vector<std::byte> b;
      for (int x : v) b.push_back(std::byte(x));
      (void)pump.send_raw(b);
    };
    raw({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13});               // header declares a huge length
    raw({77, 0, 0, 0, 0, 0, 0, 0});                                 // unknown packet_type 77
    raw({101, 0, 0, 0, 8, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255});  // Ping that fails the verifier
    raw({101, 1, 0, 0, 0, 0, 0, 0});                                // nonzero flags
    raw({200, 0, 0, 0, 0, 0, 0, 0});                                // user packet_type nobody registered
    raw({});                                                        // empty transport message
    manager()->queue_message_to_group(sage::main_group, test::Food{42});
  }
};

// Group "a": sends a Ping to group "b"; forwards b's Pong to the main group as Food.
struct RelayStarter : sage::Actor<RelayStarter, sage::subscribes<test::Pong>> {
  bool sent = false;
  bool handle(const test::Pong& m, const sage::Sender& from) {
    if (manager()->group_name(from) == "b") manager()->queue_message_to_group(sage::main_group, test::Food{m.value + 1});
    return true;
  }
  void update() override {
    if (!sent) manager()->queue_message_to_group("b", test::Ping{41});
    sent = true;
  }
};

// Advertises another layout for packet_type 101 than the main group's.
struct OtherSchema : sage::Actor<OtherSchema> {
  explicit OtherSchema(Manager& m) { m.register_messages(sage::type_list<test::PingV2>{}); }
};

// ---- actors of the main group ----

template <class T>
struct Collector : sage::Actor<Collector<T>, sage::subscribes<T>> {
  std::vector<T> got;
  std::vector<std::string> from;
  bool handle(const T& m, const sage::Sender& s) {
    got.push_back(m);
    from.emplace_back(this->manager()->group_name(s));
    return true;
  }
};

struct Fixture {
  Manager mgr;
  Fixture() {
    mgr.enable_groups();
    mgr.register_messages(test::all_messages{});
  }
};

}  // namespace

TEST_CASE("adding a group starts one child process that runs its default actor") {
  Fixture f;
  Collector<test::Pong> pongs;
  f.mgr.register_actor(pongs);
  f.mgr.add_process_group<Ponger>("pingers");
  CHECK(f.mgr.process_groups() == std::vector<std::string>{"pingers"});
  const int pid = f.mgr.process_group_pid("pingers");
  CHECK(pid != ::getpid());
  CHECK(process_alive(pid));
  f.mgr.queue_message_to_group("pingers", test::Ping{7});
  REQUIRE(tick_until(f.mgr, [&] { return !pongs.got.empty(); }));
  CHECK(pongs.got[0].value == 7);
  CHECK(pongs.from[0] == "pingers");
}

TEST_CASE("two groups are two processes and each answers for itself") {
  Fixture f;
  Collector<test::Pong> pongs;
  f.mgr.register_actor(pongs);
  f.mgr.add_process_group<Ponger>("one");
  f.mgr.add_process_group<Ponger>("two");
  CHECK(f.mgr.process_groups() == std::vector<std::string>{"one", "two"});
  CHECK(f.mgr.process_group_pid("one") != f.mgr.process_group_pid("two"));
  f.mgr.queue_message_to_group("one", test::Ping{1});
  f.mgr.queue_message_to_group("two", test::Ping{2});
  REQUIRE(tick_until(f.mgr, [&] { return pongs.got.size() == 2; }));
  std::set<std::pair<std::string, int>> seen;
  for (std::size_t i = 0; i < 2; ++i) seen.emplace(pongs.from[i], pongs.got[i].value);
  CHECK(seen == std::set<std::pair<std::string, int>>{{"one", 1}, {"two", 2}});
}

TEST_CASE("clearing the groups twice leaves none and ends their processes") {
  Fixture f;
  f.mgr.add_process_group<Ponger>("one");
  f.mgr.add_process_group<Ponger>("two");
  const int a = f.mgr.process_group_pid("one"), b = f.mgr.process_group_pid("two");
  f.mgr.clear_process_groups();
  CHECK(f.mgr.process_groups().empty());
  f.mgr.clear_process_groups();
  CHECK(f.mgr.process_groups().empty());
  CHECK_FALSE(process_alive(a));
  CHECK_FALSE(process_alive(b));
}

TEST_CASE("after removing a group sending to it or removing it again fails with 'does not exist'") {
  Fixture f;
  f.mgr.add_process_group<Ponger>("one");
  f.mgr.add_process_group<Ponger>("two");
  f.mgr.remove_process_group("one");
  CHECK(f.mgr.process_groups() == std::vector<std::string>{"two"});
  CHECK_THROWS_WITH_AS(f.mgr.queue_message_to_group("one", test::Ping{1}), "sage: group 'one' does not exist",
                       sage::no_such_group);
  CHECK_THROWS_AS(f.mgr.remove_process_group("one"), sage::no_such_group);
  CHECK_THROWS_AS(f.mgr.queue_message_to_group("never", test::Ping{1}), sage::no_such_group);
}

TEST_CASE("adding a group whose name exists fails and leaves the first one running") {
  Fixture f;
  f.mgr.add_process_group<Ponger>("chefs");
  const int pid = f.mgr.process_group_pid("chefs");
  CHECK_THROWS_WITH_AS(f.mgr.add_process_group<Ponger>("chefs"), "sage: group 'chefs' already exists",
                       sage::group_exists);
  CHECK(f.mgr.process_group_pid("chefs") == pid);
  CHECK(process_alive(pid));
}

TEST_CASE("the group API without enable_groups is a usage error") {
  Manager mgr;
  CHECK_THROWS_AS(mgr.add_process_group<Ponger>("x"), sage::groups_not_enabled);
  CHECK_THROWS_AS(mgr.queue_message_to_group("x", test::Ping{1}), sage::groups_not_enabled);
  CHECK_THROWS_AS(mgr.remove_process_group("x"), sage::groups_not_enabled);
  CHECK_FALSE(mgr.groups_enabled());
}

TEST_CASE("a default actor that throws in its constructor makes the next tick raise 'group failed' with the reason") {
  Fixture f;
  f.mgr.add_process_group<ThrowsInConstructor>("broken");
  auto e = tick_until_failure(f.mgr);
  REQUIRE(e.has_value());
  CHECK(e->group() == "broken");
  const std::string what = e->what();
  CHECK(what.find("group failed: 'broken'") != std::string::npos);
  CHECK(what.find("constructor threw: no pans in this kitchen") != std::string::npos);
  CHECK(what.find("exited with status 3") != std::string::npos);
  CHECK_FALSE(f.mgr.has_process_group("broken"));
  CHECK_NOTHROW(f.mgr.tick());
}

TEST_CASE("an actor that throws in update makes the next tick raise 'group failed'") {
  Fixture f;
  f.mgr.add_process_group<ThrowsInUpdate>("burning");
  auto e = tick_until_failure(f.mgr);
  REQUIRE(e.has_value());
  CHECK(e->group() == "burning");
  CHECK(std::string(e->what()).find("exception in tick: burnt the pancakes") != std::string::npos);
}

TEST_CASE("kill -9 of a child makes the next tick raise 'group failed' naming the signal") {
  Fixture f;
  f.mgr.add_process_group<Ponger>("victim");
  ::kill(f.mgr.process_group_pid("victim"), SIGKILL);
  auto e = tick_until_failure(f.mgr);
  REQUIRE(e.has_value());
  CHECK(e->group() == "victim");
  CHECK(e->reason().find("killed by signal 9") != std::string::npos);
  CHECK_THROWS_AS(f.mgr.queue_message_to_group("victim", test::Ping{1}), sage::no_such_group);
}

TEST_CASE("no IPC file and no process are left after a group is removed") {
  Fixture f;
  f.mgr.add_process_group<Ponger>("tidy");
  const int pid = f.mgr.process_group_pid("tidy");
  f.mgr.remove_process_group("tidy");
  CHECK_FALSE(process_alive(pid));
  CHECK(std::filesystem::is_empty(sage::detail::ManagerAccess::groups(f.mgr).ipc_dir()));
}

TEST_CASE("the IPC directory is removed when the manager goes away") {
  std::string dir;
  {
    Fixture f;
    f.mgr.add_process_group<Ponger>("p");
    dir = sage::detail::ManagerAccess::groups(f.mgr).ipc_dir();
    CHECK(std::filesystem::exists(dir));
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("removing a group delivers what was sent both ways before the child exits") {
  Fixture f;
  Collector<test::Pong> pongs;
  f.mgr.register_actor(pongs);
  f.mgr.add_process_group<Ponger>("p");
  for (int i = 0; i < 100; ++i) f.mgr.queue_message_to_group("p", test::Ping{i});
  f.mgr.remove_process_group("p");
  f.mgr.tick();
  REQUIRE(pongs.got.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(pongs.got[static_cast<std::size_t>(i)].value == i);
}

TEST_CASE("a message of 10000 ints arrives whole") {
  Fixture f;
  Collector<test::IntArray> arrays;
  f.mgr.register_actor(arrays);
  f.mgr.add_process_group<SendsBigArray>("big");
  REQUIRE(tick_until(f.mgr, [&] { return !arrays.got.empty(); }));
  REQUIRE(arrays.got[0].values.size() == 10000);
  bool all = true;
  for (int i = 0; i < 10000; ++i) all = all && arrays.got[0].values[static_cast<std::size_t>(i)] == i * 3 - 7;
  CHECK(all);
}

TEST_CASE("a million messages from a child all arrive and in order") {
  Fixture f;
  struct Check : sage::Actor<Check, sage::subscribes<test::Seq>> {
    std::uint64_t next = 0;
    std::uint64_t out_of_order = 0;
    bool handle(const test::Seq& m) {
      if (m.value != next) ++out_of_order;
      next = m.value + 1;
      return true;
    }
  } check;
  f.mgr.register_actor(check);
  sage::GroupOptions o;
  o.interval = 1ms;
  f.mgr.add_process_group<Counter>("counter", o);
  REQUIRE(tick_until(f.mgr, [&] { return check.next == 1000000; }, 120s));
  CHECK(check.out_of_order == 0);
  CHECK(f.mgr.group_stats().bad_input == 0);
}

TEST_CASE("a child flooding a slow main group hits the send limit loudly and loses nothing it accepted") {
  Fixture f;
  struct Check : sage::Actor<Check, sage::subscribes<test::Seq, test::Done>> {
    std::uint64_t next = 0, out_of_order = 0;
    std::optional<std::uint64_t> done;
    bool handle(const test::Seq& m) {
      if (m.value != next) ++out_of_order;
      next = m.value + 1;
      return true;
    }
    bool handle(const test::Done& m) {
      done = m.value;
      return true;
    }
  } check;
  f.mgr.register_actor(check);
  sage::GroupOptions o;
  o.interval = 1ms;
  o.max_message_size = 64 * 1024;
  o.send_buffer_limit = 1 << 20;
  o.receive_buffer_limit = 256 * 1024;
  f.mgr.add_process_group<Flooder>("flood", o);
  // The main group does not tick until the child reports that its send failed.
  const std::string marker = sage::detail::ManagerAccess::groups(f.mgr).ipc_dir() + "/flood.done";
  const auto deadline = Clock::now() + 60s;
  while (!std::filesystem::exists(marker) && Clock::now() < deadline) f.mgr.wait_for_next_tick(10ms);
  REQUIRE(std::filesystem::exists(marker));
  std::stringstream text;
  text << std::ifstream(marker).rdbuf();
  CHECK(text.str().find("send buffer full") != std::string::npos);
  REQUIRE(tick_until(f.mgr, [&] { return check.done.has_value() && check.next == *check.done; }, 60s));
  CHECK(*check.done > 0);
  CHECK(check.out_of_order == 0);
}

TEST_CASE("garbage sent to a group's endpoint is counted and survived") {
  Fixture f;
  Collector<test::Food> food;
  Collector<test::Pong> pongs;
  f.mgr.register_actor(food);
  f.mgr.register_actor(pongs);
  f.mgr.add_process_group<Garbler>("garbler");
  REQUIRE(tick_until(f.mgr, [&] { return !food.got.empty(); }));
  CHECK(food.got[0].value == 42);
  CHECK(f.mgr.group_stats().bad_input == 6);
  // The link is a socketpair: no file in the IPC directory another process could connect to.
  CHECK(std::filesystem::is_empty(sage::detail::ManagerAccess::groups(f.mgr).ipc_dir()));
  // The group still works both ways.
  f.mgr.queue_message_to_group("garbler", test::Ping{5});
  REQUIRE(tick_until(f.mgr, [&] { return !pongs.got.empty(); }));
  CHECK(pongs.got[0].value == 5);
  CHECK(f.mgr.has_process_group("garbler"));
}

TEST_CASE("a child can send to another child and the main group relays it") {
  Fixture f;
  Collector<test::Food> food;
  f.mgr.register_actor(food);
  f.mgr.add_process_group<Ponger>("b");
  f.mgr.add_process_group<RelayStarter>("a");
  REQUIRE(tick_until(f.mgr, [&] { return !food.got.empty(); }));
  CHECK(food.got[0].value == 42);
  CHECK(food.from[0] == "a");
  CHECK(f.mgr.group_stats().records_relayed == 2);
}

TEST_CASE("a child decodes a wire message its default actor subscribes to without register_messages") {
  Manager mgr;
  Collector<test::Pong> pongs;
  mgr.register_actor(pongs);  // before enable_groups: subscribing makes Pong decodable here
  mgr.enable_groups();        // and no register_messages anywhere, in this process or the child
  mgr.add_process_group<Ponger>("p");  // Ponger subscribes to Ping: the child can decode it
  mgr.queue_message_to_group("p", test::Ping{9});
  REQUIRE(tick_until(mgr, [&] { return !pongs.got.empty(); }));
  CHECK(pongs.got[0].value == 9);
  CHECK(pongs.from[0] == "p");
  CHECK(mgr.group_stats().bad_input == 0);
}

TEST_CASE("an actor subscribing to a type whose packet_type another wire type holds is refused at registration") {
  Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(sage::type_list<test::PingV2>{});
  Ponger ponger;  // subscribes to test::Ping, packet_type 101 like PingV2
  CHECK_THROWS_AS(mgr.register_actor(ponger), sage::packet_type_conflict);
  CHECK_FALSE(ponger.registered());
  CHECK(mgr.actor_count() == 0);
}

TEST_CASE("a restart policy starts a failed group again and still reports each failure") {
  Fixture f;
  sage::GroupOptions o;
  o.restart.mode = sage::RestartPolicy::Mode::on_failure;
  o.restart.max_restarts = 1;
  f.mgr.add_process_group<ThrowsInUpdate>("phoenix", o);
  const int first = f.mgr.process_group_pid("phoenix");
  auto e1 = tick_until_failure(f.mgr);
  REQUIRE(e1.has_value());
  CHECK(e1->restarted());
  REQUIRE(f.mgr.has_process_group("phoenix"));
  CHECK(f.mgr.process_group_pid("phoenix") != first);
  auto e2 = tick_until_failure(f.mgr);
  REQUIRE(e2.has_value());
  CHECK_FALSE(e2->restarted());
  CHECK(e2->reason().find("not restarted") != std::string::npos);
  CHECK_FALSE(f.mgr.has_process_group("phoenix"));
}

TEST_CASE("a child built from other schemas is refused with both fingerprints named") {
  Manager mgr;
  mgr.enable_groups();
  mgr.add_process_group<OtherSchema>("stranger");
  mgr.register_messages(sage::type_list<test::Ping>{});  // after the spawn: the child does not inherit it
  auto e = tick_until_failure(mgr);
  REQUIRE(e.has_value());
  const std::string what = e->what();
  CHECK(what.find("schema fingerprint mismatch") != std::string::npos);
  CHECK(what.find("packet_type 101") != std::string::npos);
  CHECK(what.find("0x0000000000001001") != std::string::npos);
  CHECK(what.find("0x0000000000002001") != std::string::npos);
}

TEST_CASE("a waiting manager wakes when a message arrives instead of sleeping its interval") {
  Fixture f;
  Collector<test::Pong> pongs;
  f.mgr.register_actor(pongs);
  sage::GroupOptions o;
  o.interval = 60s;
  f.mgr.add_process_group<Ponger>("sleepy", o);
  f.mgr.tick();
  const auto start = Clock::now();
  f.mgr.queue_message_to_group("sleepy", test::Ping{3});
  f.mgr.tick();  // flushes the ping
  while (pongs.got.empty() && Clock::now() - start < 30s) {
    f.mgr.wait_for_next_tick(60s);
    f.mgr.tick();
  }
  CHECK(Clock::now() - start < 30s);
  REQUIRE(pongs.got.size() == 1);
}

TEST_CASE("only wire messages can be sent to a group (compile-time check)") {
  struct Local {
    int x;
  };
  CHECK_FALSE(sage::WireMessage<Local>);
  CHECK(sage::WireMessage<test::Ping>);
  // mgr.queue_message_to_group("g", Local{1}) fails to compile with:
  // "queue_message_to_group: only wire messages cross processes: ..."
}

namespace {
// Adds a group from inside its update() and sends to it in the same tick.
struct Spawner : sage::Actor<Spawner> {
  bool done = false;
  void update() override {
    if (done) return;
    done = true;
    manager()->add_process_group<Ponger>("late");
    manager()->queue_message_to_group("late", test::Ping{5});  // flushed at the end of this tick
  }
};
}  // namespace

TEST_CASE("a group added from inside a tick starts, and a message queued to it in that tick arrives") {
  Fixture f;
  Collector<test::Pong> pongs;
  f.mgr.register_actor(pongs);
  Spawner spawner;
  f.mgr.register_actor(spawner);
  f.mgr.tick();
  CHECK(f.mgr.has_process_group("late"));
  REQUIRE(tick_until(f.mgr, [&] { return !pongs.got.empty(); }));
  CHECK(pongs.got[0].value == 5);
  CHECK(pongs.from[0] == "late");
}

TEST_CASE("groups whose IPC directory cannot be created fail with spawn_error naming the cause") {
  Manager mgr;
  sage::GroupsOptions o;
  o.ipc_parent_dir = "/nonexistent/sage-test-parent";
  try {
    mgr.enable_groups(o);
    FAIL("enable_groups() succeeded");
  } catch (const sage::spawn_error& e) {
    CHECK(e.error().code == sage::Errc::io_error);
    CHECK(std::string(e.what()).find("/nonexistent/sage-test-parent") != std::string::npos);
  }
  CHECK_FALSE(mgr.groups_enabled());
}

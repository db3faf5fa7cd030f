// Incarnations of a restarted process group (docs/groups.md "Incarnations"): real children killed
// with SIGKILL and started again by their RestartPolicy. What a dead incarnation sent is delivered
// before its failure is reported, under its own Sender; the restarted group's Sender has the next
// generation; a reply addressed to the dead incarnation is refused at the call.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sage/manager.hpp"
#include "test_messages.hpp"
#include "waiting.hpp"

using namespace std::chrono_literals;
using sage::Manager;
using sage::test_support::tick_until;

namespace {

// Where a child with pid `pid` says that its send buffer filled up.
std::filesystem::path full_flag(int pid) {
  return std::filesystem::temp_directory_path() / ("sage-incarnation-" + std::to_string(pid) + ".full");
}

// Sends Seq 0, 1, 2, ... to the main group, 2000 per tick, forever; creates full_flag(its pid) on
// its first send_buffer_full.
struct EndlessSender : sage::Actor<EndlessSender> {
  std::uint64_t next = 0;
  bool told = false;
  void update() override {
    for (int i = 0; i < 2000; ++i) {
      if (!manager()->try_queue_message_to_group(sage::main_group, test::Seq{next})) {
        if (!std::exchange(told, true)) std::ofstream(full_flag(::getpid())) << "full\n";
        return;
      }
      ++next;
    }
  }
};

// Blocks (up to 30 s) until `done`, without ticking anything.
bool wait_untouched(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  return done();
}

struct Ponger : sage::Actor<Ponger, sage::subscribes<test::Ping>> {
  bool handle(const test::Ping& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Pong{m.value});
    return true;
  }
};

// What the main group saw, in order: each Seq with its Sender, and the group_errors between them.
struct Arrival {
  std::uint64_t value;
  sage::Sender from;
  std::size_t failures_before;  // group_errors thrown before this message was delivered
};
struct SeqLog : sage::Actor<SeqLog, sage::subscribes<test::Seq>> {
  std::vector<Arrival> got;
  std::size_t failures = 0;
  bool handle(const test::Seq& m, const sage::Sender& from) {
    got.push_back({m.value, from, failures});
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

sage::GroupOptions restarting() {
  sage::GroupOptions o;
  o.restart.mode = sage::RestartPolicy::Mode::on_failure;
  o.restart.max_restarts = 10;
  o.restart.initial_backoff = 10ms;
  return o;
}

// Ticks until `done`, counting the group_errors thrown meanwhile into `errors`.
bool tick_counting(Manager& mgr, std::vector<sage::group_error>& errors, SeqLog* log,
                   const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {
      errors.push_back(e);
      if (log) log->failures = errors.size();
    }
    mgr.wait_for_next_tick(5ms);
  }
  return done();
}

}  // namespace

TEST_CASE("a child killed with SIGKILL and restarted has everything its dead incarnation sent delivered before "
          "its group_error, and the new incarnation's messages carry the next generation") {
  Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(test::all_messages{});
  SeqLog log;
  mgr.register_actor(log);
  sage::GroupOptions options = restarting();
  options.send_buffer_limit = 256 << 10;  // fills within a few ticks
  mgr.add_process_group<EndlessSender>("sender", options);
  const sage::Sender first = mgr.group_sender("sender");
  CHECK(first.generation == 0);
  std::vector<sage::group_error> errors;

  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    const int pid = mgr.process_group_pid("sender");
    const std::size_t before = log.got.size();
    REQUIRE(tick_counting(mgr, errors, &log, [&] { return log.got.size() >= before + 20000; }));
    // The main group stops ticking until the child's link is full, the child is killed and the
    // fork server reaped it: the next tick finds its last messages and its exit together.
    REQUIRE(wait_untouched([&] { return std::filesystem::exists(full_flag(pid)); }));
    std::filesystem::remove(full_flag(pid));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    REQUIRE(wait_untouched([&] { return ::kill(pid, 0) != 0; }));
    REQUIRE(tick_counting(mgr, errors, &log, [&] { return errors.size() == static_cast<std::size_t>(round); }));
    CHECK(errors.back().group() == "sender");
    CHECK(errors.back().restarted());
    CHECK(errors.back().reason().find("signal 9") != std::string::npos);
    REQUIRE(tick_counting(mgr, errors, &log, [&] { return mgr.group_sender("sender").generation == round; }));
    REQUIRE(tick_counting(mgr, errors, &log, [&] { return log.got.size() > 0 && log.got.back().from.generation == round; }));
  }

  // Per incarnation: an unbroken run 0, 1, 2, ... under its own Sender, all of it delivered before
  // that incarnation's group_error (failures_before == generation), none of it after.
  std::vector<std::uint64_t> next(4, 0);
  for (std::size_t i = 0; i < log.got.size(); ++i) {
    const Arrival& a = log.got[i];
    REQUIRE(a.from.kind == sage::Sender::Kind::group);
    REQUIRE(a.from.index == first.index);
    REQUIRE(a.from.generation < next.size());
    if (a.failures_before != a.from.generation)
      FAIL("message " << i << " (Seq " << a.value << " of incarnation " << a.from.generation << ") arrived after "
                      << a.failures_before << " group_error(s)");
    if (a.value != next[a.from.generation])
      FAIL("incarnation " << a.from.generation << " sent Seq " << a.value << " where " << next[a.from.generation]
                          << " was due");
    ++next[a.from.generation];
    CHECK(mgr.group_name(a.from) == "sender");
  }
  for (int g = 0; g < 3; ++g) CHECK(next[g] >= 20000);
  CHECK(next[3] > 0);
}

TEST_CASE("a reply addressed to a restarted group's dead incarnation is refused at the call with peer_gone, and "
          "the new incarnation answers its own Sender") {
  Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(test::all_messages{});
  PongLog pongs;
  mgr.register_actor(pongs);
  mgr.add_process_group<Ponger>("ponger", restarting());
  std::vector<sage::group_error> errors;

  mgr.queue_message_to_group("ponger", test::Ping{1});
  REQUIRE(tick_counting(mgr, errors, nullptr, [&] { return pongs.from_of(1).has_value(); }));
  const sage::Sender old = *pongs.from_of(1);
  CHECK(old == mgr.group_sender("ponger"));
  CHECK(old.generation == 0);

  const int pid = mgr.process_group_pid("ponger");
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(tick_counting(mgr, errors, nullptr, [&] { return !errors.empty(); }));
  CHECK(errors.front().restarted());
  // Up again: a message by name reaches the new incarnation, whose answer carries the next generation.
  REQUIRE(tick_counting(mgr, errors, nullptr, [&] {
    if (mgr.group_sender("ponger").generation == 0) return false;
    if (!pongs.from_of(2)) (void)mgr.try_queue_message_to_group("ponger", test::Ping{2});
    return pongs.from_of(2).has_value();
  }));
  const sage::Sender now = *pongs.from_of(2);
  CHECK(now.generation == 1);
  CHECK(now.index == old.index);
  CHECK(now != old);
  CHECK(now == mgr.group_sender("ponger"));
  CHECK(mgr.group_name(old) == "ponger");  // an old Sender still names its group

  // A reply to the dead incarnation: refused at the call, nothing queued.
  const auto sent = mgr.group_stats().records_sent;
  try {
    mgr.queue_message_to_group(old, test::Ping{3});
    FAIL("a reply to the dead incarnation was accepted");
  } catch (const sage::send_error& e) {
    CHECK(e.error().code == sage::Errc::peer_gone);
    const std::string what = e.what();
    CHECK(what.find("'ponger' was restarted") != std::string::npos);
    CHECK(what.find("incarnation 0") != std::string::npos);
  }
  auto r = mgr.try_queue_message_to_group(old, test::Ping{3});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == sage::Errc::peer_gone);
  CHECK(mgr.group_stats().records_sent == sent);
  // The current Sender works as a reply address.
  mgr.queue_message_to_group(now, test::Ping{4});
  REQUIRE(tick_counting(mgr, errors, nullptr, [&] { return pongs.from_of(4).has_value(); }));
  CHECK_FALSE(pongs.from_of(3).has_value());
  CHECK(errors.size() == 1);

  // Removed, its Senders name a group that is gone.
  mgr.remove_process_group("ponger");
  CHECK(mgr.group_name(now) == "ponger");
  CHECK_THROWS_AS(mgr.queue_message_to_group(now, test::Ping{5}), sage::no_such_group);
  CHECK_THROWS_AS(mgr.queue_message_to_group(old, test::Ping{5}), sage::no_such_group);
}

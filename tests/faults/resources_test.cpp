// Resource tests of process groups (docs/reliability.md): the main process's file descriptors
// return to where they started after groups come and go (added, removed, restarted), and a
// crash-looping group is held back by the restart policy. Counted from /proc/self/fd.
#include <doctest/doctest.h>

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "sage/manager.hpp"
#include "test_messages.hpp"
#include "waiting.hpp"

using namespace std::chrono_literals;
using sage::Manager;
using sage::test_support::tick_until;
using sage::test_support::tick_until_failure;

namespace {

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory stream itself
}

struct Idle : sage::Actor<Idle> {};

// Exits (as a crash would) at its first update().
struct Crasher : sage::Actor<Crasher> {
  void update() override { std::_Exit(3); }
};

}  // namespace

TEST_CASE("starting and removing 200 groups leaves the main process with the file descriptors it had") {
  Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(test::all_messages{});
  // One warm-up group: nng's own threads and pollers are made once per process.
  mgr.add_process_group<Idle>("warm-up");
  mgr.remove_process_group("warm-up");
  const int before = open_fds();
  for (int batch = 0; batch < 10; ++batch) {
    for (int i = 0; i < 20; ++i) mgr.add_process_group<Idle>("g" + std::to_string(batch * 20 + i));
    mgr.tick();
    if (batch % 2) {
      mgr.clear_process_groups();
    } else {
      for (int i = 0; i < 20; ++i) mgr.remove_process_group("g" + std::to_string(batch * 20 + i));
    }
    CHECK(mgr.process_groups().empty());
  }
  const int after = open_fds();
  INFO("fds before: " << before << ", after 200 groups: " << after);
  CHECK(after <= before + 2);
  CHECK(after >= before - 2);
}

TEST_CASE("50 restarts of a crashing group leave the main process with the file descriptors it had") {
  Manager mgr;
  mgr.enable_groups();
  mgr.add_process_group<Idle>("warm-up");
  mgr.remove_process_group("warm-up");
  const int before = open_fds();
  sage::GroupOptions options;
  options.restart.mode = sage::RestartPolicy::Mode::on_failure;
  options.restart.max_restarts = 50;
  options.restart.window = 10min;
  options.restart.initial_backoff = 1ms;
  options.restart.max_backoff = 1ms;
  mgr.add_process_group<Crasher>("crasher", options);
  int restarts = 0;
  bool gave_up = false;
  while (!gave_up) {
    auto failure = tick_until_failure(mgr);
    REQUIRE(failure.has_value());
    CHECK(failure->group() == "crasher");
    if (failure->restarted()) ++restarts;
    else gave_up = true;
  }
  CHECK(restarts == 50);
  CHECK_FALSE(mgr.has_process_group("crasher"));
  const int after = open_fds();
  INFO("fds before: " << before << ", after 50 restarts: " << after);
  CHECK(after <= before + 2);
  CHECK(after >= before - 2);
}

TEST_CASE("a crash-looping group is restarted with exponential backoff, a bounded number of times, and then "
          "fails for good naming the intensity limit") {
  Manager mgr;
  mgr.enable_groups();
  sage::GroupOptions options;
  options.restart.mode = sage::RestartPolicy::Mode::on_failure;
  options.restart.max_restarts = 1000;  // the backoff alone must hold it back
  options.restart.window = 2s;
  options.restart.initial_backoff = 10ms;
  options.restart.max_backoff = 320ms;
  mgr.add_process_group<Crasher>("crasher", options);
  // 2 s of crash loop: 10+20+40+80+160+320 ms = 630 ms for the first 6 restarts, then one per
  // 320 ms: about 11 restarts. Without backoff it was thousands.
  int restarts = 0;
  std::vector<std::string> reasons;
  const auto end = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < end) {
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {
      CHECK(e.restarted());
      ++restarts;
      reasons.push_back(e.reason());
    }
    mgr.wait_for_next_tick(5ms);
  }
  INFO("restarts in 2 s: " << restarts);
  CHECK(restarts >= 3);
  CHECK(restarts <= 14);
  REQUIRE(reasons.size() >= 3);
  CHECK(reasons[0].find("restarting in 10 ms") != std::string::npos);
  CHECK(reasons[1].find("restarting in 20 ms") != std::string::npos);
  CHECK(reasons[2].find("restarting in 40 ms") != std::string::npos);
  // While it waits for its restart, the group exists but cannot be sent to.
  CHECK(mgr.has_process_group("crasher"));

  // The intensity limit: 2 restarts within a long window, then the group is removed.
  options.restart.max_restarts = 2;
  options.restart.window = 1min;
  options.restart.initial_backoff = 1ms;
  mgr.add_process_group<Crasher>("limited", options);
  std::vector<sage::group_error> failures;
  while (failures.empty() || failures.back().restarted()) {
    auto f = tick_until_failure(mgr);
    REQUIRE(f.has_value());
    if (f->group() == "limited") failures.push_back(*f);
  }
  CHECK(failures.size() == 3);
  CHECK(failures.back().reason().find("not restarted: 2 restarts within 60000 ms") != std::string::npos);
  CHECK_FALSE(mgr.has_process_group("limited"));
  try {
    mgr.remove_process_group("crasher");  // waiting or running: removed either way
  } catch (const sage::group_error&) {
    // it crashed while being removed: reported, and removed all the same
  }
  CHECK_FALSE(mgr.has_process_group("crasher"));
}

TEST_CASE("add_process_group past GroupsOptions::max_groups throws spawn_error naming the limit and starts "
          "nothing, and a removal makes room again") {
  Manager mgr;
  sage::GroupsOptions options;
  options.max_groups = 3;
  mgr.enable_groups(options);
  for (const char* name : {"a", "b", "c"}) mgr.add_process_group<Idle>(name);
  try {
    mgr.add_process_group<Idle>("d");
    FAIL("a fourth group started");
  } catch (const sage::spawn_error& e) {
    CHECK(e.group() == "d");
    CHECK(e.error().code == sage::Errc::io_error);
    CHECK(std::string(e.what()).find("GroupsOptions::max_groups") != std::string::npos);
  }
  CHECK_FALSE(mgr.has_process_group("d"));
  CHECK(mgr.process_groups().size() == 3);
  mgr.remove_process_group("b");
  mgr.add_process_group<Idle>("d");
  CHECK(mgr.has_process_group("d"));
  mgr.clear_process_groups();
  CHECK(mgr.process_groups().empty());
}

// The fork server dies under running groups (docs/reliability.md). Its own executable: the fork
// server is process-wide, and killing it ends group support for the rest of the process.
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "groups/process.hpp"
#include "local/manager_access.hpp"
#include "local/pump.hpp"
#include "transport/waker.hpp"
#include "sage/manager.hpp"
#include "waiting.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using sage::Manager;
using sage::test_support::process_alive;

namespace {
struct Idle : sage::Actor<Idle> {};
}  // namespace

TEST_CASE("killing the fork server under 3 groups fails each group once within a tick, naming the fork server, "
          "without a long tick or a busy loop, and later spawns fail with spawn_error") {
  Manager mgr;
  mgr.enable_groups();
  sage::GroupOptions restarting;
  restarting.restart.mode = sage::RestartPolicy::Mode::on_failure;  // a restart is impossible now
  std::map<std::string, int> pids;
  for (const char* name : {"a", "b", "c"}) {
    mgr.add_process_group<Idle>(name, restarting);
    pids[name] = mgr.process_group_pid(name);
  }
  mgr.tick();
  auto* server = sage::detail::ForkServer::started();
  REQUIRE(server != nullptr);
  REQUIRE(::kill(server->pid(), SIGKILL) == 0);

  std::map<std::string, int> failures;
  auto longest = Clock::duration::zero();
  const auto deadline = Clock::now() + 30s;
  while (failures.size() < 3 && Clock::now() < deadline) {
    const auto start = Clock::now();
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {
      ++failures[e.group()];
      CHECK_FALSE(e.restarted());
      CHECK(e.reason().find("fork server") != std::string::npos);
      CHECK(e.reason().find("not restarted") != std::string::npos);
    }
    longest = std::max(longest, Clock::now() - start);
    mgr.wait_for_next_tick(20ms);
  }
  CHECK(failures == std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}});
  INFO("longest tick: " << std::chrono::duration_cast<std::chrono::milliseconds>(longest).count() << " ms");
  CHECK(longest < 1s);
  CHECK(mgr.process_groups().empty());

  // Idle now: the dead fork server's socket must not wake every wait (a busy loop).
  auto& waker = sage::detail::ManagerAccess::waker(mgr);
  const auto woken_before = waker.wakeups();
  for (int i = 0; i < 10; ++i) {
    mgr.tick();
    mgr.wait_for_next_tick(30ms);
  }
  CHECK(waker.wakeups() - woken_before <= 2);

  try {
    mgr.add_process_group<Idle>("d");
    FAIL("add_process_group succeeded without a fork server");
  } catch (const sage::spawn_error& e) {
    CHECK(e.error().code == sage::Errc::peer_gone);
    CHECK(std::string(e.what()).find("fork server") != std::string::npos);
  }
  CHECK_FALSE(mgr.has_process_group("d"));
  for (auto& [name, pid] : pids) {
    INFO("group " << name);
    CHECK(sage::test_support::tick_until(mgr, [pid = pid] { return !process_alive(pid); }));
  }
}

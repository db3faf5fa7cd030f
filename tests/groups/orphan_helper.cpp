// A main process for "killing the main process leaves no child alive": starts two groups, prints
// "<fork server pid> <child pid> <child pid>" and ticks until it is killed.
#include <cstdio>

#include "groups/process.hpp"
#include "sage/manager.hpp"

namespace {
struct Idle : sage::Actor<Idle> {};
}  // namespace

int main() {
  sage::Manager mgr;
  mgr.enable_groups();
  mgr.add_process_group<Idle>("one");
  mgr.add_process_group<Idle>("two");
  std::printf("%d %d %d\n", static_cast<int>(sage::detail::ForkServer::instance().pid()),
              mgr.process_group_pid("one"), mgr.process_group_pid("two"));
  std::fflush(stdout);
  for (;;) {
    mgr.tick();
    mgr.wait_for_next_tick(std::chrono::milliseconds(30));
  }
}

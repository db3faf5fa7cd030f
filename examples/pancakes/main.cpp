// pysage's "Messaging across Processes": a Chef in the child process "chefs" makes pancakes every
// 2 s and sends them to the main group, where a Consumer eats them.
//
//   build/examples/pancakes [--seconds N]     (default 5)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include <sage/manager.hpp>

#include "pancakes.sage.hpp"

using namespace std::chrono_literals;
using pancakes::FoodAvailableMessage;

// Lives in the main group.
struct Consumer : sage::Actor<Consumer, sage::subscribes<FoodAvailableMessage>> {
  bool handle(const FoodAvailableMessage& msg) {
    std::printf("Yummy! I had %d pancakes!\n", msg.amount);
    std::fflush(stdout);
    return true;
  }
};

// The default actor of the "chefs" group: runs in the child process.
struct Chef : sage::Actor<Chef> {
  std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
  std::minstd_rand random{std::random_device{}()};
  void update() override {
    // Every 2 seconds, this chef makes a random amount of pancakes.
    if (std::chrono::steady_clock::now() - last_sent > 2s) {
      const int amount = 1 + static_cast<int>(random() % 10);
      manager()->queue_message_to_group(sage::main_group, FoodAvailableMessage{amount});
      last_sent = std::chrono::steady_clock::now();
    }
  }
};

int main(int argc, char** argv) {
  int seconds = 5;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = std::atoi(argv[++i]);

  sage::Manager mgr;
  mgr.enable_groups();  // first: forks the fork server the groups are started from

  mgr.add_process_group<Chef>("chefs");  // spawns a new process that ticks independently
  Consumer consumer;
  mgr.register_actor(consumer);  // it subscribes to FoodAvailableMessage: that now decodes here

  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    mgr.tick();
    mgr.wait_for_next_tick(30ms);  // like time.sleep(.03), but wakes when a message arrives
  }
  mgr.clear_process_groups();
  std::printf("done after %d s\n", seconds);
}

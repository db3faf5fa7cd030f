// Two process groups talking through the main group: chefs (a child) cook pancakes, the Waiter in
// the main group serves them at most 5 per delivery to the consumers (another child).
//
//   build/examples/dual_groups [--seconds N]     (default 5)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sage/manager.hpp>

#include "pancakes.sage.hpp"

using namespace std::chrono_literals;
using pancakes::FoodAvailableMessage;
using pancakes::FoodOnTableMessage;

// Group "chefs": a batch of 7, 8, 9, ... pancakes every second.
struct Chef : sage::Actor<Chef> {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  int batch = 7;
  void update() override {
    if (std::chrono::steady_clock::now() - last < 1s) return;
    last = std::chrono::steady_clock::now();
    std::printf("[chefs] cooked %d pancakes\n", batch);
    std::fflush(stdout);
    manager()->queue_message_to_group(sage::main_group, FoodAvailableMessage{batch++});
  }
};

// Main group: carries at most 5 pancakes per delivery to the consumers.
struct Waiter : sage::Actor<Waiter, sage::subscribes<FoodAvailableMessage>> {
  bool handle(const FoodAvailableMessage& m, const sage::Sender& from) {
    std::printf("[main] waiter got %d pancakes from %s\n", m.amount, std::string(manager()->group_name(from)).c_str());
    for (int left = m.amount; left > 0; left -= 5)
      manager()->queue_message_to_group("consumers", FoodOnTableMessage{left < 5 ? left : 5});
    std::fflush(stdout);
    return true;
  }
};

// Group "consumers".
struct Consumer : sage::Actor<Consumer, sage::subscribes<FoodOnTableMessage>> {
  int eaten = 0;
  bool handle(const FoodOnTableMessage& m) {
    eaten += m.amount;
    std::printf("[consumers] Yummy! I had %d pancakes! (%d so far)\n", m.amount, eaten);
    std::fflush(stdout);
    return true;
  }
};

int main(int argc, char** argv) {
  int seconds = 5;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = std::atoi(argv[++i]);

  sage::Manager mgr;
  mgr.enable_groups();
  Waiter waiter;
  mgr.register_actor(waiter);
  mgr.add_process_group<Consumer>("consumers");
  mgr.add_process_group<Chef>("chefs");

  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    mgr.tick();
    mgr.wait_for_next_tick(30ms);
  }
  mgr.clear_process_groups();  // the consumers finish what is on their table first
  std::printf("[main] closed after %d s\n", seconds);
}

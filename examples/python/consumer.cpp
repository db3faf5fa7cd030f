// The pancake example across languages: the Consumer in a C++ main group, the Chef in Python
// (chef.py) joining it as the remote group "chefs" (docs/python.md).
//
//   build/examples/python_pancakes [--meals N] [--port P] [--admit GROUP]...   prints "listening on port P"
//   PYTHONPATH=python:<generated modules> /usr/bin/python3 examples/python/chef.py 127.0.0.1 P
//
// The Consumer eats what the chef sends (FoodAvailableMessage) and answers each delivery with a
// FoodOnTableMessage telling the chef how many pancakes are on the table; after N meals (default 3)
// it ends, which sends the chef `bye`. --admit admits more remote groups besides "chefs" (they can
// reach each other by name: the main group relays).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sage/manager.hpp>

#include "pancakes.sage.hpp"

using namespace std::chrono_literals;
using pancakes::FoodAvailableMessage;
using pancakes::FoodOnTableMessage;

struct Consumer : sage::Actor<Consumer, sage::subscribes<FoodAvailableMessage>> {
  int meals = 0;
  int eaten = 0;
  bool handle(const FoodAvailableMessage& msg, const sage::Sender& from) {
    eaten += msg.amount;
    ++meals;
    const auto chef = manager()->group_name(from);
    std::printf("Yummy! I had %d pancakes from %.*s!\n", msg.amount, static_cast<int>(chef.size()), chef.data());
    manager()->queue_message_to_group(from, FoodOnTableMessage{eaten});
    return true;
  }
};

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int meals = 3;
  int port = 0;
  sage::NetworkOptions net;
  net.remote_groups = {"chefs"};  // closed by default: the groups this main group hosts
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--meals") == 0) meals = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--admit") == 0) net.remote_groups.emplace_back(argv[++i]);
  }
  sage::Manager mgr;
  mgr.enable_network(net);
  Consumer consumer;
  mgr.register_actor(consumer);
  const auto at = mgr.listen("127.0.0.1", static_cast<std::uint16_t>(port));
  std::printf("listening on port %u\n", static_cast<unsigned>(at.port));
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  mgr.run(30ms, [&] { return consumer.meals >= meals || std::chrono::steady_clock::now() > deadline; });
  std::printf("done: %d pancakes in %d meals\n", consumer.eaten, consumer.meals);
  return consumer.meals >= meals ? 0 : 1;
}

// A message property with custom conversion code, like pysage's pack_food / unpack_food: the
// application's Food object travels as JSON text inside a schema message.
//
//   build/examples/json_property [--seconds N]     (default 3)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <sage/manager.hpp>

#include "food.sage.hpp"

using namespace std::chrono_literals;

// The application's object: not a message, not in any schema.
struct Food {
  std::string name;
  int pieces = 0;
  std::vector<std::string> toppings;
};

// pack_food: Food -> JSON text. Names and toppings are plain words in this example.
std::string pack_food(const Food& f) {
  std::string s = "{\"name\":\"" + f.name + "\",\"pieces\":" + std::to_string(f.pieces) + ",\"toppings\":[";
  for (std::size_t i = 0; i < f.toppings.size(); ++i) s += (i ? ",\"" : "\"") + f.toppings[i] + "\"";
  return s + "]}";
}

// unpack_food: JSON text -> Food, or nullopt if it is not what pack_food writes.
std::optional<Food> unpack_food(const std::string& s) {
  Food f;
  auto field = [&](const char* key) -> std::size_t {
    auto at = s.find(std::string("\"") + key + "\":");
    return at == std::string::npos ? at : at + std::strlen(key) + 3;
  };
  auto n = field("name"), p = field("pieces"), t = field("toppings");
  if (n == std::string::npos || p == std::string::npos || t == std::string::npos || s[n] != '"') return std::nullopt;
  f.name = s.substr(n + 1, s.find('"', n + 1) - n - 1);
  f.pieces = std::atoi(s.c_str() + p);
  for (auto at = s.find('"', t); at != std::string::npos && at < s.find(']', t); at = s.find('"', at + 1)) {
    auto end = s.find('"', at + 1);
    f.toppings.push_back(s.substr(at + 1, end - at - 1));
    at = end;
  }
  return f;
}

struct Kitchen : sage::Actor<Kitchen> {  // group "kitchen"
  std::chrono::steady_clock::time_point last{};
  int round = 0;
  void update() override {
    if (std::chrono::steady_clock::now() - last < 500ms) return;
    last = std::chrono::steady_clock::now();
    static const Food menu[] = {{"waffles", 3, {"syrup", "butter"}}, {"pancakes", 5, {"blueberries"}}, {"crepes", 2, {}}};
    const Food& food = menu[round++ % 3];
    manager()->queue_message_to_group(sage::main_group, kitchen::FoodParcelMessage{pack_food(food)});
  }
};

struct Diner : sage::Actor<Diner, sage::subscribes<kitchen::FoodParcelMessage>> {  // main group
  bool handle(const kitchen::FoodParcelMessage& m) {
    auto food = unpack_food(m.food_json);
    if (!food) {
      std::printf("could not unpack %s\n", m.food_json.c_str());
      return true;
    }
    std::string toppings;
    for (auto& t : food->toppings) toppings += (toppings.empty() ? " with " : " and ") + t;
    std::printf("Got %d %s%s (wire: %s)\n", food->pieces, food->name.c_str(), toppings.c_str(), m.food_json.c_str());
    std::fflush(stdout);
    return true;
  }
};

int main(int argc, char** argv) {
  int seconds = 3;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = std::atoi(argv[++i]);
  sage::Manager mgr;
  mgr.enable_groups();
  Diner diner;
  mgr.register_actor(diner);
  mgr.add_process_group<Kitchen>("kitchen");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    mgr.tick();
    mgr.wait_for_next_tick(30ms);
  }
  mgr.clear_process_groups();
}

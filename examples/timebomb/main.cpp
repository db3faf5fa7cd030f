// pysage's generator-handler example in sage: a TimeBombMessage handler is a coroutine that counts
// down one tick at a time, then hits the player.
#include <chrono>
#include <cstdio>

#include "sage/manager.hpp"

using namespace std::chrono_literals;

struct TimeBombMessage {
  int ticks = 0;  // how many ticks until it goes off
  int damage = 0;
};
struct BombMessage {
  int damage = 0;
};

struct Player : sage::Actor<Player, sage::subscribes<BombMessage>> {
  int hp = 100;
  bool handle(const BombMessage& bomb) {
    hp -= bomb.damage;
    std::printf("BOOM! player hp: %d\n", hp);
    return true;
  }
};

struct Bomber : sage::Actor<Bomber, sage::subscribes<TimeBombMessage>> {
  // A coroutine handler: takes the message by value, resumes once per tick.
  sage::Task handle(TimeBombMessage bomb) {
    std::printf("tick %llu: time bomb armed, %d ticks to go\n", tick(), bomb.ticks);
    while (bomb.ticks > 0) {
      co_await sage::next_tick();
      --bomb.ticks;
      std::printf("tick %llu: %d\n", tick(), bomb.ticks);
    }
    manager()->trigger(BombMessage{bomb.damage});
  }
  unsigned long long tick() const { return manager()->tick_count(); }
};

int main() {
  sage::Manager manager;
  Player player;
  Bomber bomber;
  manager.register_actor(player, "player");
  manager.register_actor(bomber, "bomber");

  manager.queue_message(TimeBombMessage{3, 50});
  manager.run(1000ms / 30, [&] {
    return manager.tick_count() > 1 && manager.suspended_coroutines() == 0;
  });
  std::printf("no bombs left after %llu ticks\n", static_cast<unsigned long long>(manager.tick_count()));
}

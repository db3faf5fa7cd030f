// pysage's front-page example in sage: a Player takes BombMessage damage in a 30 ticks/s loop.
#include <chrono>
#include <cstdio>

#include "sage/manager.hpp"

using namespace std::chrono_literals;

// A local message: a plain struct, no schema needed while it stays in this process.
struct BombMessage {
  int damage = 0;
};

struct Player : sage::Actor<Player, sage::subscribes<BombMessage>> {
  int hp = 100;

  bool handle(const BombMessage& bomb) {
    hp -= bomb.damage;
    std::printf("I took %d damage, hp left: %d\n", bomb.damage, hp);
    if (hp <= 0) manager()->unregister_actor(*this);  // safe inside its own handler
    return true;                                       // consumed: nobody else sees it
  }
};

int main() {
  sage::Manager manager;
  Player player;
  manager.register_actor(player, "player");

  manager.queue_message(BombMessage{10});  // delivered at the next tick
  manager.run(1000ms / 30, [&] {          // 30 ticks/s until the player is gone
    if (!player.registered()) return true;
    manager.queue_message(BombMessage{10});
    return false;
  });
  std::printf("player is dead after %llu ticks\n", static_cast<unsigned long long>(manager.tick_count()));
}

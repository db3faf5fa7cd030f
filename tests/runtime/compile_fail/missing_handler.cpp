// Must not compile: Player subscribes to Pong but has no handler for it.
#include "sage/actor.hpp"

struct Ping {};
struct Pong {};

struct Player : sage::Actor<Player, sage::subscribes<Ping, Pong>> {
  bool handle(const Ping&) { return true; }
};

int main() { Player p; }

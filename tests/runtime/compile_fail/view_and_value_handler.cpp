// Must not compile: one actor, two handlers for one type (a value and a view).
#include "wire_ping_with_view.hpp"

struct Player : sage::Actor<Player, sage::subscribes<Ping>> {
  bool handle(const Ping&) { return false; }
  bool handle(const Ping::View&) { return false; }
};

int main() { Player p; }

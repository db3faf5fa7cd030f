// Must not compile: a local-only message has no wire bytes for a view handler to read.
#include "sage/actor.hpp"

struct Local {
  class View {};
};

struct Player : sage::Actor<Player, sage::subscribes<Local>> {
  bool handle(const Local::View&) { return false; }
};

int main() { Player p; }

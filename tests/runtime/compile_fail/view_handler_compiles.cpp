// Must compile (the control for the view compile-fail tests): a correct view handler.
#include "wire_ping_with_view.hpp"

struct Player : sage::Actor<Player, sage::subscribes<Ping>> {
  bool handle(const Ping::View&) { return false; }
};

int main() { Player p; }

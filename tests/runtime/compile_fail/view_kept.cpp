// Must not compile: a view cannot be copied out of the handler it was handed to.
#include <vector>

#include "wire_ping_with_view.hpp"

struct Player : sage::Actor<Player, sage::subscribes<Ping>> {
  std::vector<Ping::View> kept;
  bool handle(const Ping::View& m) {
    kept.push_back(m);
    return false;
  }
};

int main() { Player p; }

// Must not compile: a view is valid for the call only, so a coroutine cannot take one.
#include "wire_ping_with_view.hpp"

struct Player : sage::Actor<Player, sage::subscribes<Ping>> {
  sage::Task handle(const Ping::View&) { co_await sage::next_tick(); }
};

int main() { Player p; }

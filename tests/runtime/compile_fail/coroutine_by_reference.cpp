// Must not compile: a coroutine handler taking its message by reference would outlive it.
#include "sage/actor.hpp"

struct Ping {};

struct Player : sage::Actor<Player, sage::subscribes<Ping>> {
  sage::Task handle(const Ping&) { co_await sage::next_tick(); }
};

int main() { Player p; }

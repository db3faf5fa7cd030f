// Must not compile: a wildcard subscription needs handle_any().
#include "sage/actor.hpp"

struct Spy : sage::Actor<Spy, sage::subscribes<sage::AnyMessage>> {};

int main() { Spy s; }

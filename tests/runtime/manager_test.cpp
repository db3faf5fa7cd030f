// Behaviour of the local runtime: pysage's own checks, ported, plus sage's contracts.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sage/manager.hpp"

namespace {

struct Ping {
  int n = 0;
};

struct Receiver : sage::Actor<Receiver, sage::subscribes<Ping>> {
  std::vector<int> got;
  bool consume = false;
  bool handle(const Ping& p) {
    got.push_back(p.n);
    return consume;
  }
};

}  // namespace

TEST_CASE("a trigger that nobody consumes returns false") {
  sage::Manager m;
  Receiver r;
  m.register_actor(r);
  CHECK_FALSE(m.trigger(Ping{1}));
  CHECK(r.got == std::vector<int>{1});
  r.consume = true;
  CHECK(m.trigger(Ping{2}));
}

TEST_CASE("queue then tick delivers and empties the queue") {
  sage::Manager m;
  Receiver r;
  m.register_actor(r);
  m.queue_message(Ping{1});
  m.queue_message(Ping{2});
  CHECK(m.queue_length() == 2);
  CHECK(r.got.empty());
  CHECK(m.tick());
  CHECK(r.got == std::vector<int>{1, 2});
  CHECK(m.queue_length() == 0);
}

namespace {
struct Countdown {
  int ticks = 0;
};
struct Everything : sage::Actor<Everything, sage::subscribes<Ping, Countdown, sage::AdHocMessage, sage::AnyMessage>> {
  std::vector<std::string> seen;
  int fired = 0;
  sage::Sender last_sender;
  bool handle(const Ping&, const sage::Sender& from) {
    last_sender = from;
    return false;
  }
  sage::Task handle(Countdown c) {
    while (c.ticks-- > 0) co_await sage::next_tick();
    ++fired;
  }
  bool handle(const sage::AdHocMessage&) { return true; }
  void handle_any(const sage::AnyMessageRef& m) { seen.emplace_back(m.name()); }
};
}  // namespace

TEST_CASE("every kind of handler compiles and runs") {
  sage::Manager m;
  Everything e;
  m.register_actor(e, "e");
  m.queue_message_from(Ping{1}, sage::Sender::group(3));
  m.tick();
  CHECK(e.last_sender == sage::Sender::group(3));
  CHECK(m.trigger(Countdown{2}) == false);
  CHECK(m.suspended_coroutines() == 1);
  m.tick();
  CHECK(e.fired == 0);
  m.tick();
  CHECK(e.fired == 1);
  CHECK(m.suspended_coroutines() == 0);
  CHECK(m.trigger("Bomb"));
  CHECK(e.seen.back() == "Bomb");
}

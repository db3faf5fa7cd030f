// Behaviour of the local runtime: the checks of pysage's own tests, ported, then sage's contracts
// (priorities, consumption order, coroutines, mutation during dispatch, budget, errors).
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "local/manager_access.hpp"
#include "local/pump.hpp"
#include "sage/manager.hpp"
#include "transport/waker.hpp"

using namespace std::chrono_literals;

namespace doctest {
template <class T>
struct StringMaker<std::vector<T>> {
  static String convert(const std::vector<T>& v) {
    String out = "{";
    for (const T& x : v) out += toString(x) + " ";
    return out + "}";
  }
};
}  // namespace doctest

namespace {

struct Ping {
  int n = 0;
};
struct Pong {
  int n = 0;
};
// Stands in for a class generated from a schema: it has a message_name.
struct SchemaBomb {
  static constexpr std::string_view message_name = "game.BombMessage";
  int damage = 0;
};

// Records what it receives; consumes when told to.
struct Receiver : sage::Actor<Receiver, sage::subscribes<Ping, Pong>> {
  std::vector<int> pings, pongs;
  bool consume = false;
  bool handle(const Ping& p) {
    pings.push_back(p.n);
    return consume;
  }
  bool handle(const Pong& p) {
    pongs.push_back(p.n);
    return consume;
  }
};

// Appends "<tag>:<n>" to a shared log for each Ping, and "<tag>" to it on update().
struct Logger : sage::Actor<Logger, sage::subscribes<Ping>> {
  Logger(std::vector<std::string>& log, std::string tag, bool consume = false)
      : log(log), tag(std::move(tag)), consume(consume) {}
  std::vector<std::string>& log;
  std::string tag;
  bool consume;
  bool handle(const Ping& p) {
    log.push_back(tag + ":" + std::to_string(p.n));
    return consume;
  }
  void update() override { log.push_back(tag); }
};

// Counts live instances, to check the queue destroys what it constructs.
struct Tracked {
  static inline int live = 0;
  std::unique_ptr<int> value;
  explicit Tracked(int v) : value(std::make_unique<int>(v)) { ++live; }
  Tracked(Tracked&& o) noexcept : value(std::move(o.value)) { ++live; }
  Tracked(const Tracked& o) : value(std::make_unique<int>(*o.value)) { ++live; }
  Tracked& operator=(Tracked&&) = default;
  ~Tracked() { --live; }
};

struct TrackedReceiver : sage::Actor<TrackedReceiver, sage::subscribes<Tracked>> {
  std::vector<int> got;
  bool handle(const Tracked& t) {
    got.push_back(*t.value);
    return false;
  }
};

}  // namespace

// ---------------------------------------------------------------- pysage's checks

TEST_CASE("a trigger that nobody consumes returns false") {
  sage::Manager m;
  Receiver r;
  m.register_actor(r);
  CHECK_FALSE(m.trigger(Ping{1}));
  CHECK(r.pings == std::vector<int>{1});
  r.consume = true;
  CHECK(m.trigger(Ping{2}));
  CHECK(r.pings == std::vector<int>{1, 2});
}

TEST_CASE("queue then tick delivers and empties the queue") {
  sage::Manager m;
  Receiver r;
  m.register_actor(r);
  m.queue_message(Ping{1});
  m.queue_message(Ping{2});
  CHECK(m.queue_length() == 2);
  CHECK(r.pings.empty());
  CHECK(m.tick());
  CHECK(r.pings == std::vector<int>{1, 2});
  CHECK(m.queue_length() == 0);
  CHECK(m.stats().queued == 2);
  CHECK(m.stats().dispatched == 2);
}

TEST_CASE("abort_message removes queued messages of one type, all or the first") {
  sage::Manager m;
  Receiver r;
  m.register_actor(r);
  m.queue_message(Ping{1});
  m.queue_message(Pong{2});
  m.queue_message(Ping{3});
  m.queue_message(Ping{4});
  CHECK(m.abort_message<Ping>(false) == 1);
  CHECK(m.queue_length() == 3);
  m.tick();
  CHECK(r.pings == std::vector<int>{3, 4});
  CHECK(r.pongs == std::vector<int>{2});

  m.queue_message(Ping{5});
  m.queue_message(Pong{6});
  m.queue_message(Ping{7});
  CHECK(m.abort_message<Ping>() == 2);
  CHECK(m.abort_message<Ping>() == 0);
  CHECK(m.queue_length() == 1);
  m.tick();
  CHECK(r.pings == std::vector<int>{3, 4});
  CHECK(r.pongs == std::vector<int>{2, 6});
  CHECK(m.stats().aborted == 3);
}

TEST_CASE("messages of two types share one FIFO queue") {
  sage::Manager m;
  std::vector<std::string> order;
  struct Both : sage::Actor<Both, sage::subscribes<Ping, Pong>> {
    std::vector<std::string>* order;
    bool handle(const Ping& p) {
      order->push_back("ping" + std::to_string(p.n));
      return false;
    }
    bool handle(const Pong& p) {
      order->push_back("pong" + std::to_string(p.n));
      return false;
    }
  } both;
  both.order = &order;
  m.register_actor(both);
  m.queue_message(Ping{1});
  m.queue_message(Pong{2});
  m.queue_message(Ping{3});
  m.queue_message(Pong{4});
  m.tick();
  CHECK(order == std::vector<std::string>{"ping1", "pong2", "ping3", "pong4"});
}

TEST_CASE("a slow receiver with max_time leaves the second message for the next tick") {
  sage::Manager m;
  struct Slow : sage::Actor<Slow, sage::subscribes<Ping>> {
    std::vector<int> got;
    bool handle(const Ping& p) {
      got.push_back(p.n);
      std::this_thread::sleep_for(20ms);  // the work that outlasts the budget
      return false;
    }
  } slow;
  m.register_actor(slow);
  m.queue_message(Ping{1});
  m.queue_message(Ping{2});
  CHECK_FALSE(m.tick(5ms));
  CHECK(slow.got == std::vector<int>{1});
  CHECK(m.queue_length() == 1);
  CHECK(m.tick(5ms));
  CHECK(slow.got == std::vector<int>{1, 2});
  CHECK(m.queue_length() == 0);
}

TEST_CASE("5000 messages are delivered in one tick") {
  sage::Manager m;
  Receiver r;
  m.register_actor(r);
  for (int i = 0; i < 5000; ++i) m.queue_message(Ping{i});
  CHECK(m.queue_length() == 5000);
  CHECK(m.tick());
  REQUIRE(r.pings.size() == 5000);
  for (int i = 0; i < 5000; ++i) REQUIRE(r.pings[static_cast<std::size_t>(i)] == i);
  CHECK(m.queue_length() == 0);
}

TEST_CASE("a receiver that queues two messages per message doubles the queue each tick") {
  sage::Manager m;
  struct Doubler : sage::Actor<Doubler, sage::subscribes<Ping>> {
    int received = 0;
    bool handle(const Ping& p) {
      ++received;
      manager()->queue_message(Ping{p.n + 1});
      manager()->queue_message(Ping{p.n + 1});
      return false;
    }
  } d;
  m.register_actor(d);
  m.queue_message(Ping{0});
  for (std::size_t expected = 1; expected <= 1024; expected *= 2) {
    CHECK(m.queue_length() == expected);
    CHECK(m.tick());  // ends: what handlers queue waits for the next tick
    CHECK(m.queue_length() == expected * 2);
  }
  CHECK(d.received == 2047);
}

TEST_CASE("an unregistered receiver gets nothing") {
  sage::Manager m;
  Receiver r;
  const auto id = m.register_actor(r);
  m.queue_message(Ping{1});
  m.unregister_actor(id);
  CHECK_FALSE(r.registered());
  m.tick();
  CHECK_FALSE(m.trigger(Ping{2}));
  CHECK(r.pings.empty());
  CHECK(m.stats().unhandled == 2);
}

TEST_CASE("actors can be registered, found by name and id, and unregistered") {
  sage::Manager m;
  Receiver a, b;
  const auto ida = m.register_actor(a, "a");
  const auto idb = m.register_actor(b);
  CHECK(ida != idb);
  CHECK(ida.group() == 0);
  CHECK(a.id() == ida);
  CHECK(a.name() == "a");
  CHECK(a.manager() == &m);
  CHECK(m.find("a") == &a);
  CHECK(m.find("b") == nullptr);
  CHECK(m.find(idb) == &b);
  CHECK(&m.get_actor(ida) == &a);
  CHECK(m.actors() == std::vector<sage::ActorBase*>{&a, &b});
  CHECK(m.actor_count() == 2);

  m.unregister_actor(a);
  CHECK(m.find("a") == nullptr);
  CHECK(m.find(ida) == nullptr);
  CHECK(a.id() == sage::ActorId{});
  CHECK(m.actors() == std::vector<sage::ActorBase*>{&b});
  const auto again = m.register_actor(a, "a");  // a name is free again once unregistered
  CHECK(again != ida);
  CHECK(m.find("a") == &a);
}

TEST_CASE("registration errors are named exceptions") {
  sage::Manager m, other;
  Receiver a, b;
  m.register_actor(a, "a");
  CHECK_THROWS_AS(m.register_actor(b, "a"), sage::duplicate_actor_name);
  CHECK_FALSE(b.registered());
  CHECK_THROWS_AS(m.register_actor(a), sage::actor_already_registered);
  CHECK_THROWS_AS(other.register_actor(a), sage::actor_already_registered);
  CHECK_THROWS_AS(m.unregister_actor(b), sage::unknown_actor);
  CHECK_THROWS_AS(other.unregister_actor(a), sage::unknown_actor);
  const sage::ActorId nobody = sage::ActorId::make(0, 999999);
  CHECK_THROWS_AS(m.unregister_actor(nobody), sage::unknown_actor);
  CHECK_THROWS_AS(m.get_actor(nobody), sage::unknown_actor);
  CHECK_THROWS_AS(m.queue_message_to_actor(nobody, Ping{}), sage::unknown_actor);
  CHECK_THROWS_AS(m.trigger_to_actor(nobody, Ping{}), sage::unknown_actor);
  CHECK(m.queue_length() == 0);
  try {
    m.get_actor(nobody);
  } catch (const sage::unknown_actor& e) {
    CHECK(e.id() == nobody);
    CHECK(std::string(e.what()).find("999999") != std::string::npos);
  }
}

TEST_CASE("a message queued to one actor reaches only that actor") {
  sage::Manager m;
  Receiver a, b;
  m.register_actor(a);
  const auto idb = m.register_actor(b);
  m.queue_message_to_actor(idb, Ping{7});
  m.tick();
  CHECK(a.pings.empty());
  CHECK(b.pings == std::vector<int>{7});
}

TEST_CASE("a message triggered to one actor reaches only that actor, now") {
  sage::Manager m;
  Receiver a, b;
  m.register_actor(a);
  const auto idb = m.register_actor(b);
  CHECK_FALSE(m.trigger_to_actor(idb, Ping{8}));
  CHECK(b.pings == std::vector<int>{8});
  CHECK(a.pings.empty());
  b.consume = true;
  CHECK(m.trigger_to_actor(idb, Ping{9}));
}

TEST_CASE("an ad hoc message known only by name is delivered to AdHocMessage subscribers") {
  sage::Manager m;
  struct Signals : sage::Actor<Signals, sage::subscribes<sage::AdHocMessage>> {
    std::vector<std::string> names;
    bool handle(const sage::AdHocMessage& s) {
      names.push_back(s.name);
      return s.name == "BombMessage";
    }
  } s;
  const auto id = m.register_actor(s);
  CHECK(m.trigger_to_actor(id, "BombMessage"));
  CHECK_FALSE(m.trigger("Hello"));
  m.queue_message("Queued");
  m.queue_message_to_actor(id, "ToActor");
  m.tick();
  CHECK(s.names == std::vector<std::string>{"BombMessage", "Hello", "Queued", "ToActor"});
}

TEST_CASE("an ad hoc message named like a known schema message is rejected") {
  sage::Manager m;
  struct Signals : sage::Actor<Signals, sage::subscribes<sage::AdHocMessage>> {
    bool handle(const sage::AdHocMessage&) { return true; }
  } s;
  const auto id = m.register_actor(s);
  CHECK_FALSE(m.is_schema_name("game.BombMessage"));
  CHECK(m.trigger_to_actor(id, "BombMessage"));  // no schema message of that name is known yet

  m.queue_message(SchemaBomb{3});  // now the manager has seen the schema type
  CHECK(m.is_schema_name("game.BombMessage"));
  CHECK(m.is_schema_name("BombMessage"));
  CHECK_THROWS_AS(m.trigger_to_actor(id, "BombMessage"), sage::ad_hoc_name_conflict);
  CHECK_THROWS_AS(m.trigger("game.BombMessage"), sage::ad_hoc_name_conflict);
  CHECK_THROWS_AS(m.queue_message("BombMessage"), sage::ad_hoc_name_conflict);
  CHECK(m.queue_length() == 1);
  try {
    m.trigger("BombMessage");
  } catch (const sage::usage_error& e) {
    CHECK(std::string(e.what()).find("schema message") != std::string::npos);
  }
  // Plain structs are not schema messages: their names stay usable.
  CHECK_FALSE(m.is_schema_name(sage::name_of<Ping>()));

  sage::Manager fresh;  // declared up front, before any use
  fresh.declare_messages(sage::type_list<SchemaBomb>{});
  CHECK_THROWS_AS(fresh.trigger("BombMessage"), sage::ad_hoc_name_conflict);
}

// ---------------------------------------------------------------- priorities and consumption

TEST_CASE("update runs once per tick, higher priority first, registration order among equals") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger low(log, "low"), a(log, "a"), b(log, "b"), high(log, "high");
  low.set_priority(-5);
  high.set_priority(10);
  m.register_actor(low);
  m.register_actor(a);
  m.register_actor(b);
  m.register_actor(high);
  m.tick();
  CHECK(log == std::vector<std::string>{"high", "a", "b", "low"});
  log.clear();
  b.set_priority(20);  // while registered: takes effect at once outside a dispatch
  m.tick();
  CHECK(log == std::vector<std::string>{"b", "high", "a", "low"});
}

TEST_CASE("a handler returning true stops propagation, subscribers are called in priority order") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger first(log, "first"), consumer(log, "consumer", true), never(log, "never");
  consumer.set_priority(1);
  first.set_priority(2);
  m.register_actor(never);
  m.register_actor(consumer);
  m.register_actor(first);
  CHECK(m.trigger(Ping{1}));
  CHECK(log == std::vector<std::string>{"first:1", "consumer:1"});
}

TEST_CASE("a wildcard subscriber sees every message, consumed or not, and cannot consume") {
  sage::Manager m;
  struct Spy : sage::Actor<Spy, sage::subscribes<sage::AnyMessage>> {
    std::vector<std::string> names;
    std::vector<sage::ActorId> targets;
    void handle_any(const sage::AnyMessageRef& msg) {
      names.emplace_back(msg.name());
      targets.push_back(msg.target());
      if (const Ping* p = msg.get<Ping>()) CHECK(p->n == 1);
      CHECK(msg.get<Pong>() == nullptr);
    }
  } spy;
  Receiver r;
  r.consume = true;
  m.register_actor(spy);
  m.register_actor(r);
  CHECK(m.trigger(Ping{1}));
  CHECK_FALSE(m.trigger(SchemaBomb{}));  // nobody handles it: the spy does not count
  CHECK(m.stats().unhandled == 1);
  CHECK(spy.names == std::vector<std::string>{std::string(sage::name_of<Ping>()), "game.BombMessage"});
  CHECK(r.pings == std::vector<int>{1});
}

TEST_CASE("handlers may take the sender, and local messages come from Sender::local()") {
  sage::Manager m;
  struct WithSender : sage::Actor<WithSender, sage::subscribes<Ping>> {
    std::vector<sage::Sender> from;
    bool handle(const Ping&, const sage::Sender& s) {
      from.push_back(s);
      return false;
    }
  } w;
  m.register_actor(w);
  m.trigger(Ping{});
  m.queue_message(Ping{});
  m.queue_message_from(Ping{}, sage::Sender::group(2));
  m.queue_message_to_actor_from(w.id(), Ping{}, sage::Sender::peer(9));
  m.tick();
  CHECK(w.from == std::vector<sage::Sender>{sage::Sender::local(), sage::Sender::local(), sage::Sender::group(2),
                                            sage::Sender::peer(9)});
  CHECK(w.from[2].kind == sage::Sender::Kind::group);
  CHECK(w.from[2].index == 2);
}

// ---------------------------------------------------------------- unhandled messages

TEST_CASE("a message nobody subscribed to is dropped, counted and shown to the dead-letter hook") {
  sage::Manager m;
  Receiver r;  // subscribes to Ping and Pong only
  const auto id = m.register_actor(r);
  struct Stray {
    int n = 0;
  };
  std::vector<std::string> dead;
  m.set_dead_letter_handler([&](const sage::AnyMessageRef& msg) {
    dead.push_back(std::string(msg.name()) + (msg.target() ? " to actor" : ""));
  });
  m.queue_message(Stray{1});
  m.queue_message_to_actor(id, Stray{2});  // the actor does not handle Stray
  m.tick();
  CHECK_FALSE(m.trigger(Stray{3}));
  CHECK(m.stats().unhandled == 3);
  const std::string stray(sage::name_of<Stray>());
  CHECK(dead == std::vector<std::string>{stray, stray + " to actor", stray});

  m.queue_message_to_actor(id, Ping{4});
  m.unregister_actor(id);  // gone before the tick: a dead letter too
  m.tick();
  CHECK(m.stats().unhandled == 4);
  CHECK(r.pings.empty());
}

// ---------------------------------------------------------------- delivery timing and budget

TEST_CASE("messages queued while a tick dispatches are delivered at the following tick") {
  sage::Manager m;
  struct Echo : sage::Actor<Echo, sage::subscribes<Ping>> {
    std::vector<int> got;
    bool handle(const Ping& p) {
      got.push_back(p.n);
      if (p.n < 3) manager()->queue_message(Ping{p.n + 1});
      return false;
    }
  } e;
  m.register_actor(e);
  m.queue_message(Ping{1});
  m.tick();
  CHECK(e.got == std::vector<int>{1});
  m.tick();
  CHECK(e.got == std::vector<int>{1, 2});
  m.tick();
  m.tick();
  CHECK(e.got == std::vector<int>{1, 2, 3});
}

TEST_CASE("a budgeted tick dispatches at least one message and keeps the rest in order ahead of newer ones") {
  sage::Manager m;
  struct Slow : sage::Actor<Slow, sage::subscribes<Ping>> {
    std::vector<int> got;
    bool handle(const Ping& p) {
      got.push_back(p.n);
      std::this_thread::sleep_for(2ms);
      return false;
    }
  } slow;
  m.register_actor(slow);
  for (int i = 0; i < 4; ++i) m.queue_message(Ping{i});
  CHECK_FALSE(m.tick(0ns));  // an empty budget still dispatches one
  CHECK(slow.got == std::vector<int>{0});
  m.queue_message(Ping{10});  // newer than the leftovers
  CHECK_FALSE(m.tick(0ns));
  CHECK(slow.got == std::vector<int>{0, 1});
  CHECK(m.queue_length() == 3);
  CHECK(m.tick());  // no budget: drains all that was queued before it
  CHECK(slow.got == std::vector<int>{0, 1, 2, 3, 10});
  CHECK(m.tick(1h));
}

TEST_CASE("tick with an empty queue returns true and still updates actors") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger l(log, "l");
  m.register_actor(l);
  CHECK(m.tick());
  CHECK(m.tick(1ms));
  CHECK(log == std::vector<std::string>{"l", "l"});
}

TEST_CASE("tick called from inside a tick is refused") {
  sage::Manager m;
  struct Ticker : sage::Actor<Ticker, sage::subscribes<Ping>> {
    bool handle(const Ping&) {
      CHECK_THROWS_AS(manager()->tick(), sage::reentrant_tick);
      return true;
    }
  } t;
  m.register_actor(t);
  m.queue_message(Ping{});
  m.tick();
  CHECK(m.stats().dispatched == 1);
}

// ---------------------------------------------------------------- handler exceptions

TEST_CASE("a throwing handler propagates out of tick and leaves the rest of the queue in order") {
  sage::Manager m;
  struct Fussy : sage::Actor<Fussy, sage::subscribes<Ping>> {
    std::vector<int> got;
    bool handle(const Ping& p) {
      got.push_back(p.n);
      if (p.n == 2) throw std::runtime_error("bad ping");
      return false;
    }
  } f;
  Receiver later;  // registered after f: skipped for the message that threw
  m.register_actor(f);
  m.register_actor(later);
  for (int i = 1; i <= 4; ++i) m.queue_message(Ping{i});
  CHECK_THROWS_WITH_AS(m.tick(), "bad ping", std::runtime_error);
  CHECK(f.got == std::vector<int>{1, 2});
  CHECK(later.pings == std::vector<int>{1});
  CHECK(m.queue_length() == 2);  // the throwing message counts as delivered
  m.queue_message(Ping{5});
  CHECK(m.tick());
  CHECK(f.got == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(later.pings == std::vector<int>{1, 3, 4, 5});
  CHECK_THROWS_AS(m.trigger(Ping{2}), std::runtime_error);
  CHECK(m.trigger(Ping{6}) == false);  // still usable
}

TEST_CASE("a throwing update propagates out of tick and the next tick runs normally") {
  sage::Manager m;
  struct Boom : sage::Actor<Boom> {
    int calls = 0;
    void update() override {
      if (++calls == 1) throw std::runtime_error("update failed");
    }
  } boom;
  m.register_actor(boom);
  CHECK_THROWS_AS(m.tick(), std::runtime_error);
  CHECK(m.tick());
  CHECK(boom.calls == 2);
}

// ---------------------------------------------------------------- message lifetime

TEST_CASE("queued messages that own memory are moved in, destroyed after delivery, on abort and with the manager") {
  Tracked::live = 0;
  {
    sage::Manager m;
    TrackedReceiver r;
    m.register_actor(r);
    m.queue_message(Tracked(1));
    Tracked lvalue(2);
    m.queue_message(lvalue);  // copied
    CHECK(Tracked::live == 3);
    m.tick();
    CHECK(r.got == std::vector<int>{1, 2});
    CHECK(Tracked::live == 1);
    m.queue_message(Tracked(3));
    m.queue_message(Tracked(4));
    CHECK(m.abort_message<Tracked>(false) == 1);
    CHECK(Tracked::live == 2);
    for (int i = 0; i < 10000; ++i) m.queue_message(Tracked(i));  // several chunks, left queued
    CHECK(Tracked::live == 10002);
  }
  CHECK(Tracked::live == 0);
}

TEST_CASE("large and over-aligned messages are queued intact") {
  struct Big {
    std::array<std::uint32_t, 50000> values{};  // larger than one queue chunk
  };
  struct Text {
    std::string s;
  };
  struct alignas(16) Wide {
    double a = 0, b = 0;
  };
  struct Sink : sage::Actor<Sink, sage::subscribes<Big, Wide, Text>> {
    std::uint64_t sum = 0;
    int wides = 0;
    std::vector<std::string> strings;
    bool handle(const Big& b) {
      for (auto v : b.values) sum += v;
      return true;
    }
    bool handle(const Wide& w) {
      CHECK(reinterpret_cast<std::uintptr_t>(&w) % 16 == 0);
      wides += static_cast<int>(w.a + w.b);
      return true;
    }
    bool handle(const Text& t) {
      strings.push_back(t.s);
      return true;
    }
  } sink;
  sage::Manager m;
  m.register_actor(sink);
  auto big = std::make_unique<Big>();
  for (std::uint32_t i = 0; i < big->values.size(); ++i) big->values[i] = i;
  m.queue_message(Wide{1, 2});
  m.queue_message(*big);
  m.queue_message(Wide{3, 4});
  m.queue_message_from(Text{std::string(100, 'x')}, sage::Sender::local());
  m.tick();
  CHECK(sink.sum == std::uint64_t{49999} * 50000 / 2);
  CHECK(sink.wides == 10);
  CHECK(sink.strings == std::vector<std::string>{std::string(100, 'x')});
}

// ---------------------------------------------------------------- coroutines

namespace {
struct TimeBomb {
  int ticks = 0;
};
struct Defuser : sage::Actor<Defuser, sage::subscribes<TimeBomb, Ping>> {
  std::vector<std::string>* log;
  sage::Task handle(TimeBomb bomb) {
    log->push_back("armed " + std::to_string(bomb.ticks));
    while (bomb.ticks > 0) {
      co_await sage::next_tick();
      log->push_back("tick " + std::to_string(--bomb.ticks));
    }
    if (bomb.ticks < 0) throw std::runtime_error("impossible");
    log->push_back("boom");
  }
  bool handle(const Ping&) { return true; }
  void update() override { log->push_back("update"); }
};
}  // namespace

TEST_CASE("a coroutine handler resumes once per tick, after dispatch and before update") {
  sage::Manager m;
  std::vector<std::string> log;
  Defuser d;
  d.log = &log;
  m.register_actor(d);
  m.queue_message(TimeBomb{2});
  m.tick();
  CHECK(log == std::vector<std::string>{"armed 2", "update"});
  CHECK(m.suspended_coroutines() == 1);
  m.tick();
  m.tick();
  CHECK(log == std::vector<std::string>{"armed 2", "update", "tick 1", "update", "tick 0", "boom", "update"});
  CHECK(m.suspended_coroutines() == 0);
}

TEST_CASE("a coroutine handler does not consume its message") {
  sage::Manager m;
  std::vector<std::string> log;
  Defuser d;
  d.log = &log;
  struct Watch : sage::Actor<Watch, sage::subscribes<TimeBomb>> {
    int seen = 0;
    bool handle(const TimeBomb&) {
      ++seen;
      return true;
    }
  } w;
  m.register_actor(d);
  m.register_actor(w);
  CHECK(m.trigger(TimeBomb{0}));  // the coroutine finished at once; Watch consumed
  CHECK(w.seen == 1);
  CHECK(log == std::vector<std::string>{"armed 0", "boom"});
}

TEST_CASE("unregistering an actor destroys its suspended coroutines") {
  sage::Manager m;
  std::vector<std::string> log;
  Defuser d;
  d.log = &log;
  m.register_actor(d);
  m.trigger(TimeBomb{5});
  m.trigger(TimeBomb{5});
  CHECK(m.suspended_coroutines() == 2);
  m.unregister_actor(d);
  CHECK(m.suspended_coroutines() == 0);
  m.tick();
  CHECK(log == std::vector<std::string>{"armed 5", "armed 5"});
}

TEST_CASE("a manager destroyed with queued messages and suspended coroutines leaks nothing") {
  Tracked::live = 0;
  std::vector<std::string> log;
  Defuser d;
  d.log = &log;
  TrackedReceiver r;
  {
    sage::Manager m;
    m.register_actor(d, "d");
    m.register_actor(r);
    m.trigger(TimeBomb{100});
    m.queue_message(Tracked(1));
    m.queue_message(TimeBomb{3});
    CHECK(m.suspended_coroutines() == 1);
  }
  CHECK(Tracked::live == 0);
  CHECK_FALSE(d.registered());  // actors outlive the manager, unregistered
  CHECK(d.manager() == nullptr);
}

TEST_CASE("an exception thrown by a coroutine propagates out of tick") {
  sage::Manager m;
  struct Fails : sage::Actor<Fails, sage::subscribes<Ping>> {
    sage::Task handle(Ping p) {
      co_await sage::next_tick();
      if (p.n == 1) throw std::runtime_error("coroutine failed");
    }
  } f;
  m.register_actor(f);
  m.trigger(Ping{1});
  m.trigger(Ping{2});
  CHECK_THROWS_WITH_AS(m.tick(), "coroutine failed", std::runtime_error);
  CHECK(m.suspended_coroutines() == 1);  // the second was not resumed yet
  CHECK(m.tick());
  CHECK(m.suspended_coroutines() == 0);
}

// ---------------------------------------------------------------- mutation during dispatch

TEST_CASE("an actor registered by a handler receives messages from the next one dispatched") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger late(log, "late");
  struct Spawner : sage::Actor<Spawner, sage::subscribes<Ping>> {
    Logger* late;
    std::vector<std::string>* log;
    bool handle(const Ping& p) {
      log->push_back("spawner:" + std::to_string(p.n));
      if (p.n == 1) {
        manager()->register_actor(*late, "late");
        CHECK(manager()->find("late") == late);  // findable at once
        CHECK_FALSE(manager()->trigger(Ping{100}));  // nested dispatch: late is not in the lists yet
      }
      return false;
    }
    void update() override {}
  } spawner;
  spawner.late = &late;
  spawner.log = &log;
  m.register_actor(spawner);
  m.queue_message(Ping{1});
  m.queue_message(Ping{2});
  m.tick();
  CHECK(log == std::vector<std::string>{"spawner:1", "spawner:100", "spawner:2", "late:2", "late"});
}

TEST_CASE("an actor unregistered during a dispatch receives nothing further, even of the current message") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger victim(log, "victim");
  struct Killer : sage::Actor<Killer, sage::subscribes<Ping>> {
    sage::ActorBase* victim;
    bool handle(const Ping&) {
      if (victim->registered()) manager()->unregister_actor(*victim);
      return false;
    }
  } killer;
  killer.victim = &victim;
  killer.set_priority(1);  // runs before the victim
  m.register_actor(victim);
  m.register_actor(killer);
  m.queue_message(Ping{1});
  m.queue_message(Ping{2});
  m.tick();
  CHECK(log.empty());
  CHECK_FALSE(victim.registered());
}

TEST_CASE("an actor may unregister and destroy itself inside its own handler") {
  sage::Manager m;
  std::vector<std::string> log;
  struct Once : sage::Actor<Once, sage::subscribes<Ping>> {
    std::vector<std::string>* log;
    bool handle(const Ping&) {
      log->push_back("once");
      delete this;  // ~ActorBase unregisters it
      return false;
    }
  };
  auto* once = new Once;
  once->log = &log;
  Logger after(log, "after");
  m.register_actor(*once);
  m.register_actor(after);
  m.queue_message(Ping{1});
  m.queue_message(Ping{2});
  m.tick();
  CHECK(log == std::vector<std::string>{"once", "after:1", "after:2", "after"});
  CHECK(m.actor_count() == 1);
}

TEST_CASE("an actor registered in update() is first updated at the next tick") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger child(log, "child");
  struct Parent : sage::Actor<Parent> {
    Logger* child;
    std::vector<std::string>* log;
    void update() override {
      log->push_back("parent");
      if (!child->registered()) manager()->register_actor(*child);
    }
  } parent;
  parent.child = &child;
  parent.log = &log;
  parent.set_priority(1);
  m.register_actor(parent);
  m.tick();
  CHECK(log == std::vector<std::string>{"parent"});
  m.tick();
  CHECK(log == std::vector<std::string>{"parent", "parent", "child"});
}

TEST_CASE("an actor unregistered in update() by an earlier actor is not updated") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger victim(log, "victim");
  struct Killer : sage::Actor<Killer> {
    sage::ActorBase* victim;
    void update() override {
      if (victim->registered()) manager()->unregister_actor(*victim);
    }
  } killer;
  killer.victim = &victim;
  killer.set_priority(1);
  m.register_actor(victim);
  m.register_actor(killer);
  m.tick();
  CHECK(log.empty());
}

TEST_CASE("a priority changed during a dispatch takes effect when the dispatch finishes") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger a(log, "a"), b(log, "b");
  struct Promoter : sage::Actor<Promoter, sage::subscribes<Ping>> {
    sage::ActorBase* b;
    bool handle(const Ping&) {
      b->set_priority(5);
      return false;
    }
  } promoter;
  promoter.b = &b;
  promoter.set_priority(10);
  m.register_actor(promoter);
  m.register_actor(a);
  m.register_actor(b);
  m.trigger(Ping{1});
  m.trigger(Ping{2});
  CHECK(log == std::vector<std::string>{"a:1", "b:1", "b:2", "a:2"});
}

TEST_CASE("destroying a registered actor unregisters it") {
  sage::Manager m;
  {
    Receiver r;
    m.register_actor(r, "r");
    CHECK(m.actor_count() == 1);
  }
  CHECK(m.actor_count() == 0);
  CHECK(m.find("r") == nullptr);
  CHECK_FALSE(m.trigger(Ping{}));
}

// ---------------------------------------------------------------- managers, ids, pumps

TEST_CASE("managers are independent and ids are unique in the process and name the group") {
  sage::Manager a, b(sage::ManagerOptions{.group = 7});
  Receiver ra, rb;
  const auto ida = a.register_actor(ra, "same");
  const auto idb = b.register_actor(rb, "same");  // names are per manager
  CHECK(ida != idb);
  CHECK(ida.group() == 0);
  CHECK(idb.group() == 7);
  CHECK(b.group() == 7);
  CHECK(a.find(idb) == nullptr);
  a.queue_message(Ping{1});
  CHECK(b.queue_length() == 0);
  b.tick();
  CHECK(ra.pings.empty());
  a.tick();
  CHECK(ra.pings == std::vector<int>{1});
  CHECK(rb.pings.empty());
  CHECK(&sage::default_manager() == &sage::default_manager());
}

namespace {
struct FakeWire : sage::detail::Pump {  // a real Pump implementation over an in-process inbox
  std::vector<int> inbox;
  std::vector<std::string>* log;
  bool fail_poll = false;
  std::chrono::steady_clock::time_point due = std::chrono::steady_clock::time_point::max();
  void poll(sage::Manager& m) override {
    if (fail_poll) throw std::runtime_error("group failed");
    log->push_back("poll");
    for (int n : inbox) m.queue_message_from(Ping{n}, sage::Sender::group(1));
    inbox.clear();
  }
  void flush(sage::Manager&) override { log->push_back("flush"); }
  std::chrono::steady_clock::time_point next_deadline() const override { return due; }
};
}  // namespace

TEST_CASE("pumps poll before dispatch and flush after update, and their exceptions propagate") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger l(log, "update");
  m.register_actor(l);
  auto wire = std::make_unique<FakeWire>();
  FakeWire& w = *wire;
  w.log = &log;
  using Access = sage::detail::ManagerAccess;
  Access::add_pump(m, std::move(wire));
  w.inbox = {1, 2};
  m.tick();
  CHECK(log == std::vector<std::string>{"poll", "update:1", "update:2", "update", "flush"});

  CHECK_FALSE(m.wait_for_next_tick(1ms));
  w.inbox = {3};
  Access::waker(m).notify();        // what a transport does when something arrived
  CHECK(m.wait_for_next_tick(1h));  // returns at once: something arrived
  w.due = std::chrono::steady_clock::now() + 5ms;
  CHECK_FALSE(m.wait_for_next_tick(1h));  // a pump's timer ends the wait (nothing arrived)
  CHECK(std::chrono::steady_clock::now() >= w.due);
  w.due = std::chrono::steady_clock::time_point::max();

  w.fail_poll = true;
  m.queue_message(Ping{4});
  CHECK_THROWS_WITH_AS(m.tick(), "group failed", std::runtime_error);
  CHECK(m.queue_length() == 1);
  w.fail_poll = false;
  log.clear();
  m.tick();
  CHECK(log == std::vector<std::string>{"poll", "update:4", "update:3", "update", "flush"});
  Access::remove_pump(m, w);
  log.clear();
  m.tick();
  CHECK(log == std::vector<std::string>{"update"});
}

TEST_CASE("run ticks at the interval until stop returns true") {
  sage::Manager m;
  std::vector<std::string> log;
  Logger l(log, "u");
  m.register_actor(l);
  const auto start = std::chrono::steady_clock::now();
  int ticks = 0;
  m.run(2ms, [&] { return ++ticks == 5; });
  CHECK(log.size() == 5);
  CHECK(std::chrono::steady_clock::now() - start >= 8ms);  // four waits between five ticks
}

TEST_CASE("a handler can abort messages queued behind it in the same tick") {
  sage::Manager m;
  struct Aborter : sage::Actor<Aborter, sage::subscribes<Ping, Pong>> {
    std::vector<int> pings, pongs;
    std::vector<std::size_t> aborted;
    bool handle(const Ping& p) {
      pings.push_back(p.n);
      aborted.push_back(manager()->abort_message<Pong>());
      return false;
    }
    bool handle(const Pong& p) {
      pongs.push_back(p.n);
      return false;
    }
  } a;
  m.register_actor(a);
  m.queue_message(Pong{1});
  m.queue_message(Ping{2});
  m.queue_message(Pong{3});
  m.queue_message(Ping{4});
  m.queue_message(Pong{5});
  CHECK(m.tick());
  CHECK(a.pongs == std::vector<int>{1});
  CHECK(a.pings == std::vector<int>{2, 4});
  CHECK(a.aborted == std::vector<std::size_t>{2, 0});  // Pong 3 and 5, then nothing left
  CHECK(m.queue_length() == 0);
}

TEST_CASE("a message that owns memory is destroyed even when its handler throws") {
  Tracked::live = 0;
  sage::Manager m;
  struct Thrower : sage::Actor<Thrower, sage::subscribes<Tracked>> {
    bool handle(const Tracked&) { throw std::runtime_error("no"); }
  } t;
  m.register_actor(t);
  m.queue_message(Tracked(1));
  m.queue_message(Tracked(2));
  CHECK_THROWS_AS(m.tick(), std::runtime_error);
  CHECK(Tracked::live == 1);  // the second is still queued
  CHECK_THROWS_AS(m.tick(), std::runtime_error);
  CHECK(Tracked::live == 0);
  CHECK(m.queue_length() == 0);
}

TEST_CASE("a message to one actor is seen by that actor's wildcard handler only") {
  sage::Manager m;
  struct Spy : sage::Actor<Spy, sage::subscribes<sage::AnyMessage, Ping>> {
    int seen = 0, pings = 0;
    void handle_any(const sage::AnyMessageRef&) { ++seen; }
    bool handle(const Ping&) {
      ++pings;
      return true;
    }
  } a, b;
  m.register_actor(a);
  const auto idb = m.register_actor(b);
  CHECK(m.trigger_to_actor(idb, Ping{}));
  CHECK(a.seen == 0);
  CHECK(b.seen == 1);
  CHECK(b.pings == 1);
  CHECK(a.pings == 0);
}

TEST_CASE("a wildcard subscriber registered or unregistered by a handler counts from the next message of the tick") {
  sage::Manager m;
  struct Spy : sage::Actor<Spy, sage::subscribes<sage::AnyMessage>> {
    std::vector<int> seen;
    void handle_any(const sage::AnyMessageRef& msg) {
      if (const Ping* p = msg.get<Ping>()) seen.push_back(p->n);
    }
  } spy;
  struct Switch : sage::Actor<Switch, sage::subscribes<Ping>> {
    Spy* spy;
    bool handle(const Ping& p) {
      if (p.n == 2) manager()->register_actor(*spy);
      if (p.n == 4) manager()->unregister_actor(*spy);
      return false;
    }
  } sw;
  sw.spy = &spy;
  m.register_actor(sw);
  for (int i = 1; i <= 5; ++i) m.queue_message(Ping{i});
  m.tick();
  CHECK(spy.seen == std::vector<int>{3, 4});
}

// A record's layout depends on its message's size and alignment and on whether it has a target:
// a mix of them, over many chunks, comes out in order, intact, to the right actors, and
// queue_length(), abort_message() and the stats stay exact from inside handlers.
TEST_CASE("targeted, broadcast, small and over-aligned messages keep order and content across queue chunks") {
  struct alignas(16) Wide {
    double a = 0, b = 0;
  };
  struct Tiny {
    std::uint8_t n = 0;
  };
  struct Odd {
    std::array<char, 13> bytes{};
    int n = 0;
  };
  struct Sink : sage::Actor<Sink, sage::subscribes<Ping, Wide, Tiny, Odd>> {
    std::vector<std::string>* log;
    std::string tag;
    bool handle(const Ping& p) {
      log->push_back(tag + "p" + std::to_string(p.n));
      return false;
    }
    bool handle(const Wide& w) {
      CHECK(reinterpret_cast<std::uintptr_t>(&w) % 16 == 0);
      CHECK(w.b == w.a + 0.5);
      log->push_back(tag + "w" + std::to_string(static_cast<int>(w.a)));
      return false;
    }
    bool handle(const Tiny& t) {
      log->push_back(tag + "t" + std::to_string(t.n));
      return false;
    }
    bool handle(const Odd& o) {
      CHECK(o.bytes[12] == static_cast<char>(o.n % 100));
      log->push_back(tag + "o" + std::to_string(o.n));
      return false;
    }
  };
  std::vector<std::string> log, expected;
  Sink a, b;
  a.log = b.log = &log;
  a.tag = "a";
  b.tag = "b";
  sage::Manager m;
  const sage::ActorId ida = m.register_actor(a);
  m.register_actor(b);
  constexpr int n = 6000;  // about 250 KiB of records: several 64 KiB chunks
  for (int i = 0; i < n; ++i) {
    const std::string s = std::to_string(i);
    switch (i % 5) {
      case 0:
        m.queue_message(Ping{i});
        expected.insert(expected.end(), {"ap" + s, "bp" + s});
        break;
      case 1:
        m.queue_message_to_actor(ida, Wide{static_cast<double>(i), i + 0.5});
        expected.push_back("aw" + s);
        break;
      case 2:
        m.queue_message(Wide{static_cast<double>(i), i + 0.5});
        expected.insert(expected.end(), {"aw" + s, "bw" + s});
        break;
      case 3: {
        Odd o;
        o.n = i;
        o.bytes[12] = static_cast<char>(i % 100);
        m.queue_message_to_actor(ida, o);
        expected.push_back("ao" + s);
        break;
      }
      default:
        m.queue_message_to_actor(ida, Tiny{static_cast<std::uint8_t>(i % 256)});
        expected.push_back("at" + std::to_string(i % 256));
        break;
    }
  }
  CHECK(m.queue_length() == n);
  CHECK(m.stats().queued == n);
  m.tick();
  CHECK(log == expected);
  CHECK(m.queue_length() == 0);
  CHECK(m.stats().dispatched == n);
  CHECK(m.stats().unhandled == 0);

  // Again, with a handler halfway through that checks the queue and aborts what is left of one type.
  struct Midway : sage::Actor<Midway, sage::subscribes<Pong>> {
    std::size_t length = 0, aborted = 0;
    std::uint64_t dispatched = 0;
    bool handle(const Pong&) {
      length = manager()->queue_length();
      dispatched = manager()->stats().dispatched;
      aborted = manager()->abort_message<Wide>();
      return true;
    }
  } midway;
  m.register_actor(midway);
  log.clear();
  for (int i = 0; i < n; ++i) {
    if (i == n / 2) m.queue_message(Pong{});
    if (i % 2 == 0)
      m.queue_message(Ping{i});
    else
      m.queue_message(Wide{static_cast<double>(i), i + 0.5});
  }
  m.tick();
  CHECK(midway.length == n / 2);   // the second half, not the Pong itself
  CHECK(midway.dispatched == n);   // a tick counts what it dispatched when its dispatch step ends
  CHECK(midway.aborted == n / 4);  // the Wides of the second half
  CHECK(log.size() == 2 * (n / 2 + n / 4));  // both sinks: the first half, then the Pings of the second
  CHECK(m.stats().dispatched == n + n / 2 + 1 + n / 4);
  CHECK(m.stats().aborted == n / 4);
  CHECK(m.queue_length() == 0);
}

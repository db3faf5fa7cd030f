// View handlers, handle(const T::View&) (sage/actor.hpp, sage/view.hpp): messages from a process
// group read in place, local messages encoded once, order and consumption beside value handlers.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sage/manager.hpp"
#include "views.sage.hpp"
#include "waiting.hpp"

using feat::views::Everything;
using feat::views::Tag;
using sage::Manager;
using sage::test_support::tick_until;

namespace {

Everything sample(int n) {
  Everything m;
  m.small = static_cast<std::int8_t>(n);
  m.maybe = n * 10;
  m.title = "message " + std::to_string(n);
  m.must = Tag{"required " + std::to_string(n), n};
  m.payload = Tag{"in the union", n + 1};
  for (int i = 0; i < 1000; ++i) m.numbers.push_back(i + n);
  m.words = {"a", std::string(500, 'w')};
  m.tags = {Tag{"t", 1}, Tag{"u", 2}};
  return m;
}

// Copies out what it reads through the view, field by field (and the whole value).
struct ViewReader : sage::Actor<ViewReader, sage::subscribes<Everything>> {
  std::vector<Everything> got;
  std::vector<std::string> titles;
  std::vector<std::int64_t> sums;
  std::vector<sage::Sender> senders;
  std::vector<std::string>* order = nullptr;
  bool consume = false;
  bool handle(const Everything::View& m, const sage::Sender& from) {
    got.push_back(m.to_value());
    titles.emplace_back(m.title());
    std::int64_t sum = 0;
    for (const std::int32_t n : m.numbers()) sum += n;
    sums.push_back(sum);
    senders.push_back(from);
    if (order) order->push_back("view");
    return consume;
  }
};

struct ValueReader : sage::Actor<ValueReader, sage::subscribes<Everything>> {
  std::vector<Everything> got;
  std::vector<std::string>* order = nullptr;
  bool consume = true;
  bool handle(const Everything& m) {
    got.push_back(m);
    if (order) order->push_back("value");
    return consume;
  }
};

struct Watcher : sage::Actor<Watcher, sage::subscribes<sage::AnyMessage>> {
  std::vector<std::string> names;
  void handle_any(const sage::AnyMessageRef& m) { names.emplace_back(m.name()); }
};

// In a child: sends three Everything to the main group.
struct SendsEverything : sage::Actor<SendsEverything> {
  bool sent = false;
  void update() override {
    if (sent) return;
    for (int n = 0; n < 3; ++n) manager()->queue_message_to_group(sage::main_group, sample(n));
    sent = true;
  }
};

// In a child: answers each Everything with one whose title is the received title read through a
// view, and whose `small` is the sum of the numbers modulo 100.
struct EchoesFromView : sage::Actor<EchoesFromView, sage::subscribes<Everything>> {
  bool handle(const Everything::View& m, const sage::Sender& from) {
    Everything reply;
    reply.title = std::string("echo: ") + std::string(m.title());
    std::int64_t sum = 0;
    for (const std::int32_t n : m.numbers()) sum += n;
    reply.small = static_cast<std::int8_t>(sum % 100);
    reply.must.label = std::string(m.must().label());
    manager()->queue_message_to_group(from, reply);
    return true;
  }
};

std::int64_t sum_of(const Everything& m) {
  std::int64_t s = 0;
  for (const auto n : m.numbers) s += n;
  return s;
}

}  // namespace

TEST_CASE("a View handler receives messages from a process group and reads every field in place") {
  Manager mgr;
  mgr.enable_groups();
  ViewReader views;
  mgr.register_actor(views);  // registers Everything's decoder: no register_messages needed
  mgr.add_process_group<SendsEverything>("sender");
  REQUIRE(tick_until(mgr, [&] { return views.got.size() == 3; }));
  for (int n = 0; n < 3; ++n) {
    const auto i = static_cast<std::size_t>(n);
    CHECK(views.got[i] == sample(n));
    CHECK(views.titles[i] == "message " + std::to_string(n));
    CHECK(views.sums[i] == sum_of(sample(n)));
    CHECK(views.senders[i].kind == sage::Sender::Kind::group);
  }
}

TEST_CASE("a View handler in a child reads what the main group sent and answers from the view") {
  Manager mgr;
  mgr.enable_groups();
  ValueReader replies;
  mgr.register_actor(replies);
  mgr.add_process_group<EchoesFromView>("echo");
  mgr.queue_message_to_group("echo", sample(7));
  REQUIRE(tick_until(mgr, [&] { return !replies.got.empty(); }));
  CHECK(replies.got[0].title == "echo: message 7");
  CHECK(replies.got[0].small == sum_of(sample(7)) % 100);
  CHECK(replies.got[0].must.label == "required 7");
}

TEST_CASE("a group message reaches value handlers first, then view handlers, even when consumed") {
  Manager mgr;
  mgr.enable_groups();
  std::vector<std::string> order;
  ViewReader views;
  ValueReader values;
  views.order = values.order = &order;
  views.set_priority(10);  // priorities order each list; the value list still runs first
  mgr.register_actor(views);
  mgr.register_actor(values);
  mgr.add_process_group<SendsEverything>("sender");
  REQUIRE(tick_until(mgr, [&] { return views.got.size() == 3 && values.got.size() == 3; }));
  CHECK(order == std::vector<std::string>{"value", "view", "value", "view", "value", "view"});
  CHECK(views.got == values.got);
}

TEST_CASE("a local queue_message is encoded once for view handlers and queued as a value only for value takers") {
  Manager mgr;
  ViewReader views;
  Watcher watcher;
  mgr.register_actor(views);
  mgr.register_actor(watcher);
  mgr.queue_message(sample(1));
  CHECK(mgr.queue_length() == 2);  // the value (for the wildcard) and its bytes (for the view)
  mgr.tick();
  REQUIRE(views.got.size() == 1);
  CHECK(views.got[0] == sample(1));
  CHECK(views.senders[0].kind == sage::Sender::Kind::local);
  // The wildcard saw the message once, as the value, never the bytes.
  CHECK(watcher.names == std::vector<std::string>{"feat.views.Everything"});

  mgr.unregister_actor(watcher);
  mgr.queue_message(sample(2));
  CHECK(mgr.queue_length() == 1);  // only the bytes: nobody takes the value
  mgr.tick();
  CHECK(views.got.size() == 2);
}

TEST_CASE("trigger and queue_message_to_actor reach a view handler, and abort_message removes both forms") {
  Manager mgr;
  ViewReader views;
  ValueReader values;
  mgr.register_actor(views);
  mgr.register_actor(values);
  CHECK(views.subscribes_to<Everything>());
  views.consume = true;
  CHECK(mgr.trigger(sample(3)));
  CHECK(views.got.size() == 1);
  CHECK(values.got.size() == 1);

  mgr.queue_message_to_actor(views.id(), sample(4));
  mgr.queue_message_to_actor(values.id(), sample(5));
  CHECK(mgr.trigger_to_actor(views.id(), sample(6)));
  mgr.tick();
  REQUIRE(views.got.size() == 3);
  CHECK(views.got[1] == sample(6));
  CHECK(views.got[2] == sample(4));
  REQUIRE(values.got.size() == 2);
  CHECK(values.got[1] == sample(5));

  mgr.queue_message(sample(8));
  mgr.queue_message(sample(9));
  CHECK(mgr.queue_length() == 4);
  CHECK(mgr.abort_message<Everything>() == 2);
  CHECK(mgr.queue_length() == 0);
  mgr.tick();
  CHECK(views.got.size() == 3);
  CHECK(values.got.size() == 2);
}

namespace {
// A generic handler accepts views too; it keeps receiving values, as before views existed.
struct Generic : sage::Actor<Generic, sage::subscribes<Everything, Tag>> {
  std::vector<std::string> seen;
  template <class M>
  bool handle(const M& m) {
    if constexpr (std::is_same_v<M, Everything>) seen.push_back("value " + m.title);
    else if constexpr (std::is_same_v<M, Tag>) seen.push_back("tag " + m.label);
    else seen.push_back("view");
    return false;
  }
};
}  // namespace

TEST_CASE("an actor whose generic template handler also accepts views keeps receiving values") {
  Manager mgr;
  Generic generic;
  mgr.register_actor(generic);
  mgr.queue_message(sample(1));
  mgr.queue_message(Tag{"x", 1});
  mgr.tick();
  CHECK(generic.seen == std::vector<std::string>{"value message 1", "tag x"});
}

TEST_CASE("a message queued only for a view handler that is gone by the tick is a dead letter") {
  Manager mgr;
  std::vector<std::string> dead;
  mgr.set_dead_letter_handler([&](const sage::AnyMessageRef& m) { dead.emplace_back(m.name()); });
  {
    ViewReader views;
    mgr.register_actor(views);
    mgr.queue_message(sample(1));
  }  // unregistered before the tick
  const auto before = mgr.stats().unhandled;
  mgr.tick();
  CHECK(mgr.stats().unhandled == before + 1);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].find("Encoded") != std::string::npos);  // the bytes, named as such (not decoded)
  CHECK(dead[0].find("Everything") != std::string::npos);
}

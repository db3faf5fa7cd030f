// bench_local: messages/s of sage's local dispatch beside a minimal type-erased FIFO and CAF 0.17
// actor messaging, in one run (docs/performance.md).
//
//   build/bench/bench_local [--quick] [--csv]     (each case runs in its own process: common/harness.hpp)
//
// queue+tick: 10M messages (100k with --quick) of 3 types with 16-byte payloads, one subscriber
// each, queued in batches of 10,000 and dispatched by one tick per batch (a frame's worth).
// The baseline is the least a type-erased FIFO can do: a reserved std::vector of {function
// pointer, context, 16-byte payload} records, appended and then called in order.
// trigger: immediate delivery to one subscriber vs a virtual call found through a flat table.
// Every case is timed batch by batch (10,000 messages each); the rate is the batch size over the
// median batch time, so a batch that lost the CPU to another process does not skew the result,
// and the best of its runs (at least 3, for at least half a second) is reported.
// Allocations are counted by replacing operator new (common/alloc_counter.cpp), over all timed batches.
// CAF: one event-based actor with a handler per type; the main thread anon_send()s a batch of
// 10,000 messages and sleeps until the actor has handled them (CAF's scheduler limited to one
// worker thread: one subscriber needs no more).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "../common/alloc_counter.hpp"
#include "../common/harness.hpp"
#include "sage/manager.hpp"

#ifdef SAGE_BENCH_HAVE_CAF
#include <caf/all.hpp>
#endif


namespace {

using Clock = std::chrono::steady_clock;

// Keeps the optimiser from dropping work whose result is otherwise unused.
template <class T>
void escape(T& value) {
  asm volatile("" : : "g"(&value) : "memory");
}

struct Position {
  float x, y, z, w;
};
struct Damage {
  std::int64_t amount, source;
};
struct Score {
  double points, bonus;
};
static_assert(sizeof(Position) == 16 && sizeof(Damage) == 16 && sizeof(Score) == 16);

std::uint64_t checksum = 0;

struct PositionSink : sage::Actor<PositionSink, sage::subscribes<Position>> {
  bool handle(const Position& p) {
    checksum += static_cast<std::uint64_t>(p.x);
    return true;
  }
};
struct DamageSink : sage::Actor<DamageSink, sage::subscribes<Damage>> {
  bool handle(const Damage& d) {
    checksum += static_cast<std::uint64_t>(d.amount);
    return true;
  }
};
struct ScoreSink : sage::Actor<ScoreSink, sage::subscribes<Score>> {
  bool handle(const Score& s) {
    checksum += static_cast<std::uint64_t>(s.points);
    return true;
  }
};

// ---- the minimal type-erased FIFO ----
struct MinimalFifo {
  struct Record {
    void (*call)(void* context, const void* payload);
    void* context;
    alignas(8) unsigned char payload[16];
  };
  std::vector<Record> records;

  template <class T>
  void push(void (*call)(void*, const void*), void* context, const T& msg) {
    static_assert(sizeof(T) == 16);
    Record& r = records.emplace_back();
    r.call = call;
    r.context = context;
    std::memcpy(r.payload, &msg, sizeof(T));
  }
  void flush() {
    for (const Record& r : records) r.call(r.context, r.payload);
    records.clear();
  }
};
template <class T>
void minimal_handle(void*, const void* payload) {
  T m;
  std::memcpy(&m, payload, sizeof(T));
  if constexpr (std::is_same_v<T, Position>) checksum += static_cast<std::uint64_t>(m.x);
  if constexpr (std::is_same_v<T, Damage>) checksum += static_cast<std::uint64_t>(m.amount);
  if constexpr (std::is_same_v<T, Score>) checksum += static_cast<std::uint64_t>(m.points);
}

// ---- the minimal trigger: a virtual call through a flat table ----
struct MinimalHandler {
  virtual ~MinimalHandler() = default;
  virtual bool handle(const void* payload) = 0;
};
struct MinimalPositionHandler final : MinimalHandler {
  bool handle(const void* payload) override {
    checksum += static_cast<std::uint64_t>(static_cast<const Position*>(payload)->x);
    return true;
  }
};

constexpr std::size_t batch = 10'000;
// Each case runs at least this many times over, and until this much time has passed; the figure
// is the best run's median batch. A shared machine has slow stretches that last whole runs, not
// just single batches, and they slow sage's loop more than the FIFO's (docs/performance.md,
// "Local queue+tick"): half a second of runs gives each case more chances of a normal stretch
// than three runs of 30 ms.
constexpr int min_repetitions = 3;
constexpr std::chrono::milliseconds min_duration{500};

struct Result {
  double rate;                // messages per second, from the median batch
  std::uint64_t allocations;  // operator new calls during one run of the timed batches (average)
};

// Runs body(first_message_index) for each batch of `total` messages and times each batch.
template <class F>
Result measure(std::size_t total, F&& body) {
  std::vector<double> seconds;
  seconds.reserve(total / batch + 1);
  const std::uint64_t before = bench::allocations();
  double best = 0;
  int runs = 0;
  for (const auto began = Clock::now(); runs < min_repetitions || Clock::now() - began < min_duration; ++runs) {
    seconds.clear();
    for (std::size_t done = 0; done < total; done += batch) {
      const auto start = Clock::now();
      body(done);
      seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    best = std::max(best, static_cast<double>(batch) / seconds[seconds.size() / 2]);
  }
  return {best, (bench::allocations() - before) / static_cast<std::uint64_t>(runs)};
}

Result sage_queue_tick(std::size_t total) {
  sage::Manager manager;
  PositionSink p;
  DamageSink d;
  ScoreSink s;
  manager.register_actor(p);
  manager.register_actor(d);
  manager.register_actor(s);
  auto one_batch = [&](std::size_t base) {
    for (std::size_t i = 0; i < batch; i += 3) {
      const auto f = static_cast<float>(base + i);
      manager.queue_message(Position{f, f, f, f});
      manager.queue_message(Damage{static_cast<std::int64_t>(i), 1});
      manager.queue_message(Score{static_cast<double>(i), 0.5});
    }
    manager.tick();
  };
  one_batch(0);  // warm-up: the queue's chunks and the handler tables exist from here on
  const std::uint64_t dispatched_before = manager.stats().dispatched;
  Result r = measure(total, one_batch);
  if (manager.stats().unhandled != 0 || manager.stats().dispatched - dispatched_before < total) std::abort();
  return r;
}

Result minimal_queue_tick(std::size_t total) {
  MinimalFifo fifo;
  fifo.records.reserve(batch + 3);
  int context = 0;
  auto one_batch = [&](std::size_t base) {
    for (std::size_t i = 0; i < batch; i += 3) {
      const auto f = static_cast<float>(base + i);
      fifo.push(&minimal_handle<Position>, &context, Position{f, f, f, f});
      fifo.push(&minimal_handle<Damage>, &context, Damage{static_cast<std::int64_t>(i), 1});
      fifo.push(&minimal_handle<Score>, &context, Score{static_cast<double>(i), 0.5});
    }
    fifo.flush();
  };
  one_batch(0);
  return measure(total, one_batch);
}

Result sage_trigger(std::size_t total) {
  sage::Manager manager;
  PositionSink p;
  manager.register_actor(p);
  manager.trigger(Position{});
  return measure(total, [&](std::size_t base) {
    for (std::size_t i = base; i < base + batch; ++i) {
      Position msg{static_cast<float>(i), 0, 0, 0};
      bool consumed = manager.trigger(msg);
      escape(consumed);
    }
  });
}

Result minimal_trigger(std::size_t total) {
  MinimalPositionHandler h;
  std::array<MinimalHandler*, 8> table{};
  table[3] = &h;
  MinimalHandler* const* volatile tp = table.data();  // an opaque table, as a real lookup would be
  return measure(total, [&](std::size_t base) {
    for (std::size_t i = base; i < base + batch; ++i) {
      Position msg{static_cast<float>(i), 0, 0, 0};
      bool consumed = tp[3]->handle(&msg);
      escape(consumed);
    }
  });
}

#ifdef SAGE_BENCH_HAVE_CAF
// CAF 0.17 wants message types to be inspectable (or explicitly whitelisted).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Position& x) {
  return f(caf::meta::type_name("Position"), x.x, x.y, x.z, x.w);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Damage& x) {
  return f(caf::meta::type_name("Damage"), x.amount, x.source);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Score& x) {
  return f(caf::meta::type_name("Score"), x.points, x.bonus);
}

// What the CAF actor shares with the main thread. The actor counts what it handled and wakes the
// main thread when the batch is done (`target`): the main thread sleeps in atomic::wait instead of
// taking a core from the actor.
struct CafSink {
  std::atomic<std::uint64_t> handled{0}, target{0};
  std::uint64_t checksum = 0;  // written by the actor's thread only
  void count_one() {
    if (handled.fetch_add(1) + 1 == target.load()) handled.notify_one();
  }
};

// The actor's behaviour. (Spawned with an argument: CAF 0.17's spawn of a function without
// arguments binds a reference to a null pointer, which UBSan reports.)
caf::behavior caf_sink(caf::event_based_actor*, CafSink* sink) {
  return {
      [sink](const Position& p) {
        sink->checksum += static_cast<std::uint64_t>(p.x);
        sink->count_one();
      },
      [sink](const Damage& d) {
        sink->checksum += static_cast<std::uint64_t>(d.amount);
        sink->count_one();
      },
      [sink](const Score& s) {
        sink->checksum += static_cast<std::uint64_t>(s.points);
        sink->count_one();
      },
  };
}

Result caf_queue_tick(std::size_t total) {
  CafSink state;  // outlives the actor system, which waits for its actors when destroyed
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::size_t{1});
  caf::actor_system system{cfg};
  auto& handled = state.handled;
  auto& target = state.target;
  auto sink = system.spawn(caf_sink, &state);
  std::uint64_t sent = 0;
  auto one_batch = [&](std::size_t base) {
    for (std::size_t i = 0; i < batch; i += 3) {
      const auto f = static_cast<float>(base + i);
      caf::anon_send(sink, Position{f, f, f, f});
      caf::anon_send(sink, Damage{static_cast<std::int64_t>(i), 1});
      caf::anon_send(sink, Score{static_cast<double>(i), 0.5});
      sent += 3;
    }
    target.store(sent);
    for (std::uint64_t h = handled.load(); h < sent; h = handled.load()) handled.wait(h);
  };
  one_batch(0);
  Result r = measure(total, one_batch);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  checksum += state.checksum;  // the actor has handled everything (handled == sent)
  return r;
}
#endif

std::vector<bench::Figure> figures(Result r, std::size_t total) {
  return {bench::Figure{"rate", "msg/s", true, r.rate,
                        static_cast<double>(r.allocations) / static_cast<double>(total)}};
}
std::size_t total_for(bool quick) { return quick ? 100'000 : 10'000'000; }

}  // namespace

int main(int argc, char** argv) {
  const char* queue_tick = "local queue+tick 16 B x 3 types";
  const char* trigger = "local trigger 16 B";
  std::vector<bench::Case> cases = {
      {"queue_tick.sage", queue_tick, "sage",
       [](bool q) { return figures(sage_queue_tick(total_for(q)), total_for(q)); }},
      {"queue_tick.fifo", queue_tick, "minimal type-erased FIFO",
       [](bool q) { return figures(minimal_queue_tick(total_for(q)), total_for(q)); }},
#ifdef SAGE_BENCH_HAVE_CAF
      {"queue_tick.caf", queue_tick, "CAF 0.17 actor",
       [](bool q) { return figures(caf_queue_tick(total_for(q)), total_for(q)); }},
#endif
      {"trigger.sage", trigger, "sage",
       [](bool q) { return figures(sage_trigger(total_for(q)), total_for(q)); }},
      {"trigger.virtual", trigger, "virtual call via flat table",
       [](bool q) { return figures(minimal_trigger(total_for(q)), total_for(q)); }},
  };
  const int rc = bench::main(argc, argv, "bench_local", cases);
  if (checksum == 42) std::printf("\n");  // keeps the handlers' work observable
  return rc;
}

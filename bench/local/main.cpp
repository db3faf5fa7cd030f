// bench_local: messages/s of sage's local dispatch beside a minimal type-erased FIFO, in one run.
//
//   build/bench/bench_local [--quick]
//
// queue+tick: 10M messages (100k with --quick) of 3 types with 16-byte payloads, one subscriber
// each, queued in batches of 10,000 and dispatched by one tick per batch (a frame's worth).
// The baseline is the least a type-erased FIFO can do: a reserved std::vector of {function
// pointer, context, 16-byte payload} records, appended and then called in order.
// trigger: immediate delivery to one subscriber vs a virtual call found through a flat table.
// Every case is timed batch by batch (10,000 messages each); the rate is the batch size over the
// median batch time, so a batch that lost the CPU to another process does not skew the result.
// Allocations are counted by replacing operator new in this binary, over all timed batches.
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

#include "sage/manager.hpp"

namespace {
std::uint64_t allocations = 0;  // operator new calls (single-threaded benchmark)
}

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  ++allocations;
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

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

struct Result {
  double rate;                // messages per second, from the median batch
  std::uint64_t allocations;  // operator new calls during all timed batches
};

// Runs body(first_message_index) for each batch of `total` messages and times each batch.
template <class F>
Result measure(std::size_t total, F&& body) {
  std::vector<double> seconds;
  seconds.reserve(total / batch + 1);
  const std::uint64_t before = allocations;
  for (std::size_t done = 0; done < total; done += batch) {
    const auto start = Clock::now();
    body(done);
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  const std::uint64_t allocated = allocations - before;
  std::sort(seconds.begin(), seconds.end());
  return {static_cast<double>(batch) / seconds[seconds.size() / 2], allocated};
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

void row(const char* name, std::size_t total, Result sage_r, Result minimal_r) {
  const double sage_rate = sage_r.rate;
  const double minimal_rate = minimal_r.rate;
  std::printf("%-26s | %14.3e | %19.3e | %5.2f | %.6f (%llu in total)\n", name, sage_rate, minimal_rate,
              sage_rate / minimal_rate, static_cast<double>(sage_r.allocations) / static_cast<double>(total),
              static_cast<unsigned long long>(sage_r.allocations));
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string_view(argv[1]) == "--quick";
  const std::size_t total = quick ? 100'000 : 10'000'000;
  std::printf("sage bench_local: %zu messages per case%s\n\n", total, quick ? " (--quick)" : "");
  std::printf("%-26s | %14s | %19s | %5s | %s\n", "case", "sage msgs/s", "minimal FIFO msgs/s", "ratio",
              "sage allocations per message");
  std::printf("%s\n", std::string(110, '-').c_str());
  row("queue+tick (3 types, 16 B)", total, sage_queue_tick(total), minimal_queue_tick(total));
  row("trigger (1 subscriber)", total, sage_trigger(total), minimal_trigger(total));
  std::printf("\nchecksum %llu\n", static_cast<unsigned long long>(checksum));
}

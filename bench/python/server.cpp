// bench_python_server: the C++ end of bench/python/bench_python.py (a sage Manager on 127.0.0.1).
//
//   bench_python_server count N   counts bench.Blob messages from one peer; prints "port P", then,
//                                 after N, "rate R" (messages/s from the 1/20th to the last, bench::StreamClock)
//   bench_python_server echo      sends every Blob back to its sender until stdin closes; prints "port P"
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "../common/harness.hpp"
#include "bench.sage.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;

namespace {

struct Counter : sage::Actor<Counter, sage::subscribes<bench::Blob>> {
  bench::StreamClock* clock = nullptr;
  bool echo = false;
  std::uint64_t n = 0;
  bool handle(const bench::Blob& b, const sage::Sender& from) {
    ++n;
    if (clock) clock->received(n);
    if (echo) manager()->send_message(b, from);
    return true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (!(mode == "count" && argc == 3) && !(mode == "echo" && argc == 2)) {
    std::fprintf(stderr, "usage: bench_python_server count N | echo\n");
    return 2;
  }
  sage::Manager server;
  server.register_messages(bench::bench_wire_messages{});
  Counter counter;
  counter.echo = mode == "echo";
  const std::uint64_t count = mode == "count" ? std::strtoull(argv[2], nullptr, 10) : 0;
  bench::StreamClock clock(count == 0 ? 1 : count);
  if (count) counter.clock = &clock;
  server.register_actor(counter);
  std::printf("port %u\n", static_cast<unsigned>(server.listen("127.0.0.1", 0).port));
  if (count) {
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    server.run(1ms, [&] { return counter.n >= count || std::chrono::steady_clock::now() > deadline; });
    if (counter.n < count) return 1;
    std::printf("rate %.6g\n", clock.rate());
    return 0;
  }
  std::atomic<bool> stop{false};
  std::thread watch([&] {
    while (std::getchar() != EOF) {
    }
    stop = true;
  });
  server.run(1ms, [&] { return stop.load(); });
  watch.join();
  return 0;
}

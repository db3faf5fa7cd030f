// A server distributes the numbers 0..999 between two workers that register; each sums its half;
// the server prints the total.
//   cluster server 5555 / cluster worker 127.0.0.1 5555 (twice)   in three terminals
//   cluster                                                        all in one process, workers on threads
#include <unistd.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "cluster.sage.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;

struct Boss : sage::Actor<Boss, sage::subscribes<cluster::Register, cluster::Sum>> {
  sage::Manager& mgr;
  std::vector<sage::Sender> workers;
  int sums = 0;
  long long total = 0;
  explicit Boss(sage::Manager& m) : mgr(m) {}
  bool handle(const cluster::Register& r, const sage::Sender& from) {
    std::printf("server: worker %s registered\n", r.name.c_str());
    workers.push_back(from);
    if (workers.size() == 2) {  // split 0..999 in two halves
      std::vector<std::int32_t> all(1000);
      std::iota(all.begin(), all.end(), 0);
      mgr.send_message(cluster::Numbers{{all.begin(), all.begin() + 500}}, workers[0]);
      mgr.send_message(cluster::Numbers{{all.begin() + 500, all.end()}}, workers[1]);
    }
    return true;
  }
  bool handle(const cluster::Sum& s) {
    total += s.total;
    ++sums;
    return true;
  }
};

struct Worker : sage::Actor<Worker, sage::subscribes<cluster::Numbers, sage::PeerDisconnected>> {
  sage::Manager& mgr;
  std::string name;
  bool done = false;
  Worker(sage::Manager& m, std::string n) : mgr(m), name(std::move(n)) {}
  bool handle(const cluster::Numbers& n, const sage::Sender& from) {
    const long long sum = std::accumulate(n.values.begin(), n.values.end(), 0LL);
    std::printf("worker %s: summed %zu numbers: %lld\n", name.c_str(), n.values.size(), sum);
    mgr.send_message(cluster::Sum{sum}, from);
    return true;
  }
  bool handle(const sage::PeerDisconnected&) { return done = true; }  // the server finished
};

int run_worker(const char* host, std::uint16_t port, std::string name) {
  sage::Manager mgr;
  mgr.register_messages(cluster::cluster_wire_messages{});
  Worker worker(mgr, name);
  mgr.register_actor(worker);
  mgr.connect(host, port);
  mgr.send_message(cluster::Register{name});
  mgr.run(10ms, [&] { return worker.done; });
  return 0;
}

int run_server(std::uint16_t port, const std::function<void(std::uint16_t)>& on_listening) {
  sage::Manager mgr;
  mgr.register_messages(cluster::cluster_wire_messages{});
  Boss boss(mgr);
  mgr.register_actor(boss);
  const auto at = mgr.listen("127.0.0.1", port);
  std::printf("server: listening on port %u\n", at.port);
  on_listening(at.port);
  mgr.run(10ms, [&] { return boss.sums == 2; });
  std::printf("total: %lld\n", boss.total);
  return boss.total == 499500 ? 0 : 1;
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "demo";
  if (mode == "server" && argc == 3) return run_server(static_cast<std::uint16_t>(std::stoi(argv[2])), [](auto) {});
  if (mode == "worker" && argc == 4)
    return run_worker(argv[2], static_cast<std::uint16_t>(std::stoi(argv[3])), "w" + std::to_string(::getpid()));
  if (mode != "demo") {
    std::fprintf(stderr, "usage: cluster [server PORT | worker HOST PORT]\n");
    return 64;
  }
  std::vector<std::thread> workers;  // each thread has its own Manager
  const int rc = run_server(0, [&](std::uint16_t port) {
    for (const char* name : {"a", "b"}) workers.emplace_back([=] { run_worker("127.0.0.1", port, name); });
  });
  for (auto& w : workers) w.join();
  return rc;
}

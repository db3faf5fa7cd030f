// sage_soak: a bounded soak of process groups and network clients exchanging messages under load.
//
//   sage_soak [--seconds N] [--groups G] [--clients C]      (defaults 60, 2, 2)
//
// The main group sends numbered Seq messages to G child groups and C network clients (managers in
// this process, connected over TCP to the main group's listener) send numbered Seq messages to it;
// every Seq is echoed back to its sender. Each stream keeps at most `window` messages in flight and
// retries sends refused with send_buffer_full (refusals are reported, never lost). After N seconds
// sending stops and the echoes are drained. Prints RSS at start and end and the lost / out-of-order
// counts; exits 1 if any message was lost, duplicated or reordered, or a group or peer failed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sage/manager.hpp"
#include "test_messages.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t window = 20000;
constexpr int burst = 2000;

long rss_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// One direction of numbered messages and their echoes.
struct Stream {
  std::string name;
  std::uint64_t sent = 0;       // accepted by sage
  std::uint64_t received = 0;   // echoes back, in order
  std::uint64_t misordered = 0; // echoes that were not the next number
  std::uint64_t refused = 0;    // sends refused (send_buffer_full), retried later
  void echo(std::uint64_t v) {
    if (v != received) ++misordered;
    received = v + 1 > received ? v + 1 : received;
  }
};

// Child group: echoes every Seq to the main group; keeps what the link refused for later.
struct Echo : sage::Actor<Echo, sage::subscribes<test::Seq>> {
  std::vector<test::Seq> backlog;
  bool handle(const test::Seq& m) {
    backlog.push_back(m);
    return true;
  }
  void update() override {
    std::size_t i = 0;
    for (; i < backlog.size(); ++i)
      if (!manager()->try_queue_message_to_group(sage::main_group, backlog[i])) break;
    backlog.erase(backlog.begin(), backlog.begin() + static_cast<std::ptrdiff_t>(i));
  }
};

// Main group: counts group echoes, echoes network clients' Seq back to them.
struct MainActor : sage::Actor<MainActor, sage::subscribes<test::Seq>> {
  std::map<std::string, Stream*> groups;
  std::vector<std::pair<sage::Sender, test::Seq>> backlog;
  bool handle(const test::Seq& m, const sage::Sender& from) {
    if (from.kind == sage::Sender::Kind::peer) {
      backlog.emplace_back(from, m);
    } else if (auto it = groups.find(std::string(manager()->group_name(from))); it != groups.end()) {
      it->second->echo(m.value);
    }
    return true;
  }
  void update() override {
    std::size_t i = 0;
    for (; i < backlog.size(); ++i)
      if (!manager()->try_send_message(backlog[i].second, backlog[i].first)) break;
    backlog.erase(backlog.begin(), backlog.begin() + static_cast<std::ptrdiff_t>(i));
  }
};

struct ClientActor : sage::Actor<ClientActor, sage::subscribes<test::Seq>> {
  Stream* stream = nullptr;
  bool handle(const test::Seq& m) {
    stream->echo(m.value);
    return true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 60, n_groups = 2, n_clients = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--groups")) n_groups = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--clients")) n_clients = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: sage_soak [--seconds N] [--groups G] [--clients C]\n");
      return 2;
    }
  }

  sage::Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(test::all_messages{});
  sage::NetworkOptions net;
  net.on_send_buffer_full = sage::OverflowPolicy::refuse;
  mgr.enable_network(net);
  MainActor main_actor;
  mgr.register_actor(main_actor);

  std::vector<std::unique_ptr<Stream>> group_streams, client_streams;
  for (int g = 0; g < n_groups; ++g) {
    group_streams.push_back(std::make_unique<Stream>(Stream{"group soak" + std::to_string(g)}));
    const std::string name = "soak" + std::to_string(g);
    mgr.add_process_group<Echo>(name);
    main_actor.groups[name] = group_streams.back().get();
  }
  const auto port = mgr.listen("127.0.0.1", 0).port;
  std::vector<std::unique_ptr<sage::Manager>> clients;
  std::vector<std::unique_ptr<ClientActor>> client_actors;
  for (int c = 0; c < n_clients; ++c) {
    client_streams.push_back(std::make_unique<Stream>(Stream{"client " + std::to_string(c)}));
    clients.push_back(std::make_unique<sage::Manager>());
    auto& client = *clients.back();
    client.enable_network(net);
    client.register_messages(test::all_messages{});
    client_actors.push_back(std::make_unique<ClientActor>());
    client_actors.back()->stream = client_streams.back().get();
    client.register_actor(*client_actors.back());
    client.connect("127.0.0.1", port);
  }

  int failures = 0;
  auto tick_all = [&] {
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {
      std::fprintf(stderr, "soak: %s\n", e.what());
      ++failures;
    }
    for (auto& c : clients) c->tick();
  };
  // Wait for the clients' handshakes before loading them.
  const auto ready_deadline = Clock::now() + 20s;
  auto all_connected = [&] {
    for (auto& c : clients)
      if (c->peers().empty() || !c->peers()[0].connected) return false;
    return true;
  };
  while (!all_connected() && Clock::now() < ready_deadline) {
    tick_all();
    mgr.wait_for_next_tick(2ms);
  }
  if (!all_connected()) {
    std::fprintf(stderr, "soak: the network clients did not connect within 20 s\n");
    return 1;
  }

  const long rss_start = rss_kib();
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::seconds(seconds);
  auto pump = [&](Stream& s, auto&& try_send) {
    for (int i = 0; i < burst && s.sent - s.received < window; ++i) {
      if (!try_send(test::Seq{s.sent})) {
        ++s.refused;
        return;
      }
      ++s.sent;
    }
  };
  while (Clock::now() < stop_at) {
    for (int g = 0; g < n_groups; ++g)
      pump(*group_streams[g], [&](const test::Seq& m) {
        return mgr.try_queue_message_to_group("soak" + std::to_string(g), m).ok();
      });
    for (int c = 0; c < n_clients; ++c)
      pump(*client_streams[c], [&](const test::Seq& m) { return clients[c]->try_send_message(m, clients[c]->peers()[0].peer).ok(); });
    tick_all();
    mgr.wait_for_next_tick(1ms);
  }
  // Drain: everything accepted must come back.
  auto drained = [&] {
    for (auto* v : {&group_streams, &client_streams})
      for (auto& s : *v)
        if (s->received < s->sent) return false;
    return true;
  };
  const auto drain_deadline = Clock::now() + 30s;
  while (!drained() && Clock::now() < drain_deadline) {
    tick_all();
    mgr.wait_for_next_tick(2ms);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const long rss_end = rss_kib();

  std::uint64_t sent = 0, received = 0, misordered = 0, refused = 0;
  for (auto* v : {&group_streams, &client_streams})
    for (auto& s : *v) {
      std::printf("  %-12s sent %10llu  echoed %10llu  refused (retried) %8llu  out of order %llu\n", s->name.c_str(),
                  static_cast<unsigned long long>(s->sent), static_cast<unsigned long long>(s->received),
                  static_cast<unsigned long long>(s->refused), static_cast<unsigned long long>(s->misordered));
      sent += s->sent;
      received += s->received;
      misordered += s->misordered;
      refused += s->refused;
    }
  const std::uint64_t lost = sent - received;
  std::printf("soak: %d s, %d groups, %d network clients: %.0f messages/s round trip\n", seconds, n_groups, n_clients,
              static_cast<double>(received) / elapsed);
  std::printf("sent: %llu, echoed: %llu, lost: %llu, out of order: %llu, refused and retried: %llu, failures: %d\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(misordered),
              static_cast<unsigned long long>(refused), failures);
  std::printf("RSS start: %ld KiB, end: %ld KiB, growth: %ld KiB\n", rss_start, rss_end, rss_end - rss_start);
  mgr.clear_process_groups();
  return lost == 0 && misordered == 0 && failures == 0 ? 0 : 1;
}

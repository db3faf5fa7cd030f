// bench_datagram: sage datagram peers (ENet over UDP on 127.0.0.1) next to raw ENet 1.3.17 with the
// same settings (one host each side, 12 channels, reliable packets, MTU 1400) in the same run.
//   build/bench/bench_datagram [--quick] [--csv]    (each case runs in its own process: common/harness.hpp)
// Throughput: one sender thread, the receiver on the main thread, N reliable messages of 16 B /
// 1 KiB payload, messages/s at the receiver, timed by bench::StreamClock for both (from the 1/20th
// message received to the last: connection set-up and sage's hello are not in it). sage batches
// the messages of a tick into one ENet packet; raw ENet sends one packet per message and flushes
// every 256 (what an ENet user writes).
// Round trip: ping-pong of one 16 B reliable message, p50 / p99 over M exchanges after 20
// unrecorded ones.
#include <enet/enet.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "../common/harness.hpp"
#include "bench.sage.hpp"
#include "sage/manager.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr int warmup_rounds = 20;  // round trips not recorded (bench_net does the same)

// Shared keys (docs/security.md): both ends hold the same key; every packet is sealed.
const sage::SharedKey bench_key = sage::SharedKey::generate("bench");
void datagrams(sage::Manager& m, bool sealed) {
  sage::DatagramOptions o;
  if (sealed) o.keys = {bench_key};
  m.enable_datagrams(o);
}

struct Counter : sage::Actor<Counter, sage::subscribes<bench::Blob>> {
  sage::Manager* echo_to = nullptr;
  bench::StreamClock* clock = nullptr;  // set: time the stream
  std::atomic<std::uint64_t> n{0};
  bool handle(const bench::Blob& b, const sage::Sender& from) {
    const std::uint64_t k = ++n;
    if (clock) clock->received(k);
    if (echo_to) echo_to->send_message(b, from);
    return true;
  }
};

double sage_throughput(std::size_t size, std::uint64_t count, bool sealed = false) {
  sage::Manager server;
  server.register_messages(bench::bench_wire_messages{});
  datagrams(server, sealed);
  bench::StreamClock clock(count);
  Counter counter;
  counter.clock = &clock;
  server.register_actor(counter);
  const auto port = server.listen_datagram("127.0.0.1", 0).port;
  std::atomic<bool> done{false};
  std::atomic<bool> started{false};
  std::thread sender([&] {
    sage::Manager client;
    client.register_messages(bench::bench_wire_messages{});
    datagrams(client, sealed);
    const auto srv = client.connect_datagram("127.0.0.1", port);
    while (client.peers().empty() || !client.peers().front().connected) {
      client.tick();
      client.wait_for_next_tick(1ms);
    }
    started = true;
    bench::Blob blob{0, std::vector<std::uint8_t>(size, 1)};
    for (std::uint64_t i = 0; i < count;) {
      for (int k = 0; k < 2000 && i < count; ++k, ++i) {
        blob.seq = i;
        if (!client.try_send_message(blob, srv)) break;  // message i goes next tick
      }
      client.tick();
      client.wait_for_next_tick(0ms);
    }
    while (!done) {
      client.tick();
      client.wait_for_next_tick(1ms);
    }
  });
  while (!started) {
    server.tick();
    server.wait_for_next_tick(1ms);
  }
  while (counter.n < count) {
    server.tick();
    server.wait_for_next_tick(1ms);
  }
  done = true;
  sender.join();
  return clock.rate();
}

std::vector<double> sage_rtt(int rounds, bool sealed = false) {
  sage::Manager server;
  server.register_messages(bench::bench_wire_messages{});
  datagrams(server, sealed);
  Counter echo;
  echo.echo_to = &server;
  server.register_actor(echo);
  const auto port = server.listen_datagram("127.0.0.1", 0).port;
  std::atomic<bool> stop{false};
  std::thread t([&] { server.run(20ms, [&] { return stop.load(); }); });
  sage::Manager client;
  client.register_messages(bench::bench_wire_messages{});
  datagrams(client, sealed);
  Counter back;
  client.register_actor(back);
  const auto srv = client.connect_datagram("127.0.0.1", port);
  while (client.peers().empty() || !client.peers().front().connected) {
    client.tick();
    client.wait_for_next_tick(1ms);
  }
  std::vector<double> us;
  const bench::Blob ping{0, std::vector<std::uint8_t>(16, 2)};
  for (int i = 0; i < warmup_rounds + rounds; ++i) {
    const auto t0 = Clock::now();
    client.send_message(ping, srv);
    const auto want = back.n + 1;
    while (back.n < want) {
      client.tick();
      if (back.n < want) client.wait_for_next_tick(100ms);
    }
    if (i >= warmup_rounds) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  stop = true;
  t.join();
  return us;
}

// ---- raw ENet ----

void init() {
  static bool once = [] { return enet_initialize() == 0; }();
  if (!once) std::exit(1);
}

ENetHost* listen_host(std::uint16_t& port) {
  ENetAddress a{};
  enet_address_set_host_ip(&a, "127.0.0.1");
  a.port = 0;
  ENetHost* h = enet_host_create(&a, 8, 12, 0, 0);
  if (!h) std::exit(1);
  port = h->address.port;
  return h;
}

ENetPeer* dial(ENetHost* client, std::uint16_t port, ENetHost* server) {
  ENetAddress a{};
  enet_address_set_host_ip(&a, "127.0.0.1");
  a.port = port;
  ENetPeer* p = enet_host_connect(client, &a, 12, 0);
  bool up = false, accepted = false;
  ENetEvent ev;
  while (!up || !accepted) {
    if (enet_host_service(client, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT) up = true;
    if (enet_host_service(server, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT) accepted = true;
  }
  return p;
}

double raw_throughput(std::size_t size, std::uint64_t count) {
  init();
  std::uint16_t port = 0;
  ENetHost* server = listen_host(port);
  ENetHost* client = enet_host_create(nullptr, 1, 12, 0, 0);
  ENetPeer* peer = dial(client, port, server);
  std::vector<std::uint8_t> body(size, 1);
  std::atomic<bool> done{false};
  bench::StreamClock clock(count);
  std::thread sender([&] {
    ENetEvent ev;
    for (std::uint64_t i = 0; i < count; ++i) {
      enet_peer_send(peer, 0, enet_packet_create(body.data(), body.size(), ENET_PACKET_FLAG_RELIABLE));
      if (i % 256 == 255) {
        while (enet_host_service(client, &ev, 0) > 0) {
        }
      }
    }
    while (!done) enet_host_service(client, &ev, 1);
  });
  std::uint64_t got = 0;
  ENetEvent ev;
  while (got < count) {
    if (enet_host_service(server, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_RECEIVE) {
      clock.received(++got);
      enet_packet_destroy(ev.packet);
    }
  }
  done = true;
  sender.join();
  enet_host_destroy(client);
  enet_host_destroy(server);
  return clock.rate();
}

std::vector<double> raw_rtt(int rounds) {
  init();
  std::uint16_t port = 0;
  ENetHost* server = listen_host(port);
  ENetHost* client = enet_host_create(nullptr, 1, 12, 0, 0);
  ENetPeer* peer = dial(client, port, server);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    ENetEvent ev;
    while (!stop) {
      if (enet_host_service(server, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_RECEIVE) {
        enet_peer_send(ev.peer, 0, enet_packet_create(ev.packet->data, ev.packet->dataLength, ENET_PACKET_FLAG_RELIABLE));
        enet_packet_destroy(ev.packet);
        enet_host_flush(server);
      }
    }
  });
  std::vector<double> us;
  std::uint8_t body[16] = {};
  ENetEvent ev;
  for (int i = 0; i < warmup_rounds + rounds; ++i) {
    const auto t0 = Clock::now();
    enet_peer_send(peer, 0, enet_packet_create(body, sizeof body, ENET_PACKET_FLAG_RELIABLE));
    enet_host_flush(client);
    for (;;) {
      if (enet_host_service(client, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_RECEIVE) {
        enet_packet_destroy(ev.packet);
        break;
      }
    }
    if (i >= warmup_rounds) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  stop = true;
  echo.join();
  enet_host_destroy(client);
  enet_host_destroy(server);
  return us;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::vector<bench::Figure> rate_figure(double msgs_per_s) { return {bench::Figure{"rate", "msg/s", true, msgs_per_s}}; }
std::vector<bench::Figure> latency_figures(const std::vector<double>& us) {
  return {bench::Figure{"p50", "us", false, pct(us, 0.5)}, bench::Figure{"p99", "us", false, pct(us, 0.99)}};
}
std::uint64_t n16(bool quick) { return quick ? 10000 : 100000; }
std::uint64_t n1k(bool quick) { return quick ? 2000 : 20000; }
int rounds(bool quick) { return quick ? 200 : 5000; }

}  // namespace

int main(int argc, char** argv) {
  const char* tp16 = "UDP (ENet) loopback reliable 16 B";
  const char* tp1k = "UDP (ENet) loopback reliable 1 KiB";
  const char* rt = "UDP (ENet) round trip 16 B";
  const std::vector<bench::Case> cases = {
      {"tp16.sage", tp16, "sage datagrams", [](bool q) { return rate_figure(sage_throughput(16, n16(q))); }},
      {"tp16.sage-keys", tp16, "sage datagrams, shared key (sealed)",
       [](bool q) { return rate_figure(sage_throughput(16, n16(q), true)); }},
      {"tp16.enet", tp16, "raw ENet 1.3.17", [](bool q) { return rate_figure(raw_throughput(16, n16(q))); }},
      {"tp1k.sage", tp1k, "sage datagrams", [](bool q) { return rate_figure(sage_throughput(1024, n1k(q))); }},
      {"tp1k.sage-keys", tp1k, "sage datagrams, shared key (sealed)",
       [](bool q) { return rate_figure(sage_throughput(1024, n1k(q), true)); }},
      {"tp1k.enet", tp1k, "raw ENet 1.3.17", [](bool q) { return rate_figure(raw_throughput(1024, n1k(q))); }},
      {"rt.sage", rt, "sage datagrams", [](bool q) { return latency_figures(sage_rtt(rounds(q))); }},
      {"rt.sage-keys", rt, "sage datagrams, shared key (sealed)", [](bool q) { return latency_figures(sage_rtt(rounds(q), true)); }},
      {"rt.enet", rt, "raw ENet 1.3.17", [](bool q) { return latency_figures(raw_rtt(rounds(q))); }},
  };
  return bench::main(argc, argv, "bench_datagram", cases);
}

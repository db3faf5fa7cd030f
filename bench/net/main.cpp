// bench_net: sage over tcp://127.0.0.1 next to ZeroMQ (PUSH/PULL, PAIR over tcp://) and raw nng
// (pair0 over TCP) in the same run. ZeroMQ is what a user would pick instead of sage's network;
// raw nng shows the floor of the library sage's TCP is built on.
//   build/bench/bench_net [--quick] [--csv]     (each case runs in its own process: common/harness.hpp)
// Throughput: one sender, one receiver thread, N messages of 16 B / 1 KiB / 64 KiB payload, messages/s at
// the receiver, timed by bench::StreamClock for every library alike (from the 1/20th message
// received to the last: connection set-up is not in it). Round trip: ping-pong of one 16 B
// message, p50 / p99 over M exchanges after 20 unrecorded ones.
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../common/harness.hpp"
#include "bench.sage.hpp"
#include "sage/manager.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr int warm_rounds = 20;  // round trips before the recorded ones (every library alike)

struct Counter : sage::Actor<Counter, sage::subscribes<bench::Blob>> {
  sage::Manager* echo_to = nullptr;  // set: reply to every message
  bench::StreamClock* clock = nullptr;  // set: time the stream
  std::uint64_t n = 0;
  bool handle(const bench::Blob& b, const sage::Sender& from) {
    ++n;
    if (clock) clock->received(n);
    if (echo_to) echo_to->send_message(b, from);
    return true;
  }
};

// Shared keys (docs/security.md): both ends hold the same key; every frame is sealed.
const sage::SharedKey bench_key = sage::SharedKey::generate("bench");
sage::NetworkOptions net_options(bool sealed) {
  sage::NetworkOptions o;
  if (sealed) o.keys = {bench_key};
  return o;
}

// sage: messages/s for `count` messages of `size` bytes (`sealed`: with a shared key).
double sage_throughput(std::size_t size, std::uint64_t count, bool sealed = false) {
  sage::Manager server;
  server.register_messages(bench::bench_wire_messages{});
  server.enable_network(net_options(sealed));
  bench::StreamClock clock(count);
  Counter counter;
  counter.clock = &clock;
  server.register_actor(counter);
  const auto port = server.listen("127.0.0.1", 0).port;
  std::atomic<bool> connected{false};
  std::thread sender([&] {
    sage::Manager client;
    client.register_messages(bench::bench_wire_messages{});
    // A bulk sender waits for a full buffer to drain (the default policy drops such a peer).
    sage::NetworkOptions options = net_options(sealed);
    options.on_send_buffer_full = sage::OverflowPolicy::refuse;
    client.enable_network(options);
    client.connect("127.0.0.1", port);
    connected = true;
    bench::Blob blob{0, std::vector<std::uint8_t>(size, 1)};
    for (std::uint64_t i = 0; i < count;) {
      // As many as the send buffer takes this tick; the rest waits until some of it is written
      // (as a blocking zmq_send or nng_send would wait), then goes in the next tick.
      bool full = false;
      for (int k = 0; k < 2000 && i < count; ++k, ++i) {
        blob.seq = i;
        if (!client.try_send_message(blob, client.peers().front().peer)) {
          full = true;  // message i goes next tick
          break;
        }
      }
      client.tick();
      if (full) client.wait_for_next_tick(1ms);
    }
    while (client.peers().front().pending_bytes) client.wait_for_next_tick(1ms), client.tick();
  });
  while (!connected) {  // the server answers the handshake (shared keys) meanwhile
    server.tick();
    server.wait_for_next_tick(1ms);
  }
  while (counter.n < count) {
    server.tick();
    server.wait_for_next_tick(1ms);
  }
  sender.join();
  return clock.rate();
}

// sage: round-trip latencies in microseconds.
std::vector<double> sage_rtt(int rounds, bool sealed = false) {
  sage::Manager server;
  server.register_messages(bench::bench_wire_messages{});
  server.enable_network(net_options(sealed));
  Counter echo;
  echo.echo_to = &server;
  server.register_actor(echo);
  const auto port = server.listen("127.0.0.1", 0).port;
  std::atomic<bool> stop{false};
  std::thread t([&] { server.run(20ms, [&] { return stop.load(); }); });
  sage::Manager client;
  client.register_messages(bench::bench_wire_messages{});
  Counter back;
  client.register_actor(back);
  client.enable_network(net_options(sealed));
  client.connect("127.0.0.1", port);
  std::vector<double> us;
  const bench::Blob ping{0, std::vector<std::uint8_t>(16, 2)};
  for (int i = 0; i < rounds + warm_rounds; ++i) {
    const auto t0 = Clock::now();
    client.send_message(ping);
    const auto want = back.n + 1;
    while (back.n < want) {
      client.tick();  // sends at its end, dispatches what arrived at its start
      if (back.n < want) client.wait_for_next_tick(100ms);
    }
    if (i >= warm_rounds) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  stop = true;  // the server thread sees it after its next tick (at most 20 ms)
  t.join();
  return us;
}

void check(int rv, const char* what) {
  if (rv != 0) {
    std::fprintf(stderr, "bench_net: %s: %s\n", what, nng_strerror(rv));
    std::exit(1);
  }
}

std::string url_of(nng_listener l) {
  int port = 0;
  check(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), "bound port");
  return "tcp://127.0.0.1:" + std::to_string(port);
}

double raw_throughput(std::size_t size, std::uint64_t count) {
  nng_socket rx, tx;
  nng_listener l;
  check(nng_pair0_open(&rx), "open");
  check(nng_pair0_open(&tx), "open");
  check(nng_socket_set_size(rx, NNG_OPT_RECVMAXSZ, 1 << 20), "recvmaxsz");
  // Queues on both sockets so that nng_send does not wait for the pipe each time (fairer).
  check(nng_socket_set_int(tx, NNG_OPT_SENDBUF, 1024), "sendbuf");
  check(nng_socket_set_int(rx, NNG_OPT_RECVBUF, 1024), "recvbuf");
  check(nng_listen(rx, "tcp://127.0.0.1:0", &l, 0), "listen");
  check(nng_dial(tx, url_of(l).c_str(), nullptr, 0), "dial");
  std::vector<char> body(size, 1);
  bench::StreamClock clock(count);
  std::thread sender([&] {
    for (std::uint64_t i = 0; i < count; ++i) check(nng_send(tx, body.data(), body.size(), 0), "send");
  });
  for (std::uint64_t i = 0; i < count; ++i) {
    nng_msg* m = nullptr;
    check(nng_recvmsg(rx, &m, 0), "recv");
    nng_msg_free(m);
    clock.received(i + 1);
  }
  sender.join();
  nng_close(tx);
  nng_close(rx);
  return clock.rate();
}

std::vector<double> raw_rtt(int rounds) {
  nng_socket a, b;
  nng_listener l;
  check(nng_pair0_open(&a), "open");
  check(nng_pair0_open(&b), "open");
  check(nng_listen(a, "tcp://127.0.0.1:0", &l, 0), "listen");
  check(nng_dial(b, url_of(l).c_str(), nullptr, 0), "dial");
  std::thread echo([&] {
    for (int i = 0; i < rounds + warm_rounds; ++i) {
      nng_msg* m = nullptr;
      check(nng_recvmsg(a, &m, 0), "recv");
      check(nng_sendmsg(a, m, 0), "send");
    }
  });
  std::vector<double> us;
  char body[16] = {};
  for (int i = 0; i < rounds + warm_rounds; ++i) {
    const auto t0 = Clock::now();
    check(nng_send(b, body, sizeof body, 0), "send");
    nng_msg* m = nullptr;
    check(nng_recvmsg(b, &m, 0), "recv");
    nng_msg_free(m);
    if (i >= warm_rounds) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  echo.join();
  nng_close(a);
  nng_close(b);
  return us;
}

// ---- ZeroMQ over tcp:// (default high-water marks, as a user would start) ----

void zcheck(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bench_net: zmq %s: %s\n", what, zmq_strerror(zmq_errno()));
    std::exit(1);
  }
}

std::string zmq_bound_url(void* s) {
  char url[256];
  size_t len = sizeof url;
  zcheck(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, url, &len) == 0, "last endpoint");
  return url;
}

double zmq_throughput(std::size_t size, std::uint64_t count) {
  void* ctx = zmq_ctx_new();
  void* rx = zmq_socket(ctx, ZMQ_PULL);
  void* tx = zmq_socket(ctx, ZMQ_PUSH);
  zcheck(zmq_bind(rx, "tcp://127.0.0.1:*") == 0, "bind");
  zcheck(zmq_connect(tx, zmq_bound_url(rx).c_str()) == 0, "connect");
  std::vector<char> body(size, 1);
  std::vector<char> buf(size + 64);
  bench::StreamClock clock(count);
  std::thread sender([&] {
    for (std::uint64_t i = 0; i < count; ++i) zcheck(zmq_send(tx, body.data(), body.size(), 0) >= 0, "send");
  });
  for (std::uint64_t i = 0; i < count; ++i) {
    zcheck(zmq_recv(rx, buf.data(), buf.size(), 0) >= 0, "recv");
    clock.received(i + 1);
  }
  sender.join();
  int linger = 0;
  zmq_setsockopt(tx, ZMQ_LINGER, &linger, sizeof linger);
  zmq_close(tx);
  zmq_close(rx);
  zmq_ctx_term(ctx);
  return clock.rate();
}

std::vector<double> zmq_rtt(int rounds) {
  void* ctx = zmq_ctx_new();
  void* a = zmq_socket(ctx, ZMQ_PAIR);
  void* b = zmq_socket(ctx, ZMQ_PAIR);
  zcheck(zmq_bind(a, "tcp://127.0.0.1:*") == 0, "bind");
  zcheck(zmq_connect(b, zmq_bound_url(a).c_str()) == 0, "connect");
  std::thread echo([&] {
    char buf[64];
    for (int i = 0; i < rounds + warm_rounds; ++i) {
      const int n = zmq_recv(a, buf, sizeof buf, 0);
      zcheck(n >= 0, "recv");
      zcheck(zmq_send(a, buf, static_cast<size_t>(n), 0) >= 0, "send");
    }
  });
  std::vector<double> us;
  char body[16] = {};
  for (int i = 0; i < rounds + warm_rounds; ++i) {
    const auto t0 = Clock::now();
    zcheck(zmq_send(b, body, sizeof body, 0) >= 0, "send");
    zcheck(zmq_recv(b, body, sizeof body, 0) >= 0, "recv");
    if (i >= warm_rounds) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  echo.join();
  zmq_close(a);
  zmq_close(b);
  zmq_ctx_term(ctx);
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
std::uint64_t n16(bool quick) { return quick ? 20000 : 200000; }
std::uint64_t n1k(bool quick) { return quick ? 5000 : 50000; }
std::uint64_t n64k(bool quick) { return quick ? 200 : 5000; }
int rounds(bool quick) { return quick ? 200 : 10000; }

}  // namespace

int main(int argc, char** argv) {
  const char* tp16 = "TCP loopback 16 B";
  const char* tp1k = "TCP loopback 1 KiB";
  const char* tp64k = "TCP loopback 64 KiB";
  const char* rt = "TCP round trip 16 B";
  const std::vector<bench::Case> cases = {
      {"tp16.sage", tp16, "sage network", [](bool q) { return rate_figure(sage_throughput(16, n16(q))); }},
      {"tp16.sage-keys", tp16, "sage network, shared key (sealed)",
       [](bool q) { return rate_figure(sage_throughput(16, n16(q), true)); }},
      {"tp16.zmq", tp16, "ZeroMQ PUSH/PULL tcp", [](bool q) { return rate_figure(zmq_throughput(16, n16(q))); }},
      {"tp16.nng", tp16, "raw nng pair0 tcp", [](bool q) { return rate_figure(raw_throughput(16, n16(q))); }},
      {"tp1k.sage", tp1k, "sage network", [](bool q) { return rate_figure(sage_throughput(1024, n1k(q))); }},
      {"tp1k.sage-keys", tp1k, "sage network, shared key (sealed)",
       [](bool q) { return rate_figure(sage_throughput(1024, n1k(q), true)); }},
      {"tp1k.zmq", tp1k, "ZeroMQ PUSH/PULL tcp", [](bool q) { return rate_figure(zmq_throughput(1024, n1k(q))); }},
      {"tp1k.nng", tp1k, "raw nng pair0 tcp", [](bool q) { return rate_figure(raw_throughput(1024, n1k(q))); }},
      {"tp64k.sage", tp64k, "sage network", [](bool q) { return rate_figure(sage_throughput(65536, n64k(q))); }},
      {"tp64k.sage-keys", tp64k, "sage network, shared key (sealed)",
       [](bool q) { return rate_figure(sage_throughput(65536, n64k(q), true)); }},
      {"tp64k.zmq", tp64k, "ZeroMQ PUSH/PULL tcp", [](bool q) { return rate_figure(zmq_throughput(65536, n64k(q))); }},
      {"tp64k.nng", tp64k, "raw nng pair0 tcp", [](bool q) { return rate_figure(raw_throughput(65536, n64k(q))); }},
      {"rt.sage", rt, "sage network", [](bool q) { return latency_figures(sage_rtt(rounds(q))); }},
      {"rt.sage-keys", rt, "sage network, shared key (sealed)", [](bool q) { return latency_figures(sage_rtt(rounds(q), true)); }},
      {"rt.zmq", rt, "ZeroMQ PAIR tcp", [](bool q) { return latency_figures(zmq_rtt(rounds(q))); }},
      {"rt.nng", rt, "raw nng pair0 tcp", [](bool q) { return latency_figures(raw_rtt(rounds(q))); }},
  };
  return bench::main(argc, argv, "bench_net", cases);
}

// bench_ipc: sage groups vs raw nng pair1 vs ZeroMQ over ipc://, child -> main throughput and
// main -> child -> main round trips, all measured in one run (docs/performance.md).
//
//   build/bench/bench_ipc [--quick]
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sage/detail/group_pump.hpp"
#include "sage/detail/process.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace bench {

// 16 bytes of payload: one ulong in a FlatBuffer table is 24 bytes of buffer; count 16.
struct Seq {
  static constexpr std::uint8_t packet_type = 150;
  static constexpr std::string_view message_name = "bench.Seq";
  static constexpr std::uint64_t fingerprint = 0xbe7c0001;
  std::uint64_t value = 0;
  void encode(flatbuffers::FlatBufferBuilder& fbb) const {
    const auto start = fbb.StartTable();
    fbb.AddElement<std::uint64_t>(4, value, 0);
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
  }
  static sage::Result<Seq> decode(std::span<const std::byte> b) {
    flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
    if (b.size() < 8 || !v.VerifyOffset(0)) return sage::Error{sage::Errc::verify_failed, ""};
    auto* t = flatbuffers::GetRoot<flatbuffers::Table>(b.data());
    if (!t->VerifyTableStart(v) || !t->VerifyField<std::uint64_t>(v, 4, 8) || !v.EndTable())
      return sage::Error{sage::Errc::verify_failed, ""};
    return Seq{t->GetField<std::uint64_t>(4, 0)};
  }
};
struct Ping : Seq {
  static constexpr std::uint8_t packet_type = 151;
  static constexpr std::string_view message_name = "bench.Ping";
  static constexpr std::uint64_t fingerprint = 0xbe7c0002;
  static sage::Result<Ping> decode(std::span<const std::byte> b) {
    auto r = Seq::decode(b);
    if (!r) return r.error();
    return Ping{{r->value}};
  }
};
struct Pong : Seq {
  static constexpr std::uint8_t packet_type = 152;
  static constexpr std::string_view message_name = "bench.Pong";
  static constexpr std::uint64_t fingerprint = 0xbe7c0003;
  static sage::Result<Pong> decode(std::span<const std::byte> b) {
    auto r = Seq::decode(b);
    if (!r) return r.error();
    return Pong{{r->value}};
  }
};

std::uint64_t g_count = 100000;  // set before enable_groups(): the children inherit it

struct SageSender : sage::Actor<SageSender, sage::subscribes<Ping>> {
  std::uint64_t next = 0;
  bool started = false;
  bool handle(const Ping&) {
    started = true;
    return true;
  }
  void update() override {
    if (!started) return;
    for (int i = 0; i < 50000 && next < g_count; ++i) {
      if (!manager()->try_queue_message_to_group(sage::main_group, Seq{next})) break;  // full: next tick
      ++next;
    }
  }
};
struct SageEcho : sage::Actor<SageEcho, sage::subscribes<Ping>> {
  bool handle(const Ping& p, const sage::Sender& from) {
    manager()->queue_message_to_group(from, Pong{{p.value}});
    return true;
  }
};

std::string g_dir;

// ---- raw nng pair1 (one nng message per message) ----
int nng_sender(std::span<const std::byte> a) {
  std::string url(reinterpret_cast<const char*>(a.data()), a.size());
  nng_socket s;
  nng_pair1_open(&s);
  if (nng_dial(s, url.c_str(), nullptr, 0) != 0) return 1;
  char buf[16] = {};
  for (std::uint64_t i = 0; i < g_count; ++i) {
    std::memcpy(buf, &i, 8);
    nng_send(s, buf, sizeof buf, 0);
  }
  char ack[1];
  size_t n = 1;
  nng_recv(s, ack, &n, 0);
  nng_close(s);
  return 0;
}
int nng_echo(std::span<const std::byte> a) {
  std::string url(reinterpret_cast<const char*>(a.data()), a.size());
  nng_socket s;
  nng_pair1_open(&s);
  if (nng_dial(s, url.c_str(), nullptr, 0) != 0) return 1;
  for (;;) {
    char buf[16];
    size_t n = sizeof buf;
    if (nng_recv(s, buf, &n, 0) != 0) break;
    if (n == 1) break;
    nng_send(s, buf, n, 0);
  }
  nng_close(s);
  return 0;
}

// ---- ZeroMQ ----
int zmq_sender(std::span<const std::byte> a) {
  std::string url(reinterpret_cast<const char*>(a.data()), a.size());
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_PAIR);
  zmq_connect(s, url.c_str());
  char buf[16] = {};
  for (std::uint64_t i = 0; i < g_count; ++i) {
    std::memcpy(buf, &i, 8);
    zmq_send(s, buf, sizeof buf, 0);
  }
  // Wait for the receiver's ack before closing: with PUSH and an immediate close (even with
  // ZMQ_LINGER -1) libzmq 4.3 was seen to lose the last few percent of the messages.
  zmq_recv(s, buf, 1, 0);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}
int zmq_echo(std::span<const std::byte> a) {
  std::string url(reinterpret_cast<const char*>(a.data()), a.size());
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_PAIR);
  zmq_connect(s, url.c_str());
  for (;;) {
    char buf[16];
    int n = zmq_recv(s, buf, sizeof buf, 0);
    if (n <= 1) break;
    zmq_send(s, buf, static_cast<size_t>(n), 0);
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::span(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

double rate(std::uint64_t n, Clock::duration d) { return static_cast<double>(n) / std::chrono::duration<double>(d).count(); }

struct Percentiles {
  double p50, p99;
};
Percentiles percentiles(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

}  // namespace bench

using namespace bench;

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  g_count = quick ? 20000 : 200000;
  const int rounds = quick ? 200 : 2000;

  sage::Manager mgr;
  mgr.enable_groups();  // before any nng use: every child below comes from the fork server
  mgr.register_messages(sage::type_list<Seq, Ping, Pong>{});
  auto& fs = sage::detail::ForkServer::instance();
  g_dir = mgr.group_pump().ipc_dir();

  // ---- throughput, child -> main ----
  double sage_tp = 0, nng_tp = 0, zmq_tp = 0;
  {
    struct Sink : sage::Actor<Sink, sage::subscribes<Seq>> {
      std::uint64_t got = 0, bad = 0;
      bool handle(const Seq& s) {
        bad += s.value != got;
        ++got;
        return true;
      }
    } sink;
    mgr.register_actor(sink);
    sage::GroupOptions o;
    o.interval = 1ms;
    mgr.add_process_group<SageSender>("sender", o);
    mgr.queue_message_to_group("sender", Ping{});
    const auto t0 = Clock::now();
    while (sink.got < g_count) {
      mgr.tick();
      mgr.wait_for_next_tick(1ms);
    }
    sage_tp = rate(g_count, Clock::now() - t0);
    if (sink.bad) std::printf("sage: %llu out of order!\n", static_cast<unsigned long long>(sink.bad));
    mgr.remove_process_group("sender");
    mgr.unregister_actor(sink);
  }
  {
    const std::string url = "ipc://" + g_dir + "/nng.ipc";
    nng_socket s;
    nng_pair1_open(&s);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 1 << 20);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
    nng_listen(s, url.c_str(), nullptr, 0);
    auto pid = fs.spawn(&nng_sender, as_bytes(url)).value();
    char buf[16];
    size_t n = sizeof buf;
    nng_recv(s, buf, &n, 0);
    const auto t0 = Clock::now();
    std::uint64_t got = 1;
    for (; got < g_count; ++got) {
      n = sizeof buf;
      if (nng_recv(s, buf, &n, 0) != 0) break;  // timed out: messages were lost
    }
    nng_tp = rate(got - 1, Clock::now() - t0 - (got < g_count ? 5s : 0s));
    if (got < g_count)
      std::printf("raw nng pair1: only %llu of %llu messages arrived\n", static_cast<unsigned long long>(got),
                  static_cast<unsigned long long>(g_count));
    nng_send(s, buf, 1, 0);
    (void)fs.take_exit(pid, 10000);
    nng_close(s);
  }
  {
    const std::string url = "ipc://" + g_dir + "/zmq.ipc";
    void* ctx = zmq_ctx_new();
    void* s = zmq_socket(ctx, ZMQ_PAIR);
    const int timeout_ms = 5000;  // a lost message must not hang the benchmark
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_bind(s, url.c_str());
    auto pid = fs.spawn(&zmq_sender, as_bytes(url)).value();
    char buf[16];
    zmq_recv(s, buf, sizeof buf, 0);
    const auto t0 = Clock::now();
    std::uint64_t got = 1;
    for (; got < g_count; ++got)
      if (zmq_recv(s, buf, sizeof buf, 0) < 0) break;  // timed out: messages were lost
    zmq_tp = rate(got - 1, Clock::now() - t0 - (got < g_count ? 5s : 0s));
    zmq_send(s, buf, 1, 0);
    const auto st = fs.take_exit(pid, 10000);
    if (got < g_count)
      std::printf("ZeroMQ: only %llu of %llu messages arrived (sender %s)\n", static_cast<unsigned long long>(got),
                  static_cast<unsigned long long>(g_count),
                  st ? sage::detail::describe_wait_status(*st).c_str() : "still running");
    zmq_close(s);
    zmq_ctx_term(ctx);
  }

  // ---- round trip main -> child -> main ----
  Percentiles sage_rt{}, nng_rt{}, zmq_rt{};
  {
    struct Catch : sage::Actor<Catch, sage::subscribes<Pong>> {
      bool got = false;
      bool handle(const Pong&) {
        got = true;
        return true;
      }
    } c;
    mgr.register_actor(c);
    sage::GroupOptions o;
    o.interval = 30ms;
    mgr.add_process_group<SageEcho>("echo", o);
    std::vector<double> us;
    for (int i = 0; i < rounds + 20; ++i) {
      c.got = false;
      const auto t0 = Clock::now();
      mgr.queue_message_to_group("echo", Ping{{static_cast<std::uint64_t>(i)}});
      mgr.tick();  // flushes the ping
      while (!c.got) {
        mgr.wait_for_next_tick(30ms);
        mgr.tick();
        if (Clock::now() - t0 > 10s) {
          std::printf("sage: no answer to round trip %d within 10 s\n", i);
          return 1;
        }
      }
      if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    sage_rt = percentiles(us);
    mgr.remove_process_group("echo");
  }
  {
    const std::string url = "ipc://" + g_dir + "/nng-rt.ipc";
    nng_socket s;
    nng_pair1_open(&s);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
    nng_listen(s, url.c_str(), nullptr, 0);
    auto pid = fs.spawn(&nng_echo, as_bytes(url)).value();
    std::vector<double> us;
    char buf[16] = {};
    for (int i = 0; i < rounds + 20; ++i) {
      const auto t0 = Clock::now();
      nng_send(s, buf, sizeof buf, 0);
      size_t n = sizeof buf;
      if (nng_recv(s, buf, &n, 0) != 0) {
        std::printf("raw nng pair1: no answer to round trip %d within 5 s\n", i);
        return 1;
      }
      if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    nng_rt = percentiles(us);
    nng_send(s, buf, 1, 0);
    (void)fs.take_exit(pid, 10000);
    nng_close(s);
  }
  {
    const std::string url = "ipc://" + g_dir + "/zmq-rt.ipc";
    void* ctx = zmq_ctx_new();
    void* s = zmq_socket(ctx, ZMQ_PAIR);
    const int timeout_ms = 5000;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_bind(s, url.c_str());
    auto pid = fs.spawn(&zmq_echo, as_bytes(url)).value();
    std::vector<double> us;
    char buf[16] = {};
    for (int i = 0; i < rounds + 20; ++i) {
      const auto t0 = Clock::now();
      zmq_send(s, buf, sizeof buf, 0);
      if (zmq_recv(s, buf, sizeof buf, 0) < 0) {
        std::printf("ZeroMQ: no answer to round trip %d within 5 s\n", i);
        return 1;
      }
      if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    zmq_rt = percentiles(us);
    zmq_send(s, buf, 1, 0);
    (void)fs.take_exit(pid, 10000);
    zmq_close(s);
    zmq_ctx_term(ctx);
  }

  std::printf("bench_ipc%s: %llu messages, %d round trips\n", quick ? " --quick" : "",
              static_cast<unsigned long long>(g_count), rounds);
  std::printf("| case | sage | raw nng pair1 | ZeroMQ | sage / ZeroMQ |\n|---|---|---|---|---|\n");
  std::printf("| child->main 16 B, msg/s | %.0f | %.0f | %.0f | %.2f |\n", sage_tp, nng_tp, zmq_tp, sage_tp / zmq_tp);
  std::printf("| round trip p50, us | %.0f | %.0f | %.0f | %.2f |\n", sage_rt.p50, nng_rt.p50, zmq_rt.p50,
              sage_rt.p50 / zmq_rt.p50);
  std::printf("| round trip p99, us | %.0f | %.0f | %.0f | %.2f |\n", sage_rt.p99, nng_rt.p99, zmq_rt.p99,
              sage_rt.p99 / zmq_rt.p99);
  return 0;
}

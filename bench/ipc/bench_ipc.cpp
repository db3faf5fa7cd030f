// bench_ipc: sage groups vs raw nng pair1 vs ZeroMQ over ipc://, in one run (docs/performance.md).
//
//   build/bench/bench_ipc [--quick] [--csv]      (each case runs in its own process: common/harness.hpp)
//
// Throughput, child -> main: a child process sends N messages of 16 B, 1 KiB or 64 KiB of payload
// (an 8-byte sequence number + data) as fast as the transport takes them; the main process
// receives them all. The sender starts at the parent's "go" (sage: a Ping to the sending group;
// baselines: a byte on a socketpair once the parent's socket is bound); the rate is timed by
// bench::StreamClock for every library alike: from the 1/20th message received to the last, so
// process start-up and connection set-up are not in it. sage: a group's actor queues Blob messages
// (generated from bench_ipc.fbs) to the main group from update(), up to 50,000 per tick; the main
// process ticks and waits with wait_for_next_tick(). Raw nng: pair1, one nng message per message, nng_recv() into a buffer.
// ZeroMQ: PUSH/PULL, zmq_recv() into a buffer.
// Round trip, main -> child -> main, 16 B: one message out, its echo back, timed one at a time.
// sage: queue_message_to_group + tick, then tick/wait_for_next_tick until the reply is handled.
// Peak RSS is the main (receiving) process's.
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../common/harness.hpp"
#include "bench_ipc.sage.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Set before enable_groups() / fork(): the children inherit them.
std::uint64_t g_count = 0;
std::size_t g_size = 16;  // payload bytes per message, seq included

std::vector<std::uint8_t> filler() { return std::vector<std::uint8_t>(g_size - 8, 0x5a); }

struct SageSender : sage::Actor<SageSender, sage::subscribes<bench::Ping>> {
  bench::Blob blob{0, filler()};
  std::uint64_t next = 0;
  bool started = false;
  bool handle(const bench::Ping&) {
    started = true;
    return true;
  }
  void update() override {
    if (!started) return;
    for (int i = 0; i < 50000 && next < g_count; ++i) {
      blob.seq = next;
      if (!manager()->try_queue_message_to_group(sage::main_group, blob)) break;  // full: next tick
      ++next;
    }
  }
};
struct SageEcho : sage::Actor<SageEcho, sage::subscribes<bench::Ping>> {
  bool handle(const bench::Ping& p, const sage::Sender& from) {
    manager()->queue_message_to_group(from, bench::Pong{p.seq, p.data});
    return true;
  }
};

std::vector<bench::Figure> throughput(double msgs_per_s) { return {bench::Figure{"rate", "msg/s", true, msgs_per_s}}; }

std::vector<bench::Figure> latency(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {bench::Figure{"p50", "us", false, us[us.size() / 2]},
          bench::Figure{"p99", "us", false, us[std::min(us.size() - 1, us.size() * 99 / 100)]}};
}

// A scratch directory for the baselines' ipc:// endpoints.
std::string scratch_dir() {
  const char* base = std::getenv("XDG_RUNTIME_DIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/sage-bench-XXXXXX";
  if (!mkdtemp(t.data())) std::abort();
  return t;
}

// Runs child(url) in a forked process (forked before this process touches nng or ZeroMQ, which
// are not fork-safe) and talks to it over a socketpair: the child starts when the parent calls
// go() (its socket is bound by then, so nothing is sent to an endpoint that is not there yet), and
// a sender closes its socket only after the parent called done() (ZeroMQ 4.3 was seen to lose the
// last messages of a PUSH socket closed right after sending, linger or not).
struct Child {
  pid_t pid = -1;
  int fd = -1;  // the parent's end of the socketpair
  void go() const { signal(fd); }
  void done() const { signal(fd); }
  static void signal(int fd) {
    const char c = 1;
    if (write(fd, &c, 1) != 1) std::abort();
  }
  static bool wait(int fd) {
    char c;
    return read(fd, &c, 1) == 1;
  }
};
int g_child_fd = -1;  // the child's end, for child functions

Child fork_child(int (*child)(const std::string&), const std::string& url) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    close(fds[0]);
    g_child_fd = fds[1];
    if (!Child::wait(g_child_fd)) _exit(1);
    const int rc = child(url);
    if (rc != 0) std::fprintf(stderr, "bench_ipc: child %s failed\n", url.c_str());
    _exit(rc);
  }
  close(fds[1]);
  return Child{pid, fds[0]};
}
// A receive that timed out: messages were lost (or a child died); report it, do not hang.
[[noreturn]] void lost(const char* who, std::uint64_t got, std::uint64_t count) {
  std::fprintf(stderr, "bench_ipc: %s: only %llu of %llu messages arrived\n", who, static_cast<unsigned long long>(got),
               static_cast<unsigned long long>(count));
  std::exit(1);
}

void reap(pid_t pid, const std::string& dir) {
  int status = 0;
  waitpid(pid, &status, 0);
  std::string d = dir;
  std::remove((d + "/a.ipc").c_str());
  rmdir(d.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench_ipc: child failed (status %d)\n", status);
    std::exit(1);
  }
}

// ---- sage groups ----
std::vector<bench::Figure> sage_throughput(std::uint64_t count, std::size_t size) {
  g_count = count;
  g_size = size;
  sage::Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(bench::bench_ipc_wire_messages{});
  struct Sink : sage::Actor<Sink, sage::subscribes<bench::Blob>> {
    explicit Sink(std::uint64_t count) : clock(count) {}
    bench::StreamClock clock;
    std::uint64_t got = 0, bad = 0;
    bool handle(const bench::Blob& b) {
      bad += b.seq != got || b.data.size() != g_size - 8;
      clock.received(++got);
      return true;
    }
  } sink(count);
  mgr.register_actor(sink);
  sage::GroupOptions o;
  o.interval = 1ms;
  mgr.add_process_group<SageSender>("sender", o);
  mgr.queue_message_to_group("sender", bench::Ping{});  // go
  const auto deadline = Clock::now() + 120s;
  while (sink.got < count) {
    if (Clock::now() > deadline) lost("sage", sink.got, count);
    mgr.tick();
    if (sink.got < count) mgr.wait_for_next_tick(1ms);
  }
  if (sink.bad) std::fprintf(stderr, "sage: %llu bad messages\n", static_cast<unsigned long long>(sink.bad));
  mgr.remove_process_group("sender");
  return throughput(sink.clock.rate());
}

std::vector<bench::Figure> sage_round_trip(int rounds) {
  g_size = 16;
  sage::Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(bench::bench_ipc_wire_messages{});
  struct Catch : sage::Actor<Catch, sage::subscribes<bench::Pong>> {
    bool got = false;
    bool handle(const bench::Pong&) {
      got = true;
      return true;
    }
  } c;
  mgr.register_actor(c);
  sage::GroupOptions o;
  o.interval = 30ms;
  mgr.add_process_group<SageEcho>("echo", o);
  std::vector<double> us;
  const auto data = filler();
  for (int i = 0; i < rounds + 20; ++i) {
    c.got = false;
    const auto t0 = Clock::now();
    mgr.queue_message_to_group("echo", bench::Ping{static_cast<std::uint64_t>(i), data});
    mgr.tick();  // flushes the ping
    while (!c.got) {
      mgr.wait_for_next_tick(30ms);
      mgr.tick();
    }
    if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  mgr.remove_process_group("echo");
  return latency(us);
}

// Starts `groups` groups (idle echo actors), waits until every one answered a Ping (all links up),
// then times one clear_process_groups(). Figures: the clear, and the start-up for context.
std::vector<bench::Figure> sage_clear_groups(int groups) {
  sage::Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(bench::bench_ipc_wire_messages{});
  struct Count : sage::Actor<Count, sage::subscribes<bench::Pong>> {
    int got = 0;
    bool handle(const bench::Pong&) {
      ++got;
      return true;
    }
  } pongs;
  mgr.register_actor(pongs);
  sage::GroupOptions o;
  o.interval = 50ms;  // idle children: as a game's worker groups between frames
  const auto t0 = Clock::now();
  for (int i = 0; i < groups; ++i) {
    const std::string name = "g" + std::to_string(i);
    mgr.add_process_group<SageEcho>(name, o);
    mgr.queue_message_to_group(name, bench::Ping{static_cast<std::uint64_t>(i), {}});
  }
  const auto deadline = Clock::now() + 300s;
  while (pongs.got < groups) {
    if (Clock::now() > deadline) lost("sage clear", static_cast<std::uint64_t>(pongs.got), static_cast<std::uint64_t>(groups));
    mgr.tick();
    if (pongs.got < groups) mgr.wait_for_next_tick(1ms);
  }
  const auto t1 = Clock::now();
  mgr.clear_process_groups();
  const auto t2 = Clock::now();
  if (!mgr.process_groups().empty()) {
    std::fprintf(stderr, "bench_ipc: clear_process_groups left %zu groups\n", mgr.process_groups().size());
    std::exit(1);
  }
  const auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  return {bench::Figure{"clear_process_groups()", "ms", false, ms(t2 - t1)},
          bench::Figure{"start all + one round trip each", "ms", false, ms(t1 - t0)}};
}

// ---- raw nng pair1 ----
bool dial(nng_socket& s, const std::string& url) {
  return nng_pair1_open(&s) == 0 && nng_dial(s, url.c_str(), nullptr, 0) == 0;
}
int nng_sender(const std::string& url) {
  nng_socket s;
  if (!dial(s, url)) return 1;
  std::vector<char> buf(g_size, 0x5a);
  for (std::uint64_t i = 0; i < g_count; ++i) {
    std::memcpy(buf.data(), &i, 8);
    if (nng_send(s, buf.data(), buf.size(), 0) != 0) return 1;
  }
  Child::wait(g_child_fd);  // the parent has everything
  nng_close(s);
  return 0;
}
int nng_echo(const std::string& url) {
  nng_socket s;
  if (!dial(s, url)) return 1;
  for (;;) {
    char buf[16];
    size_t n = sizeof buf;
    if (nng_recv(s, buf, &n, 0) != 0 || n == 1) break;
    nng_send(s, buf, n, 0);
  }
  nng_close(s);
  return 0;
}

std::vector<bench::Figure> nng_throughput(std::uint64_t count, std::size_t size) {
  g_count = count;
  g_size = size;
  const std::string dir = scratch_dir(), url = "ipc://" + dir + "/a.ipc";
  Child child = fork_child(&nng_sender, url);
  nng_socket s;
  nng_pair1_open(&s);
  nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 1 << 20);
  nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
  nng_listen(s, url.c_str(), nullptr, 0);
  bench::StreamClock clock(count);
  child.go();
  std::vector<char> buf(size);
  size_t n = 0;
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    n = buf.size();
    if (nng_recv(s, buf.data(), &n, 0) != 0) lost("raw nng", i, count);
    std::uint64_t seq;
    std::memcpy(&seq, buf.data(), 8);
    bad += seq != i || n != size;
    clock.received(i + 1);
  }
  const double r = clock.rate();
  child.done();
  if (bad) std::fprintf(stderr, "nng: %llu bad messages\n", static_cast<unsigned long long>(bad));
  reap(child.pid, dir);
  nng_close(s);
  return throughput(r);
}

std::vector<bench::Figure> nng_round_trip(int rounds) {
  const std::string dir = scratch_dir(), url = "ipc://" + dir + "/a.ipc";
  Child child = fork_child(&nng_echo, url);
  nng_socket s;
  nng_pair1_open(&s);
  nng_listen(s, url.c_str(), nullptr, 0);
  child.go();
  std::vector<double> us;
  char buf[16] = {};
  for (int i = 0; i < rounds + 20; ++i) {
    const auto t0 = Clock::now();
    nng_send(s, buf, sizeof buf, 0);
    size_t n = sizeof buf;
    nng_recv(s, buf, &n, 0);
    if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  nng_send(s, buf, 1, 0);
  reap(child.pid, dir);
  nng_close(s);
  return latency(us);
}

// ---- ZeroMQ (connects are retried by ZeroMQ itself) ----
int zmq_sender(const std::string& url) {
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_PUSH);
  zmq_connect(s, url.c_str());
  std::vector<char> buf(g_size, 0x5a);
  for (std::uint64_t i = 0; i < g_count; ++i) {
    std::memcpy(buf.data(), &i, 8);
    if (zmq_send(s, buf.data(), buf.size(), 0) < 0) return 1;
  }
  Child::wait(g_child_fd);  // the parent has everything
  int linger = -1;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}
int zmq_echo(const std::string& url) {
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

std::vector<bench::Figure> zmq_throughput(std::uint64_t count, std::size_t size) {
  g_count = count;
  g_size = size;
  const std::string dir = scratch_dir(), url = "ipc://" + dir + "/a.ipc";
  Child child = fork_child(&zmq_sender, url);
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_PULL);
  const int timeout_ms = 10000;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
  zmq_bind(s, url.c_str());
  bench::StreamClock clock(count);
  child.go();
  std::vector<char> buf(size);
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const int n = zmq_recv(s, buf.data(), buf.size(), 0);
    if (n < 0) lost("ZeroMQ", i, count);
    std::uint64_t seq;
    std::memcpy(&seq, buf.data(), 8);
    bad += seq != i || n != static_cast<int>(size);
    clock.received(i + 1);
  }
  const double r = clock.rate();
  child.done();
  if (bad) std::fprintf(stderr, "zmq: %llu bad messages\n", static_cast<unsigned long long>(bad));
  reap(child.pid, dir);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return throughput(r);
}

std::vector<bench::Figure> zmq_round_trip(int rounds) {
  const std::string dir = scratch_dir(), url = "ipc://" + dir + "/a.ipc";
  Child child = fork_child(&zmq_echo, url);
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_PAIR);
  zmq_bind(s, url.c_str());
  child.go();
  std::vector<double> us;
  char buf[16] = {};
  for (int i = 0; i < rounds + 20; ++i) {
    const auto t0 = Clock::now();
    zmq_send(s, buf, sizeof buf, 0);
    zmq_recv(s, buf, sizeof buf, 0);
    if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  zmq_send(s, buf, 1, 0);
  reap(child.pid, dir);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return latency(us);
}

struct Size {
  const char* id;
  const char* scenario;
  std::size_t bytes;
  std::uint64_t full, quick;
};
constexpr Size sizes[] = {
    {"16", "IPC child->main 16 B", 16, 1'000'000, 20'000},
    {"1k", "IPC child->main 1 KiB", 1024, 200'000, 5'000},
    {"64k", "IPC child->main 64 KiB", 65536, 10'000, 200},
};
int rounds_for(bool quick) { return quick ? 200 : 5000; }

}  // namespace

int main(int argc, char** argv) {
  std::vector<bench::Case> cases;
  for (const Size& z : sizes) {
    const std::string id = z.id;
    cases.push_back({"tp" + id + ".sage", z.scenario, "sage groups",
                     [z](bool q) { return sage_throughput(q ? z.quick : z.full, z.bytes); }});
    cases.push_back({"tp" + id + ".nng", z.scenario, "raw nng pair1",
                     [z](bool q) { return nng_throughput(q ? z.quick : z.full, z.bytes); }});
    cases.push_back({"tp" + id + ".zmq", z.scenario, "ZeroMQ PUSH/PULL",
                     [z](bool q) { return zmq_throughput(q ? z.quick : z.full, z.bytes); }});
  }
  const char* rt = "IPC round trip 16 B";
  cases.push_back({"rt.sage", rt, "sage groups", [](bool q) { return sage_round_trip(rounds_for(q)); }});
  cases.push_back({"rt.nng", rt, "raw nng pair1", [](bool q) { return nng_round_trip(rounds_for(q)); }});
  cases.push_back({"rt.zmq", rt, "ZeroMQ PAIR", [](bool q) { return zmq_round_trip(rounds_for(q)); }});
  // Not compared with a baseline: how long removing many groups at once takes (issue 13).
  cases.push_back({"clear.sage", "clear 1000 groups (--quick: 50)", "sage groups",
                   [](bool q) { return sage_clear_groups(q ? 50 : 1000); }});
  return bench::main(argc, argv, "bench_ipc", cases);
}

// sage_chaos: sequence-numbered flows in every direction while processes are killed, stopped and
// cut off, and a check that every accepted message was delivered once, in order, or reported
// (docs/reliability.md "Chaos"). Run through scripts/chaos.
//
//   sage_chaos [--seconds N] [--seed S]        (defaults 60, the time)
//
// Parts: the main group (this process); two local process groups with a restart policy; a remote
// group node (a forked process; in a network namespace of its own, behind a veth pair, when the
// namespace can be made: root and `ip netns`); a TCP client and a datagram (ENet, reliable)
// client, managers in this process. Every part echoes the main group's Seq stream back and sends
// a Food stream of its own (groups and node); the clients send Seq streams the main group echoes.
// Faults, one every 0.3-1.2 s: SIGKILL of a local group (its policy restarts it), SIGSTOP of one
// for 0.2-0.8 s, and a partition of the node's link for 1.5-3 s (namespace only).
//
// Checks, per source (a group incarnation, a node connection, a client): echoes come back in order
// without a gap or a duplicate while the source lives; the source's own stream is an unbroken
// prefix; nothing of a dead incarnation or a lost node connection is dispatched after its
// group_error; the only exceptions are group_errors; after the run, everything accepted towards a
// live source came back; the file descriptors are back to where they were once everything is up
// again. Prints a summary table; exits 1 on any violation.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "sage/manager.hpp"
#include "sage/remote_group.hpp"
#include "test_messages.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t window = 20000;  // Seq in flight per stream at most
constexpr int burst = 1000;              // Seq sent per stream per tick at most

bool run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

long rss_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int open_fds() {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// A namespace joined to this one by a veth pair (as in tests/faults/partition_test.cpp).
struct Netns {
  std::string name, here_if, there_if, host = "127.0.0.1", far;
  bool ok = false;
  Netns() {
    const int pid = static_cast<int>(::getpid());
    const int k = (pid + 8191) & 0x3fff;
    const std::string net = "10.201." + std::to_string(k >> 6) + ".";
    name = "sage-chaos-" + std::to_string(pid);
    here_if = "sgc" + std::to_string(pid) + "a";
    there_if = "sgc" + std::to_string(pid) + "b";
    if (!run("ip netns add " + name)) return;
    const std::string h = net + std::to_string(((k & 63) << 2) + 1), f = net + std::to_string(((k & 63) << 2) + 2);
    ok = run("ip link add " + here_if + " type veth peer name " + there_if) &&
         run("ip link set " + there_if + " netns " + name) && run("ip addr add " + h + "/30 dev " + here_if) &&
         run("ip link set " + here_if + " up") && run("ip -n " + name + " addr add " + f + "/30 dev " + there_if) &&
         run("ip -n " + name + " link set " + there_if + " up") && run("ip -n " + name + " link set lo up");
    if (ok) host = h;
  }
  ~Netns() {
    if (!name.empty()) {
      run("ip link del " + here_if);
      run("ip netns del " + name);
    }
  }
  void cut() { run("ip link set " + here_if + " down"); }
  void heal() { run("ip link set " + here_if + " up"); }
  bool enter() const {
    const int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return entered;
  }
};

sage::NetworkOptions network_options() {
  sage::NetworkOptions o;
  o.heartbeat_interval = 200ms;
  o.heartbeat_timeout = 1s;
  o.connect_timeout = 500ms;
  o.on_send_buffer_full = sage::OverflowPolicy::refuse;
  return o;
}

// A local group's or the node's default actor: echoes the main group's Seq in order (what the
// link refuses waits for the next tick) and sends Food 0, 1, 2, ... of its own.
struct Chaotic : sage::Actor<Chaotic, sage::subscribes<test::Seq>> {
  std::vector<test::Seq> backlog;
  std::int32_t food = 0;
  bool handle(const test::Seq& m) {
    backlog.push_back(m);
    return true;
  }
  void update() override {
    std::size_t i = 0;
    for (; i < backlog.size(); ++i)
      if (!manager()->try_queue_message_to_group(sage::main_group, backlog[i])) break;
    backlog.erase(backlog.begin(), backlog.begin() + static_cast<std::ptrdiff_t>(i));
    for (int k = 0; k < 200 && backlog.empty(); ++k, ++food)
      if (!manager()->try_queue_message_to_group(sage::main_group, test::Food{food})) break;
  }
};

// What the main group checks of one source: a group incarnation or node connection (its Sender).
struct Run {
  std::string group;
  std::size_t errors_at_start = 0;  // group_errors of `group` thrown before its first message
  bool started = false;
  std::uint64_t next_echo = 0;
  std::int32_t next_food = 0;
};

struct Totals {
  std::uint64_t sent = 0, echoed = 0, own = 0, refused = 0, lost_reported = 0;
  std::uint64_t gaps = 0, out_of_order = 0, after_failure = 0;
  int failures = 0, runs = 0;
};

// The main group's view of the groups: what it sent each, and every run it heard from.
struct MainActor : sage::Actor<MainActor, sage::subscribes<test::Seq, test::Food>> {
  sage::Manager* mgr = nullptr;
  std::map<std::string, Totals> totals;
  std::map<std::string, std::uint64_t> next_seq;       // next Seq to send to a group
  std::map<std::string, std::uint64_t> highest_echo;   // + 1, over all its runs
  std::map<std::string, std::size_t> errors;           // group_errors thrown, per group
  std::map<std::pair<std::uint32_t, std::uint16_t>, Run> runs;  // by Sender index and generation
  std::vector<std::pair<sage::Sender, test::Seq>> backlog;      // clients' Seq to echo
  std::vector<std::string> violations;

  Run& run_of(const sage::Sender& from) {
    Run& r = runs[{from.index, from.generation}];
    if (r.group.empty()) {
      r.group = std::string(mgr->group_name(from));
      r.errors_at_start = errors[r.group];
      ++totals[r.group].runs;
    }
    return r;
  }
  void check_alive(Run& r, const sage::Sender& from) {
    if (errors[r.group] != r.errors_at_start && ++totals[r.group].after_failure <= 3)
      violations.push_back("a message of " + r.group + " (Sender " + std::to_string(from.index) + "/" +
                           std::to_string(from.generation) + ") was dispatched after its group_error");
  }
  bool handle(const test::Seq& m, const sage::Sender& from) {
    if (from.kind == sage::Sender::Kind::peer) {
      backlog.emplace_back(from, m);
      return true;
    }
    Run& r = run_of(from);
    check_alive(r, from);
    Totals& t = totals[r.group];
    std::uint64_t& high = highest_echo[r.group];
    if (!r.started && m.value != high) {  // a new run starts where the last one's reported loss ended
      if (m.value > high) ++t.gaps;
      else ++t.out_of_order;
      if (t.gaps + t.out_of_order <= 3)
        violations.push_back(r.group + ": a new run's first echo is " + std::to_string(m.value) + " where " +
                             std::to_string(high) + " was due");
    } else if (r.started && m.value != r.next_echo) {
      if (m.value > r.next_echo) ++t.gaps;
      else ++t.out_of_order;
      if (t.gaps + t.out_of_order <= 3)
        violations.push_back(r.group + ": echo " + std::to_string(m.value) + " where " + std::to_string(r.next_echo) +
                             " was due");
    }
    r.started = true;
    r.next_echo = m.value + 1;
    if (r.next_echo > high) high = r.next_echo;
    ++t.echoed;
    return true;
  }
  bool handle(const test::Food& m, const sage::Sender& from) {
    Run& r = run_of(from);
    check_alive(r, from);
    Totals& t = totals[r.group];
    if (m.value != r.next_food && (++t.gaps <= 3))
      violations.push_back(r.group + ": its own message " + std::to_string(m.value) + " where " +
                           std::to_string(r.next_food) + " was due");
    r.next_food = m.value + 1;
    ++t.own;
    return true;
  }
  // A group_error of `group`: what was sent to it and not echoed is lost with the dead incarnation
  // or connection, and this is its report (its echoes, if any, were all dispatched before it).
  void on_failure(const std::string& group) {
    ++errors[group];
    Totals& t = totals[group];
    ++t.failures;
    t.lost_reported += next_seq[group] - highest_echo[group];
    highest_echo[group] = next_seq[group];
  }
  void update() override {
    std::size_t i = 0;
    for (; i < backlog.size(); ++i)
      if (!mgr->try_send_message(backlog[i].second, backlog[i].first)) break;
    backlog.erase(backlog.begin(), backlog.begin() + static_cast<std::ptrdiff_t>(i));
  }
  // Sends the next Seq to `group` while fewer than `window` are in flight; a refusal stops it
  // for this tick (the same number is tried again: nothing refused is skipped).
  void pump(const std::string& group) {
    Totals& t = totals[group];
    std::uint64_t& next = next_seq[group];
    for (int i = 0; i < burst && next - highest_echo[group] < window; ++i) {
      if (!mgr->try_queue_message_to_group(group, test::Seq{next})) {
        ++t.refused;
        return;
      }
      ++next;
      ++t.sent;
    }
  }
};

// A network client (TCP or datagram) in this process: sends Seq, checks their echoes.
struct Client : sage::Actor<Client, sage::subscribes<test::Seq>> {
  std::string label;
  sage::Manager manager_;
  sage::Sender server;
  std::uint64_t sent = 0, received = 0, gaps = 0, refused = 0;
  bool handle(const test::Seq& m) {
    if (m.value != received) ++gaps;
    received = m.value + 1;
    return true;
  }
  void pump() {
    for (int i = 0; i < burst && sent - received < window; ++i) {
      if (!manager_.try_send_message(test::Seq{sent}, server)) {
        ++refused;
        return;
      }
      ++sent;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 60;
  unsigned seed = static_cast<unsigned>(Clock::now().time_since_epoch().count());
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
    else {
      std::fprintf(stderr, "usage: sage_chaos [--seconds N] [--seed S]\n");
      return 2;
    }
  }
  std::mt19937 rng(seed);
  std::printf("chaos: %d s, seed %u\n", seconds, seed);

  // The node's operator, forked before anything else exists here: it runs the node again whenever
  // it ends (1: the main group was lost, 2: it could not join), as a service manager would.
  Netns ns;
  std::printf("chaos: remote node %s\n", ns.ok ? ("in network namespace " + ns.name + " (partitions on)").c_str()
                                               : "on loopback (no network namespace: partitions off)");
  int port_pipe[2];
  if (::pipe(port_pipe) != 0) return 2;
  const pid_t node = ::fork();
  if (node == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(port_pipe[1]);
    std::uint16_t port = 0;
    if (::read(port_pipe[0], &port, sizeof port) != sizeof port) ::_exit(3);
    if (ns.ok && !ns.enter()) ::_exit(3);
    // Its log (every failed rejoin while partitioned) would drown the summary.
    if (const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) ::dup2(null, 2);
    sage::RemoteGroupOptions o;
    o.network = network_options();
    o.interval = 2ms;
    for (;;) (void)sage::run_remote_group<Chaotic>(test::all_messages{}, ns.host, port, "node", o);
  }
  ::close(port_pipe[0]);

  sage::Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(test::all_messages{});
  auto net = network_options();
  net.remote_groups = {"node"};
  mgr.enable_network(net);
  MainActor main_actor;
  main_actor.mgr = &mgr;
  mgr.register_actor(main_actor);
  sage::GroupOptions restarting;
  restarting.restart.mode = sage::RestartPolicy::Mode::on_failure;
  restarting.restart.max_restarts = 1000000;
  restarting.restart.initial_backoff = 10ms;
  restarting.restart.max_backoff = 50ms;
  restarting.send_buffer_limit = 1 << 20;
  const std::vector<std::string> locals = {"local-a", "local-b"};
  for (auto& g : locals) mgr.add_process_group<Chaotic>(g, restarting);
  const std::uint16_t port = mgr.listen("", 0).port;  // every IPv4 address: the node's and loopback
  if (::write(port_pipe[1], &port, sizeof port) != sizeof port) return 2;
  ::close(port_pipe[1]);
  const std::uint16_t dport = mgr.listen_datagram("127.0.0.1", 0).port;

  Client tcp, udp;
  tcp.label = "tcp client";
  udp.label = "enet client";
  for (Client* c : {&tcp, &udp}) {
    c->manager_.register_messages(test::all_messages{});
    c->manager_.register_actor(*c);
  }
  tcp.manager_.enable_network(network_options());
  tcp.server = tcp.manager_.connect("127.0.0.1", port);
  udp.server = udp.manager_.connect_datagram("127.0.0.1", dport);

  int unexpected = 0;
  auto tick_all = [&] {
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {
      main_actor.on_failure(e.group());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "chaos: unexpected exception: %s\n", e.what());
      ++unexpected;
    }
    for (Client* c : {&tcp, &udp}) c->manager_.tick();
  };
  auto everything_up = [&] {
    if (!mgr.has_remote_group("node")) return false;
    for (Client* c : {&tcp, &udp})
      if (c->manager_.peers().empty() || !c->manager_.peers()[0].connected) return false;
    return true;
  };
  auto until = [&](const std::function<bool()>& done, std::chrono::seconds span) {
    const auto deadline = Clock::now() + span;
    while (!done() && Clock::now() < deadline) {
      tick_all();
      mgr.wait_for_next_tick(1ms);
    }
    return done();
  };
  if (!until(everything_up, 30s)) {
    std::fprintf(stderr, "chaos: the node and the clients did not connect within 30 s\n");
    return 1;
  }
  const int fds_start = open_fds();
  const long rss_start = rss_kib();

  struct Pending {
    Clock::time_point at;
    std::function<void()> undo;
  };
  std::vector<Pending> pending;
  std::map<std::string, int> faults;
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::seconds(seconds);
  auto next_fault = start + 500ms;
  bool partitioned = false;
  std::vector<std::string> stopped;
  while (Clock::now() < stop_at) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < pending.size();) {
      if (now >= pending[i].at) {
        pending[i].undo();
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    if (now >= next_fault) {
      next_fault = now + std::chrono::milliseconds(300 + rng() % 900);
      const std::string& g = locals[rng() % locals.size()];
      const unsigned kind = rng() % (ns.ok ? 3 : 2);
      const bool running = mgr.has_process_group(g) && mgr.process_group_pid(g) > 0;
      if (kind == 0 && running && std::find(stopped.begin(), stopped.end(), g) == stopped.end()) {
        ::kill(mgr.process_group_pid(g), SIGKILL);
        ++faults["SIGKILL a local group"];
      } else if (kind == 1 && running && std::find(stopped.begin(), stopped.end(), g) == stopped.end()) {
        const int pid = mgr.process_group_pid(g);
        ::kill(pid, SIGSTOP);
        stopped.push_back(g);
        ++faults["SIGSTOP a local group"];
        pending.push_back({now + std::chrono::milliseconds(200 + rng() % 600), [pid, g, &stopped] {
                             ::kill(pid, SIGCONT);
                             std::erase(stopped, g);
                           }});
      } else if (kind == 2 && !partitioned) {
        ns.cut();
        partitioned = true;
        ++faults["partition the node"];
        pending.push_back({now + std::chrono::milliseconds(1500 + rng() % 1500), [&] {
                             ns.heal();
                             partitioned = false;
                           }});
      }
    }
    for (auto& g : locals)
      if (mgr.has_process_group(g)) main_actor.pump(g);
    if (mgr.has_remote_group("node")) main_actor.pump("node");
    tcp.pump();
    if (!udp.manager_.peers().empty() && udp.manager_.peers()[0].connected) udp.pump();
    tick_all();
    mgr.wait_for_next_tick(1ms);
  }
  for (auto& p : pending) p.undo();
  pending.clear();

  // Settle: no more faults; the flows go on until everything is up again (a healed node rejoins)
  // and has stayed up for two heartbeat timeouts, so that no connection is still about to drop.
  const auto settle_deadline = Clock::now() + 30s;
  auto up_since = Clock::time_point::max();
  while (Clock::now() < settle_deadline) {
    const auto now = Clock::now();
    if (!everything_up()) up_since = Clock::time_point::max();
    else if (up_since == Clock::time_point::max()) up_since = now;
    else if (now - up_since > 2 * net.heartbeat_timeout) break;
    for (auto& g : locals)
      if (mgr.has_process_group(g)) main_actor.pump(g);
    if (mgr.has_remote_group("node")) main_actor.pump("node");
    tcp.pump();
    udp.pump();
    tick_all();
    mgr.wait_for_next_tick(1ms);
  }
  // Drain: with nothing sent any more, everything accepted towards a live source comes back.
  auto drained = [&] {
    if (!everything_up()) return false;
    for (const std::string g : {"local-a", "local-b", "node"})
      if (main_actor.highest_echo[g] < main_actor.next_seq[g]) return false;
    return tcp.received == tcp.sent && udp.received == udp.sent && main_actor.backlog.empty();
  };
  const bool all_back = until(drained, 30s);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const int fds_end = open_fds();
  const long rss_end = rss_kib();

  std::printf("\n%-12s %6s %8s %12s %12s %12s %10s %8s %6s %6s %9s\n", "source", "runs", "failures", "sent to",
              "echoed", "its own", "refused", "reported", "gaps", "order", "after err");
  std::uint64_t total = 0;
  bool ok = all_back && unexpected == 0 && main_actor.violations.empty();
  for (const std::string g : {"local-a", "local-b", "node"}) {
    const Totals& t = main_actor.totals[g];
    std::printf("%-12s %6d %8d %12llu %12llu %12llu %10llu %8llu %6llu %6llu %9llu\n", g.c_str(), t.runs, t.failures,
                static_cast<unsigned long long>(t.sent), static_cast<unsigned long long>(t.echoed),
                static_cast<unsigned long long>(t.own), static_cast<unsigned long long>(t.refused),
                static_cast<unsigned long long>(t.lost_reported), static_cast<unsigned long long>(t.gaps),
                static_cast<unsigned long long>(t.out_of_order), static_cast<unsigned long long>(t.after_failure));
    total += t.sent + t.echoed + t.own;
    ok = ok && t.gaps == 0 && t.out_of_order == 0 && t.after_failure == 0;
  }
  for (Client* c : {&tcp, &udp}) {
    std::printf("%-12s %6d %8d %12llu %12llu %12s %10llu %8d %6llu %6d %9d\n", c->label.c_str(), 1, 0,
                static_cast<unsigned long long>(c->sent), static_cast<unsigned long long>(c->received), "-",
                static_cast<unsigned long long>(c->refused), 0, static_cast<unsigned long long>(c->gaps), 0, 0);
    total += c->sent + c->received;
    ok = ok && c->gaps == 0;
  }
  std::printf("\nfaults:");
  for (auto& [what, n] : faults) std::printf("  %s: %d", what.c_str(), n);
  std::printf("\nmessages: %llu in %.0f s; every accepted one delivered in order or reported: %s\n",
              static_cast<unsigned long long>(total), elapsed, ok ? "yes" : "NO");
  for (auto& v : main_actor.violations) std::printf("  violation: %s\n", v.c_str());
  if (!all_back) {
    std::printf("  not everything accepted came back within 30 s of the end:");
    for (const std::string g : {"local-a", "local-b", "node"})
      std::printf(" %s %llu of %llu%s;", g.c_str(), static_cast<unsigned long long>(main_actor.highest_echo[g]),
                  static_cast<unsigned long long>(main_actor.next_seq[g]),
                  (g == "node" ? mgr.has_remote_group(g) : mgr.has_process_group(g)) ? "" : " (not up)");
    std::printf(" tcp %llu of %llu, enet %llu of %llu\n", static_cast<unsigned long long>(tcp.received),
                static_cast<unsigned long long>(tcp.sent), static_cast<unsigned long long>(udp.received),
                static_cast<unsigned long long>(udp.sent));
  }
  if (unexpected) std::printf("  %d unexpected exception(s)\n", unexpected);
  const bool fds_ok = fds_end <= fds_start + 2;
  std::printf("file descriptors: %d at the start, %d at the end (%s)\n", fds_start, fds_end, fds_ok ? "ok" : "GREW");
  std::printf("RSS: %ld KiB at the start, %ld KiB at the end\n", rss_start, rss_end);
  ::kill(node, SIGKILL);
  ::waitpid(node, nullptr, 0);
  const bool pass = ok && fds_ok;
  std::printf("chaos: %s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

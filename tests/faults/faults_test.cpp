// Fault tests: what a user sees when processes die, stop reading, or peers misbehave, and proof
// that every accepted message is either delivered (in order) or reported as failed.
// docs/reliability.md lists which guarantee each test proves.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "groups/group_pump.hpp"
#include "raw_tcp.hpp"
#include "local/manager_access.hpp"
#include "sage/manager.hpp"
#include "test_messages.hpp"
#include "waiting.hpp"

using namespace std::chrono_literals;
using sage::Manager;
using Clock = std::chrono::steady_clock;

namespace {

using sage::test_support::process_alive;
using sage::test_support::tick_until;
using sage::test_support::tick_until_failure;

constexpr auto deadline_span = 30s;

bool tick_both_until(Manager& a, Manager& b, const std::function<bool()>& done) {
  const auto deadline = Clock::now() + deadline_span;
  while (!done() && Clock::now() < deadline) {
    a.tick();
    b.tick();
    a.wait_for_next_tick(2ms);
  }
  return done();
}

// ---- actors in children ----

struct Ponger : sage::Actor<Ponger, sage::subscribes<test::Ping>> {
  bool handle(const test::Ping& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Pong{m.value});
    return true;
  }
};

// Sends Seq 0, 1, 2, ... to the main group, 2000 per tick, forever.
struct EndlessSender : sage::Actor<EndlessSender> {
  std::uint64_t next = 0;
  void update() override {
    for (int i = 0; i < 2000; ++i) {
      if (!manager()->try_queue_message_to_group(sage::main_group, test::Seq{next})) return;
      ++next;
    }
  }
};

// Sends Seq 0 .. flood_count-1 to the main group, 2000 per tick, retrying a refused one next tick;
// on its first send_buffer_full it creates flood_flag(its group name); at the end it sends
// Done{number of refusals}.
constexpr std::uint64_t flood_count = 200000;
std::filesystem::path flood_flag(std::string_view group) {
  return std::filesystem::temp_directory_path() / ("sage-test-" + std::string(group) + ".full");
}
struct RefusedFlooder : sage::Actor<RefusedFlooder> {
  std::uint64_t next = 0, refusals = 0;
  bool done = false;
  void update() override {
    for (int i = 0; i < 2000 && next < flood_count; ++i) {
      if (!manager()->try_queue_message_to_group(sage::main_group, test::Seq{next})) {
        if (refusals++ == 0) std::ofstream(flood_flag(manager()->group_name())) << "full\n";
        return;
      }
      ++next;
    }
    if (next == flood_count && !done) done = manager()->try_queue_message_to_group(sage::main_group, test::Done{refusals}).ok();
  }
};

// Counts the Seq it receives and checks they come in order; answers Done{n} with Done{count}, or
// Done{UINT64_MAX} if anything arrived out of order or twice.
struct OrderedCounter : sage::Actor<OrderedCounter, sage::subscribes<test::Ping, test::Seq, test::Done>> {
  std::uint64_t count = 0;
  bool broken = false;
  bool handle(const test::Ping& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Pong{m.value});
    return true;
  }
  bool handle(const test::Seq& m) {
    if (m.value != count) broken = true;
    ++count;
    return true;
  }
  bool handle(const test::Done&, const sage::Sender& from) {
    manager()->queue_message_to_group(from, test::Done{broken ? UINT64_MAX : count});
    return true;
  }
};

// ---- main group actors ----

template <class T>
struct Collector : sage::Actor<Collector<T>, sage::subscribes<T>> {
  std::vector<T> got;
  bool handle(const T& m) {
    got.push_back(m);
    return true;
  }
};

struct Fixture {
  Manager mgr;
  Fixture() {
    mgr.enable_groups();
    mgr.register_messages(test::all_messages{});
  }
  // Round trip through `group`: proves its child runs and its link is up.
  bool ping(const std::string& group, int value) {
    Collector<test::Pong> pongs;
    mgr.register_actor(pongs);
    mgr.queue_message_to_group(group, test::Ping{value});
    const bool ok = tick_until(mgr, [&] {
      for (auto& p : pongs.got)
        if (p.value == value) return true;
      return false;
    });
    mgr.unregister_actor(pongs);
    return ok;
  }
};

// ---- raw TCP, for peers that misbehave below sage's API ----

int tcp_connect(std::uint16_t port) { return sage::test_support::raw_tcp_connect(port); }

struct ServerAndClient {
  Manager server, client;
  Collector<test::Food> food;
  std::uint16_t port = 0;
  explicit ServerAndClient(sage::NetworkOptions options = {}) {
    server.enable_network(options);
    server.register_messages(test::all_messages{});
    server.register_actor(food);
    port = server.listen("127.0.0.1", 0).port;
    client.enable_network(options);
    client.register_messages(test::all_messages{});
    client.connect("127.0.0.1", port);
  }
  // A well-behaved client still gets through: messages sent, all delivered.
  bool client_gets_through(int value) {
    const auto before = food.got.size();
    for (int i = 0; i < 10; ++i) client.send_message(test::Food{value + i});
    return tick_both_until(server, client, [&] { return food.got.size() >= before + 10; }) &&
           food.got[before].value == value && food.got[before + 9].value == value + 9;
  }
};

}  // namespace

TEST_CASE("a child killed with SIGKILL while sending is reported naming the group and the signal, "
          "and what arrived is an unbroken prefix of what it sent") {
  Fixture f;
  Collector<test::Seq> seqs;
  f.mgr.register_actor(seqs);
  f.mgr.add_process_group<EndlessSender>("sender");
  const int pid = f.mgr.process_group_pid("sender");
  REQUIRE(tick_until(f.mgr, [&] { return seqs.got.size() >= 20000; }));
  REQUIRE(::kill(pid, SIGKILL) == 0);
  auto failure = tick_until_failure(f.mgr);
  REQUIRE(failure.has_value());
  CHECK(failure->group() == "sender");
  CHECK(failure->reason().find("signal 9") != std::string::npos);
  CHECK(std::string(failure->what()).find("'sender'") != std::string::npos);
  for (std::size_t i = 0; i < seqs.got.size(); ++i) {
    if (seqs.got[i].value != i) FAIL("message " << i << " is Seq " << seqs.got[i].value);
  }
  CHECK_FALSE(f.mgr.has_process_group("sender"));
  CHECK_THROWS_AS(f.mgr.queue_message_to_group("sender", test::Ping{1}), sage::no_such_group);
  CHECK(tick_until(f.mgr, [&] { return !process_alive(pid); }));
}

TEST_CASE("a child stopped with SIGSTOP while the main group floods it makes sends fail with send_buffer_full "
          "naming the group, and after SIGCONT everything accepted arrives in order") {
  Fixture f;
  sage::GroupOptions options;
  options.send_buffer_limit = 1 << 20;
  options.receive_buffer_limit = 1 << 20;
  options.max_message_size = 256 << 10;
  f.mgr.add_process_group<OrderedCounter>("stopped", options);
  REQUIRE(f.ping("stopped", 1));
  const int pid = f.mgr.process_group_pid("stopped");
  REQUIRE(::kill(pid, SIGSTOP) == 0);

  std::uint64_t accepted = 0;
  std::optional<sage::Error> refused;
  const auto deadline = Clock::now() + deadline_span;
  while (!refused && Clock::now() < deadline) {
    for (int i = 0; i < 5000 && !refused; ++i) {
      auto r = f.mgr.try_queue_message_to_group("stopped", test::Seq{accepted});
      if (r)
        ++accepted;
      else
        refused = r.error();
    }
    f.mgr.tick();
  }
  REQUIRE(refused.has_value());
  // The throwing form says the same (the child is still stopped, so the buffer is still full).
  std::string thrown;
  try {
    f.mgr.queue_message_to_group("stopped", test::Seq{accepted});
    ++accepted;
  } catch (const sage::send_error& e) {
    thrown = e.what();
    CHECK(e.error().code == sage::Errc::send_buffer_full);
  }
  ::kill(pid, SIGCONT);
  CHECK(refused->code == sage::Errc::send_buffer_full);
  CHECK(refused->message().find("'stopped'") != std::string::npos);
  CHECK(thrown.find("'stopped'") != std::string::npos);
  CHECK(accepted > 10000);

  Collector<test::Done> done;
  f.mgr.register_actor(done);
  bool asked = false;
  REQUIRE(tick_until(f.mgr, [&] {
    if (!asked) asked = f.mgr.try_queue_message_to_group("stopped", test::Done{accepted}).ok();
    return !done.got.empty();
  }));
  CHECK(done.got.front().value == accepted);  // UINT64_MAX would mean out of order
  f.mgr.remove_process_group("stopped");
}

TEST_CASE("a main group that stops ticking while a child floods it holds at most receive_buffer_limit plus one "
          "transport message of the link, the child is refused with send_buffer_full, and after the main group "
          "ticks again every accepted message arrives in order") {
  Fixture f;
  sage::GroupOptions options;
  options.interval = 1ms;
  options.receive_buffer_limit = 64 << 10;
  options.send_buffer_limit = 64 << 10;  // so no transport message is larger than this
  // One transport message: at most the child's send buffer, plus its hello in the first one.
  const std::size_t bound = options.receive_buffer_limit + options.send_buffer_limit + 4096;
  const std::string name = "flood-" + std::to_string(::getpid());
  std::filesystem::remove(flood_flag(name));
  struct Ordered : sage::Actor<Ordered, sage::subscribes<test::Seq, test::Done>> {
    std::uint64_t count = 0, refusals = 0;
    bool broken = false, done = false;
    bool handle(const test::Seq& m) {
      broken |= m.value != count++;
      return true;
    }
    bool handle(const test::Done& m) {
      done = true;
      refusals = m.value;
      return true;
    }
  } got;
  f.mgr.register_actor(got);
  // The main group does not tick: its link reads only in a tick, so it holds nothing in this
  // process; the kernel's socket buffer and then the child's send buffer fill, and the child is
  // refused.
  f.mgr.add_process_group<RefusedFlooder>(name, options);
  std::uint64_t most_buffered = 0;
  const auto deadline = Clock::now() + deadline_span;
  // Until the child was refused; flood_count records (3 MiB) cannot all fit in the buffers between
  // the two (the socket buffer is the kernel's default), so it goes on being refused.
  auto full = [&] {
    most_buffered = std::max(most_buffered, f.mgr.group_stats().receive_buffered_bytes);
    return std::filesystem::exists(flood_flag(name));
  };
  while (!full() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);  // polling, under a deadline
  REQUIRE(full());
  std::filesystem::remove(flood_flag(name));
  CHECK(most_buffered <= bound);
  CHECK(got.count == 0);
  // Ticking again: every Seq arrives, in order, then the child's Done with how often it was refused.
  INFO("received ", got.count, " of ", flood_count, " records before the deadline");
  REQUIRE(tick_until(f.mgr, [&] {
    most_buffered = std::max(most_buffered, f.mgr.group_stats().receive_buffered_bytes);
    return got.done;
  }));
  CHECK(most_buffered <= bound);
  CHECK(got.count == flood_count);
  CHECK_FALSE(got.broken);
  CHECK(got.refusals >= 1);
  f.mgr.unregister_actor(got);
  f.mgr.remove_process_group(name);
}

TEST_CASE("the IPC directory removed under a running group leaves its link working, a new group fails naming "
          "itself, and removal and teardown still work") {
  Fixture f;
  f.mgr.add_process_group<Ponger>("survivor");
  REQUIRE(f.ping("survivor", 7));
  const std::string dir = sage::detail::ManagerAccess::groups(f.mgr).ipc_dir();
  std::filesystem::remove_all(dir);
  REQUIRE_FALSE(std::filesystem::exists(dir));

  CHECK(f.ping("survivor", 8));  // connected sockets do not need their file
  std::string error;
  try {
    f.mgr.add_process_group<Ponger>("late");
    // sage may also recreate what it needs; then the new group must work.
    CHECK(f.ping("late", 9));
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    CHECK(error.find("'late'") != std::string::npos);
    CHECK_FALSE(f.mgr.has_process_group("late"));
  }
  const int pid = f.mgr.process_group_pid("survivor");
  f.mgr.remove_process_group("survivor");
  CHECK(tick_until(f.mgr, [&] { return !process_alive(pid); }));
}

TEST_CASE("a network peer that connects and sends nothing is dropped after the heartbeat timeout while other "
          "clients keep working") {
  sage::NetworkOptions options;
  options.heartbeat_interval = 100ms;
  options.heartbeat_timeout = 600ms;
  ServerAndClient net(options);
  const int silent = tcp_connect(net.port);
  REQUIRE(tick_both_until(net.server, net.client, [&] { return net.server.network_stats().connections_accepted >= 2; }));
  CHECK(net.client_gets_through(100));
  REQUIRE(tick_both_until(net.server, net.client, [&] { return net.server.network_stats().heartbeat_timeouts >= 1; }));
  // The silent socket is closed by the server: reading it ends (0 bytes or a reset), never blocks.
  char buf[64];
  timeval tv{5, 0};
  ::setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = 0;
  while ((n = ::read(silent, buf, sizeof buf)) > 0) {
  }
  CHECK(n <= 0);
  CHECK((n == 0 || errno == ECONNRESET));
  ::close(silent);
  CHECK(net.server.peers().size() == 1);  // the real client only
  CHECK(net.client_gets_through(200));
}

TEST_CASE("a network peer that disconnects in the middle of a frame is dropped as bad input naming it, and "
          "other clients keep working") {
  ServerAndClient net;
  REQUIRE(net.client_gets_through(1));
  const int rude = tcp_connect(net.port);
  // A frame header announcing 100 bytes (docs/wire-format.md "TCP framing"), then 10 of them.
  unsigned char bytes[18] = {100, 0, 0, 0, 'S', 'G', 1, 0};
  REQUIRE(::write(rude, bytes, sizeof bytes) == static_cast<ssize_t>(sizeof bytes));
  // Hang up with a FIN, not close(): closing a socket with unread data (the server's hello) sends
  // a reset, and a reset makes the kernel discard the bytes the server has not read yet.
  ::shutdown(rude, SHUT_WR);
  REQUIRE(tick_both_until(net.server, net.client, [&] { return net.server.network_stats().bad_input >= 1; }));
  ::close(rude);
  const std::string why = net.server.network_stats().last_bad_input;
  INFO(why);
  CHECK(why.find("127.0.0.1") != std::string::npos);
  CHECK(net.server.peers().size() == 1);
  CHECK(net.client_gets_through(50));
}

TEST_CASE("a network client that disconnects after sending has every accepted message delivered first") {
  ServerAndClient net;
  std::uint64_t sent = 0;
  REQUIRE(tick_both_until(net.server, net.client, [&] { return !net.client.peers().empty() && net.client.peers()[0].connected; }));
  for (int i = 0; i < 5000; ++i) {
    net.client.send_message(test::Food{i});
    ++sent;
    if (i % 500 == 0) net.client.tick();
  }
  net.client.tick();
  net.client.disconnect();  // sends what is queued, then closes
  REQUIRE(tick_both_until(net.server, net.client, [&] { return net.food.got.size() >= sent; }));
  for (std::size_t i = 0; i < net.food.got.size(); ++i)
    if (net.food.got[i].value != static_cast<int>(i)) FAIL("message " << i << " is Food " << net.food.got[i].value);
  CHECK(net.food.got.size() == sent);
}

namespace {
// Never returns from its handler: the child's tick hangs.
struct Sleeper : sage::Actor<Sleeper, sage::subscribes<test::Ping>> {
  bool handle(const test::Ping&) {
    for (;;) ::pause();
  }
};
}  // namespace

TEST_CASE("a child whose handler never returns is reported as unresponsive by the watchdog and restarted by "
          "the policy, and without a watchdog a blocking handler is left alone") {
  Fixture f;
  sage::GroupOptions options;
  options.watchdog = 300ms;
  options.restart.mode = sage::RestartPolicy::Mode::on_failure;
  f.mgr.add_process_group<Sleeper>("sleeper", options);
  f.mgr.add_process_group<Sleeper>("patient");  // no watchdog
  f.mgr.queue_message_to_group("sleeper", test::Ping{1});
  f.mgr.queue_message_to_group("patient", test::Ping{1});
  auto failure = tick_until_failure(f.mgr);
  REQUIRE(failure.has_value());
  CHECK(failure->group() == "sleeper");
  CHECK(failure->reason().find("unresponsive: a tick ran longer than the watchdog (300 ms)") != std::string::npos);
  CHECK(failure->restarted());
  CHECK(f.mgr.has_process_group("sleeper"));
  // The restarted child ticks again: it answers nothing (Sleeper), but it is up and its watchdog
  // fires again on the next Ping.
  REQUIRE(tick_until(f.mgr, [&] { return f.mgr.process_group_pid("sleeper") > 0; }));
  const auto patient = f.mgr.process_group_pid("patient");
  CHECK(process_alive(patient));
  CHECK(f.mgr.has_process_group("patient"));
}

namespace {
// Reads `fd` until the other end closes it (0 or a reset) or 5 s pass; whether it was closed.
bool closed_by_server(int fd) {
  char buf[256];
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
  }
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// stderr of this process goes to a file while it lives; text() reads what was written.
struct CapturedStderr {
  std::string path = std::filesystem::temp_directory_path() / ("sage-stderr-" + std::to_string(::getpid()));
  int saved = ::dup(2);
  CapturedStderr() {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~CapturedStderr() {
    ::dup2(saved, 2);
    ::close(saved);
    ::unlink(path.c_str());
  }
  std::string text() const {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("a network peer that connects and never completes its hello is dropped at the hello deadline though "
          "its heartbeat timeout is far away") {
  sage::NetworkOptions options;
  options.heartbeat_timeout = 60s;
  options.hello_timeout = 300ms;
  ServerAndClient net(options);
  REQUIRE(net.client_gets_through(1));
  const int silent = tcp_connect(net.port);
  const int dripping = tcp_connect(net.port);
  const unsigned char header[8] = {40, 0, 0, 0, 'S', 'G', 1, 0};
  std::size_t sent = 0;
  REQUIRE(tick_both_until(net.server, net.client, [&] {
    if (sent < sizeof header) sent += static_cast<std::size_t>(std::max<ssize_t>(0, ::write(dripping, header + sent, 1)));
    return net.server.network_stats().hello_timeouts >= 2;
  }));
  CHECK(closed_by_server(silent));
  CHECK(closed_by_server(dripping));
  ::close(silent);
  ::close(dripping);
  CHECK(net.server.peers().size() == 1);
  CHECK(net.client_gets_through(100));
}

TEST_CASE("a network peer that trickles one byte at a time inside a frame is dropped at the frame deadline, "
          "though every byte would reset its heartbeat timeout") {
  sage::NetworkOptions options;
  options.heartbeat_interval = 100ms;
  options.heartbeat_timeout = 1s;
  options.hello_timeout = 60s;
  options.frame_timeout = 500ms;
  ServerAndClient net(options);
  REQUIRE(net.client_gets_through(1));
  const int slow = tcp_connect(net.port);
  // A frame header announcing 4096 bytes, then one byte every ~20 ms.
  const unsigned char header[8] = {0, 16, 0, 0, 'S', 'G', 1, 0};
  REQUIRE(::write(slow, header, sizeof header) == 8);
  auto last = Clock::now();
  REQUIRE(tick_both_until(net.server, net.client, [&] {
    if (Clock::now() - last >= 20ms) {
      const char b = 0;
      (void)::write(slow, &b, 1);  // fails once the server closed it
      last = Clock::now();
    }
    return net.server.network_stats().frame_timeouts >= 1;
  }));
  CHECK(net.server.network_stats().heartbeat_timeouts == 0);
  CHECK(closed_by_server(slow));
  ::close(slow);
  CHECK(net.client_gets_through(100));
}

TEST_CASE("connections past NetworkOptions::max_peers are closed at accept and counted, and the peers "
          "already connected keep working") {
  sage::NetworkOptions options;
  options.max_peers = 2;
  ServerAndClient net(options);
  REQUIRE(net.client_gets_through(1));
  const int second = tcp_connect(net.port);
  REQUIRE(tick_both_until(net.server, net.client, [&] { return net.server.network_stats().connections_accepted >= 2; }));
  int extra[3];
  for (int& fd : extra) fd = tcp_connect(net.port);
  REQUIRE(tick_both_until(net.server, net.client, [&] { return net.server.network_stats().peers_refused >= 3; }));
  for (int fd : extra) {
    CHECK(closed_by_server(fd));
    ::close(fd);
  }
  CHECK(net.server.peers().size() == 2);
  CHECK(net.client_gets_through(100));
  ::close(second);
}

TEST_CASE("dropped network peers are logged for the first few in an interval, then as one summary line") {
  sage::NetworkOptions options;
  options.drop_log_burst = 3;
  options.drop_log_interval = 1s;
  ServerAndClient net(options);
  REQUIRE(net.client_gets_through(1));
  CapturedStderr err;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    const int fd = tcp_connect(net.port);
    const char garbage[16] = "not a sage peer";
    REQUIRE(::write(fd, garbage, sizeof garbage) == static_cast<ssize_t>(sizeof garbage));
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }
  REQUIRE(tick_both_until(net.server, net.client, [&] {
    return net.server.network_stats().bad_input >= 20 && err.text().find("more dropped peers") != std::string::npos;
  }));
  // A burst of lines per interval the drops were spread over (one or two on an idle machine; a
  // loaded one may take longer to see all 20).
  const auto intervals = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count() + 2;
  const std::string text = err.text();
  INFO(text);
  CHECK(count(text, "sage: network: dropped ") <= static_cast<std::size_t>(3 * intervals));
  CHECK(count(text, "sage: network: dropped ") >= 3);
  CHECK(count(text, "sage: network: dropped ") < 20);
  CHECK(net.server.network_stats().drop_logs_suppressed >= 1);
  CHECK(net.client_gets_through(100));
}

// The network examples against strangers (issue "Trust at the network edge", item 6; README.md "The
// network examples, run safely"). examples/cluster, examples/chat and examples/positions run as real
// processes on 127.0.0.1, port 0, configured as the README says; the test process is the stranger,
// with sage's public API (a Manager without the key, with a wrong key, with a valid key asking for
// what it may not have) and raw sockets. Each case fails if the example's protection is taken away,
// and each ends with the good path still working. Every wait has a deadline.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "chat.sage.hpp"
#include "cluster.sage.hpp"
#include "net_util.hpp"
#include "positions.sage.hpp"
#include "sage/datagram.hpp"
#include "sage/manager.hpp"
#include "shell.hpp"

extern char** environ;

using namespace std::chrono_literals;
using sage::test_support::TempDir;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto deadline_span = 30s;  // long enough for a loaded 2-core machine

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds span = deadline_span) {
  const auto end = Clock::now() + span;
  while (!done()) {
    if (Clock::now() > end) return false;
    ::usleep(10'000);  // polling another process's output file, not synchronising with it
  }
  return true;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// An example program run as a child process, stdout and stderr in files of `dir`; stdin is a pipe
// the test holds open (close_stdin() ends the input). Killed and reaped at scope exit.
struct Program {
  pid_t pid = -1;
  std::string out_path, err_path;
  int stdin_fd = -1;
  int status = -1;  // the wait status once it exited

  Program(const std::string& exe, const std::vector<std::string>& args, const std::string& dir, const std::string& tag) {
    out_path = dir + "/" + tag + ".out";
    err_path = dir + "/" + tag + ".err";
    int in[2];
    REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> all{exe};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    stdin_fd = in[1];
    REQUIRE_MESSAGE(rc == 0, "cannot start " << exe);
  }
  ~Program() {
    close_stdin();
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  std::string out() const { return slurp(out_path); }
  std::string err() const { return slurp(err_path); }
  std::string both() const { return "stdout:\n" + out() + "stderr:\n" + err(); }
  void type(const std::string& text) { REQUIRE(::write(stdin_fd, text.data(), text.size()) == static_cast<ssize_t>(text.size())); }
  void close_stdin() {
    if (stdin_fd >= 0) ::close(stdin_fd), stdin_fd = -1;
  }
  bool running() {
    if (pid <= 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      status = st;
      return false;
    }
    return true;
  }
  // The exit code once it exited by itself within the deadline; nullopt otherwise (still running,
  // or killed by a signal: an abort is not an exit).
  std::optional<int> exit_code(std::chrono::milliseconds span = deadline_span) {
    if (!eventually([&] { return !running(); }, span)) return std::nullopt;
    if (!WIFEXITED(status)) return std::nullopt;
    return WEXITSTATUS(status);
  }
  bool says(const std::string& text, std::chrono::milliseconds span = deadline_span) const {
    return eventually([&] { return out().find(text) != std::string::npos; }, span);
  }
  // The number after `prefix` on stdout (a port), once it is there.
  std::uint16_t number_after(const std::string& prefix) const {
    REQUIRE_MESSAGE(says(prefix), both());
    const std::string o = out();
    return static_cast<std::uint16_t>(std::stoi(o.substr(o.find(prefix) + prefix.size())));
  }
};

// A key file of `dir` for key id `id`, as `cluster keygen` writes one.
struct KeyFile {
  sage::SharedKey key;
  std::string path;
  KeyFile(const std::string& dir, const std::string& id) : key(sage::SharedKey::generate(id)), path(dir + "/" + id + ".key") {
    std::ofstream(path) << key.hex() << "\n";
  }
  std::vector<std::string> args() const { return {"--key-file", path, "--key-id", key.id}; }
};

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A stranger's attempt to host group `name` at the cluster server: the reason it was refused, or
// nullopt if it got the name (it then leaves at once).
std::optional<std::string> try_join(std::uint16_t port, const std::string& name, std::vector<sage::SharedKey> keys) {
  sage::Manager stranger;
  sage::NetworkOptions o;
  o.keys = std::move(keys);
  o.connect_timeout = 10s;
  stranger.enable_network(o);
  stranger.register_messages(cluster::cluster_wire_messages{});
  try {
    stranger.join_as_group("127.0.0.1", port, name);
  } catch (const sage::network_error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

// The cluster's server with one key per worker, on loopback.
Program cluster_server(const std::string& dir, const std::vector<const KeyFile*>& keys) {
  std::vector<std::string> args{"server", "0", "127.0.0.1"};
  for (auto* k : keys) args = cat(args, k->args());
  return Program(SAGE_EXAMPLE_CLUSTER, args, dir, "server");
}

// Runs both real workers against the server; checks that the server ends with the right total.
void workers_finish_the_job(Program& server, std::uint16_t port, const std::string& dir, const KeyFile& w1,
                            const KeyFile& w2) {
  Program worker1(SAGE_EXAMPLE_CLUSTER, cat({"worker", "127.0.0.1", std::to_string(port)}, w1.args()), dir, "worker-1");
  Program worker2(SAGE_EXAMPLE_CLUSTER, cat({"worker", "127.0.0.1", std::to_string(port)}, w2.args()), dir, "worker-2");
  CHECK_MESSAGE(server.exit_code() == 0, server.both() << worker1.both() << worker2.both());
  CHECK(server.out().find("total: 499500") != std::string::npos);
  CHECK(worker1.out().find("summed 500 numbers: 124750") != std::string::npos);
  CHECK(worker2.out().find("summed 500 numbers: 374750") != std::string::npos);
}

}  // namespace

// ---- examples/cluster ----

TEST_CASE("security: examples/cluster refuses nodes without a worker's key, and the keyed workers then do the job") {
  TempDir dir("sage_examples", "cluster_keys");
  const KeyFile w1(dir.path, "worker-1"), w2(dir.path, "worker-2");
  Program server = cluster_server(dir.path, {&w1, &w2});
  const auto port = server.number_after("listening on port ");

  const auto no_key = try_join(port, "worker-1", {});
  REQUIRE_MESSAGE(no_key.has_value(), "a node without a key got worker-1");
  CHECK(no_key->find("shared-key") != std::string::npos);
  const auto wrong_bytes = try_join(port, "worker-1", {sage::SharedKey::generate("worker-1")});
  REQUIRE_MESSAGE(wrong_bytes.has_value(), "a node with another key named worker-1 got worker-1");
  CHECK(wrong_bytes->find("does not match") != std::string::npos);
  const auto unknown_id = try_join(port, "worker-1", {sage::SharedKey::generate("stranger")});
  REQUIRE_MESSAGE(unknown_id.has_value(), "a node with an unknown key got worker-1");
  CHECK(unknown_id->find("does not know this key id") != std::string::npos);
  {  // raw bytes: a hello and a join_group, no handshake; then gone
    nt::RawSocket raw(port);
    REQUIRE(raw.write_all(nt::raw_join("worker-2")));
  }
  CHECK(server.running());
  workers_finish_the_job(server, port, dir.path, w1, w2);
  CHECK(server.out().find("lost") == std::string::npos);
}

TEST_CASE("security: a node of examples/cluster holding one worker's key cannot take another worker's group or any other name") {
  TempDir dir("sage_examples", "cluster_identity");
  const KeyFile w1(dir.path, "worker-1"), w2(dir.path, "worker-2");
  Program server = cluster_server(dir.path, {&w1, &w2});
  const auto port = server.number_after("listening on port ");

  // A valid key, proven; but key:worker-1 is not worker-2's identity, nor anyone's for 'payments'.
  const auto squat = try_join(port, "worker-2", {w1.key});
  REQUIRE_MESSAGE(squat.has_value(), "the holder of worker-1's key took worker-2");
  CHECK(squat->find("not admitted") != std::string::npos);
  CHECK(squat->find("hosted only by the node holding key 'worker-2'") != std::string::npos);
  const auto other = try_join(port, "payments", {w2.key});
  REQUIRE_MESSAGE(other.has_value(), "the holder of worker-2's key took 'payments'");
  CHECK(other->find("not admitted") != std::string::npos);
  CHECK(server.running());
  workers_finish_the_job(server, port, dir.path, w1, w2);  // worker-2 was still free
}

TEST_CASE("security: a squatter with a worker's key is refused while that worker's node lives") {
  TempDir dir("sage_examples", "cluster_squat");
  const KeyFile w1(dir.path, "worker-1"), w2(dir.path, "worker-2");
  Program server = cluster_server(dir.path, {&w1, &w2});
  const auto port = server.number_after("listening on port ");
  // worker-1 joins, answers, and stays until the server says bye (after worker-2 answered too).
  Program worker1(SAGE_EXAMPLE_CLUSTER, cat({"worker", "127.0.0.1", std::to_string(port)}, w1.args()), dir.path, "worker-1");
  REQUIRE_MESSAGE(worker1.says("summed 500 numbers"), worker1.both() << server.both());
  const auto squat = try_join(port, "worker-1", {w1.key});  // a stolen key: still not while the node lives
  REQUIRE_MESSAGE(squat.has_value(), "a second node took worker-1 while the first lived");
  CHECK(squat->find("taken") != std::string::npos);
  Program worker2(SAGE_EXAMPLE_CLUSTER, cat({"worker", "127.0.0.1", std::to_string(port)}, w2.args()), dir.path, "worker-2");
  CHECK_MESSAGE(server.exit_code() == 0, server.both() << worker1.both() << worker2.both());
  CHECK(server.out().find("total: 499500") != std::string::npos);
}

TEST_CASE("security: a worker node that joins examples/cluster and vanishes does not end the server, and its share goes to the node that joins again") {
  TempDir dir("sage_examples", "cluster_vanish");
  const KeyFile w1(dir.path, "worker-1"), w2(dir.path, "worker-2");
  Program server = cluster_server(dir.path, {&w1, &w2});
  const auto port = server.number_after("listening on port ");
  auto count = [&](const std::string& what) {
    const std::string out = server.out();
    std::size_t n = 0;
    for (auto at = out.find(what); at != std::string::npos; at = out.find(what, at + 1)) ++n;
    return n;
  };
  for (std::size_t round = 1; round <= 3; ++round) {  // joins as worker-1, takes the numbers, leaves without answering
    {
      sage::Manager vanishing;
      sage::NetworkOptions o;
      o.keys = {w1.key};
      vanishing.enable_network(o);
      vanishing.register_messages(cluster::cluster_wire_messages{});
      vanishing.join_as_group("127.0.0.1", port, "worker-1");
      REQUIRE_MESSAGE(eventually([&] { return count("worker-1 joined, sent it 500 numbers") == round; }), server.both());
    }  // ~Manager closes its connection: the server's tick() throws group_error for worker-1
    REQUIRE_MESSAGE(eventually([&] { return count("worker-1 lost") == round; }), server.both());
    CHECK(server.running());
  }
  workers_finish_the_job(server, port, dir.path, w1, w2);
}

// ---- examples/chat ----

namespace {

using ChatInbox = nt::Recorder<chat::Line, sage::PeerConnected, sage::PeerRefused, sage::PeerDisconnected>;

Program chat_server(const std::string& dir, const KeyFile* key) {
  return Program(SAGE_EXAMPLE_CHAT, cat({"server", "0", "127.0.0.1"}, key ? key->args() : std::vector<std::string>{}),
                 dir, "server");
}

// A chat client in the test process (the keys it holds), connected and joined as `nick`.
struct ChatPeer {
  sage::Manager mgr;
  ChatInbox inbox;
  sage::Sender server;
  ChatPeer(std::uint16_t port, std::vector<sage::SharedKey> keys) {
    sage::NetworkOptions o;
    o.keys = std::move(keys);
    mgr.enable_network(o);
    mgr.register_messages(chat::chat_wire_messages{});
    mgr.register_actor(inbox);
    server = mgr.connect("127.0.0.1", port);
  }
  // Sends `msg` to the server and ticks until `done` (another process's doing) or the deadline.
  template <class M>
  bool send_until(const M& msg, const std::function<bool()>& done) {
    mgr.send_message(msg, server);
    return eventually([&] {
      mgr.tick();
      return done();
    });
  }
  bool sees(const std::string& text) {
    return eventually([&] {
      mgr.tick();
      for (auto& l : inbox.all<chat::Line>())
        if ((l.nick + ": " + l.text).find(text) != std::string::npos) return true;
      return false;
    });
  }
};

}  // namespace

TEST_CASE("security: examples/chat with a key refuses clients without it or with another, and serves a client with it") {
  TempDir dir("sage_examples", "chat_keys");
  const KeyFile key(dir.path, "chat");
  Program server = chat_server(dir.path, &key);
  const auto port = server.number_after("listening on port ");

  {  // no key: the server drops it before it is a peer; the client is told why
    ChatPeer plain(port, {});
    auto& refused = plain.inbox.all<sage::PeerRefused>();
    auto& gone = plain.inbox.all<sage::PeerDisconnected>();
    REQUIRE(eventually([&] {
      plain.mgr.tick();
      return !refused.empty() || !gone.empty() || !plain.inbox.all<sage::PeerConnected>().empty();
    }));
    REQUIRE_MESSAGE(plain.inbox.all<sage::PeerConnected>().empty(), "a client without the key got in");
    const std::string why = (refused.empty() ? gone.front().reason : refused.front().reason).message();
    CHECK_MESSAGE(why.find("requires the shared-key handshake") != std::string::npos, why);
  }
  for (const auto& wrong : {sage::SharedKey::generate("chat"), sage::SharedKey::generate("other")}) {
    bool refused = false;
    try {
      ChatPeer stranger(port, {wrong});
    } catch (const sage::network_error& e) {
      refused = std::string(e.what()).find("refused") != std::string::npos;
    }
    CHECK_MESSAGE(refused, "a client with the key '" << wrong.id << "' of other bytes was not refused");
  }
  // A real chat client with the key, and one in the test process: they talk.
  Program ann(SAGE_EXAMPLE_CHAT, cat({"client", "127.0.0.1", std::to_string(port), "ann"}, key.args()), dir.path, "ann");
  REQUIRE_MESSAGE(server.says("ann joined"), server.both() << ann.both());
  ChatPeer bob(port, {key.key});
  REQUIRE(eventually([&] {
    bob.mgr.tick();
    return !bob.inbox.all<sage::PeerConnected>().empty();
  }));
  CHECK(bob.inbox.all<sage::PeerConnected>().front().identity == "key:chat");
  CHECK_MESSAGE(bob.send_until(chat::Join{"bob"}, [&] { return ann.says("[ann sees] <server> bob joined", 0ms); }),
                ann.both());
  ann.type("hi bob\n");
  CHECK(bob.sees("ann: hi bob"));
  ann.close_stdin();  // ann leaves at the end of its input
  CHECK(ann.exit_code() == 0);
  CHECK(server.running());
}

TEST_CASE("security: examples/chat refuses a peer that asks to host a group, and strangers that join and vanish do not end it") {
  TempDir dir("sage_examples", "chat_groups");
  Program server = chat_server(dir.path, nullptr);  // even without a key
  const auto port = server.number_after("listening on port ");
  for (int i = 0; i < 20; ++i) {  // hello + join_group, then gone at once
    nt::RawSocket stranger(port);
    REQUIRE(stranger.write_all(nt::raw_join("workers")));
  }
  {  // one that waits for the answer: the server's own reason
    nt::RawSocket stranger(port);
    REQUIRE(stranger.write_all(nt::raw_join("workers")));
    stranger.shutdown_write();
    std::string answer;
    REQUIRE(eventually([&] {
      pollfd p{stranger.fd, POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) return false;
      char buf[4096];
      const auto n = ::recv(stranger.fd, buf, sizeof buf, 0);
      if (n > 0) answer.append(buf, static_cast<std::size_t>(n));
      return n <= 0;
    }));
    CHECK_MESSAGE(answer.find("this chat server hosts no groups") != std::string::npos, answer);
  }
  // With sage's API, as a node would: refused with the same reason.
  sage::Manager node;
  node.register_messages(chat::chat_wire_messages{});
  std::string why;
  try {
    node.join_as_group("127.0.0.1", port, "workers");
  } catch (const sage::network_error& e) {
    why = e.what();
  }
  CHECK_MESSAGE(why.find("this chat server hosts no groups") != std::string::npos, why);
  CHECK(server.running());
  ChatPeer ann(port, {}), bob(port, {});  // and it still serves its clients
  REQUIRE(ann.send_until(chat::Join{"ann"}, [&] { return server.says("ann joined", 0ms); }));
  REQUIRE(bob.send_until(chat::Join{"bob"}, [&] { return server.says("bob joined", 0ms); }));
  CHECK(ann.sees("server: bob joined"));
  CHECK(server.running());
}

TEST_CASE("security: a client of examples/chat that joins, forges lines and vanishes does not end it or write raw control characters") {
  TempDir dir("sage_examples", "chat_forge");
  const KeyFile key(dir.path, "chat");
  Program server = chat_server(dir.path, &key);
  const auto port = server.number_after("listening on port ");
  Program ann(SAGE_EXAMPLE_CHAT, cat({"client", "127.0.0.1", std::to_string(port), "ann"}, key.args()), dir.path, "ann");
  REQUIRE_MESSAGE(server.says("ann joined"), server.both() << ann.both());
  {
    ChatPeer eve(port, {key.key});                                  // a client with the key, turned hostile
    eve.mgr.send_message(chat::Say{"before joining"}, eve.server);  // not in the chat yet: not relayed
    eve.mgr.send_message(chat::Join{"eve\nmallory joined"}, eve.server);
    REQUIRE_MESSAGE(eve.send_until(chat::Say{"\x1b[2Jcleared\n[ann sees] <server> forged"},
                                   [&] { return ann.says("cleared", 0ms); }),
                    ann.both());
  }  // eve's Manager is gone, its connection closed
  REQUIRE_MESSAGE(ann.says(" left"), ann.both());
  const std::string seen = ann.out(), logged = server.out();
  CHECK(seen.find("before joining") == std::string::npos);
  CHECK(seen.find('\x1b') == std::string::npos);
  CHECK(seen.find("\n[ann sees] <server> forged") == std::string::npos);  // escaped: still on eve's line
  CHECK(seen.find("\\x1b[2Jcleared\\x0a[ann sees] <server> forged") != std::string::npos);
  CHECK(logged.find("\nmallory joined") == std::string::npos);
  CHECK(logged.find("eve\\x0amallory joined") != std::string::npos);
  CHECK(server.running());
  CHECK(ann.running());
  ChatPeer bob(port, {key.key});  // the server still serves
  CHECK(bob.send_until(chat::Join{"bob"}, [&] { return ann.says("[ann sees] <server> bob joined", 0ms); }));
}

TEST_CASE("security: a client of examples/chat reports a server that refuses or leaves and exits 1, not by a crash") {
  TempDir dir("sage_examples", "chat_client");
  const KeyFile key(dir.path, "chat");
  Program server = chat_server(dir.path, &key);
  const auto port = server.number_after("listening on port ");
  // No key at a keyed server: refused, said on stderr.
  Program plain(SAGE_EXAMPLE_CHAT, {"client", "127.0.0.1", std::to_string(port), "plain"}, dir.path, "plain");
  plain.close_stdin();  // nothing to type: it still waits for the server's answer before it leaves
  CHECK_MESSAGE(plain.exit_code() == 1, plain.both());
  CHECK(plain.err().find("shared-key") != std::string::npos);
  // The server goes away under a connected client.
  Program ann(SAGE_EXAMPLE_CHAT, cat({"client", "127.0.0.1", std::to_string(port), "ann"}, key.args()), dir.path, "ann");
  REQUIRE_MESSAGE(server.says("ann joined"), server.both() << ann.both());
  ::kill(server.pid, SIGKILL);
  CHECK_MESSAGE(ann.exit_code() == 1, ann.both());
  CHECK(ann.err().find("chat: lost") != std::string::npos);
}

// ---- examples/positions (ENet) ----

namespace {

Program positions_server(const std::string& dir, std::vector<std::string> allow, const std::string& tag) {
  std::vector<std::string> args{"server", "0", "127.0.0.1"};
  for (auto& a : allow) args = cat(args, {"--allow", a});
  return Program(SAGE_EXAMPLE_POSITIONS, args, dir, tag);
}

}  // namespace

TEST_CASE("security: examples/positions admits positions clients only, from allowed addresses, and a stranger that vanishes does not end it") {
  TempDir dir("sage_examples", "positions");
  Program server = positions_server(dir.path, {}, "server");  // 127.0.0.1 only
  const auto port = server.number_after("listening on enet://127.0.0.1:");
  {  // another program (its hello names it "mallory"): refused with the reason, then gone
    sage::Manager mallory;
    sage::DatagramOptions o;
    o.name = "mallory";
    mallory.enable_datagrams(o);
    mallory.register_messages(positions::positions_wire_messages{});
    nt::Recorder<positions::Position, sage::PeerConnected, sage::PeerRefused> inbox;
    mallory.register_actor(inbox);
    mallory.connect_datagram("127.0.0.1", port);
    // Its own PeerConnected may come first (the server's hello can arrive before the refusal of
    // ours); the refusal follows, and no position ever reaches it.
    REQUIRE_MESSAGE(eventually([&] {
      mallory.tick();
      return !inbox.all<sage::PeerRefused>().empty();
    }), "a peer that is no positions client was not refused");
    CHECK(inbox.all<sage::PeerRefused>().front().reason.message().find("serves positions clients only") != std::string::npos);
    CHECK(inbox.all<positions::Position>().empty());
  }
  CHECK(server.running());
  Program client(SAGE_EXAMPLE_POSITIONS, {"client", "127.0.0.1", std::to_string(port)}, dir.path, "client");
  CHECK_MESSAGE(client.says("chat #"), client.both() << server.both());
  ::kill(client.pid, SIGKILL);  // a client that vanishes
  Program again(SAGE_EXAMPLE_POSITIONS, {"client", "127.0.0.1", std::to_string(port)}, dir.path, "again");
  CHECK_MESSAGE(again.says("chat #"), again.both() << server.both());
  CHECK(server.running());

  // A server that allows another address: the client from 127.0.0.1 is refused and says why.
  Program elsewhere = positions_server(dir.path, {"127.0.0.2"}, "elsewhere");
  const auto other_port = elsewhere.number_after("listening on enet://127.0.0.1:");
  Program refused(SAGE_EXAMPLE_POSITIONS, {"client", "127.0.0.1", std::to_string(other_port)}, dir.path, "refused");
  CHECK_MESSAGE(refused.exit_code() == 1, refused.both() << elsewhere.both());
  CHECK(refused.err().find("address 127.0.0.1 is not allowed here") != std::string::npos);
  CHECK(refused.out().find("chat #") == std::string::npos);
}

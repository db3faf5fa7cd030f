// A server hands the numbers 0..999 to worker nodes, each a remote group (docs/network.md "Remote
// groups") that sums its share; the server prints the total.
//   cluster keygen worker-1.key                                    a new key file, once per worker
//   cluster server PORT [ADDRESS] --key-file worker-1.key --key-id worker-1 --key-file worker-2.key --key-id worker-2
//   cluster worker HOST PORT --key-file worker-1.key --key-id worker-1          one per key, anywhere
//   cluster                                                        all in one process (keys made on the spot)
// Only authenticated workers get in: the server listens in shared-key mode (docs/security.md
// "Shared keys") with one key per worker, and its admission hook lets group NAME be hosted only by
// the node that proved key NAME. A worker that is lost (killed, cut off) is reported and its share
// goes to whoever joins again under its name; nothing a stranger sends ends the server.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster.sage.hpp"
#include "printable.hpp"
#include "sage/manager.hpp"
#include "sage/remote_group.hpp"

using namespace std::chrono_literals;

namespace {


struct Boss : sage::Actor<Boss, sage::subscribes<cluster::Sum>> {
  struct Share {
    std::vector<std::int32_t> values;
    bool sent = false;               // to the node that hosts the worker's group now
    std::optional<long long> total;  // its answer
  };
  sage::Manager& mgr;
  std::map<std::string, Share> shares;  // by worker (group) name

  // 0..999 in one share per worker.
  Boss(sage::Manager& m, const std::vector<std::string>& workers) : mgr(m) {
    const std::size_t n = workers.size();
    for (std::size_t i = 0; i < n; ++i) {
      auto& s = shares[workers[i]];
      for (std::size_t v = 1000 * i / n; v < 1000 * (i + 1) / n; ++v) s.values.push_back(static_cast<std::int32_t>(v));
    }
  }
  // Each tick: a worker that joined (again) and has no answer yet gets its share.
  void assign() {
    for (auto& [name, s] : shares) {
      if (s.sent || s.total || !mgr.has_remote_group(name)) continue;
      if (auto r = mgr.try_queue_message_to_group(name, cluster::Numbers{s.values}); !r) {
        std::printf("server: cannot send to %s: %s\n", name.c_str(), printable(r.error().message()).c_str());
        continue;  // tried again next tick
      }
      s.sent = true;
      std::printf("server: %s joined, sent it %zu numbers\n", name.c_str(), s.values.size());
    }
  }
  bool handle(const cluster::Sum& sum, const sage::Sender& from) {
    const std::string name(mgr.group_name(from));
    auto it = shares.find(name);
    if (it == shares.end() || !it->second.sent || it->second.total) {  // only the answer we asked for
      std::printf("server: ignored a Sum from '%s'\n", printable(name).c_str());
      return true;
    }
    it->second.total = sum.total;
    return true;
  }
  // The node hosting `name` was lost (tick() threw group_error): a new one gets the share again.
  void lost(const sage::group_error& e) {
    std::printf("server: %s lost (%s); waiting for it to join again\n", printable(e.group()).c_str(),
                printable(e.reason()).c_str());
    if (auto it = shares.find(e.group()); it != shares.end() && !it->second.total) it->second.sent = false;
  }
  bool done() const {
    return std::all_of(shares.begin(), shares.end(), [](auto& s) { return s.second.total.has_value(); });
  }
  long long total() const {
    long long t = 0;
    for (auto& [name, s] : shares) t += s.total.value_or(0);
    return t;
  }
};

// A worker node's default actor: sums what the main group sends, answers the main group.
struct Worker : sage::Actor<Worker, sage::subscribes<cluster::Numbers>> {
  sage::Manager& mgr;
  explicit Worker(sage::Manager& m) : mgr(m) {}
  bool handle(const cluster::Numbers& n, const sage::Sender& from) {
    const std::string me(mgr.group_name());
    if (mgr.group_name(from) != sage::main_group) {  // relayed from another node: not our boss
      std::printf("worker %s: ignored numbers from '%s'\n", me.c_str(), printable(mgr.group_name(from)).c_str());
      return true;
    }
    const long long sum = std::accumulate(n.values.begin(), n.values.end(), 0LL);
    std::printf("worker %s: summed %zu numbers: %lld\n", me.c_str(), n.values.size(), sum);
    if (auto r = mgr.try_queue_message_to_group(from, cluster::Sum{sum}); !r)
      std::printf("worker %s: cannot answer: %s\n", me.c_str(), printable(r.error().message()).c_str());
    return true;
  }
};

// A worker joins as group `key.id`, proving `key`: 0 when the server ended the group, 1 when the
// server was lost, 2 when it could not join (refused: the reason is on stderr).
int run_worker(const std::string& host, std::uint16_t port, const sage::SharedKey& key) {
  sage::RemoteGroupOptions options;
  options.network.keys = {key};
  options.interval = 10ms;
  return sage::run_remote_group<Worker>(cluster::cluster_wire_messages{}, host, port, key.id, options);
}

// The server: one worker per key, named by the key's id.
int run_server(const std::string& address, std::uint16_t port, const std::vector<sage::SharedKey>& keys,
               const std::function<void(std::uint16_t)>& on_listening) {
  sage::Manager mgr;
  sage::NetworkOptions net;
  net.keys = keys;  // a connection that proves none of them is refused before it is a peer
  std::vector<std::string> workers;
  for (auto& k : keys) workers.push_back(k.id);
  // Every peer here proved a key; group NAME is hosted only by the node that proved key NAME.
  net.admit = [](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    if (r.kind == sage::AdmissionRequest::Kind::group && r.identity != "key:" + r.name)
      return "group '" + r.name + "' is hosted only by the node holding key '" + r.name + "'";
    return std::nullopt;
  };
  mgr.enable_network(net);
  mgr.register_messages(cluster::cluster_wire_messages{});
  Boss boss(mgr, workers);
  mgr.register_actor(boss);
  const auto at = mgr.listen(address, port);
  std::printf("server: listening on port %u\n", at.port);
  on_listening(at.port);
  while (!boss.done()) {
    try {
      mgr.tick();
    } catch (const sage::group_error& e) {  // a worker node died, hung up or went silent
      boss.lost(e);
    }
    boss.assign();
    mgr.wait_for_next_tick(10ms);
  }
  std::printf("total: %lld\n", boss.total());
  for (auto& name : mgr.remote_groups()) {  // bye to each worker: it returns 0
    try {
      mgr.remove_process_group(name);
    } catch (const sage::group_error& e) {  // it did not answer in time: gone anyway
      std::printf("server: %s did not end cleanly (%s)\n", printable(e.group()).c_str(), printable(e.reason()).c_str());
    }
  }
  return boss.total() == 499500 ? 0 : 1;
}

// `--key-file PATH --key-id ID` pairs taken out of argv (as examples/chat takes its one pair): the
// n-th file holds the key named by the n-th id. nullopt (with the reason on stderr) if one is bad.
std::optional<std::vector<sage::SharedKey>> take_keys(int& argc, char** argv) {
  std::vector<std::string> files, ids;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--key-file" || a == "--key-id") && i + 1 < argc) (a == "--key-file" ? files : ids).push_back(argv[++i]);
    else argv[out++] = argv[i];
  }
  argc = out;
  if (files.size() != ids.size()) {
    std::fprintf(stderr, "cluster: give --key-file and --key-id in pairs (%zu files, %zu ids)\n", files.size(), ids.size());
    return std::nullopt;
  }
  std::vector<sage::SharedKey> keys;
  for (std::size_t i = 0; i < files.size(); ++i) {
    auto key = sage::SharedKey::from_file(ids[i], files[i]);
    if (!key) {
      std::fprintf(stderr, "cluster: %s\n", key.error().message().c_str());
      return std::nullopt;
    }
    keys.push_back(*key);
  }
  return keys;
}

// `cluster keygen FILE`: a new key's 64 hex digits, in a new file only its owner can read.
int keygen(const char* path) {
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror((std::string("cluster: cannot create ") + path).c_str());
    return 1;
  }
  const std::string hex = sage::SharedKey::generate("new").hex() + "\n";
  const bool ok = ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
  ::close(fd);
  if (!ok) return 1;
  std::printf("wrote a new key to %s\n", path);
  return 0;
}

std::uint16_t port_of(const char* s) { return static_cast<std::uint16_t>(std::stoi(s)); }

}  // namespace

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines show up at once, even through a pipe
  const auto keys = take_keys(argc, argv);
  if (!keys) return 64;
  const std::string mode = argc > 1 ? argv[1] : "demo";
  if (mode == "keygen" && argc == 3) return keygen(argv[2]);
  if (mode == "server" && (argc == 3 || argc == 4) && !keys->empty())
    return run_server(argc == 4 ? argv[3] : "0.0.0.0", port_of(argv[2]), *keys, [](auto) {});
  if (mode == "worker" && argc == 4 && keys->size() == 1) return run_worker(argv[2], port_of(argv[3]), keys->front());
  if (mode != "demo" || !keys->empty()) {
    std::fprintf(stderr,
                 "usage: cluster keygen FILE\n"
                 "       cluster server PORT [ADDRESS] --key-file FILE --key-id WORKER [--key-file FILE --key-id WORKER]...\n"
                 "       cluster worker HOST PORT --key-file FILE --key-id WORKER\n"
                 "       cluster            (a server and two workers in one process)\n");
    return 64;
  }
  // The demo: keys made here, each worker on a thread with its own Manager.
  const std::vector<sage::SharedKey> demo_keys = {sage::SharedKey::generate("worker-1"),
                                                  sage::SharedKey::generate("worker-2")};
  std::vector<std::thread> workers;
  const int rc = run_server("127.0.0.1", 0, demo_keys, [&](std::uint16_t port) {
    for (const auto& key : demo_keys) workers.emplace_back([=] { run_worker("127.0.0.1", port, key); });
  });
  for (auto& w : workers) w.join();
  return rc;
} catch (const std::exception& e) {  // listen() on a port in use, a bad port number: the reason
  std::fprintf(stderr, "cluster: %s\n", e.what());
  return 1;
}

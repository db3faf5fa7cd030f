// Helpers of the network tests: ticking managers until a condition holds, raw sockets, child processes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "nettest.sage.hpp"
#include "channel/protocol.hpp"
#include "schema/description.hpp"
#include "transport/stream.hpp"
#include "sage/manager.hpp"

extern char** environ;

namespace nt {

// Listens on a free loopback port, hosting the remote groups `groups` (closed to any other name).
inline std::uint16_t listen_hosting(sage::Manager& m, std::vector<std::string> groups, sage::NetworkOptions o = {}) {
  o.remote_groups = std::move(groups);
  m.enable_network(o);
  return m.listen("127.0.0.1", 0).port;
}

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using messages = nettest::nettest_wire_messages;

// Ticks every manager until pred() holds or `limit` passed; returns pred().
inline bool tick_until(std::initializer_list<sage::Manager*> ms, const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = 20s) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    for (auto* m : ms) m->tick();
    if (pred()) return true;
    ms.begin()[0]->wait_for_next_tick(2ms);
  }
  return true;
}

// Records every message of the listed types it sees, with its sender.
template <class... Ts>
struct Recorder : sage::Actor<Recorder<Ts...>, sage::subscribes<Ts...>> {
  std::tuple<std::vector<Ts>...> got;
  std::vector<sage::Sender> from;
  template <class T>
  bool handle(const T& m, const sage::Sender& s) {
    std::get<std::vector<T>>(got).push_back(m);
    from.push_back(s);
    return false;
  }
  template <class T>
  std::vector<T>& all() {
    return std::get<std::vector<T>>(got);
  }
};

// A blocking TCP client socket to 127.0.0.1:port (for bytes no sage peer would send).
struct RawSocket {
  int fd = -1;
  explicit RawSocket(std::uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~RawSocket() {
    if (fd >= 0) ::close(fd);
  }
  bool write_all(const std::vector<std::byte>& b) {
    std::size_t at = 0;
    while (at < b.size()) {
      const auto n = ::send(fd, b.data() + at, b.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  void shutdown_write() { ::shutdown(fd, SHUT_WR); }
};

// Bytes of one frame (header + body).
inline std::vector<std::byte> frame(const std::vector<std::byte>& body) {
  std::vector<std::byte> out(sage::detail::frame_header_size);
  sage::detail::write_frame_header(out.data(), static_cast<std::uint32_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// A hello record for `entries` (what a peer sends first).
inline std::vector<std::byte> hello_record(std::vector<sage::detail::protocol::SchemaEntry> entries, std::string name,
                                           std::string description = {}) {
  sage::detail::protocol::Hello h;
  h.entries = std::move(entries);
  h.schema_fingerprint = sage::detail::protocol::schema_fingerprint(h.entries);
  h.name = std::move(name);
  h.description = std::move(description);
  std::vector<std::byte> out;
  sage::detail::protocol::append_control(out, sage::detail::protocol::Control::hello,
                                          sage::detail::protocol::encode_hello(h));
  return out;
}

// A version-1 hello record (sage before schema negotiation): 24-byte header, no description.
inline std::vector<std::byte> protocol1_hello_record(const std::string& name) {
  std::vector<std::byte> v1;
  auto put = [&](std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) v1.push_back(std::byte((v >> (8 * i)) & 0xff));
  };
  put(sage::detail::protocol::hello_magic, 4);
  put(1, 2);
  put(3, 2);
  put(0, 8);
  put(1, 4);
  put(0, 4);
  for (char c : name) v1.push_back(std::byte(c));
  std::vector<std::byte> body;
  sage::detail::protocol::append_control(body, sage::detail::protocol::Control::hello, v1);
  return body;
}

// The hello of a raw peer that knows the wire types Ms (their table and combined description).
template <class... Ms>
std::vector<std::byte> hello_knowing(std::string name) {
  auto d = sage::schema::combine({Ms::schema_description...});
  return hello_record({{static_cast<std::uint8_t>(Ms::packet_type), Ms::fingerprint}...}, std::move(name),
                      sage::schema::to_text(d.description));
}

template <class M>
std::vector<std::byte> record(const M& m) {
  auto bytes = m.to_bytes();
  std::vector<std::byte> out;
  sage::wire::append_record(out, M::packet_type, bytes);
  return out;
}

inline std::vector<std::byte> cat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A child process running the test helper; killed (if still running) and reaped by the destructor.
struct Child {
  pid_t pid = -1;
  explicit Child(std::vector<std::string> args) {
    std::vector<char*> argv;
    std::string exe = SAGE_NET_HELPER;
    argv.push_back(exe.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ) != 0) pid = -1;
  }
  // Waits (bounded) for the exit; returns the wait status or -1.
  int wait(std::chrono::milliseconds limit = 20s) {
    const auto deadline = Clock::now() + limit;
    int st = 0;
    while (pid > 0) {
      const pid_t r = ::waitpid(pid, &st, WNOHANG);
      if (r == pid) {
        pid = -1;
        return st;
      }
      if (Clock::now() > deadline) return -1;
      ::usleep(5000);  // polling a child's exit, not synchronising with it
    }
    return -1;
  }
  void kill() {
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// A "node" made of raw bytes: hello + join_group `name` (+ `extra` records) in one frame.
inline std::vector<std::byte> raw_join(const std::string& name, const std::vector<std::byte>& extra = {}) {
  namespace proto = sage::detail::protocol;
  std::vector<std::byte> body = hello_record({}, name);
  sage::wire::append_record(body, proto::code(proto::Control::join_group), proto::encode_name(name));
  return frame(cat(body, extra));
}

}  // namespace nt

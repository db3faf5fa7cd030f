// tests/datagram/lossy_relay.hpp: a lossy link for datagram tests and examples: a UDP relay on
// 127.0.0.1 between clients and one server that drops, duplicates, delays and reorders datagrams
// with a fixed seed.
//
// Clients send to relay.port(); each client address gets its own upstream socket towards the
// server, so the server sees one address per client and its answers find their way back. Both
// directions pass the same faults. The relay runs on a thread of its own (plain sockets, no sage
// or ENet state); rates can be changed while it runs (blackhole() drops everything: a cut link).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lossy {

struct Faults {
  double drop = 0;       // probability a datagram is lost
  double duplicate = 0;  // probability it is sent twice
  double reorder = 0;    // probability it is held back so that later ones overtake it
  int delay_ms = 0;      // fixed extra latency of every datagram
  int reorder_ms = 15;   // how long a reordered datagram is held back (on top of delay_ms)
};

class Relay {
 public:
  Relay(std::uint16_t server_port, Faults faults, std::uint32_t seed = 12345)
      : server_port_(server_port), faults_(faults), rng_(seed) {
    front_ = bound_socket();
    running_ = true;
    thread_ = std::thread([this] { run(); });
  }
  ~Relay() {
    running_ = false;
    thread_.join();
    ::close(front_);
    for (auto& [k, fd] : upstream_) ::close(fd);
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  std::uint16_t port() const {
    sockaddr_in a{};
    socklen_t n = sizeof a;
    ::getsockname(front_, reinterpret_cast<sockaddr*>(&a), &n);
    return ntohs(a.sin_port);
  }
  void blackhole(bool on) { blackhole_ = on; }
  // An attacker on the path: called on the relay's thread for every datagram before the faults,
  // it returns what to pass on instead (nothing: dropped; more than one: the others too, e.g. a
  // replay). Unset: every datagram passes as it came.
  using Tap = std::function<std::vector<std::vector<std::uint8_t>>(std::vector<std::uint8_t> datagram, bool to_server)>;
  void set_tap(Tap tap) {
    std::lock_guard lock(mu_);
    tap_ = std::move(tap);
  }
  void set_faults(Faults f) {
    std::lock_guard lock(mu_);
    faults_ = f;
  }
  std::uint64_t relayed() const { return relayed_; }
  std::uint64_t dropped() const { return dropped_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Out {
    Clock::time_point due;
    std::uint64_t order;
    int fd;
    sockaddr_in to;
    std::vector<std::uint8_t> bytes;
    bool operator>(const Out& o) const { return due != o.due ? due > o.due : order > o.order; }
  };

  static int bound_socket() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("relay: socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("relay: bind");
    return fd;
  }
  static std::uint64_t key(const sockaddr_in& a) {
    return (std::uint64_t{a.sin_addr.s_addr} << 16) | a.sin_port;
  }

  void pass(int fd, const sockaddr_in& to, const std::uint8_t* data, std::size_t n) {
    Tap tap;
    {
      std::lock_guard lock(mu_);
      tap = tap_;
    }
    if (!tap) return pass_one(fd, to, data, n);
    for (const auto& d : tap(std::vector<std::uint8_t>(data, data + n), fd != front_)) pass_one(fd, to, d.data(), d.size());
  }

  void pass_one(int fd, const sockaddr_in& to, const std::uint8_t* data, std::size_t n) {
    Faults f;
    {
      std::lock_guard lock(mu_);
      f = faults_;
    }
    std::uniform_real_distribution<double> u(0, 1);
    if (blackhole_ || u(rng_) < f.drop) {
      ++dropped_;
      return;
    }
    const int copies = u(rng_) < f.duplicate ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      auto due = Clock::now() + std::chrono::milliseconds(f.delay_ms);
      if (u(rng_) < f.reorder) due += std::chrono::milliseconds(f.reorder_ms);
      queue_.push(Out{due, order_++, fd, to, std::vector<std::uint8_t>(data, data + n)});
    }
  }

  void run() {
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server.sin_port = htons(server_port_);
    std::vector<std::uint8_t> buf(65536);
    while (running_) {
      std::vector<pollfd> fds{{front_, POLLIN, 0}};
      std::vector<sockaddr_in> owners{sockaddr_in{}};
      for (auto& [k, fd] : upstream_) {
        fds.push_back({fd, POLLIN, 0});
        owners.push_back(clients_[k]);
      }
      int wait = 10;
      if (!queue_.empty()) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(queue_.top().due - Clock::now()).count();
        wait = static_cast<int>(std::max<long long>(0, std::min<long long>(ms, 10)));
      }
      ::poll(fds.data(), fds.size(), wait);
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        for (;;) {
          sockaddr_in from{};
          socklen_t fl = sizeof from;
          const ssize_t n = ::recvfrom(fds[i].fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
          if (n < 0) break;
          if (i == 0) {  // client -> server, through the client's own upstream socket
            auto& up = upstream_[key(from)];
            if (up == 0) {
              up = bound_socket();
              clients_[key(from)] = from;
            }
            pass(up, server, buf.data(), static_cast<std::size_t>(n));
          } else {  // server -> that client
            pass(front_, owners[i], buf.data(), static_cast<std::size_t>(n));
          }
        }
      }
      const auto now = Clock::now();
      while (!queue_.empty() && queue_.top().due <= now) {
        const Out& o = queue_.top();
        ::sendto(o.fd, o.bytes.data(), o.bytes.size(), 0, reinterpret_cast<const sockaddr*>(&o.to), sizeof o.to);
        ++relayed_;
        queue_.pop();
      }
    }
  }

  std::uint16_t server_port_;
  std::mutex mu_;
  Faults faults_;
  Tap tap_;
  std::mt19937 rng_;
  int front_ = -1;
  std::map<std::uint64_t, int> upstream_;
  std::map<std::uint64_t, sockaddr_in> clients_;
  std::priority_queue<Out, std::vector<Out>, std::greater<>> queue_;
  std::uint64_t order_ = 0;
  std::atomic<bool> running_{false};
  std::atomic<bool> blackhole_{false};
  std::atomic<std::uint64_t> relayed_{0}, dropped_{0};
  std::thread thread_;
};

}  // namespace lossy

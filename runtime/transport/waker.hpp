// runtime/transport/waker.hpp: the one place a Manager sleeps between ticks.
//
// One Waker per Manager (created with it, shared with every Connection of that manager so that
// nng's callback threads can wake it). It sleeps in one poll() over an eventfd (notify()) and the
// readiness fds that lifecycle owners watch (the fork server's socket), until a deadline that the Manager computes from the tick interval and the
// pumps' timers (heartbeat, reconnect, linger). Nothing else polls: an idle manager wakes only
// when its interval ends, something arrives, or a timer is due.
//
// Threads: notify() from any thread; every other member on the owning (manager's) thread.
#pragma once

#include <chrono>
#include <vector>

namespace sage::detail {

using Clock = std::chrono::steady_clock;

class Waker {
 public:
  Waker();
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  void notify() noexcept;
  // Blocks until notify() was called since the last wait, an armed watched fd is readable, or
  // `deadline` passes. Returns true if woken before the deadline. Consumes the notification; a
  // watched fd that woke it is disarmed until rearm(), so data nobody reads does not make every
  // wait return at once.
  bool wait_until(Clock::time_point deadline);
  // The same for a blocking call inside a tick (connect(), remove_process_group()...): a wake-up
  // it takes is passed on, so the manager's next wait_until() returns at once and its tick reads
  // what woke this one (a watched fd it disarmed is rearmed by that read).
  bool wait_nested(Clock::time_point deadline);
  // Wake-ups that returned true since the Waker was made (tests and benchmarks).
  unsigned long long wakeups() const noexcept { return wakeups_; }

  // Watch / stop watching a level-triggered fd: wake when it is readable (`read`) and/or writable
  // (`write`); rearm it after serving it. interest() changes what is watched and rearms.
  void watch(int fd, bool read = true, bool write = false);
  void unwatch(int fd) noexcept;
  void rearm(int fd) noexcept;
  void interest(int fd, bool read, bool write) noexcept;

 private:
  struct Watched {
    int fd;
    bool armed;
    short events;  // POLLIN / POLLOUT; 0: not polled at all
  };
  void set_armed(int fd, bool armed) noexcept;
  bool poll_until(Clock::time_point deadline);
  bool passed_on_ = false;
  int fd_ = -1;
  std::vector<Watched> watched_;
  unsigned long long wakeups_ = 0;
};

}  // namespace sage::detail

// The Waker (runtime/transport/waker.hpp): an eventfd and one poll().
#include "transport/waker.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <system_error>

namespace sage::detail {

Waker::Waker() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "sage: eventfd");
}

Waker::~Waker() {
  if (fd_ >= 0) ::close(fd_);
}

void Waker::notify() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is saturated: the waiter wakes anyway.
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

bool Waker::wait_until(Clock::time_point deadline) {
  if (passed_on_) {
    passed_on_ = false;
    ++wakeups_;
    return true;
  }
  return poll_until(deadline);
}

bool Waker::wait_nested(Clock::time_point deadline) {
  const bool woke = poll_until(deadline);
  passed_on_ = passed_on_ || woke;
  return woke;
}

bool Waker::poll_until(Clock::time_point deadline) {
  constexpr std::size_t inline_fds = 8;
  pollfd small[inline_fds];
  std::vector<pollfd> big;
  const std::size_t n = 1 + watched_.size();
  pollfd* fds = n <= inline_fds ? small : (big.resize(n), big.data());
  fds[0] = {fd_, POLLIN, 0};
  std::size_t count = 1;
  for (const Watched& w : watched_)
    if (w.armed && w.events != 0) fds[count++] = {w.fd, w.events, 0};
  for (;;) {
    const auto now = Clock::now();
    int timeout_ms = 0;
    if (deadline > now) {
      // Round up so we never wake a little early and spin.
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
      timeout_ms = static_cast<int>(std::min<long long>((us + 999) / 1000, 1 << 30));
    }
    const int r = ::poll(fds, static_cast<nfds_t>(count), timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    if (fds[0].revents & POLLIN) {
      std::uint64_t value = 0;
      [[maybe_unused]] auto k = ::read(fd_, &value, sizeof value);
    }
    for (std::size_t i = 1; i < count; ++i)
      if (fds[i].revents) set_armed(fds[i].fd, false);
    ++wakeups_;
    return true;
  }
}

void Waker::watch(int fd, bool read, bool write) {
  watched_.push_back({fd, true, static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0))});
}

void Waker::interest(int fd, bool read, bool write) noexcept {
  for (Watched& w : watched_)
    if (w.fd == fd) {
      w.armed = true;
      w.events = static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0));
    }
}

void Waker::unwatch(int fd) noexcept {
  std::erase_if(watched_, [fd](const Watched& w) { return w.fd == fd; });
}

void Waker::rearm(int fd) noexcept { set_armed(fd, true); }

void Waker::set_armed(int fd, bool armed) noexcept {
  for (Watched& w : watched_)
    if (w.fd == fd) w.armed = armed;
}

}  // namespace sage::detail

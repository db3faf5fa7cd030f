// runtime/network/drop_log.hpp: the rate limit of a network pump's dropped-peer log lines
// (NetworkOptions / DatagramOptions::drop_log_burst and drop_log_interval).
//
// The first `burst` lines of each `interval` are written; the others are held back and counted,
// and one summary line ("N more dropped peers not logged") opens the next window. The owner calls
// roll() from its poll and bounds its sleep by deadline(), so the summary is not delayed by an
// idle manager; roll() and deadline() also cover the log point's own summaries of held-back lines
// with peer text (log/log.hpp). Threads: the owner's (the manager's thread).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

#include "log/log.hpp"
#include "transport/waker.hpp"

namespace sage::detail {

class DropLog {
 public:
  DropLog(const char* prefix, unsigned burst, std::chrono::milliseconds interval)
      : prefix_(prefix), burst_(burst), interval_(interval) {}

  // Writes "sage: <prefix>: dropped <who>: <why>", or holds it back; false when held back.
  bool write(const std::string& who, const std::string& why) {
    if (!admit()) return false;
    log::write(log::Level::warning, prefix_, prefix_, ": dropped ", log::peer(who), ": ", log::peer(why));
    return true;
  }
  // Whether one more line about a peer (a drop, a refusal) may be written now: counts it among
  // this window's lines, or as held back (false). The caller writes the line.
  bool admit() {
    roll(Clock::now());
    if (lines_ >= burst_) {
      ++held_;
      return false;
    }
    ++lines_;
    return true;
  }
  // Starts a new window once the current one is over, with a summary of what it held back.
  void roll(Clock::time_point now) {
    log::roll(now);
    if (now - window_ < interval_) return;
    if (held_ > 0)
      log::write(log::Level::warning, prefix_, prefix_, ": ", held_, " more dropped peers not logged in the last ",
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(now - window_).count()),
                 " ms");
    window_ = now;
    lines_ = 0;
    held_ = 0;
  }
  // When roll() must run to write the summary; max() when nothing is held back.
  Clock::time_point deadline() const {
    return std::min(held_ > 0 ? window_ + interval_ : Clock::time_point::max(), log::deadline());
  }

 private:
  const char* prefix_;
  unsigned burst_;
  std::chrono::milliseconds interval_;
  Clock::time_point window_{};
  unsigned lines_ = 0;
  std::uint64_t held_ = 0;
};

}  // namespace sage::detail

// runtime/log/log.hpp: the runtime's one log point (public side: sage/log.hpp). Every line sage
// writes about itself goes through write(); nothing else in runtime/ writes to stderr (a ctest
// checks it).
//
//   log::write(Level::warning, "network", "network: refused ", log::peer(address), ": ", log::peer(why));
//
// The parts are concatenated. A part wrapped in log::peer() is text that came from the other end
// of a connection (error records, refusal reasons, names, addresses): it is escaped and capped by
// escape(), and a line with at least one such part is rate-limited per component (PeerLineLimit).
// Parts not wrapped are the runtime's own text and are written as they are.
// write() is noexcept and may be called from any thread.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "sage/log.hpp"

namespace sage::detail::log {

using Level = LogLevel;
using Clock = std::chrono::steady_clock;

// Text from a peer, for write(): escaped and capped when the line is built.
struct Peer {
  std::string_view text;
};
inline Peer peer(std::string_view text) noexcept { return {text}; }

// At most this many bytes of one peer part are kept; the rest is replaced by "...(N more bytes)".
inline constexpr std::size_t peer_text_cap = 512;

// `text` made safe for one log line: '\' as "\\", newline / CR / tab as "\n" "\r" "\t", every other
// byte below 0x20 and DEL as "\xHH"; bytes >= 0x80 (UTF-8) are kept. Only the first `cap` bytes
// of `text` are kept, followed by "...(N more bytes)" when it was longer.
std::string escape(std::string_view text, std::size_t cap = peer_text_cap);

// The rate limit of lines carrying peer text, one per component: the first `burst` lines of each
// `interval` are written, the others are counted; once the interval is over, one line
// "<component>: N more lines with text from peers not logged in the last T ms" is written (by the
// next log call, or by roll(), which the network pumps call from their poll). Not thread-safe
// itself; the log point holds a lock around it.
class PeerLineLimit {
 public:
  PeerLineLimit(unsigned burst, std::chrono::milliseconds interval) : burst_(burst), interval_(interval) {}
  // Whether a line at `now` may be written; counts it when not.
  bool admit(Clock::time_point now);
  // When the window is over and lines were held back: their count and the window's length (ms),
  // and a new window starts at `now`. 0 otherwise.
  struct Held {
    std::uint64_t lines = 0;
    long long ms = 0;
  };
  Held roll(Clock::time_point now);
  // When roll() has a summary to give; max() when nothing is held back.
  Clock::time_point deadline() const { return held_ > 0 ? window_ + interval_ : Clock::time_point::max(); }

 private:
  unsigned burst_;
  std::chrono::milliseconds interval_;
  Clock::time_point window_{};
  unsigned lines_ = 0;
  std::uint64_t held_ = 0;
};

// The defaults of every component's limit. set_peer_line_limit() changes them (for tests) and starts
// every component afresh.
inline constexpr unsigned default_peer_line_burst = 20;
inline constexpr std::chrono::milliseconds default_peer_line_interval{10'000};
void set_peer_line_limit(unsigned burst, std::chrono::milliseconds interval) noexcept;

// Writes the summaries of windows that are over. Cheap when nothing is held back.
void roll(Clock::time_point now) noexcept;
// The earliest time roll() has a summary to write; max() when none.
Clock::time_point deadline() noexcept;

// The line `text` (already built): to the handler, or held back when `peer_text` and over the limit.
void emit(Level level, const char* component, std::string&& text, bool peer_text) noexcept;

namespace parts {
inline void append(std::string& out, std::string_view s) { out += s; }
inline void append(std::string& out, const char* s) { out += s; }
inline void append(std::string& out, const std::string& s) { out += s; }
inline void append(std::string& out, Peer p) { out += escape(p.text); }
template <class T>
  requires(std::integral<T> && !std::same_as<T, char> && !std::same_as<T, bool>)
inline void append(std::string& out, T v) {
  out += std::to_string(v);
}
}  // namespace parts

template <class... Parts>
void write(Level level, const char* component, const Parts&... ps) noexcept {
  constexpr bool peer_text = (std::is_same_v<Parts, Peer> || ...);
  try {
    std::string text;
    (parts::append(text, ps), ...);
    emit(level, component, std::move(text), peer_text);
  } catch (...) {
    // Out of memory building a log line: the line is lost, nothing else.
  }
}

}  // namespace sage::detail::log

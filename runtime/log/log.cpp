// The log point (log/log.hpp, sage/log.hpp): the handler, escaping of peer text, the rate limit of
// lines that carry it. The only place in runtime/ that writes to stderr (log_to_stderr).
#include "log/log.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace sage {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "unknown";
}

void log_to_stderr(LogLevel, std::string_view, std::string_view text) noexcept {
  // One call per line, so lines from several threads do not interleave.
  std::fprintf(stderr, "sage: %.*s\n", static_cast<int>(text.size()), text.data());
}

}  // namespace sage

namespace sage::detail::log {

namespace {

struct State {
  std::mutex mu;
  std::shared_ptr<const LogHandler> handler;  // null: log_to_stderr
  std::map<std::string, PeerLineLimit, std::less<>> limits;
  unsigned burst = default_peer_line_burst;
  std::chrono::milliseconds interval = default_peer_line_interval;
  // The earliest PeerLineLimit::deadline(), so that roll() and deadline() need no lock when nothing
  // is held back (the usual case).
  std::atomic<Clock::rep> earliest{Clock::time_point::max().time_since_epoch().count()};

  void update_earliest() {  // under mu
    auto t = Clock::time_point::max();
    for (const auto& [name, l] : limits) t = std::min(t, l.deadline());
    earliest.store(t.time_since_epoch().count(), std::memory_order_release);
  }
};

State& state() {
  static State* s = new State;  // never destroyed: logging stays valid during static destruction
  return *s;
}

thread_local bool in_handler = false;

void deliver(Level level, const char* component, std::string_view text) noexcept {
  std::shared_ptr<const LogHandler> h;
  {
    State& s = state();
    std::lock_guard lk(s.mu);
    h = s.handler;
  }
  if (!h || in_handler) {
    log_to_stderr(level, component, text);
    return;
  }
  in_handler = true;
  try {
    (*h)(level, component, text);
  } catch (...) {
    log_to_stderr(level, component, text);
  }
  in_handler = false;
}

}  // namespace

std::string escape(std::string_view text, std::size_t cap) {
  static constexpr char hex[] = "0123456789abcdef";
  const std::size_t kept = std::min(text.size(), cap);
  std::string out;
  out.reserve(kept + 16);
  for (std::size_t i = 0; i < kept; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (kept < text.size()) out += "...(" + std::to_string(text.size() - kept) + " more bytes)";
  return out;
}

bool PeerLineLimit::admit(Clock::time_point now) {
  if (held_ == 0 && now - window_ >= interval_) {
    window_ = now;
    lines_ = 0;
  }
  if (lines_ < burst_) {
    ++lines_;
    return true;
  }
  ++held_;
  return false;
}

PeerLineLimit::Held PeerLineLimit::roll(Clock::time_point now) {
  if (held_ == 0 || now - window_ < interval_) return {};
  Held h{held_, static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(now - window_).count())};
  window_ = now;
  lines_ = 0;
  held_ = 0;
  return h;
}

void set_peer_line_limit(unsigned burst, std::chrono::milliseconds interval) noexcept {
  State& s = state();
  std::lock_guard lk(s.mu);
  s.burst = burst;
  s.interval = interval;
  s.limits.clear();  // every component starts a new window (what was held back is forgotten)
  s.update_earliest();
}

void roll(Clock::time_point now) noexcept {
  State& s = state();
  if (Clock::time_point(Clock::duration(s.earliest.load(std::memory_order_acquire))) > now) return;
  std::vector<std::pair<std::string, std::string>> summaries;  // component, text
  try {
    std::lock_guard lk(s.mu);
    for (auto& [name, l] : s.limits)
      if (auto h = l.roll(now); h.lines > 0)
        summaries.emplace_back(name, name + ": " + std::to_string(h.lines) +
                                         " more lines with text from peers not logged in the last " +
                                         std::to_string(h.ms) + " ms");
    s.update_earliest();
  } catch (...) {
    return;
  }
  for (const auto& [component, text] : summaries) deliver(Level::warning, component.c_str(), text);
}

Clock::time_point deadline() noexcept {
  return Clock::time_point(Clock::duration(state().earliest.load(std::memory_order_acquire)));
}

void emit(Level level, const char* component, std::string&& text, bool peer_text) noexcept {
  const auto now = Clock::now();
  roll(now);
  if (peer_text) {
    State& s = state();
    try {
      std::lock_guard lk(s.mu);
      auto it = s.limits.find(std::string_view(component));
      if (it == s.limits.end()) it = s.limits.emplace(component, PeerLineLimit(s.burst, s.interval)).first;
      if (!it->second.admit(now)) {
        s.update_earliest();
        return;
      }
    } catch (...) {
      return;
    }
  }
  deliver(level, component, text);
}

}  // namespace sage::detail::log

namespace sage {

void set_log_handler(LogHandler handler) {
  std::shared_ptr<const LogHandler> h;
  if (handler) h = std::make_shared<const LogHandler>(std::move(handler));
  auto& s = detail::log::state();
  std::lock_guard lk(s.mu);
  s.handler = std::move(h);
}

}  // namespace sage

// sage/log.hpp: where sage's own log lines go (docs/runtime.md "Log lines").
//
// Every line sage writes about itself (dropped or refused peers, bad input, relays refused, a group
// child's last words, internal errors) goes through one log point, which calls the handler set here
// with a level, a component and the text. By default the handler writes "sage: <text>\n" to stderr,
// one fprintf per line, exactly the lines sage has always written.
//
// Contract:
// - Thread safety: set_log_handler() may be called from any thread at any time. The handler may be
//   called from several threads at once (each Manager's thread, a group child's watchdog thread), so
//   it must be thread-safe itself; sage does not serialise the calls. A call that started before
//   set_log_handler() returned may still run the previous handler (it is kept alive until then).
// - Re-entrancy: a log line sage writes while the handler runs on the same thread (the handler called
//   into sage and sage logged) does not call the handler again: it goes to the default (stderr).
// - If the handler throws, sage catches the exception and writes the line to stderr with the
//   default handler instead; nothing propagates into sage (log calls are noexcept).
// - Text from the other end of a connection (refusal reasons, error records, names, addresses) is
//   made harmless before the handler sees it: control characters (C0, DEL) and '\' are escaped
//   ("\n", "\x1b", "\\") and each such part is capped in length, so a peer cannot forge or flood a
//   line. Lines that carry peer text are also rate-limited per component (see docs/runtime.md).
// - Group children are forked from a server that Manager::enable_groups() starts: they run with the
//   handler that was set when enable_groups() was called (set it first).
#pragma once

#include <functional>
#include <string_view>

namespace sage {

enum class LogLevel : unsigned char { debug, info, warning, error };

// "debug", "info", "warning", "error".
std::string_view to_string(LogLevel level) noexcept;

// level; component: a short fixed name ("groups", "network", "datagram", "channel", "schema",
// "internal"); text: the line without the "sage: " prefix and without a trailing newline.
using LogHandler = std::function<void(LogLevel level, std::string_view component, std::string_view text)>;

// Routes sage's log lines to `handler`; an empty handler (`{}` or nullptr) restores the default.
void set_log_handler(LogHandler handler);

// The default handler: writes "sage: <text>\n" to stderr (level and component are not printed).
void log_to_stderr(LogLevel level, std::string_view component, std::string_view text) noexcept;

// A handler that drops every line: set_log_handler(sage::discard_log) silences sage.
inline void discard_log(LogLevel, std::string_view, std::string_view) noexcept {}

}  // namespace sage

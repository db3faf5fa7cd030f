// sage/groups.hpp: process groups, pysage's "Messaging across Processes" (docs/groups.md).
//
//   int main() {
//     sage::Manager mgr;
//     mgr.enable_groups();                       // first thing: forks the fork server
//     mgr.register_messages(pancakes::wire_messages{});
//     Consumer consumer;
//     mgr.register_actor(consumer);
//     mgr.add_process_group<Chef>("chefs");      // a child process whose default actor is a Chef
//     for (;;) { mgr.tick(); mgr.wait_for_next_tick(30ms); }
//   }
//
// The Manager members that use these types are declared in sage/manager.hpp ("process groups").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include <type_traits>

#include "sage/result.hpp"
#include "sage/sender.hpp"

namespace sage {

class Manager;
class ActorBase;

// The name of the main group (the process that called enable_groups()), pysage's PYSAGE_MAIN_GROUP.
// Its Sender is Sender::group(0).
inline constexpr std::string_view main_group = "__main__";

// What the main group does when a child fails (crashes, throws, exits, is killed, stops ticking),
// in the manner of an Erlang/OTP supervisor: restart it, but not too fast and not forever.
//  * Backoff: the n-th restart within `window` waits initial_backoff * 2^(n-1), at most
//    max_backoff (defaults: 10 ms, 20 ms, 40 ms ... capped at 5 s). While it waits, the group
//    exists (has_process_group() is true) but sends to it fail with peer_gone. Restarts older than
//    `window` are forgotten, so a child that stays up for `window` starts over at initial_backoff.
//  * Incarnations: each restart runs the group's next incarnation, whose messages carry the next
//    Sender::generation; a reply to an earlier incarnation's Sender is refused (peer_gone).
//  * Intensity: more than `max_restarts` failures within `window` and the group fails for good:
//    the last group_error says "not restarted: N restarts within T ms" and the group is removed.
struct RestartPolicy {
  enum class Mode { never, on_failure };
  Mode mode = Mode::never;
  int max_restarts = 3;
  std::chrono::milliseconds window{std::chrono::seconds(60)};
  std::chrono::milliseconds initial_backoff{10};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(5)};
};

// Per group options; the limits apply to both ends of the group's link.
struct GroupOptions {
  // The child ticks every `interval` (waking early when a message arrives).
  std::chrono::milliseconds interval{30};
  // Budget for dispatching queued messages in one of the child's ticks (Manager::tick(max_time));
  // zero means no budget.
  std::chrono::milliseconds max_tick_time{0};
  RestartPolicy restart{};
  // Largest transport message (frame body) sent or accepted on the link; a peer's frame header
  // announcing more fails the link before anything is allocated. Records queued in one tick travel
  // together in frames of up to 256 KiB; one record up to this size goes alone, a bigger one is
  // refused (too_large).
  std::size_t max_message_size = std::size_t{16} << 20;
  // Bytes queued towards the peer and not yet taken by the socket. Past it queue_message_to_group
  // fails with send_buffer_full instead of buffering more; nothing accepted is dropped.
  std::size_t send_buffer_limit = std::size_t{8} << 20;
  // Memory bound of the receiving end. A tick takes at most this many bytes from the link (plus the
  // rest of the transport message that crossed it) and decodes them; the rest waits for the next
  // tick, which then comes at once. While a receiver does not tick (busy, stopped), its link holds
  // at most this much plus one transport message read and then stops reading, so the kernel's
  // socket buffers and then the sender's send buffer fill up (send_buffer_full) instead of the
  // receiver's memory. GroupStats::receive_buffered_bytes shows what a link holds (docs/groups.md).
  std::size_t receive_buffer_limit = std::size_t{1} << 20;
  // How long remove_process_group() waits for the child to finish before killing it.
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(10)};
  // Watchdog: a child whose tick() (handlers, update(), coroutines) runs longer than this is
  // unresponsive: a thread in the child logs one line (sage/log.hpp) and ends the process with exit
  // status 125; the main group reports a group_error whose reason starts "unresponsive: a tick ran
  // longer than the watchdog (N ms)", and the restart policy applies as to any failure. Zero (the
  // default) turns it off: a handler may legitimately block. Set it well above the longest tick
  // you expect (max_tick_time bounds only the dispatch of queued messages, not one handler).
  std::chrono::milliseconds watchdog{0};
};

// Options of enable_groups().
struct GroupsOptions {
  // Where the private IPC directory is created: "" means $XDG_RUNTIME_DIR, else /tmp.
  std::string ipc_parent_dir;
  // Most process groups at once (each is a process and 3 file descriptors in the main process).
  // add_process_group() past it throws spawn_error (io_error) and starts nothing. 0 = no limit.
  std::size_t max_groups = 1024;
};

// Counters of a manager's group traffic since enable_groups().
struct GroupStats {
  std::uint64_t records_sent = 0;        // wire messages queued to other groups
  std::uint64_t transport_messages_sent = 0;
  std::uint64_t records_received = 0;    // wire messages decoded and queued here
  std::uint64_t records_relayed = 0;     // child -> child records forwarded (main group only)
  std::uint64_t bad_input = 0;           // records or transport messages dropped as malformed
  std::uint64_t undeliverable = 0;       // relayed records for a group that does not exist
  std::string last_bad_input;            // why the last bad input was dropped
  // Now, not a counter: bytes received on this process's group links and not yet taken by a tick
  // (each link holds at most receive_buffer_limit + one transport message; docs/groups.md).
  std::uint64_t receive_buffered_bytes = 0;
};

// A group failed: its child process crashed, exited, was killed, or its default actor threw.
// Thrown by the main group's tick() that notices it, once that tick dispatched every message
// queued before the failure (what the dead process sent included: docs/groups.md "Incarnations");
// the messages queued after it stay queued for the next tick. Also thrown by
// remove_process_group() if the child fails while shutting down. Not a caller bug: an expected
// runtime failure.
class group_error : public std::runtime_error {
 public:
  group_error(std::string group, std::string reason, bool restarted = false)
      : std::runtime_error("sage: group failed: '" + group + "': " + reason + (restarted ? " (restarted)" : "")),
        group_(std::move(group)),
        reason_(std::move(reason)),
        restarted_(restarted) {}
  const std::string& group() const noexcept { return group_; }
  const std::string& reason() const noexcept { return reason_; }
  // Whether the restart policy started the group again.
  bool restarted() const noexcept { return restarted_; }

 private:
  std::string group_;
  std::string reason_;
  bool restarted_;
};

// add_process_group() (or a restart) could not start the child process: the link's socketpair could
// not be made (out of file descriptors), the fork server is gone, fork() failed (out of processes, file descriptors, memory). An
// expected runtime failure, not a caller bug; nothing of the group is left behind. error().code is
// io_error, or peer_gone when the fork server died.
class spawn_error : public std::runtime_error {
 public:
  spawn_error(std::string group, Error e)
      : std::runtime_error("sage: cannot start group '" + group + "': " + e.message()),
        group_(std::move(group)),
        error_(std::move(e)) {}
  const std::string& group() const noexcept { return group_; }
  const Error& error() const noexcept { return error_; }

 private:
  std::string group_;
  Error error_;
};

// Caller bugs of the group API.
class groups_not_enabled : public usage_error {
 public:
  groups_not_enabled() : usage_error("sage: groups are not enabled; call Manager::enable_groups() first") {}
};
class group_exists : public usage_error {
 public:
  explicit group_exists(std::string_view name)
      : usage_error("sage: group '" + std::string(name) + "' already exists") {}
};
class no_such_group : public usage_error {
 public:
  explicit no_such_group(std::string_view name)
      : usage_error("sage: group '" + std::string(name) + "' does not exist") {}
};

// Creates a group's default actor inside the child process, registered with `manager` by the
// caller: a plain function (or captureless lambda), since it runs in a process forked before the
// call. add_process_group<A>() makes one from A's constructor.
using ActorFactory = std::unique_ptr<ActorBase> (*)(Manager& manager);

namespace detail {
template <class A>
std::unique_ptr<ActorBase> make_default_actor(Manager& manager) {
  if constexpr (std::is_constructible_v<A, Manager&>)
    return std::make_unique<A>(manager);
  else
    return std::make_unique<A>();
}
}  // namespace detail
}  // namespace sage

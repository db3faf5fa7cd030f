// sage/detail/transport.hpp: one message link between two processes (internal; runtime/transport).
//
// A Link is one nng pair0 socket over ipc:// with exactly one peer. It moves opaque transport
// messages (byte strings made of wire records, see docs/wire-format.md); it knows nothing about
// records or actors. This header does not include nng: nng stays inside runtime/transport.
//
// Threads: every Link member is called by the one thread that owns the Link (the manager's
// thread). Receiving happens on that thread too (non-blocking nng receives in receive()); nng's
// own threads only run the send-completion and pipe callbacks, which touch nothing but the Link's
// mutex-protected send queue and atomics, and signal the Waker (peer gone, send failed).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sage/result.hpp"

namespace sage::detail {

using Clock = std::chrono::steady_clock;

// Wakes a thread waiting for "something arrived": an eventfd for notify(), plus the receive fds
// of the links (nng's NNG_OPT_RECVFD, readable while a message waits in the socket), so an arrival
// wakes the waiting thread straight from nng without a hop through a callback thread. Resource
// type, shared by the links of one manager. notify() may be called from any thread; every other
// member only by the owning thread (the manager's).
class Waker {
 public:
  Waker();
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  void notify() noexcept;
  // Blocks until notify() was called since the last wait, a watched fd that is armed or
  // `extra_fd` (if >= 0) is readable, or `deadline` passes. Returns true if woken before the
  // deadline. Consumes the notification; a watched fd that woke it is disarmed until rearm(), so
  // a message nobody reads does not make every wait return at once.
  bool wait_until(Clock::time_point deadline, int extra_fd = -1);
  int fd() const noexcept { return fd_; }

  // Links: watch / stop watching a level-triggered "message waiting" fd; rearm it after reading.
  void watch(int fd);
  void unwatch(int fd) noexcept;
  void rearm(int fd) noexcept;

 private:
  struct Watched {
    int fd;
    bool armed;
  };
  void rearm_or_disarm(int fd, bool armed) noexcept;
  int fd_ = -1;
  std::vector<Watched> watched_;
};

struct LinkOptions {
  // Largest transport message this link sends or accepts (NNG_OPT_RECVMAXSZ). Sending a bigger
  // one fails with Errc::too_large before anything reaches nng.
  std::size_t max_message_size = std::size_t{16} << 20;
  // Bytes handed to send() that nng has not yet accepted. Past it, send() fails with
  // Errc::send_buffer_full and keeps nothing of the refused message.
  std::size_t max_pending_bytes = std::size_t{64} << 20;
  // Bytes one receive() call takes from the socket at most (it stops after the message that
  // crosses it; the rest waits for the next call). Messages are read from the socket only by
  // receive(), on the owner's thread: a receiver that does not call it leaves them in nng and the
  // kernel, so the sender's buffers fill up (back-pressure) instead of this process's memory.
  std::size_t max_inbox_bytes = std::size_t{64} << 20;
};

// Whether nng was ever started in this process by sage (a Link was opened). The fork server must be
// started before that (nng's threads do not survive fork()).
bool nng_started() noexcept;
// Records that sage started nng in this process (every transport that opens nng objects calls it).
void mark_nng_started() noexcept;

class Link {
 public:
  enum class Role { listen, dial };

  // Opens a pair0 socket and listens on / dials `url` ("ipc:///path"). Dial blocks until
  // connected or fails. `waker` is notified whenever something arrives or the peer goes away.
  static Result<std::unique_ptr<Link>> open(Role role, const std::string& url, const LinkOptions& options,
                                            std::shared_ptr<Waker> waker);
  ~Link();  // closes the socket; unsent and unreceived messages are freed
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Queues one transport message for sending (copies `body`). Never blocks, never drops: fails
  // with too_large (body over max_message_size), send_buffer_full (pending bytes over the limit)
  // or peer_gone (the socket failed) and then has queued nothing.
  Result<void> send(std::span<const std::byte> body);
  // Bytes accepted by send() and not yet accepted by nng.
  std::size_t pending_bytes() const;
  // Blocks until everything accepted by send() was handed to nng, or the deadline passes.
  bool wait_sent(Clock::time_point deadline);

  // Calls visit(std::span<const std::byte>) for up to `max` received transport messages, oldest
  // first (and up to max_inbox_bytes). Each span starts on an 8-byte boundary and lives until visit
  // returns. Never blocks.
  template <class Visitor>
  std::size_t receive(std::size_t max, Visitor&& visit) {
    return receive_impl(max, [](void* ctx, std::span<const std::byte> b) { (*static_cast<Visitor*>(ctx))(b); },
                        &visit);
  }

  bool connected() const noexcept;  // a peer pipe was attached at least once
  bool peer_gone() const noexcept;  // the peer's pipe went away after being attached
  const LinkOptions& options() const noexcept;
  const std::string& url() const noexcept;

  // Test hooks: pause/resume reading from the socket (to simulate a slow receiver).
  void pause_receiving(bool paused);

 private:
  struct Impl;
  explicit Link(std::unique_ptr<Impl> impl);
  std::size_t receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sage::detail

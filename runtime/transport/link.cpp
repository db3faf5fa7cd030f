// The IPC Connection (runtime/transport/link.hpp): nng pair0 over ipc://.
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>

#include "transport/link.hpp"

namespace sage::detail {

namespace {
std::atomic<bool> g_nng_started{false};

std::string nng_text(int rv) { return nng_strerror(rv); }
}  // namespace

bool nng_started() noexcept { return g_nng_started.load(std::memory_order_acquire); }
void mark_nng_started() noexcept { g_nng_started.store(true, std::memory_order_release); }

// ---------------------------------------------------------------------------------------------
// Link

struct Link::Impl {
  std::string url;
  ConnectionLimits options;
  std::shared_ptr<Waker> waker;
  nng_socket sock = NNG_SOCKET_INITIALIZER;
  nng_aio* send_aio = nullptr;
  nng_aio* tx_now = nullptr;  // no callback, zero timeout: send() tries it first when nothing is queued

  mutable std::mutex mu;
  std::condition_variable sent_cv;
  bool closing = false;
  // Outbound: messages not yet accepted by nng; the first one may be in flight in send_aio.
  std::deque<std::pair<nng_msg*, std::size_t>> outbox;
  bool send_in_flight = false;
  std::size_t pending = 0;
  bool send_failed = false;
  // Inbound: recv_aio's callback (on nng's threads) moves each arrival into the inbox and notifies
  // the Waker; receive() takes them on the owner's thread. No NNG_OPT_RECVFD: nng 1.5.2's pair0
  // never releases the pipe behind it (2 fds leaked per socket; fixed in nng 1.6), and nng only
  // creates that pollable when it is asked for, so not asking avoids the leak on every nng version.
  nng_aio* recv_aio = nullptr;
  bool receiving = false;            // recv_aio is in flight (under mu)
  bool recv_paused_by_user = false;  // under mu
  std::deque<nng_msg*> inbox;        // under mu; freed by the destructor if never taken
  std::size_t inbox_bytes = 0;       // under mu: past options.max_inbox_bytes reading stops

  std::atomic<bool> connected{false};
  std::atomic<bool> gone{false};
  std::atomic<std::uint32_t> peer_pipe{0};  // id of the first pipe attached: our one peer
  std::atomic<Clock::rep> last_rx{Clock::now().time_since_epoch().count()};

  // Caller holds no lock. Starts the next send if one is waiting and none is in flight.
  void pump_send() {
    nng_msg* next = nullptr;
    {
      std::lock_guard lk(mu);
      if (closing || send_in_flight || outbox.empty()) return;
      next = outbox.front().first;
      send_in_flight = true;
    }
    nng_aio_set_msg(send_aio, next);
    nng_send_aio(sock, send_aio);
  }

  static void on_sent(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const int rv = nng_aio_result(self->send_aio);
    {
      std::lock_guard lk(self->mu);
      self->send_in_flight = false;
      if (rv == 0) {
        // nng owns the message now.
        self->pending -= self->outbox.front().second;
        self->outbox.pop_front();
      } else {
        // The message stays ours (it is still outbox.front()); the socket is closed or broken.
        self->send_failed = true;
      }
    }
    self->sent_cv.notify_all();
    if (rv == 0) {
      // A completed send is no news for the manager: waking it would cost a tick on each side of
      // every round trip (measured: bench_ipc round trip). Only a failure is worth a wake-up.
      self->pump_send();
    } else {
      self->waker->notify();
    }
  }

  // Caller holds no lock. Starts the next receive unless one runs, the inbox is full (back-pressure:
  // the peer's sends queue up on its side), receiving is paused or the link is closing.
  void start_recv() {
    {
      std::lock_guard lk(mu);
      if (closing || receiving || recv_paused_by_user || inbox_bytes >= options.max_inbox_bytes) return;
      receiving = true;
    }
    nng_recv_aio(sock, recv_aio);
  }

  static void on_received(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const int rv = nng_aio_result(self->recv_aio);
    {
      std::lock_guard lk(self->mu);
      self->receiving = false;
      if (rv == 0) {
        nng_msg* m = nng_aio_get_msg(self->recv_aio);
        self->inbox.push_back(m);
        self->inbox_bytes += nng_msg_len(m);
        self->last_rx.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      }
    }
    // NNG_ECLOSED / NNG_ECANCELED: the link is closing; the peer's loss is reported by on_pipe.
    if (rv == 0) {
      self->start_recv();
      self->waker->notify();
    }
  }

  static void on_pipe(nng_pipe pipe, nng_pipe_ev ev, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const auto id = static_cast<std::uint32_t>(nng_pipe_id(pipe));
    if (ev == NNG_PIPE_EV_ADD_POST) {
      std::uint32_t none = 0;
      self->peer_pipe.compare_exchange_strong(none, id);
      self->connected.store(true, std::memory_order_release);
    }
    // Only the loss of our peer counts: pair0 refuses a second connection (e.g. a stray client).
    if (ev == NNG_PIPE_EV_REM_POST && self->peer_pipe.load() == id) self->gone.store(true, std::memory_order_release);
    self->waker->notify();
  }
};

Link::Link(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Link>> Link::open(Role role, const std::string& url, const ConnectionLimits& options,
                                         std::shared_ptr<Waker> waker) {
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  impl->options = options;
  impl->waker = std::move(waker);
  g_nng_started.store(true, std::memory_order_release);
  auto fail = [&](const char* what, int rv) -> Result<std::unique_ptr<Link>> {
    return Error{rv == NNG_ECONNREFUSED || rv == NNG_ECLOSED ? Errc::peer_gone : Errc::io_error,
                 std::string(what) + " " + url + ": " + nng_text(rv)};
  };
  int rv = nng_pair0_open(&impl->sock);
  if (rv != 0) return fail("cannot open a pair0 socket for", rv);
  Link* raw_link = nullptr;
  // From here on the Link owns the socket (its destructor closes it).
  std::unique_ptr<Link> link(raw_link = new Link(std::move(impl)));
  Impl& im = *link->impl_;
  if ((rv = nng_socket_set_size(im.sock, NNG_OPT_RECVMAXSZ, options.max_message_size)) != 0)
    return fail("cannot set recv-size-max on", rv);
  if ((rv = nng_pipe_notify(im.sock, NNG_PIPE_EV_ADD_POST, &Impl::on_pipe, &im)) != 0 ||
      (rv = nng_pipe_notify(im.sock, NNG_PIPE_EV_REM_POST, &Impl::on_pipe, &im)) != 0)
    return fail("cannot watch pipes of", rv);
  if ((rv = nng_aio_alloc(&im.recv_aio, &Impl::on_received, &im)) != 0 ||
      (rv = nng_aio_alloc(&im.send_aio, &Impl::on_sent, &im)) != 0 ||
      (rv = nng_aio_alloc(&im.tx_now, nullptr, nullptr)) != 0)
    return fail("cannot allocate aios for", rv);
  nng_aio_set_timeout(im.tx_now, NNG_DURATION_ZERO);
  im.start_recv();  // completes once the peer sends; nothing is read before a pipe exists
  if (role == Role::listen) {
    rv = nng_listen(im.sock, url.c_str(), nullptr, 0);
    if (rv != 0) return fail("cannot listen on", rv);
  } else {
    rv = nng_dial(im.sock, url.c_str(), nullptr, 0);
    if (rv != 0) return fail("cannot dial", rv);
  }
  return link;
}

Link::~Link() {
  close();
  Impl& im = *impl_;
  if (im.recv_aio) nng_aio_free(im.recv_aio);  // waits for a running callback
  if (im.send_aio) nng_aio_free(im.send_aio);  // waits for a running callback
  if (im.tx_now) nng_aio_free(im.tx_now);
  for (auto& [m, size] : im.outbox) nng_msg_free(m);
  for (nng_msg* m : im.inbox) nng_msg_free(m);
}

void Link::close() {
  Impl& im = *impl_;
  {
    std::lock_guard lk(im.mu);
    if (im.closing) return;
    im.closing = true;
  }
  if (nng_socket_id(im.sock) > 0) nng_close(im.sock);  // fails recv_aio / send_aio with NNG_ECLOSED
  if (im.recv_aio) nng_aio_stop(im.recv_aio);
  im.sent_cv.notify_all();
}

Result<void> Link::send(std::span<const std::byte> body, Delivery) {
  Impl& im = *impl_;
  if (body.size() > im.options.max_message_size)
    return Error{Errc::too_large, "transport message of " + std::to_string(body.size()) +
                                      " bytes exceeds the limit of " + std::to_string(im.options.max_message_size)};
  {
    std::lock_guard lk(im.mu);
    if (im.send_failed || im.closing) return Error{Errc::peer_gone, "link to " + im.url + " is closed"};
    if (im.gone.load(std::memory_order_acquire)) return Error{Errc::peer_gone, "the peer at " + im.url + " went away"};
    if (im.pending + body.size() > im.options.max_pending_bytes)
      return Error{Errc::send_buffer_full, std::to_string(im.pending) + " bytes already wait for the peer at " +
                                               im.url + ", the limit is " +
                                               std::to_string(im.options.max_pending_bytes)};
  }
  nng_msg* m = nullptr;
  if (int rv = nng_msg_alloc(&m, body.size()); rv != 0)
    return Error{Errc::io_error, "cannot allocate an nng message: " + nng_text(rv)};
  if (!body.empty()) std::memcpy(nng_msg_body(m), body.data(), body.size());
  bool now = false;
  {
    std::lock_guard lk(im.mu);
    if (im.outbox.empty() && !im.send_in_flight) {
      now = true;
      im.send_in_flight = true;  // holds off pump_send() (on_sent) while we try
    } else {
      im.outbox.emplace_back(m, body.size());
      im.pending += body.size();
    }
  }
  if (now) {
    // Nothing queued: offer the message to the socket right here. tx_now has no callback and a
    // zero timeout, so it completes on this thread at once: accepted (the pipe was idle, the
    // common case of a message per tick) or NNG_ETIMEDOUT (busy). Saves the hand-off of a
    // completion callback to an nng thread on every send.
    nng_aio_set_msg(im.tx_now, m);
    nng_send_aio(im.sock, im.tx_now);
    nng_aio_wait(im.tx_now);
    const bool accepted = nng_aio_result(im.tx_now) == 0;  // else the message is still ours
    {
      std::lock_guard lk(im.mu);
      im.send_in_flight = false;
      if (!accepted) {
        im.outbox.emplace_front(m, body.size());
        im.pending += body.size();
      }
    }
    if (accepted) {
      im.sent_cv.notify_all();
      return {};
    }
  }
  im.pump_send();  // through send_aio: completes (on_sent) when the socket takes it
  return {};
}

std::size_t Link::received_bytes() const {
  std::lock_guard lk(impl_->mu);
  return impl_->inbox_bytes;
}

std::size_t Link::pending_bytes() const {
  std::lock_guard lk(impl_->mu);
  return impl_->pending;
}

bool Link::wait_sent(Clock::time_point deadline) {
  std::unique_lock lk(impl_->mu);
  return impl_->sent_cv.wait_until(lk, deadline, [&] { return impl_->outbox.empty() || impl_->send_failed; }) &&
         impl_->outbox.empty();
}

std::size_t Link::receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) {
  Impl& im = *impl_;
  std::size_t n = 0;
  std::vector<std::uint64_t> aligned;  // reused for bodies nng did not place on an 8-byte boundary
  while (n < max) {
    nng_msg* m = nullptr;
    {
      std::lock_guard lk(im.mu);
      if (im.closing || im.recv_paused_by_user || im.inbox.empty()) break;
      m = im.inbox.front();
      im.inbox.pop_front();
      im.inbox_bytes -= nng_msg_len(m);
    }
    std::unique_ptr<nng_msg, void (*)(nng_msg*)> owned(m, &nng_msg_free);
    const auto* body = static_cast<const std::byte*>(nng_msg_body(m));
    const std::size_t len = nng_msg_len(m);
    if (reinterpret_cast<std::uintptr_t>(body) % 8 == 0) {
      fn(ctx, std::span(body, len));
    } else {
      // nng does not promise alignment: copy into 8-aligned storage first.
      aligned.resize((len + 7) / 8);
      if (len) std::memcpy(aligned.data(), body, len);
      fn(ctx, std::span(reinterpret_cast<const std::byte*>(aligned.data()), len));
    }
    ++n;
  }
  im.start_recv();  // resumes reading if the inbox was full
  if (n) {
    // What is left (max reached) must wake the next wait: nothing else would.
    std::lock_guard lk(im.mu);
    if (!im.inbox.empty() && !im.recv_paused_by_user) im.waker->notify();
  }
  return n;
}

bool Link::connected() const noexcept { return impl_->connected.load(std::memory_order_acquire); }
bool Link::peer_gone() const noexcept { return impl_->gone.load(std::memory_order_acquire); }
std::optional<Error> Link::failure() const {
  if (impl_->gone.load(std::memory_order_acquire)) return Error{Errc::peer_gone, "the peer at " + impl_->url + " went away"};
  std::lock_guard lk(impl_->mu);
  if (impl_->send_failed) return Error{Errc::peer_gone, "cannot send to " + impl_->url};
  return std::nullopt;
}
Clock::duration Link::idle_for() const {
  return Clock::now() - Clock::time_point(Clock::duration(impl_->last_rx.load(std::memory_order_relaxed)));
}
const ConnectionLimits& Link::limits() const noexcept { return impl_->options; }
const std::string& Link::remote_address() const noexcept { return impl_->url; }

void Link::pause_receiving(bool paused) {
  Impl& im = *impl_;
  {
    std::lock_guard lk(im.mu);
    im.recv_paused_by_user = paused;
  }
  if (!paused) {
    im.start_recv();
    im.waker->notify();  // what arrived before the pause is taken at the next tick
  }
}

}  // namespace sage::detail

// The nng side of sage::detail::StreamConn / StreamListener / StreamDialer: sage's own framing on
// nng's byte streams (tcp://, tls+tcp://). docs/wire-format.md "TCP framing" is the specification.
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "transport/stream.hpp"

namespace sage::detail {

namespace {

std::atomic<bool> g_network_started{false};

std::string nng_text(int rv) { return nng_strerror(rv); }

std::string address_text(const nng_sockaddr& sa) {
  char buf[80];
  if (sa.s_family == NNG_AF_INET) {
    const auto a = reinterpret_cast<const unsigned char*>(&sa.s_in.sa_addr);
    const auto port = ntohs(sa.s_in.sa_port);
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3], port);
    return buf;
  }
  if (sa.s_family == NNG_AF_INET6) {
    std::ostringstream o;
    o << "[";
    for (int i = 0; i < 16; i += 2) {
      if (i) o << ":";
      o << std::hex << ((sa.s_in6.sa_addr[i] << 8) | sa.s_in6.sa_addr[i + 1]);
    }
    o << "]:" << std::dec << ntohs(sa.s_in6.sa_port);
    return o.str();
  }
  return "?";
}

std::string read_file(const std::string& path, std::string& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = "cannot read " + path;
    return {};
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A TLS configuration for one listener or dialer; nullptr (and `err`) when it cannot be made.
nng_tls_config* make_tls(const TlsSettings& tls, bool server, std::string& err) {
  nng_tls_config* cfg = nullptr;
  int rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
  if (rv != 0) {
    err = "TLS is not available in this nng build (nng_tls_config_alloc: " + nng_text(rv) + ")";
    return nullptr;
  }
  auto fail = [&](std::string what) {
    err = std::move(what);
    nng_tls_config_free(cfg);
    return nullptr;
  };
  if (!tls.cert_file.empty() || !tls.key_file.empty()) {
    std::string e;
    const std::string cert = read_file(tls.cert_file, e);
    const std::string key = e.empty() ? read_file(tls.key_file, e) : std::string();
    if (!e.empty()) return fail("TLS: " + e);
    if ((rv = nng_tls_config_own_cert(cfg, cert.c_str(), key.c_str(), nullptr)) != 0)
      return fail("TLS: cannot use certificate " + tls.cert_file + " with key " + tls.key_file + ": " + nng_text(rv));
  } else if (server) {
    return fail("TLS: a listener needs TlsOptions::cert_file and key_file");
  }
  if (!tls.ca_file.empty()) {
    if ((rv = nng_tls_config_ca_file(cfg, tls.ca_file.c_str())) != 0)
      return fail("TLS: cannot load CA file " + tls.ca_file + ": " + nng_text(rv));
  }
  const bool verify = !server && tls.verify_peer;
  if (verify && tls.ca_file.empty()) return fail("TLS: verify_peer needs TlsOptions::ca_file");
  // A listener with a CA requires every client to present a certificate that verifies against it
  // (a client without one, or with one of another CA, fails the TLS handshake and never reaches sage).
  nng_tls_config_auth_mode(cfg, verify || (server && !tls.ca_file.empty()) ? NNG_TLS_AUTH_MODE_REQUIRED
                                                                          : NNG_TLS_AUTH_MODE_NONE);
  if (!server && !tls.server_name.empty()) {
    if ((rv = nng_tls_config_server_name(cfg, tls.server_name.c_str())) != 0)
      return fail("TLS: server name: " + nng_text(rv));
  }
  return cfg;
}

}  // namespace

bool network_started() noexcept { return g_network_started.load(std::memory_order_acquire); }
void mark_network_started() noexcept { g_network_started.store(true, std::memory_order_release); }

std::string stream_url(std::string_view host, std::uint16_t port, bool tls) {
  std::string h(host);
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";
  return std::string(tls ? "tls+tcp://" : "tcp://") + h + ":" + std::to_string(port);
}

bool tls_available(std::string* why) {
  nng_tls_config* cfg = nullptr;
  const int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
  if (rv != 0) {
    if (why) *why = "nng_tls_config_alloc: " + nng_text(rv) + " (nng built without TLS)";
    return false;
  }
  nng_tls_config_free(cfg);
  return true;
}

// ---------------------------------------------------------------------------------------------
// StreamConn

struct StreamConn::Impl {
  nng_stream* stream = nullptr;
  ConnectionLimits options;
  std::shared_ptr<Waker> waker;
  std::string remote;
  nng_aio* recv_aio = nullptr;
  nng_aio* send_aio = nullptr;

  mutable std::mutex mu;
  std::condition_variable sent_cv;
  bool closing = false;
  std::optional<Error> failure;
  // Outbound: `out` collects frames; `inflight` is being written from `inflight_at` on.
  std::vector<std::byte> out;
  std::vector<std::byte> inflight;
  std::size_t inflight_at = 0;
  bool sending = false;
  // Inbound: rbuf holds rlen bytes not yet parsed (8-aligned storage); it grows to fit a big frame
  // and returns to its initial size once empty.
  static constexpr std::size_t initial_rbuf_bytes = idle_buffer_bytes;
  std::vector<std::uint64_t> rbuf;
  std::size_t rlen = 0;
  std::deque<std::pair<std::vector<std::uint64_t>, std::size_t>> inbox;
  std::size_t inbox_bytes = 0;
  bool reading = false;
  bool paused = false;
  std::atomic<Clock::rep> last_rx{Clock::now().time_since_epoch().count()};
  // When the first byte of the frame now in progress arrived (0: none in progress).
  std::atomic<Clock::rep> partial_since{0};

  std::byte* rbytes() noexcept { return reinterpret_cast<std::byte*>(rbuf.data()); }
  std::size_t rcap() const noexcept { return rbuf.size() * 8; }

  void fail_locked(Error e) {
    if (!failure) failure = std::move(e);
  }

  // Caller holds no lock.
  void start_send() {
    {
      std::lock_guard lk(mu);
      if (closing || sending || failure) return;
      if (inflight_at == inflight.size()) {
        // All written. Nothing more to send: let go of a burst's buffer now.
        const std::size_t used = inflight.size();
        inflight.clear();
        inflight_at = 0;
        release_excess(inflight, out.empty() ? 0 : used);
        if (out.empty()) {
          release_excess(out, 0);  // empty, but may hold an earlier burst's capacity (swapped)
          return;
        }
        inflight.swap(out);
      }
      sending = true;
      nng_iov iov{inflight.data() + inflight_at, inflight.size() - inflight_at};
      nng_aio_set_iov(send_aio, 1, &iov);
    }
    nng_stream_send(stream, send_aio);
  }

  static void on_sent(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const int rv = nng_aio_result(self->send_aio);
    const std::size_t n = nng_aio_count(self->send_aio);
    bool again = false;
    {
      std::lock_guard lk(self->mu);
      self->sending = false;
      if (rv != 0) {
        self->fail_locked(Error{Errc::peer_gone, "cannot write to " + self->remote + ": " + nng_text(rv)});
      } else {
        self->inflight_at += n;
        again = true;
      }
    }
    self->sent_cv.notify_all();
    if (again) self->start_send();
    if (rv != 0) self->waker->notify();
  }

  // Caller holds mu. Parses complete frames out of rbuf into the inbox; returns false (and sets
  // failure) on a bad header.
  bool parse_locked() {
    std::size_t at = 0;
    bool ok = true;
    for (;;) {
      const FrameStep step = next_frame(std::span(rbytes() + at, rlen - at), options.max_message_size);
      const std::byte* h = rbytes() + at;
      const std::uint32_t len = step.length;
      if (step.kind == FrameStep::Kind::malformed) {
        fail_locked(Error{Errc::malformed, "not a sage frame header from " + remote});
        ok = false;
        break;
      }
      if (step.kind == FrameStep::Kind::too_large) {
        fail_locked(Error{Errc::too_large, "frame of " + std::to_string(len) + " bytes from " + remote +
                                               " exceeds the limit of " + std::to_string(options.max_message_size) +
                                               " (NetworkOptions::max_message_size)"});
        ok = false;
        break;
      }
      if (step.kind == FrameStep::Kind::need_more) {
        // Incomplete: make sure the whole frame will fit.
        if (step.need > rcap()) {
          std::memmove(rbytes(), rbytes() + at, rlen - at);
          rlen -= at;
          at = 0;
          rbuf.resize((step.need + 7) / 8);
        }
        break;
      }
      std::vector<std::uint64_t> body((len + 7) / 8);
      if (len) std::memcpy(body.data(), h + frame_header_size, len);
      inbox.emplace_back(std::move(body), len);
      inbox_bytes += len;
      at += frame_header_size + len;
    }
    if (at) {
      std::memmove(rbytes(), rbytes() + at, rlen - at);
      rlen -= at;
    }
    // Grown for a big frame and now empty: back to the initial size.
    if (rlen == 0 && rcap() > initial_rbuf_bytes) std::vector<std::uint64_t>(initial_rbuf_bytes / 8).swap(rbuf);
    return ok;
  }

  // Caller holds no lock.
  void start_recv() {
    {
      std::lock_guard lk(mu);
      if (closing || reading || failure || paused || inbox_bytes >= options.max_inbox_bytes) return;
      if (rlen == rcap()) rbuf.resize(rbuf.size() * 2);  // parse_locked() bounds the growth
      reading = true;
      nng_iov iov{rbytes() + rlen, rcap() - rlen};
      nng_aio_set_iov(recv_aio, 1, &iov);
    }
    nng_stream_recv(stream, recv_aio);
  }

  static void on_received(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const int rv = nng_aio_result(self->recv_aio);
    const std::size_t n = nng_aio_count(self->recv_aio);
    bool again = false;
    {
      std::lock_guard lk(self->mu);
      self->reading = false;
      if (rv != 0) {
        if (!self->closing) {
          if (self->rlen > 0) {
            const std::size_t want =
                next_frame(std::span(self->rbytes(), self->rlen), self->options.max_message_size).need;
            self->fail_locked(Error{Errc::truncated, "connection from " + self->remote + " ended after " +
                                                         std::to_string(self->rlen) + " of " + std::to_string(want) +
                                                         " bytes of a frame (" + nng_text(rv) + ")"});
          } else {
            self->fail_locked(Error{Errc::peer_gone, self->remote + ": " + nng_text(rv)});
          }
        }
      } else {
        self->last_rx.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        const bool was_partial = self->rlen > 0;
        self->rlen += n;
        again = self->parse_locked();
        // A frame in progress: keep the time its first byte arrived; none: clear it.
        if (self->rlen == 0) self->partial_since.store(0, std::memory_order_relaxed);
        else if (!was_partial || self->partial_since.load(std::memory_order_relaxed) == 0 || n >= self->rlen)
          self->partial_since.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      }
    }
    if (again) self->start_recv();
    self->waker->notify();
  }
};

StreamConn::StreamConn(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StreamConn::~StreamConn() {
  close();
  Impl& im = *impl_;
  if (im.recv_aio) nng_aio_free(im.recv_aio);  // waits for a running callback
  if (im.send_aio) nng_aio_free(im.send_aio);
  if (im.stream) nng_stream_free(im.stream);
}

void StreamConn::close() {
  Impl& im = *impl_;
  {
    std::lock_guard lk(im.mu);
    if (im.closing) return;
    im.closing = true;
  }
  if (im.stream) nng_stream_close(im.stream);
  if (im.recv_aio) nng_aio_stop(im.recv_aio);
  if (im.send_aio) nng_aio_stop(im.send_aio);
  im.sent_cv.notify_all();
}

Result<void> StreamConn::send(std::span<const std::byte> body, Delivery) {
  Impl& im = *impl_;
  if (body.size() > im.options.max_message_size)
    return Error{Errc::too_large, "frame of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                                      std::to_string(im.options.max_message_size)};
  {
    std::lock_guard lk(im.mu);
    if (im.failure) return Error{Errc::peer_gone, "connection to " + im.remote + " failed: " + im.failure->message()};
    if (im.closing) return Error{Errc::peer_gone, "connection to " + im.remote + " is closed"};
    const std::size_t pending = im.out.size() + (im.inflight.size() - im.inflight_at);
    const std::size_t frame = frame_header_size + body.size();
    if (pending != 0 && pending + frame > im.options.max_pending_bytes)  // an idle one takes any one
      return Error{Errc::send_buffer_full, std::to_string(pending) + " bytes already wait for " + im.remote +
                                               ", the limit is " + std::to_string(im.options.max_pending_bytes) +
                                               " (NetworkOptions::send_buffer_limit)"};
    const std::size_t at = im.out.size();
    im.out.resize(at + frame);
    write_frame_header(im.out.data() + at, static_cast<std::uint32_t>(body.size()));
    if (!body.empty()) std::memcpy(im.out.data() + at + frame_header_size, body.data(), body.size());
  }
  im.start_send();
  return {};
}

std::size_t StreamConn::buffer_capacity() const {
  std::lock_guard lk(impl_->mu);
  return impl_->rbuf.capacity() * 8 + impl_->out.capacity() + impl_->inflight.capacity();
}

std::size_t StreamConn::received_bytes() const {
  std::lock_guard lk(impl_->mu);
  return impl_->inbox_bytes;
}

std::size_t StreamConn::pending_bytes() const {
  std::lock_guard lk(impl_->mu);
  return impl_->out.size() + (impl_->inflight.size() - impl_->inflight_at);
}

bool StreamConn::wait_sent(Clock::time_point deadline) {
  Impl& im = *impl_;
  std::unique_lock lk(im.mu);
  return im.sent_cv.wait_until(lk, deadline, [&] {
    return (im.out.empty() && im.inflight_at == im.inflight.size()) || im.failure || im.closing;
  }) && im.out.empty() && im.inflight_at == im.inflight.size();
}

std::size_t StreamConn::receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) {
  Impl& im = *impl_;
  std::size_t n = 0;
  while (n < max) {
    std::vector<std::uint64_t> body;
    std::size_t len = 0;
    {
      std::lock_guard lk(im.mu);
      if (im.inbox.empty()) break;
      body = std::move(im.inbox.front().first);
      len = im.inbox.front().second;
      im.inbox.pop_front();
      im.inbox_bytes -= len;
    }
    fn(ctx, std::span(reinterpret_cast<const std::byte*>(body.data()), len));
    ++n;
  }
  im.start_recv();  // resumes reading if the inbox was full
  return n;
}

std::optional<Error> StreamConn::failure() const {
  std::lock_guard lk(impl_->mu);
  return impl_->failure;
}

Clock::duration StreamConn::partial_for() const {
  const auto since = impl_->partial_since.load(std::memory_order_relaxed);
  if (since == 0) return Clock::duration::zero();
  return Clock::now() - Clock::time_point(Clock::duration(since));
}

Clock::duration StreamConn::idle_for() const {
  return Clock::now() - Clock::time_point(Clock::duration(impl_->last_rx.load(std::memory_order_relaxed)));
}

const std::string& StreamConn::remote_address() const noexcept { return impl_->remote; }
const ConnectionLimits& StreamConn::limits() const noexcept { return impl_->options; }

void StreamConn::pause_receiving(bool paused) {
  {
    std::lock_guard lk(impl_->mu);
    impl_->paused = paused;
  }
  if (!paused) impl_->start_recv();
}

namespace {
// Wraps an established nng stream; starts reading. Returns nullptr if aios cannot be allocated.
std::unique_ptr<StreamConn> adopt(nng_stream* s, const ConnectionLimits& options, const std::shared_ptr<Waker>& waker) {
  auto impl = std::make_unique<StreamConn::Impl>();
  impl->stream = s;
  impl->options = options;
  impl->waker = waker;
  impl->rbuf.resize(StreamConn::Impl::initial_rbuf_bytes / 8);
  nng_sockaddr sa{};
  impl->remote = nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) == 0 ? address_text(sa) : std::string("?");
  nng_stream_set_bool(s, NNG_OPT_TCP_NODELAY, true);
  StreamConn::Impl& im = *impl;
  if (nng_aio_alloc(&im.recv_aio, &StreamConn::Impl::on_received, &im) != 0 ||
      nng_aio_alloc(&im.send_aio, &StreamConn::Impl::on_sent, &im) != 0) {
    auto conn = std::make_unique<StreamConn>(std::move(impl));
    return nullptr;  // the destructor frees what was allocated and the stream
  }
  auto conn = std::make_unique<StreamConn>(std::move(impl));
  im.start_recv();
  return conn;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// StreamListener

struct StreamListener::Impl {
  nng_stream_listener* listener = nullptr;
  nng_tls_config* tls = nullptr;
  nng_aio* aio = nullptr;
  ConnectionLimits options;
  std::shared_ptr<Waker> waker;
  std::uint16_t port = 0;
  std::mutex mu;
  bool closing = false;
  bool sleeping = false;  // backing off after an accept error (e.g. out of file descriptors)
  std::uint64_t errors = 0;
  std::vector<std::unique_ptr<StreamConn>> accepted;

  void accept() {
    {
      std::lock_guard lk(mu);
      if (closing) return;
    }
    nng_stream_listener_accept(listener, aio);
  }

  static void on_accept(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const int rv = nng_aio_result(self->aio);
    if (self->sleeping) {
      self->sleeping = false;
      return self->accept();
    }
    if (rv == 0) {
      auto* s = static_cast<nng_stream*>(nng_aio_get_output(self->aio, 0));
      auto conn = adopt(s, self->options, self->waker);
      {
        std::lock_guard lk(self->mu);
        if (conn) self->accepted.push_back(std::move(conn));
        else ++self->errors;
      }
      self->waker->notify();
      return self->accept();
    }
    std::lock_guard lk(self->mu);
    if (self->closing || rv == NNG_ECLOSED || rv == NNG_ECANCELED) return;
    ++self->errors;
    // A failed handshake (TLS) or aborted connection: accept the next one; back off briefly on
    // resource exhaustion so that the error does not spin.
    if (rv == NNG_ENOFILES || rv == NNG_ENOMEM) {
      self->sleeping = true;
      nng_sleep_aio(50, self->aio);
    } else {
      nng_stream_listener_accept(self->listener, self->aio);
    }
  }
};

StreamListener::StreamListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<StreamListener>> StreamListener::open(const std::string& url, const TlsSettings& tls,
                                                             const ConnectionLimits& options,
                                                             std::shared_ptr<Waker> waker) {
  mark_network_started();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->waker = std::move(waker);
  Impl& im = *impl;
  std::unique_ptr<StreamListener> l(new StreamListener(std::move(impl)));
  auto fail = [&](std::string what) -> Result<std::unique_ptr<StreamListener>> {
    return Error{Errc::io_error, "cannot listen on " + url + ": " + what};
  };
  int rv = nng_stream_listener_alloc(&im.listener, url.c_str());
  if (rv != 0) return fail(nng_text(rv));
  if (tls.enabled) {
    std::string err;
    im.tls = make_tls(tls, true, err);
    if (!im.tls) return fail(err);
    if ((rv = nng_stream_listener_set_ptr(im.listener, NNG_OPT_TLS_CONFIG, im.tls)) != 0) return fail(nng_text(rv));
  }
  if ((rv = nng_aio_alloc(&im.aio, &Impl::on_accept, &im)) != 0) return fail(nng_text(rv));
  if ((rv = nng_stream_listener_listen(im.listener)) != 0) return fail(nng_text(rv));
  int port = 0;
  if ((rv = nng_stream_listener_get_int(im.listener, NNG_OPT_TCP_BOUND_PORT, &port)) != 0) return fail(nng_text(rv));
  im.port = static_cast<std::uint16_t>(port);
  im.accept();
  return l;
}

StreamListener::~StreamListener() {
  Impl& im = *impl_;
  {
    std::lock_guard lk(im.mu);
    im.closing = true;
  }
  if (im.listener) nng_stream_listener_close(im.listener);
  if (im.aio) nng_aio_free(im.aio);
  if (im.listener) nng_stream_listener_free(im.listener);
  if (im.tls) nng_tls_config_free(im.tls);
  im.accepted.clear();
}

std::uint16_t StreamListener::port() const noexcept { return impl_->port; }

std::vector<std::unique_ptr<Connection>> StreamListener::take_accepted() {
  std::vector<std::unique_ptr<StreamConn>> got;
  {
    std::lock_guard lk(impl_->mu);
    got = std::exchange(impl_->accepted, {});
  }
  return {std::make_move_iterator(got.begin()), std::make_move_iterator(got.end())};
}

// ---------------------------------------------------------------------------------------------
// StreamDialer

struct StreamDialer::Impl {
  std::string url;
  nng_stream_dialer* dialer = nullptr;
  nng_tls_config* tls = nullptr;
  nng_aio* aio = nullptr;
  ConnectionLimits options;
  std::shared_ptr<Waker> waker;
  mutable std::mutex mu;
  bool busy = false;
  std::optional<Result<std::unique_ptr<StreamConn>>> result;

  static void on_dialed(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const int rv = nng_aio_result(self->aio);
    Result<std::unique_ptr<StreamConn>> r(Errc::peer_gone, "cannot connect to " + self->url + ": " + nng_text(rv));
    if (rv == 0) {
      auto conn = adopt(static_cast<nng_stream*>(nng_aio_get_output(self->aio, 0)), self->options, self->waker);
      if (conn) r = std::move(conn);
      else r = Error{Errc::peer_gone, "cannot connect to " + self->url + ": out of memory"};
    }
    {
      std::lock_guard lk(self->mu);
      self->busy = false;
      self->result = std::move(r);
    }
    self->waker->notify();
  }

  // A new nng dialer for `url` (with the TLS configuration, if any); 0 or the nng error.
  int make_dialer() {
    int rv = nng_stream_dialer_alloc(&dialer, url.c_str());
    if (rv == 0 && tls != nullptr && (rv = nng_stream_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, tls)) != 0) {
      nng_stream_dialer_free(dialer);
      dialer = nullptr;
    }
    return rv;
  }
  // Frees the nng dialer. Precondition: no attempt runs (its callback has returned).
  void free_dialer() {
    if (dialer) nng_stream_dialer_free(dialer);  // closes it
    dialer = nullptr;
  }
};

StreamDialer::StreamDialer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<StreamDialer>> StreamDialer::open(const std::string& url, const TlsSettings& tls,
                                                         const ConnectionLimits& options, std::shared_ptr<Waker> waker) {
  mark_network_started();
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  impl->options = options;
  impl->waker = std::move(waker);
  Impl& im = *impl;
  std::unique_ptr<StreamDialer> d(new StreamDialer(std::move(impl)));
  auto fail = [&](std::string what) -> Result<std::unique_ptr<StreamDialer>> {
    return Error{Errc::peer_gone, "cannot connect to " + url + ": " + what};
  };
  if (tls.enabled) {
    std::string err;
    im.tls = make_tls(tls, false, err);
    if (!im.tls) return fail(err);
  }
  int rv = im.make_dialer();
  if (rv != 0) return fail(nng_text(rv));
  if ((rv = nng_aio_alloc(&im.aio, &Impl::on_dialed, &im)) != 0) return fail(nng_text(rv));
  return d;
}

StreamDialer::~StreamDialer() {
  Impl& im = *impl_;
  if (im.aio) nng_aio_stop(im.aio);  // cancels a dial in progress and waits for its callback
  im.free_dialer();                   // before a connection not taken (im.result) is freed
  if (im.aio) nng_aio_free(im.aio);
  if (im.tls) nng_tls_config_free(im.tls);
}

void StreamDialer::start(std::chrono::milliseconds timeout) {
  Impl& im = *impl_;
  if (!im.dialer) {
    if (const int rv = im.make_dialer(); rv != 0) {
      std::lock_guard lk(im.mu);
      im.result = Error{Errc::peer_gone, "cannot connect to " + im.url + ": " + nng_text(rv)};
      im.waker->notify();
      return;
    }
  }
  {
    std::lock_guard lk(im.mu);
    im.busy = true;
    im.result.reset();
  }
  nng_aio_set_timeout(im.aio, static_cast<nng_duration>(timeout.count()));
  nng_stream_dialer_dial(im.dialer, im.aio);
}

bool StreamDialer::busy() const {
  std::lock_guard lk(impl_->mu);
  return impl_->busy;
}

std::optional<Result<std::unique_ptr<Connection>>> StreamDialer::take() {
  Impl& im = *impl_;
  std::optional<Result<std::unique_ptr<StreamConn>>> r;
  {
    std::lock_guard lk(im.mu);
    r = std::exchange(im.result, std::nullopt);
  }
  if (r && *r) {
    // A connection leaves: free the nng dialer before it (see the header), after the callback
    // that delivered it has returned.
    nng_aio_wait(im.aio);
    im.free_dialer();
  }
  if (!r) return std::nullopt;
  if (!*r) return Result<std::unique_ptr<Connection>>(r->error());
  return Result<std::unique_ptr<Connection>>(std::unique_ptr<Connection>(std::move(**r)));
}

std::uint64_t StreamListener::accept_errors() const {
  std::lock_guard lk(impl_->mu);
  return impl_->errors;
}

const std::string& StreamDialer::url() const noexcept { return impl_->url; }

}  // namespace sage::detail

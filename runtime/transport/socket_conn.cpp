// The socket Connection (runtime/transport/socket_conn.hpp): frames over a plain stream socket,
// written and read on the owning thread.
#include "transport/socket_conn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>

#include "secure/seal.hpp"
#include "transport/frame.hpp"

namespace sage::detail {

namespace {
// The read buffer starts small (a process with 1,000 groups holds one per link) and doubles while
// reads fill it, up to idle_buffer_bytes (or the frame in progress, if bigger).
constexpr std::size_t min_read_bytes = 4096;
// Queued frames go to the socket in one sendmsg() of up to this many iovecs (header + body each).
constexpr int max_write_iovecs = 64;

bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }
}  // namespace

struct SocketConn::Impl {
  int fd = -1;
  std::string remote;
  ConnectionLimits options;
  std::shared_ptr<Waker> waker;
  std::optional<Error> failure;
  bool closed = false;
  bool paused = false;
  bool read_ended = false;   // EOF, reset or a bad header: nothing more is read
  bool write_ended = false;  // a write failed: nothing more is written
  bool drained = false;      // the last receive() read the socket dry (it was alive then)
  // Outbound: frames not yet taken by the socket; out_at bytes of the first one are written.
  // A queued frame owns its body: a Channel's batch given to send_batch() is kept as it is (no
  // copy), a span given to send() is copied into a spare body. Bodies of written frames become
  // spares while output keeps queueing up (at most max_pending_bytes of them); they are let go by
  // a receive() that finds the queue empty with nothing queued since the one before.
  struct OutFrame {
    std::array<std::byte, frame_header_size> header;
    std::vector<std::byte> body;
    std::size_t size() const noexcept { return frame_header_size + body.size(); }
  };
  std::deque<OutFrame> out;
  std::size_t out_at = 0;
  std::size_t out_bytes = 0;  // header and body bytes of every frame in `out`
  std::vector<std::vector<std::byte>> spare;
  std::size_t spare_bytes = 0;  // capacity of the spares
  // Inbound: bytes [rbegin, rend) of rbuf (8-aligned storage of rcap bytes) are read and not yet
  // handed out.
  std::unique_ptr<std::uint64_t[]> rbuf;
  std::size_t rcap = 0;
  std::size_t rbegin = 0;
  std::size_t rend = 0;
  std::size_t read_hint = min_read_bytes;
  int idle_receives = 0;  // receive() calls in a row that read and handed out nothing (up to 2)
  bool queued_since_receive = false;  // a frame was queued since the last receive() (spares are in use)
  std::vector<std::uint64_t> scratch;  // an 8-aligned copy of a body that is not aligned in rbuf
  Clock::time_point last_rx = Clock::now();
  Clock::time_point partial_since{};  // epoch: no frame in progress
  std::unique_ptr<secure::StreamSealer> sealer;  // shared-key mode: frames sealed both ways
  std::string identity;                          // "key:<id>" in shared-key mode

  // Largest frame body on the wire: the message limit, plus the seal's tag.
  std::size_t frame_limit() const noexcept { return options.max_message_size + (sealer ? secure::tag_bytes : 0); }

  std::byte* rbytes() noexcept { return reinterpret_cast<std::byte*>(rbuf.get()); }
  std::span<const std::byte> unread() noexcept { return {rbytes() + rbegin, rend - rbegin}; }
  std::size_t pending() const noexcept { return out_bytes - out_at; }

  void fail(Error e) {
    if (!failure) failure = std::move(e);
  }

  void write_failed(int err) {
    fail(Error{Errc::peer_gone, "cannot write to " + remote + ": " + std::strerror(err)});
    write_ended = true;
    out.clear();
    out_at = out_bytes = 0;
    drop_spares();
  }

  void drop_spares() noexcept {
    spare.clear();
    spare_bytes = 0;
  }

  std::vector<std::byte> take_spare() {
    if (spare.empty()) return {};
    std::vector<std::byte> b = std::move(spare.back());
    spare.pop_back();
    spare_bytes -= b.capacity();
    return b;
  }

  // Frame bodies come from a Channel's batches (up to batch_size) or from send(). Kept for the
  // next frames, up to max_pending_bytes of spares: a sender that keeps its queue full (it is
  // refused at max_pending_bytes, writes as the socket drains) then allocates nothing, and the
  // queue and its spares hold at most about twice the limit, as one buffer grown by doubling
  // did. A body over twice the batch size (a single large record) is let go at once.
  void recycle(std::vector<std::byte>&& body) {
    const std::size_t keep_up_to = options.batch_size == SIZE_MAX ? idle_buffer_bytes : 2 * options.batch_size;
    const std::size_t cap = body.capacity();
    if (cap > keep_up_to || spare_bytes + cap > options.max_pending_bytes) return;
    body.clear();
    spare.push_back(std::move(body));
    spare_bytes += cap;
  }

  // The socket took `n` more bytes of the queue.
  void advance(std::size_t n) {
    out_at += n;
    while (!out.empty() && out_at >= out.front().size()) {
      out_at -= out.front().size();
      out_bytes -= out.front().size();
      recycle(std::move(out.front().body));
      out.pop_front();
    }
  }

  // Queues the part of a frame the socket did not take (`written` bytes of it went out, only
  // possible when the queue was empty). `owned`: a buffer holding `body` that may be adopted.
  void enqueue(const std::byte* header, std::span<const std::byte> body, std::size_t written,
               std::vector<std::byte>* owned) {
    OutFrame& f = out.emplace_back();
    std::memcpy(f.header.data(), header, frame_header_size);
    if (owned) {
      f.body = std::move(*owned);
      *owned = take_spare();
    } else {
      f.body = take_spare();
      f.body.assign(body.begin(), body.end());
    }
    out_bytes += f.size();
    out_at += written;
    queued_since_receive = true;
  }

  // The Waker watches the socket for reading while this reads, for writing while output waits.
  void update_interest() noexcept {
    if (closed) return;
    waker->interest(fd, !paused && !read_ended, !write_ended && pending() > 0);
  }

  // Writes queued output until the socket takes no more: several frames per sendmsg().
  void write_out() {
    while (!write_ended && !out.empty()) {
      iovec iov[max_write_iovecs];
      int k = 0;
      std::size_t skip = out_at;
      for (auto it = out.begin(); it != out.end() && k + 2 <= max_write_iovecs; ++it, skip = 0) {
        if (skip < frame_header_size) iov[k++] = {it->header.data() + skip, frame_header_size - skip};
        const std::size_t from = skip > frame_header_size ? skip - frame_header_size : 0;
        if (from < it->body.size()) iov[k++] = {it->body.data() + from, it->body.size() - from};
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(k);
      const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        advance(static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && would_block(errno)) {
        return;
      } else {
        write_failed(n < 0 ? errno : EPIPE);
      }
    }
  }

  // Makes room for at least `need` unread bytes from rbegin on, and for a read of read_hint.
  void make_room(std::size_t need) {
    const std::size_t unread_bytes = rend - rbegin;
    const std::size_t want = std::max(need, std::min(read_hint, std::max(idle_buffer_bytes, need)));
    if (rcap - rbegin >= want) return;
    if (rcap >= want) {
      std::memmove(rbytes(), rbytes() + rbegin, unread_bytes);
    } else {
      const std::size_t cap = (want + 7) / 8 * 8;
      std::unique_ptr<std::uint64_t[]> grown(new std::uint64_t[cap / 8]);  // not zeroed: read() fills it
      if (unread_bytes) std::memcpy(grown.get(), rbytes() + rbegin, unread_bytes);
      rbuf = std::move(grown);
      rcap = cap;
    }
    rbegin = 0;
    rend = unread_bytes;
  }

  void read_failed(int err) {
    read_ended = true;
    if (rend > rbegin) {
      fail(Error{Errc::truncated, "connection from " + remote + " ended after " + std::to_string(rend - rbegin) +
                                      " of " + std::to_string(next_frame(unread(), frame_limit()).need) +
                                      " bytes of a frame" + (err ? std::string(" (") + std::strerror(err) + ")" : "")});
    } else {
      fail(Error{Errc::peer_gone, "the peer at " + remote + " went away" +
                                      (err ? std::string(" (") + std::strerror(err) + ")" : "")});
    }
  }
};

SocketConn::SocketConn(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::pair<int, int>> SocketConn::socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Error{Errc::io_error, std::string("cannot make a Unix socketpair: ") + std::strerror(errno)};
  // The socket buffer stays the kernel's default (net.core.wmem_default, 208 KiB on most systems):
  // with frames of at most 256 KiB the receiver decodes one while the sender writes the next, and
  // a receiver that does not tick holds no more than that in the kernel per link.
  return std::pair{sv[0], sv[1]};
}

Result<std::unique_ptr<SocketConn>> SocketConn::adopt_sealed(int fd, std::string remote, const ConnectionLimits& limits,
                                                             std::shared_ptr<Waker> waker, const secure::SessionKeys& keys) {
  auto conn = adopt(fd, std::move(remote), limits, std::move(waker));
  if (!conn) return conn;
  (*conn)->impl_->sealer = std::make_unique<secure::StreamSealer>(keys);
  (*conn)->impl_->identity = "key:" + keys.key_id;
  return conn;
}

Result<std::unique_ptr<SocketConn>> SocketConn::adopt(int fd, std::string remote, const ConnectionLimits& limits,
                                                      std::shared_ptr<Waker> waker) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int e = errno;
    ::close(fd);
    return Error{Errc::io_error, "cannot make the socket to " + remote + " non-blocking: " + std::strerror(e)};
  }
  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  impl->remote = std::move(remote);
  impl->options = limits;
  impl->waker = std::move(waker);
  impl->waker->watch(fd, true, false);
  return std::unique_ptr<SocketConn>(new SocketConn(std::move(impl)));
}

SocketConn::~SocketConn() { close(); }

void SocketConn::close() {
  Impl& im = *impl_;
  if (im.closed) return;
  im.closed = true;
  im.waker->unwatch(im.fd);
  ::close(im.fd);
  im.fd = -1;
}

Result<void> SocketConn::send(std::span<const std::byte> body, Delivery) { return submit(body, nullptr); }

Result<void> SocketConn::send_batch(std::vector<std::byte>& body, Delivery) {
  auto r = submit(body, &body);
  if (r) body.clear();  // written at once (its buffer stays the caller's), or replaced by a spare
  return r;
}

Result<void> SocketConn::submit(std::span<const std::byte> body, std::vector<std::byte>* owned) {
  Impl& im = *impl_;
  if (body.size() > im.options.max_message_size)
    return Error{Errc::too_large, "transport message of " + std::to_string(body.size()) +
                                      " bytes exceeds the limit of " + std::to_string(im.options.max_message_size)};
  if (im.closed) return Error{Errc::peer_gone, "connection to " + im.remote + " is closed"};
  if (im.failure) return Error{Errc::peer_gone, "connection to " + im.remote + " failed: " + im.failure->message()};
  const std::size_t pending = im.pending();
  const std::size_t body_size = body.size() + (im.sealer ? secure::tag_bytes : 0);  // on the wire
  const std::size_t frame = frame_header_size + body_size;
  // With nothing pending any one message is taken (ConnectionLimits::max_pending_bytes).
  if (pending != 0 && pending + frame > im.options.max_pending_bytes)
    return Error{Errc::send_buffer_full, std::to_string(pending) + " bytes already wait for " + im.remote +
                                             ", the limit is " + std::to_string(im.options.max_pending_bytes)};
  std::byte header[frame_header_size];
  write_frame_header(header, static_cast<std::uint32_t>(body_size));
  std::vector<std::byte> sealed;
  if (im.sealer) {
    // Sealed in place in the caller's batch (it is queued as it is anyway), else in a spare; the
    // frame header is the associated data.
    std::vector<std::byte>& into = owned ? *owned : (sealed = im.take_spare());
    if (!owned) into.assign(body.begin(), body.end());
    im.sealer->seal(header, into);
    body = into;
    if (!owned) owned = &sealed;
  }
  std::size_t written = 0;
  if (pending == 0) {
    // Nothing queued: write the whole frame right here, one system call, no other thread.
    iovec iov[2] = {{header, sizeof header}, {const_cast<std::byte*>(body.data()), body.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = body.empty() ? 1 : 2;
    ssize_t n;
    do n = ::sendmsg(im.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && !would_block(errno)) {
      im.write_failed(errno);
      return Error{Errc::peer_gone, "connection to " + im.remote + " failed: " + im.failure->message()};
    }
    written = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (written == frame) return {};
  }
  // Queue what the socket did not take; it is written when the socket polls writable.
  im.enqueue(header, body, written, owned);
  if (pending != 0) im.write_out();
  im.update_interest();
  return {};
}

std::size_t SocketConn::pending_bytes() const { return impl_->pending(); }
std::size_t SocketConn::received_bytes() const { return impl_->rend - impl_->rbegin; }

bool SocketConn::wait_sent(Clock::time_point deadline) {
  Impl& im = *impl_;
  for (;;) {
    if (im.closed) return im.pending() == 0;
    im.write_out();
    if (im.pending() == 0 || im.write_ended) break;
    const auto now = Clock::now();
    if (now >= deadline) break;
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
    pollfd p{im.fd, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long long>((us + 999) / 1000, 1 << 30)));
  }
  im.update_interest();
  return im.pending() == 0 && !im.write_ended;
}

std::size_t SocketConn::receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) {
  Impl& im = *impl_;
  if (im.closed) return 0;
  if (im.pending() > 0) im.write_out();  // the socket may have polled writable
  // Spares of written frames are kept while frames keep being queued; a receive() (a tick) with
  // the queue empty and nothing queued since the last one lets them go.
  if (im.pending() == 0 && !im.queued_since_receive) im.drop_spares();
  im.queued_since_receive = false;
  std::size_t n = 0;
  std::size_t read_total = 0;
  bool dry = false;  // a read came back short or with EAGAIN: the socket holds nothing more for now
  im.drained = false;
  FrameStep step;
  while (!im.paused && n < max && !im.closed) {
    step = next_frame(im.unread(), im.frame_limit());
    if (step.kind == FrameStep::Kind::frame) {
      std::byte* body = im.rbytes() + im.rbegin + frame_header_size;
      if (im.sealer) {
        if (!im.sealer->open(std::span(body - frame_header_size, frame_header_size), std::span(body, step.length))) {
          im.fail(Error{Errc::malformed, "a sealed frame from " + im.remote +
                                             " does not open under the session key (tampered, replayed, reordered or "
                                             "injected)"});
          im.read_ended = true;
          break;
        }
        step.length -= static_cast<std::uint32_t>(secure::tag_bytes);
      }
      im.rbegin += step.need;
      if (reinterpret_cast<std::uintptr_t>(body) % 8 == 0) {
        fn(ctx, std::span(body, step.length));
      } else {
        im.scratch.resize((step.length + 7) / 8);
        if (step.length) std::memcpy(im.scratch.data(), body, step.length);
        fn(ctx, std::span(reinterpret_cast<const std::byte*>(im.scratch.data()), step.length));
        im.scratch.clear();
        release_excess(im.scratch, step.length);
      }
      ++n;
      continue;
    }
    if (step.kind == FrameStep::Kind::malformed) {
      if (secure::is_refusal_magic(im.unread()) || secure::is_k2_magic(im.unread()))
        im.fail(Error{Errc::not_admitted, im.remote + " requires the shared-key handshake (NetworkOptions::keys)"});
      else
        im.fail(Error{Errc::malformed, "not a sage frame header from " + im.remote});
      im.read_ended = true;
      break;
    }
    if (step.kind == FrameStep::Kind::too_large) {
      im.fail(Error{Errc::too_large, "frame of " + std::to_string(step.length) + " bytes from " + im.remote +
                                         " exceeds the limit of " + std::to_string(im.options.max_message_size)});
      im.read_ended = true;
      break;
    }
    // Not a whole frame: read more, within this call's budget (the inbox limit or the frame).
    if (im.read_ended || dry || read_total >= std::max(im.options.max_inbox_bytes, step.need)) break;
    if (im.rbegin == im.rend) im.rbegin = im.rend = 0;
    im.make_room(step.need);
    std::size_t room = im.rcap - im.rend;
    // A big frame is read up to its end and no further: it is handed out from the start of the
    // buffer, and the next one starts there again (nothing of it to move to the front).
    if (step.need > idle_buffer_bytes) room = std::min(room, step.need - (im.rend - im.rbegin));
    const ssize_t got = ::recv(im.fd, im.rbytes() + im.rend, room, MSG_DONTWAIT);
    if (got > 0) {
      im.rend += static_cast<std::size_t>(got);
      read_total += static_cast<std::size_t>(got);
      im.last_rx = Clock::now();
      if (static_cast<std::size_t>(got) == room) im.read_hint = std::min(im.read_hint * 2, idle_buffer_bytes);
      // A short read took everything there was: hand it out without another (EAGAIN) read. More
      // arriving meanwhile keeps the socket readable, and the Waker polls it level-triggered.
      else dry = true;
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && would_block(errno)) {
      dry = true;
      break;
    }
    im.read_failed(got < 0 ? errno : 0);  // EOF, ECONNRESET
  }
  if (im.closed) return n;
  im.idle_receives = read_total > 0 || n > 0 ? 0 : std::min(im.idle_receives + 1, 2);
  im.drained = dry && !im.read_ended;
  step = next_frame(im.unread(), im.frame_limit());
  if (im.rbegin == im.rend) {
    im.rbegin = im.rend = 0;
    im.partial_since = {};
    if (im.idle_receives >= 2 && im.rcap > min_read_bytes) {
      // Nothing arrived for two receive() calls in a row (the first one usually ends a busy
      // tick's reading): the burst is over, back to a small buffer (allocated at the next read).
      // While frames keep coming the buffer is kept: freeing and faulting in a frame-sized buffer
      // for every frame cost a third of the receiver's time at 64 KiB (docs/performance.md).
      im.rbuf.reset();
      im.rcap = 0;
      im.read_hint = min_read_bytes;
    }
  } else if (step.kind == FrameStep::Kind::need_more) {
    if (im.partial_since == Clock::time_point{}) im.partial_since = Clock::now();
  } else {
    im.partial_since = {};
    // A whole frame is left (max reached): nothing in the kernel may wake the next wait for it.
    if (step.kind == FrameStep::Kind::frame && !im.paused) im.waker->notify();
  }
  im.update_interest();
  return n;
}

std::optional<Error> SocketConn::failure() const {
  const Impl& im = *impl_;
  if (im.failure || im.closed || im.read_ended) return im.failure;
  // The last receive() read the socket dry without an end of file: alive as of that read (a later
  // end of file wakes the manager, whose next receive() reads it). No system call on this path.
  if (im.drained) return std::nullopt;
  // Not read since (paused, or a receive() that stopped at its budget), or never: the peer may be
  // gone with everything it sent already read. Peek, never consume.
  char c;
  const ssize_t n = ::recv(im.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 || (n < 0 && (would_block(errno) || errno == EINTR))) return std::nullopt;
  if (im.rend > im.rbegin) return std::nullopt;  // receive() hands out the rest, then reports it
  return Error{Errc::peer_gone, "the peer at " + im.remote + " went away" +
                                    (n < 0 ? std::string(" (") + std::strerror(errno) + ")" : std::string())};
}

Clock::duration SocketConn::idle_for() const { return Clock::now() - impl_->last_rx; }

Clock::duration SocketConn::partial_for() const {
  if (impl_->partial_since == Clock::time_point{}) return Clock::duration::zero();
  return Clock::now() - impl_->partial_since;
}

const std::string& SocketConn::remote_address() const noexcept { return impl_->remote; }
const std::string& SocketConn::identity() const noexcept { return impl_->identity; }
const ConnectionLimits& SocketConn::limits() const noexcept { return impl_->options; }

void SocketConn::pause_receiving(bool paused) {
  Impl& im = *impl_;
  im.paused = paused;
  im.update_interest();
  if (!paused && !im.closed) im.waker->notify();  // what was read before the pause is taken at the next tick
}

std::size_t SocketConn::buffer_capacity() const noexcept {
  const Impl& im = *impl_;
  std::size_t n = im.rcap + im.scratch.capacity() * 8;
  for (const auto& f : im.out) n += f.body.capacity();
  for (const auto& b : im.spare) n += b.capacity();
  return n;
}

}  // namespace sage::detail

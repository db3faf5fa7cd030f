// Process groups, the child's side: ChildPump and the child's loop (runtime/groups/child.hpp).
#include "groups/child.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "local/manager_access.hpp"
#include "log/log.hpp"
#include "groups/process.hpp"
#include "transport/socket_conn.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof v);
  }
  void put_string(std::string_view s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }
  std::vector<std::byte> out;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <class T>
  T get() {
    T v{};
    if (at_ + sizeof v > in_.size()) throw std::runtime_error("sage: truncated spawn arguments");
    std::memcpy(&v, in_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string get_string() {
    const auto n = get<std::uint32_t>();
    if (at_ + n > in_.size()) throw std::runtime_error("sage: truncated spawn arguments");
    std::string s(reinterpret_cast<const char*>(in_.data() + at_), n);
    at_ += n;
    return s;
  }

 private:
  std::span<const std::byte> in_;
  std::size_t at_ = 0;
};

}  // namespace

std::vector<std::byte> encode_spec(const ChildSpec& s) {
  Writer w;
  w.put_string(s.name);
  w.put(s.index);
  w.put_string(s.url);
  w.put(s.options.interval.count());
  w.put(s.options.max_tick_time.count());
  w.put(s.options.max_message_size);
  w.put(s.options.send_buffer_limit);
  w.put(s.options.receive_buffer_limit);
  w.put(s.options.shutdown_timeout.count());
  w.put(s.options.watchdog.count());
  w.put(s.factory);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(s.codecs.size()));
  for (const auto& c : s.codecs) {
    w.put(c.packet_type);
    w.put(c.fingerprint);
    w.put(c.name.data());
    w.put(c.name.size());
    w.put(c.decode);
  }
  return std::move(w.out);
}

ChildSpec decode_spec(std::span<const std::byte> bytes) {
  Reader r(bytes);
  ChildSpec s;
  s.name = r.get_string();
  s.index = r.get<std::uint32_t>();
  s.url = r.get_string();
  s.options.interval = std::chrono::milliseconds(r.get<std::chrono::milliseconds::rep>());
  s.options.max_tick_time = std::chrono::milliseconds(r.get<std::chrono::milliseconds::rep>());
  s.options.max_message_size = r.get<std::size_t>();
  s.options.send_buffer_limit = r.get<std::size_t>();
  s.options.receive_buffer_limit = r.get<std::size_t>();
  s.options.shutdown_timeout = std::chrono::milliseconds(r.get<std::chrono::milliseconds::rep>());
  s.options.watchdog = std::chrono::milliseconds(r.get<std::chrono::milliseconds::rep>());
  s.factory = r.get<ActorFactory>();
  const auto n = r.get<std::uint32_t>();
  for (std::uint32_t i = 0; i < n; ++i) {
    WireCodec c{};
    c.packet_type = r.get<std::uint8_t>();
    c.fingerprint = r.get<std::uint64_t>();
    const char* name = r.get<const char*>();
    const std::size_t len = r.get<std::size_t>();
    c.name = std::string_view(name, len);
    c.decode = r.get<DecodeFn>();
    s.codecs.push_back(c);
  }
  return s;
}

ConnectionLimits link_limits(const GroupOptions& o) {
  ConnectionLimits l;
  l.max_message_size = o.max_message_size;
  l.max_pending_bytes = o.send_buffer_limit;
  l.max_inbox_bytes = o.receive_buffer_limit;
  l.batch_size = stream_batch_bytes;  // the receiver decodes a frame while the sender writes the next
  return l;
}

// ---- ChildPump ----

ChildPump::ChildPump(Directory& directory, const ChildSpec& spec)
    : channel_({.position = Channel::Position::spoke,
                .peer_name = std::string(main_group),
                .label = "the main group",
                .self_label = "group '" + spec.name + "'",
                .sender = Sender::group(0),
                .drop_on_bad_input = false,
                .send_buffer_limit = spec.options.send_buffer_limit,
                .options_name = "GroupOptions"},
               directory, *this, counters_) {}

GroupStats group_stats(const ChannelCounters& c) {
  return {c.records_sent, c.messages_sent,  c.records_received, c.records_relayed,
          c.bad_input,    c.undeliverable, c.last_bad_input};
}

GroupStats ChildPump::stats() const {
  GroupStats s = group_stats(counters_);
  if (const Connection* conn = channel_.connection()) s.receive_buffered_bytes = conn->received_bytes();
  return s;
}

Result<void> ChildPump::send_raw(std::span<const std::byte> bytes) {
  if (auto r = channel_.flush(); !r) return r;
  if (!channel_.connection()) return Error{Errc::peer_gone, "no connection"};
  return channel_.connection()->send(bytes);
}

std::string ChildPump::endpoint_url() const {
  return channel_.connection() ? channel_.connection()->remote_address() : std::string();
}

Verdict ChildPump::on_hello(Channel& channel, const proto::Hello&, const Result<void>& check) {
  if (check) return std::nullopt;
  channel.append_control(proto::Control::error,
                         proto::encode_error({proto::ErrorKind::handshake_refused, check.error().message()}));
  (void)channel.flush();
  throw std::runtime_error(check.error().message());
}

Verdict ChildPump::on_control(Channel&, proto::Control control, std::span<const std::byte>) {
  switch (control) {
    case proto::Control::bye:
      bye_received_ = true;
      return std::nullopt;
    case proto::Control::error_ack:
      error_acked_ = true;
      return std::nullopt;
    default:
      return Stop{Error{Errc::malformed, "control packet_type " + std::to_string(proto::code(control)) +
                                             " is not for a child"},
                  true};
  }
}

void ChildPump::poll(Manager& manager) { (void)channel_.receive_tick(manager); }
Clock::time_point ChildPump::next_deadline() const {
  return channel_.more_waiting() ? Clock::now() : Clock::time_point::max();  // a tick's read stopped at its budget
}
void ChildPump::flush(Manager&) { (void)channel_.flush(); }

// ---- the child's life ----

namespace {

// GroupOptions::watchdog: a thread that ends the process when one tick runs too long. The loop
// marks the start and the end of each tick; nothing else is shared.
class Watchdog {
 public:
  Watchdog(std::string group, std::chrono::milliseconds limit) : group_(std::move(group)), limit_(limit) {
    if (limit_.count() > 0) thread_ = std::thread([this] { run(); });
  }
  ~Watchdog() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  void tick_started() noexcept { started_.store(Clock::now().time_since_epoch().count(), std::memory_order_release); }
  void tick_ended() noexcept { started_.store(0, std::memory_order_release); }

 private:
  void run() {
    std::unique_lock lk(mu_);
    const auto step = std::max(limit_ / 4, std::chrono::milliseconds(1));
    while (!cv_.wait_for(lk, step, [&] { return stop_; })) {
      const auto started = started_.load(std::memory_order_acquire);
      if (started == 0) continue;
      const auto ran = Clock::now() - Clock::time_point(Clock::duration(started));
      if (ran <= limit_) continue;
      log::write(log::Level::error, "groups", "group '", group_, "': unresponsive: a tick ran longer than the watchdog (",
                 static_cast<long long>(limit_.count()), " ms); exiting");
      std::fflush(stderr);
      ::_exit(watchdog_exit_status);
    }
  }
  std::string group_;
  std::chrono::milliseconds limit_;
  std::atomic<Clock::rep> started_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int ChildPump::child_main(std::span<const std::byte> args) {
  const ChildSpec spec = decode_spec(args);
  ManagerOptions mo;
  mo.group = static_cast<std::uint16_t>(spec.index);
  Manager manager(mo);
  Directory& dir = ManagerAccess::directory(manager);
  dir.set_self(spec.name, spec.index);
  for (const auto& c : spec.codecs) dir.register_codec(c);
  auto owned = std::make_unique<ChildPump>(dir, spec);
  ChildPump& pump = *owned;
  const int fd = take_spawn_fd();  // our end of the socketpair the main group made
  if (fd < 0) {
    log::write(log::Level::error, "groups", "group '", spec.name, "': started without a link to the main group");
    return 5;
  }
  auto link = SocketConn::adopt(fd, spec.url, link_limits(spec.options), ManagerAccess::shared_waker(manager));
  if (!link) {
    log::write(log::Level::error, "groups", "group '", spec.name, "': ", link.error().message());
    return 5;
  }
  pump.channel_.attach(std::move(*link), spec.name);
  dir.set_uplink(&pump.channel_);
  ManagerAccess::attach_child(manager, std::move(owned));
  Waker& waker = ManagerAccess::waker(manager);
  auto main_gone = [&] { return !pump.channel_.connection() || pump.channel_.connection()->failure().has_value(); };

  // Reports a failure to the main group and waits (bounded) until it was read, then exits.
  auto report = [&](proto::ErrorKind kind, const std::string& text, int code) {
    pump.channel_.append_control(proto::Control::error, proto::encode_error({kind, text}));
    (void)pump.channel_.flush();
    const auto deadline = Clock::now() + 5s;
    while (!pump.error_acked_ && !main_gone() && Clock::now() < deadline) {
      waker.wait_until(std::min(deadline, Clock::now() + 50ms));
      try {
        (void)pump.channel_.receive(manager);
      } catch (...) {
      }
    }
    return code;
  };

  std::unique_ptr<ActorBase> actor;
  try {
    actor = spec.factory(manager);
    manager.register_actor(*actor);
  } catch (const std::exception& e) {
    return report(proto::ErrorKind::constructor_threw, e.what(), 3);
  } catch (...) {
    return report(proto::ErrorKind::constructor_threw, "unknown exception", 3);
  }
  // The hello goes out now (with what the constructor queued), even if the actor has nothing to say.
  (void)pump.channel_.flush();

  Watchdog watchdog(spec.name, spec.options.watchdog);
  for (;;) {
    try {
      watchdog.tick_started();
      if (spec.options.max_tick_time.count() > 0)
        manager.tick(spec.options.max_tick_time);
      else
        manager.tick();
      watchdog.tick_ended();
    } catch (const std::exception& e) {
      watchdog.tick_ended();
      return report(proto::ErrorKind::tick_threw, e.what(), 4);
    } catch (...) {
      watchdog.tick_ended();
      return report(proto::ErrorKind::tick_threw, "unknown exception", 4);
    }
    if (pump.bye_received_) {
      // Everything that arrived before bye was dispatched in this tick; what the actors queued is
      // flushed. Answer and leave.
      pump.channel_.append_control(proto::Control::bye_ack);
      (void)pump.channel_.flush();
      // The link may still hold output the socket did not take yet (a full socket buffer), and
      // the main group reads the bye_ack on its own time: stay until it closes the link after
      // reading it (bounded by shutdown_timeout, after which it kills us anyway). receive() writes
      // what is queued and keeps the socket watched, so the close wakes us at once.
      const auto deadline = Clock::now() + spec.options.shutdown_timeout;
      while (!main_gone() && Clock::now() < deadline) {
        waker.wait_until(std::min(deadline, Clock::now() + 100ms));
        try {
          (void)pump.channel_.receive(manager);
        } catch (...) {
        }
      }
      manager.unregister_actor(*actor);
      return 0;
    }
    if (main_gone()) return 6;  // the main group went away
    manager.wait_for_next_tick(spec.options.interval);
  }
}

}  // namespace sage::detail

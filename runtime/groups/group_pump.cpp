// Process groups: the GroupPump of the main group and of a child (docs/groups.md).
#include "sage/detail/group_pump.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include "sage/detail/net_pump.hpp"
#include "sage/manager.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {

// ---- the spawn arguments: what a child needs to know, as bytes through the fork server ----
// Pointers are valid in the child: it is a fork of this program's image.
struct ChildSpec {
  std::string name;
  std::uint32_t index = 0;
  std::string url;
  GroupOptions options;
  ActorFactory factory = nullptr;
  std::vector<WireCodec> codecs;
};

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

LinkOptions link_options(const GroupOptions& o) {
  LinkOptions l;
  l.max_message_size = o.max_message_size;
  l.max_pending_bytes = o.send_buffer_limit;
  l.max_inbox_bytes = o.receive_buffer_limit;
  return l;
}

std::string_view kind_text(proto::ErrorKind k) {
  switch (k) {
    case proto::ErrorKind::constructor_threw: return "default actor's constructor threw: ";
    case proto::ErrorKind::tick_threw: return "exception in tick: ";
    case proto::ErrorKind::handshake_refused: return "handshake refused: ";
    case proto::ErrorKind::other: break;
  }
  return "";
}

// Largest control record a batch may need in front of a user record (route/from with a name).
constexpr std::size_t max_tag_record = wire::record_size(2 + proto::max_group_name);

}  // namespace

struct GroupPump::Peer {
  std::string name;
  std::uint32_t index = 0;
  pid_t pid = -1;
  std::string endpoint;  // file path of the ipc:// endpoint (main role)
  std::unique_ptr<Link> link;
  GroupOptions options;
  ActorFactory factory = nullptr;
  std::vector<std::byte> batch;
  std::string batch_tag;  // origin (main role) / destination (child role) in force at the batch's end
  bool hello_sent = false;
  bool hello_received = false;
  std::string error_text;  // from an error report
  bool bye_sent = false;
  bool bye_acked = false;
  bool failed = false;
  std::optional<int> exit_status;
  std::string pending_failure;  // detected while reading; fail() runs after
  std::vector<Clock::time_point> restarts;
  std::set<Errc> logged;
};

struct GroupPump::ChildState {
  bool bye_received = false;
  bool error_acked = false;
};

GroupPump::GroupPump(Role role, std::string self_name, std::uint32_t self_index)
    : role_(role), self_name_(std::move(self_name)), self_index_(self_index), codecs_(256) {
  names_.resize(std::max<std::size_t>(1, self_index + 1));
  names_[0] = std::string(main_group);
  names_[self_index] = self_name_;
}

GroupPump::GroupPump(const GroupsOptions& options) : GroupPump(Role::main, std::string(main_group), 0) {
  ForkServer::instance();
  dir_.emplace(IpcDir::create(options.ipc_parent_dir).value());
}

GroupPump::~GroupPump() {
  if (role_ != Role::main) return;
  // Ask every child to finish and wait (2 s in all) until it answered, without decoding anything:
  // the manager is going away. A child leaves once its link closes (after its bye_ack was read),
  // so the links are closed before waiting for the exits; what is left then is killed.
  for (auto& p : peers_) {
    if (!p->link || p->exit_status || p->failed) continue;
    append_control(*p, proto::Control::bye);
    (void)push_batch(*p);
    p->bye_sent = true;
  }
  const auto deadline = Clock::now() + 2s;
  auto answered = [](Peer& p) {
    if (!p.link || p.bye_acked || p.link->peer_gone()) return true;
    p.link->receive(SIZE_MAX, [&](std::span<const std::byte> body) {
      (void)wire::for_each_record(body, [&](const wire::Record& rec) {
        if (rec.packet_type == static_cast<std::uint8_t>(proto::Control::bye_ack)) p.bye_acked = true;
      });
    });
    return p.bye_acked;
  };
  for (;;) {
    bool all = true;
    for (auto& p : peers_) all = answered(*p) && all;
    if (all || Clock::now() >= deadline) break;
    waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
  }
  for (auto& p : peers_) p->link.reset();  // the children see their link close and exit
  for (auto& p : peers_) {
    if (p->pid <= 0 || p->exit_status) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    p->exit_status = ForkServer::instance().take_exit(p->pid, static_cast<int>(std::max<long long>(left, 1)));
  }
  for (auto& p : peers_) teardown(*p, true);
}

void GroupPump::register_codec(const WireCodec& codec) {
  WireCodec& slot = codecs_[codec.packet_type];
  if (slot.decode && slot.decode != codec.decode && (slot.fingerprint != codec.fingerprint || slot.name != codec.name))
    throw packet_type_conflict(codec.packet_type, slot.name, codec.name);
  slot = codec;
}

GroupPump::Peer* GroupPump::find(std::string_view name) const noexcept {
  for (auto& p : peers_)
    if (p->name == name) return p.get();
  return nullptr;
}
GroupPump::Peer* GroupPump::find(std::uint32_t index) const noexcept {
  for (auto& p : peers_)
    if (p->index == index) return p.get();
  return nullptr;
}

bool GroupPump::is_self(std::string_view name) const noexcept { return name == self_name_; }
const std::string& GroupPump::ipc_dir() const noexcept {
  static const std::string none;
  return dir_ ? dir_->path() : none;
}

std::string GroupPump::endpoint_url() const {
  return role_ == Role::child && !peers_.empty() && peers_.front()->link ? peers_.front()->link->url() : std::string();
}

std::vector<std::string> GroupPump::groups() const {
  std::vector<std::string> out;
  if (role_ == Role::main)
    for (auto& p : peers_) out.push_back(p->name);
  return out;
}
bool GroupPump::has_group(std::string_view name) const { return role_ == Role::main && find(name) != nullptr; }
pid_t GroupPump::pid_of(std::string_view name) const {
  auto* p = find(name);
  if (!p || role_ != Role::main) throw no_such_group(name);
  return p->pid;
}
std::string GroupPump::endpoint_of(std::string_view name) const {
  auto* p = find(name);
  if (!p || role_ != Role::main) throw no_such_group(name);
  return p->endpoint;
}

std::string_view GroupPump::name_of(Sender sender) const {
  if (sender.kind != Sender::Kind::group || sender.index >= names_.size()) return {};
  return names_[sender.index];
}

Sender GroupPump::sender_of(std::string_view name) {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return Sender::group(static_cast<std::uint32_t>(i));
  // A child learns the names of other children as their messages arrive (relayed by main).
  names_.emplace_back(name);
  return Sender::group(static_cast<std::uint32_t>(names_.size() - 1));
}

proto::Hello GroupPump::my_hello() const {
  proto::Hello h;
  h.pid = static_cast<std::uint32_t>(::getpid());
  for (const auto& c : codecs_)
    if (c.decode) h.entries.push_back({c.packet_type, c.fingerprint});
  h.schema_fingerprint = proto::schema_fingerprint(h.entries);
  h.name = role_ == Role::main ? std::string() : self_name_;
  return h;
}

// ---- groups (main role) ----

void GroupPump::add_group(std::string_view name, ActorFactory factory, const GroupOptions& options) {
  if (role_ != Role::main) throw usage_error("sage: only the main group can add process groups");
  if (name.empty() || name.size() > proto::max_group_name || name == main_group)
    throw usage_error("sage: a group name must have 1.." + std::to_string(proto::max_group_name) +
                      " bytes and not be sage::main_group");
  if (find(name)) throw group_exists(name);
  auto peer = std::make_unique<Peer>();
  peer->name = std::string(name);
  peer->index = static_cast<std::uint32_t>(names_.size());
  names_.emplace_back(name);
  peer->options = options;
  peer->factory = factory;
  Peer& p = *peer;
  peers_.push_back(std::move(peer));
  try {
    spawn(p);
  } catch (...) {
    teardown(p, true);
    erase(p);
    throw;
  }
}

void GroupPump::spawn(Peer& p) {
  p.endpoint = dir_->path() + "/g" + std::to_string(next_endpoint_++) + ".ipc";
  const std::string url = "ipc://" + p.endpoint;
  auto link = Link::open(Link::Role::listen, url, link_options(p.options), waker_);
  if (!link) throw std::runtime_error("sage: group '" + p.name + "': " + link.error().message());
  p.link = std::move(*link);
  p.batch.clear();
  p.batch_tag.clear();
  p.hello_sent = p.hello_received = p.bye_sent = p.bye_acked = p.failed = false;
  p.error_text.clear();
  p.pending_failure.clear();
  p.exit_status.reset();
  // Our hello goes first on the link; the child reads it when it runs.
  const auto hello = proto::encode_hello(my_hello());
  append_control(p, proto::Control::hello, hello);
  p.hello_sent = true;
  if (auto r = push_batch(p); !r) throw std::runtime_error("sage: group '" + p.name + "': " + r.error().message());

  ChildSpec spec;
  spec.name = p.name;
  spec.index = p.index;
  spec.url = url;
  spec.options = p.options;
  spec.factory = p.factory;
  for (const auto& c : codecs_)
    if (c.decode) spec.codecs.push_back(c);
  auto pid = ForkServer::instance().spawn(&GroupPump::child_main, encode_spec(spec));
  if (!pid) throw std::runtime_error("sage: cannot start group '" + p.name + "': " + pid.error().message());
  p.pid = *pid;
}

void GroupPump::teardown(Peer& p, bool kill_child) {
  if (kill_child && p.pid > 0 && !p.exit_status) {
    ::kill(p.pid, SIGKILL);
    p.exit_status = ForkServer::instance().take_exit(p.pid, 10000);
  }
  p.link.reset();  // closes the socket
  if (!p.endpoint.empty()) ::unlink(p.endpoint.c_str());
}

void GroupPump::erase(Peer& p) {
  if (p.index < names_.size()) names_[p.index].clear();
  std::erase_if(peers_, [&](const auto& q) { return q.get() == &p; });
}

void GroupPump::remove_group(Manager& manager, std::string_view name) {
  Peer* p = role_ == Role::main ? find(name) : nullptr;
  if (!p) throw no_such_group(name);
  if (p->link && !p->exit_status) {
    append_control(*p, proto::Control::bye);
    (void)push_batch(*p);
    p->bye_sent = true;
    const auto deadline = Clock::now() + p->options.shutdown_timeout;
    // Deliver what the child sent before it answered bye (queued here for the next tick). bye_ack
    // is the child's last record, so once it is read everything before it was read too.
    auto grace = deadline;
    while (!p->bye_acked && Clock::now() < std::min(deadline, grace)) {
      receive_from(manager, *p);
      if (p->bye_acked) break;
      if (!p->exit_status) {
        if (auto st = ForkServer::instance().take_exit(p->pid)) {
          p->exit_status = st;
          grace = Clock::now() + 500ms;  // it died without answering: read what is still in flight
        }
      }
      waker_->wait_until(std::min(deadline, Clock::now() + 50ms), ForkServer::instance().fd());
    }
    receive_from(manager, *p);
    // The child waits for its link to close before it exits: nng reports a send as done when the
    // message is queued, not when the peer has it, so leaving earlier could lose the bye_ack and
    // the messages before it. Everything it sent has been read now.
    p->link.reset();
    if (!p->exit_status) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      p->exit_status = ForkServer::instance().take_exit(p->pid, static_cast<int>(std::max<long long>(left, 1)));
    }
  }
  const bool clean = p->bye_acked && p->exit_status && WIFEXITED(*p->exit_status) && WEXITSTATUS(*p->exit_status) == 0;
  std::string reason;
  if (!clean) {
    reason = p->error_text.empty() ? std::string() : p->error_text + "; ";
    reason += p->exit_status ? describe_wait_status(*p->exit_status) : "did not finish in time and was killed";
  }
  const std::string group = p->name;
  teardown(*p, true);
  erase(*p);
  if (!clean) throw group_error(group, reason);
}

void GroupPump::clear_groups(Manager& manager) {
  std::vector<std::string> names = groups();
  std::optional<group_error> first;
  for (const auto& n : names) {
    try {
      remove_group(manager, n);
    } catch (const group_error& e) {
      if (!first) first = e;
    }
  }
  if (first) throw *first;
}

// ---- sending ----

void GroupPump::append_control(Peer& p, proto::Control c, std::span<const std::byte> payload) {
  if (p.batch.size() + wire::record_size(payload.size()) > p.options.max_message_size) (void)push_batch(p);
  proto::append_control(p.batch, c, payload);
}

Result<void> GroupPump::append(Peer& p, std::uint8_t packet_type, std::span<const std::byte> payload,
                               std::string_view tag) {
  const std::size_t rec = wire::record_size(payload.size());
  const std::size_t limit = p.options.max_message_size;
  if (rec + max_tag_record > limit)
    return Error{Errc::too_large, "a record of " + std::to_string(payload.size()) +
                                      " payload bytes does not fit the transport message limit of " +
                                      std::to_string(limit) + " bytes (GroupOptions::max_message_size)"};
  if (!p.link) return Error{Errc::peer_gone, "group '" + p.name + "' has no connection"};
  if (p.batch.size() + rec + max_tag_record > limit) {
    if (auto r = push_batch(p); !r) return r;
  }
  const std::size_t tag_bytes = tag != p.batch_tag ? wire::record_size(2 + tag.size()) : 0;
  const std::size_t waiting = p.link->pending_bytes() + p.batch.size();
  if (waiting + rec + tag_bytes > p.options.send_buffer_limit)
    return Error{Errc::send_buffer_full, "group '" + p.name + "' has not taken " + std::to_string(waiting) +
                                             " bytes yet; the limit is " +
                                             std::to_string(p.options.send_buffer_limit) +
                                             " (GroupOptions::send_buffer_limit)"};
  if (tag != p.batch_tag) {
    const auto name = proto::encode_name(tag);
    proto::append_control(p.batch, role_ == Role::main ? proto::Control::from : proto::Control::route, name);
    p.batch_tag = std::string(tag);
  }
  wire::append_record(p.batch, packet_type, payload);
  return {};
}

Result<void> GroupPump::push_batch(Peer& p) {
  if (p.batch.empty() && (role_ == Role::main || p.hello_sent)) return {};
  if (!p.link) return Error{Errc::peer_gone, "group '" + p.name + "' has no connection"};
  if (role_ == Role::child && !p.hello_sent) {
    // The hello must be the first record the main group reads from us.
    std::vector<std::byte> first;
    proto::append_control(first, proto::Control::hello, proto::encode_hello(my_hello()));
    p.batch.insert(p.batch.begin(), first.begin(), first.end());
    p.hello_sent = true;
  }
  auto r = p.link->send(p.batch);
  if (!r) return r;
  ++stats_.transport_messages_sent;
  p.batch.clear();
  p.batch_tag.clear();
  return {};
}

Result<void> GroupPump::queue_record(std::string_view group, const WireCodec& codec, std::span<const std::byte> payload) {
  Peer* p = nullptr;
  std::string_view tag;
  if (role_ == Role::main) {
    p = find(group);
    if (!p) throw no_such_group(group);
  } else {
    p = peers_.empty() ? nullptr : peers_.front().get();
    if (!p) return Error{Errc::peer_gone, "the main group is gone"};
    if (group != main_group) tag = group;
  }
  if (p->failed) return Error{Errc::peer_gone, "group '" + p->name + "' failed"};
  // Register the type so its fingerprint is part of our hello (and replies of it decode here).
  if (!codecs_[codec.packet_type].decode) register_codec(codec);
  auto r = append(*p, codec.packet_type, payload, tag);
  if (r) ++stats_.records_sent;
  return r;
}

Result<void> GroupPump::relay_record(std::string_view to, std::uint8_t packet_type, std::span<const std::byte> payload,
                                     std::string_view origin) {
  Peer* p = role_ == Role::main ? find(to) : nullptr;
  if (!p) return Error{Errc::peer_gone, "no group '" + std::string(to) + "'"};
  if (p->failed) return Error{Errc::peer_gone, "group '" + p->name + "' failed"};
  return append(*p, packet_type, payload, origin);
}

Result<void> GroupPump::send_raw(std::string_view group, std::span<const std::byte> bytes) {
  Peer* p = role_ == Role::main ? find(group) : (peers_.empty() ? nullptr : peers_.front().get());
  if (!p) throw no_such_group(group);
  if (auto r = push_batch(*p); !r) return r;
  if (!p->link) return Error{Errc::peer_gone, "no connection"};
  return p->link->send(bytes);
}

void GroupPump::flush(Manager&) {
  for (auto& p : peers_) {
    if (p->failed || !p->link) continue;
    (void)push_batch(*p);  // cannot exceed the limit: append() checked; a dead peer shows in poll()
  }
}

bool GroupPump::wait_until(std::chrono::steady_clock::time_point deadline) {
  ForkServer* fs = role_ == Role::main ? ForkServer::started() : nullptr;
  return waker_->wait_until(deadline, fs ? fs->fd() : -1);
}

// ---- receiving ----

void GroupPump::bad_input(Peer& p, const Error& e) {
  ++stats_.bad_input;
  stats_.last_bad_input = e.message();
  if (p.logged.insert(e.code).second)
    std::fprintf(stderr, "sage: %s '%s': dropped bad input: %s (further %s input is counted, not logged)\n",
                 role_ == Role::main ? "from group" : "from", p.name.c_str(), e.message().c_str(),
                 std::string(to_string(e.code)).c_str());
}

void GroupPump::receive_from(Manager& manager, Peer& p) {
  if (!p.link) return;
  p.link->receive(SIZE_MAX, [&](std::span<const std::byte> body) { handle_message(manager, p, body); });
}

void GroupPump::handle_message(Manager& manager, Peer& p, std::span<const std::byte> body) {
  // The tag is the destination (main role: "" = here) or the origin (child role: "" = main group).
  std::string tag;
  auto r = wire::for_each_record(body, [&](const wire::Record& rec) {
    if (rec.packet_type < min_user_packet_type) {
      switch (static_cast<proto::Control>(rec.packet_type)) {
        case proto::Control::hello: {
          auto h = proto::decode_hello(rec.payload);
          if (!h) return bad_input(p, h.error());
          p.hello_received = true;
          const std::string me = role_ == Role::main ? "the main group" : "group '" + self_name_ + "'";
          const std::string them = role_ == Role::main ? "group '" + p.name + "'" : "the main group";
          if (auto ok = proto::check_compatible(my_hello(), *h, me, them); !ok) {
            if (role_ == Role::main) {
              p.pending_failure = ok.error().message();  // acted on in poll(), not while reading p
            } else {
              append_control(p, proto::Control::error,
                             proto::encode_error({proto::ErrorKind::handshake_refused, ok.error().message()}));
              (void)push_batch(p);
              throw std::runtime_error(ok.error().message());
            }
          }
          return;
        }
        case proto::Control::route:
        case proto::Control::from: {
          const bool expected = (role_ == Role::main) == (rec.packet_type == static_cast<int>(proto::Control::route));
          auto name = proto::decode_name(rec.payload);
          if (!name || !expected)
            return bad_input(p, name ? Error{Errc::malformed, "route/from in the wrong direction"} : name.error());
          tag = role_ == Role::main && *name == main_group ? std::string() : *name;
          if (role_ == Role::child && *name == main_group) tag.clear();
          return;
        }
        case proto::Control::bye:
          if (role_ == Role::child) child_->bye_received = true;
          else bad_input(p, Error{Errc::malformed, "bye sent to the main group"});
          return;
        case proto::Control::bye_ack:
          if (role_ == Role::main) p.bye_acked = true;
          else bad_input(p, Error{Errc::malformed, "bye_ack sent to a child"});
          return;
        case proto::Control::error: {
          auto e = proto::decode_error(rec.payload);
          if (!e || role_ != Role::main) return bad_input(p, e ? Error{Errc::malformed, "error report to a child"} : e.error());
          p.error_text = std::string(kind_text(e->kind)) + e->text;
          append_control(p, proto::Control::error_ack);
          (void)push_batch(p);
          return;
        }
        case proto::Control::error_ack:
          if (role_ == Role::child) child_->error_acked = true;
          return;
      }
      return bad_input(p, Error{Errc::unknown_packet_type, "control packet_type " + std::to_string(rec.packet_type)});
    }
    if (role_ == Role::main && !tag.empty()) {
      // Child -> child: relay the record unchanged, tagged with its origin.
      // Child -> remote group node: the network pump relays it the same way (docs/network.md).
      Peer* to = find(tag);
      detail::NetPump* net = !to && manager.network_enabled() ? &manager.net_pump() : nullptr;
      Result<void> rr = to ? (to->failed ? Result<void>(Errc::peer_gone, "group failed")
                                         : append(*to, rec.packet_type, rec.payload, p.name))
                        : net && net->routes_group(tag) ? net->relay_record(tag, rec.packet_type, rec.payload, p.name)
                                                        : Result<void>(Errc::peer_gone, "no group '" + tag + "'");
      if (rr) {
        ++stats_.records_relayed;
      } else {
        ++stats_.undeliverable;
        if (p.logged.insert(Errc::peer_gone).second)
          std::fprintf(stderr, "sage: cannot relay a record from group '%s' to '%s': %s (further ones are counted)\n",
                       p.name.c_str(), tag.c_str(), rr.error().message().c_str());
      }
      return;
    }
    const WireCodec& codec = codecs_[rec.packet_type];
    if (!codec.decode)
      return bad_input(p, Error{Errc::unknown_packet_type,
                                "packet_type " + std::to_string(rec.packet_type) +
                                    " (no wire message of that packet_type is registered here; see "
                                    "Manager::register_messages)"});
    if (reinterpret_cast<std::uintptr_t>(rec.payload.data()) % wire::record_alignment != 0)
      return bad_input(p, Error{Errc::misaligned, "payload not 8-aligned"});
    const Sender from = role_ == Role::main ? Sender::group(p.index) : sender_of(tag.empty() ? main_group : tag);
    auto d = codec.decode(manager, rec.payload, from);
    if (!d) return bad_input(p, Error{d.error().code, std::string(codec.name) + ": " + d.error().detail});
    ++stats_.records_received;
  });
  if (!r) bad_input(p, r.error());
}

void GroupPump::fail(Peer& p, std::string reason) {
  if (p.failed) return;
  p.failed = true;
  teardown(p, true);
  bool restarted = false;
  const auto now = Clock::now();
  if (p.options.restart.mode == RestartPolicy::Mode::on_failure) {
    std::erase_if(p.restarts, [&](auto t) { return now - t > p.options.restart.window; });
    if (static_cast<int>(p.restarts.size()) < p.options.restart.max_restarts) {
      p.restarts.push_back(now);
      try {
        spawn(p);
        restarted = true;
      } catch (const std::exception& e) {
        reason += "; restart failed: " + std::string(e.what());
      }
    } else {
      reason += "; not restarted: " + std::to_string(p.options.restart.max_restarts) + " restarts within " +
                std::to_string(p.options.restart.window.count()) + " ms";
    }
  }
  failures_.emplace_back(p.name, reason, restarted);
  if (!restarted) erase(p);
}

void GroupPump::check_exit(Peer& p) {
  if (p.failed || p.pid <= 0) return;
  if (!p.pending_failure.empty()) return fail(p, p.pending_failure);
  auto& fs = ForkServer::instance();
  auto st = fs.take_exit(p.pid);
  // The connection dropped: the exit report follows within moments; wait a little for the reason.
  if (!st && p.link && p.link->peer_gone()) st = fs.take_exit(p.pid, 2000);
  if (!st) {
    if (p.link && p.link->peer_gone()) fail(p, "connection lost");
    return;
  }
  p.exit_status = st;
  // Read what it sent before dying (an error report, messages).
  std::string reason = p.error_text.empty() ? std::string() : p.error_text + "; ";
  reason += describe_wait_status(*st);
  fail(p, reason);
}

void GroupPump::poll(Manager& manager) {
  if (role_ == Role::main) {
    // Index loop: fail() may erase peers.
    std::vector<Peer*> snapshot;
    for (auto& p : peers_) snapshot.push_back(p.get());
    for (Peer* p : snapshot) {
      if (std::find_if(peers_.begin(), peers_.end(), [&](auto& q) { return q.get() == p; }) == peers_.end())
        continue;
      receive_from(manager, *p);
      if (!p->failed) {
        check_exit(*p);
      }
    }
    if (!failures_.empty()) {
      group_error e = failures_.front();
      failures_.erase(failures_.begin());
      throw e;
    }
  } else {
    for (auto& p : peers_) receive_from(manager, *p);
  }
}

// ---- the child process ----

int GroupPump::child_main(std::span<const std::byte> args) {
  const ChildSpec spec = decode_spec(args);
  ManagerOptions mo;
  mo.group = static_cast<std::uint16_t>(spec.index);
  Manager manager(mo);
  auto owned = std::unique_ptr<GroupPump>(new GroupPump(Role::child, spec.name, spec.index));
  GroupPump& pump = *owned;
  pump.child_ = std::make_unique<ChildState>();
  for (const auto& c : spec.codecs) pump.register_codec(c);
  auto peer = std::make_unique<Peer>();
  peer->name = std::string(main_group);
  peer->index = 0;
  peer->options = spec.options;
  auto link = Link::open(Link::Role::dial, spec.url, link_options(spec.options), pump.waker_);
  if (!link) {
    std::fprintf(stderr, "sage: group '%s': %s\n", spec.name.c_str(), link.error().message().c_str());
    return 5;
  }
  peer->link = std::move(*link);
  Peer& main_peer = *peer;
  pump.peers_.push_back(std::move(peer));
  manager.attach_groups(std::move(owned));

  // Reports a failure to the main group and waits (bounded) until it was read, then exits.
  auto report = [&](proto::ErrorKind kind, const std::string& text, int code) {
    pump.append_control(main_peer, proto::Control::error, proto::encode_error({kind, text}));
    (void)pump.push_batch(main_peer);
    const auto deadline = Clock::now() + 5s;
    while (!pump.child_->error_acked && !main_peer.link->peer_gone() && Clock::now() < deadline) {
      pump.waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
      main_peer.link->receive(SIZE_MAX, [&](std::span<const std::byte> b) {
        try {
          pump.handle_message(manager, main_peer, b);
        } catch (...) {
        }
      });
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
  (void)pump.push_batch(main_peer);

  for (;;) {
    try {
      if (spec.options.max_tick_time.count() > 0)
        manager.tick(spec.options.max_tick_time);
      else
        manager.tick();
    } catch (const std::exception& e) {
      return report(proto::ErrorKind::tick_threw, e.what(), 4);
    } catch (...) {
      return report(proto::ErrorKind::tick_threw, "unknown exception", 4);
    }
    if (pump.child_->bye_received) {
      // Everything that arrived before bye was dispatched in this tick; what the actors queued is
      // flushed. Answer and leave.
      pump.append_control(main_peer, proto::Control::bye_ack);
      (void)pump.push_batch(main_peer);
      // nng completes a send once the message is queued, not once the peer has it: leaving now
      // could lose what is still in nng's buffers. The main group closes the link when it has read
      // the bye_ack (bounded by shutdown_timeout, after which it kills us anyway).
      const auto deadline = Clock::now() + spec.options.shutdown_timeout;
      while (!main_peer.link->peer_gone() && Clock::now() < deadline)
        pump.waker_->wait_until(std::min(deadline, Clock::now() + 100ms));
      manager.unregister_actor(*actor);
      return 0;
    }
    if (main_peer.link->peer_gone()) return 6;  // the main group went away
    manager.wait_for_next_tick(spec.options.interval);
  }
}

}  // namespace sage::detail

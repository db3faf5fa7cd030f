// Network messaging: the NetPump (runtime/network/net_pump.hpp; docs/network.md, docs/wire-format.md).
#include "network/net_pump.hpp"

#include <algorithm>
#include <cstdio>

#include "local/manager_access.hpp"
#include "network/peer_rules.hpp"
#include "runtime_assert.hpp"
#include "sage/manager.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {
std::span<const std::byte> text_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
long long ms(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }
}  // namespace

struct NetPump::Peer final : ChannelEvents {
  enum class Role : std::uint8_t { client, incoming, remote_group, main_group };
  enum class State : std::uint8_t { handshaking, connected, lingering, reconnecting };

  Peer(NetPump& pump, std::uint32_t index, Role role)
      : pump(pump),
        index(index),
        role(role),
        channel({.position = role == Role::main_group ? Channel::Position::spoke : Channel::Position::peer,
                 .peer_name = role == Role::main_group ? std::string(main_group) : std::string(),
                 .label = "peer",
                 .self_label = "this node",
                 .sender = Sender::peer(index),
                 .drop_on_bad_input = true,
                 .send_buffer_limit = pump.options_.send_buffer_limit,
                 .options_name = "NetworkOptions",
                 .check = &proto::check_negotiated,
                 .negotiate = true},
                pump.directory_, *this, pump.counters_) {}

  Sender sender() const { return Sender::peer(index); }
  bool live() const { return channel.connection() && state != State::lingering; }
  const std::string& group() const { return channel.peer_name(); }  // remote_group: the group it hosts

  Verdict on_hello(Channel&, const proto::Hello& theirs, const Result<void>& check) override {
    name = theirs.name;
    if (!check) {
      pump.refused(*this, check.error(), false);
      pump.linger_refused(*this, check.error());
      return Stop{check.error(), true};
    }
    return std::nullopt;
  }

  Verdict on_control(Channel&, proto::Control control, std::span<const std::byte> payload) override {
    auto bad = [](std::string text) { return Stop{Error{Errc::malformed, std::move(text)}, true}; };
    if (auto v = peer_rules::common_control(control, payload, [&](const Error& why) { pump.refused(*this, why, true); }))
      return *v;
    switch (control) {
      case proto::Control::join_group: {
        auto group = proto::decode_name(payload);
        if (!group) return Stop{group.error(), true};
        if (!pump.listener_ || role != Role::incoming) {
          pump.linger_refused(*this, Error{Errc::malformed, "join_group sent to a node that does not host groups"});
          return Stop{Error{Errc::malformed, "join_group sent to a node that does not host groups"}, true};
        }
        if (group->empty() || *group == main_group || pump.directory_.route(*group).kind != Route::Kind::none) {
          Error why{Errc::malformed, "group name '" + *group + "' is empty, reserved or taken"};
          pump.linger_refused(*this, why);
          return Stop{why, true};
        }
        role = Role::remote_group;
        const std::uint32_t gi = pump.directory_.add_group(*group);
        pump.directory_.set_route(gi, {Route::Kind::node, &channel});
        channel.set_position(Channel::Position::hub);
        channel.set_peer_name(*group);
        channel.set_label("remote group '" + *group + "' at " + address);
        channel.set_sender(Sender::group(gi));
        channel.append_control(proto::Control::join_ack);
        return std::nullopt;
      }
      case proto::Control::join_ack:
        if (role != Role::main_group) return bad("join_ack from a peer that is not the main group");
        pump.join_acked_ = true;
        state = State::connected;
        return std::nullopt;
      case proto::Control::bye:
        // The node handles what arrived before it, answers bye_ack (answer_bye()) and waits for
        // the main group to close the connection.
        if (role != Role::main_group) return bad("bye from a peer that is not the main group");
        pump.bye_received_ = true;
        return std::nullopt;
      case proto::Control::bye_ack:
        if (role != Role::remote_group) return bad("bye_ack from a peer that is not a remote group");
        bye_acked = true;
        return std::nullopt;
      default:
        return Stop{Error{Errc::unknown_packet_type, "control packet_type " + std::to_string(proto::code(control))}, true};
    }
  }

  NetPump& pump;
  std::uint32_t index;
  Role role;
  State state = State::handshaking;
  Channel channel;
  std::string address;
  std::string name;        // the name in its hello (NetworkOptions::name of the other end)
  bool announced = false;  // PeerConnected was queued, so PeerDisconnected is owed
  bool overflow_logged = false;
  bool user_closed = false;  // disconnect() was called: never reconnect
  bool bye_acked = false;    // remote_group: it answered remove_group()'s bye
  // lingering: drop once the queued bytes left, at linger_until at the latest
  Clock::time_point linger_until{};
  Clock::time_point started{};  // this connection's start: the hello deadline counts from it
  Error linger_reason;
  bool linger_bad = false;
  // client: where to dial again
  std::string host;
  std::uint16_t port = 0;
  std::unique_ptr<Dialer> dialer;
  int attempts = 0;
  std::chrono::milliseconds delay{0};
  Clock::time_point next_attempt{};
};

NetPump::NetPump(Manager& manager, const NetworkOptions& options)
    : manager_(manager),
      waker_(ManagerAccess::waker(manager)),
      directory_(ManagerAccess::directory(manager)),
      options_(options),
      drop_log_("network", options_.drop_log_burst, options_.drop_log_interval) {
  if (options_.max_message_size < 64) throw usage_error("sage: NetworkOptions::max_message_size must be >= 64");
  if (options_.heartbeat_timeout <= options_.heartbeat_interval)
    throw usage_error("sage: NetworkOptions::heartbeat_timeout must be longer than heartbeat_interval");
}

NetPump::~NetPump() {
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    if (p->role == Peer::Role::remote_group) p->channel.append_control(proto::Control::bye);
    else p->channel.append_control(proto::Control::close, text_bytes("the manager shut down"));
    (void)p->channel.flush();
  }
  const auto deadline = Clock::now() + 1s;
  for (auto& [i, p] : peers_)
    if (p->channel.connection()) p->channel.connection()->wait_sent(deadline);
  for (auto& [i, p] : peers_)
    if (p->role == Peer::Role::remote_group) directory_.remove_group(p->group());
  if (directory_.hub() && !joined_.empty()) directory_.set_hub(nullptr);
  peers_.clear();
  listener_.reset();
}

ConnectionLimits NetPump::limits() const {
  ConnectionLimits l;
  l.max_message_size = options_.max_message_size;
  // The channel enforces send_buffer_limit on records; the stream's own bound only backs it up.
  l.max_pending_bytes = options_.send_buffer_limit + options_.max_message_size + frame_header_size;
  l.max_inbox_bytes = options_.receive_buffer_limit;
  l.batch_size = stream_batch_bytes;
  return l;
}

TlsSettings NetPump::tls_settings(bool dialing, std::string_view host) const {
  TlsSettings t;
  t.enabled = options_.tls.enabled;
  t.cert_file = options_.tls.cert_file;
  t.key_file = options_.tls.key_file;
  t.ca_file = options_.tls.ca_file;
  t.verify_peer = options_.tls.verify_peer;
  t.server_name = options_.tls.server_name.empty() && dialing ? std::string(host) : options_.tls.server_name;
  return t;
}

NetworkStats NetPump::stats() const {
  NetworkStats s = stats_;
  s.frames_sent = counters_.messages_sent;
  s.frames_received = counters_.messages_received;
  s.records_sent = counters_.records_sent;
  s.records_received = counters_.records_received;
  s.records_relayed = counters_.records_relayed;
  s.undeliverable = counters_.undeliverable;
  s.relays_refused = counters_.relays_refused;
  s.unknown_type_skipped = stats_.unknown_type_skipped;
  if (listener_) s.accept_errors = listener_->accept_errors();
  for (auto& [i, p] : peers_)
    if (const Connection* conn = p->channel.connection()) s.receive_buffered_bytes += conn->received_bytes();
  return s;
}

// ---- connections ----

void NetPump::check_name() const {
  if (options_.name.size() > proto::max_hello_name || !proto::valid_utf8(options_.name))
    throw usage_error("sage: NetworkOptions::name must be at most " + std::to_string(proto::max_hello_name) +
                      " bytes of valid UTF-8 (it travels in the handshake)");
}

Endpoint NetPump::listen(std::string_view host, std::uint16_t port) {
  check_name();
  if (listener_) throw usage_error("sage: this manager already listens on " + endpoint_->url);
  if (options_.tls.enabled) {
    const std::string url = stream_url(host, port, true);
    auto l = StreamListener::open(url, tls_settings(false, host), limits(), ManagerAccess::shared_waker(manager_));
    if (!l) throw network_error(l.error());
    listener_ = std::move(*l);
  } else {
    auto l = TcpListener::open(host, port, limits(), ManagerAccess::shared_waker(manager_));
    if (!l) throw network_error(l.error());
    listener_ = std::move(*l);
  }
  endpoint_ = Endpoint{std::string(host), listener_->port(), stream_url(host, listener_->port(), options_.tls.enabled)};
  return *endpoint_;
}

NetPump::Peer& NetPump::add_peer(std::unique_ptr<Connection> conn, int role) {
  auto p = std::make_unique<Peer>(*this, next_index_++, static_cast<Peer::Role>(role));
  Peer& ref = *p;
  peers_.emplace(ref.index, std::move(p));
  start_connection(ref, std::move(conn));
  return ref;
}

// A fresh connection: our hello goes first (with join_group when this node hosts a group).
void NetPump::start_connection(Peer& p, std::unique_ptr<Connection> conn) {
  p.address = conn->remote_address();
  if (p.role != Peer::Role::remote_group) p.channel.set_label("peer " + p.address);
  if (p.role == Peer::Role::main_group) p.channel.set_label("the main group at " + p.address);
  p.channel.attach(std::move(conn), p.role == Peer::Role::main_group ? joined_ : options_.name);
  p.state = Peer::State::handshaking;
  p.started = Clock::now();
  p.overflow_logged = false;
  if (p.role == Peer::Role::main_group) p.channel.append_control(proto::Control::join_group, proto::encode_name(joined_));
  (void)p.channel.flush();
  if (next_round_ == Clock::time_point::max()) next_round_ = Clock::now() + options_.heartbeat_interval;
}

// tcp:// on sage's own sockets (TcpDialer), tls+tcp:// on nng's streams (StreamDialer).
std::unique_ptr<Dialer> NetPump::make_dialer(std::string_view host, std::uint16_t port) {
  if (options_.tls.enabled) {
    auto d = StreamDialer::open(stream_url(host, port, true), tls_settings(true, host), limits(),
                                ManagerAccess::shared_waker(manager_));
    if (!d) throw network_error(d.error());
    return std::move(*d);
  }
  auto d = TcpDialer::open(host, port, limits(), ManagerAccess::shared_waker(manager_));
  if (!d) throw network_error(d.error());
  return std::move(*d);
}

std::unique_ptr<Connection> NetPump::dial_blocking(std::string_view host, std::uint16_t port,
                                                   std::unique_ptr<Dialer>* keep) {
  auto dialer = make_dialer(host, port);
  const std::string url = dialer->url();
  dialer->start(options_.connect_timeout);
  const auto deadline = Clock::now() + options_.connect_timeout + 1s;
  std::optional<Result<std::unique_ptr<Connection>>> r;
  while (!(r = dialer->take()) && Clock::now() < deadline)
    waker_.wait_nested(std::min({deadline, dialer->next_deadline(), Clock::now() + 50ms}));
  if (!r) throw network_error(Error{Errc::peer_gone, "cannot connect to " + url + ": timed out"});
  if (!*r) throw network_error(r->error());
  ++stats_.connections_dialed;
  if (keep) *keep = std::move(dialer);
  return std::move(**r);
}

Sender NetPump::connect(std::string_view host, std::uint16_t port) {
  check_name();
  std::unique_ptr<Dialer> dialer;
  auto conn = dial_blocking(host, port, &dialer);
  Peer& p = add_peer(std::move(conn), static_cast<int>(Peer::Role::client));
  p.host = std::string(host);
  p.port = port;
  p.dialer = std::move(dialer);
  p.delay = options_.reconnect.initial_delay;
  return p.sender();
}

NetPump::Peer* NetPump::find(Sender s) const {
  if (s.kind != Sender::Kind::peer) throw not_a_peer();
  auto it = peers_.find(s.index);
  return it == peers_.end() ? nullptr : it->second.get();
}

void NetPump::disconnect(Sender s) {
  Peer* p = find(s);
  if (!p) return;
  p->user_closed = true;
  const Error why{Errc::peer_gone, "disconnect() called"};
  if (!p->live()) {
    p->channel.detach();
    p->state = Peer::State::lingering;
    p->linger_until = Clock::now();
    p->linger_reason = why;
    return;
  }
  p->channel.append_control(proto::Control::close, text_bytes("disconnect() called"));
  (void)p->channel.flush();
  linger(*p, why, false);
}

void NetPump::disconnect_outgoing() {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->role == Peer::Role::client) out.push_back(p->sender());
  for (Sender s : out) disconnect(s);
}

Sender NetPump::server() const {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->role == Peer::Role::client && !p->user_closed) out.push_back(p->sender());
  if (out.size() != 1) throw no_server(out.size());
  return out.front();
}

// ---- sending ----

void NetPump::linger(Peer& p, Error why, bool bad) {
  p.state = Peer::State::lingering;
  p.linger_until = Clock::now() + 1s;
  p.linger_reason = std::move(why);
  p.linger_bad = bad;
}

void NetPump::linger_refused(Peer& p, Error why) {
  // Tell the other end why, then close once that left (poll() drops the peer as bad input).
  p.channel.append_control(proto::Control::error, proto::encode_error({proto::ErrorKind::handshake_refused, why.message()}));
  (void)p.channel.flush();
  linger(p, std::move(why), true);
}

void NetPump::refused(Peer& p, const Error& why, bool by_peer) {
  ++stats_.handshakes_refused;
  refused_[p.index] = why;
  peer_rules::report_refused(manager_, "network", p.address, p.sender(), p.address, p.name, why, by_peer);
}

void NetPump::overflow(Peer& p, const Error& e) {
  ++stats_.send_buffer_full;
  const bool cut = options_.on_send_buffer_full == OverflowPolicy::disconnect;
  if (!p.overflow_logged || cut)
    log::write(log::Level::warning, "network", "network: peer ", log::peer(p.address), " does not keep up: ", e.message(),
               cut ? "; disconnecting it (OverflowPolicy::disconnect)" : " (further refusals are counted)");
  p.overflow_logged = true;
  if (cut) {
    // What was accepted before stays queued and is written before the close.
    p.channel.append_control(proto::Control::close, text_bytes("send buffer full"));
    (void)p.channel.flush();
    linger(p, e, false);
  }
}

Result<void> NetPump::queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload) {
  Peer* p = find(peer);
  if (auto it = refused_.find(peer.index); it != refused_.end())
    return peer_rules::refused_send(p ? p->address : std::to_string(peer.index), it->second);
  if (!p) return Error{Errc::peer_gone, "peer " + std::to_string(peer.index) + " is gone"};
  directory_.register_codec(codec);
  if (!p->live())
    return Error{Errc::peer_gone, "peer " + p->address +
                                      (p->state == Peer::State::reconnecting ? " is reconnecting" : " is disconnected")};
  auto r = p->channel.send(codec.packet_type, payload);
  if (!r && r.error().code == Errc::send_buffer_full) overflow(*p, r.error());
  return r;
}

std::size_t NetPump::broadcast_record(const WireCodec& codec, std::span<const std::byte> payload) {
  if (wire::record_size(payload.size()) > options_.max_message_size)
    throw send_error(Error{Errc::too_large, "a message of " + std::to_string(payload.size()) +
                                                " bytes does not fit the frame limit of " +
                                                std::to_string(options_.max_message_size) + " bytes"});
  directory_.register_codec(codec);
  std::size_t n = 0;
  for (auto& [i, p] : peers_) {
    if (!p->live() || !p->announced) continue;
    if (!p->channel.peer_knows(codec.packet_type)) {
      ++stats_.unknown_type_skipped;  // its schemas do not have this message (docs/network.md)
      continue;
    }
    auto r = p->channel.send(codec.packet_type, payload);
    if (r) ++n;
    else if (r.error().code == Errc::send_buffer_full) overflow(*p, r.error());
  }
  return n;
}

void NetPump::flush(Manager&) {
  const auto now = Clock::now();
  const bool round = now >= next_round_;
  bool any = false;
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    any = true;
    // One shared timer: each round, a heartbeat to every peer sent nothing for most of an interval.
    if (round && !p->channel.has_batch() && now - p->channel.last_sent() >= options_.heartbeat_interval / 2)
      p->channel.append_control(proto::Control::heartbeat);
    (void)p->channel.flush();  // append() checked the limits; a dead connection shows in poll()
  }
  if (round) next_round_ = any ? now + options_.heartbeat_interval : Clock::time_point::max();
}

Clock::time_point NetPump::next_deadline() const {
  Clock::time_point t = next_round_;
  for (auto& [i, p] : peers_) {
    if (p->state == Peer::State::lingering) t = std::min(t, p->linger_until);
    if (p->state == Peer::State::reconnecting && p->dialer)
      t = std::min(t, p->dialer->busy() ? p->dialer->next_deadline() : p->next_attempt);
    if (p->state == Peer::State::handshaking && p->channel.connection())
      t = std::min(t, p->started + options_.hello_timeout);
    if (p->channel.more_waiting()) t = Clock::now();  // a tick's read stopped at its budget
  }
  // A frame in progress is checked by the heartbeat round (its deadline is 30 s by default, the
  // round a second): no per-byte timer.
  if (listener_) t = std::min(t, listener_->next_deadline());
  t = std::min(t, drop_log_.deadline());
  return t;
}

// ---- receiving ----

void NetPump::log_drop(const std::string& address, const Error& why) {
  if (!drop_log_.write(address, why.message())) ++stats_.drop_logs_suppressed;
}

void NetPump::receive_from(Peer& p) {
  if (!p.channel.connection() || p.state == Peer::State::lingering) return;
  const auto failure = p.channel.connection()->failure();
  const Verdict stop = p.channel.receive_tick(manager_);
  stats_.unknown_type_skipped += p.channel.take_unknown_dropped();
  if (p.state == Peer::State::lingering) return;  // refused: closes once the error record left
  if (stop) return drop(p, stop->error, stop->bad);
  if (p.channel.hello_received() && p.state == Peer::State::handshaking) {
    if (p.role == Peer::Role::client || p.role == Peer::Role::incoming) {
      p.state = Peer::State::connected;
      p.announced = true;
      p.attempts = 0;
      p.delay = options_.reconnect.initial_delay;
      ++stats_.peers_connected;
      manager_.queue_message_from(PeerConnected{p.sender(), p.address, p.name, p.role == Peer::Role::client},
                                  p.sender());
    } else if (p.role == Peer::Role::remote_group) {
      p.state = Peer::State::connected;
      ++stats_.peers_connected;
    }
  }
  if (failure) return drop(p, *failure, failure->code != Errc::peer_gone);  // a broken frame is bad input
  const auto now = Clock::now();
  if (p.state == Peer::State::handshaking && now - p.started > options_.hello_timeout) {
    ++stats_.hello_timeouts;
    const Error why{Errc::peer_gone, "no complete hello from " + p.address + " within " +
                                         std::to_string(options_.hello_timeout.count()) +
                                         " ms (NetworkOptions::hello_timeout)"};
    log_drop(p.address, why);
    return drop(p, why, false);
  }
  if (const auto partial = p.channel.connection()->partial_for(); partial > options_.frame_timeout) {
    ++stats_.frame_timeouts;
    const Error why{Errc::peer_gone, "a frame from " + p.address + " was still incomplete after " +
                                         std::to_string(ms(partial)) + " ms (NetworkOptions::frame_timeout is " +
                                         std::to_string(options_.frame_timeout.count()) + " ms)"};
    log_drop(p.address, why);
    return drop(p, why, false);
  }
  if (const auto idle = p.channel.connection()->idle_for(); idle > options_.heartbeat_timeout) {
    ++stats_.heartbeat_timeouts;
    const Error why{Errc::peer_gone, "nothing arrived from " + p.address + " for " + std::to_string(ms(idle)) +
                                         " ms (NetworkOptions::heartbeat_timeout is " +
                                         std::to_string(options_.heartbeat_timeout.count()) + " ms)"};
    log_drop(p.address, why);
    drop(p, why, false);
  }
}

void NetPump::drop(Peer& p, Error why, bool bad) {
  if (bad) {
    ++stats_.bad_input;
    stats_.last_bad_input = why.message();
    log_drop(p.address, why);
  }
  p.channel.detach();
  if (p.role == Peer::Role::main_group) main_lost_ = why.message();
  if (p.role == Peer::Role::remote_group) {
    failures_.emplace_back(p.group(), "remote group node " + p.address + ": " + why.message());
    ++stats_.peers_disconnected;
    directory_.remove_group(p.group());
    peers_.erase(p.index);
    return;
  }
  const bool retry = p.dialer && peer_rules::reconnects(options_.reconnect, p.role == Peer::Role::client,
                                                        p.user_closed, why, p.attempts);
  if (p.announced) {
    ++stats_.peers_disconnected;
    manager_.queue_message_from(PeerDisconnected{p.sender(), p.address, p.name, why, retry}, p.sender());
  }
  p.announced = false;
  if (retry) {
    p.state = Peer::State::reconnecting;
    p.next_attempt = Clock::now() + p.delay;
    return;
  }
  peers_.erase(p.index);
}

void NetPump::service_reconnect(Peer& p) {
  if (auto r = p.dialer->take()) {
    if (*r) {
      ++stats_.connections_dialed;
      start_connection(p, std::move(**r));
      return;  // PeerConnected follows the hello
    }
    ++p.attempts;
    p.delay = std::min(options_.reconnect.max_delay, p.delay * 2);
    p.next_attempt = Clock::now() + p.delay;
    return;
  }
  if (!p.dialer->busy() && Clock::now() >= p.next_attempt) p.dialer->start(options_.connect_timeout);
}

void NetPump::poll(Manager&) {
  if (listener_) {
    for (auto& c : listener_->take_accepted()) {
      ++stats_.connections_accepted;
      if (options_.max_peers != 0 && peers_.size() >= options_.max_peers) {
        ++stats_.peers_refused;
        log_drop(c->remote_address(), Error{Errc::io_error, "refused at accept: " + std::to_string(peers_.size()) +
                                                                 " peers already (NetworkOptions::max_peers)"});
        c->close();
        continue;
      }
      add_peer(std::move(c), static_cast<int>(Peer::Role::incoming));
    }
  }
  drop_log_.roll(Clock::now());
  std::vector<std::uint32_t> ids;
  ids.reserve(peers_.size());
  for (auto& [i, p] : peers_) ids.push_back(i);
  const auto now = Clock::now();
  for (std::uint32_t id : ids) {
    auto it = peers_.find(id);
    if (it == peers_.end()) continue;
    Peer& p = *it->second;
    switch (p.state) {
      case Peer::State::lingering: {
        Connection* c = p.channel.connection();
        if (!c || c->pending_bytes() == 0 || c->failure() || now >= p.linger_until) drop(p, p.linger_reason, p.linger_bad);
        break;
      }
      case Peer::State::reconnecting:
        service_reconnect(p);
        if (p.channel.connection()) break;
        if (options_.reconnect.max_attempts != 0 && p.attempts >= options_.reconnect.max_attempts) {
          ++stats_.peers_disconnected;
          manager_.queue_message_from(
              PeerDisconnected{p.sender(), p.address, p.name,
                               Error{Errc::peer_gone, "gave up after " + std::to_string(p.attempts) + " reconnect attempts"},
                               false},
              p.sender());
          peers_.erase(id);
        }
        break;
      case Peer::State::handshaking:
      case Peer::State::connected:
        receive_from(p);
        break;
    }
  }
  if (!failures_.empty()) {
    group_error e = failures_.front();
    failures_.erase(failures_.begin());
    throw e;
  }
}

std::vector<PeerInfo> NetPump::peers() const {
  std::vector<PeerInfo> out;
  for (auto& [i, p] : peers_)
    out.push_back({p->sender(), p->address, p->name, p->role == Peer::Role::client,
                   p->live() && p->announced, p->channel.pending_bytes()});
  return out;
}

// ---- remote groups ----

void NetPump::join_group(std::string_view host, std::uint16_t port, std::string_view name) {
  if (!joined_.empty()) throw usage_error("sage: this manager already hosts group '" + joined_ + "'");
  if (name.empty() || name.size() > proto::max_group_name || name == main_group)
    throw usage_error("sage: a group name must have 1.." + std::to_string(proto::max_group_name) +
                      " bytes and not be sage::main_group");
  joined_ = std::string(name);
  Sender s{};
  const auto deadline = Clock::now() + options_.connect_timeout + 1s;
  try {
    auto conn = dial_blocking(host, port, nullptr);
    Peer& p = add_peer(std::move(conn), static_cast<int>(Peer::Role::main_group));
    s = p.sender();
    directory_.set_self(joined_, 1);
    directory_.set_hub(&p.channel);
    // A bye may follow the ack at once (the main group ended): joining still succeeded.
    while (Clock::now() < deadline && !join_acked_) {
      Peer* q = find(s);
      if (!q) break;
      receive_from(*q);
      if (join_acked_) break;
      waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
    }
    if (join_acked_) return;
  } catch (...) {
    joined_.clear();
    directory_.set_hub(nullptr);
    throw;
  }
  const std::string why = main_lost_ ? *main_lost_ : "the main group did not answer in time";
  if (Peer* q = find(s)) drop(*q, Error{Errc::peer_gone, why}, false);
  directory_.set_hub(nullptr);
  directory_.set_self(main_group, 0);
  joined_.clear();
  main_lost_.reset();
  throw network_error(Error{Errc::peer_gone, "cannot join as group '" + std::string(name) + "': " + why});
}

std::vector<std::string> NetPump::remote_groups() const { return directory_.groups(Route::Kind::node); }

void NetPump::remove_group(std::string_view name) {
  Peer* p = nullptr;
  for (auto& [i, q] : peers_)
    if (q->role == Peer::Role::remote_group && q->group() == name) p = q.get();
  if (!p) throw no_such_group(name);
  const std::uint32_t id = p->index;
  const std::string group(name);
  auto alive = [&]() -> Peer* {
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second.get();
  };
  p->channel.append_control(proto::Control::bye);
  (void)p->channel.flush();
  // bye_ack is the node's last record: once it is read, everything the node sent before was read
  // (and queued here for the next tick).
  const auto deadline = Clock::now() + options_.heartbeat_timeout;
  while (Peer* q = alive()) {
    if (q->bye_acked || Clock::now() >= deadline) break;
    receive_from(*q);
    if ((q = alive()) && q->bye_acked) break;
    waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
  }
  Peer* q = alive();
  if (!q) {
    // Lost while saying goodbye: report it here instead of at the next tick.
    auto it = std::find_if(failures_.begin(), failures_.end(), [&](const group_error& e) { return e.group() == group; });
    std::string reason = it != failures_.end() ? it->reason() : "connection lost";
    if (it != failures_.end()) failures_.erase(it);
    throw group_error(group, reason);
  }
  const bool clean = q->bye_acked;
  q->channel.detach();  // the node waits for this close, then its run_remote_group returns 0
  ++stats_.peers_disconnected;
  directory_.remove_group(group);
  peers_.erase(id);
  if (!clean)
    throw group_error(group, "remote group node did not answer bye within " +
                                 std::to_string(options_.heartbeat_timeout.count()) +
                                 " ms (NetworkOptions::heartbeat_timeout)");
}

void NetPump::answer_bye() {
  for (auto& [i, p] : peers_) {
    if (p->role != Peer::Role::main_group || !p->live()) continue;
    p->channel.append_control(proto::Control::bye_ack);
    (void)p->channel.flush();
    // Leaving at once could lose what is still queued; the main group closes after reading bye_ack.
    const auto deadline = Clock::now() + options_.heartbeat_timeout;
    while (p->channel.connection() && !p->channel.connection()->failure() && Clock::now() < deadline)
      waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
  }
}

}  // namespace sage::detail

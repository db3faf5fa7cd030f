// The one peer lifecycle (runtime/network/peer_pump.hpp; docs/network.md, docs/wire-format.md).
#include "network/peer_pump.hpp"

#include <algorithm>

#include "local/manager_access.hpp"
#include "log/log.hpp"
#include "runtime_assert.hpp"
#include "sage/manager.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {
std::span<const std::byte> text_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string text_of(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
long long ms(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// A peer's reason text (close, error) as kept and logged here: at most max_peer_text bytes, so a
// peer cannot make this process hold or print a megabyte per connection.
constexpr std::size_t max_peer_text = 1024;
std::string capped(std::string text) {
  if (text.size() <= max_peer_text) return text;
  const std::size_t cut = text.size() - max_peer_text;
  text.resize(max_peer_text);
  return text + "... (" + std::to_string(cut) + " more bytes not kept)";
}

// Refusal reasons kept for later sends to refused peers (queue_record says why): the newest ones.
constexpr std::size_t max_refusals_kept = 1024;
}  // namespace

// ---- a peer ----

PeerPump::Peer::Peer(PeerPump& pump, std::uint32_t index, Role role)
    : pump(pump),
      index(index),
      role(role),
      channel({.position = role == Role::main_group ? Channel::Position::spoke : Channel::Position::peer,
               .peer_name = role == Role::main_group ? std::string(main_group) : std::string(),
               .label = "peer",
               .self_label = "this node",
               .sender = Sender::peer(index),
               .drop_on_bad_input = true,
               .send_buffer_limit = pump.config_.send_buffer_limit,
               .options_name = pump.config_.options_name,
               .check = &proto::check_negotiated,
               .negotiate = true},
              pump.directory_, *this, pump.channels_) {}

Verdict PeerPump::Peer::on_hello(Channel&, const proto::Hello& theirs, const Result<void>& check) {
  name = theirs.name;
  if (check) {
    if (role != Role::incoming || !pump.config_.admit) return std::nullopt;
    auto no = pump.config_.admit(AdmissionRequest{AdmissionRequest::Kind::peer, address, name, identity});
    return no ? pump.refuse_admission(*this, *no) : std::nullopt;
  }
  pump.refused(*this, check.error(), false);
  pump.linger_refused(*this, check.error());
  return Stop{check.error(), true};
}

Verdict PeerPump::Peer::on_control(Channel&, proto::Control control, std::span<const std::byte> payload) {
  return pump.common_control(*this, control, payload);
}

// heartbeat: nothing to do; close: the peer left (not bad input), with its reason; error: it
// refused our handshake (reported, and the peer stops). Any other record: the roles decide.
Verdict PeerPump::common_control(Peer& p, proto::Control control, std::span<const std::byte> payload) {
  switch (control) {
    case proto::Control::heartbeat:
      return std::nullopt;
    case proto::Control::close:
      return Stop{
          Error{Errc::peer_gone, "closed by the peer" + (payload.empty() ? std::string() : ": " + capped(text_of(payload)))},
          false};
    case proto::Control::error: {
      auto e = proto::decode_error(payload);
      if (e && e->kind == proto::ErrorKind::full)  // not a refusal of us: the listener is full for now
        return Stop{Error{Errc::peer_gone, "refused by the peer: " + capped(e->text)}, false};
      Error why{Errc::incompatible, "refused by the peer: " + (e ? capped(e->text) : std::string("(unreadable reason)"))};
      refused(p, why, true);
      return Stop{why, false};
    }
    default:
      return on_role_control(p, control, payload);
  }
}

Verdict PeerPump::on_role_control(Peer&, proto::Control control, std::span<const std::byte>) {
  return Stop{Error{Errc::unknown_packet_type, "control packet_type " + std::to_string(proto::code(control)) +
                                                   " is not used between " + config_.component + " peers"},
              true};
}

void PeerPump::goodbye(Peer& p) { p.channel.append_control(proto::Control::close, text_bytes("the manager shut down")); }

// ---- the table ----

PeerPump::PeerPump(Manager& manager, PeerConfig config, std::unique_ptr<PeerTransport> transport)
    : manager_(manager),
      waker_(ManagerAccess::waker(manager)),
      directory_(ManagerAccess::directory(manager)),
      config_(std::move(config)),
      transport_(std::move(transport)),
      next_index_(config_.first_index),
      drop_log_(config_.component, config_.drop_log_burst, config_.drop_log_interval) {}

PeerPump::~PeerPump() = default;

void PeerPump::shutdown() {
  transport_->stop_accepting();
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    goodbye(*p);
    (void)p->channel.flush();
  }
  transport_->flush();
  const auto deadline = Clock::now() + 1s;
  for (auto& [i, p] : peers_)
    if (p->live()) p->channel.connection()->wait_sent(deadline);
  for (auto& [i, p] : peers_)
    if (Connection* c = p->channel.connection()) transport_->start_close(*c, CloseReason::shutdown);
  transport_->flush();
  peers_.clear();
}

PeerPump::Peer& PeerPump::add_peer(Role role) {
  auto p = std::make_unique<Peer>(*this, next_index_++, role);
  Peer& ref = *p;
  peers_.emplace(ref.index, std::move(p));
  return ref;
}

PeerPump::Peer* PeerPump::find(Sender s) const {
  if (s.kind != Sender::Kind::peer || is_datagram_peer(s) != (config_.first_index >= datagram_peer_base))
    throw not_a_peer();
  return at(s.index);
}

PeerPump::Peer* PeerPump::at(std::uint32_t index) const {
  auto it = peers_.find(index);
  return it == peers_.end() ? nullptr : it->second.get();
}

PeerPump::Peer* PeerPump::peer_of(const Channel* channel) const {
  for (auto& [i, p] : peers_)
    if (&p->channel == channel) return p.get();
  return nullptr;
}

void PeerPump::erase(Peer& p) { peers_.erase(p.index); }

void PeerPump::check_name(const std::string& name) const {
  if (name.size() > proto::max_hello_name || !proto::valid_utf8(name))
    throw usage_error("sage: " + std::string(config_.options_name) + "::name must be at most " +
                      std::to_string(proto::max_hello_name) + " bytes of valid UTF-8 (it travels in the handshake)");
}

std::uint64_t PeerPump::receive_buffered_bytes() const {
  std::uint64_t n = 0;
  for (auto& [i, p] : peers_)
    if (const Connection* c = p->channel.connection()) n += c->received_bytes();
  return n;
}

// ---- connections ----

Endpoint PeerPump::listen(std::string_view host, std::uint16_t port) {
  check_name(config_.name);
  if (endpoint_) throw usage_error("sage: this manager already listens on " + endpoint_->url);
  endpoint_ = transport_->listen(host, port, *this);
  return *endpoint_;
}

namespace {
// "1.2.3.4" of "1.2.3.4:5", "::1" of "[::1]:5".
std::string_view host_of(std::string_view address) {
  const auto colon = address.rfind(':');
  std::string_view h = address.substr(0, colon == std::string_view::npos ? address.size() : colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return h;
}
}  // namespace

std::optional<Error> PeerPump::admit(const std::string& address) {
  ++stats_.connections_accepted;
  std::optional<Error> why;
  if (config_.max_peers != 0 && peers_.size() >= config_.max_peers) {
    why = Error{Errc::not_admitted, "the server has max_peers peers (" + std::to_string(peers_.size()) + ", " +
                                        std::string(config_.options_name) + "::max_peers); try again later"};
  } else if (config_.max_peers_per_address != 0) {
    const std::string_view host = host_of(address);
    std::size_t same = 0;
    for (auto& [i, p] : peers_)
      if (p->role != Role::client && host_of(p->address) == host) ++same;
    if (same >= config_.max_peers_per_address)
      why = Error{Errc::not_admitted, "the server has max_peers_per_address peers from " + std::string(host) + " (" +
                                          std::to_string(same) + ", " + std::string(config_.options_name) +
                                          "::max_peers_per_address); try again later"};
  }
  if (!why) return std::nullopt;
  ++stats_.peers_refused;
  log_drop(transport_->who(address), *why);
  return why;
}

void PeerPump::accepted(std::unique_ptr<Connection> conn) {
  Peer& p = add_peer(Role::incoming);
  p.hello_name = config_.name;
  start_connection(p, std::move(conn));
}

void PeerPump::rejected(const std::string& address, const Error& why) {
  ++stats_.bad_input;
  stats_.last_bad_input = why.message();
  log_drop(transport_->who(address), why);
}

void PeerPump::dialed(Dialer& dialer) {
  for (auto& [i, p] : peers_)
    if (p->dialer.get() == &dialer && p->state == State::dialing) return service_dial(*p);
}

// A fresh connection: our hello goes first (RemoteNode queues join_group right after).
void PeerPump::start_connection(Peer& p, std::unique_ptr<Connection> conn) {
  p.address = conn->remote_address();
  p.identity = !conn->identity().empty() ? conn->identity() : p.role == Role::incoming ? config_.identity : std::string();
  if (p.role == Role::main_group) p.channel.set_label("the main group at " + p.address);
  else if (p.role != Role::remote_group) p.channel.set_label("peer " + p.who());
  p.channel.attach(std::move(conn), p.hello_name);
  p.state = State::handshaking;
  p.started = Clock::now();
  p.overflow_logged = false;
  p.refusal_logged = false;
  if (p.role == Role::main_group) p.channel.append_control(proto::Control::join_group, proto::encode_name(p.hello_name));
  (void)p.channel.flush();
  if (config_.heartbeat_interval.count() > 0 && next_round_ == Clock::time_point::max())
    next_round_ = Clock::now() + config_.heartbeat_interval;
}

PeerPump::Peer& PeerPump::dial(Role role, std::string_view host, std::uint16_t port, std::string hello_name) {
  check_name(config_.name);
  Peer& p = add_peer(role);
  p.host = std::string(host);
  p.port = port;
  p.address = p.host + ":" + std::to_string(port);
  p.hello_name = std::move(hello_name);
  p.delay = config_.reconnect.initial_delay;
  try {
    p.dialer = transport_->dialer(host, port, *this);
    p.dialer->start(config_.connect_timeout);
    p.state = State::dialing;
    if (config_.connect_waits) {
      const auto deadline = Clock::now() + config_.connect_timeout + 1s;
      std::optional<Result<std::unique_ptr<Connection>>> r;
      while (!(r = p.dialer->take()) && Clock::now() < deadline)
        waker_.wait_nested(std::min({deadline, p.dialer->next_deadline(), Clock::now() + 50ms}));
      if (!r) throw network_error(Error{Errc::peer_gone, "cannot connect to " + p.dialer->url() + ": timed out"});
      if (!*r) throw network_error(r->error());
      ++stats_.connections_dialed;
      start_connection(p, std::move(**r));
      p.announced = true;  // the caller holds the Sender: a drop before the hello is reported too
    } else if (auto r = p.dialer->take(); r && !*r) {
      throw network_error(r->error());  // could not even start (no free slot, unresolvable)
    } else {
      p.announced = true;  // the caller holds the Sender: a PeerDisconnected is owed if it never connects
    }
  } catch (...) {
    erase(p);
    throw;
  }
  return p;
}

Sender PeerPump::connect(std::string_view host, std::uint16_t port) {
  return dial(Role::client, host, port, config_.name).sender();
}

void PeerPump::disconnect(Sender s) {
  Peer* p = find(s);
  if (!p) return;
  p->user_closed = true;
  const Error why{Errc::peer_gone, "disconnect() called"};
  if (!p->live()) {  // dialing or reconnecting: gone at the next poll
    p->dialer.reset();
    p->channel.detach();
    p->state = State::lingering;
    p->until = Clock::now();
    p->linger_reason = why;
    return;
  }
  p->channel.append_control(proto::Control::close, text_bytes("disconnect() called"));
  (void)p->channel.flush();
  linger(*p, why, false);
}

void PeerPump::disconnect_outgoing() {
  for (Sender s : servers()) disconnect(s);
}

std::vector<Sender> PeerPump::servers() const {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->role == Role::client && !p->user_closed) out.push_back(p->sender());
  return out;
}

void PeerPump::linger(Peer& p, Error why, bool bad) {
  if (Connection* c = p.channel.connection()) transport_->start_close(*c, CloseReason::closed);
  p.state = State::lingering;
  p.until = Clock::now() + 1s;
  p.linger_reason = std::move(why);
  p.linger_bad = bad;
}

// Tell the other end why, then close once that left (the peer is then dropped as bad input).
void PeerPump::linger_refused(Peer& p, const Error& why) {
  p.channel.append_control(proto::Control::error, proto::encode_error({proto::ErrorKind::handshake_refused, why.message()}));
  (void)p.channel.flush();
  linger(p, why, true);
}

Verdict PeerPump::refuse_admission(Peer& p, const std::string& reason) {
  ++stats_.admissions_refused;
  constexpr std::size_t max_reason = 256;  // an application's text, but it travels and is logged
  Error why{Errc::not_admitted, "not admitted: " + reason.substr(0, max_reason)};
  log_drop(p.who(), why);
  p.channel.append_control(proto::Control::error, proto::encode_error({proto::ErrorKind::handshake_refused, why.message()}));
  (void)p.channel.flush();
  linger(p, why, false);
  return Stop{why, false};
}

// A refused handshake (by us, or by the peer): one log line (the connection's only one: its drop
// writes none; rate-limited with the drop lines), PeerRefused queued from the peer, counted; later
// sends to that peer fail with the reason.
void PeerPump::refused(Peer& p, const Error& why, bool by_peer) {
  ++stats_.handshakes_refused;
  refused_[p.index] = why;
  if (refused_.size() > max_refusals_kept) refused_.erase(refused_.begin());  // indices only grow: the oldest
  p.refusal_logged = true;
  const char* c = config_.component;
  if (!drop_log_.admit())
    ++stats_.drop_logs_suppressed;
  else if (by_peer)
    log::write(log::Level::warning, c, c, ": ", log::peer(p.who()), " refused this node: ", log::peer(why.message()));
  else
    log::write(log::Level::warning, c, c, ": refused ", log::peer(p.who()), ": ", log::peer(why.message()));
  manager_.queue_message_from(PeerRefused{p.sender(), p.address, p.name, why, by_peer}, p.sender());
}

// ---- sending ----

void PeerPump::overflow(Peer& p, const Error& e) {
  ++stats_.send_buffer_full;
  const bool cut = config_.on_send_buffer_full == OverflowPolicy::disconnect;
  if (!p.overflow_logged || cut)
    log::write(log::Level::warning, config_.component, config_.component, ": peer ", log::peer(p.who()),
               " does not keep up: ", e.message(),
               cut ? "; disconnecting it (OverflowPolicy::disconnect)" : " (further refusals are counted)");
  p.overflow_logged = true;
  if (cut) {
    // What was accepted before stays queued and is written before the close.
    p.channel.append_control(proto::Control::close, text_bytes("send buffer full"));
    (void)p.channel.flush();
    linger(p, e, false);
  }
}

Result<void> PeerPump::queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload,
                                    Delivery delivery) {
  Peer* p = find(peer);
  auto who = [&] { return p ? p->who() : std::to_string(peer.index - config_.first_index + 1); };  // errors only
  if (!refused_.empty())
    if (auto it = refused_.find(peer.index); it != refused_.end())
      return Error{Errc::incompatible, "the handshake with peer " + who() + " was refused: " + it->second.message()};
  if (!p) return Error{Errc::peer_gone, std::string(config_.component) + " peer " + who() + " is gone"};
  directory_.register_codec(codec);
  if (!p->live())
    return Error{Errc::peer_gone, "peer " + who() +
                                      (p->state == State::dialing && p->announced ? " is not connected yet"
                                       : p->state == State::lingering             ? " is disconnected"
                                                                                  : " is reconnecting")};
  auto r = p->channel.send(codec.packet_type, payload, delivery);
  if (!r && r.error().code == Errc::send_buffer_full) overflow(*p, r.error());
  return r;
}

std::size_t PeerPump::broadcast_record(const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery) {
  if (wire::record_size(payload.size()) > config_.max_message_size)
    throw send_error(Error{Errc::too_large, "a message of " + std::to_string(payload.size()) +
                                                " bytes does not fit " + std::string(config_.options_name) +
                                                "::max_message_size (" + std::to_string(config_.max_message_size) +
                                                " bytes)"});
  directory_.register_codec(codec);
  std::size_t n = 0;
  for (auto& [i, p] : peers_) {
    if (p->state != State::connected || !p->announced || !p->live()) continue;
    if (!p->channel.peer_knows(codec.packet_type)) {
      ++stats_.unknown_type_skipped;  // its schemas do not have this message (docs/network.md)
      continue;
    }
    auto r = p->channel.send(codec.packet_type, payload, delivery);
    if (r) ++n;
    else if (r.error().code == Errc::send_buffer_full) overflow(*p, r.error());
  }
  return n;
}

void PeerPump::flush(Manager&) {
  const auto now = Clock::now();
  const bool round = now >= next_round_;
  bool any = false;
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    any = true;
    // One shared timer: each round, a heartbeat to every peer sent nothing for most of an interval.
    if (round && !p->channel.has_batch() && now - p->channel.last_sent() >= config_.heartbeat_interval / 2)
      p->channel.append_control(proto::Control::heartbeat);
    (void)p->channel.flush();  // append() checked the limits; a dead connection shows in poll()
  }
  transport_->flush();
  if (round) next_round_ = any ? now + config_.heartbeat_interval : Clock::time_point::max();
}

Clock::time_point PeerPump::next_deadline() const {
  Clock::time_point t = std::min(next_round_, transport_->next_deadline());
  for (auto& [i, p] : peers_) {
    switch (p->state) {
      case State::lingering:
      case State::reconnecting:
        t = std::min(t, p->until);
        break;
      case State::dialing:
        if (p->dialer) t = std::min(t, p->dialer->next_deadline());
        break;
      case State::handshaking:
        t = std::min(t, p->started + config_.hello_timeout);
        break;
      case State::connected:
        break;
    }
    if (p->channel.more_waiting()) t = Clock::now();  // a tick's read stopped at its budget
  }
  // A frame in progress is checked by the heartbeat round (its deadline is 30 s by default, the
  // round a second): no per-byte timer.
  return std::min(t, drop_log_.deadline());
}

// ---- receiving ----

void PeerPump::log_drop(const std::string& who, const Error& why) {
  if (!drop_log_.write(who, why.message())) ++stats_.drop_logs_suppressed;
}

void PeerPump::receive_from(Peer& p) {
  if (!p.live()) return;
  const auto failure = p.channel.connection()->failure();
  const Verdict stop = p.channel.receive_tick(manager_);
  stats_.unknown_type_skipped += p.channel.take_unknown_dropped();
  if (p.state == State::lingering) return;  // refused: closes once the error record left
  if (stop) return drop(p, stop->error, stop->bad);
  // The handshake is done when their hello was accepted (a main_group link: at join_ack).
  if (p.channel.hello_received() && p.state == State::handshaking && p.role != Role::main_group) {
    p.state = State::connected;
    ++stats_.peers_connected;
    if (p.role != Role::remote_group) {
      p.announced = true;
      p.attempts = 0;
      p.delay = config_.reconnect.initial_delay;
      manager_.queue_message_from(PeerConnected{p.sender(), p.address, p.name, p.role == Role::client, p.identity}, p.sender());
    }
  }
  if (failure) return drop(p, *failure, failure->code != Errc::peer_gone);  // a broken frame is bad input
  const auto now = Clock::now();
  if (p.state == State::handshaking && now - p.started > config_.hello_timeout) {
    ++stats_.hello_timeouts;
    return drop(p,
                Error{Errc::peer_gone, "no complete hello from " + p.who() + " within " +
                                           std::to_string(config_.hello_timeout.count()) + " ms (" +
                                           std::string(config_.options_name) + "::hello_timeout)"},
                false, true);
  }
  if (config_.heartbeat_interval.count() == 0) return;  // the transport keeps the link alive (ENet)
  if (const auto partial = p.channel.connection()->partial_for(); partial > config_.frame_timeout) {
    ++stats_.frame_timeouts;
    return drop(p,
                Error{Errc::peer_gone, "a frame from " + p.who() + " was still incomplete after " +
                                           std::to_string(ms(partial)) + " ms (" + std::string(config_.options_name) +
                                           "::frame_timeout is " + std::to_string(config_.frame_timeout.count()) +
                                           " ms)"},
                false, true);
  }
  if (const auto idle = p.channel.connection()->idle_for(); idle > config_.heartbeat_timeout) {
    ++stats_.heartbeat_timeouts;
    drop(p,
         Error{Errc::peer_gone, "nothing arrived from " + p.who() + " for " + std::to_string(ms(idle)) + " ms (" +
                                    std::string(config_.options_name) + "::heartbeat_timeout is " +
                                    std::to_string(config_.heartbeat_timeout.count()) + " ms)"},
         false, true);
  }
}

// Bad input is counted and logged; so are `log` drops and peers that never connected (a failed
// dial, a lost handshake). A refusal was logged by refused(): its drop is counted, not logged again.
void PeerPump::drop(Peer& p, Error why, bool bad, bool log) {
  if (bad) {
    ++stats_.bad_input;
    stats_.last_bad_input = why.message();
  }
  const bool never_connected = p.state == State::dialing || p.state == State::handshaking;
  if ((bad || log || (never_connected && p.role == Role::client && why.code != Errc::incompatible)) &&
      !p.refusal_logged)
    log_drop(p.who(), why);
  p.channel.detach();
  if (p.role == Role::remote_group || p.role == Role::main_group) {
    on_role_lost(p, why);
    return erase(p);
  }
  const bool retry = p.role == Role::client && config_.reconnect.enabled && !p.user_closed &&
                     why.code != Errc::incompatible &&
                     (config_.reconnect.max_attempts == 0 || p.attempts < config_.reconnect.max_attempts);
  if (p.announced) {
    ++stats_.peers_disconnected;
    manager_.queue_message_from(PeerDisconnected{p.sender(), p.address, p.name, why, retry}, p.sender());
  }
  p.announced = false;
  if (!retry) return erase(p);
  p.state = State::reconnecting;
  p.until = Clock::now() + p.delay;
}

// A dial under way: connected (handshaking), failed (a first non-waiting dial is dropped like a
// lost peer; a reconnect attempt waits twice as long, up to max_attempts), or still running.
void PeerPump::service_dial(Peer& p) {
  auto r = p.dialer->take();
  if (!r) return;
  if (*r) {
    ++stats_.connections_dialed;
    return start_connection(p, std::move(**r));  // PeerConnected follows the hello
  }
  if (p.announced) return drop(p, r->error(), false);
  ++p.attempts;
  p.delay = std::min(config_.reconnect.max_delay, p.delay * 2);
  if (config_.reconnect.max_attempts != 0 && p.attempts >= config_.reconnect.max_attempts) {
    ++stats_.peers_disconnected;
    manager_.queue_message_from(
        PeerDisconnected{p.sender(), p.address, p.name,
                         Error{Errc::peer_gone, "gave up after " + std::to_string(p.attempts) + " reconnect attempts"},
                         false},
        p.sender());
    return erase(p);
  }
  p.state = State::reconnecting;
  p.until = Clock::now() + p.delay;
}

void PeerPump::poll(Manager&) {
  drop_log_.roll(Clock::now());
  transport_->service();  // accepts (admit, accepted), ENet's events
  std::vector<std::uint32_t> ids;
  ids.reserve(peers_.size());
  for (auto& [i, p] : peers_) ids.push_back(i);
  const auto now = Clock::now();
  for (std::uint32_t id : ids) {
    Peer* p = at(id);
    if (!p) continue;
    switch (p->state) {
      case State::lingering: {
        Connection* c = p->channel.connection();
        if (!c || transport_->drained(*c) || c->failure() || now >= p->until) drop(*p, p->linger_reason, p->linger_bad);
        break;
      }
      case State::reconnecting:
        if (now < p->until) break;
        SAGE_ASSERT(p->dialer);  // made by dial(), kept while the peer reconnects
        p->dialer->start(config_.connect_timeout);
        p->state = State::dialing;
        [[fallthrough]];
      case State::dialing:
        service_dial(*p);
        break;
      case State::handshaking:
      case State::connected:
        receive_from(*p);
        break;
    }
  }
}

std::vector<PeerInfo> PeerPump::peers() const {
  std::vector<PeerInfo> out;
  for (auto& [i, p] : peers_)
    out.push_back({p->sender(), p->address, p->name, p->role == Role::client,
                   p->state == State::connected && p->announced && p->live(), p->channel.pending_bytes(), p->identity});
  return out;
}

}  // namespace sage::detail

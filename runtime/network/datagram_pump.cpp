// Datagram peers over ENet: the DatagramPump (runtime/network/datagram_pump.hpp; docs/network.md).
#include "network/datagram_pump.hpp"

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
std::string enet_url(std::string_view host, std::uint16_t port) {
  return "enet://" + std::string(host) + ":" + std::to_string(port);
}
}  // namespace

struct DatagramPump::Peer final : ChannelEvents {
  enum class Role : std::uint8_t { client, incoming };
  enum class State : std::uint8_t { dialing, handshaking, connected, lingering, reconnecting };

  Peer(DatagramPump& pump, std::uint32_t index, Role role)
      : pump(pump),
        index(index),
        role(role),
        channel({.position = Channel::Position::peer,
                 .peer_name = {},
                 .label = "peer",
                 .self_label = "this node",
                 .sender = Sender::peer(index),
                 .drop_on_bad_input = true,
                 .send_buffer_limit = pump.options_.send_buffer_limit,
                 .options_name = "DatagramOptions",
                 .check = &proto::check_negotiated,
                 .negotiate = true},
                pump.directory_, *this, pump.counters_) {}

  Sender sender() const { return Sender::peer(index); }
  bool live() const { return channel.connection() && (state == State::handshaking || state == State::connected); }
  DatagramConn* conn() const { return static_cast<DatagramConn*>(channel.connection()); }

  Verdict on_hello(Channel&, const proto::Hello& theirs, const Result<void>& check) override {
    name = theirs.name;
    if (!check) {
      pump.refused(*this, check.error(), false);
      // Tell the other end why, then disconnect once that was acknowledged.
      channel.append_control(proto::Control::error,
                             proto::encode_error({proto::ErrorKind::handshake_refused, check.error().message()}));
      (void)channel.flush();
      pump.linger(*this, check.error(), true, datagram_code::closed);
      return Stop{check.error(), true};
    }
    return std::nullopt;
  }

  Verdict on_control(Channel&, proto::Control control, std::span<const std::byte> payload) override {
    if (auto v = peer_rules::common_control(control, payload, [&](const Error& why) { pump.refused(*this, why, true); }))
      return *v;
    return Stop{Error{Errc::unknown_packet_type,
                      "control packet_type " + std::to_string(proto::code(control)) + " is not used between datagram peers"},
                true};
  }

  DatagramPump& pump;
  std::uint32_t index;
  Role role;
  State state = State::dialing;
  Channel channel;
  std::string address;
  std::string name;
  bool announced = false;    // PeerConnected was queued (or, for a client, connect_datagram returned it)
  bool user_closed = false;  // disconnect() was called: never reconnect
  Clock::time_point linger_until{};
  Clock::time_point started{};  // this connection's start: the hello deadline counts from it
  Error linger_reason;
  bool linger_bad = false;
  // client: where to dial (again)
  std::string host;
  std::uint16_t port = 0;
  _ENetPeer* dialing = nullptr;
  Clock::time_point dial_deadline{};
  std::optional<Error> dial_failed;
  int attempts = 0;
  std::chrono::milliseconds delay{0};
  Clock::time_point next_attempt{};
};

DatagramPump::DatagramPump(Manager& manager, const DatagramOptions& options)
    : manager_(manager),
      waker_(ManagerAccess::waker(manager)),
      directory_(ManagerAccess::directory(manager)),
      options_(options),
      drop_log_("datagram", options_.drop_log_burst, options_.drop_log_interval) {
  if (options_.max_message_size < 64) throw usage_error("sage: DatagramOptions::max_message_size must be >= 64");
  if (options_.channels < 1 || options_.channels > 80)
    throw usage_error("sage: DatagramOptions::channels must be 1..80 (ENet has 255 channels, 3 delivery modes)");
  if (options_.max_peers < 1 || options_.max_peers > 4000)
    throw usage_error("sage: DatagramOptions::max_peers must be 1..4000 (ENet's peer ids)");
  if (options_.peer_timeout.count() <= 0 || options_.ping_interval.count() <= 0 || options_.hello_timeout.count() <= 0)
    throw usage_error("sage: DatagramOptions::peer_timeout, ping_interval and hello_timeout must be positive");
}

DatagramPump::~DatagramPump() {
  for (DatagramHost* h : {listener_.get(), dialer_.get()})
    if (h) h->set_events(nullptr);
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    p->channel.append_control(proto::Control::close, text_bytes("the manager shut down"));
    (void)p->channel.flush();
  }
  const auto deadline = Clock::now() + 1s;
  for (auto& [i, p] : peers_)
    if (p->conn() && p->live()) p->conn()->wait_sent(deadline);
  for (auto& [i, p] : peers_)
    if (p->conn()) p->conn()->disconnect_later(datagram_code::shutdown);
  for (DatagramHost* h : {listener_.get(), dialer_.get()})
    if (h) h->flush();
  peers_.clear();
  listener_.reset();
  dialer_.reset();
}

DatagramSettings DatagramPump::settings() const {
  DatagramSettings s;
  s.peer_slots = options_.max_peers + 8;
  s.channels_per_mode = options_.channels;
  s.limits.max_message_size = options_.max_message_size;
  s.limits.max_pending_bytes = options_.send_buffer_limit + options_.max_message_size;
  s.limits.unreliable_batch_size = options_.unreliable_batch_size;
  s.limits.batch_size = options_.reliable_batch_size;
  s.peer_timeout = options_.peer_timeout;
  s.ping_interval = options_.ping_interval;
  return s;
}

DatagramStats DatagramPump::stats() const {
  DatagramStats s = stats_;
  s.packets_sent = counters_.messages_sent;
  s.packets_received = counters_.messages_received;
  s.records_sent = counters_.records_sent;
  s.records_received = counters_.records_received;
  for (DatagramHost* h : {listener_.get(), dialer_.get()}) {
    if (!h) continue;
    s.bad_datagrams += h->bad_datagrams();
    s.early_unreliable += h->early_unreliable();
  }
  return s;
}

void DatagramPump::log_drop(const std::string& who, const Error& why) {
  if (!drop_log_.write(who, why.message())) ++stats_.drop_logs_suppressed;
}

void DatagramPump::refused(Peer& p, const Error& why, bool by_peer) {
  ++stats_.handshakes_refused;
  refused_[p.index] = why;
  peer_rules::report_refused(manager_, "datagram", "enet://" + p.address, p.sender(), p.address, p.name, why, by_peer);
}

// ---- connections ----

Endpoint DatagramPump::listen(std::string_view host, std::uint16_t port) {
  if (listener_) throw usage_error("sage: this manager already listens on " + endpoint_->url);
  auto h = DatagramHost::open(true, std::string(host), port, settings(), ManagerAccess::shared_waker(manager_));
  if (!h) throw network_error(h.error());
  listener_ = std::move(*h);
  listener_->set_events(this);
  endpoint_ = Endpoint{std::string(host), listener_->port(), enet_url(host, listener_->port())};
  return *endpoint_;
}

DatagramHost& DatagramPump::client_host() {
  if (!dialer_) {
    DatagramSettings s = settings();
    s.peer_slots = options_.max_peers;  // outgoing connections of this manager
    auto h = DatagramHost::open(false, {}, 0, s, ManagerAccess::shared_waker(manager_));
    if (!h) throw network_error(h.error());
    dialer_ = std::move(*h);
    dialer_->set_events(this);
  }
  return *dialer_;
}

DatagramPump::Peer& DatagramPump::add_peer(int role) {
  auto p = std::make_unique<Peer>(*this, next_index_++, static_cast<Peer::Role>(role));
  Peer& ref = *p;
  peers_.emplace(ref.index, std::move(p));
  return ref;
}

void DatagramPump::attach(Peer& p, DatagramHost& host, _ENetPeer* enet_peer) {
  auto conn = std::make_unique<DatagramConn>(host, enet_peer);
  p.address = conn->remote_address();
  p.channel.set_label("peer enet://" + p.address);
  p.channel.attach(std::move(conn), options_.name);
  p.state = Peer::State::handshaking;
  p.started = Clock::now();
  p.dialing = nullptr;
  (void)p.channel.flush();
}

void DatagramPump::dial(Peer& p) {
  auto r = client_host().dial(p.host, p.port);
  if (!r) throw network_error(r.error());
  p.dialing = *r;
  p.dial_failed.reset();
  p.state = Peer::State::dialing;
  p.dial_deadline = Clock::now() + options_.connect_timeout;
  ++stats_.connections_dialed;
  dialer_->flush();
}

Sender DatagramPump::connect(std::string_view host, std::uint16_t port) {
  Peer& p = add_peer(static_cast<int>(Peer::Role::client));
  p.host = std::string(host);
  p.port = port;
  p.address = std::string(host) + ":" + std::to_string(port);
  p.delay = options_.reconnect.initial_delay;
  try {
    dial(p);
  } catch (...) {
    peers_.erase(p.index);
    throw;
  }
  p.announced = true;  // the caller holds the Sender: a PeerDisconnected is owed if it never connects
  return p.sender();
}

DatagramPump::Peer* DatagramPump::find(Sender s) const {
  if (!is_datagram_peer(s)) throw not_a_peer();
  auto it = peers_.find(s.index);
  return it == peers_.end() ? nullptr : it->second.get();
}

void DatagramPump::linger(Peer& p, Error why, bool bad, std::uint32_t code) {
  if (DatagramConn* c = p.conn()) c->disconnect_later(code);
  p.state = Peer::State::lingering;
  p.linger_until = Clock::now() + 1s;
  p.linger_reason = std::move(why);
  p.linger_bad = bad;
}

void DatagramPump::disconnect(Sender s) {
  Peer* p = find(s);
  if (!p) return;
  p->user_closed = true;
  const Error why{Errc::peer_gone, "disconnect() called"};
  if (!p->live()) {
    if (p->dialing && dialer_) dialer_->drop_now(p->dialing, datagram_code::closed);
    p->dialing = nullptr;
    p->channel.detach();
    p->state = Peer::State::lingering;
    p->linger_until = Clock::now();
    p->linger_reason = why;
    return;
  }
  p->channel.append_control(proto::Control::close, text_bytes("disconnect() called"));
  (void)p->channel.flush();
  linger(*p, why, false, datagram_code::closed);
}

void DatagramPump::disconnect_outgoing() {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->role == Peer::Role::client) out.push_back(p->sender());
  for (Sender s : out) disconnect(s);
}

std::vector<Sender> DatagramPump::servers() const {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->role == Peer::Role::client && !p->user_closed) out.push_back(p->sender());
  return out;
}

// ---- sending ----

Result<void> DatagramPump::queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload,
                                        Delivery delivery) {
  if (delivery.channel >= options_.channels)
    throw usage_error("sage: Delivery::channel " + std::to_string(delivery.channel) +
                      " is not below DatagramOptions::channels (" + std::to_string(options_.channels) + ")");
  Peer* p = find(peer);
  if (auto it = refused_.find(peer.index); it != refused_.end())
    return peer_rules::refused_send(
        "enet://" + (p ? p->address : std::to_string(peer.index - datagram_peer_base)), it->second);
  if (!p) return Error{Errc::peer_gone, "datagram peer " + std::to_string(peer.index - datagram_peer_base) + " is gone"};
  directory_.register_codec(codec);
  if (!p->live())
    return Error{Errc::peer_gone, "peer enet://" + p->address +
                                      (p->state == Peer::State::dialing ? " is not connected yet"
                                       : p->state == Peer::State::reconnecting ? " is reconnecting"
                                                                               : " is disconnected")};
  auto r = p->channel.send(codec.packet_type, payload, delivery);
  if (!r && r.error().code == Errc::send_buffer_full) ++stats_.send_buffer_full;
  return r;
}

std::size_t DatagramPump::broadcast_record(const WireCodec& codec, std::span<const std::byte> payload,
                                           Delivery delivery) {
  if (wire::record_size(payload.size()) > options_.max_message_size)
    throw send_error(Error{Errc::too_large, "a message of " + std::to_string(payload.size()) +
                                                " bytes does not fit DatagramOptions::max_message_size (" +
                                                std::to_string(options_.max_message_size) + " bytes)"});
  directory_.register_codec(codec);
  std::size_t n = 0;
  for (auto& [i, p] : peers_) {
    if (p->state != Peer::State::connected || !p->live()) continue;
    if (!p->channel.peer_knows(codec.packet_type)) {
      ++stats_.unknown_type_skipped;  // its schemas do not have this message (docs/network.md)
      continue;
    }
    if (queue_record(p->sender(), codec, payload, delivery)) ++n;
  }
  return n;
}

void DatagramPump::flush(Manager&) {
  for (auto& [i, p] : peers_)
    if (p->live()) (void)p->channel.flush();  // send() checked the limits; a dead peer shows in poll()
  for (DatagramHost* h : {listener_.get(), dialer_.get()})
    if (h) h->flush();
}

Clock::time_point DatagramPump::next_deadline() const {
  Clock::time_point t = Clock::time_point::max();
  for (DatagramHost* h : {listener_.get(), dialer_.get()})
    if (h) t = std::min(t, h->next_deadline());
  for (auto& [i, p] : peers_) {
    if (p->state == Peer::State::lingering) t = std::min(t, p->linger_until);
    if (p->state == Peer::State::dialing) t = std::min(t, p->dial_deadline);
    if (p->state == Peer::State::reconnecting) t = std::min(t, p->next_attempt);
    if (p->state == Peer::State::handshaking) t = std::min(t, p->started + options_.hello_timeout);
  }
  return std::min(t, drop_log_.deadline());
}

// ---- receiving ----

void DatagramPump::on_host_event(DatagramHost& host, const HostEvent& ev) {
  if (ev.kind == HostEvent::Kind::connected) on_connected(host, ev);
  else on_disconnected(ev);
}

void DatagramPump::on_connected(DatagramHost& host, const HostEvent& ev) {
  if (&host == dialer_.get()) {
    for (auto& [i, p] : peers_)
      if (p->state == Peer::State::dialing && p->dialing == ev.peer) return attach(*p, host, ev.peer);
    host.drop_now(ev.peer, datagram_code::closed);  // a dial we gave up on
    return;
  }
  const std::string from = DatagramHost::address_of(ev.peer);
  if (ev.data != datagram_code::connect) {
    ++stats_.bad_input;
    stats_.last_bad_input = "a connect from " + from + " is not from a sage peer (connect data " + std::to_string(ev.data) + ")";
    log_drop("enet://" + from, Error{Errc::malformed, "refused at connect: not a sage peer (connect data " +
                                                          std::to_string(ev.data) + ")"});
    host.drop_now(ev.peer, datagram_code::not_sage);
    return;
  }
  if (peers_.size() >= options_.max_peers) {
    ++stats_.peers_refused;
    log_drop("enet://" + from, Error{Errc::io_error, "refused at connect: " + std::to_string(peers_.size()) +
                                                        " peers already (DatagramOptions::max_peers)"});
    host.drop_now(ev.peer, datagram_code::full);
    return;
  }
  ++stats_.connections_accepted;
  Peer& p = add_peer(static_cast<int>(Peer::Role::incoming));
  attach(p, host, ev.peer);
}

void DatagramPump::on_disconnected(const HostEvent& ev) {
  if (ev.had_conn) {
    // The connection failed (its failure() says why); poll() drops the peer.
    if (ev.data == datagram_code::timeout) ++stats_.timeouts;
    return;
  }
  for (auto& [i, p] : peers_) {
    if (p->state != Peer::State::dialing || p->dialing != ev.peer) continue;
    p->dialing = nullptr;
    p->dial_failed = Error{Errc::peer_gone, ev.data == datagram_code::full ? "the server has max_peers peers"
                                            : ev.data == datagram_code::timeout
                                                ? "no answer (nothing listens there, or its host is full)"
                                                : "refused (disconnect code " + std::to_string(ev.data) + ")"};
    return;
  }
}

void DatagramPump::receive_from(Peer& p) {
  if (!p.live()) return;
  const auto failure = p.channel.connection()->failure();
  const Verdict stop = p.channel.receive(manager_);
  stats_.unknown_type_skipped += p.channel.take_unknown_dropped();
  if (p.state == Peer::State::lingering) return;  // refused: disconnects once the error record left
  if (stop) return drop(p, stop->error, stop->bad);
  if (p.channel.hello_received() && p.state == Peer::State::handshaking) {
    p.state = Peer::State::connected;
    p.announced = true;
    p.attempts = 0;
    p.delay = options_.reconnect.initial_delay;
    ++stats_.peers_connected;
    manager_.queue_message_from(PeerConnected{p.sender(), p.address, p.name, p.role == Peer::Role::client}, p.sender());
  }
  if (failure) return drop(p, *failure, failure->code != Errc::peer_gone);
  if (p.state == Peer::State::handshaking && Clock::now() - p.started > options_.hello_timeout) {
    ++stats_.hello_timeouts;
    const Error why{Errc::peer_gone, "no hello from enet://" + p.address + " within " +
                                         std::to_string(options_.hello_timeout.count()) +
                                         " ms (DatagramOptions::hello_timeout)"};
    drop(p, why, false);
  }
}

void DatagramPump::drop(Peer& p, Error why, bool bad) {
  if (bad) {
    ++stats_.bad_input;
    stats_.last_bad_input = why.message();
    log_drop("enet://" + p.address, why);
  } else if ((p.state == Peer::State::handshaking || p.state == Peer::State::dialing) &&
             why.code != Errc::incompatible) {
    log_drop("enet://" + p.address, why);  // never connected: a hello timeout, a failed dial (refusals: refused())
  }
  p.channel.detach();
  if (p.dialing && dialer_) dialer_->drop_now(p.dialing, datagram_code::closed);
  p.dialing = nullptr;
  const bool retry =
      peer_rules::reconnects(options_.reconnect, p.role == Peer::Role::client, p.user_closed, why, p.attempts);
  if (p.announced) {
    ++stats_.peers_disconnected;
    manager_.queue_message_from(PeerDisconnected{p.sender(), p.address, p.name, why, retry}, p.sender());
  }
  p.announced = p.role == Peer::Role::client;  // a client's Sender stays with the caller
  if (retry) {
    ++p.attempts;
    p.state = Peer::State::reconnecting;
    p.next_attempt = Clock::now() + p.delay;
    p.delay = std::min(options_.reconnect.max_delay, p.delay * 2);
    return;
  }
  peers_.erase(p.index);
}

void DatagramPump::poll(Manager&) {
  drop_log_.roll(Clock::now());
  if (listener_) listener_->service();
  if (dialer_) dialer_->service();
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
        DatagramConn* c = p.conn();
        if (!c || c->failure() || now >= p.linger_until) drop(p, p.linger_reason, p.linger_bad);
        break;
      }
      case Peer::State::dialing:
        if (p.dial_failed) drop(p, Error{Errc::peer_gone, "cannot connect to " + enet_url(p.host, p.port) + ": " + p.dial_failed->message()}, false);
        else if (now >= p.dial_deadline)
          drop(p, Error{Errc::peer_gone, "cannot connect to " + enet_url(p.host, p.port) + ": no answer within " +
                                             std::to_string(options_.connect_timeout.count()) +
                                             " ms (DatagramOptions::connect_timeout)"},
               false);
        break;
      case Peer::State::reconnecting:
        if (now >= p.next_attempt) dial(p);
        break;
      case Peer::State::handshaking:
      case Peer::State::connected:
        receive_from(p);
        break;
    }
  }
}

std::vector<PeerInfo> DatagramPump::peers() const {
  std::vector<PeerInfo> out;
  for (auto& [i, p] : peers_)
    out.push_back({p->sender(), p->address, p->name, p->role == Peer::Role::client,
                   p->state == Peer::State::connected && p->live(), p->channel.pending_bytes()});
  return out;
}

std::uint32_t DatagramPump::round_trip_ms(Sender peer) const {
  Peer* p = find(peer);
  return p && p->conn() ? p->conn()->round_trip_ms() : 0;
}

}  // namespace sage::detail

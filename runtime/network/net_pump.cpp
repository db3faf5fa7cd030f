// Network messaging: the NetPump (docs/network.md; bytes in docs/wire-format.md "TCP").
#include "sage/detail/net_pump.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "sage/detail/group_pump.hpp"
#include "sage/manager.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {
constexpr std::uint8_t ctl(proto::Control c) { return static_cast<std::uint8_t>(c); }
constexpr std::uint8_t ctl(NetControl c) { return static_cast<std::uint8_t>(c); }

std::span<const std::byte> text_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string bytes_text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

long long ms(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }
}  // namespace

struct NetPump::Peer {
  std::uint32_t index = 0;
  std::unique_ptr<StreamConn> conn;
  std::string address;
  std::string name;
  bool outgoing = false;
  bool hello_received = false;
  bool announced = false;
  std::vector<std::byte> batch;
  Clock::time_point last_sent = Clock::now();
  bool overflow_logged = false;
  // Closing on purpose (disconnect(), refused handshake): drop once the queued bytes left.
  std::optional<Clock::time_point> linger_until;
  Error linger_reason;
  bool linger_bad = false;
  bool user_closed = false;
  // Outgoing connections: where to dial again.
  std::string host;
  std::uint16_t port = 0;
  std::unique_ptr<StreamDialer> dialer;
  bool reconnecting = false;
  int attempts = 0;
  std::chrono::milliseconds delay{0};
  Clock::time_point next_attempt{};
  // Remote groups: the group this peer hosts (main side), or whether it is the main group (node side).
  std::string group;
  std::uint32_t group_index = 0;
  bool is_main = false;
  bool join_acked = false;
  // Relaying (route/from over TCP): the destination (node side) or origin (main side) in force at
  // the batch's end; "" = the main group.
  std::string batch_tag;
  bool bye_acked = false;       // main side: the node answered remove_group()'s bye
  bool relay_logged = false;    // main side: an undeliverable relay from this node was logged

  bool live() const { return conn && !linger_until; }
  Sender sender() const { return Sender::peer(index); }
};

NetPump::NetPump(const NetworkOptions& options) : options_(options), codecs_(256) {
  if (options_.max_message_size < 64) throw usage_error("sage: NetworkOptions::max_message_size must be >= 64");
  if (options_.heartbeat_timeout <= options_.heartbeat_interval)
    throw usage_error("sage: NetworkOptions::heartbeat_timeout must be longer than heartbeat_interval");
}

NetPump::~NetPump() {
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    if (!p->group.empty()) append_control(*p, ctl(proto::Control::bye));
    else append_control(*p, ctl(NetControl::close), text_bytes("the manager shut down"));
    (void)push_batch(*p);
  }
  const auto deadline = Clock::now() + 1s;
  for (auto& [i, p] : peers_)
    if (p->conn) p->conn->wait_sent(deadline);
  peers_.clear();
  listener_.reset();
}

void NetPump::register_codec(const WireCodec& codec) {
  WireCodec& slot = codecs_[codec.packet_type];
  if (slot.decode && slot.decode != codec.decode && (slot.fingerprint != codec.fingerprint || slot.name != codec.name))
    throw packet_type_conflict(codec.packet_type, slot.name, codec.name);
  slot = codec;
}

StreamOptions NetPump::stream_options() const {
  StreamOptions s;
  s.max_frame_size = options_.max_message_size;
  // append() enforces send_buffer_limit on records; the stream's own bound only backs it up.
  s.max_pending_bytes = options_.send_buffer_limit + options_.max_message_size + frame_header_size;
  s.max_inbox_bytes = options_.receive_buffer_limit;
  return s;
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

proto::Hello NetPump::my_hello() const {
  proto::Hello h;
  h.pid = static_cast<std::uint32_t>(::getpid());
  for (const auto& c : codecs_)
    if (c.decode) h.entries.push_back({c.packet_type, c.fingerprint});
  h.schema_fingerprint = proto::schema_fingerprint(h.entries);
  h.name = joined_.empty() ? options_.name : joined_;
  return h;
}

// ---- connections ----

Endpoint NetPump::listen(std::string_view host, std::uint16_t port) {
  if (listener_) throw usage_error("sage: this manager already listens on " + endpoint_->url);
  const std::string url = stream_url(host, port, options_.tls.enabled);
  auto l = StreamListener::open(url, tls_settings(false, host), stream_options(), waker_);
  if (!l) throw network_error(l.error());
  listener_ = std::move(*l);
  endpoint_ = Endpoint{std::string(host), listener_->port(), stream_url(host, listener_->port(), options_.tls.enabled)};
  return *endpoint_;
}

NetPump::Peer& NetPump::add_peer(std::unique_ptr<StreamConn> conn, bool outgoing) {
  auto p = std::make_unique<Peer>();
  p->index = next_index_++;
  p->outgoing = outgoing;
  p->conn = std::move(conn);
  Peer& ref = *p;
  peers_.emplace(ref.index, std::move(p));
  start_connection(ref);
  return ref;
}

// A fresh connection: our hello goes first (with join_group when this node hosts a group).
void NetPump::start_connection(Peer& p) {
  p.address = p.conn->remote_address();
  p.hello_received = p.announced = p.overflow_logged = p.join_acked = false;
  p.batch.clear();
  p.last_sent = Clock::now();
  append_control(p, ctl(proto::Control::hello), proto::encode_hello(my_hello()));
  if (p.is_main) append_control(p, ctl(NetControl::join_group), proto::encode_name(joined_));
  (void)push_batch(p);
}

Sender NetPump::connect(std::string_view host, std::uint16_t port) {
  const std::string url = stream_url(host, port, options_.tls.enabled);
  auto d = StreamDialer::open(url, tls_settings(true, host), stream_options(), waker_);
  if (!d) throw network_error(d.error());
  auto dialer = std::move(*d);
  dialer->start(options_.connect_timeout);
  const auto deadline = Clock::now() + options_.connect_timeout + 1s;
  std::optional<Result<std::unique_ptr<StreamConn>>> r;
  while (!(r = dialer->take()) && Clock::now() < deadline) waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
  if (!r) throw network_error(Error{Errc::peer_gone, "cannot connect to " + url + ": timed out"});
  if (!*r) throw network_error(r->error());
  ++stats_.connections_dialed;
  Peer& p = add_peer(std::move(**r), true);
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
  if (!p->live()) {
    p->reconnecting = false;
    p->conn.reset();
    p->linger_until = Clock::now();
    p->linger_reason = Error{Errc::peer_gone, "disconnect() called"};
    return;
  }
  append_control(*p, ctl(NetControl::close), text_bytes("disconnect() called"));
  (void)push_batch(*p);
  p->linger_until = Clock::now() + 1s;
  p->linger_reason = Error{Errc::peer_gone, "disconnect() called"};
}

void NetPump::disconnect_outgoing() {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->outgoing) out.push_back(p->sender());
  for (Sender s : out) disconnect(s);
}

Sender NetPump::server() const {
  std::vector<Sender> out;
  for (auto& [i, p] : peers_)
    if (p->outgoing && !p->user_closed) out.push_back(p->sender());
  if (out.size() != 1) throw no_server(out.size());
  return out.front();
}

// ---- sending ----

void NetPump::append_control(Peer& p, std::uint8_t c, std::span<const std::byte> payload) {
  if (!p.conn) return;
  if (p.batch.size() + wire::record_size(payload.size()) > options_.max_message_size) (void)push_batch(p);
  wire::append_record(p.batch, c, payload);
}

Result<void> NetPump::append(Peer& p, std::uint8_t packet_type, std::span<const std::byte> payload,
                             std::string_view tag) {
  const std::size_t rec = wire::record_size(payload.size());
  // Room for a route/from record in front of this one, when the tag may have to change.
  const std::size_t tag_max = tag.empty() && p.batch_tag.empty() ? 0 : wire::record_size(2 + proto::max_group_name);
  if (rec + tag_max > options_.max_message_size)
    return Error{Errc::too_large, "a message of " + std::to_string(payload.size()) +
                                      " bytes does not fit the frame limit of " +
                                      std::to_string(options_.max_message_size) +
                                      " bytes (NetworkOptions::max_message_size)"};
  if (!p.live())
    return Error{Errc::peer_gone, "peer " + p.address + (p.reconnecting ? " is reconnecting" : " is disconnected")};
  if (p.batch.size() + rec + tag_max > options_.max_message_size) {
    if (auto r = push_batch(p); !r) return r;
  }
  const std::string_view tag_name = tag.empty() ? main_group : tag;
  const std::size_t tag_bytes = tag != p.batch_tag ? wire::record_size(2 + tag_name.size()) : 0;
  const std::size_t waiting = p.conn->pending_bytes() + p.batch.size();
  if (waiting + rec + tag_bytes > options_.send_buffer_limit) {
    Error e{Errc::send_buffer_full, "peer " + p.address + " has not taken " + std::to_string(waiting) +
                                        " bytes yet; the limit is " + std::to_string(options_.send_buffer_limit) +
                                        " (NetworkOptions::send_buffer_limit)"};
    overflow(p, e);
    return e;
  }
  if (tag != p.batch_tag) {
    // A node names the destination (route), the main group the origin (from).
    wire::append_record(p.batch, p.is_main ? ctl(proto::Control::route) : ctl(proto::Control::from),
                        proto::encode_name(tag_name));
    p.batch_tag = std::string(tag);
  }
  wire::append_record(p.batch, packet_type, payload);
  ++stats_.records_sent;
  return {};
}

void NetPump::overflow(Peer& p, const Error& e) {
  ++stats_.send_buffer_full;
  const bool cut = options_.on_send_buffer_full == OverflowPolicy::disconnect;
  if (!p.overflow_logged || cut)
    std::fprintf(stderr, "sage: network: peer %s does not keep up: %s%s\n", p.address.c_str(), e.message().c_str(),
                 cut ? "; disconnecting it (OverflowPolicy::disconnect)" : " (further refusals are counted)");
  p.overflow_logged = true;
  if (cut) {
    // What was accepted before stays queued and is written before the close.
    append_control(p, ctl(NetControl::close), text_bytes("send buffer full"));
    (void)push_batch(p);
    p.linger_until = Clock::now() + 1s;
    p.linger_reason = e;
  }
}

Result<void> NetPump::push_batch(Peer& p) {
  if (p.batch.empty()) return {};
  if (!p.conn) return Error{Errc::peer_gone, "no connection"};
  auto r = p.conn->send(p.batch);
  if (!r) return r;
  ++stats_.frames_sent;
  p.batch.clear();
  p.batch_tag.clear();
  p.last_sent = Clock::now();
  return {};
}

Result<void> NetPump::queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload) {
  Peer* p = find(peer);
  if (!p) return Error{Errc::peer_gone, "peer " + std::to_string(peer.index) + " is gone"};
  if (!codecs_[codec.packet_type].decode) register_codec(codec);
  return append(*p, codec.packet_type, payload);
}

std::size_t NetPump::broadcast_record(const WireCodec& codec, std::span<const std::byte> payload) {
  if (wire::record_size(payload.size()) > options_.max_message_size)
    throw send_error(Error{Errc::too_large, "a message of " + std::to_string(payload.size()) +
                                                " bytes does not fit the frame limit of " +
                                                std::to_string(options_.max_message_size) + " bytes"});
  if (!codecs_[codec.packet_type].decode) register_codec(codec);
  std::size_t n = 0;
  for (auto& [i, p] : peers_)
    if (p->live() && p->announced && p->group.empty() && !p->is_main && append(*p, codec.packet_type, payload)) ++n;
  return n;
}

Result<void> NetPump::send_raw_frame(Sender peer, std::span<const std::byte> body) {
  Peer* p = find(peer);
  if (!p || !p->conn) return Error{Errc::peer_gone, "no connection"};
  if (auto r = push_batch(*p); !r) return r;
  return p->conn->send(body);
}

void NetPump::flush(Manager&) {
  const auto now = Clock::now();
  for (auto& [i, p] : peers_) {
    if (!p->live()) continue;
    if (p->batch.empty() && now - p->last_sent >= options_.heartbeat_interval)
      append_control(*p, ctl(NetControl::heartbeat));
    (void)push_batch(*p);  // append() checked the limits; a dead connection shows in poll()
  }
}

bool NetPump::wait_until(std::chrono::steady_clock::time_point deadline) { return waker_->wait_until(deadline); }

// ---- receiving ----

void NetPump::refuse(Peer& p, Error why) {
  // Tell the other end why, then close once that left (poll() drops the peer as bad input).
  append_control(p, ctl(proto::Control::error), proto::encode_error({proto::ErrorKind::handshake_refused, why.message()}));
  (void)push_batch(p);
  p.linger_until = Clock::now() + 1s;
  p.linger_reason = std::move(why);
  p.linger_bad = true;
}

void NetPump::announce(Manager& manager, Peer& p) {
  p.announced = true;
  p.reconnecting = false;
  p.attempts = 0;
  p.delay = options_.reconnect.initial_delay;
  ++stats_.peers_connected;
  manager.queue_message_from(PeerConnected{p.sender(), p.address, p.name, p.outgoing}, p.sender());
}

std::optional<std::pair<Error, bool>> NetPump::handle_frame(Manager& manager, Peer& p, std::span<const std::byte> body) {
  ++stats_.frames_received;
  std::optional<Error> bad;
  std::optional<Error> closed;  // the other end said close / error
  std::string tag;              // route (from a node) / from (from the main group); "" = the main group
  auto r = wire::for_each_record(body, [&](const wire::Record& rec) {
    if (bad || closed || p.linger_until) return;
    if (!p.hello_received && rec.packet_type != ctl(proto::Control::hello)) {
      bad = Error{Errc::malformed, "the first record on a connection must be a hello, got packet_type " +
                                       std::to_string(rec.packet_type)};
      return;
    }
    if (rec.packet_type < min_user_packet_type) {
      switch (rec.packet_type) {
        case ctl(proto::Control::hello): {
          if (p.hello_received) {
            bad = Error{Errc::malformed, "a second hello"};
            return;
          }
          auto h = proto::decode_hello(rec.payload);
          if (!h) {
            bad = h.error();
            return;
          }
          p.hello_received = true;
          p.name = h->name;
          if (auto ok = proto::check_compatible(my_hello(), *h, "this node", "peer " + p.address); !ok)
            return refuse(p, ok.error());
          return;
        }
        case ctl(NetControl::heartbeat):
          return;
        case ctl(NetControl::close):
          closed = Error{Errc::peer_gone, "closed by the peer" +
                                              (rec.payload.empty() ? std::string() : ": " + bytes_text(rec.payload))};
          return;
        case ctl(proto::Control::error): {
          auto e = proto::decode_error(rec.payload);
          closed = Error{Errc::fingerprint_mismatch, "refused by the peer: " + (e ? e->text : std::string("?"))};
          std::fprintf(stderr, "sage: network: %s refused this node: %s\n", p.address.c_str(),
                       e ? e->text.c_str() : "(unreadable reason)");
          return;
        }
        case ctl(NetControl::join_group): {
          auto name = proto::decode_name(rec.payload);
          if (!name) {
            bad = name.error();
            return;
          }
          if (!listener_ || p.outgoing || !p.group.empty())
            return refuse(p, Error{Errc::malformed, "join_group sent to a node that does not host groups"});
          const bool local = manager.groups_enabled() && manager.group_pump().has_group(*name);
          if (name->empty() || *name == main_group || local || routes_group(*name))
            return refuse(p, Error{Errc::malformed, "group name '" + *name + "' is empty, reserved or taken"});
          p.group = *name;
          if (manager.groups_enabled()) {
            p.group_index = manager.group_pump().sender_of(*name).index;
          } else {
            p.group_index = static_cast<std::uint32_t>(group_names_.size());
            group_names_.push_back(*name);
          }
          append_control(p, ctl(NetControl::join_ack));
          return;
        }
        case ctl(NetControl::join_ack):
          if (!p.is_main) bad = Error{Errc::malformed, "join_ack from a peer that is not the main group"};
          p.join_acked = true;
          join_acked_ = true;
          return;
        case ctl(proto::Control::bye):
          // The node handles what arrived before it, answers bye_ack (answer_bye()) and waits for
          // the main group to close the connection.
          if (!p.is_main) {
            bad = Error{Errc::malformed, "bye from a peer that is not the main group"};
            return;
          }
          bye_received_ = true;
          return;
        case ctl(proto::Control::bye_ack):
          if (p.group.empty()) {
            bad = Error{Errc::malformed, "bye_ack from a peer that is not a remote group"};
            return;
          }
          p.bye_acked = true;
          return;
        case ctl(proto::Control::route):
        case ctl(proto::Control::from): {
          const bool route = rec.packet_type == ctl(proto::Control::route);
          if (route ? p.group.empty() : !p.is_main) {
            bad = Error{Errc::malformed, route ? "route from a peer that is not a remote group"
                                               : "from sent by a peer that is not the main group"};
            return;
          }
          auto name = proto::decode_name(rec.payload);
          if (!name) {
            bad = name.error();
            return;
          }
          tag = *name == main_group ? std::string() : *name;
          return;
        }
        default:
          bad = Error{Errc::unknown_packet_type, "control packet_type " + std::to_string(rec.packet_type)};
          return;
      }
    }
    if (!tag.empty() && !p.group.empty()) return relay(manager, p, tag, rec);  // node -> another group
    const WireCodec& codec = codecs_[rec.packet_type];
    if (!codec.decode) {
      bad = Error{Errc::unknown_packet_type, "packet_type " + std::to_string(rec.packet_type) +
                                                 " (no wire message of that packet_type is registered here; see "
                                                 "Manager::register_messages)"};
      return;
    }
    const Sender from = !p.group.empty() ? Sender::group(p.group_index)
                        : p.is_main      ? node_sender_of(tag.empty() ? main_group : std::string_view(tag))
                                         : p.sender();
    auto d = codec.decode(manager, rec.payload, from);
    if (!d) {
      bad = Error{d.error().code, std::string(codec.name) + ": " + d.error().detail};
      return;
    }
    ++stats_.records_received;
  });
  if (!r && !bad) bad = r.error();
  if (bad) return std::pair(*bad, true);
  if (closed) return std::pair(*closed, false);
  if (p.hello_received && !p.announced && !p.linger_until && p.group.empty()) announce(manager, p);
  if (!p.group.empty() && !p.announced) {
    p.announced = true;
    ++stats_.peers_connected;
  }
  return std::nullopt;
}

void NetPump::receive_from(Manager& manager, Peer& p) {
  if (!p.conn || p.linger_until) return;
  const auto failure = p.conn->failure();
  std::optional<std::pair<Error, bool>> stop;
  // Frames are handled inside receive(); dropping (which destroys the connection) waits until after.
  p.conn->receive(SIZE_MAX, [&](std::span<const std::byte> body) {
    if (!stop) stop = handle_frame(manager, p, body);
  });
  if (stop) return drop(manager, p, stop->first, stop->second);
  if (failure) {
    // Clean end of stream or reset: not bad input. A broken frame is.
    const bool bad = failure->code != Errc::peer_gone;
    return drop(manager, p, *failure, bad);
  }
  if (p.conn->idle_for() > options_.heartbeat_timeout) {
    ++stats_.heartbeat_timeouts;
    drop(manager, p,
         Error{Errc::peer_gone, "nothing arrived from " + p.address + " for " + std::to_string(ms(p.conn->idle_for())) +
                                    " ms (NetworkOptions::heartbeat_timeout is " +
                                    std::to_string(options_.heartbeat_timeout.count()) + " ms)"},
         false);
  }
}

void NetPump::drop(Manager& manager, Peer& p, Error why, bool bad) {
  if (bad) {
    ++stats_.bad_input;
    stats_.last_bad_input = why.message();
    std::fprintf(stderr, "sage: network: dropped %s: %s\n", p.address.c_str(), why.message().c_str());
  }
  if (p.conn) p.conn->close();
  p.conn.reset();
  p.linger_until.reset();
  p.batch.clear();
  if (p.is_main) {
    main_lost_ = why.message();
  }
  if (!p.group.empty()) {
    failures_.emplace_back(p.group, "remote group node " + p.address + ": " + why.message());
    ++stats_.peers_disconnected;
    peers_.erase(p.index);
    return;
  }
  const bool retry = p.outgoing && options_.reconnect.enabled && !p.user_closed && !p.is_main &&
                     why.code != Errc::fingerprint_mismatch && p.dialer &&
                     (options_.reconnect.max_attempts == 0 || p.attempts < options_.reconnect.max_attempts);
  if (p.announced) {
    ++stats_.peers_disconnected;
    manager.queue_message_from(PeerDisconnected{p.sender(), p.address, p.name, why, retry}, p.sender());
  }
  p.announced = false;
  if (retry) {
    p.reconnecting = true;
    p.next_attempt = Clock::now() + p.delay;
    return;
  }
  peers_.erase(p.index);
}

void NetPump::service_reconnect(Peer& p) {
  if (auto r = p.dialer->take()) {
    if (*r) {
      ++stats_.connections_dialed;
      p.conn = std::move(**r);
      start_connection(p);
      return;  // PeerConnected follows the hello
    }
    ++p.attempts;
    p.delay = std::min(options_.reconnect.max_delay, p.delay * 2);
    p.next_attempt = Clock::now() + p.delay;
    return;
  }
  if (!p.dialer->busy() && Clock::now() >= p.next_attempt) p.dialer->start(options_.connect_timeout);
}

void NetPump::poll(Manager& manager) {
  if (listener_) {
    for (auto& c : listener_->take_accepted()) {
      ++stats_.connections_accepted;
      add_peer(std::move(c), false);
    }
  }
  std::vector<std::uint32_t> ids;
  ids.reserve(peers_.size());
  for (auto& [i, p] : peers_) ids.push_back(i);
  const auto now = Clock::now();
  for (std::uint32_t id : ids) {
    auto it = peers_.find(id);
    if (it == peers_.end()) continue;
    Peer& p = *it->second;
    if (p.linger_until) {
      if (!p.conn || p.conn->pending_bytes() == 0 || p.conn->failure() || now >= *p.linger_until) {
        drop(manager, p, p.linger_reason, p.linger_bad);
      }
      continue;
    }
    if (p.reconnecting && !p.conn) {
      service_reconnect(p);
      if (p.conn) continue;
      if (options_.reconnect.max_attempts != 0 && p.attempts >= options_.reconnect.max_attempts) {
        p.reconnecting = false;
        ++stats_.peers_disconnected;
        manager.queue_message_from(
            PeerDisconnected{p.sender(), p.address, p.name,
                             Error{Errc::peer_gone, "gave up after " + std::to_string(p.attempts) + " reconnect attempts"},
                             false},
            p.sender());
        peers_.erase(id);
      }
      continue;
    }
    receive_from(manager, p);
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
    out.push_back({p->sender(), p->address, p->name, p->outgoing, p->live() && p->announced,
                   p->conn ? p->conn->pending_bytes() + p->batch.size() : 0});
  return out;
}

// ---- remote groups ----

void NetPump::join_group(Manager& manager, std::string_view host, std::uint16_t port, std::string_view name) {
  if (!joined_.empty()) throw usage_error("sage: this manager already hosts group '" + joined_ + "'");
  if (name.empty() || name.size() > proto::max_group_name || name == main_group)
    throw usage_error("sage: a group name must have 1.." + std::to_string(proto::max_group_name) +
                      " bytes and not be sage::main_group");
  joined_ = std::string(name);
  Sender s{};
  try {
    const std::string url = stream_url(host, port, options_.tls.enabled);
    auto d = StreamDialer::open(url, tls_settings(true, host), stream_options(), waker_);
    if (!d) throw network_error(d.error());
    (*d)->start(options_.connect_timeout);
    const auto deadline = Clock::now() + options_.connect_timeout + 1s;
    std::optional<Result<std::unique_ptr<StreamConn>>> r;
    while (!(r = (*d)->take()) && Clock::now() < deadline) waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
    if (!r) throw network_error(Error{Errc::peer_gone, "cannot connect to " + url + ": timed out"});
    if (!*r) throw network_error(r->error());
    ++stats_.connections_dialed;
    auto p = std::make_unique<Peer>();
    p->index = next_index_++;
    p->outgoing = true;
    p->is_main = true;
    p->conn = std::move(**r);
    Peer& ref = *p;
    peers_.emplace(ref.index, std::move(p));
    s = ref.sender();
    start_connection(ref);
    // A bye may follow the ack at once (the main group ended): joining still succeeded.
    while (Clock::now() < deadline && !join_acked_) {
      Peer* q = find(s);
      if (!q) break;
      receive_from(manager, *q);
      if (join_acked_) break;
      waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
    }
    if (join_acked_) return;
  } catch (...) {
    joined_.clear();
    throw;
  }
  const std::string why = main_lost_ ? *main_lost_ : "the main group did not answer in time";
  if (Peer* q = find(s)) drop(manager, *q, Error{Errc::peer_gone, why}, false);
  joined_.clear();
  main_lost_.reset();
  throw network_error(Error{Errc::peer_gone, "cannot join as group '" + std::string(name) + "': " + why});
}

bool NetPump::routes_group(std::string_view name) const {
  // A node sends to every group but itself through the main group (which relays).
  if (!joined_.empty()) return !name.empty() && name != joined_;
  for (auto& [i, p] : peers_)
    if (p->group == name) return true;
  return false;
}

Result<void> NetPump::queue_group_record(std::string_view group, const WireCodec& codec,
                                         std::span<const std::byte> payload) {
  for (auto& [i, p] : peers_) {
    if ((!joined_.empty() && p->is_main) || (joined_.empty() && p->group == group)) {
      if (!codecs_[codec.packet_type].decode) register_codec(codec);
      // Node side the tag is the destination; main side our own records carry origin "" (main).
      const std::string_view tag = !joined_.empty() && group != main_group ? group : std::string_view();
      return append(*p, codec.packet_type, payload, tag);
    }
  }
  return Error{Errc::peer_gone, "group '" + std::string(group) + "' is not connected"};
}

std::string_view NetPump::group_name_of(Sender sender) const {
  if (sender.kind != Sender::Kind::group) return {};
  if (!joined_.empty()) return sender.index < node_names_.size() ? std::string_view(node_names_[sender.index]) : std::string_view();
  for (auto& [i, p] : peers_)
    if (!p->group.empty() && p->group_index == sender.index) return p->group;
  return {};
}

std::vector<std::string> NetPump::remote_groups() const {
  std::vector<std::string> out;
  for (auto& [i, p] : peers_)
    if (!p->group.empty()) out.push_back(p->group);
  return out;
}

Sender NetPump::node_sender_of(std::string_view name) {
  for (std::size_t i = 0; i < node_names_.size(); ++i)
    if (node_names_[i] == name) return Sender::group(static_cast<std::uint32_t>(i));
  // A node learns the other groups' names as their relayed records arrive.
  node_names_.emplace_back(name);
  return Sender::group(static_cast<std::uint32_t>(node_names_.size() - 1));
}

Result<void> NetPump::relay_record(std::string_view to, std::uint8_t packet_type, std::span<const std::byte> payload,
                                   std::string_view origin) {
  for (auto& [i, p] : peers_)
    if (p->group == to && !p->group.empty()) return append(*p, packet_type, payload, origin);
  return Error{Errc::peer_gone, "no group '" + std::string(to) + "'"};
}

void NetPump::relay(Manager& manager, Peer& from, const std::string& to, const wire::Record& rec) {
  Result<void> r = Error{Errc::peer_gone, "no group '" + to + "'"};
  if (routes_group(to))
    r = relay_record(to, rec.packet_type, rec.payload, from.group);
  else if (manager.groups_enabled() && manager.group_pump().has_group(to))
    r = manager.group_pump().relay_record(to, rec.packet_type, rec.payload, from.group);
  if (r) {
    ++stats_.records_relayed;
    return;
  }
  ++stats_.undeliverable;
  if (!from.relay_logged)
    std::fprintf(stderr, "sage: cannot relay a record from remote group '%s' to '%s': %s (further ones are counted)\n",
                 from.group.c_str(), to.c_str(), r.error().message().c_str());
  from.relay_logged = true;
}

void NetPump::remove_group(Manager& manager, std::string_view name) {
  Peer* p = nullptr;
  for (auto& [i, q] : peers_)
    if (!q->group.empty() && q->group == name) p = q.get();
  if (!p || !joined_.empty()) throw no_such_group(name);
  const std::uint32_t id = p->index;
  const std::string group(name);
  auto alive = [&]() -> Peer* {
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second.get();
  };
  append_control(*p, ctl(proto::Control::bye));
  (void)push_batch(*p);
  // bye_ack is the node's last record: once it is read, everything the node sent before was read
  // (and queued here for the next tick).
  const auto deadline = Clock::now() + options_.heartbeat_timeout;
  while (Peer* q = alive()) {
    if (q->bye_acked || Clock::now() >= deadline) break;
    receive_from(manager, *q);
    if ((q = alive()) && q->bye_acked) break;
    waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
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
  if (q->conn) q->conn->close();  // the node waits for this close, then its run_remote_group returns 0
  ++stats_.peers_disconnected;
  peers_.erase(id);
  if (!clean)
    throw group_error(group, "remote group node did not answer bye within " +
                                 std::to_string(options_.heartbeat_timeout.count()) +
                                 " ms (NetworkOptions::heartbeat_timeout)");
}

void NetPump::answer_bye() {
  for (auto& [i, p] : peers_) {
    if (!p->is_main || !p->live()) continue;
    append_control(*p, ctl(proto::Control::bye_ack));
    (void)push_batch(*p);
    // Leaving at once could lose what is still queued; the main group closes after reading bye_ack.
    const auto deadline = Clock::now() + options_.heartbeat_timeout;
    while (p->conn && !p->conn->failure() && Clock::now() < deadline)
      waker_->wait_until(std::min(deadline, Clock::now() + 50ms));
  }
}

}  // namespace sage::detail

// The Channel (runtime/channel/channel.hpp): batching, hello, route/from, decode and relay.
#include "channel/channel.hpp"

#include <algorithm>
#include <atomic>

#include "log/log.hpp"
#include "runtime_assert.hpp"
#include "sage/groups.hpp"

namespace sage::detail {

namespace proto = protocol;

namespace {
// Largest route/from record a batch may need in front of a user record.
constexpr std::size_t max_tag_record = wire::record_size(2 + proto::max_group_name);
// Names each accepted negotiated handshake in this process (Channel::handshake_id_).
std::atomic<std::uint64_t> handshakes{0};
// A decode or verify failure of message `name` for bad input: generated types name themselves in
// the detail ("the 16 bytes are not a valid x.T ..."); others (hand-written) get the name in front.
std::string naming(std::string_view name, const std::string& detail) {
  if (detail.find(name) != std::string::npos) return detail;
  return std::string(name) + ": " + detail;
}
}  // namespace

Channel::Channel(Config config, Directory& directory, ChannelEvents& events, ChannelCounters& counters)
    : config_(std::move(config)), dir_(directory), events_(events), counters_(counters) {}

void Channel::attach(std::unique_ptr<Connection> connection, std::string hello_name) {
  SAGE_ASSERT(connection != nullptr);
  conn_ = std::move(connection);
  batch_.clear();
  batch_tag_.clear();
  lanes_.clear();
  hello_name_ = std::move(hello_name);
  hello_pending_ = true;
  hello_received_ = false;
  last_sent_ = Clock::now();
  peer_types_ = {};
  told_ = {};
  peer_hello_ = {};
  early_.clear();
  peer_desc_ = {};
  announced_bytes_ = 0;
  handshake_id_ = 0;
  relay_verdicts_.clear();
}

void Channel::detach() noexcept {
  if (conn_) conn_->close();
  conn_.reset();
  batch_.clear();
  batch_tag_.clear();
  lanes_.clear();
  hello_pending_ = false;
  early_.clear();
}

std::size_t Channel::pending_bytes() const noexcept {
  std::size_t n = batch_.size() + early_.size() + (conn_ ? conn_->pending_bytes() : 0);
  for (const Lane& l : lanes_) n += l.batch.size() + l.early.size();
  return n;
}

bool Channel::has_batch() const noexcept {
  if (!batch_.empty() || hello_pending_) return true;
  for (const Lane& l : lanes_)
    if (!l.batch.empty()) return true;
  return false;
}

// ---- sending ----

void Channel::append_control(proto::Control control, std::span<const std::byte> payload) {
  if (!conn_) return;
  if (batch_.size() + wire::record_size(payload.size()) > conn_->limits().max_message_size) (void)flush();
  proto::append_control(batch_, control, payload);
}

Result<void> Channel::append(std::uint8_t packet_type, std::span<const std::byte> payload, std::string_view tag) {
  SAGE_ASSERT(packet_type >= min_user_packet_type);
  SAGE_ASSERT(config_.position != Position::peer || tag.empty());
  if (!conn_) return Error{Errc::peer_gone, config_.label + " is not connected"};
  if (config_.negotiate && hello_received_ && !peer_knows(packet_type)) return unknown_to_peer(packet_type);
  const std::size_t limit = conn_->limits().max_message_size;
  const std::size_t rec = wire::record_size(payload.size());
  // Group channels keep room for a route/from record in front of every record, so that any record
  // accepted here can also be relayed by the main group.
  const std::size_t tag_room = config_.position == Position::peer ? 0 : max_tag_record;
  if (rec + tag_room > limit)
    return too_large(payload.size(), limit);
  if (config_.negotiate && !hello_received_) {
    // Held until the other end's hello says which types it knows (release_early()). Only a plain
    // peer can send this early (a remote group's channels carry user records after join).
    if (!tag.empty()) return Error{Errc::peer_gone, config_.label + " has not finished its handshake"};
    if (auto r = hold_early(early_, packet_type, payload); !r) return r;
    return {};
  }
  announce_new_types();
  if (!batch_.empty() && batch_.size() + rec + tag_room > std::min(limit, conn_->limits().batch_size)) {
    if (auto r = flush(); !r) return r;
  }
  const std::string_view tag_name = tag.empty() ? main_group : tag;
  const std::size_t tag_bytes = tag != batch_tag_ ? wire::record_size(2 + tag_name.size()) : 0;
  const std::size_t waiting = pending_bytes();
  if (waiting + rec + tag_bytes > config_.send_buffer_limit)
    return buffer_full(waiting);
  if (tag != batch_tag_) {
    proto::append_control(batch_, config_.position == Position::spoke ? proto::Control::route : proto::Control::from,
                          proto::encode_name(tag_name));
    batch_tag_ = std::string(tag);
  }
  wire::append_record(batch_, packet_type, payload);
  return {};
}

Error Channel::too_large(std::size_t payload_size, std::size_t limit) const {
  return Error{Errc::too_large, "a message of " + std::to_string(payload_size) +
                                    " bytes does not fit the transport message limit of " + std::to_string(limit) +
                                    " bytes (" + std::string(config_.options_name) + "::max_message_size)"};
}

Error Channel::buffer_full(std::size_t waiting) const {
  return Error{Errc::send_buffer_full, config_.label + " has not taken " + std::to_string(waiting) +
                                           " bytes yet; the limit is " + std::to_string(config_.send_buffer_limit) +
                                           " (" + std::string(config_.options_name) + "::send_buffer_limit)"};
}

Error Channel::unknown_to_peer(std::uint8_t packet_type) const {
  const WireCodec* c = dir_.codec(packet_type);
  return Error{Errc::incompatible, config_.label + " does not know message " +
                                       (c ? std::string(c->name) + " " : std::string()) + "(packet_type " +
                                       std::to_string(packet_type) +
                                       "): its schemas do not have it (upgrade it, or do not send it there)"};
}

Result<void> Channel::hold_early(std::vector<std::byte>& early, std::uint8_t packet_type,
                                 std::span<const std::byte> payload) {
  const std::size_t rec = wire::record_size(payload.size());
  if (pending_bytes() + rec > config_.send_buffer_limit)
    return Error{Errc::send_buffer_full, config_.label + " has not finished its handshake and " +
                                             std::to_string(pending_bytes()) + " bytes wait for it; the limit is " +
                                             std::to_string(config_.send_buffer_limit) + " (" +
                                             std::string(config_.options_name) + "::send_buffer_limit)"};
  wire::append_record(early, packet_type, payload);
  return {};
}

Result<void> Channel::send(std::uint8_t packet_type, std::span<const std::byte> payload, Delivery delivery) {
  if (delivery == Delivery{}) return send(packet_type, payload);
  auto r = append_lane(packet_type, payload, delivery);
  if (r) ++counters_.records_sent;
  return r;
}

Result<void> Channel::append_lane(std::uint8_t packet_type, std::span<const std::byte> payload, Delivery delivery) {
  SAGE_ASSERT(packet_type >= min_user_packet_type);
  SAGE_ASSERT(config_.position == Position::peer);
  if (!conn_) return Error{Errc::peer_gone, config_.label + " is not connected"};
  if (config_.negotiate && hello_received_ && !peer_knows(packet_type)) return unknown_to_peer(packet_type);
  const ConnectionLimits& lim = conn_->limits();
  const std::size_t rec = wire::record_size(payload.size());
  if (rec > lim.max_message_size) return too_large(payload.size(), lim.max_message_size);
  auto it = std::find_if(lanes_.begin(), lanes_.end(), [&](const Lane& l) { return l.delivery == delivery; });
  if (it == lanes_.end()) it = lanes_.insert(lanes_.end(), Lane{delivery, {}, {}});
  // Held with the default lane's early records until the other end's hello (release_early()).
  if (config_.negotiate && !hello_received_) return hold_early(it->early, packet_type, payload);
  announce_new_types();
  const std::size_t batch_limit = std::min({lim.max_message_size, lim.batch_size,
                                            delivery.mode == Delivery::Mode::reliable ? SIZE_MAX : lim.unreliable_batch_size});
  if (!it->batch.empty() && it->batch.size() + rec > batch_limit) {
    if (auto r = flush_lane(*it); !r) return r;
  }
  if (const std::size_t waiting = pending_bytes(); waiting + rec > config_.send_buffer_limit) return buffer_full(waiting);
  wire::append_record(it->batch, packet_type, payload);
  return {};
}

Result<void> Channel::flush_lane(Lane& lane) {
  if (lane.batch.empty()) return {};
  // The hello goes first, on the default lane.
  if (hello_pending_) {
    if (auto r = flush_default(); !r) return r;
  }
  if (auto r = conn_->send_batch(lane.batch, lane.delivery); !r) return r;
  ++counters_.messages_sent;
  last_sent_ = Clock::now();
  return {};
}

Result<void> Channel::flush() {
  if (conn_ && hello_received_) announce_new_types();  // types registered since (negotiate only)
  if (auto r = flush_default(); !r) return r;
  for (Lane& l : lanes_)
    if (auto r = flush_lane(l); !r) return r;
  return {};
}

Result<void> Channel::flush_default() {
  if (!hello_pending_ && batch_.empty()) {
    release_excess(batch_, 0);  // idle: let go of a past burst's buffer
    return {};
  }
  if (!conn_) return Error{Errc::peer_gone, config_.label + " is not connected"};
  if (hello_pending_) {
    // Our hello is the first record the other end reads. Its table is taken now, so types
    // registered before the first flush are in it.
    std::vector<std::byte> hello;
    const proto::Hello mine = dir_.hello(hello_name_, config_.negotiate);
    for (const auto& e : mine.entries) told_[e.packet_type] = true;
    told_generation_ = dir_.generation();
    proto::append_control(hello, proto::Control::hello, proto::encode_hello(mine));
    if (batch_.size() + hello.size() <= conn_->limits().max_message_size) {
      batch_.insert(batch_.begin(), hello.begin(), hello.end());
    } else if (auto r = conn_->send(hello); !r) {
      return r;
    } else {
      ++counters_.messages_sent;
    }
    hello_pending_ = false;
  }
  if (batch_.empty()) return {};
  const std::size_t used = batch_.size();
  if (auto r = conn_->send_batch(batch_); !r) return r;  // may take the buffer itself (no copy)
  ++counters_.messages_sent;
  release_excess(batch_, used);
  batch_tag_.clear();
  last_sent_ = Clock::now();
  return {};
}

// ---- receiving ----

void Channel::note_bad_input(const Error& e) {
  ++counters_.bad_input;
  counters_.last_bad_input = e.message();
  if (logged_.insert(e.code).second)
    log::write(log::Level::warning, "channel", config_.self_label, ": dropped bad input from ", log::peer(config_.label),
               ": ", log::peer(e.message()), " (further ", to_string(e.code), " input is counted, not logged)");
}

Verdict Channel::bad(Error e) {
  if (config_.drop_on_bad_input) return Stop{std::move(e), true};
  note_bad_input(e);
  return std::nullopt;
}

Verdict Channel::receive(Manager& manager, std::size_t budget) {
  more_waiting_ = false;
  if (!conn_) return std::nullopt;
  Verdict stop;
  if (budget == SIZE_MAX) {
    conn_->receive(SIZE_MAX, [&](std::span<const std::byte> body) {
      if (!stop) stop = handle(manager, body);
    });
    return stop;
  }
  std::size_t taken = 0;
  while (!stop && conn_ && taken < budget) {
    const std::size_t n = conn_->receive(1, [&](std::span<const std::byte> body) {
      taken += body.size();
      stop = handle(manager, body);
    });
    if (n == 0) return stop;
  }
  more_waiting_ = !stop && taken >= budget;
  return stop;
}

Verdict Channel::handle(Manager& manager, std::span<const std::byte> body) {
  ++counters_.messages_received;
  // The tag is the origin (spoke: "" = the main group) or the destination (hub: "" = here) of the
  // user records that follow it in this transport message.
  std::string tag;
  Verdict stop;
  auto r = wire::for_each_record(body, [&](const wire::Record& rec) {
    if (!stop) stop = on_record(manager, rec, tag);
  });
  if (!stop && !r) stop = bad(r.error());
  return stop;
}

Verdict Channel::on_record(Manager& manager, const wire::Record& rec, std::string& tag) {
  if (!hello_received_ && rec.packet_type != proto::code(proto::Control::hello))
    return bad(Error{Errc::malformed, "the first record on a connection must be a hello, got packet_type " +
                                          std::to_string(rec.packet_type)});
  if (rec.packet_type < min_user_packet_type) {
    const auto control = static_cast<proto::Control>(rec.packet_type);
    switch (control) {
      case proto::Control::hello: {
        if (hello_received_) return bad(Error{Errc::malformed, "a second hello"});
        auto h = proto::decode_hello(rec.payload);
        if (!h) return bad(h.error());
        hello_received_ = true;
        const auto check = config_.check(dir_.hello(hello_name_, config_.negotiate), *h, config_.self_label, config_.label);
        if (config_.negotiate) {
          peer_hello_ = *h;
          peer_hello_.description.clear();  // checked; kept parsed (peer_desc_) for relays
          if (check) {
            accept_peer_types(h->entries);
            if (!h->description.empty()) peer_desc_ = schema::parse(h->description).description;
            handshake_id_ = handshakes.fetch_add(1, std::memory_order_relaxed) + 1;
          }
        }
        Verdict v = events_.on_hello(*this, *h, check);
        if (config_.negotiate && check && !v) release_early();
        return v;
      }
      case proto::Control::announce:
        if (!config_.negotiate) return bad(Error{Errc::malformed, "announce on a channel that does not negotiate"});
        return on_announce(rec.payload);
      case proto::Control::route:
      case proto::Control::from: {
        const bool route = control == proto::Control::route;
        if (route ? config_.position != Position::hub : config_.position != Position::spoke)
          return bad(Error{Errc::malformed, route ? "route from a peer that is not a remote group (" + config_.label + ")"
                                                  : "from sent by a peer that is not the main group (" + config_.label + ")"});
        auto name = proto::decode_name(rec.payload);
        if (!name) return bad(name.error());
        tag = *name == main_group ? std::string() : std::move(*name);
        return std::nullopt;
      }
      default: {
        Verdict v = events_.on_control(*this, control, rec.payload);
        if (v && v->bad && !config_.drop_on_bad_input) {
          note_bad_input(v->error);
          return std::nullopt;
        }
        return v;
      }
    }
  }
  if (config_.position == Position::hub && !tag.empty()) {
    // Verified here when this group knows the type, so a bad record is the sender's bad input (it
    // is dropped) instead of the receiver's (which would drop its link to the main group).
    if (const WireCodec* codec = dir_.codec(rec.packet_type); codec && codec->verify) {
      if (reinterpret_cast<std::uintptr_t>(rec.payload.data()) % wire::record_alignment != 0)
        return bad(Error{Errc::misaligned, "payload not 8-aligned"});
      if (auto v = codec->verify(rec.payload); !v)
        return bad(Error{v.error().code, naming(codec->name, v.error().detail) + " (relayed to '" + tag + "')"});
    }
    relay(tag, rec);
    return std::nullopt;
  }
  const WireCodec* codec = dir_.codec(rec.packet_type);
  if (!codec)
    return bad(Error{Errc::unknown_packet_type, "packet_type " + std::to_string(rec.packet_type) +
                                                    " (no wire message of that packet_type is registered here; see "
                                                    "Manager::register_messages)"});
  if (reinterpret_cast<std::uintptr_t>(rec.payload.data()) % wire::record_alignment != 0)
    return bad(Error{Errc::misaligned, "payload not 8-aligned"});
  const Sender from =
      config_.position == Position::spoke ? dir_.sender_of(tag.empty() ? main_group : std::string_view(tag)) : config_.sender;
  auto d = codec->decode(manager, rec.payload, from);
  if (!d) return bad(Error{d.error().code, naming(codec->name, d.error().detail)});
  ++counters_.records_received;
  return std::nullopt;
}

// ---- negotiation (network peers and remote groups) ----

void Channel::accept_peer_types(const std::vector<proto::SchemaEntry>& entries) {
  for (const auto& e : entries) peer_types_[e.packet_type] = true;
}

void Channel::announce_new_types() {
  if (!config_.negotiate || hello_pending_ || told_generation_ == dir_.generation()) return;
  told_generation_ = dir_.generation();
  if (auto a = dir_.announce(told_)) append_control(proto::Control::announce, proto::encode_announce(*a));
}

Verdict Channel::on_announce(std::span<const std::byte> payload) {
  auto a = proto::decode_announce(payload);
  if (!a) return bad(a.error());
  // A peer announces each type it registers later once: all its announces together stay within
  // one description's limit, so a peer cannot grow what this channel keeps and checks without end.
  announced_bytes_ += a->description.size();
  if (announced_bytes_ > schema::max_description_bytes)
    return bad(Error{Errc::too_large, "announces of more than " + std::to_string(schema::max_description_bytes) +
                                          " bytes of schema description in all (a type is announced once)"});
  auto check = proto::check_announced(dir_.hello(hello_name_, true).description, *a, config_.self_label, config_.label);
  if (!check) return events_.on_hello(*this, peer_hello_, check);
  accept_peer_types(a->entries);
  if (auto d = schema::parse(a->description); d) (void)schema::merge(peer_desc_, d.description);
  return std::nullopt;
}

// The records appended before the other end's hello: those of types it knows go out now, in
// order; the others were accepted too early to refuse, so they are logged and counted here,
// never sent to be dropped by the receiver.
void Channel::release_early() {
  std::uint64_t dropped = 0;
  std::string names;
  auto release = [&](std::vector<std::byte>& held, const Delivery* delivery) {
    std::vector<std::byte> early;
    early.swap(held);
    (void)wire::for_each_record(early, [&](const wire::Record& rec) {
      if (peer_knows(rec.packet_type)) {
        auto r = delivery ? append_lane(rec.packet_type, rec.payload, *delivery) : append(rec.packet_type, rec.payload);
        if (r) return;
      }
      ++dropped;
      const WireCodec* c = dir_.codec(rec.packet_type);
      const std::string n = c ? std::string(c->name) : "packet_type " + std::to_string(rec.packet_type);
      if (names.find(n) == std::string::npos) names += (names.empty() ? "" : ", ") + n;
    });
  };
  release(early_, nullptr);
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    const Delivery d = lanes_[i].delivery;  // append_lane() may add lanes: index, not reference
    release(lanes_[i].early, &d);
  }
  if (dropped == 0) return;
  unknown_dropped_ += dropped;
  log::write(log::Level::warning, "channel", config_.self_label, ": ", dropped,
             " message(s) sent before the handshake with ", log::peer(config_.label),
             " completed were not sent: it does not know ", names, " (",
             config_.options_name == "DatagramOptions" ? "DatagramStats::unknown_type_skipped"
                                                       : "NetworkStats::unknown_type_skipped",
             ")");
}

void Channel::relay(const std::string& to, const wire::Record& rec) {
  const Route r = dir_.route(to);
  Result<void> res = Error{Errc::peer_gone, "no group '" + to + "'"};
  if ((r.kind == Route::Kind::child || r.kind == Route::Kind::node) && r.channel) {
    if (auto c = relay_check(*r.channel, rec.packet_type); !c) {
      ++counters_.relays_refused;
      return;
    }
    res = r.channel->append(rec.packet_type, rec.payload, config_.peer_name);
  }
  if (res) {
    ++counters_.records_relayed;
    return;
  }
  ++counters_.undeliverable;
  if (!relay_logged_)
    log::write(log::Level::warning, "channel", "cannot relay a record from ", log::peer(config_.label), " to '",
               log::peer(to), "': ", log::peer(res.error().message()), " (further ones are counted)");
  relay_logged_ = true;
}

// Two negotiating ends were each checked against this (main) group, not against each other: a
// record passes from one to the other only if both describe its type alike. A child has the main
// group's own schemas (the exact check), so a relay from or to a child needs no check. A refusal is
// logged once per pair of handshakes and type, with the diagnostics.
Result<void> Channel::relay_check(const Channel& to, std::uint8_t packet_type) {
  if (!config_.negotiate || !to.config_.negotiate || handshake_id_ == 0 || to.handshake_id_ == 0) return {};
  auto it = std::find_if(relay_verdicts_.begin(), relay_verdicts_.end(),
                         [&](const RelayVerdicts& v) { return v.to == to.handshake_id_; });
  if (it == relay_verdicts_.end()) {
    // Destinations that reconnected leave stale entries; past a bound, start afresh (recomputed).
    if (relay_verdicts_.size() >= 64) relay_verdicts_.clear();
    relay_verdicts_.push_back({to.handshake_id_, {}});
    it = relay_verdicts_.end() - 1;
  }
  std::uint8_t& v = it->verdict[packet_type];
  if (v == 0) {
    auto r = proto::check_relay(peer_desc_, to.peer_desc_, packet_type, config_.label, to.config_.label);
    v = r ? 1 : 2;
    if (!r)
      log::write(log::Level::warning, "schema", log::peer(r.error().detail),
                 "\n  (each such record is counted in NetworkStats::relays_refused)");
  }
  if (v == 1) return {};
  return Error{Errc::incompatible, "relay refused"};
}

}  // namespace sage::detail

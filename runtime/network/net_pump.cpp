// TCP and TLS peers and remote groups: the NetPump (runtime/network/net_pump.hpp; docs/network.md).
#include "network/net_pump.hpp"

#include <algorithm>

#include "local/manager_access.hpp"
#include "sage/manager.hpp"
#include "secure/keys.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {
PeerConfig config_of(const NetworkOptions& o) {
  if (o.max_message_size < 64) throw usage_error("sage: NetworkOptions::max_message_size must be >= 64");
  if (o.heartbeat_timeout <= o.heartbeat_interval)
    throw usage_error("sage: NetworkOptions::heartbeat_timeout must be longer than heartbeat_interval");
  check_keys(o.keys, "NetworkOptions");
  if (!o.keys.empty() && o.tls.enabled)
    throw usage_error("sage: NetworkOptions::keys is for tcp://; tls+tcp:// authenticates with certificates (TlsOptions)");
  if (!o.keys.empty() && (o.max_handshakes == 0 || o.max_handshakes_per_address == 0))
    throw usage_error("sage: NetworkOptions::max_handshakes and max_handshakes_per_address must be at least 1");
  return PeerConfig{.component = "network",
                    .options_name = "NetworkOptions",
                    .first_index = 1,
                    .name = o.name,
                    .max_message_size = o.max_message_size,
                    .send_buffer_limit = o.send_buffer_limit,
                    .on_send_buffer_full = o.on_send_buffer_full,
                    .max_peers = o.max_peers,
                    .max_peers_per_address = o.max_peers_per_address,
                    .hello_timeout = o.hello_timeout,
                    .connect_timeout = o.connect_timeout,
                    .heartbeat_interval = o.heartbeat_interval,
                    .heartbeat_timeout = o.heartbeat_timeout,
                    .frame_timeout = o.frame_timeout,
                    .connect_waits = true,
                    .drop_log_burst = o.drop_log_burst,
                    .drop_log_interval = o.drop_log_interval,
                    .reconnect = o.reconnect,
                    .admit = o.admit,
                    .identity = !o.tls.enabled || o.tls.ca_file.empty() ? std::string()
                                : !o.tls.client_identity.empty()        ? o.tls.client_identity
                                                                        : "tls:" + o.tls.ca_file};
}
}  // namespace

NetPump::NetPump(Manager& manager, const NetworkOptions& options)
    : PeerPump(manager, config_of(options), make_stream_transport(options, ManagerAccess::shared_waker(manager))),
      options_(options),
      node_(*this) {}

NetPump::~NetPump() {
  const std::vector<std::string> groups = remote_groups();
  shutdown();
  for (const std::string& g : groups) directory_.remove_group(g);
  node_.shutdown();
}

Sender NetPump::server() const {
  std::vector<Sender> out = servers();
  if (out.size() != 1) throw no_server(out.size());
  return out.front();
}

NetworkStats NetPump::stats() const {
  const PeerCounters& c = counters();
  const ChannelCounters& ch = channel_counters();
  NetworkStats s;
  s.connections_accepted = c.connections_accepted;
  s.accept_errors = transport_->counters().accept_errors;
  s.authentication_failures = transport_->counters().authentication_failures;
  s.connections_dialed = c.connections_dialed;
  s.peers_connected = c.peers_connected;
  s.peers_disconnected = c.peers_disconnected;
  s.frames_sent = ch.messages_sent;
  s.frames_received = ch.messages_received;
  s.records_sent = ch.records_sent;
  s.records_received = ch.records_received;
  s.bad_input = c.bad_input;
  s.send_buffer_full = c.send_buffer_full;
  s.heartbeat_timeouts = c.heartbeat_timeouts;
  s.hello_timeouts = c.hello_timeouts;
  s.frame_timeouts = c.frame_timeouts;
  s.peers_refused = c.peers_refused;
  s.drop_logs_suppressed = c.drop_logs_suppressed;
  s.records_relayed = ch.records_relayed;
  s.undeliverable = ch.undeliverable;
  s.relays_refused = ch.relays_refused;
  s.handshakes_refused = c.handshakes_refused;
  s.admissions_refused = c.admissions_refused;
  s.unknown_type_skipped = c.unknown_type_skipped;
  s.last_bad_input = c.last_bad_input;
  s.receive_buffered_bytes = receive_buffered_bytes();
  return s;
}

// ---- control records of remote groups ----

Verdict NetPump::on_role_control(Peer& p, proto::Control control, std::span<const std::byte> payload) {
  switch (control) {
    case proto::Control::join_group:
      return join(p, payload);
    case proto::Control::bye_ack:
      if (p.role != Role::remote_group)
        return Stop{Error{Errc::malformed, "bye_ack from a peer that is not a remote group"}, true};
      p.bye_acked = true;
      return std::nullopt;
    default:
      return node_.on_control(p, control);  // join_ack, bye; anything else is unknown
  }
}

// An incoming peer asks to be remote group `name`: its channel becomes the group's route.
Verdict NetPump::join(Peer& p, std::span<const std::byte> payload) {
  auto group = proto::decode_name(payload);
  if (!group) return Stop{group.error(), true};
  auto refuse = [&](Error why) -> Verdict {
    p.channel.append_control(proto::Control::error,
                             proto::encode_error({proto::ErrorKind::handshake_refused, why.message()}));
    (void)p.channel.flush();
    linger(p, why, true);
    return Stop{why, true};
  };
  if (!listening() || p.role != Role::incoming)
    return refuse(Error{Errc::malformed, "join_group sent to a node that does not host groups"});
  if (group->empty() || *group == main_group || directory_.route(*group).kind != Route::Kind::none)
    return refuse(Error{Errc::malformed, "group name '" + *group + "' is empty, reserved or taken"});
  if (options_.admit) {
    if (auto no = options_.admit(AdmissionRequest{AdmissionRequest::Kind::group, p.address, *group, p.identity}))
      return refuse_admission(p, *no);
  } else if (std::find(options_.remote_groups.begin(), options_.remote_groups.end(), *group) ==
             options_.remote_groups.end()) {
    return refuse_admission(p, "this listener does not host group '" + *group +
                                   "' (NetworkOptions::remote_groups, admit)");
  }
  p.role = Role::remote_group;
  const std::uint32_t gi = directory_.add_group(*group);
  directory_.set_route(gi, {Route::Kind::node, &p.channel});
  p.channel.set_position(Channel::Position::hub);
  p.channel.set_peer_name(*group);
  p.channel.set_label("remote group '" + *group + "' at " + p.address);
  p.channel.set_sender(Sender::group(gi));
  p.channel.append_control(proto::Control::join_ack);
  return std::nullopt;
}

void NetPump::on_role_lost(Peer& p, const Error& why) {
  if (p.role == Role::main_group) return node_.on_lost(why);
  failures_.emplace_back(p.channel.peer_name(), "remote group node " + p.address + ": " + why.message());
  ++stats_.peers_disconnected;
  directory_.remove_group(p.channel.peer_name());
}

void NetPump::goodbye(Peer& p) {
  if (p.role == Role::remote_group) p.channel.append_control(proto::Control::bye);
  else PeerPump::goodbye(p);
}

void NetPump::poll(Manager& manager) {
  PeerPump::poll(manager);
  // Queued behind what the lost nodes sent (read above): dispatched first, then thrown.
  for (auto& e : failures_) ManagerAccess::report_failure(manager, std::move(e));
  failures_.clear();
}

// ---- remote groups, the main group's side ----

std::vector<std::string> NetPump::remote_groups() const { return directory_.groups(Route::Kind::node); }

void NetPump::remove_group(std::string_view name) {
  const Route route = directory_.route(name);
  Peer* p = route.kind == Route::Kind::node ? peer_of(route.channel) : nullptr;
  if (!p) throw no_such_group(name);
  const std::uint32_t id = p->index;
  const std::string group(name);
  p->channel.append_control(proto::Control::bye);
  (void)p->channel.flush();
  // bye_ack is the node's last record: once it is read, everything the node sent before was read
  // (and queued here for the next tick).
  const auto deadline = Clock::now() + options_.heartbeat_timeout;
  while (Peer* q = at(id)) {
    if (q->bye_acked || Clock::now() >= deadline) break;
    receive_from(*q);
    if ((q = at(id)) && q->bye_acked) break;
    waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
  }
  Peer* q = at(id);
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
  erase(*q);
  if (!clean)
    throw group_error(group, "remote group node did not answer bye within " +
                                 std::to_string(options_.heartbeat_timeout.count()) +
                                 " ms (NetworkOptions::heartbeat_timeout)");
}

}  // namespace sage::detail

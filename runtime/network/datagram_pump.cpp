// Datagram peers over ENet: the DatagramPump (runtime/network/datagram_pump.hpp; docs/network.md).
#include "network/datagram_pump.hpp"

#include "local/manager_access.hpp"
#include "secure/keys.hpp"
#include "sage/manager.hpp"
#include "transport/datagram.hpp"

namespace sage::detail {

namespace {
PeerConfig config_of(const DatagramOptions& o) {
  if (o.max_message_size < 64) throw usage_error("sage: DatagramOptions::max_message_size must be >= 64");
  if (o.channels < 1 || o.channels > 80)
    throw usage_error("sage: DatagramOptions::channels must be 1..80 (ENet has 255 channels, 3 delivery modes)");
  if (o.max_peers < 1 || o.max_peers > 4000)
    throw usage_error("sage: DatagramOptions::max_peers must be 1..4000 (ENet's peer ids)");
  if (o.peer_timeout.count() <= 0 || o.ping_interval.count() <= 0 || o.hello_timeout.count() <= 0)
    throw usage_error("sage: DatagramOptions::peer_timeout, ping_interval and hello_timeout must be positive");
  check_keys(o.keys, "DatagramOptions");
  return PeerConfig{.component = "datagram",
                    .options_name = "DatagramOptions",
                    .first_index = datagram_peer_base + 1,
                    .name = o.name,
                    .max_message_size = o.max_message_size,
                    .send_buffer_limit = o.send_buffer_limit,
                    .on_send_buffer_full = OverflowPolicy::refuse,
                    .max_peers = o.max_peers,
                    .hello_timeout = o.hello_timeout,
                    .connect_timeout = o.connect_timeout,
                    .connect_waits = false,
                    .drop_log_burst = o.drop_log_burst,
                    .drop_log_interval = o.drop_log_interval,
                    .reconnect = o.reconnect,
                    .admit = o.admit,
                    .identity = {}};
}
}  // namespace

DatagramPump::DatagramPump(Manager& manager, const DatagramOptions& options)
    : PeerPump(manager, config_of(options), make_datagram_transport(options, ManagerAccess::shared_waker(manager))),
      options_(options) {}

DatagramPump::~DatagramPump() { shutdown(); }

void DatagramPump::check_channel(Delivery delivery) const {
  if (delivery.channel >= options_.channels)
    throw usage_error("sage: Delivery::channel " + std::to_string(delivery.channel) +
                      " is not below DatagramOptions::channels (" + std::to_string(options_.channels) + ")");
}

Result<void> DatagramPump::queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload,
                                        Delivery delivery) {
  check_channel(delivery);
  return PeerPump::queue_record(peer, codec, payload, delivery);
}

std::size_t DatagramPump::broadcast_record(const WireCodec& codec, std::span<const std::byte> payload,
                                           Delivery delivery) {
  check_channel(delivery);
  return PeerPump::broadcast_record(codec, payload, delivery);
}

DatagramStats DatagramPump::stats() const {
  const PeerCounters& c = counters();
  const ChannelCounters& ch = channel_counters();
  const TransportCounters t = transport_->counters();
  DatagramStats s;
  s.connections_accepted = c.connections_accepted - c.peers_refused;
  s.peers_refused = c.peers_refused;
  s.connections_dialed = c.connections_dialed;
  s.peers_connected = c.peers_connected;
  s.peers_disconnected = c.peers_disconnected;
  s.timeouts = t.timeouts;
  s.packets_sent = ch.messages_sent;
  s.packets_received = ch.messages_received;
  s.records_sent = ch.records_sent;
  s.records_received = ch.records_received;
  s.bad_datagrams = t.bad_datagrams;
  s.early_unreliable = t.early_unreliable;
  s.bad_input = c.bad_input;
  s.hello_timeouts = c.hello_timeouts;
  s.handshakes_refused = c.handshakes_refused;
  s.admissions_refused = c.admissions_refused;
  s.unknown_type_skipped = c.unknown_type_skipped;
  s.drop_logs_suppressed = c.drop_logs_suppressed;
  s.send_buffer_full = c.send_buffer_full;
  s.challenges_answered = t.challenges_answered;
  s.unproven_connects = t.unproven_connects;
  s.authentication_failures = t.authentication_failures;
  s.sealed_dropped = t.sealed_dropped;
  s.last_bad_input = c.last_bad_input;
  return s;
}

std::uint32_t DatagramPump::round_trip_ms(Sender peer) const {
  Peer* p = find(peer);
  auto* conn = p ? static_cast<DatagramConn*>(p->channel.connection()) : nullptr;
  return conn ? conn->round_trip_ms() : 0;
}

}  // namespace sage::detail

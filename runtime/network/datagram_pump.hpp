// runtime/network/datagram_pump.hpp: a manager's datagram peers (ENet over UDP; docs/network.md
// "Datagrams"): the one peer lifecycle (peer_pump.hpp) over the datagram transport.
//
// What differs from TCP peers is the transport's, not the lifecycle's: each send chooses its
// Delivery; ENet, not sage, keeps the link alive (its pings and timeouts replace heartbeats), so
// next_deadline() includes the ENet hosts' service deadlines (~2 wake-ups per ping interval per
// idle peer) and a manager without datagram peers never wakes for them; connect() returns at once
// with the peer dialing (a failure is PeerDisconnected). Indices: Sender::peer(datagram_peer_base
// + n), never reused. Every member runs on the manager's thread.
#pragma once

#include "network/peer_pump.hpp"
#include "sage/datagram.hpp"

namespace sage::detail {

class DatagramPump final : public PeerPump {
 public:
  DatagramPump(Manager& manager, const DatagramOptions& options);
  // Closes every peer (ENet disconnect with datagram_code::shutdown) after up to a second for
  // queued reliable data to be acknowledged.
  ~DatagramPump() override;

  // Throws usage_error for a Delivery::channel not below DatagramOptions::channels.
  Result<void> queue_record(Sender peer, const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery);
  std::size_t broadcast_record(const WireCodec& codec, std::span<const std::byte> payload, Delivery delivery);
  DatagramStats stats() const;
  bool owns(Sender s) const noexcept { return is_datagram_peer(s); }
  // Test hook: ENet's round-trip estimate for a peer (ms), 0 if unknown.
  std::uint32_t round_trip_ms(Sender peer) const;

 private:
  void check_channel(Delivery delivery) const;
  DatagramOptions options_;
};

}  // namespace sage::detail

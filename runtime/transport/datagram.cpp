// The datagram transport over ENet (runtime/transport/datagram.hpp).
#include "transport/datagram.hpp"

#include <enet/enet.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "runtime_assert.hpp"

namespace sage::detail {

struct HostAccess {
  static void count_bad(DatagramHost& h) { ++h.bad_datagrams_; }
};

namespace {

void init_enet() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (enet_initialize() != 0) throw std::runtime_error("sage: enet_initialize failed");
  });
}

std::string ip_port(const ENetAddress& a) {
  char ip[64] = "?";
  enet_address_get_host_ip(&a, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(a.port);
}

// The host service() runs for: ENet's intercept hook has no user pointer.
thread_local DatagramHost* servicing = nullptr;

int intercept_hook(ENetHost* host, ENetEvent*) {
  DatagramHost* self = servicing;
  if (!self || self->raw() != host) return 0;
  return self->intercept(host->receivedData, host->receivedDataLength, host->receivedAddress.host,
                         host->receivedAddress.port)
             ? 1   // consumed here: ENet does not look at it
             : 0;
}

// The data word of the ENet CONNECT that opens `data` (the cookie), if it is one.
std::optional<std::uint32_t> connect_data(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  std::uint16_t word;
  std::memcpy(&word, data, 2);
  word = ENET_NET_TO_HOST_16(word);
  const std::size_t header = (word & ENET_PROTOCOL_HEADER_FLAG_SENT_TIME) ? 4 : 2;
  const std::uint16_t peer_id = word & ~(ENET_PROTOCOL_HEADER_FLAG_MASK | ENET_PROTOCOL_HEADER_SESSION_MASK);
  if (peer_id != ENET_PROTOCOL_MAXIMUM_PEER_ID || size < header + sizeof(ENetProtocolConnect)) return std::nullopt;
  if ((data[header] & ENET_PROTOCOL_COMMAND_MASK) != ENET_PROTOCOL_COMMAND_CONNECT) return std::nullopt;
  std::uint32_t v;
  std::memcpy(&v, data + header + offsetof(ENetProtocolConnect, data), 4);
  return ENET_NET_TO_HOST_32(v);
}

// Bytes a sealed packet carries beyond its plain text (the number and the tag).
constexpr std::size_t seal_overhead = secure::counter_bytes + secure::tag_bytes;

constexpr std::uint8_t mode_index(Delivery::Mode m) { return static_cast<std::uint8_t>(m); }

}  // namespace

// ---- DatagramHost ----

DatagramHost::DatagramHost(ENetHost* host, bool listening, const DatagramSettings& settings,
                           std::shared_ptr<Waker> waker)
    : host_(host), settings_(settings), waker_(std::move(waker)), fd_(static_cast<int>(host->socket)),
      listening_(listening) {
  host_->maximumPacketSize = settings_.limits.max_message_size + seal_overhead;
  host_->intercept = &intercept_hook;
  waker_->watch(fd_);
}

DatagramHost::~DatagramHost() {
  waker_->unwatch(fd_);
  for (std::size_t i = 0; i < host_->peerCount; ++i) {
    ENetPeer* p = &host_->peers[i];
    if (p->data) static_cast<DatagramConn*>(p->data)->fail(Error{Errc::peer_gone, "the host was closed"});
    p->data = nullptr;
  }
  enet_host_destroy(host_);
}

Result<std::unique_ptr<DatagramHost>> DatagramHost::open(bool bind, const std::string& host, std::uint16_t port,
                                                         const DatagramSettings& settings, std::shared_ptr<Waker> waker) {
  init_enet();
  ENetAddress addr{};
  addr.port = port;
  if (bind) {
    if (host.empty() || host == "0.0.0.0") addr.host = ENET_HOST_ANY;
    else if (enet_address_set_host_ip(&addr, host.c_str()) != 0 && enet_address_set_host(&addr, host.c_str()) != 0)
      return Error{Errc::malformed, "cannot resolve '" + host + "' (ENet is IPv4 only)"};
  }
  const std::size_t channels = std::size_t{3} * settings.channels_per_mode;
  ENetHost* h = enet_host_create(bind ? &addr : nullptr, settings.peer_slots, channels, 0, 0);
  if (!h)
    return Error{Errc::io_error, bind ? "cannot bind enet://" + host + ":" + std::to_string(port) +
                                            " (address in use, or not an IPv4 address of this machine)"
                                      : std::string("cannot create a UDP socket for ENet")};
  if (settings.peers_per_address != 0) h->duplicatePeers = settings.peers_per_address;
  if (settings.max_waiting_data != 0) h->maximumWaitingData = settings.max_waiting_data;
  mark_network_started();  // as TcpListener::open: a fork server started later would hold the UDP socket
  return std::unique_ptr<DatagramHost>(new DatagramHost(h, bind, settings, std::move(waker)));
}

std::uint16_t DatagramHost::port() const noexcept { return host_->address.port; }

std::string DatagramHost::address_of(const ENetPeer* peer) { return ip_port(peer->address); }

Result<UdpAddress> DatagramHost::resolve(const std::string& host, std::uint16_t port) {
  init_enet();
  ENetAddress addr{};
  addr.port = port;
  if (enet_address_set_host_ip(&addr, host.c_str()) != 0 && enet_address_set_host(&addr, host.c_str()) != 0)
    return Error{Errc::malformed, "cannot resolve '" + host + "' (ENet is IPv4 only)"};
  return UdpAddress{addr.host, addr.port};
}

void DatagramHost::send_challenge(UdpAddress to, std::uint64_t nonce) {
  const auto request = secure::challenge_request(nonce);
  ENetAddress addr{to.host, to.port};
  ENetBuffer buf{const_cast<std::byte*>(request.data()), request.size()};
  (void)enet_socket_send(host_->socket, &addr, &buf, 1);  // lost like any datagram: the dialer resends
}

Result<ENetPeer*> DatagramHost::dial(UdpAddress to, std::uint32_t cookie) {
  ENetAddress addr{to.host, to.port};
  ENetPeer* p = enet_host_connect(host_, &addr, std::size_t{3} * settings_.channels_per_mode, cookie);
  if (!p) return Error{Errc::io_error, "no free ENet peer slot to connect to " + ip_port(addr)};
  const auto t = static_cast<enet_uint32>(settings_.peer_timeout.count());
  enet_peer_timeout(p, 0, t, t);
  enet_peer_ping_interval(p, static_cast<enet_uint32>(settings_.ping_interval.count()));
  p->data = nullptr;
  return p;
}

bool DatagramHost::intercept(const std::uint8_t* data, std::size_t size, std::uint32_t from_host,
                             std::uint16_t from_port) {
  const std::span<const std::byte> d(reinterpret_cast<const std::byte*>(data), size);
  if (secure::is_challenge_request(d)) {
    // Stateless: a cookie for this address, or nothing. Only a listener gives cookies.
    if (listening_) {
      if (auto reply = cookies_.answer(d, from_host, from_port, std::chrono::steady_clock::now())) {
        ENetAddress to{from_host, from_port};
        ENetBuffer buf{reply->data(), reply->size()};
        (void)enet_socket_send(host_->socket, &to, &buf, 1);
        ++challenges_answered_;
        return true;
      }
    }
    ++bad_datagrams_;
    return true;
  }
  if (secure::is_challenge_reply(d)) {
    if (!events_ || !events_->on_challenge_reply(*this, from_host, from_port, d)) ++bad_datagrams_;
    return true;
  }
  if (!plausible(data, size, from_host, from_port)) {
    ++bad_datagrams_;
    return true;
  }
  if (auto cookie = connect_data(data, size);
      cookie && !cookies_.check(*cookie, from_host, from_port, std::chrono::steady_clock::now())) {
    ++unproven_connects_;  // no slot, no reply: the sender has not shown it receives at its address
    return true;
  }
  return false;
}

bool DatagramHost::plausible(const std::uint8_t* data, std::size_t size, std::uint32_t from_host,
                             std::uint16_t from_port) const {
  // The checks ENet 1.3.17 makes before it silently drops a datagram (protocol.c,
  // enet_protocol_handle_incoming_commands), made here first so that the drop is counted.
  if (size < 2) return false;
  std::uint16_t word;
  std::memcpy(&word, data, 2);
  word = ENET_NET_TO_HOST_16(word);
  const std::uint16_t flags = word & ENET_PROTOCOL_HEADER_FLAG_MASK;
  const std::uint8_t session = (word & ENET_PROTOCOL_HEADER_SESSION_MASK) >> ENET_PROTOCOL_HEADER_SESSION_SHIFT;
  const std::uint16_t peer_id = word & ~(ENET_PROTOCOL_HEADER_FLAG_MASK | ENET_PROTOCOL_HEADER_SESSION_MASK);
  const std::size_t header = (flags & ENET_PROTOCOL_HEADER_FLAG_SENT_TIME) ? 4 : 2;
  if ((flags & ENET_PROTOCOL_HEADER_FLAG_COMPRESSED) && host_->compressor.context == nullptr) return false;
  if (size < header + sizeof(ENetProtocolCommandHeader)) return false;
  const std::uint8_t command = data[header] & ENET_PROTOCOL_COMMAND_MASK;
  if (command == ENET_PROTOCOL_COMMAND_NONE || command >= ENET_PROTOCOL_COMMAND_COUNT) return false;
  if (peer_id == ENET_PROTOCOL_MAXIMUM_PEER_ID) return command == ENET_PROTOCOL_COMMAND_CONNECT;
  if (peer_id >= host_->peerCount) return false;
  const ENetPeer& p = host_->peers[peer_id];
  if (p.state == ENET_PEER_STATE_DISCONNECTED || p.state == ENET_PEER_STATE_ZOMBIE) return false;
  if ((from_host != p.address.host || from_port != p.address.port) && p.address.host != ENET_HOST_BROADCAST)
    return false;
  if (p.outgoingPeerID < ENET_PROTOCOL_MAXIMUM_PEER_ID && session != p.incomingSessionID) return false;
  return true;
}

void DatagramHost::service() {
  auto emit = [&](const HostEvent& e) {
    if (events_) events_->on_host_event(*this, e);
    else if (e.kind == HostEvent::Kind::connected) drop_now(e.peer, datagram_code::shutdown);
  };
  servicing = this;
  ENetEvent ev;
  int r;
  // Bounded: a flood cannot keep the manager's thread here forever (the fd stays readable).
  for (int n = 0; n < 10000 && (r = enet_host_service(host_, &ev, 0)) != 0; ++n) {
    if (r < 0) {
      // ENet reports a failed socket receive/send; nothing to deliver. Counted as a bad datagram.
      HostAccess::count_bad(*this);
      break;
    }
    switch (ev.type) {
      case ENET_EVENT_TYPE_CONNECT: {
        const auto t = static_cast<enet_uint32>(settings_.peer_timeout.count());
        enet_peer_timeout(ev.peer, 0, t, t);
        enet_peer_ping_interval(ev.peer, static_cast<enet_uint32>(settings_.ping_interval.count()));
        emit({HostEvent::Kind::connected, ev.peer, ev.data, false});
        break;
      }
      case ENET_EVENT_TYPE_DISCONNECT: {
        auto* conn = static_cast<DatagramConn*>(ev.peer->data);
        ev.peer->data = nullptr;
        if (conn)
          conn->fail(ev.data == datagram_code::timeout
                         ? Error{Errc::peer_gone, "timed out (nothing acknowledged within DatagramOptions::peer_timeout)"}
                     : ev.data == datagram_code::full ? Error{Errc::peer_gone, "refused: the server has max_peers peers"}
                                                      : Error{Errc::peer_gone, "disconnected by the peer"});
        emit({HostEvent::Kind::disconnected, ev.peer, ev.data, conn != nullptr});
        break;
      }
      case ENET_EVENT_TYPE_RECEIVE: {
        if (auto* conn = static_cast<DatagramConn*>(ev.peer->data)) conn->deliver(ev.packet, ev.channelID);
        else enet_packet_destroy(ev.packet);  // a peer we are dropping
        break;
      }
      case ENET_EVENT_TYPE_NONE:
        break;
    }
  }
  servicing = nullptr;
  waker_->rearm(fd_);
}

void DatagramHost::flush() { enet_host_flush(host_); }

Clock::time_point DatagramHost::next_deadline() const {
  const enet_uint32 now = enet_time_get();
  bool any = false;
  std::int32_t soonest = INT32_MAX;
  for (std::size_t i = 0; i < host_->peerCount; ++i) {
    const ENetPeer& p = host_->peers[i];
    if (p.state == ENET_PEER_STATE_DISCONNECTED || p.state == ENET_PEER_STATE_ZOMBIE) continue;
    any = true;
    const bool in_flight = !enet_list_empty(&const_cast<ENetPeer&>(p).sentReliableCommands);
    const enet_uint32 due = in_flight ? p.nextTimeout : p.lastReceiveTime + p.pingInterval;
    soonest = std::min(soonest, static_cast<std::int32_t>(due - now));
    // Queued but not yet sent (window full, acknowledgements): the next service sends them.
    if (!enet_list_empty(&const_cast<ENetPeer&>(p).acknowledgements)) soonest = std::min(soonest, 0);
  }
  if (!any) return Clock::time_point::max();
  return Clock::now() + std::chrono::milliseconds(std::max<std::int32_t>(soonest, 1));
}

void DatagramHost::drop_now(ENetPeer* peer, std::uint32_t code) noexcept {
  if (auto* conn = static_cast<DatagramConn*>(peer->data)) conn->fail(Error{Errc::peer_gone, "closed"});
  peer->data = nullptr;
  enet_peer_disconnect_now(peer, code);
}

void DatagramHost::disconnect_later(ENetPeer* peer, std::uint32_t code) noexcept {
  enet_peer_disconnect_later(peer, code);
}

// ---- DatagramConn ----

struct DatagramConn::Pending {
  std::size_t bytes = 0;
  std::size_t packets = 0;
  bool orphan = false;  // the connection is gone; the last packet frees this
};

DatagramConn::DatagramConn(DatagramHost& host, ENetPeer* peer)
    : host_(host), peer_(peer), address_(DatagramHost::address_of(peer)), pending_(new Pending) {
  peer_->data = this;
}

DatagramConn::~DatagramConn() {
  close();
  for (auto* q : {&inbox_, &held_, &pre_seal_})
    for (const Inbound& in : *q) enet_packet_destroy(in.packet);
  if (pending_->packets == 0) delete pending_;
  else pending_->orphan = true;
}

void DatagramConn::close() {
  if (!peer_) return;
  if (peer_->data == this) host_.drop_now(peer_, datagram_code::closed);
  peer_ = nullptr;
  if (!failure_) failure_ = Error{Errc::peer_gone, "closed"};
}

void DatagramConn::disconnect_later(std::uint32_t code) {
  if (peer_ && peer_->data == this) host_.disconnect_later(peer_, code);
}

void DatagramConn::fail(Error e) noexcept {
  if (!failure_) failure_ = std::move(e);
  peer_ = nullptr;  // ENet resets or has reset the peer; never touch it again
}

void DatagramConn::fail_now(Error e) noexcept {
  if (!failure_) failure_ = std::move(e);
  if (ENetPeer* p = std::exchange(peer_, nullptr); p && p->data == this) host_.drop_now(p, datagram_code::closed);
}

std::uint32_t DatagramConn::round_trip_ms() const noexcept { return peer_ ? peer_->roundTripTime : 0; }

Result<void> DatagramConn::send(std::span<const std::byte> body, Delivery delivery) {
  if (!peer_ || failure_) return Error{Errc::peer_gone, address_ + " is disconnected"};
  const auto& lim = limits();
  if (body.size() > lim.max_message_size)
    return Error{Errc::too_large, "a transport message of " + std::to_string(body.size()) +
                                      " bytes is over the limit of " + std::to_string(lim.max_message_size)};
  if (pending_->bytes != 0 && pending_->bytes + body.size() > lim.max_pending_bytes)  // an idle one takes any one
    return Error{Errc::send_buffer_full, address_ + " has not acknowledged " + std::to_string(pending_->bytes) + " bytes"};
  const std::uint8_t per_mode = host_.settings().channels_per_mode;
  if (delivery.channel >= per_mode)
    return Error{Errc::malformed, "Delivery::channel " + std::to_string(delivery.channel) +
                                      " is not below DatagramOptions::channels (" + std::to_string(per_mode) + ")"};
  enet_uint32 flags = 0;
  switch (delivery.mode) {
    case Delivery::Mode::reliable: flags = ENET_PACKET_FLAG_RELIABLE; break;
    // Never upgraded to reliable: oversize unreliable packets travel as unreliable fragments.
    case Delivery::Mode::unreliable_sequenced: flags = ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT; break;
    case Delivery::Mode::unreliable: flags = ENET_PACKET_FLAG_UNSEQUENCED | ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT; break;
  }
  const auto channel = static_cast<std::uint8_t>(mode_index(delivery.mode) * per_mode + delivery.channel);
  if (proving_) return Error{Errc::peer_gone, address_ + " has not finished the shared-key handshake"};
  if (sealers_.empty()) return send_bytes(body, channel, flags);
  sealers_[channel].seal(body, sealed_);
  return send_bytes(sealed_, channel, flags);
}

Result<void> DatagramConn::send_bytes(std::span<const std::byte> bytes, std::uint8_t channel, std::uint32_t flags) {
  ENetPacket* packet = enet_packet_create(bytes.data(), bytes.size(), flags);
  if (!packet) return Error{Errc::io_error, "out of memory for an ENet packet"};
  if (enet_peer_send(peer_, channel, packet) != 0) {
    enet_packet_destroy(packet);
    return Error{Errc::peer_gone, address_ + " does not accept packets (disconnecting)"};
  }
  packet->userData = pending_;
  packet->freeCallback = [](ENetPacket* pk) {
    auto* p = static_cast<Pending*>(pk->userData);
    p->bytes -= pk->dataLength;
    if (--p->packets == 0 && p->orphan) delete p;
  };
  pending_->bytes += bytes.size();
  ++pending_->packets;
  return {};
}

std::optional<std::vector<std::byte>> DatagramConn::take_handshake_packet() {
  auto it = std::find_if(pre_seal_.begin(), pre_seal_.end(), [](const Inbound& in) { return in.channel == 0; });
  if (it == pre_seal_.end()) return std::nullopt;
  const auto* d = reinterpret_cast<const std::byte*>(it->packet->data);
  std::vector<std::byte> out(d, d + it->packet->dataLength);
  pre_seal_bytes_ -= it->packet->dataLength;
  enet_packet_destroy(it->packet);
  pre_seal_.erase(it);
  return out;
}

Result<void> DatagramConn::send_handshake(std::span<const std::byte> bytes) {
  if (!peer_ || failure_) return Error{Errc::peer_gone, address_ + " is disconnected"};
  return send_bytes(bytes, 0, ENET_PACKET_FLAG_RELIABLE);
}

void DatagramConn::seal_with(const secure::SessionKeys& keys) {
  const std::size_t channels = std::size_t{3} * host_.settings().channels_per_mode;
  sealers_.clear();
  sealers_.reserve(channels);
  for (std::size_t c = 0; c < channels; ++c) sealers_.emplace_back(keys, static_cast<std::uint8_t>(c));
  identity_ = "key:" + keys.key_id;
  proving_ = false;
  auto early = std::exchange(pre_seal_, {});
  pre_seal_bytes_ = 0;
  for (const Inbound& in : early) accept(in.packet, in.channel);
}

std::size_t DatagramConn::pending_bytes() const { return pending_->bytes; }
std::size_t DatagramConn::received_bytes() const {
  std::size_t n = held_bytes_ + pre_seal_bytes_;
  for (const Inbound& in : inbox_) n += in.size;
  return n;
}

bool DatagramConn::wait_sent(Clock::time_point deadline) {
  return host_.serve_until(deadline, [&] { return pending_->bytes == 0 || failure_.has_value(); }) &&
         pending_->bytes == 0;
}

void DatagramConn::deliver(ENetPacket* packet, std::uint8_t channel) {
  last_receive_ = Clock::now();
  if (proving_) {  // the handshake's packets, and whatever follows them before seal_with()
    pre_seal_bytes_ += packet->dataLength;
    pre_seal_.push_back({packet, 0, static_cast<std::uint32_t>(packet->dataLength), channel});
    if (pre_seal_bytes_ > limits().max_inbox_bytes)
      fail_now(Error{Errc::too_large, std::to_string(pre_seal_bytes_) + " bytes arrived during the shared-key handshake"});
    return;
  }
  accept(packet, channel);
}

void DatagramConn::accept(ENetPacket* packet, std::uint8_t channel) {
  const bool reliable = channel < host_.settings().channels_per_mode;
  Inbound in{packet, 0, static_cast<std::uint32_t>(packet->dataLength), channel};
  if (!sealers_.empty()) {
    auto plain = sealers_[channel].open({reinterpret_cast<std::byte*>(packet->data), packet->dataLength});
    if (!plain) {
      enet_packet_destroy(packet);
      // An unreliable packet may be lost anyway: this one is dropped and counted. A reliable one
      // that does not open breaks its channel's order: the connection cannot be trusted again.
      if (reliable)
        fail_now(Error{Errc::malformed, "a sealed packet on reliable channel " + std::to_string(channel) +
                                        " did not open (tampered with, replayed or injected on the path)"});
      else
        host_.note_sealed_dropped();
      return;
    }
    in.offset = static_cast<std::uint32_t>(plain->data() - reinterpret_cast<std::byte*>(packet->data));
    in.size = static_cast<std::uint32_t>(plain->size());
  } else if (channel == 0 && !hello_seen_ &&
             secure::is_refusal_magic({reinterpret_cast<const std::byte*>(packet->data), packet->dataLength})) {
    enet_packet_destroy(packet);  // a listener with shared keys refused our plain hello
    fail_now(Error{Errc::not_admitted, "enet://" + address_ + " requires the shared-key handshake (DatagramOptions::keys)"});
    return;
  }
  // The peer's hello opens its first packet on channel 0 (reliable, ordered). Packets of its other
  // channels can overtake it: unreliable ones are dropped (their delivery allows it), reliable
  // ones are held until the hello arrived; the Channel would otherwise take them for bad input.
  if (!hello_seen_ && channel != 0) {
    if (!reliable) {
      host_.note_early_unreliable();
      enet_packet_destroy(packet);
      return;
    }
    held_bytes_ += in.size;
    held_.push_back(in);
    if (held_bytes_ > limits().max_inbox_bytes)
      fail_now(Error{Errc::too_large, std::to_string(held_bytes_) + " bytes of reliable packets arrived before the hello"});
    return;
  }
  if (in.size > limits().max_message_size) {
    enet_packet_destroy(packet);
    fail_now(Error{Errc::too_large, "a packet over DatagramOptions::max_message_size arrived"});
    return;
  }
  inbox_.push_back(in);
  if (channel == 0 && !hello_seen_) {
    hello_seen_ = true;
    for (const Inbound& h : held_) {
      if (h.size > limits().max_message_size) {
        fail_now(Error{Errc::too_large, "a packet over DatagramOptions::max_message_size arrived"});
        enet_packet_destroy(h.packet);
      } else {
        inbox_.push_back(h);
      }
    }
    held_.clear();
    held_bytes_ = 0;
  }
}

std::size_t DatagramConn::receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) {
  if (paused_) return 0;
  std::size_t n = 0;
  std::vector<std::uint64_t> aligned;
  while (n < max && !inbox_.empty()) {
    const Inbound in = inbox_.front();
    inbox_.pop_front();
    const auto* data = reinterpret_cast<const std::byte*>(in.packet->data) + in.offset;
    std::span<const std::byte> body{data, in.size};
    if (reinterpret_cast<std::uintptr_t>(data) % 8 != 0) {
      aligned.assign((in.size + 7) / 8, 0);
      std::memcpy(aligned.data(), data, in.size);
      body = {reinterpret_cast<const std::byte*>(aligned.data()), in.size};
    }
    try {
      fn(ctx, body);
    } catch (...) {
      enet_packet_destroy(in.packet);
      throw;
    }
    enet_packet_destroy(in.packet);
    ++n;
  }
  return n;
}

}  // namespace sage::detail

// The Manager members of the network API (declared in sage/manager.hpp, "network").
#include "local/manager_access.hpp"
#include "network/datagram_pump.hpp"
#include "network/net_pump.hpp"
#include "sage/manager.hpp"

namespace sage {

namespace detail {
NetPump& ManagerAccess::network(const Manager& m) {
  if (!m.net_) throw usage_error("sage: the network is not enabled; call listen(), connect() or enable_network()");
  return *m.net_;
}
}  // namespace detail

void Manager::enable_network(const NetworkOptions& options) {
  if (net_) throw usage_error("sage: the network is already enabled for this manager");
  auto pump = std::make_unique<detail::NetPump>(*this, options);
  net_ = pump.get();
  add_pump(std::move(pump));
}

detail::NetPump& Manager::network() {
  if (!net_) enable_network();
  return *net_;
}

Endpoint Manager::listen(std::string_view host, std::uint16_t port) { return network().listen(host, port); }
std::optional<Endpoint> Manager::listening() const { return net_ ? net_->listening() : std::nullopt; }
Sender Manager::connect(std::string_view host, std::uint16_t port) { return network().connect(host, port); }
void Manager::disconnect() {
  if (net_) net_->disconnect_outgoing();
  if (dgram_) dgram_->disconnect_outgoing();
}
void Manager::disconnect(Sender peer) {
  if (peer.kind != Sender::Kind::peer) throw not_a_peer();
  if (is_datagram_peer(peer)) {
    if (dgram_) dgram_->disconnect(peer);
    return;
  }
  if (net_) net_->disconnect(peer);
}
std::vector<PeerInfo> Manager::peers() const {
  std::vector<PeerInfo> out = net_ ? net_->peers() : std::vector<PeerInfo>{};
  if (dgram_) {
    auto d = dgram_->peers();
    out.insert(out.end(), d.begin(), d.end());
  }
  return out;
}
NetworkStats Manager::network_stats() const { return detail::ManagerAccess::network(*this).stats(); }
Sender Manager::network_server() const {
  if (!dgram_) {
    if (!net_) throw no_server(0);
    return net_->server();
  }
  std::vector<Sender> out = dgram_->servers();
  if (net_) {
    try {
      out.push_back(net_->server());
    } catch (const no_server&) {
    }
  }
  if (out.size() != 1) throw no_server(out.size());
  return out.front();
}

Result<void> Manager::queue_net_record(Sender peer, const detail::WireCodec& codec, std::span<const std::byte> payload,
                                       Delivery delivery) {
  if (peer.kind != Sender::Kind::peer) throw not_a_peer();
  if (is_datagram_peer(peer)) {
    if (!dgram_) return Error{Errc::peer_gone, "datagrams are not enabled in this manager"};
    return dgram_->queue_record(peer, codec, payload, delivery);
  }
  return detail::ManagerAccess::network(*this).queue_record(peer, codec, payload);  // TCP: always reliable
}

std::size_t Manager::broadcast_net_record(const detail::WireCodec& codec, std::span<const std::byte> payload) {
  return broadcast_datagram_record(codec, payload, Delivery{});
}

std::size_t Manager::broadcast_datagram_record(const detail::WireCodec& codec, std::span<const std::byte> payload,
                                               Delivery delivery) {
  std::size_t n = 0;
  if (net_ || !dgram_) n += detail::ManagerAccess::network(*this).broadcast_record(codec, payload);
  if (dgram_) n += dgram_->broadcast_record(codec, payload, delivery);
  return n;
}

void Manager::join_as_group(std::string_view host, std::uint16_t port, std::string_view name) {
  if (groups_enabled()) throw usage_error("sage: a manager with process groups cannot also be a remote group");
  network().join_group(host, port, name);
}

std::vector<std::string> Manager::remote_groups() const {
  return net_ ? net_->remote_groups() : std::vector<std::string>{};
}
bool Manager::has_remote_group(std::string_view name) const {
  return directory_->route(name).kind == detail::Route::Kind::node;
}

}  // namespace sage

// The Manager members of the network API (declared in sage/manager.hpp, "network").
#include <cstdio>

#include "sage/detail/net_pump.hpp"
#include "sage/manager.hpp"

namespace sage {

void Manager::enable_network(const NetworkOptions& options) {
  if (net_) throw usage_error("sage: the network is already enabled for this manager");
  auto pump = std::make_unique<detail::NetPump>(options);
  for (const auto& c : wire_codecs_) pump->register_codec(c);
  net_ = pump.get();
  add_pump(std::move(pump));
}

detail::NetPump& Manager::network() {
  if (!net_) enable_network();
  return *net_;
}

detail::NetPump& Manager::net_pump() const {
  if (!net_) throw usage_error("sage: the network is not enabled; call listen(), connect() or enable_network()");
  return *net_;
}

Endpoint Manager::listen(std::string_view host, std::uint16_t port) { return network().listen(host, port); }
std::optional<Endpoint> Manager::listening() const { return net_ ? net_->listening() : std::nullopt; }
Sender Manager::connect(std::string_view host, std::uint16_t port) { return network().connect(host, port); }
void Manager::disconnect() {
  if (net_) net_->disconnect_outgoing();
}
void Manager::disconnect(Sender peer) {
  if (peer.kind != Sender::Kind::peer) throw not_a_peer();
  if (net_) net_->disconnect(peer);
}
std::vector<PeerInfo> Manager::peers() const { return net_ ? net_->peers() : std::vector<PeerInfo>{}; }
const NetworkStats& Manager::network_stats() const { return net_pump().stats(); }
flatbuffers::FlatBufferBuilder& Manager::network_builder() { return network().builder(); }
Sender Manager::network_server() const {
  if (!net_) throw no_server(0);
  return net_->server();
}

Result<void> Manager::queue_net_record(Sender peer, const detail::WireCodec& codec, std::span<const std::byte> payload) {
  if (peer.kind != Sender::Kind::peer) throw not_a_peer();
  return net_pump().queue_record(peer, codec, payload);
}

std::size_t Manager::broadcast_net_record(const detail::WireCodec& codec, std::span<const std::byte> payload) {
  return net_pump().broadcast_record(codec, payload);
}

void Manager::join_as_group(std::string_view host, std::uint16_t port, std::string_view name) {
  if (groups_) throw usage_error("sage: a manager with process groups cannot also be a remote group");
  network().join_group(*this, host, port, name);
}

std::vector<std::string> Manager::remote_groups() const {
  return net_ ? net_->remote_groups() : std::vector<std::string>{};
}
bool Manager::has_remote_group(std::string_view name) const {
  return net_ && net_->joined_group().empty() && net_->routes_group(name);
}

namespace detail {

int run_remote_group_loop(Manager& manager, ActorFactory factory, std::string_view host, std::uint16_t port,
                          std::string_view name, std::chrono::milliseconds interval) {
  try {
    manager.join_as_group(host, port, name);
  } catch (const network_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  std::unique_ptr<ActorBase> actor = factory(manager);
  manager.register_actor(*actor);
  NetPump& net = manager.net_pump();
  for (;;) {
    manager.tick();
    if (net.bye_received()) break;
    if (auto why = net.main_lost()) {
      std::fprintf(stderr, "sage: remote group '%.*s': lost the main group: %s\n", static_cast<int>(name.size()),
                   name.data(), why->c_str());
      manager.unregister_actor(*actor);
      return 1;
    }
    manager.wait_for_next_tick(interval);
  }
  // Everything that arrived before the bye was dispatched and what the actor queued was flushed in
  // the last tick; bye_ack tells the main group so.
  net.answer_bye();
  manager.unregister_actor(*actor);
  return 0;
}

}  // namespace detail
}  // namespace sage

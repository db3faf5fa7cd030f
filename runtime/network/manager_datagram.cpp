// The Manager members of the datagram API (declared in sage/manager.hpp, "datagrams").
#include "local/manager_access.hpp"
#include "network/datagram_pump.hpp"
#include "sage/manager.hpp"

namespace sage {

void Manager::enable_datagrams(const DatagramOptions& options) {
  if (dgram_) throw usage_error("sage: datagrams are already enabled for this manager");
  auto pump = std::make_unique<detail::DatagramPump>(*this, options);
  dgram_ = pump.get();
  add_pump(std::move(pump));
}

detail::DatagramPump& Manager::datagrams() {
  if (!dgram_) enable_datagrams();
  return *dgram_;
}

Endpoint Manager::listen_datagram(std::string_view host, std::uint16_t port) { return datagrams().listen(host, port); }
Sender Manager::connect_datagram(std::string_view host, std::uint16_t port) { return datagrams().connect(host, port); }

DatagramStats Manager::datagram_stats() const {
  if (!dgram_) throw usage_error("sage: datagrams are not enabled; call listen_datagram(), connect_datagram() or enable_datagrams()");
  return dgram_->stats();
}

std::uint32_t Manager::datagram_round_trip_ms(Sender peer) const { return dgram_ ? dgram_->round_trip_ms(peer) : 0; }

}  // namespace sage

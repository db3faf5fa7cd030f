// The datagram transport of the peer lifecycle (runtime/network/peer_transport.hpp): ENet over UDP
// (transport/datagram.hpp). It owns up to two ENet hosts: the listening one and an unbound one
// for dialing. ENet reports connects and disconnects inline, during service(): an accepted
// connection is handed to the intake there, a dial's result to its EnetDialer.
#include <map>

#include "network/peer_transport.hpp"
#include "sage/datagram.hpp"
#include "transport/datagram.hpp"

namespace sage::detail {

namespace {

std::string enet_url(std::string_view host, std::uint16_t port) {
  return "enet://" + std::string(host) + ":" + std::to_string(port);
}

class EnetDialer;

class DatagramTransport final : public PeerTransport, HostEvents {
 public:
  DatagramTransport(const DatagramOptions& options, std::shared_ptr<Waker> waker)
      : options_(options), waker_(std::move(waker)) {}
  ~DatagramTransport() override { stop_accepting(); }

  Endpoint listen(std::string_view host, std::uint16_t port, PeerIntake& intake) override {
    auto h = DatagramHost::open(true, std::string(host), port, settings(), waker_);
    if (!h) throw network_error(h.error());
    listener_ = std::move(*h);
    listener_->set_events(this);
    intake_ = &intake;
    return Endpoint{std::string(host), listener_->port(), enet_url(host, listener_->port())};
  }

  std::unique_ptr<Dialer> dialer(std::string_view host, std::uint16_t port, PeerIntake& intake) override;

  void service() override {
    if (listener_) listener_->service();
    if (dialer_) dialer_->service();
  }
  void flush() override {
    for (DatagramHost* h : {listener_.get(), dialer_.get()})
      if (h) h->flush();
  }
  Clock::time_point next_deadline() const override {
    Clock::time_point t = Clock::time_point::max();
    for (DatagramHost* h : {listener_.get(), dialer_.get()})
      if (h) t = std::min(t, h->next_deadline());
    return t;
  }
  void start_close(Connection& conn, CloseReason why) override {
    static_cast<DatagramConn&>(conn).disconnect_later(why == CloseReason::shutdown ? datagram_code::shutdown
                                                                                   : datagram_code::closed);
  }
  bool drained(const Connection&) const override { return false; }  // ENet's disconnect fails the connection
  void stop_accepting() override {
    for (DatagramHost* h : {listener_.get(), dialer_.get()})
      if (h) h->set_events(nullptr);
  }
  TransportCounters counters() const override {
    TransportCounters c{.timeouts = timeouts_};
    for (DatagramHost* h : {listener_.get(), dialer_.get()}) {
      if (!h) continue;
      c.bad_datagrams += h->bad_datagrams();
      c.early_unreliable += h->early_unreliable();
    }
    return c;
  }
  std::string who(const std::string& address) const override { return "enet://" + address; }
  std::string url(std::string_view host, std::uint16_t port) const override { return enet_url(host, port); }

  DatagramHost& client_host() {
    if (!dialer_) {
      DatagramSettings s = settings();
      s.peer_slots = options_.max_peers;  // outgoing connections of this manager
      auto h = DatagramHost::open(false, {}, 0, s, waker_);
      if (!h) throw network_error(h.error());
      dialer_ = std::move(*h);
      dialer_->set_events(this);
    }
    return *dialer_;
  }
  std::map<_ENetPeer*, EnetDialer*> dials_;  // dials under way on the client host

 private:
  DatagramSettings settings() const {
    DatagramSettings s;
    s.peer_slots = options_.max_peers + 8;
    s.channels_per_mode = options_.channels;
    s.limits.max_message_size = options_.max_message_size;
    s.limits.max_pending_bytes = options_.send_buffer_limit + options_.max_message_size;
    s.limits.unreliable_batch_size = options_.unreliable_batch_size;
    s.limits.batch_size = options_.reliable_batch_size;
    s.peer_timeout = options_.peer_timeout;
    s.ping_interval = options_.ping_interval;
    s.peers_per_address = options_.max_peers_per_address;
    // One message in reassembly and one waiting per peer, not ENet's 32 MiB (a peer that never
    // sends a message's last fragment holds at most this much).
    s.max_waiting_data = 2 * options_.max_message_size;
    return s;
  }

  void on_host_event(DatagramHost& host, const HostEvent& ev) override;

  DatagramOptions options_;
  std::shared_ptr<Waker> waker_;
  std::unique_ptr<DatagramHost> listener_;
  std::unique_ptr<DatagramHost> dialer_;
  PeerIntake* intake_ = nullptr;
  std::uint64_t timeouts_ = 0;
};

// One ENet connect at a time to host:port; its result comes from the client host's events.
class EnetDialer final : public Dialer {
 public:
  EnetDialer(DatagramTransport& t, PeerIntake& intake, std::string_view host, std::uint16_t port)
      : t_(t), intake_(intake), host_(host), port_(port), url_(enet_url(host, port)) {}
  ~EnetDialer() override { abandon(); }

  void start(std::chrono::milliseconds timeout) override {
    abandon();
    result_.reset();
    timeout_ = timeout;
    Result<_ENetPeer*> r = Error{Errc::io_error, "no client host"};
    try {
      r = t_.client_host().dial(host_, port_);
    } catch (const network_error& e) {
      r = e.error();
    }
    if (!r) {
      result_ = Error{Errc::peer_gone, "cannot connect to " + url_ + ": " + r.error().message()};
      return;
    }
    pending_ = *r;
    t_.dials_[pending_] = this;
    deadline_ = Clock::now() + timeout;
    t_.client_host().flush();
  }
  bool busy() const override { return pending_ != nullptr; }
  std::optional<Result<std::unique_ptr<Connection>>> take() override {
    if (!result_ && pending_ && Clock::now() >= deadline_) {
      abandon();
      result_ = Error{Errc::peer_gone, "cannot connect to " + url_ + ": no answer within " +
                                           std::to_string(timeout_.count()) + " ms (DatagramOptions::connect_timeout)"};
    }
    return std::exchange(result_, std::nullopt);
  }
  const std::string& url() const noexcept override { return url_; }
  Clock::time_point next_deadline() const override { return pending_ ? deadline_ : Clock::time_point::max(); }

  // The client host's events for this dial (DatagramTransport::on_host_event).
  void connected(DatagramHost& host) {
    auto conn = std::make_unique<DatagramConn>(host, pending_);
    t_.dials_.erase(pending_);
    pending_ = nullptr;
    result_ = std::unique_ptr<Connection>(std::move(conn));
    intake_.dialed(*this);  // our hello leaves with ENet's acknowledgement of the connect
  }
  void failed(std::uint32_t code) {
    t_.dials_.erase(pending_);
    pending_ = nullptr;
    result_ = Error{Errc::peer_gone, "cannot connect to " + url_ + ": " +
                                         (code == datagram_code::full      ? std::string("the server has max_peers peers")
                                          : code == datagram_code::timeout ? std::string("no answer (nothing listens there, or its host is full)")
                                                                           : "refused (disconnect code " + std::to_string(code) + ")")};
  }

 private:
  void abandon() {
    if (!pending_) return;
    t_.dials_.erase(pending_);
    t_.client_host().drop_now(pending_, datagram_code::closed);
    pending_ = nullptr;
  }

  DatagramTransport& t_;
  PeerIntake& intake_;
  std::string host_;
  std::uint16_t port_;
  std::string url_;
  std::chrono::milliseconds timeout_{0};
  _ENetPeer* pending_ = nullptr;
  Clock::time_point deadline_{};
  std::optional<Result<std::unique_ptr<Connection>>> result_;
};

std::unique_ptr<Dialer> DatagramTransport::dialer(std::string_view host, std::uint16_t port, PeerIntake& intake) {
  return std::make_unique<EnetDialer>(*this, intake, host, port);
}

void DatagramTransport::on_host_event(DatagramHost& host, const HostEvent& ev) {
  if (ev.kind == HostEvent::Kind::disconnected) {
    if (ev.had_conn) {  // the connection failed (its failure() says why); the lifecycle drops the peer
      if (ev.data == datagram_code::timeout) ++timeouts_;
      return;
    }
    if (auto it = dials_.find(ev.peer); it != dials_.end()) it->second->failed(ev.data);
    return;
  }
  if (&host == dialer_.get()) {
    if (auto it = dials_.find(ev.peer); it != dials_.end()) return it->second->connected(host);
    host.drop_now(ev.peer, datagram_code::closed);  // a dial we gave up on
    return;
  }
  const std::string from = DatagramHost::address_of(ev.peer);
  if (ev.data != datagram_code::connect) {
    intake_->rejected(from, Error{Errc::malformed, "refused at connect: not from a sage peer (connect data " +
                                                       std::to_string(ev.data) + ")"});
    host.drop_now(ev.peer, datagram_code::not_sage);
    return;
  }
  if (intake_->admit(from)) {
    host.drop_now(ev.peer, datagram_code::full);
    return;
  }
  intake_->accepted(std::make_unique<DatagramConn>(host, ev.peer));
}

}  // namespace

std::unique_ptr<PeerTransport> make_datagram_transport(const DatagramOptions& options, std::shared_ptr<Waker> waker) {
  return std::make_unique<DatagramTransport>(options, std::move(waker));
}

}  // namespace sage::detail

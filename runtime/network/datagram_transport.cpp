// The datagram transport of the peer lifecycle (runtime/network/peer_transport.hpp): ENet over UDP
// (transport/datagram.hpp). It owns up to two ENet hosts: the listening one and an unbound one
// for dialing. ENet reports connects and disconnects inline, during service(): an accepted
// connection is handed to the intake there, a dial's result to its EnetDialer.
//
// A dial runs: challenge (a request every 250 ms until the listener's cookie arrives; see
// secure/challenge.hpp) -> ENet connect with the cookie -> with DatagramOptions::keys, the
// shared-key handshake (K1/K2/K3 on channel 0, secure/handshake.hpp) -> a connection for the
// lifecycle. A listener with keys holds an accepted connection in `proving_` until its K3
// verifies (within hello_timeout); only then does the lifecycle see it (admit, accepted).
#include <algorithm>
#include <list>
#include <map>

#include "network/peer_transport.hpp"
#include "sage/datagram.hpp"
#include "secure/keys.hpp"
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

  void service() override;
  void flush() override {
    for (DatagramHost* h : {listener_.get(), dialer_.get()})
      if (h) h->flush();
  }
  Clock::time_point next_deadline() const override {
    Clock::time_point t = Clock::time_point::max();
    for (DatagramHost* h : {listener_.get(), dialer_.get()})
      if (h) t = std::min(t, h->next_deadline());
    for (const Proving& p : proving_) t = std::min(t, p.deadline);
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
    TransportCounters c{.timeouts = timeouts_, .authentication_failures = authentication_failures_};
    for (DatagramHost* h : {listener_.get(), dialer_.get()}) {
      if (!h) continue;
      c.bad_datagrams += h->bad_datagrams();
      c.early_unreliable += h->early_unreliable();
      c.challenges_answered += h->challenges_answered();
      c.unproven_connects += h->unproven_connects();
      c.sealed_dropped += h->sealed_dropped();
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
  std::list<EnetDialer*> challenging_;       // dials waiting for a cookie (or proving a key)
  const std::vector<secure::NamedKey>& keys() const noexcept { return keys_; }
  const DatagramOptions& options() const noexcept { return options_; }

 private:
  // An accepted connection in the shared-key handshake (listener with keys).
  struct Proving {
    std::unique_ptr<DatagramConn> conn;
    std::string address;
    secure::ServerHandshake hs;
    bool hello_done = false;
    Clock::time_point deadline;
  };
  void advance(Proving& p);
  void refuse(Proving& p, std::string why, std::optional<secure::KeyRefusal> code);

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
  bool on_challenge_reply(DatagramHost& host, std::uint32_t address, std::uint16_t port,
                          std::span<const std::byte> reply) override;

  DatagramOptions options_;
  std::vector<secure::NamedKey> keys_ = named_keys(options_.keys);
  std::list<Proving> proving_;
  // Refused handshakes whose refusal is still leaving (ENet's disconnect_later fails them).
  std::vector<std::unique_ptr<DatagramConn>> lingering_;
  std::uint64_t authentication_failures_ = 0;
  std::shared_ptr<Waker> waker_;
  std::unique_ptr<DatagramHost> listener_;
  std::unique_ptr<DatagramHost> dialer_;
  PeerIntake* intake_ = nullptr;
  std::uint64_t timeouts_ = 0;
};

// One attempt at a time to host:port: challenge, ENet connect, shared-key handshake (with keys).
// Its steps run from the transport's service() (advance()) and the client host's events.
class EnetDialer final : public Dialer {
 public:
  enum class Step : std::uint8_t { idle, challenging, connecting, proving };

  EnetDialer(DatagramTransport& t, PeerIntake& intake, std::string_view host, std::uint16_t port)
      : t_(t), intake_(intake), host_(host), port_(port), url_(enet_url(host, port)) {}
  ~EnetDialer() override { abandon(); }

  void start(std::chrono::milliseconds timeout) override {
    abandon();
    result_.reset();
    timeout_ = timeout;
    deadline_ = Clock::now() + timeout;
    auto to = DatagramHost::resolve(host_, port_);
    if (!to) {
      result_ = Error{Errc::peer_gone, "cannot connect to " + url_ + ": " + to.error().message()};
      return;
    }
    try {
      (void)t_.client_host();
    } catch (const network_error& e) {
      result_ = Error{Errc::peer_gone, "cannot connect to " + url_ + ": " + e.error().message()};
      return;
    }
    to_ = *to;
    nonce_ = secure::random_u64();
    step_ = Step::challenging;
    t_.challenging_.push_back(this);
    resend_at_ = Clock::time_point{};  // now
    advance();
  }
  bool busy() const override { return step_ != Step::idle; }
  std::optional<Result<std::unique_ptr<Connection>>> take() override {
    if (!result_ && step_ != Step::idle && Clock::now() >= deadline_) {
      const Step was = step_;
      abandon();
      result_ = Error{Errc::peer_gone,
                      "cannot connect to " + url_ + ": " +
                          (was == Step::challenging ? "no answer to the challenge"
                           : was == Step::proving   ? "the shared-key handshake did not finish"
                                                    : "no answer") +
                          " within " + std::to_string(timeout_.count()) + " ms (DatagramOptions::connect_timeout)"};
    }
    return std::exchange(result_, std::nullopt);
  }
  const std::string& url() const noexcept override { return url_; }
  Clock::time_point next_deadline() const override {
    if (step_ == Step::idle) return Clock::time_point::max();
    return step_ == Step::challenging ? std::min(deadline_, resend_at_) : deadline_;
  }

  // The transport's service(), after the hosts ran: resends the challenge when due; reads K2.
  void advance() {
    if (step_ == Step::challenging && Clock::now() >= resend_at_) {
      t_.client_host().send_challenge(to_, nonce_);
      resend_at_ = Clock::now() + std::chrono::milliseconds(250);
    } else if (step_ == Step::proving) {
      prove();
    }
  }
  // A challenge reply from `from`: true if it is ours (then the ENet connect starts).
  bool challenge_reply(UdpAddress from, std::span<const std::byte> reply) {
    if (step_ != Step::challenging || !(from == to_)) return false;
    auto cookie = secure::read_challenge_reply(reply, nonce_);
    if (!cookie) return false;
    auto r = t_.client_host().dial(to_, *cookie);
    if (!r) {
      finish(Error{Errc::peer_gone, "cannot connect to " + url_ + ": " + r.error().message()});
      return true;
    }
    step_ = Step::connecting;
    pending_ = *r;
    t_.dials_[pending_] = this;
    return true;
  }

  // The client host's events for this dial (DatagramTransport::on_host_event).
  void connected(DatagramHost& host) {
    conn_ = std::make_unique<DatagramConn>(host, pending_);
    t_.dials_.erase(pending_);
    pending_ = nullptr;
    if (t_.keys().empty()) return finish(std::move(conn_));
    conn_->begin_handshake();
    hs_.emplace(t_.keys().front());
    step_ = Step::proving;
    if (auto r = conn_->send_handshake(hs_->hello()); !r) return finish(failed(r.error().message()));
  }
  void failed(std::uint32_t code) {
    t_.dials_.erase(pending_);
    pending_ = nullptr;
    finish(Error{Errc::peer_gone, "cannot connect to " + url_ + ": " +
                                      (code == datagram_code::full      ? std::string("the server has max_peers peers")
                                       : code == datagram_code::timeout ? std::string("no answer (nothing listens there, or its host is full)")
                                                                        : "refused (disconnect code " + std::to_string(code) + ")")});
  }

 private:
  Error failed(const std::string& why) const { return Error{Errc::peer_gone, "cannot connect to " + url_ + ": " + why}; }

  // Reads K2 (or a refusal) and answers K3; the connection is sealed from then on.
  void prove() {
    if (auto why = conn_->failure())
      return finish(failed(why->message() + " during the shared-key handshake (a listener without "
                                            "DatagramOptions::keys refuses it)"));
    auto reply = conn_->take_handshake_packet();
    if (!reply) return;
    if (!secure::is_k2_magic(*reply) && !secure::is_refusal_magic(*reply))
      return finish(Error{Errc::not_admitted, "cannot connect to " + url_ +
                                                  ": it does not speak the shared-key handshake (does it listen with "
                                                  "DatagramOptions::keys?)"});
    auto done = hs_->on_reply(*reply);
    if (!done) return finish(Error{done.error().code, "cannot connect to " + url_ + ": " + done.error().detail});
    if (auto r = conn_->send_handshake(done->second); !r) return finish(failed(r.error().message()));
    conn_->seal_with(done->first);
    finish(std::move(conn_));
  }

  void finish(Result<std::unique_ptr<DatagramConn>> r) {
    const bool ok = r.has_value();
    if (ok) result_ = std::unique_ptr<Connection>(std::move(*r));
    else result_ = r.error();
    conn_.reset();  // a failed attempt's connection disconnects
    hs_.reset();
    leave();
    step_ = Step::idle;
    if (ok) intake_.dialed(*this);  // our hello leaves with ENet's acknowledgement of the connect
  }
  void leave() { t_.challenging_.remove(this); }
  void abandon() {
    leave();
    if (pending_) {
      t_.dials_.erase(pending_);
      t_.client_host().drop_now(pending_, datagram_code::closed);
      pending_ = nullptr;
    }
    conn_.reset();
    hs_.reset();
    step_ = Step::idle;
  }

  DatagramTransport& t_;
  PeerIntake& intake_;
  std::string host_;
  std::uint16_t port_;
  std::string url_;
  std::chrono::milliseconds timeout_{0};
  Step step_ = Step::idle;
  UdpAddress to_{};
  std::uint64_t nonce_ = 0;
  Clock::time_point resend_at_{};
  _ENetPeer* pending_ = nullptr;
  std::unique_ptr<DatagramConn> conn_;  // proving: the ENet connection in the handshake
  std::optional<secure::ClientHandshake> hs_;
  Clock::time_point deadline_{};
  std::optional<Result<std::unique_ptr<Connection>>> result_;
};

std::unique_ptr<Dialer> DatagramTransport::dialer(std::string_view host, std::uint16_t port, PeerIntake& intake) {
  return std::make_unique<EnetDialer>(*this, intake, host, port);
}

void DatagramTransport::service() {
  if (listener_) listener_->service();
  if (dialer_) dialer_->service();
  // Steps that follow what the hosts received (a copy: a step may finish and leave the list).
  const std::vector<EnetDialer*> dials(challenging_.begin(), challenging_.end());
  for (EnetDialer* d : dials)
    if (std::find(challenging_.begin(), challenging_.end(), d) != challenging_.end()) d->advance();
  for (auto it = proving_.begin(); it != proving_.end();) {
    auto next = std::next(it);
    advance(*it);
    it = next;
  }
}

bool DatagramTransport::on_challenge_reply(DatagramHost& host, std::uint32_t address, std::uint16_t port,
                                           std::span<const std::byte> reply) {
  if (&host != dialer_.get()) return false;
  for (EnetDialer* d : challenging_)
    if (d->challenge_reply(UdpAddress{address, port}, reply)) return true;
  return false;
}

// Advances a listener's handshake: K1 -> K2, K3 -> the lifecycle's connection; or a refusal.
void DatagramTransport::advance(Proving& p) {
  auto erase = [&] { proving_.remove_if([&](const Proving& q) { return &q == &p; }); };
  if (auto why = p.conn->failure()) {
    ++authentication_failures_;
    intake_->rejected(p.address, Error{Errc::not_admitted, "shared-key handshake failed: " + why->message()});
    return erase();
  }
  for (auto packet = p.conn->take_handshake_packet(); packet; packet = p.conn->take_handshake_packet()) {
    if (!p.hello_done) {
      if (!secure::is_k1_magic(*packet))
        return refuse(p, "the other end sent no shared-key hello (a sage peer without DatagramOptions::keys, or another protocol)",
                      secure::KeyRefusal::version);
      const auto size = secure::k1_size(*packet);
      if (!size || *size != packet->size())
        return refuse(p, "a shared-key hello of the wrong size", secure::KeyRefusal::version);
      const std::string id(reinterpret_cast<const char*>(packet->data() + secure::magic_bytes + 1),
                           packet->size() - secure::k1_fixed);
      if (std::none_of(keys_.begin(), keys_.end(), [&](const auto& k) { return k.id == id; }))
        return refuse(p, "unknown key id", secure::KeyRefusal::unknown_key);
      auto k2 = p.hs.on_hello(*packet, keys_);
      if (!k2) return refuse(p, k2.error().detail, secure::KeyRefusal::bad_proof);
      (void)p.conn->send_handshake(*k2);
      p.hello_done = true;
      continue;
    }
    auto keys = p.hs.on_finish(*packet);
    if (!keys) return refuse(p, keys.error().detail, std::nullopt);
    p.conn->seal_with(*keys);
    std::unique_ptr<DatagramConn> conn = std::move(p.conn);
    const std::string address = p.address;
    erase();
    if (intake_->admit(address)) {
      conn->disconnect_later(datagram_code::full);
      lingering_.push_back(std::move(conn));
      return;
    }
    return intake_->accepted(std::move(conn));
  }
  if (Clock::now() >= p.deadline)
    return refuse(p, "not finished within " + std::to_string(options_.hello_timeout.count()) + " ms (hello_timeout)",
                  std::nullopt);
}

void DatagramTransport::refuse(Proving& p, std::string why, std::optional<secure::KeyRefusal> code) {
  ++authentication_failures_;
  intake_->rejected(p.address, Error{Errc::not_admitted, "shared-key handshake failed: " + std::move(why)});
  if (code) (void)p.conn->send_handshake(secure::refusal_bytes(*code));
  p.conn->disconnect_later(datagram_code::closed);  // after the refusal left
  lingering_.push_back(std::move(p.conn));
  proving_.remove_if([&](const Proving& q) { return &q == &p; });
}

void DatagramTransport::on_host_event(DatagramHost& host, const HostEvent& ev) {
  if (ev.kind == HostEvent::Kind::disconnected) {
    if (ev.had_conn) {  // the connection failed (its failure() says why); its owner drops it
      if (ev.data == datagram_code::timeout) ++timeouts_;
      std::erase_if(lingering_, [](const auto& c) { return c->failure().has_value(); });
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
  // The connect carried a cookie this listener gave to its address (DatagramHost::intercept).
  const std::string from = DatagramHost::address_of(ev.peer);
  if (!keys_.empty()) {
    auto conn = std::make_unique<DatagramConn>(host, ev.peer);
    conn->begin_handshake();
    proving_.push_back(Proving{std::move(conn), from, {}, false, Clock::now() + options_.hello_timeout});
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

// The stream transport of the peer lifecycle (runtime/network/peer_transport.hpp): tcp:// on
// sage's own sockets (transport/tcp.hpp), tls+tcp:// on nng's streams (transport/stream.hpp).
#include "network/peer_transport.hpp"

#include <unistd.h>

#include <algorithm>

#include "channel/protocol.hpp"
#include "secure/keys.hpp"
#include "transport/frame.hpp"
#include "transport/stream.hpp"
#include "transport/tcp.hpp"

namespace sage::detail {

namespace {

class StreamTransport final : public PeerTransport {
 public:
  StreamTransport(const NetworkOptions& options, std::shared_ptr<Waker> waker)
      : options_(options), waker_(std::move(waker)) {}

  Endpoint listen(std::string_view host, std::uint16_t port, PeerIntake& intake) override {
    if (options_.tls.enabled) {
      auto l = StreamListener::open(url(host, port), tls(false, host), limits(), waker_);
      if (!l) throw network_error(l.error());
      listener_ = std::move(*l);
    } else {
      auto l = TcpListener::open(host, port, limits(), waker_, keys());
      if (!l) throw network_error(l.error());
      listener_ = std::move(*l);
    }
    intake_ = &intake;
    return Endpoint{std::string(host), listener_->port(), url(host, listener_->port())};
  }

  std::unique_ptr<Dialer> dialer(std::string_view host, std::uint16_t port, PeerIntake&) override {
    if (options_.tls.enabled) {
      auto d = StreamDialer::open(url(host, port), tls(true, host), limits(), waker_);
      if (!d) throw network_error(d.error());
      return std::move(*d);
    }
    auto d = TcpDialer::open(host, port, limits(), waker_, keys());
    if (!d) throw network_error(d.error());
    return std::move(*d);
  }

  void service() override {
    if (!listener_) return;
    for (auto& c : listener_->take_accepted()) {
      if (auto why = intake_->admit(c->remote_address())) refuse(std::move(c), *why);
      else intake_->accepted(std::move(c));
    }
    reap_refused();
    for (auto& [address, why] : listener_->take_refused()) {
      ++authentication_failures_;
      intake_->rejected(address, why);
    }
  }

  Clock::time_point next_deadline() const override {
    Clock::time_point t = listener_ ? listener_->next_deadline() : Clock::time_point::max();
    for (const auto& r : refusing_) t = std::min(t, r.until);
    return t;
  }
  void start_close(Connection&, CloseReason) override {}  // closed when destroyed, once drained
  bool drained(const Connection& conn) const override { return conn.pending_bytes() == 0; }
  void stop_accepting() override {
    if (listener_) accept_errors_ = listener_->accept_errors();
    listener_.reset();
    refusing_.clear();
  }
  TransportCounters counters() const override {
    return {.accept_errors = listener_ ? listener_->accept_errors() : accept_errors_,
            .authentication_failures = authentication_failures_};
  }
  std::string url(std::string_view host, std::uint16_t port) const override {
    return stream_url(host, port, options_.tls.enabled);
  }

 private:
  // A connection past max_peers (or max_peers_per_address): it gets our hello (no schema table)
  // and an error record of kind `full` with the reason, so the client can say why instead of
  // seeing a bare close (docs/wire-format.md "Handshake"), then it is closed. A plain TCP socket
  // takes the few bytes at once; one still writing (TLS) is kept until they left, at most 1 s and
  // at most max_refusing at a time (past that it is closed without them).
  void refuse(std::unique_ptr<Connection> c, const Error& why) {
    namespace proto = protocol;
    proto::Hello hello;
    hello.name = options_.name;
    hello.pid = static_cast<std::uint32_t>(::getpid());
    hello.schema_fingerprint = proto::schema_fingerprint({});
    std::vector<std::byte> body;
    proto::append_control(body, proto::Control::hello, proto::encode_hello(hello));
    proto::append_control(body, proto::Control::error, proto::encode_error({proto::ErrorKind::full, why.detail}));
    if (!c->send(body) || c->pending_bytes() == 0 || refusing_.size() >= max_refusing) return;  // closed here
    refusing_.push_back({std::move(c), Clock::now() + std::chrono::seconds(1)});
  }
  void reap_refused() {
    const auto now = Clock::now();
    std::erase_if(refusing_, [&](const Refusing& r) {
      return r.conn->pending_bytes() == 0 || r.conn->failure() || now >= r.until;
    });
  }

  KeyOptions keys() const {
    KeyOptions k;
    k.keys = named_keys(options_.keys);
    k.handshake_timeout = options_.hello_timeout;
    k.max_handshakes = options_.max_handshakes;
    k.max_handshakes_per_address = options_.max_handshakes_per_address;
    return k;
  }
  ConnectionLimits limits() const {
    ConnectionLimits l;
    l.max_message_size = options_.max_message_size;
    // The channel enforces send_buffer_limit on records; the stream's own bound only backs it up.
    l.max_pending_bytes = options_.send_buffer_limit + options_.max_message_size + frame_header_size;
    l.max_inbox_bytes = options_.receive_buffer_limit;
    l.batch_size = stream_batch_bytes;
    return l;
  }
  TlsSettings tls(bool dialing, std::string_view host) const {
    TlsSettings t;
    t.enabled = options_.tls.enabled;
    t.cert_file = options_.tls.cert_file;
    t.key_file = options_.tls.key_file;
    t.ca_file = options_.tls.ca_file;
    t.verify_peer = options_.tls.verify_peer;
    t.server_name = options_.tls.server_name.empty() && dialing ? std::string(host) : options_.tls.server_name;
    return t;
  }

  NetworkOptions options_;
  std::shared_ptr<Waker> waker_;
  std::unique_ptr<Listener> listener_;
  PeerIntake* intake_ = nullptr;
  std::uint64_t accept_errors_ = 0;
  std::uint64_t authentication_failures_ = 0;
  struct Refusing {
    std::unique_ptr<Connection> conn;
    Clock::time_point until;
  };
  static constexpr std::size_t max_refusing = 16;
  std::vector<Refusing> refusing_;  // refused connections whose reason is still being written
};

}  // namespace

std::unique_ptr<PeerTransport> make_stream_transport(const NetworkOptions& options, std::shared_ptr<Waker> waker) {
  return std::make_unique<StreamTransport>(options, std::move(waker));
}

}  // namespace sage::detail

// runtime/transport/stream.hpp: the TLS Connection of the network: framed byte streams over
// nng's stream API, tls+tcp:// (docs/wire-format.md "TCP framing"). It also speaks plain tcp://
// (its tests use that), but the network's tcp:// runs on sage's own sockets (transport/tcp.hpp).
//
// A StreamConn is one TCP (or TLS) connection carrying frames (transport/frame.hpp): an 8-byte
// frame header, then a body of `length` bytes (a transport message made of wire records). It knows nothing about
// records, peers or actors. This header does not include nng.
//
// Threads: every member is called by the thread that owns the object (the manager's thread).
// nng's threads only run the completion callbacks, which touch nothing but the object's
// mutex-protected state and then notify the Waker (nng streams have no readiness fd).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "transport/connection.hpp"
#include "transport/frame.hpp"
#include "sage/result.hpp"

namespace sage::detail {

struct TlsSettings {
  bool enabled = false;
  std::string cert_file;    // PEM certificate (chain) of this end; required to listen
  std::string key_file;     // PEM private key matching cert_file
  std::string ca_file;      // PEM CA certificates to verify the other end with ("" = do not verify)
  std::string server_name;  // dialer: the name the server's certificate must carry ("" = host)
  bool verify_peer = true;  // dialer: require a valid server certificate (needs ca_file)
};

// "tcp://host:port" or "tls+tcp://host:port" (IPv6 hosts get brackets).
std::string stream_url(std::string_view host, std::uint16_t port, bool tls);

class StreamConn final : public Connection {
 public:
  ~StreamConn() override;  // closes the connection; frames not yet written are lost (see wait_sent())

  // The body becomes one frame (limits().max_message_size is the largest frame body).
  Result<void> send(std::span<const std::byte> body, Delivery delivery = {}) override;
  std::size_t pending_bytes() const override;
  std::size_t received_bytes() const override;
  bool wait_sent(Clock::time_point deadline) override;
  std::optional<Error> failure() const override;
  Clock::duration idle_for() const override;
  Clock::duration partial_for() const override;
  const std::string& remote_address() const noexcept override;
  const ConnectionLimits& limits() const noexcept override;
  void close() override;
  void pause_receiving(bool paused) override;
  // Test hook: bytes of capacity its read and write buffers hold now.
  std::size_t buffer_capacity() const;

  struct Impl;
  explicit StreamConn(std::unique_ptr<Impl> impl);

 private:
  std::size_t receive_impl(std::size_t max, void (*fn)(void*, std::span<const std::byte>), void* ctx) override;
  std::unique_ptr<Impl> impl_;
};

// Accepts connections on a tcp:// or tls+tcp:// URL.
class StreamListener final : public Listener {
 public:
  // Errc::io_error if the address cannot be bound (in use, not local) or TLS files are bad.
  static Result<std::unique_ptr<StreamListener>> open(const std::string& url, const TlsSettings& tls,
                                                      const ConnectionLimits& limits, std::shared_ptr<Waker> waker);
  ~StreamListener() override;
  std::uint16_t port() const noexcept override;
  std::vector<std::unique_ptr<Connection>> take_accepted() override;
  std::uint64_t accept_errors() const override;

  struct Impl;

 private:
  explicit StreamListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Dials a tcp:// or tls+tcp:// URL, one attempt at a time, asynchronously.
//
// Teardown order: nng 1.5.2's TCP connection holds a reference on the nng dialer that made it,
// dropped by nng's reaper thread when the connection is freed; whichever of the dialer's free and
// that drop comes last destroys the dialer's mutex, synchronised only by atomics inside the
// (uninstrumented) libnng, so ThreadSanitizer reports a race when the connection was freed first.
// So the nng dialer never outlives a connection it made: take() frees it as soon as it hands out
// a connection (the connection is freed later, through nng's reap queue, whose mutex orders the
// two), and start() makes a new one for the next attempt.
class StreamDialer final : public Dialer {
 public:
  static Result<std::unique_ptr<StreamDialer>> open(const std::string& url, const TlsSettings& tls,
                                                    const ConnectionLimits& limits, std::shared_ptr<Waker> waker);
  ~StreamDialer() override;
  void start(std::chrono::milliseconds timeout) override;
  bool busy() const override;
  std::optional<Result<std::unique_ptr<Connection>>> take() override;
  const std::string& url() const noexcept override;

  struct Impl;

 private:
  explicit StreamDialer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether nng's TLS engine works in this build (nng_tls_config_alloc succeeds); `why` says why not.
bool tls_available(std::string* why = nullptr);

}  // namespace sage::detail

// runtime/channel/channel.hpp: the sage protocol over one Connection, implemented once for process
// groups and the network (docs/wire-format.md).
//
// A Channel batches outgoing records (one transport message per flush, split at the size limit),
// sends and checks the hello, tags relayed records with route/from, and reads incoming transport
// messages record by record: control records it owns (hello, route, from) are handled here; the
// others (bye, error, heartbeat, join...) go to its owner through ChannelEvents; user records are
// relayed through the Directory or decoded through its codec table and queued in the Manager.
//
// Positions: `hub` is the main group's end of a group channel (to a child or a remote group node),
// `spoke` the child's or node's end (to the main group), `peer` a plain network peer. A spoke tags
// records with their destination (route), the hub with their origin (from); the hub relays a
// record whose destination is another group.
//
// Ownership: the owner (a lifecycle owner: runtime/groups, runtime/network) owns the Channel, the
// Channel owns its Connection. Threads: the manager's thread only.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "channel/directory.hpp"
#include "channel/protocol.hpp"
#include "schema/description.hpp"
#include "sage/sender.hpp"
#include "transport/connection.hpp"

namespace sage {
class Manager;
}

namespace sage::detail {

class Channel;

// Why reading a channel stops for good: the owner drops or fails it.
struct Stop {
  Error error;
  bool bad = false;  // bad input (counted and logged), else a clean or expected end
};
using Verdict = std::optional<Stop>;

// Counters a lifecycle owner keeps for all its channels (its GroupStats / NetworkStats).
struct ChannelCounters {
  std::uint64_t records_sent = 0;   // user records this manager sent (Channel::send; relays not counted)
  std::uint64_t messages_sent = 0;  // transport messages (frames)
  std::uint64_t messages_received = 0;
  std::uint64_t records_received = 0;  // user records decoded and queued here
  std::uint64_t records_relayed = 0;   // user records forwarded to another group (hub)
  std::uint64_t undeliverable = 0;     // ... for a group that does not exist or lacks the type (logged once per channel)
  std::uint64_t relays_refused = 0;    // ... between two groups whose schemas disagree about the type (hub; negotiate)
  std::uint64_t bad_input = 0;
  std::string last_bad_input;
};

// The owner's side of a channel. Called on the manager's thread while the channel reads.
class ChannelEvents {
 public:
  virtual ~ChannelEvents() = default;
  // The peer's hello arrived; `check` is the policy's verdict on it (Channel::Config::check).
  virtual Verdict on_hello(Channel& channel, const protocol::Hello& theirs, const Result<void>& check) = 0;
  // A control record the channel does not handle itself.
  virtual Verdict on_control(Channel& channel, protocol::Control control, std::span<const std::byte> payload) = 0;
};

class Channel {
 public:
  enum class Position : std::uint8_t { hub, spoke, peer };
  // The hello check: Ok, or why `theirs` cannot talk to `mine`. Process groups use the exact check.
  using CheckPolicy = Result<void> (*)(const protocol::Hello& mine, const protocol::Hello& theirs,
                                       std::string_view my_name, std::string_view their_name);

  struct Config {
    Position position = Position::peer;
    std::string peer_name;    // hub: the spoke's group; spoke: main_group; peer: set from its hello
    std::string label;        // the other end in messages: "group 'chefs'", "peer 127.0.0.1:5000"
    std::string self_label;   // this end in messages: "the main group", "group 'chefs'", "this node"
    Sender sender{};          // hub and peer: the Sender of its records (spoke: from each record's origin)
    bool drop_on_bad_input = false;  // network: bad input ends the connection; groups: count, log once per kind
    std::size_t send_buffer_limit = std::size_t{8} << 20;  // batch + connection's pending bytes
    std::string_view options_name = "NetworkOptions";       // named in limit errors
    CheckPolicy check = &protocol::check_compatible;
    // Network peers and remote groups: the hello carries the schema description (checked by
    // `check`, normally protocol::check_negotiated), types registered later are announced, a user
    // record of a type the other end does not know is refused at append(), and records appended
    // before the other end's hello are held until it arrives (docs/network.md "Schema evolution").
    bool negotiate = false;
  };

  Channel(Config config, Directory& directory, ChannelEvents& events, ChannelCounters& counters);
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Takes a (new) connection: forgets the batch and the hello state; our hello is queued as the
  // first record and leaves with the next flush(). `hello_name` is the name we give ourselves.
  void attach(std::unique_ptr<Connection> connection, std::string hello_name);
  // Closes and destroys the connection (what was not taken by the transport is lost).
  void detach() noexcept;
  Connection* connection() const noexcept { return conn_.get(); }

  // ---- sending ----
  // Appends a user record. `tag`: spoke: the destination group ("" = the main group); hub: the
  // origin group ("" = the main group); peer: "". Fails with too_large, send_buffer_full,
  // peer_gone (no connection) or incompatible (negotiate: the other end does not know the type)
  // and then has appended nothing.
  Result<void> append(std::uint8_t packet_type, std::span<const std::byte> payload, std::string_view tag = {});
  // append() of a record this manager sends (counted in records_sent).
  Result<void> send(std::uint8_t packet_type, std::span<const std::byte> payload, std::string_view tag = {}) {
    auto r = append(packet_type, payload, tag);
    if (r) ++counters_.records_sent;
    return r;
  }
  // Datagram peers: a record for another delivery mode or channel than the default (reliable,
  // channel 0) goes into a batch of its own (a lane), sent with that Delivery; unreliable lanes
  // are split at the connection's unreliable_batch_size. The same checks as append() (negotiate:
  // held until the other end's hello, refused if it does not know the type). Control records and
  // the hello always travel reliable on channel 0, so a lane's records can arrive before our
  // hello: the transport holds reliable ones until it and drops unreliable ones (their loss is
  // allowed). Peer position only.
  Result<void> send(std::uint8_t packet_type, std::span<const std::byte> payload, Delivery delivery);
  // Appends a control record (no limit checks beyond the message size; a full batch is flushed).
  void append_control(protocol::Control control, std::span<const std::byte> payload = {});
  // Hands the batch to the connection as one transport message (our hello first, if pending),
  // then each lane's batch with its Delivery.
  Result<void> flush();
  bool has_batch() const noexcept;
  Clock::time_point last_sent() const noexcept { return last_sent_; }
  // Bytes appended and not yet taken by the transport.
  std::size_t pending_bytes() const noexcept;

  // ---- receiving ----
  // Handles the transport messages waiting, oldest first. Returns why the channel must stop (the
  // owner drops it), or nullopt.
  Verdict receive(Manager& manager) { return receive(manager, SIZE_MAX); }
  // A tick's read: stops once `budget` bytes were taken (at least one message is, so at most
  // budget + one transport message - 1 bytes), leaving the rest in the connection, whose inbox
  // limit then stops the transport reading (back-pressure to the sender). When it stopped there,
  // more_waiting() is true until the next call: the owner asks for a tick at once (next_deadline).
  // An owner dropping the connection reads with receive(manager) first, so nothing accepted is lost.
  Verdict receive(Manager& manager, std::size_t budget);
  // receive() with the tick's budget: the connection's max_inbox_bytes (GroupOptions /
  // NetworkOptions::receive_buffer_limit), or everything once the connection failed (what arrived
  // before the failure is not lost when the owner drops it).
  Verdict receive_tick(Manager& manager) {
    if (!conn_) return receive(manager, SIZE_MAX);
    return receive(manager, conn_->failure() ? SIZE_MAX : conn_->limits().max_inbox_bytes);
  }
  bool more_waiting() const noexcept { return more_waiting_; }
  bool hello_received() const noexcept { return hello_received_; }
  // negotiate: whether the other end's hello or announces listed `packet_type`. A type without a
  // schema_description (a hand-written WireMessage) cannot be negotiated: it is sent unchecked,
  // as before negotiation (the receiver decodes it if it registered that packet_type).
  bool peer_knows(std::uint8_t packet_type) const noexcept {
    if (peer_types_[packet_type]) return true;
    const WireCodec* c = dir_.codec(packet_type);
    return c && c->schema_description.empty();
  }
  // negotiate: records appended before the other end's hello that it turned out not to know
  // (not sent, logged); the owner adds them to its stats.
  std::uint64_t take_unknown_dropped() noexcept { return std::exchange(unknown_dropped_, 0); }

  const Config& config() const noexcept { return config_; }
  const std::string& peer_name() const noexcept { return config_.peer_name; }
  void set_peer_name(std::string name) { config_.peer_name = std::move(name); }
  const std::string& label() const noexcept { return config_.label; }
  void set_label(std::string label) { config_.label = std::move(label); }
  void set_sender(Sender s) noexcept { config_.sender = s; }
  // A network peer that joined as a remote group becomes the hub's end of a group channel.
  void set_position(Position p) noexcept { config_.position = p; }
  // Records bad input: counted; logged once per kind (groups) or always (network: it ends the connection).
  void note_bad_input(const Error& e);

 private:
  struct Lane {
    Delivery delivery;
    std::vector<std::byte> batch;
    std::vector<std::byte> early;  // negotiate: records sent before the other end's hello
  };
  Error too_large(std::size_t payload_size, std::size_t limit) const;
  Error buffer_full(std::size_t waiting) const;
  Error unknown_to_peer(std::uint8_t packet_type) const;
  Result<void> hold_early(std::vector<std::byte>& early, std::uint8_t packet_type, std::span<const std::byte> payload);
  Result<void> append_lane(std::uint8_t packet_type, std::span<const std::byte> payload, Delivery delivery);
  Result<void> flush_lane(Lane& lane);
  Result<void> flush_default();
  Verdict handle(Manager& manager, std::span<const std::byte> body);
  Verdict on_record(Manager& manager, const wire::Record& rec, std::string& tag);
  Verdict bad(Error e);
  void relay(const std::string& to, const wire::Record& rec);
  Result<void> relay_check(const Channel& to, std::uint8_t packet_type);
  Verdict on_announce(std::span<const std::byte> payload);
  void accept_peer_types(const std::vector<protocol::SchemaEntry>& entries);
  void release_early();
  void announce_new_types();

  Config config_;
  Directory& dir_;
  ChannelEvents& events_;
  ChannelCounters& counters_;
  std::unique_ptr<Connection> conn_;
  std::vector<std::byte> batch_;
  std::string batch_tag_;  // the tag in force at the batch's end ("" = the main group)
  std::vector<Lane> lanes_;  // datagram peers: batches of other deliveries than the default
  std::string hello_name_;
  bool hello_pending_ = false;
  bool more_waiting_ = false;  // the last receive() stopped at its budget
  bool hello_received_ = false;
  Clock::time_point last_sent_ = Clock::now();
  std::set<Errc> logged_;
  bool relay_logged_ = false;
  // negotiate
  std::array<bool, 256> peer_types_{};  // types the other end knows (its hello and announces)
  std::array<bool, 256> told_{};        // types we described (our hello and announces)
  std::uint64_t told_generation_ = 0;   // Directory::generation() when told_ was last brought up to date
  protocol::Hello peer_hello_;
  std::vector<std::byte> early_;        // user records appended before the other end's hello
  std::uint64_t unknown_dropped_ = 0;
  // negotiate, relaying (hub): the other end's description (hello + announces) and a number that
  // names this connection's handshake (unique in the process), and the relay verdicts per
  // destination handshake and type (0 unknown, 1 relayed, 2 refused), computed once each.
  schema::Description peer_desc_;
  std::size_t announced_bytes_ = 0;     // description bytes of the other end's announces, bounded
  std::uint64_t handshake_id_ = 0;
  struct RelayVerdicts {
    std::uint64_t to = 0;
    std::array<std::uint8_t, 256> verdict{};
  };
  std::vector<RelayVerdicts> relay_verdicts_;
};

}  // namespace sage::detail

// sage/manager.hpp: the per-process hub that holds actors and dispatches messages to them.
//
//   sage::Manager manager;
//   Player player;
//   manager.register_actor(player, "player");
//   manager.queue_message(BombMessage{10});   // delivered at the next tick
//   manager.trigger(BombMessage{10});         // delivered now; returns whether it was consumed
//   while (running) { manager.tick(); manager.wait_for_next_tick(33ms); }
//
// A Manager is a resource (not copyable or movable) used from one thread, the one that ticks it;
// every member function below must be called on that thread unless it says otherwise. Managers are
// independent: they share no state except a process-wide counter that keeps ActorIds unique.
//
// Delivery order and timing:
//  - queue_message*(): FIFO across all types; delivered by the next tick() that starts after the
//    call (a message queued while a tick dispatches waits for the following tick).
//  - trigger*(): delivered before the call returns, nested inside any dispatch in progress.
//  - queue_message*() and trigger*() never encode: a message of any depth (a recursive schema
//    type nested past sage::wire::max_message_depth included) is delivered locally as it is. Only
//    sends to another group or peer encode, and refuse a too-deep message there (Errc::too_deep).
//  - one message goes to its subscribers in order of priority (higher first), then registration
//    order, until a handler returns true (consumed). Wildcard subscribers see it first.
// Mutation during a dispatch (inside a handler, coroutine or update()):
//  - register_actor(): the actor is findable at once and receives messages whose dispatch starts
//    after the outermost dispatch in progress returns (the next message of the tick).
//  - unregister_actor() (even of the actor being called): it receives nothing further, not even
//    later subscribers' turn of the current message; the actor may be destroyed right away.
// Starting groups and networking from inside a tick (a handler, update() or a coroutine):
//  - add_process_group(), listen(), connect(), join_as_group() and enable_network() work there as
//    anywhere; what they start takes part from the end of the current dispatch on: the new link or
//    connection is flushed with this tick's messages (its hello first) and read from the next tick.
//    connect() and join_as_group() block the tick until connected, as they do outside one.
//  - enable_groups() must still run before any thread or network use (first thing in main()).
// Waiting: wait_for_next_tick() sleeps in one poll() over every link, connection and timer of this
// manager (heartbeat rounds, reconnect attempts): an idle manager wakes only when its interval
// ends, something arrives, or a timer is due.
// Errors: caller bugs throw sage::usage_error subclasses (sage/errors.hpp). An exception thrown by a
// handler, coroutine, update() or pump propagates out of tick()/trigger*() unchanged; the message
// being dispatched counts as delivered (later subscribers of it are skipped), every other queued
// message stays queued in order, and the next tick() carries on from there. Local resource
// failures (out of fds, fork failed) are expected failures: spawn_error, network_error with
// Errc::io_error.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "sage/actor.hpp"
#include "sage/actor_id.hpp"
#include "sage/any_message.hpp"
#include "sage/detail/generated.hpp"
#include "sage/detail/message_type.hpp"
#include "sage/detail/record_queue.hpp"
#include "sage/errors.hpp"
#include "sage/groups.hpp"
#include "sage/message.hpp"
#include "sage/datagram.hpp"
#include "sage/network.hpp"
#include "sage/sender.hpp"
#include "sage/task.hpp"

namespace sage {

namespace detail {
class Pump;
class Waker;
class Directory;
class GroupPump;
class ChildPump;
class NetPump;
class DatagramPump;
struct ManagerAccess;
struct ViewAccess;
}  // namespace detail

// A message argument of the typed verbs: a Message that is not a string (strings name ad hoc messages).
template <class M>
concept TypedMessage = Message<std::remove_cvref_t<M>> && !std::is_convertible_v<M, std::string_view>;

// Counters of one manager since it was created.
struct ManagerStats {
  std::uint64_t queued = 0;      // messages accepted by queue_message*()
  std::uint64_t dispatched = 0;  // delivered by trigger*() or tick(), consumed or not (a tick adds its count when its dispatch step ends)
  std::uint64_t unhandled = 0;   // dispatched messages no handler of their type saw (dead letters)
  std::uint64_t aborted = 0;     // queued messages removed by abort_message()
};

struct ManagerOptions {
  std::uint16_t group = 0;  // group index put in the ActorIds this manager hands out (0 = main group)
};

class Manager {
 public:
  using Clock = std::chrono::steady_clock;
  using DeadLetterHandler = std::function<void(const AnyMessageRef&)>;

  Manager() : Manager(ManagerOptions{}) {}
  explicit Manager(ManagerOptions options);
  // Destroys pumps, queued messages and suspended coroutines, and unregisters every actor (actors
  // are not owned: they stay alive, unregistered). Not from inside a tick of this manager.
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // ---- actors (not owned: the caller keeps each actor alive while it is registered) ----

  // Registers `actor` under an optional unique name; returns its new id. Throws duplicate_actor_name
  // or actor_already_registered.
  ActorId register_actor(ActorBase& actor, std::string_view name = {});
  // Unregisters; throws unknown_actor if `actor` is not registered with this manager.
  void unregister_actor(ActorBase& actor);
  void unregister_actor(ActorId id);
  // The actor registered under `name` / `id`, or nullptr.
  ActorBase* find(std::string_view name) const noexcept;
  ActorBase* find(ActorId id) const noexcept;
  // The actor with `id`; throws unknown_actor.
  ActorBase& get_actor(ActorId id) const;
  // Registered actors, in registration order (a snapshot).
  std::vector<ActorBase*> actors() const;
  std::size_t actor_count() const noexcept { return by_id_.size(); }
  std::uint16_t group() const noexcept { return group_; }

  // ---- typed messages ----

  // Queues `msg` for every subscriber of its type; delivered at the next tick.
  template <TypedMessage M>
  void queue_message(M&& msg) {
    enqueue(ActorId{}, Sender::local(), std::forward<M>(msg));
  }
  // Same, with the sender it came from; what groups and transports call for decoded messages.
  template <TypedMessage M>
  void queue_message_from(M&& msg, Sender from) {
    enqueue(ActorId{}, from, std::forward<M>(msg));
  }
  // Queues `msg` for actor `id` only; throws unknown_actor. If the actor is gone by the tick, or does
  // not subscribe to the type, the message is a dead letter.
  template <TypedMessage M>
  void queue_message_to_actor(ActorId id, M&& msg) {
    queue_message_to_actor_from(id, std::forward<M>(msg), Sender::local());
  }
  template <TypedMessage M>
  void queue_message_to_actor_from(ActorId id, M&& msg, Sender from) {
    if (!find(id)) throw unknown_actor(id);
    enqueue(id, from, std::forward<M>(msg));
  }
  // Delivers `msg` now to every subscriber of its type; returns whether one consumed it.
  template <TypedMessage M>
  bool trigger(const M& msg) {
    using T = std::remove_cvref_t<M>;
    if constexpr (WireMessage<T>) {
      if (has_subscribers(detail::message_type_v<detail::Encoded<T>>)) [[unlikely]]
        return trigger_with_views(msg);
    }
    return dispatch_broadcast(note_type(detail::message_type_v<T>), &msg, Sender::local());
  }
  // Delivers `msg` now to actor `id` only; returns whether it consumed it. Throws unknown_actor.
  template <TypedMessage M>
  bool trigger_to_actor(ActorId id, const M& msg) {
    using T = std::remove_cvref_t<M>;
    const detail::MessageType& type = detail::message_type_v<T>;
    note_type(type);
    ActorBase* actor = find(id);
    if (!actor) throw unknown_actor(id);
    if constexpr (WireMessage<T>) {
      const detail::MessageType& encoded = detail::message_type_v<detail::Encoded<T>>;
      if (actor->find_subscription(encoded) != nullptr) {  // a view handler: encode once
        const auto e = detail::Encoded<T>::of(msg);
        note_type(encoded);
        return dispatch_to(id, encoded, &e, Sender::local());
      }
    }
    return dispatch_to(id, type, &msg, Sender::local());
  }
  // Removes queued (not yet dispatched) messages of type T: all of them, or only the first.
  // Returns how many were removed.
  // (A message queued for both value and view handlers counts once.)
  template <Message T>
  std::size_t abort_message(bool all = true) {
    const std::size_t values = abort_queued(detail::message_type_v<T>, all);
    if constexpr (WireMessage<T>) {
      const std::size_t views = abort_queued(detail::message_type_v<detail::Encoded<T>>, all);
      return values > views ? values : views;
    }
    return values;
  }
  // Messages queued and not yet dispatched.
  std::size_t queue_length() const noexcept { return incoming_.size() + dispatching_.size(); }

  // ---- ad hoc messages: AdHocMessage{name}, for quick signals ----
  // Each throws ad_hoc_name_conflict if `name` is a schema message's name (see is_schema_name).

  void queue_message(std::string_view name);
  void queue_message_to_actor(ActorId id, std::string_view name);
  bool trigger(std::string_view name);
  bool trigger_to_actor(ActorId id, std::string_view name);

  // Whether `name` is the name of a schema message this manager knows, fully qualified
  // ("game.BombMessage") or by its last component ("BombMessage"). The manager knows every schema
  // type that an actor it registered subscribes to, that it queued or triggered, or that was declared.
  bool is_schema_name(std::string_view name) const;
  // Declares schema message types up front (e.g. a generated type_list), so their names are refused
  // as ad hoc names before they are first used.
  template <Message... Ts>
  void declare_messages(type_list<Ts...> = {}) {
    (note_type(detail::message_type_v<Ts>), ...);
  }

  // ---- ticking ----

  // One tick: pumps poll; queued messages are dispatched (all those queued before the tick started);
  // suspended coroutine handlers resume once each; every actor's update() runs; pumps flush.
  // Returns true when the queue was flushed (always, without a budget). Throws reentrant_tick.
  bool tick();
  // Same, but stops dispatching once `max_time` has passed since the tick started (always after at
  // least one message); what is left stays queued, in order, ahead of newer messages. Coroutines
  // and update() still run. Returns whether every message queued before the tick was dispatched.
  bool tick(std::chrono::nanoseconds max_time);
  // Blocks until `interval` after the start of the last tick, or earlier when a pump reports an
  // arrival (returns true then). Returns at once if that time has passed.
  bool wait_for_next_tick(std::chrono::nanoseconds interval);
  // tick(); wait_for_next_tick(interval); until stop() returns true (checked after each tick).
  void run(std::chrono::nanoseconds interval, const std::function<bool()>& stop);

  // ---- observation and extension ----

  const ManagerStats& stats() const noexcept { return stats_; }
  // Ticks started so far.
  std::uint64_t tick_count() const noexcept { return tick_count_; }
  // Called with each dead letter (a dispatched message no handler of its type saw). Replaces the
  // previous handler; an empty function removes it.
  void set_dead_letter_handler(DeadLetterHandler handler) { dead_letter_ = std::move(handler); }
  // Suspended coroutine handlers waiting for a tick.
  std::size_t suspended_coroutines() const noexcept;

  // ---- process groups (sage/groups.hpp, docs/groups.md) ----
  // Group children are forked from a fork server that enable_groups() starts: call it first thing
  // in main(), before threads or any network use exist. A child is a copy of the program as it was then.

  // Starts the fork server and the private IPC directory. Throws usage_error if this process
  // already used the network (listen, connect, listen_datagram, connect_datagram), or groups are already enabled (always so inside a group's child process);
  // spawn_error if the IPC directory cannot be created.
  void enable_groups(const GroupsOptions& options = {});
  bool groups_enabled() const noexcept { return groups_ != nullptr || child_ != nullptr; }
  // Starts a child process named `name` whose default actor is an A (constructed from Manager&
  // if A has such a constructor, else default-constructed) registered with the child's manager.
  // Throws groups_not_enabled, group_exists, spawn_error (the child could not be started: out of
  // processes or file descriptors, the fork server died). The child starts with this manager's
  // registered wire messages (register_messages) as of this call.
  template <class A>
  void add_process_group(std::string_view name, const GroupOptions& options = {}) {
    static_assert(std::is_base_of_v<ActorBase, A>, "add_process_group<A>: A must be a sage actor");
    add_process_group(name, &detail::make_default_actor<A>, options);
  }
  // Same with a factory: a plain function (or captureless lambda) run in the child.
  void add_process_group(std::string_view name, ActorFactory factory, const GroupOptions& options = {});
  // Tells the child to finish: it handles what was sent to it, sends what it queued (delivered
  // here by the next tick), answers and exits. Blocks until then (GroupOptions::shutdown_timeout,
  // then the child is killed). Throws no_such_group; group_error if the child did not end cleanly.
  void remove_process_group(std::string_view name);
  // remove_process_group() for every group, all at once: bye to every child, then one wait for
  // all (each bounded by its shutdown_timeout). Removes them all, then throws the first
  // group_error if any child did not end cleanly.
  void clear_process_groups();
  // The groups of this main manager, in the order they were added (empty inside a child).
  std::vector<std::string> process_groups() const;
  bool has_process_group(std::string_view name) const;
  // This manager's group name: main_group, or the child's group name.
  std::string_view group_name() const;
  // The group a Sender names ("" if it names none): Sender::group(0) is main_group. A Sender keeps
  // naming its group after the group failed, was removed or restarted.
  std::string_view group_name(Sender sender) const;
  // Pid of a group's child process (for tests and tools). Throws no_such_group.
  int process_group_pid(std::string_view name) const;

  // Makes wire message types decodable here (a schema's generated type_list). A message arriving
  // from another group decodes only if its type was registered here, was sent from here, or an
  // actor registered with this manager subscribes to it (register_actor registers those itself);
  // this call is for types nobody here subscribes to yet (e.g. forwarded with a wildcard, or
  // subscribed to by actors a child creates later).
  template <WireMessage... Ts>
  void register_messages(type_list<Ts...> = {}) {
    declare_messages(type_list<Ts...>{});
    (register_wire(detail::wire_codec_v<Ts>), ...);
  }

  // Queues `msg` for group `group` (main_group, or a child's name; a child may name another
  // child: the main group relays it). Sent at the end of this tick, several messages per transport
  // message; delivered to the group's subscribers with Sender = this group. Only wire messages
  // (schema tables with a packet_type) compile. Throws groups_not_enabled, no_such_group, and
  // send_error when the message cannot be accepted (send_buffer_full, too_large; too_deep: it nests
  // deeper than sage::wire::max_message_depth tables, which no receiver accepts): nothing is
  // silently dropped.
  template <class M>
  void queue_message_to_group(std::string_view group, const M& msg) {
    if (auto r = try_queue_message_to_group(group, msg); !r) throw send_error(r.error());
  }
  // Replies to the group a received message came from. A Sender of an earlier incarnation of a
  // group (restarted since: its Sender::generation is older) is refused with send_error(peer_gone)
  // rather than reaching the new process; one of a group that is gone throws no_such_group; one
  // that names no group throws usage_error.
  template <class M>
  void queue_message_to_group(Sender group, const M& msg) {
    if (auto r = try_queue_message_to_group(group, msg); !r) throw send_error(r.error());
  }
  // Same, reporting peer_gone (an earlier incarnation) and the send errors as a value.
  template <class M>
  Result<void> try_queue_message_to_group(Sender group, const M& msg) {
    auto name = reply_target(group);
    if (!name) return name.error();
    return try_queue_message_to_group(*name, msg);
  }
  // Main group: the Sender the messages of group `name` carry now (Sender::generation counts its
  // restarts). Throws no_such_group.
  Sender group_sender(std::string_view name) const;
  // Same as queue_message_to_group() but reports send_buffer_full / too_large / too_deep / peer_gone /
  // incompatible (a remote group whose schemas do not have the message) as a value.
  template <class M>
  Result<void> try_queue_message_to_group(std::string_view group, const M& msg) {
    static_assert(WireMessage<M>,
                  "queue_message_to_group: only wire messages cross processes: generate the type from a schema "
                  "table with (packet_type: N)");
    const auto bytes = encode_wire(msg);
    if (!bytes) return bytes.error();
    return queue_group_record(group, detail::wire_codec_v<M>, *bytes);
  }
  // Counters of group traffic (bad input, relays, ...). Throws groups_not_enabled.
  GroupStats group_stats() const;

  // ---- network (sage/network.hpp, docs/network.md) ----
  // Any number of connections: one listener and several outgoing connections at once. Received
  // messages are queued here with Sender::peer(i) (Sender::group(i) from remote groups). Call
  // enable_groups() (if used) before any of these (TLS starts nng's threads, and the fork server
  // must not inherit network sockets). tcp:// connections are sockets read and written on this
  // manager's thread (docs/network.md).

  // Sets the network options; optional (listen/connect enable the defaults). Throws usage_error if
  // the network is already enabled.
  void enable_network(const NetworkOptions& options = {});
  bool network_enabled() const noexcept { return net_ != nullptr; }
  // Listens on tcp://host:port (tls+tcp:// with NetworkOptions::tls). Port 0 picks a free port; the
  // result holds the one bound. Throws network_error (address in use, bad TLS files...).
  Endpoint listen(std::string_view host, std::uint16_t port);
  // The address listen() bound, if it was called.
  std::optional<Endpoint> listening() const;
  // Connects to a listening manager; blocks until the TCP (and TLS) connection is up, at most
  // NetworkOptions::connect_timeout (a refused connection fails at once). A host name is resolved
  // on this thread (getaddrinfo: a numeric address never blocks, a name may take the resolver's
  // time). Returns the peer; PeerConnected follows once the other end's
  // handshake arrived. Throws network_error.
  Sender connect(std::string_view host, std::uint16_t port);
  // Closes every connection connect() made (after sending what is queued), or one peer's.
  void disconnect();
  void disconnect(Sender peer);
  // Queues `msg` for `peer`; sent at the end of this tick. Throws not_a_peer (not a peer Sender)
  // and send_error (peer_gone, too_large, too_deep, send_buffer_full; incompatible: the peer's schemas do not
  // have this message, or its handshake was refused): nothing is silently dropped.
  template <class M>
  void send_message(const M& msg, Sender peer) {
    if (auto r = try_send_message(msg, peer); !r) throw send_error(r.error());
  }
  // Same, to the one server this manager connect()ed to; throws no_server if there is not exactly one.
  template <class M>
  void send_message(const M& msg) {
    send_message(msg, network_server());
  }
  template <class M>
  Result<void> try_send_message(const M& msg, Sender peer) {
    const auto bytes = encode_for_network(msg);
    if (!bytes) return bytes.error();
    return queue_net_record(peer, detail::wire_codec_v<M>, *bytes);
  }
  // Queues `msg` for every connected peer (not remote groups; datagram peers reliably); returns how
  // many accepted it. A TCP peer whose buffer is full is handled by NetworkOptions::on_send_buffer_full,
  // the others still get the message; a peer whose schemas do not have it is skipped
  // (NetworkStats::unknown_type_skipped, DatagramStats::unknown_type_skipped). Throws send_error(too_large,
  // too_deep).
  template <class M>
  std::size_t broadcast_message(const M& msg) {
    const auto bytes = encode_for_network(msg);
    if (!bytes) throw send_error(bytes.error());
    return broadcast_net_record(detail::wire_codec_v<M>, *bytes);
  }
  // Connected and reconnecting peers (TCP and datagram).
  std::vector<PeerInfo> peers() const;
  // Throws usage_error if the network is not enabled.
  NetworkStats network_stats() const;

  // ---- datagrams (sage/datagram.hpp, docs/network.md "Datagrams") ----
  // Peers over UDP (ENet) with a Delivery per send. Their Senders are peers like TCP ones:
  // send_message(msg, peer), disconnect(peer), peers(), PeerConnected / PeerDisconnected.

  // Sets the datagram options; optional (listen_datagram/connect_datagram enable the defaults).
  // Throws usage_error if datagrams are already enabled or an option is out of range.
  void enable_datagrams(const DatagramOptions& options = {});
  bool datagrams_enabled() const noexcept { return dgram_ != nullptr; }
  // Listens on enet://host:port (IPv4; port 0 picks a free port). Throws network_error.
  Endpoint listen_datagram(std::string_view host, std::uint16_t port);
  // Starts connecting to a listening manager and returns its peer at once (a name is resolved
  // first, blocking). PeerConnected follows once both ends ticked and the handshake arrived; if it
  // never completes (no answer within DatagramOptions::connect_timeout, the server is full, the
  // schemas are incompatible) PeerDisconnected follows instead. Throws network_error.
  Sender connect_datagram(std::string_view host, std::uint16_t port);
  // send_message with a Delivery (datagram peers; a TCP peer is always reliable and ordered).
  // Throws usage_error when delivery.channel is not below DatagramOptions::channels.
  template <class M>
  void send_message(const M& msg, Sender peer, Delivery delivery) {
    if (auto r = try_send_message(msg, peer, delivery); !r) throw send_error(r.error());
  }
  template <class M>
  Result<void> try_send_message(const M& msg, Sender peer, Delivery delivery) {
    const auto bytes = encode_for_network(msg);
    if (!bytes) return bytes.error();
    return queue_net_record(peer, detail::wire_codec_v<M>, *bytes, delivery);
  }
  // The same with `delivery` for the datagram peers (TCP peers still get it, reliably). Throws
  // send_error(too_large, too_deep).
  template <class M>
  std::size_t broadcast_message(const M& msg, Delivery delivery) {
    const auto bytes = encode_for_network(msg);
    if (!bytes) throw send_error(bytes.error());
    return broadcast_datagram_record(detail::wire_codec_v<M>, *bytes, delivery);
  }
  // Throws usage_error if datagrams are not enabled.
  DatagramStats datagram_stats() const;
  // ENet's round-trip estimate to a datagram peer in ms (0 before the first acknowledgement).
  std::uint32_t datagram_round_trip_ms(Sender peer) const;

  // ---- remote groups (docs/network.md "Remote groups") ----
  // This manager becomes group `name` of the application whose main group listens at host:port:
  // the main group's queue_message_to_group(name, msg) arrives here with Sender::group(0), and
  // queue_message_to_group(sage::main_group, msg) here reaches the main group. Blocks until the
  // main group (which must be ticking) accepted. Throws network_error, usage_error.
  void join_as_group(std::string_view host, std::uint16_t port, std::string_view name);
  // Main group: the groups hosted by connected nodes.
  std::vector<std::string> remote_groups() const;
  bool has_remote_group(std::string_view name) const;

 private:
  friend class ActorBase;
  friend struct detail::ManagerAccess;
  friend struct detail::ViewAccess;
  friend void detail::adopt_task(ActorBase&, Task);

  struct Subscriber {
    ActorBase* actor;  // nullptr once unregistered during a dispatch (removed when it finishes)
    detail::Deliver deliver;
  };
  struct Observer {
    ActorBase* actor;
    detail::Observe observe;
  };
  struct TypeSlot : detail::TypeSlotHead {
    explicit TypeSlot(const detail::MessageType& t) noexcept : TypeSlotHead{&t} {}
    std::vector<Subscriber> subscribers;  // by priority, then registration order
  };
  struct Coroutine {
    Task::Handle handle;
    ActorBase* owner;  // nullptr once finished or cancelled: destroyed when no dispatch is running
    std::uint64_t adopted_in;  // tick_count() when it first suspended; resumed by later ticks only
  };
  // Marks a dispatch in progress: lists are only nulled, never resized, until the outermost ends.
  struct DispatchScope {
    explicit DispatchScope(Manager& m) noexcept : m(m), outer(m.depth_) { m.depth_ = outer + 1; }
    ~DispatchScope() {
      m.depth_ = outer;
      if (outer == 0 && m.unsettled_) m.settle();
    }
    DispatchScope(const DispatchScope&) = delete;
    DispatchScope& operator=(const DispatchScope&) = delete;
    Manager& m;
    const int outer;
  };

  // The slot of `type`, created (and schema names noted) on first use.
  TypeSlot& note_type(const detail::MessageType& type) {
    // Index 0 (not assigned yet) never has a slot, so it takes the slow path too.
    const std::uint32_t i = type.index.load(std::memory_order_acquire);
    if (i < types_.size() && types_[i]) [[likely]]
      return *types_[i];
    return add_type(type, detail::type_index(type));
  }
  TypeSlot& add_type(const detail::MessageType& type, std::uint32_t index);

  template <class M>
  void enqueue(ActorId target, Sender from, M&& msg) {
    using T = std::remove_cvref_t<M>;
    if constexpr (WireMessage<T>) {
      if (has_subscribers(detail::message_type_v<detail::Encoded<T>>)) [[unlikely]] {
        enqueue_with_views(target, from, std::forward<M>(msg));
        return;
      }
    }
    incoming_.push<T>(pool_, note_type(detail::message_type_v<T>), target, from, std::forward<M>(msg));
    ++stats_.queued;
  }
  // Whether an actor has a handler for `type` (a relaxed look, no slot is created).
  bool has_subscribers(const detail::MessageType& type) const noexcept {
    const std::uint32_t i = type.index.load(std::memory_order_relaxed);
    return i != 0 && i < types_.size() && types_[i] && !types_[i]->subscribers.empty();
  }
  // Value handlers of T get `msg` (also when nobody but wildcards would: dead-letter accounting
  // stays per value), view handlers its bytes, encoded once; a target gets the form it handles.
  template <class T>
  void enqueue_with_views(ActorId target, Sender from, T msg) {
    const detail::MessageType& encoded = detail::message_type_v<detail::Encoded<T>>;
    bool value = true;
    bool view = true;
    if (target) {
      const ActorBase* actor = find(target);
      view = actor != nullptr && actor->find_subscription(encoded) != nullptr;
      value = !view;
    } else {
      value = has_subscribers(detail::message_type_v<T>) || !observers_.empty();
    }
    auto bytes = view ? detail::Encoded<T>::of(msg) : detail::Encoded<T>{};
    if (value) {
      incoming_.push<T>(pool_, note_type(detail::message_type_v<T>), target, from, std::move(msg));
      ++stats_.queued;
    }
    if (view) {
      incoming_.push<detail::Encoded<T>>(pool_, note_type(encoded), target, from, std::move(bytes));
      ++stats_.queued;
    }
  }
  template <class T>
  bool trigger_with_views(const T& msg) {
    bool consumed = false;
    if (has_subscribers(detail::message_type_v<T>) || !observers_.empty())
      consumed = dispatch_broadcast(note_type(detail::message_type_v<T>), &msg, Sender::local());
    const auto e = detail::Encoded<T>::of(msg);
    return dispatch_broadcast(note_type(detail::message_type_v<detail::Encoded<T>>), &e, Sender::local()) || consumed;
  }

  bool dispatch_broadcast(const TypeSlot& slot, const void* data, Sender from) {
    DispatchScope scope(*this);
    ++stats_.dispatched;
    return deliver_broadcast(slot, data, from);
  }
  // dispatch_broadcast() without the bookkeeping; the caller holds a DispatchScope and counts.
  [[gnu::always_inline]] bool deliver_broadcast(const TypeSlot& slot, const void* data, Sender from) {
    if (!observers_.empty()) [[unlikely]]
      observe_all(*slot.type, data, from, ActorId{});
    return deliver_to_subscribers(slot, data, from);
  }
  // deliver_broadcast() without the wildcard subscribers (the tick loop knows there are none).
  [[gnu::always_inline]] bool deliver_to_subscribers(const TypeSlot& slot, const void* data, Sender from) {
    // Subscriber lists are not resized during a dispatch: the buffer stays put.
    const Subscriber* s = slot.subscribers.data();
    const Subscriber* const end = s + slot.subscribers.size();
    if (s == end) [[unlikely]] {
      dead_letter(*slot.type, data, from, ActorId{});
      return false;
    }
    for (; s != end; ++s) {
      if (s->actor && s->deliver(*s->actor, data, from)) return true;
    }
    return false;
  }
  bool dispatch_to(ActorId target, const detail::MessageType& type, const void* data, Sender from);
  bool deliver_to(ActorId target, const detail::MessageType& type, const void* data, Sender from);  // no bookkeeping
  void observe_all(const detail::MessageType& type, const void* data, Sender from, ActorId target);
  void dead_letter(const detail::MessageType& type, const void* data, Sender from, ActorId target);
  // Delivers a queued message taken off dispatching_, then destroys it (the tick loop's slow path).
  void dispatch_record(const TypeSlot& slot, void* data, ActorId target, Sender from);
  std::size_t abort_queued(const detail::MessageType& type, bool all) noexcept;
  void check_ad_hoc(std::string_view name) const;
  bool run_tick(bool budgeted, std::chrono::nanoseconds max_time);
  void resume_coroutines();
  void update_actors();

  void activate(ActorBase& actor);    // puts a registered actor in the dispatch lists
  void deactivate(ActorBase& actor);  // nulls it there (removed now, or when settled)
  void settle();                      // applies what a dispatch deferred; depth_ == 0
  void sort_lists();
  void priority_changed();

  std::uint16_t group_;
  std::vector<std::unique_ptr<TypeSlot>> types_;  // indexed by detail::type_index(); null = unused
  std::vector<Observer> observers_;         // wildcard subscribers, by priority
  std::vector<ActorBase*> update_order_;    // by priority, then registration order
  std::vector<ActorBase*> pending_registrations_;  // registered during a dispatch, not yet in the lists
  std::unordered_map<ActorId, ActorBase*> by_id_;
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, ActorBase*, StringHash, std::equal_to<>> by_name_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> schema_names_;
  std::vector<Coroutine> coroutines_;
  // Groups and network (runtime/): one Waker (the only place this manager sleeps), one Directory
  // (names, routes, codecs), the pumps that own links and connections.
  std::shared_ptr<detail::Waker> waker_;
  std::unique_ptr<detail::Directory> directory_;
  std::vector<std::unique_ptr<detail::Pump>> pumps_;
  detail::GroupPump* groups_ = nullptr;  // main group with process groups; owned by pumps_
  detail::ChildPump* child_ = nullptr;   // inside a group's child process; owned by pumps_
  detail::NetPump* net_ = nullptr;       // owned by pumps_
  detail::DatagramPump* dgram_ = nullptr;  // owned by pumps_
  bool pumping_ = false;                 // pumps are being polled or flushed
  DeadLetterHandler dead_letter_;
  ManagerStats stats_;
  detail::ChunkPool pool_;
  detail::RecordQueue incoming_;     // receives queue_message*()
  detail::RecordQueue dispatching_;  // what the current/last tick has left to dispatch
  Clock::time_point last_tick_start_{};
  std::uint64_t tick_count_ = 0;
  int depth_ = 0;
  bool ticking_ = false;
  bool unsettled_ = false;  // something waits for settle()
  detail::Pump& add_pump(std::unique_ptr<detail::Pump> pump);
  void remove_pump(detail::Pump& pump);
  void register_wire(const detail::WireCodec& codec);
  Result<void> queue_group_record(std::string_view group, const detail::WireCodec& codec,
                                  std::span<const std::byte> payload);
  // The name of the group `sender` names, if it is that group's current incarnation.
  Result<std::string_view> reply_target(Sender sender) const;
  // Encodes `msg` into wire_builder_ and applies the send-side depth check (too_deep), so that no
  // send path can skip it. The bytes stay valid until the next encode on this manager.
  template <class M>
  Result<std::span<const std::byte>> encode_wire(const M& msg) {
    flatbuffers::FlatBufferBuilder& fbb = wire_builder_;
    fbb.Clear();
    msg.encode(fbb);
    const std::span bytes(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize());
    if (auto d = detail::check_depth<M>(bytes); !d) return d.error();
    return bytes;
  }
  template <class M>
  Result<std::span<const std::byte>> encode_for_network(const M& msg) {
    static_assert(WireMessage<M>,
                  "send_message: only wire messages cross machines: generate the type from a schema table with "
                  "(packet_type: N)");
    return encode_wire(msg);
  }
  detail::NetPump& network();  // enables the network with default options if needed
  Sender network_server() const;
  Result<void> queue_net_record(Sender peer, const detail::WireCodec& codec, std::span<const std::byte> payload,
                               Delivery delivery = {});
  std::size_t broadcast_datagram_record(const detail::WireCodec& codec, std::span<const std::byte> payload,
                                        Delivery delivery);
  detail::DatagramPump& datagrams();  // enables datagrams with default options if needed
  std::size_t broadcast_net_record(const detail::WireCodec& codec, std::span<const std::byte> payload);
  flatbuffers::FlatBufferBuilder wire_builder_{1024};  // encodes every wire message sent from here
  bool resort_ = false;     // a priority changed during a dispatch
};

// A process-wide manager for applications that want one (created on first use, destroyed at exit).
// Tests and libraries should create their own Manager.
Manager& default_manager();

}  // namespace sage

#include "sage/detail/view_delivery.hpp"


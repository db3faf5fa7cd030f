// sage/actor.hpp: actors, the objects that receive messages.
//
//   struct Player : sage::Actor<Player, sage::subscribes<BombMessage, sage::AdHocMessage>> {
//     bool handle(const BombMessage& m);                       // true = consumed, stop propagation
//     bool handle(const sage::AdHocMessage& m, const sage::Sender& from);  // the sender, if wanted
//     void update() override;                                  // once per tick
//   };
//
// Subscriptions are declared once, in subscribes<...>. For each type T listed there the actor must
// have a public handler, or its constructor does not compile:
//   bool handle(const T&)  or  bool handle(const T&, const sage::Sender&)   returns "consumed"
//   sage::Task handle(T)   or  sage::Task handle(T, const sage::Sender&)    a coroutine (sage/task.hpp)
//   bool handle(const T::View&)  or  bool handle(const T::View&, const sage::Sender&)
//                          a zero-copy view (wire messages only; sage/view.hpp), see below
// Listing sage::AnyMessage subscribes to every message (a wildcard): it requires
//   void handle_any(const sage::AnyMessageRef&)
// which sees every message the manager dispatches, before typed subscribers, and cannot consume.
//
// View handlers, handle(const T::View&), read the message in place from its wire bytes:
//  - Lifetime: the view (and every string_view, VectorView and nested View read from it) is valid
//    for the duration of the call only. Views cannot be copied or moved; keep m.to_value() or
//    std::string(m.name()) for later. A coroutine cannot take a view (only bool handlers).
//  - Where the bytes come from: a message from a group or a network peer is verified and copied
//    once into an 8-aligned buffer owned by the queued record (one allocation and one memcpy, no
//    decoding); a local queue_message()/trigger() of a T value is encoded once, when at least one
//    registered actor has a view handler for T. So a view handler sees every T, whatever its origin.
//  - Order: for one T, the value handlers (handle(const T&), coroutines) and the view handlers are
//    two lists, each in priority order; the value handlers run first, and a message consumed by a
//    value handler still reaches the view handlers (and the other way round). When only view
//    handlers exist, a T from a group or peer is never decoded. ManagerStats counts a message that
//    reaches both lists as two dispatched messages.
//  - An actor with a handler that takes the value (including a generic template handler, which
//    accepts views too) gets values; its view handler for the same type, if any, is not used.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "sage/actor_id.hpp"
#include "sage/any_message.hpp"
#include "sage/detail/message_type.hpp"
#include "sage/detail/wire_codec.hpp"
#include "sage/message.hpp"
#include "sage/sender.hpp"
#include "sage/task.hpp"

namespace sage {

class Manager;
class ActorBase;

// The list of message types an actor subscribes to.
template <class... Ts>
struct subscribes {};

// Tag for subscribes<...>: a wildcard subscription to every message.
struct AnyMessage {};

namespace detail {

struct ViewAccess;

// Calls the actor's handler for one message type; returns whether it consumed the message.
using Deliver = bool (*)(ActorBase& actor, const void* message, const Sender& from);
// Calls the actor's handle_any().
using Observe = void (*)(ActorBase& actor, const AnyMessageRef& message);

struct Subscription {
  const MessageType* type;  // nullptr for the AnyMessage tag
  Deliver deliver;
  // The type's decoder when it is a wire message, else nullptr: registering the actor makes the
  // type decodable in the manager's process group (Manager::register_messages without the call).
  const WireCodec* wire = nullptr;
};

template <class T>
constexpr const WireCodec* wire_codec_of() noexcept {
  if constexpr (WireMessage<T>)
    return &wire_codec_v<T>;
  else
    return nullptr;
}

// Hands a suspended coroutine handler over to the actor's manager (defined in the runtime).
void adopt_task(ActorBase& actor, Task task);

template <class D, class T>
concept HandlesWithSender = requires(D& d, const T& m, const Sender& s) { d.handle(m, s); };
template <class D, class T>
concept HandlesPlain = requires(D& d, const T& m) { d.handle(m); };
template <class T>
concept HasView = requires { typename T::View; };
template <class D, class T>
concept HandlesViewWithSender =
    HasView<T> && requires(D& d, const typename T::View& v, const Sender& s) { d.handle(v, s); };
template <class D, class T>
concept HandlesViewPlain = HasView<T> && requires(D& d, const typename T::View& v) { d.handle(v); };
// A view handler is used only when no handler takes the value: a generic `template <class M> bool
// handle(const M&)` accepts views too, and keeps receiving values.
template <class D, class T>
concept HandlesView =
    (HandlesViewWithSender<D, T> || HandlesViewPlain<D, T>) && !HandlesWithSender<D, T> && !HandlesPlain<D, T>;
// Coroutine handlers taking the message by reference would read it after it was destroyed.
template <class D, class T>
concept TaskByReference =
    requires { static_cast<Task (D::*)(const T&)>(&D::handle); } ||
    requires { static_cast<Task (D::*)(const T&, const Sender&)>(&D::handle); } ||
    requires { static_cast<Task (D::*)(T&&)>(&D::handle); } ||
    requires { static_cast<Task (D::*)(T&&, const Sender&)>(&D::handle); };

template <class D, class T>
struct HandlerResult {
  using type = void;
};
template <class D, class T>
  requires HandlesWithSender<D, T>
struct HandlerResult<D, T> {
  using type = decltype(std::declval<D&>().handle(std::declval<const T&>(), std::declval<const Sender&>()));
};
template <class D, class T>
  requires(!HandlesWithSender<D, T> && HandlesPlain<D, T>)
struct HandlerResult<D, T> {
  using type = decltype(std::declval<D&>().handle(std::declval<const T&>()));
};

template <class D, class T>
constexpr bool check_handler() {
  if constexpr (std::is_same_v<T, AnyMessage>) {
    static_assert(requires(D& d, const AnyMessageRef& m) { d.handle_any(m); },
                  "sage::Actor: subscribes<..., sage::AnyMessage> needs a public member "
                  "void handle_any(const sage::AnyMessageRef&)");
  } else if constexpr (HandlesView<D, T>) {
    static_assert(WireMessage<T>, "sage::Actor: handle(const T::View&) needs a wire message (a schema table with a "
                                  "packet_type); views read wire bytes");
    if constexpr (HandlesViewWithSender<D, T>) {
      static_assert(std::is_same_v<decltype(std::declval<D&>().handle(std::declval<const typename T::View&>(),
                                                                      std::declval<const Sender&>())),
                                   bool>,
                    "sage::Actor: handle(const T::View&, const sage::Sender&) must return bool; a view is valid "
                    "for the call only, so it cannot be a coroutine");
    } else {
      static_assert(std::is_same_v<decltype(std::declval<D&>().handle(std::declval<const typename T::View&>())), bool>,
                    "sage::Actor: handle(const T::View&) must return bool; a view is valid for the call only, so it "
                    "cannot be a coroutine");
    }
  } else {
    static_assert(Message<T>, "sage::Actor: subscribes<...> lists a type that is not a message (a movable object type)");
    static_assert(HandlesWithSender<D, T> || HandlesPlain<D, T>,
                  "sage::Actor: a subscribed message type T has no handler; declare a public member "
                  "bool handle(const T&), bool handle(const T&, const sage::Sender&) or sage::Task handle(T)");
    if constexpr (HandlesWithSender<D, T> || HandlesPlain<D, T>) {
      using R = typename HandlerResult<D, T>::type;
      static_assert(std::is_same_v<R, bool> || std::is_same_v<R, Task>,
                    "sage::Actor: handle(const T&) must return bool (true = consumed) or sage::Task");
      if constexpr (std::is_same_v<R, Task>) {
        static_assert(!TaskByReference<D, T>,
                      "sage::Actor: a coroutine handler must take its message by value (sage::Task handle(T)); "
                      "the queued message is destroyed when dispatch moves on");
        static_assert(std::is_copy_constructible_v<T>, "sage::Actor: coroutine handlers need a copyable message type");
      }
    }
  }
  return true;
}

template <class D, class T>
bool deliver(ActorBase& actor, const void* message, const Sender& from) {
  D& d = static_cast<D&>(actor);
  const T& m = *static_cast<const T*>(message);
  if constexpr (HandlesWithSender<D, T>) {
    if constexpr (std::is_same_v<decltype(d.handle(m, from)), Task>) {
      adopt_task(actor, d.handle(m, from));
      return false;
    } else {
      return d.handle(m, from);
    }
  } else {
    if constexpr (std::is_same_v<decltype(d.handle(m)), Task>) {
      adopt_task(actor, d.handle(m));
      return false;
    } else {
      return d.handle(m);
    }
  }
}

// A view handler: `message` is the Encoded<T> record.
template <class D, class T>
bool deliver_view(ActorBase& actor, const void* message, const Sender& from) {
  D& d = static_cast<D&>(actor);
  const typename T::View view(static_cast<const Encoded<T>*>(message)->bytes());
  if constexpr (HandlesViewWithSender<D, T>)
    return d.handle(view, from);
  else
    return d.handle(view);
}

template <class D>
void observe(ActorBase& actor, const AnyMessageRef& message) {
  static_cast<D&>(actor).handle_any(message);
}

template <class D, class T>
constexpr Subscription subscription_for() noexcept {
  if constexpr (std::is_same_v<T, AnyMessage>)
    return {nullptr, nullptr, nullptr};
  else if constexpr (WireMessage<T> && HandlesView<D, T>)
    return {&message_type_v<Encoded<T>>, &deliver_view<D, T>, wire_codec_of<T>()};
  else if constexpr (!HandlesWithSender<D, T> && !HandlesPlain<D, T>)
    return {&message_type_v<T>, nullptr, nullptr};  // check_handler() reports the missing handler
  else
    return {&message_type_v<T>, &deliver<D, T>, wire_codec_of<T>()};
}

}  // namespace detail

// The non-template part of every actor, what the Manager works with. A resource: not copyable or
// movable (its address is its identity while registered). Derive from Actor<Derived, ...>.
class ActorBase {
 public:
  ActorBase(const ActorBase&) = delete;
  ActorBase& operator=(const ActorBase&) = delete;
  // Unregisters the actor from its manager, if it is still registered.
  virtual ~ActorBase();

  // Manager's thread, once per tick after queued messages and coroutines, higher priority first.
  virtual void update() {}

  // ActorId{} when not registered.
  ActorId id() const noexcept { return id_; }
  // The name it was registered under ("" when none or not registered).
  std::string_view name() const noexcept { return name_; }
  // The manager it is registered with, or nullptr.
  Manager* manager() const noexcept { return manager_; }
  bool registered() const noexcept { return manager_ != nullptr; }

  // Order of update() and of handlers for one message: higher priority first, then registration
  // order. Default 0. Changing it during a dispatch takes effect when that dispatch finishes.
  int priority() const noexcept { return priority_; }
  void set_priority(int priority);

  // Whether the actor has a handler for message type T (wildcards do not count).
  template <Message T>
  bool subscribes_to() const noexcept {
    if constexpr (WireMessage<T>)
      if (find_subscription(detail::message_type_v<detail::Encoded<T>>) != nullptr) return true;  // a view handler
    return find_subscription(detail::message_type_v<T>) != nullptr;
  }

 protected:
  ActorBase(std::span<const detail::Subscription> subscriptions, detail::Observe observe) noexcept
      : subscriptions_(subscriptions), observe_(observe) {}

 private:
  friend class Manager;
  friend struct detail::ViewAccess;
  const detail::Subscription* find_subscription(const detail::MessageType& type) const noexcept {
    for (const auto& s : subscriptions_)
      if (s.type == &type) return &s;
    return nullptr;
  }

  std::span<const detail::Subscription> subscriptions_;
  detail::Observe observe_;  // nullptr unless the actor subscribes to AnyMessage
  Manager* manager_ = nullptr;
  ActorId id_;
  std::string name_;
  int priority_ = 0;
  bool active_ = false;  // in the manager's dispatch lists (false while a registration is pending)
};

// CRTP base of user actors: struct Player : sage::Actor<Player, sage::subscribes<A, B>> { ... };
template <class Derived, class Subscriptions = subscribes<>>
class Actor;

template <class Derived, class... Ts>
class Actor<Derived, subscribes<Ts...>> : public ActorBase {
 protected:
  Actor() noexcept : ActorBase(table(), observer()) {
    static_assert(std::is_base_of_v<Actor, Derived>, "sage::Actor<Derived, ...>: Derived must derive from it");
    static_assert((detail::check_handler<Derived, Ts>() && ...));
  }

 private:
  static std::span<const detail::Subscription> table() noexcept {
    static constexpr std::array<detail::Subscription, sizeof...(Ts)> subscriptions{
        detail::subscription_for<Derived, Ts>()...};
    return subscriptions;
  }
  static detail::Observe observer() noexcept {
    if constexpr ((std::is_same_v<Ts, AnyMessage> || ...))
      return &detail::observe<Derived>;
    else
      return nullptr;
  }
};

}  // namespace sage

// A subscription to a wire message refers to its decoder (detail::wire_codec_v), whose body needs
// the complete Manager: every file that declares actors gets it.
#include "sage/manager.hpp"

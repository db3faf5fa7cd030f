// sage/errors.hpp: the caller bugs the runtime reports (sage::usage_error subclasses), and send_error.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "sage/actor_id.hpp"
#include "sage/result.hpp"

namespace sage {

// An ActorId that names no actor registered with this manager (never was, or was unregistered),
// or an actor that is not registered with this manager.
class unknown_actor : public usage_error {
 public:
  explicit unknown_actor(ActorId id)
      : usage_error("sage: no actor with id " + std::to_string(id.value()) + " is registered with this manager"),
        id_(id) {}
  ActorId id() const noexcept { return id_; }

 private:
  ActorId id_;
};

// register_actor() with a name another registered actor of the same manager already has.
class duplicate_actor_name : public usage_error {
 public:
  explicit duplicate_actor_name(std::string_view name)
      : usage_error("sage: an actor named '" + std::string(name) + "' is already registered") {}
};

// register_actor() with an actor that is already registered (with this or another manager).
class actor_already_registered : public usage_error {
 public:
  explicit actor_already_registered(ActorId id)
      : usage_error("sage: actor " + std::to_string(id.value()) + " is already registered") {}
};

// An ad hoc message (a message known only by name) whose name is the name of a schema message:
// send the typed message instead.
class ad_hoc_name_conflict : public usage_error {
 public:
  explicit ad_hoc_name_conflict(std::string_view name)
      : usage_error("sage: '" + std::string(name) +
                    "' is a schema message; send the typed message, not an ad hoc message of that name") {}
};

// Manager::tick() called while the same manager is ticking (from a handler, coroutine or update()).
class reentrant_tick : public usage_error {
 public:
  reentrant_tick() : usage_error("sage: Manager::tick() called from inside a tick of the same manager") {}
};

// Two wire message types with the same packet_type met in one manager (registered, subscribed or
// sent): rename one in its schema.
class packet_type_conflict : public usage_error {
 public:
  packet_type_conflict(int packet_type, std::string_view a, std::string_view b)
      : usage_error("sage: packet_type " + std::to_string(packet_type) + " is used by both " + std::string(a) +
                    " and " + std::string(b)) {}
};

// queue_message_to_group() / send_message() could not accept a message: send_buffer_full,
// too_large, peer_gone.
// Nothing of the message was queued; everything accepted before still travels.
class send_error : public std::runtime_error {
 public:
  explicit send_error(Error e) : std::runtime_error("sage: cannot send: " + e.message()), error_(std::move(e)) {}
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

}  // namespace sage

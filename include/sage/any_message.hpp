// sage/any_message.hpp: type-erased views of messages (wildcard subscribers, dead letters) and
// ad hoc messages known only by name.
#pragma once

#include <string>
#include <string_view>

#include "sage/actor_id.hpp"
#include "sage/detail/message_type.hpp"
#include "sage/message.hpp"
#include "sage/sender.hpp"

namespace sage {

// A message known only by its name, for quick signals: manager.trigger("BombMessage") delivers
// AdHocMessage{"BombMessage"} to the subscribers of AdHocMessage. Names of schema messages are
// refused (ad_hoc_name_conflict).
struct AdHocMessage {
  std::string name;
};

// A borrowed view of one message being dispatched; valid only during the call it is passed to.
class AnyMessageRef {
 public:
  AnyMessageRef(const detail::MessageType& type, const void* data, Sender sender, ActorId target) noexcept
      : type_(&type), data_(data), sender_(sender), target_(target) {}

  // name_of<T>() of the message type; for an AdHocMessage, its name.
  std::string_view name() const noexcept {
    if (is<AdHocMessage>()) return static_cast<const AdHocMessage*>(data_)->name;
    return type_->name;
  }
  // Whether the type was generated from a schema.
  bool is_schema() const noexcept { return type_->schema; }
  template <Message T>
  bool is() const noexcept {
    return type_ == &detail::message_type_v<T>;
  }
  // The message if it is a T, else nullptr.
  template <Message T>
  const T* get() const noexcept {
    return is<T>() ? static_cast<const T*>(data_) : nullptr;
  }
  const void* data() const noexcept { return data_; }
  Sender sender() const noexcept { return sender_; }
  // The actor it was addressed to, or ActorId{} for a message to every subscriber.
  ActorId target() const noexcept { return target_; }
  const detail::MessageType& type() const noexcept { return *type_; }

 private:
  const detail::MessageType* type_;
  const void* data_;
  Sender sender_;
  ActorId target_;
};

}  // namespace sage

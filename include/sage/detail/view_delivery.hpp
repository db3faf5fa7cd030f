// sage/detail/view_delivery.hpp: how a received wire message reaches view handlers
// (handle(const T::View&), sage/actor.hpp). Included by sage/manager.hpp once Manager is complete.
#pragma once

#include <span>

#include "sage/detail/message_type.hpp"
#include "sage/detail/wire_codec.hpp"
#include "sage/manager.hpp"
#include "sage/view.hpp"

namespace sage::detail {

struct ViewAccess {
  template <class T>
  static bool wants_views(const Manager& m) noexcept {
    return m.has_subscribers(message_type_v<Encoded<T>>);
  }
  // The payload is copied once into an aligned buffer and verified there, in place; value
  // handlers (and wildcards) get it decoded from that buffer, without verifying twice.
  template <class T>
  static Result<void> queue_viewed(Manager& m, std::span<const std::byte> payload, Sender from) {
    auto encoded = Encoded<T>::copy_of(payload);
    auto root = verify_in_place<T>(encoded.bytes());
    if (!root) return root.error();
    if (m.has_subscribers(message_type_v<T>) || !m.observers_.empty()) {
      m.incoming_.template push<T>(m.pool_, m.note_type(message_type_v<T>), ActorId{}, from, T::unpack(**root));
      ++m.stats_.queued;
    }
    m.incoming_.template push<Encoded<T>>(m.pool_, m.note_type(message_type_v<Encoded<T>>), ActorId{}, from,
                                          std::move(encoded));
    ++m.stats_.queued;
    return {};
  }
};

template <WireMessage T, class M>
bool wants_views(const M& manager) noexcept {
  return ViewAccess::wants_views<T>(manager);
}
template <WireMessage T, class M>
Result<void> queue_viewed(M& manager, std::span<const std::byte> payload, Sender from) {
  return ViewAccess::queue_viewed<T>(manager, payload, from);
}

}  // namespace sage::detail

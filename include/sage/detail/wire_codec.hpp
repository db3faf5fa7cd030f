// sage/detail/wire_codec.hpp: how a wire message type is decoded into a manager. A small helper
// that templates of the public headers (Manager::register_messages, actor subscriptions, sends)
// instantiate per type; nothing here is API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "sage/detail/message_type.hpp"
#include "sage/message.hpp"
#include "sage/result.hpp"
#include "sage/sender.hpp"

namespace sage {
class Manager;
}

namespace sage::detail {

// Verifies and decodes one payload, then queue_message_from(msg, from) on the manager.
using DecodeFn = Result<void> (*)(Manager& manager, std::span<const std::byte> payload, Sender from);

// Verifies one payload (8-aligned) as the type, without queuing anything.
using VerifyFn = Result<void> (*)(std::span<const std::byte> payload);

struct WireCodec {
  std::uint8_t packet_type = 0;
  std::uint64_t fingerprint = 0;
  std::string_view name;
  DecodeFn decode = nullptr;
  // A main group relaying a record between groups checks it with this first (docs/network.md
  // "Remote groups"), so a bad record costs its sender, not the receiver.
  VerifyFn verify = nullptr;
  // T::schema_description ("sage-schema 1" text of the type and what it reaches): what the network
  // handshake sends and checks (docs/network.md). "" for a type without one (never negotiated).
  std::string_view schema_description;
};

template <class T>
constexpr std::string_view schema_description_of() noexcept {
  if constexpr (requires { { T::schema_description } -> std::convertible_to<std::string_view>; })
    return T::schema_description;
  else
    return {};
}

// What a received T becomes when an actor has a view handler for it (sage/detail/view_delivery.hpp):
// whether one has, and the queuing of the verified bytes (decoded as well for value handlers).
template <WireMessage T, class M>
bool wants_views(const M& manager) noexcept;
template <WireMessage T, class M>
Result<void> queue_viewed(M& manager, std::span<const std::byte> payload, Sender from);

// M is always Manager; the parameter only delays name lookup until Manager is complete.
template <WireMessage T, class M = Manager>
Result<void> decode_into(M& manager, std::span<const std::byte> payload, Sender from) {
  if constexpr (Viewable<T>) {
    if (wants_views<T>(manager)) [[unlikely]]
      return queue_viewed<T>(manager, payload, from);
  }
  auto r = T::decode(payload);
  if (!r) return r.error();
  manager.queue_message_from(std::move(*r), from);
  return {};
}

template <WireMessage T>
Result<void> verify_only(std::span<const std::byte> payload) {
  if constexpr (requires { { T::verify_bytes(payload) } -> std::same_as<Result<void>>; }) {
    return T::verify_bytes(payload);  // in place (generated types)
  } else {
    auto r = T::decode(payload);
    if (!r) return r.error();
    return {};
  }
}

template <WireMessage T>
inline constexpr WireCodec wire_codec_v{static_cast<std::uint8_t>(T::packet_type),
                                        static_cast<std::uint64_t>(T::fingerprint), T::message_name,
                                        &decode_into<T>, &verify_only<T>, schema_description_of<T>()};

}  // namespace sage::detail

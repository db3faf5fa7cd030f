// runtime/network/peer_rules.hpp: the rules a TCP peer (net_pump.hpp) and a datagram peer
// (datagram_pump.hpp) share, so the two pumps cannot drift apart on them:
// - the control records every peer understands (heartbeat, close, error = a refused handshake);
// - when a dropped client reconnects (ReconnectPolicy; never after disconnect() or a refusal);
// - how a refused handshake is reported (log line, PeerRefused) and what a later send says.
// The pumps keep what differs: roles and states, timers, the transport's own events.
// Free functions (report_refused() logs and queues PeerRefused); every call on the
// manager's thread.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "channel/channel.hpp"
#include "log/log.hpp"
#include "sage/manager.hpp"
#include "sage/network.hpp"

namespace sage::detail::peer_rules {

inline std::string text_of(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// heartbeat: nothing to do; close: the peer left (not bad input), with its reason; error: it
// refused our handshake: `on_refused(why)` runs (report it) and the peer stops. nullopt for any
// other control record: the pump decides (its own records, or unknown_packet_type).
template <class OnRefused>
std::optional<Verdict> common_control(protocol::Control control, std::span<const std::byte> payload,
                                      OnRefused&& on_refused) {
  switch (control) {
    case protocol::Control::heartbeat:
      return Verdict{};
    case protocol::Control::close:
      return Verdict{Stop{
          Error{Errc::peer_gone, "closed by the peer" + (payload.empty() ? std::string() : ": " + text_of(payload))},
          false}};
    case protocol::Control::error: {
      auto e = protocol::decode_error(payload);
      Error why{Errc::incompatible, "refused by the peer: " + (e ? e->text : std::string("(unreadable reason)"))};
      on_refused(why);
      return Verdict{Stop{why, false}};
    }
    default:
      return std::nullopt;
  }
}

// Whether a dropped peer is dialed again: only a client (we dialed it) whose policy allows another
// attempt, not after disconnect() (`user_closed`) and never after a refused handshake.
inline bool reconnects(const ReconnectPolicy& policy, bool client, bool user_closed, const Error& why,
                       int attempts) noexcept {
  return client && policy.enabled && !user_closed && why.code != Errc::incompatible &&
         (policy.max_attempts == 0 || attempts < policy.max_attempts);
}

// A refused handshake (by us, or by the peer): one log line ("sage: <transport>: ..."), and
// PeerRefused queued from the peer. The caller counts it and remembers `why` for later sends.
inline void report_refused(Manager& manager, const char* transport, const std::string& who, Sender peer,
                           const std::string& address, const std::string& name, const Error& why, bool by_peer) {
  if (by_peer)
    log::write(log::Level::warning, transport, transport, ": ", log::peer(who), " refused this node: ",
               log::peer(why.message()));
  else
    log::write(log::Level::warning, transport, transport, ": refused ", log::peer(who), ": ", log::peer(why.message()));
  manager.queue_message_from(PeerRefused{peer, address, name, why, by_peer}, peer);
}

// What a send to a peer whose handshake was refused returns.
inline Error refused_send(const std::string& who, const Error& reason) {
  return Error{Errc::incompatible, "the handshake with peer " + who + " was refused: " + reason.message()};
}

}  // namespace sage::detail::peer_rules

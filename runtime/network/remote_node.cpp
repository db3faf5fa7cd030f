// A remote group node's link to its main group (runtime/network/remote_node.hpp).
#include "network/remote_node.hpp"

#include "sage/groups.hpp"
#include "sage/manager.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

void RemoteNode::join(std::string_view host, std::uint16_t port, std::string_view name) {
  if (state_ != State::none) throw usage_error("sage: this manager already hosts group '" + name_ + "'");
  if (name.empty() || name.size() > proto::max_group_name || name == main_group)
    throw usage_error("sage: a group name must have 1.." + std::to_string(proto::max_group_name) +
                      " bytes and not be sage::main_group");
  name_ = std::string(name);
  state_ = State::joining;
  Directory& dir = pump_.directory_;
  const auto deadline = Clock::now() + pump_.config_.connect_timeout + 1s;
  try {
    PeerPump::Peer& p = pump_.dial(PeerPump::Role::main_group, host, port, name_);  // hello, then join_group
    index_ = p.index;
    dir.set_self(name_, 1);
    dir.set_uplink(&p.channel);
    // A bye may follow the ack at once (the main group ended): joining still succeeded.
    while (Clock::now() < deadline && state_ == State::joining) {
      PeerPump::Peer* q = pump_.at(index_);
      if (!q) break;
      pump_.receive_from(*q);
      if (state_ != State::joining) break;
      pump_.waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
    }
    if (state_ == State::joined || state_ == State::bye_received) return;
  } catch (...) {
    name_.clear();
    state_ = State::none;
    dir.set_uplink(nullptr);
    throw;
  }
  const std::string why = state_ == State::lost ? lost_ : "the main group did not answer in time";
  if (PeerPump::Peer* q = pump_.at(index_)) pump_.drop(*q, Error{Errc::peer_gone, why}, false);
  dir.set_uplink(nullptr);
  dir.set_self(main_group, 0);
  name_.clear();
  lost_.clear();
  state_ = State::none;
  throw network_error(Error{Errc::peer_gone, "cannot join as group '" + std::string(name) + "': " + why});
}

Verdict RemoteNode::on_control(PeerPump::Peer& p, proto::Control control) {
  const bool from_main = p.role == PeerPump::Role::main_group;
  switch (control) {
    case proto::Control::join_ack:
      if (!from_main) return Stop{Error{Errc::malformed, "join_ack from a peer that is not the main group"}, true};
      state_ = State::joined;
      p.state = PeerPump::State::connected;
      return std::nullopt;
    case proto::Control::bye:
      // The node handles what arrived before it, answers bye_ack (answer_bye()) and waits for the
      // main group to close the connection.
      if (!from_main) return Stop{Error{Errc::malformed, "bye from a peer that is not the main group"}, true};
      state_ = State::bye_received;
      return std::nullopt;
    default:
      return Stop{Error{Errc::unknown_packet_type, "control packet_type " + std::to_string(proto::code(control))}, true};
  }
}

void RemoteNode::on_lost(const Error& why) {
  if (state_ == State::bye_received) return;  // the main group closes after our bye_ack
  state_ = State::lost;
  lost_ = why.message();
}

void RemoteNode::answer_bye() {
  PeerPump::Peer* p = pump_.at(index_);
  if (!p || !p->live()) return;
  p->channel.append_control(proto::Control::bye_ack);
  (void)p->channel.flush();
  // Leaving at once could lose what is still queued; the main group closes after reading bye_ack.
  // The close is read like any arrival (failure() answers from the last read), as join() reads.
  const auto deadline = Clock::now() + pump_.config_.heartbeat_timeout;
  while (Clock::now() < deadline) {
    PeerPump::Peer* q = pump_.at(index_);
    if (!q || !q->live() || !q->channel.connection() || q->channel.connection()->failure()) break;
    pump_.receive_from(*q);
    if (!(q = pump_.at(index_)) || !q->live()) break;
    pump_.waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
  }
}

void RemoteNode::shutdown() {
  if (state_ != State::none) pump_.directory_.set_uplink(nullptr);
}

}  // namespace sage::detail

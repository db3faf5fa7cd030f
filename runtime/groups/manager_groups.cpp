// The Manager members of the process group API (declared in sage/manager.hpp).
#include <cstring>

#include "channel/directory.hpp"
#include "groups/child.hpp"
#include "groups/group_pump.hpp"
#include "local/manager_access.hpp"
#include "network/net_pump.hpp"
#include "sage/manager.hpp"

namespace sage {

namespace detail {
GroupPump& ManagerAccess::groups(const Manager& m) {
  if (!m.groups_) throw groups_not_enabled();
  return *m.groups_;
}
void ManagerAccess::attach_child(Manager& m, std::unique_ptr<ChildPump> pump) {
  m.child_ = pump.get();
  m.add_pump(std::move(pump));
}
}  // namespace detail

void Manager::enable_groups(const GroupsOptions& options) {
  if (groups_enabled()) throw usage_error("sage: groups are already enabled for this manager");
  auto pump = std::make_unique<detail::GroupPump>(*this, options);
  groups_ = pump.get();
  add_pump(std::move(pump));
}

void Manager::add_process_group(std::string_view name, ActorFactory factory, const GroupOptions& options) {
  if (!factory) throw usage_error("sage: add_process_group() needs a factory");
  detail::ManagerAccess::groups(*this).add_group(name, factory, options);
}

void Manager::remove_process_group(std::string_view name) {
  switch (directory_->route(name).kind) {
    case detail::Route::Kind::node: return net_->remove_group(name);
    case detail::Route::Kind::child: return groups_->remove_group(name);
    default:
      if (!groups_ && !child_ && !net_) throw groups_not_enabled();
      throw no_such_group(name);
  }
}
void Manager::clear_process_groups() {
  if (child_) return;
  detail::ManagerAccess::groups(*this).clear_groups();
}
std::vector<std::string> Manager::process_groups() const {
  if (child_) return {};
  return detail::ManagerAccess::groups(*this).groups();
}
bool Manager::has_process_group(std::string_view name) const {
  if (child_) return false;
  return detail::ManagerAccess::groups(*this).has_group(name);
}
std::string_view Manager::group_name() const {
  if (!groups_enabled() && !(net_ && !net_->joined_group().empty())) throw groups_not_enabled();
  return directory_->self_name();
}
std::string_view Manager::group_name(Sender sender) const {
  if (!groups_enabled() && !net_) throw groups_not_enabled();
  return directory_->name_of(sender);
}
int Manager::process_group_pid(std::string_view name) const {
  if (child_) throw no_such_group(name);
  return detail::ManagerAccess::groups(*this).pid_of(name);
}
GroupStats Manager::group_stats() const {
  if (child_) return child_->stats();
  return detail::ManagerAccess::groups(*this).stats();
}

Result<std::string_view> Manager::reply_target(Sender sender) const {
  auto name = group_name(sender);
  if (name.empty()) throw usage_error("sage: the sender is not a group of this application");
  switch (directory_->state_of(sender)) {
    case detail::Directory::SenderState::gone: throw no_such_group(name);
    case detail::Directory::SenderState::earlier_incarnation:
      return Error{Errc::peer_gone,
                   "group '" + std::string(name) + "' was restarted: this Sender names its incarnation " +
                       std::to_string(sender.generation) + ", which is gone (it runs incarnation " +
                       std::to_string(directory_->current_sender(sender.index).generation) +
                       " now); a reply to the old process is not given to the new one"};
    default: return name;
  }
}

Sender Manager::group_sender(std::string_view name) const {
  const detail::Route route = directory_->route(name);
  if (route.kind != detail::Route::Kind::child && route.kind != detail::Route::Kind::node) {
    if (!groups_enabled() && !net_) throw groups_not_enabled();
    if (route.kind != detail::Route::Kind::self) throw no_such_group(name);
    return Sender::group(directory_->self_index());
  }
  return route.channel->config().sender;
}

void Manager::register_wire(const detail::WireCodec& codec) { directory_->register_codec(codec); }

Result<void> Manager::queue_group_record(std::string_view group, const detail::WireCodec& codec,
                                         std::span<const std::byte> payload) {
  const detail::Route route = directory_->route(group);
  switch (route.kind) {
    case detail::Route::Kind::self: {
      if (!groups_enabled() && !net_) throw groups_not_enabled();
      // To our own group: no transport, but the same decoded value and Sender as from elsewhere.
      std::vector<std::uint64_t> aligned((payload.size() + 7) / 8);
      if (!payload.empty()) std::memcpy(aligned.data(), payload.data(), payload.size());
      return codec.decode(*this, std::span(reinterpret_cast<const std::byte*>(aligned.data()), payload.size()),
                          Sender::group(directory_->self_index()));
    }
    case detail::Route::Kind::child:
    case detail::Route::Kind::node:
      directory_->register_codec(codec);  // in our hello from now on; replies of it decode here
      return route.channel->send(codec.packet_type, payload);
    case detail::Route::Kind::uplink:
      directory_->register_codec(codec);
      return route.channel->send(codec.packet_type, payload, group == main_group ? std::string_view() : group);
    case detail::Route::Kind::none: break;
  }
  if (!groups_enabled() && !net_) throw groups_not_enabled();
  throw no_such_group(group);
}

}  // namespace sage

// The Manager members of the process group API (declared in sage/manager.hpp).
#include <cstring>

#include "sage/detail/group_pump.hpp"
#include "sage/detail/net_pump.hpp"
#include "sage/manager.hpp"

namespace sage {

void Manager::enable_groups(const GroupsOptions& options) {
  if (groups_) throw usage_error("sage: groups are already enabled for this manager");
  auto pump = std::make_unique<detail::GroupPump>(options);
  for (const auto& c : pending_codecs_) pump->register_codec(c);
  pending_codecs_.clear();
  groups_ = pump.get();
  add_pump(std::move(pump));
}

void Manager::attach_groups(std::unique_ptr<detail::GroupPump> pump) {
  if (groups_) throw usage_error("sage: groups are already enabled for this manager");
  groups_ = pump.get();
  add_pump(std::move(pump));
}

detail::GroupPump& Manager::group_pump() const {
  if (!groups_) throw groups_not_enabled();
  return *groups_;
}

void Manager::add_process_group(std::string_view name, detail::ActorFactory factory, const GroupOptions& options) {
  if (!factory) throw usage_error("sage: add_process_group() needs a factory");
  group_pump().add_group(name, factory, options);
}

void Manager::remove_process_group(std::string_view name) {
  if (net_ && net_->listening() && net_->routes_group(name)) return net_->remove_group(*this, name);  // remote
  if (!groups_ && net_ && net_->listening()) throw no_such_group(name);
  group_pump().remove_group(*this, name);
}
void Manager::clear_process_groups() { group_pump().clear_groups(*this); }
std::vector<std::string> Manager::process_groups() const { return group_pump().groups(); }
bool Manager::has_process_group(std::string_view name) const { return group_pump().has_group(name); }
std::string_view Manager::group_name() const {
  if (!groups_ && net_ && !net_->joined_group().empty()) return net_->joined_group();  // a remote group node
  return group_pump().self_name();
}
std::string_view Manager::group_name(Sender sender) const {
  if (net_)
    if (auto n = net_->group_name_of(sender); !n.empty()) return n;  // a remote group (network)
  return group_pump().name_of(sender);
}
int Manager::process_group_pid(std::string_view name) const { return group_pump().pid_of(name); }
const GroupStats& Manager::group_stats() const { return group_pump().stats(); }

std::string_view Manager::group_name_checked(Sender sender) const {
  auto name = group_name(sender);
  if (name.empty()) throw usage_error("sage: the sender is not a group of this application");
  return name;
}

void Manager::register_wire(const detail::WireCodec& codec) {
  // Every registered actor subscribing to a wire type lands here: keep each type once, and refuse a
  // second type with the same packet_type before any pump has seen it.
  for (const auto& c : wire_codecs_) {
    if (c.decode == codec.decode) return;
    if (c.packet_type == codec.packet_type && (c.fingerprint != codec.fingerprint || c.name != codec.name))
      throw packet_type_conflict(codec.packet_type, c.name, codec.name);
  }
  if (net_) net_->register_codec(codec);
  if (groups_) groups_->register_codec(codec);
  wire_codecs_.push_back(codec);
  if (!groups_) pending_codecs_.push_back(codec);
}

flatbuffers::FlatBufferBuilder& Manager::group_builder() {
  if (!groups_ && net_) return network_builder();  // a remote group node, or a main group without children
  return group_pump().builder();
}

Result<void> Manager::queue_group_record(std::string_view group, const detail::WireCodec& codec,
                                         std::span<const std::byte> payload) {
  if (net_ && net_->routes_group(group)) return net_->queue_group_record(group, codec, payload);  // remote group
  if (!groups_ && net_ && net_->listening()) throw no_such_group(group);  // a main group with remote groups only
  detail::GroupPump& pump = group_pump();
  if (pump.is_self(group)) {
    // To our own group: no transport, but the same decoded value and Sender as from elsewhere.
    std::vector<std::uint64_t> aligned((payload.size() + 7) / 8);
    if (!payload.empty()) std::memcpy(aligned.data(), payload.data(), payload.size());
    return codec.decode(*this, std::span(reinterpret_cast<const std::byte*>(aligned.data()), payload.size()),
                        Sender::group(pump.self_index()));
  }
  return pump.queue_record(group, codec, payload);
}

}  // namespace sage

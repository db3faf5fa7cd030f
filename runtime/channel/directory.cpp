// The Directory (runtime/channel/directory.hpp).
#include "channel/directory.hpp"

#include <unistd.h>

#include "sage/errors.hpp"
#include "sage/groups.hpp"

namespace sage::detail {

Directory::Directory() { names_.push_back({std::string(main_group), {Route::Kind::self, nullptr}}); }

void Directory::register_codec(const WireCodec& codec) {
  WireCodec& slot = codecs_[codec.packet_type];
  if (slot.decode == codec.decode) return;
  if (slot.decode && (slot.fingerprint != codec.fingerprint || slot.name != codec.name))
    throw packet_type_conflict(codec.packet_type, slot.name, codec.name);
  slot = codec;
}

std::vector<WireCodec> Directory::codecs() const {
  std::vector<WireCodec> out;
  for (const auto& c : codecs_)
    if (c.decode) out.push_back(c);
  return out;
}

protocol::Hello Directory::hello(std::string_view name) const {
  protocol::Hello h;
  h.pid = static_cast<std::uint32_t>(::getpid());
  for (const auto& c : codecs_)
    if (c.decode) h.entries.push_back({c.packet_type, c.fingerprint});
  h.schema_fingerprint = protocol::schema_fingerprint(h.entries);
  h.name = std::string(name);
  return h;
}

void Directory::set_self(std::string_view name, std::uint32_t index) {
  if (names_.size() <= index) names_.resize(index + 1);
  names_[0] = {std::string(main_group), {index == 0 ? Route::Kind::self : Route::Kind::none, nullptr}};
  names_[index] = {std::string(name), {Route::Kind::self, nullptr}};
  self_index_ = index;
}

std::uint32_t Directory::add_group(std::string_view name) {
  names_.push_back({std::string(name), {}});
  return static_cast<std::uint32_t>(names_.size() - 1);
}

void Directory::set_route(std::uint32_t index, Route route) noexcept {
  if (index < names_.size()) names_[index].route = route;
}

void Directory::remove_group(std::string_view name) noexcept {
  for (std::size_t i = 1; i < names_.size(); ++i)
    if (i != self_index_ && names_[i].name == name) names_[i] = {};
}

Sender Directory::sender_of(std::string_view name) {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i].name == name) return Sender::group(static_cast<std::uint32_t>(i));
  names_.push_back({std::string(name), {}});
  return Sender::group(static_cast<std::uint32_t>(names_.size() - 1));
}

std::string_view Directory::name_of(Sender sender) const noexcept {
  if (sender.kind != Sender::Kind::group || sender.index >= names_.size()) return {};
  return names_[sender.index].name;
}

Route Directory::route(std::string_view name) const noexcept {
  if (name.empty()) return {};
  for (const auto& g : names_)
    if (g.name == name && g.route.kind != Route::Kind::none) return g.route;
  if (hub_) return {Route::Kind::hub, hub_};
  return {};
}

std::vector<std::string> Directory::groups(Route::Kind kind) const {
  std::vector<std::string> out;
  for (const auto& g : names_)
    if (!g.name.empty() && g.route.kind == kind) out.push_back(g.name);
  return out;
}

}  // namespace sage::detail

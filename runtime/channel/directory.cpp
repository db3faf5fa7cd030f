// The Directory (runtime/channel/directory.hpp).
#include "channel/directory.hpp"

#include <unistd.h>


#include "log/log.hpp"
#include "schema/description.hpp"

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
  ++generation_;
}

std::vector<WireCodec> Directory::codecs() const {
  std::vector<WireCodec> out;
  for (const auto& c : codecs_)
    if (c.decode) out.push_back(c);
  return out;
}

std::string Directory::describe(const std::array<bool, 256>& types) const {
  std::vector<std::string_view> texts;
  for (const auto& c : codecs_)
    if (c.decode && types[c.packet_type] && !c.schema_description.empty()) texts.push_back(c.schema_description);
  if (texts.empty()) return {};
  auto combined = schema::combine(texts);
  if (!combined) {
    log::write(log::Level::error, "schema", "the schema descriptions of the registered wire types conflict: ",
               combined.error);
    return {};
  }
  return schema::to_text(combined.description);
}

protocol::Hello Directory::hello(std::string_view name, bool describe_types) const {
  protocol::Hello h;
  h.pid = static_cast<std::uint32_t>(::getpid());
  for (const auto& c : codecs_)
    if (c.decode && (!describe_types || !c.schema_description.empty())) h.entries.push_back({c.packet_type, c.fingerprint});
  h.schema_fingerprint = protocol::schema_fingerprint(h.entries);
  h.name = std::string(name);
  if (describe_types) {
    if (described_generation_ != generation_) {
      std::array<bool, 256> all{};
      all.fill(true);
      described_ = describe(all);
      described_generation_ = generation_;
    }
    h.description = described_;
    if (h.description.empty()) h.entries.clear();
  }
  return h;
}

std::optional<protocol::Announce> Directory::announce(std::array<bool, 256>& told) const {
  std::array<bool, 256> fresh{};
  protocol::Announce a;
  for (const auto& c : codecs_)
    if (c.decode && !c.schema_description.empty() && !told[c.packet_type]) {
      fresh[c.packet_type] = told[c.packet_type] = true;
      a.entries.push_back({c.packet_type, c.fingerprint});
    }
  if (a.entries.empty()) return std::nullopt;
  a.description = describe(fresh);
  if (a.description.empty()) return std::nullopt;
  return a;
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
    if (i != self_index_ && names_[i].name == name && !names_[i].gone) {
      names_[i].route = {};
      names_[i].gone = true;
    }
}

void Directory::set_generation(std::uint32_t index, std::uint16_t generation) noexcept {
  if (index < names_.size()) names_[index].generation = generation;
}

Directory::SenderState Directory::state_of(Sender sender) const noexcept {
  if (sender.kind != Sender::Kind::group || sender.index >= names_.size() || names_[sender.index].name.empty())
    return SenderState::none;
  const Group& g = names_[sender.index];
  if (g.gone) return SenderState::gone;
  return g.generation == sender.generation ? SenderState::current : SenderState::earlier_incarnation;
}

Sender Directory::current_sender(std::uint32_t index) const noexcept {
  return Sender::group(index, index < names_.size() ? names_[index].generation : 0);
}

Sender Directory::sender_of(std::string_view name) {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i].name == name && !names_[i].gone) return Sender::group(static_cast<std::uint32_t>(i));
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
  if (uplink_) return {Route::Kind::uplink, uplink_};
  return {};
}

std::vector<std::string> Directory::groups(Route::Kind kind) const {
  std::vector<std::string> out;
  for (const auto& g : names_)
    if (!g.name.empty() && g.route.kind == kind) out.push_back(g.name);
  return out;
}

}  // namespace sage::detail

#include "channel/protocol.hpp"

#include "sage/message.hpp"
#include "schema/compat.hpp"
#include "schema/description.hpp"

#include <algorithm>
#include <cstdio>

namespace sage::detail::protocol {

namespace {
void put_u16(std::vector<std::byte>& out, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
}
void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
}
void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
}
std::uint64_t get_le(std::span<const std::byte> b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(b[at + i]) << (8 * i);
  return v;
}
std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}
}  // namespace

std::uint64_t schema_fingerprint(std::vector<SchemaEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const SchemaEntry& a, const SchemaEntry& b) { return a.packet_type < b.packet_type; });
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](std::uint8_t byte) {
    h ^= byte;
    h *= 0x100000001b3ull;
  };
  for (const auto& e : entries) {
    mix(e.packet_type);
    for (int i = 0; i < 8; ++i) mix(static_cast<std::uint8_t>((e.fingerprint >> (8 * i)) & 0xff));
  }
  return h;
}

// hello payload, version 2 (docs/wire-format.md "hello"):
//   0 u32 magic, 4 u16 version, 6 u16 name_length, 8 u64 schema_fingerprint, 16 u32 pid,
//   20 u32 entry_count, 24 u32 description_length, 28 u32 zero,
//   32 entries (16 bytes each: u8 packet_type, 7 zero bytes, u64 fingerprint),
//   then name_length bytes of name, then description_length bytes of description.
// Version 1 had no description: 24 bytes of header (up to entry_count), then entries, then name.
namespace {
constexpr std::size_t v1_header = 24;
constexpr std::size_t v2_header = 32;
constexpr std::size_t entry_size = 16;

void put_entries(std::vector<std::byte>& out, const std::vector<SchemaEntry>& entries) {
  for (const auto& e : entries) {
    out.push_back(std::byte{e.packet_type});
    out.insert(out.end(), 7, std::byte{0});
    put_u64(out, e.fingerprint);
  }
}
void put_text(std::vector<std::byte>& out, std::string_view s) {
  for (char c : s) out.push_back(std::byte(static_cast<unsigned char>(c)));
}

// Reads `count` entries at `at`: padding zero, packet_types >= 101 and strictly ascending.
Result<std::vector<SchemaEntry>> get_entries(std::span<const std::byte> p, std::size_t at, std::size_t count) {
  std::vector<SchemaEntry> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i, at += entry_size) {
    const auto type = std::to_integer<std::uint8_t>(p[at]);
    if (get_le(p, at + 1, 4) != 0 || get_le(p, at + 5, 3) != 0)
      return Error{Errc::malformed, "schema table entry " + std::to_string(i) + " has non-zero padding bytes"};
    if (type < min_user_packet_type)
      return Error{Errc::malformed, "schema table entry " + std::to_string(i) + " has packet_type " +
                                        std::to_string(type) + " (user messages are 101..255)"};
    if (!out.empty() && type <= out.back().packet_type)
      return Error{Errc::malformed, "schema table lists packet_type " + std::to_string(type) +
                                        " out of order or twice"};
    out.push_back({type, get_le(p, at + 8, 8)});
  }
  return out;
}
}  // namespace

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return false;
    if (s.size() - i <= n) return false;  // the sequence runs past the end
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

std::vector<std::byte> encode_hello(const Hello& h) {
  std::vector<std::byte> out;
  put_u32(out, hello_magic);
  put_u16(out, protocol_version);
  put_u16(out, static_cast<std::uint16_t>(h.name.size()));
  put_u64(out, h.schema_fingerprint);
  put_u32(out, h.pid);
  put_u32(out, static_cast<std::uint32_t>(h.entries.size()));
  put_u32(out, static_cast<std::uint32_t>(h.description.size()));
  put_u32(out, 0);
  put_entries(out, h.entries);
  put_text(out, h.name);
  put_text(out, h.description);
  return out;
}

Result<Hello> decode_hello(std::span<const std::byte> p) {
  if (p.size() < 8) return Error{Errc::truncated, "hello of " + std::to_string(p.size()) + " bytes, needs 8"};
  if (get_le(p, 0, 4) != hello_magic) return Error{Errc::malformed, "hello without the SAGE magic"};
  Hello h;
  h.version = static_cast<std::uint16_t>(get_le(p, 4, 2));
  if (h.version != 1 && h.version != protocol_version) return h;  // refused by the check, with its version
  const std::size_t header = h.version == 1 ? v1_header : v2_header;
  if (p.size() < header)
    return Error{Errc::truncated, "hello of " + std::to_string(p.size()) + " bytes, needs " + std::to_string(header)};
  const std::size_t name_len = get_le(p, 6, 2);
  h.schema_fingerprint = get_le(p, 8, 8);
  h.pid = static_cast<std::uint32_t>(get_le(p, 16, 4));
  const std::size_t count = get_le(p, 20, 4);
  const std::size_t desc_len = h.version == 1 ? 0 : get_le(p, 24, 4);
  if (h.version != 1 && get_le(p, 28, 4) != 0) return Error{Errc::malformed, "hello reserved bytes 28..31 are not zero"};
  if (count > max_hello_entries)
    return Error{Errc::malformed, "hello lists " + std::to_string(count) + " message types; at most " +
                                      std::to_string(max_hello_entries) + " exist"};
  if (name_len > max_hello_name)
    return Error{Errc::malformed, "hello name of " + std::to_string(name_len) + " bytes; at most " +
                                      std::to_string(max_hello_name)};
  if (desc_len > schema::max_description_bytes)
    return Error{Errc::too_large, "hello schema description of " + std::to_string(desc_len) + " bytes; at most " +
                                      std::to_string(schema::max_description_bytes)};
  if (p.size() != header + entry_size * count + name_len + desc_len)
    return Error{Errc::malformed, "hello length " + std::to_string(p.size()) + " does not match its " +
                                      std::to_string(count) + " entries, name of " + std::to_string(name_len) +
                                      " and description of " + std::to_string(desc_len) + " bytes"};
  auto entries = get_entries(p, header, count);
  if (!entries) return entries.error();
  h.entries = std::move(*entries);
  const char* text = reinterpret_cast<const char*>(p.data()) + header + entry_size * count;
  h.name.assign(text, name_len);
  h.description.assign(text + name_len, desc_len);
  if (!valid_utf8(h.name)) return Error{Errc::malformed, "hello name is not valid UTF-8"};
  return h;
}

// announce payload: 0 u32 entry_count, 4 u32 description_length, 8 entries, then the description.
std::vector<std::byte> encode_announce(const Announce& a) {
  std::vector<std::byte> out;
  put_u32(out, static_cast<std::uint32_t>(a.entries.size()));
  put_u32(out, static_cast<std::uint32_t>(a.description.size()));
  put_entries(out, a.entries);
  put_text(out, a.description);
  return out;
}

Result<Announce> decode_announce(std::span<const std::byte> p) {
  if (p.size() < 8) return Error{Errc::truncated, "announce of " + std::to_string(p.size()) + " bytes, needs 8"};
  const std::size_t count = get_le(p, 0, 4);
  const std::size_t desc_len = get_le(p, 4, 4);
  // An announce exists to name types registered after the hello: one naming none is a broken peer.
  if (count == 0) return Error{Errc::malformed, "announce lists no message types (k = 0; it must name 1..155)"};
  if (count > max_hello_entries || desc_len > schema::max_description_bytes ||
      p.size() != 8 + entry_size * count + desc_len)
    return Error{Errc::malformed, "announce of " + std::to_string(p.size()) + " bytes does not match its " +
                                      std::to_string(count) + " entries and description of " +
                                      std::to_string(desc_len) + " bytes"};
  Announce a;
  auto entries = get_entries(p, 8, count);
  if (!entries) return entries.error();
  a.entries = std::move(*entries);
  a.description.assign(reinterpret_cast<const char*>(p.data()) + 8 + entry_size * count, desc_len);
  return a;
}

std::vector<std::byte> encode_name(std::string_view name) {
  std::vector<std::byte> out;
  put_u16(out, static_cast<std::uint16_t>(name.size()));
  for (char c : name) out.push_back(std::byte(static_cast<unsigned char>(c)));
  return out;
}

Result<std::string> decode_name(std::span<const std::byte> p) {
  if (p.size() < 2) return Error{Errc::truncated, "group name field of " + std::to_string(p.size()) + " bytes"};
  const std::size_t n = get_le(p, 0, 2);
  if (p.size() != 2 + n || n > max_group_name)
    return Error{Errc::malformed, "group name declares " + std::to_string(n) + " bytes in a payload of " +
                                      std::to_string(p.size())};
  return std::string(reinterpret_cast<const char*>(p.data()) + 2, n);
}

// error payload: 0 u32 kind, 4 u32 text_length, 8 text bytes.
std::vector<std::byte> encode_error(const ErrorReport& e) {
  std::vector<std::byte> out;
  put_u32(out, static_cast<std::uint32_t>(e.kind));
  put_u32(out, static_cast<std::uint32_t>(e.text.size()));
  for (char c : e.text) out.push_back(std::byte(static_cast<unsigned char>(c)));
  return out;
}

Result<ErrorReport> decode_error(std::span<const std::byte> p) {
  if (p.size() < 8) return Error{Errc::truncated, "error report of " + std::to_string(p.size()) + " bytes"};
  ErrorReport e;
  e.kind = static_cast<ErrorKind>(get_le(p, 0, 4));
  const std::size_t n = get_le(p, 4, 4);
  if (p.size() != 8 + n) return Error{Errc::malformed, "error text length does not match the payload"};
  e.text.assign(reinterpret_cast<const char*>(p.data()) + 8, n);
  return e;
}

Result<void> check_compatible(const Hello& mine, const Hello& theirs, std::string_view my_name,
                              std::string_view their_name) {
  for (const auto& a : mine.entries) {
    for (const auto& b : theirs.entries) {
      if (a.packet_type == b.packet_type && a.fingerprint != b.fingerprint) {
        return Error{Errc::fingerprint_mismatch,
                     std::string(my_name) + " has schema " + hex(mine.schema_fingerprint) + " and " +
                         std::string(their_name) + " has schema " + hex(theirs.schema_fingerprint) +
                         "; packet_type " + std::to_string(a.packet_type) + " is message " + hex(a.fingerprint) +
                         " in " + std::string(my_name) + " but " + hex(b.fingerprint) + " in " +
                         std::string(their_name) + " (rebuild both from the same schemas)"};
      }
    }
  }
  return {};
}

Result<void> check_descriptions(std::string_view mine, std::string_view theirs, std::string_view my_name,
                                std::string_view their_name) {
  const std::string them(their_name);
  // "" describes no wire type at all (a node that registered none).
  auto their_desc = theirs.empty() ? schema::ParseResult{} : schema::parse(theirs);
  if (!their_desc)
    return Error{Errc::malformed, "the schema description from " + them + " does not parse: " + their_desc.error};
  auto my_desc = mine.empty() ? schema::ParseResult{} : schema::parse(mine);
  if (!my_desc) return Error{Errc::malformed, "this node's own schema description does not parse: " + my_desc.error};
  schema::CompareOptions options;
  options.level = schema::Level::wire;
  options.direction = schema::Direction::both;
  options.history = false;
  // Old = the peer, new = us: the sentences read "field X is <theirs> in <peer> but <ours> in this node".
  options.old_name = them;
  options.new_name = std::string(my_name);
  const auto cmp = schema::compare(their_desc.description, my_desc.description, options);
  if (cmp.compatible()) return {};
  std::string text = "the schemas of " + them + " and " + std::string(my_name) + " cannot talk (sagec check --level wire):";
  for (const auto& d : cmp.diagnostics)
    if (d.severity == schema::Severity::error) text += "\n  error: " + d.text;
  return Error{Errc::incompatible, std::move(text)};
}

namespace {
// `d` reduced to the message of `packet_type` and the definitions it reaches (schema::merge renumbers).
schema::Description only_message(const schema::Description& d, int packet_type) {
  schema::Description one;
  one.definitions = d.definitions;
  for (const auto& m : d.messages)
    if (m.packet_type == packet_type) one.messages.push_back(m);
  schema::Description out;
  (void)schema::merge(out, one);  // into an empty description: cannot conflict
  return out;
}
}  // namespace

Result<void> check_relay(const schema::Description& from, const schema::Description& to, int packet_type,
                         std::string_view from_name, std::string_view to_name) {
  const schema::Definition* t = to.message_table(packet_type);
  if (!t || !from.message_table(packet_type)) return {};
  schema::CompareOptions options;
  options.level = schema::Level::wire;
  options.direction = schema::Direction::both;
  options.history = false;
  options.old_name = std::string(from_name);
  options.new_name = std::string(to_name);
  const auto cmp = schema::compare(only_message(from, packet_type), only_message(to, packet_type), options);
  if (cmp.compatible()) return {};
  std::string text = "the schemas of " + std::string(from_name) + " and " + std::string(to_name) +
                     " disagree about " + t->name + " (packet_type " + std::to_string(packet_type) +
                     "), so the main group does not relay it (sagec check --level wire):";
  for (const auto& d : cmp.diagnostics)
    if (d.severity == schema::Severity::error) text += "\n  error: " + d.text;
  return Error{Errc::incompatible, std::move(text)};
}

namespace {
// The table must list exactly the description's wire messages, with their fingerprints.
Result<void> table_matches(const std::vector<SchemaEntry>& entries, std::string_view description, std::string_view who) {
  auto d = schema::parse(description);
  if (!d) return Error{Errc::malformed, "the schema description from " + std::string(who) + " does not parse: " + d.error};
  bool same = d.description.messages.size() == entries.size();
  for (std::size_t i = 0; same && i < entries.size(); ++i)
    same = d.description.messages[i].packet_type == entries[i].packet_type;
  if (!same)
    return Error{Errc::malformed, "the schema table from " + std::string(who) +
                                      " does not list the wire messages of its description"};
  return {};
}
}  // namespace

Result<void> check_negotiated(const Hello& mine, const Hello& theirs, std::string_view my_name,
                              std::string_view their_name) {
  if (theirs.version == 0)
    return Error{Errc::incompatible, std::string(their_name) + " speaks protocol 0, which no sage speaks (this build "
                                                               "speaks " + std::to_string(protocol_version) + ")"};
  if (theirs.version < protocol_version)
    return Error{Errc::incompatible, std::string(their_name) + " speaks protocol " + std::to_string(theirs.version) +
                                         "; upgrade it (this build speaks " + std::to_string(protocol_version) +
                                         "; rolling upgrades work from protocol 2 on)"};
  if (theirs.version > protocol_version)
    return Error{Errc::incompatible, std::string(their_name) + " speaks protocol " + std::to_string(theirs.version) +
                                         "; upgrade this node (it speaks " + std::to_string(protocol_version) + ")"};
  if (theirs.description.empty() && !theirs.entries.empty())
    return Error{Errc::incompatible, std::string(their_name) + " lists " + std::to_string(theirs.entries.size()) +
                                         " message types but sent no schema description to check them"};
  if (!theirs.description.empty())
    if (auto r = table_matches(theirs.entries, theirs.description, their_name); !r) return r;
  return check_descriptions(mine.description, theirs.description, my_name, their_name);
}

Result<void> check_announced(std::string_view mine, const Announce& theirs, std::string_view my_name,
                             std::string_view their_name) {
  if (theirs.description.empty())
    return Error{Errc::incompatible, std::string(their_name) + " announces " + std::to_string(theirs.entries.size()) +
                                         " message types but sent no schema description to check them"};
  if (auto r = table_matches(theirs.entries, theirs.description, their_name); !r) return r;
  return check_descriptions(mine, theirs.description, my_name, their_name);
}

}  // namespace sage::detail::protocol

#include "channel/protocol.hpp"

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

// hello payload (docs/wire-format.md "hello"):
//   0 u32 magic, 4 u16 version, 6 u16 name_length, 8 u64 schema_fingerprint, 16 u32 pid,
//   20 u32 entry_count, 24 entries (16 bytes each: u8 packet_type, 7 zero bytes, u64 fingerprint),
//   then name_length bytes of name.
std::vector<std::byte> encode_hello(const Hello& h) {
  std::vector<std::byte> out;
  put_u32(out, hello_magic);
  put_u16(out, h.version);
  put_u16(out, static_cast<std::uint16_t>(h.name.size()));
  put_u64(out, h.schema_fingerprint);
  put_u32(out, h.pid);
  put_u32(out, static_cast<std::uint32_t>(h.entries.size()));
  for (const auto& e : h.entries) {
    out.push_back(std::byte{e.packet_type});
    out.insert(out.end(), 7, std::byte{0});
    put_u64(out, e.fingerprint);
  }
  for (char c : h.name) out.push_back(std::byte(static_cast<unsigned char>(c)));
  return out;
}

Result<Hello> decode_hello(std::span<const std::byte> p) {
  if (p.size() < 24) return Error{Errc::truncated, "hello of " + std::to_string(p.size()) + " bytes, needs 24"};
  if (get_le(p, 0, 4) != hello_magic) return Error{Errc::malformed, "hello without the SAGE magic"};
  Hello h;
  h.version = static_cast<std::uint16_t>(get_le(p, 4, 2));
  if (h.version != protocol_version)
    return Error{Errc::malformed, "protocol version " + std::to_string(h.version) + ", this build speaks " +
                                      std::to_string(protocol_version)};
  const std::size_t name_len = get_le(p, 6, 2);
  h.schema_fingerprint = get_le(p, 8, 8);
  h.pid = static_cast<std::uint32_t>(get_le(p, 16, 4));
  const std::size_t count = get_le(p, 20, 4);
  if (count > 256 || p.size() != 24 + 16 * count + name_len)
    return Error{Errc::malformed, "hello length " + std::to_string(p.size()) + " does not match its " +
                                      std::to_string(count) + " entries and name of " + std::to_string(name_len)};
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t at = 24 + 16 * i;
    h.entries.push_back({std::to_integer<std::uint8_t>(p[at]), get_le(p, at + 8, 8)});
  }
  h.name.assign(reinterpret_cast<const char*>(p.data()) + 24 + 16 * count, name_len);
  return h;
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

}  // namespace sage::detail::protocol

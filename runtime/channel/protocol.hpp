// runtime/channel/protocol.hpp: the control packets every sage channel speaks, over IPC (groups) and
// TCP (network peers, remote groups). Private to the runtime.
//
// docs/wire-format.md is the specification; this header is its C++ form. Control payloads are
// fixed little-endian structs (not FlatBuffers) so that the handshake can be checked before any
// schema is trusted. Every function here is a pure function on bytes: no I/O, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sage/result.hpp"
#include "sage/wire.hpp"

namespace sage::detail::protocol {

inline constexpr std::uint32_t hello_magic = 0x45474153;  // "SAGE" read as little-endian u32
inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t max_group_name = 255;

// packet_type values of the control packets (0..100; the rest of 0..100 is reserved). "hub" is the
// main group's end of a group channel (to a child or a remote group node), "spoke" the other end.
enum class Control : std::uint8_t {
  hello = 1,       // handshake: schema table, name and pid of the sender. First record each way.
  route = 2,       // spoke -> hub: following records of this transport message go to group <name>
  from = 3,        // hub -> spoke: following records of this transport message come from <name>
  bye = 4,         // hub -> spoke: handle what arrived, flush, answer bye_ack, leave once the link closes
  bye_ack = 5,     // spoke -> hub: the last record the spoke sends; the hub closes after reading it
  error = 6,       // child -> main: the child is failing; over TCP: the handshake was refused. kind + text
  error_ack = 7,   // main -> child: the error report arrived; the child may exit now
  heartbeat = 32,  // TCP: nothing to say; proves the sender is alive. Empty payload.
  close = 33,      // TCP: the sender closes this connection on purpose; payload: reason text (UTF-8)
  join_group = 34, // TCP, node -> main: host the group named in the payload (u16 length + name)
  join_ack = 35,   // TCP, main -> node: the group is registered; empty payload
};

enum class ErrorKind : std::uint32_t {
  constructor_threw = 1,  // the default actor's constructor threw
  tick_threw = 2,         // an exception escaped the child's tick (update() or a handler)
  handshake_refused = 3,  // the hello was refused (schemas disagree, bad name...)
  other = 4,
};

// One entry of a process's schema table: a wire message it can encode and decode.
struct SchemaEntry {
  std::uint8_t packet_type = 0;
  std::uint64_t fingerprint = 0;
  friend bool operator==(const SchemaEntry&, const SchemaEntry&) = default;
};

struct Hello {
  std::uint16_t version = protocol_version;
  std::uint32_t pid = 0;
  std::uint64_t schema_fingerprint = 0;
  std::vector<SchemaEntry> entries;  // sorted by packet_type, unique
  std::string name;                  // group name of the sender ("" for the main group)
};

struct ErrorReport {
  ErrorKind kind = ErrorKind::other;
  std::string text;
};

// FNV-1a 64 over (packet_type, fingerprint as 8 little-endian bytes) of the entries sorted by
// packet_type. Order-independent in its input; docs/wire-format.md gives the exact steps.
std::uint64_t schema_fingerprint(std::vector<SchemaEntry> entries);

std::vector<std::byte> encode_hello(const Hello& h);
Result<Hello> decode_hello(std::span<const std::byte> payload);

// route/from payload: u16 length, then the group name bytes.
std::vector<std::byte> encode_name(std::string_view name);
Result<std::string> decode_name(std::span<const std::byte> payload);

std::vector<std::byte> encode_error(const ErrorReport& e);
Result<ErrorReport> decode_error(std::span<const std::byte> payload);

// The exact check: every packet_type both tables know has the same fingerprint on both sides
// (process groups, forked from one binary, and today's network peers).
// On mismatch: Errc::fingerprint_mismatch with a sentence naming both fingerprints.
Result<void> check_compatible(const Hello& mine, const Hello& theirs, std::string_view my_name,
                              std::string_view their_name);

inline void append_control(std::vector<std::byte>& out, Control c, std::span<const std::byte> payload = {}) {
  wire::append_record(out, static_cast<std::uint8_t>(c), payload);
}
constexpr std::uint8_t code(Control c) noexcept { return static_cast<std::uint8_t>(c); }

}  // namespace sage::detail::protocol

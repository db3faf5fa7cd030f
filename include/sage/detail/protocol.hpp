// sage/detail/protocol.hpp: the control packets of the group protocol (internal).
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

// packet_type values of the control packets (0..100; the rest of 0..100 is reserved).
enum class Control : std::uint8_t {
  hello = 1,      // handshake: schema table, name and pid of the sender. First record each way.
  route = 2,      // child -> main: following records of this transport message go to group <name>
  from = 3,       // main -> child: following records of this transport message come from <name>
  bye = 4,        // main -> child: handle what arrived, flush, answer bye_ack, exit 0 once the link closes
  bye_ack = 5,    // child -> main: the last record the child sends; main closes the link after reading it
  error = 6,      // child -> main: the child is failing; kind + text
  error_ack = 7,  // main -> child: the error report arrived; the child may exit now
};

enum class ErrorKind : std::uint32_t {
  constructor_threw = 1,  // the default actor's constructor threw
  tick_threw = 2,         // an exception escaped the child's tick (update() or a handler)
  handshake_refused = 3,  // schema fingerprints disagree
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

// Checks that every packet_type both tables know has the same fingerprint on both sides.
// On mismatch: Errc::fingerprint_mismatch with a sentence naming both fingerprints.
Result<void> check_compatible(const Hello& mine, const Hello& theirs, std::string_view my_name,
                              std::string_view their_name);

inline void append_control(std::vector<std::byte>& out, Control c, std::span<const std::byte> payload = {}) {
  wire::append_record(out, static_cast<std::uint8_t>(c), payload);
}

}  // namespace sage::detail::protocol

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

namespace sage::schema {
struct Description;
}

namespace sage::detail::protocol {

inline constexpr std::uint32_t hello_magic = 0x45474153;  // "SAGE" read as little-endian u32
// Version 2: the hello carries the schema description (negotiated check, announce). Version 1 (sage
// before schema negotiation) is decoded only to refuse it with a clear reason.
inline constexpr std::uint16_t protocol_version = 2;
inline constexpr std::size_t max_group_name = 255;
// Bounds of a hello: NetworkOptions::name / group names, the schema table, the description text
// (schema::max_description_bytes, 256 KiB).
inline constexpr std::size_t max_hello_name = 255;
inline constexpr std::size_t max_hello_entries = 155;  // packet_types 101..255

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
  announce = 36,   // TCP: wire types registered after the hello: u32 count, 16-byte entries, description
};

enum class ErrorKind : std::uint32_t {
  constructor_threw = 1,  // the default actor's constructor threw
  tick_threw = 2,         // an exception escaped the child's tick (update() or a handler)
  handshake_refused = 3,  // the hello was refused (schemas disagree, bad name...)
  other = 4,
  full = 5,               // TCP: the listener is at max_peers (or max_peers_per_address): try again later
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
  std::vector<SchemaEntry> entries;  // sorted by packet_type, unique, each >= 101
  std::string name;                  // group name of the sender ("" for the main group); <= 255 bytes, UTF-8
  // Version 2: the "sage-schema 1" text of every wire type in `entries` (schema::combine of their
  // T::schema_description), or "" when the sender does not negotiate (process groups).
  std::string description;
};

// Wire types one end registered after its hello (Control::announce): entries and their description.
struct Announce {
  std::vector<SchemaEntry> entries;
  std::string description;
};

struct ErrorReport {
  ErrorKind kind = ErrorKind::other;
  std::string text;
};

// FNV-1a 64 over (packet_type, fingerprint as 8 little-endian bytes) of the entries sorted by
// packet_type. Order-independent in its input; docs/wire-format.md gives the exact steps.
std::uint64_t schema_fingerprint(std::vector<SchemaEntry> entries);

// encode_hello writes version 2 (docs/wire-format.md "hello"); `h` must be valid as decode_hello
// checks it. decode_hello is strict: version 2 with every reserved/padding byte zero, packet_types
// >= 101 strictly ascending, name <= 255 bytes of valid UTF-8, description <= 256 KiB, lengths that
// add up; a version-1 hello is decoded (name, pid, entries) so that the receiver can refuse it with
// a reason; any other version gives a Hello with only `version` set. It never parses the
// description (schema::parse does, in the check policy).
std::vector<std::byte> encode_hello(const Hello& h);
Result<Hello> decode_hello(std::span<const std::byte> payload);

// announce payload: u32 entry_count, u32 description_length, entries (16 bytes), description.
std::vector<std::byte> encode_announce(const Announce& a);
Result<Announce> decode_announce(std::span<const std::byte> payload);

// True when `s` is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

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

// The negotiated check (network peers and remote groups; docs/network.md "Schema evolution"): the
// peer speaks protocol 2 and sent a description that parses, its table matches the description, and
// schema::compare(theirs, mine, {Level::wire, Direction::both, history = false}) finds no error:
// the same function `sagec check --peers --against --level wire` runs. On refusal: Errc::incompatible
// with its diagnostics ("error: field evo.Order.id is int in peer 1.2.3.4:5 but long in this node"),
// or the version refusal ("peer speaks protocol 1; upgrade it").
Result<void> check_negotiated(const Hello& mine, const Hello& theirs, std::string_view my_name,
                              std::string_view their_name);
// The same for an announce (types registered after the hello): a description, which its entries list
// exactly, that can talk to `mine` (this node's description text).
Result<void> check_announced(std::string_view mine, const Announce& theirs, std::string_view my_name,
                             std::string_view their_name);
// The heart of check_negotiated on two description texts (also what tests run the docs' table through).
Result<void> check_descriptions(std::string_view mine, std::string_view theirs, std::string_view my_name,
                                std::string_view their_name);
// The relay check (a main group forwarding a record of `packet_type` from one negotiating group to
// another, docs/network.md "Relaying"): both ends were checked against the main group, not against
// each other, so the main group compares what the two say about this one message: the message's
// table and what it reaches, with the same compare() and options as check_descriptions. Ok when
// either description lacks the message (the caller refuses unknown types separately).
Result<void> check_relay(const schema::Description& from, const schema::Description& to, int packet_type,
                         std::string_view from_name, std::string_view to_name);

inline void append_control(std::vector<std::byte>& out, Control c, std::span<const std::byte> payload = {}) {
  wire::append_record(out, static_cast<std::uint8_t>(c), payload);
}
constexpr std::uint8_t code(Control c) noexcept { return static_cast<std::uint8_t>(c); }

}  // namespace sage::detail::protocol

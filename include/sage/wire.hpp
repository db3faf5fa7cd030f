// sage/wire.hpp: the record framing every sage transport uses (docs/wire-format.md).
//
// One transport message (a frame body on a group link or TCP, a packet over ENet) carries one or
// more records, back to back:
//
//   offset 0  u8   packet_type   0..100 control packets, 101..255 schema messages
//   offset 1  u8   flags         must be 0 in this version
//   offset 2  u16  reserved      must be 0
//   offset 4  u32  length        payload bytes, little endian, not counting padding
//   offset 8  payload            a finished FlatBuffer, `length` bytes
//             padding            zero bytes up to the next multiple of 8
//
// Payloads start 8-aligned relative to the start of the transport message, so a reader whose
// buffer is 8-aligned can hand the payload to the FlatBuffers Verifier in place.
// Header-only: used by the runtime's transport and by `sagec encode/decode`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "sage/result.hpp"

namespace sage::wire {

inline constexpr std::size_t record_alignment = 8;
inline constexpr std::size_t record_header_size = 8;

// The deepest a payload may nest: tables inside tables (through table fields, vectors of tables
// and unions), the root table counting 1. Receivers verify every payload with this limit and
// drop a deeper one as bad input; senders refuse a deeper message at the send call (Errc::too_deep),
// so nothing accepted at send is lost to it. Part of the wire format: peers built from different
// versions must agree on it (docs/wire-format.md "Limits"). Equal to the FlatBuffers Verifier's
// default, now passed explicitly.
inline constexpr std::uint32_t max_message_depth = 64;
// The most tables one payload may hold (the FlatBuffers Verifier's default, passed explicitly).
// A payload over it is dropped by the receiver; sizes are bounded first by max_message_size.
inline constexpr std::uint32_t max_message_tables = 1'000'000;

struct RecordHeader {
  std::uint8_t packet_type = 0;
  std::uint8_t flags = 0;
  std::uint32_t length = 0;
};

struct Record {
  std::uint8_t packet_type = 0;
  std::span<const std::byte> payload;
};

constexpr std::size_t padded(std::size_t n) noexcept {
  return (n + record_alignment - 1) & ~(record_alignment - 1);
}

// Bytes a record with `payload_size` bytes of payload takes, header and padding included.
constexpr std::size_t record_size(std::size_t payload_size) noexcept {
  return record_header_size + padded(payload_size);
}

// Appends one record to `out`. Precondition: out.size() is a multiple of 8 (it is, if `out` holds
// only records) and payload.size() < 2^32.
inline void append_record(std::vector<std::byte>& out, std::uint8_t packet_type,
                          std::span<const std::byte> payload) {
  const std::size_t at = out.size();
  const auto len = static_cast<std::uint32_t>(payload.size());
  const std::byte header[record_header_size] = {std::byte{packet_type}, std::byte{0}, std::byte{0}, std::byte{0},
                                                std::byte(len & 0xff),        std::byte((len >> 8) & 0xff),
                                                std::byte((len >> 16) & 0xff), std::byte((len >> 24) & 0xff)};
  // Grows (geometrically) at most once; the payload is copied in, not zero-filled first (only
  // the padding is).
  const std::size_t end = at + record_size(payload.size());
  if (out.capacity() < end) out.reserve(std::max(end, 2 * out.capacity()));
  out.insert(out.end(), header, header + record_header_size);
  out.insert(out.end(), payload.begin(), payload.end());
  out.resize(end, std::byte{0});
}

// Parses the header at the front of `bytes`.
inline Result<RecordHeader> read_header(std::span<const std::byte> bytes) {
  if (bytes.size() < record_header_size)
    return Error{Errc::truncated, std::to_string(bytes.size()) + " bytes left, a record header needs 8"};
  RecordHeader h;
  h.packet_type = std::to_integer<std::uint8_t>(bytes[0]);
  h.flags = std::to_integer<std::uint8_t>(bytes[1]);
  if (h.flags != 0 || bytes[2] != std::byte{0} || bytes[3] != std::byte{0})
    return Error{Errc::malformed, "flags and reserved bytes must be zero"};
  h.length = std::to_integer<std::uint32_t>(bytes[4]) | (std::to_integer<std::uint32_t>(bytes[5]) << 8) |
             (std::to_integer<std::uint32_t>(bytes[6]) << 16) | (std::to_integer<std::uint32_t>(bytes[7]) << 24);
  return h;
}

// Calls visit(Record) for each record of a transport message, in order. Stops at the first
// malformed record (bad header, length past the end, nonzero padding) and returns why; records
// before it have been visited, the malformed one has not. `body` must start on an
// 8-byte boundary (copy it into aligned storage first if it does not).
template <class Visitor>
Result<void> for_each_record(std::span<const std::byte> body, Visitor&& visit) {
  if (reinterpret_cast<std::uintptr_t>(body.data()) % record_alignment != 0)
    return Error{Errc::misaligned, "transport message does not start on an 8-byte boundary"};
  if (body.empty()) return Error{Errc::truncated, "empty transport message"};
  std::size_t at = 0;
  while (at < body.size()) {
    auto h = read_header(body.subspan(at));
    if (!h) return h.error();
    const std::size_t left = body.size() - at - record_header_size;
    if (h->length > left)
      return Error{Errc::truncated, "record declares " + std::to_string(h->length) + " payload bytes, " +
                                        std::to_string(left) + " left"};
    // The padding up to the next record (or the end: the last record's may be omitted) is zero.
    const std::size_t end = std::min(body.size(), at + record_header_size + padded(h->length));
    for (std::size_t i = at + record_header_size + h->length; i < end; ++i)
      if (body[i] != std::byte{0}) return Error{Errc::malformed, "padding after a record must be zero"};
    visit(Record{h->packet_type, body.subspan(at + record_header_size, h->length)});
    at = end;
  }
  return {};
}

}  // namespace sage::wire

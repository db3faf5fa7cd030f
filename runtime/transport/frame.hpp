// runtime/transport/frame.hpp: the frame of sage's byte-stream transports (docs/wire-format.md
// "TCP framing"), used by the TCP/TLS stream (stream.hpp) and the socket connection of process
// groups (socket_conn.hpp). Pure byte-level functions: no I/O, no allocation; fuzzed by
// tests/fuzz/fuzz_frames.cpp.
//
// A frame is an 8-byte header, then a body of `length` bytes (a transport message made of wire
// records). Header: u32 body length (little endian), then 'S' 'G', version 1, flags 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sage::detail {

inline constexpr std::size_t frame_header_size = 8;
inline constexpr std::uint8_t frame_version = 1;

// Writes the header of a frame whose body has `length` bytes.
void write_frame_header(std::byte* out, std::uint32_t length) noexcept;

// What the bytes at the start of a receive buffer hold.
struct FrameStep {
  enum class Kind : std::uint8_t {
    need_more,   // no complete frame yet: `need` bytes (header and body) make the next one whole
    frame,       // a complete frame: body of `length` bytes at offset frame_header_size
    malformed,   // the header is not a sage frame header: the stream cannot be resynchronised
    too_large,   // the header announces `length` > max_body: refused before anything is allocated
  };
  Kind kind = Kind::need_more;
  std::uint32_t length = 0;  // body length once the header is complete (frame, too_large, need_more)
  std::size_t need = frame_header_size;  // need_more: header + body bytes the frame needs in all
};

// Looks at the frame starting at bytes[0]. A header is checked as soon as its 8 bytes are there,
// so a bad or oversize header is reported before its body arrives (or is allocated for).
// For `frame`, the frame occupies bytes[0, frame_header_size + length). Never reads past `bytes`.
FrameStep next_frame(std::span<const std::byte> bytes, std::size_t max_body) noexcept;

}  // namespace sage::detail

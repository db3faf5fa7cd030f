// The frame header (runtime/transport/frame.hpp).
#include "transport/frame.hpp"

namespace sage::detail {

void write_frame_header(std::byte* out, std::uint32_t length) noexcept {
  for (int i = 0; i < 4; ++i) out[i] = std::byte((length >> (8 * i)) & 0xff);
  out[4] = std::byte{'S'};
  out[5] = std::byte{'G'};
  out[6] = std::byte{frame_version};
  out[7] = std::byte{0};
}

FrameStep next_frame(std::span<const std::byte> bytes, std::size_t max_body) noexcept {
  FrameStep s;
  if (bytes.size() < frame_header_size) return s;
  const std::byte* h = bytes.data();
  if (h[4] != std::byte{'S'} || h[5] != std::byte{'G'} || h[6] != std::byte{frame_version} || h[7] != std::byte{0}) {
    s.kind = FrameStep::Kind::malformed;
    return s;
  }
  s.length = std::to_integer<std::uint32_t>(h[0]) | (std::to_integer<std::uint32_t>(h[1]) << 8) |
             (std::to_integer<std::uint32_t>(h[2]) << 16) | (std::to_integer<std::uint32_t>(h[3]) << 24);
  if (s.length > max_body) {
    s.kind = FrameStep::Kind::too_large;
    return s;
  }
  s.need = frame_header_size + s.length;
  s.kind = bytes.size() >= s.need ? FrameStep::Kind::frame : FrameStep::Kind::need_more;
  return s;
}

}  // namespace sage::detail

// Fuzzes the frame parser of the byte-stream transports (runtime/transport/frame.hpp): any bytes
// walked frame by frame must yield frames that lie inside the input, with the length the header
// says, or stop at need_more / malformed / too_large; never a read past the end. Each frame found
// re-encodes to the same header.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "transport/frame.hpp"

using namespace sage::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Exact-size storage so ASan sees any read past the end. The first byte picks the size limit.
  if (size == 0) return 0;
  const std::size_t max_body = std::size_t{1} << (data[0] % 24);
  std::vector<std::byte> buf(size - 1);
  if (!buf.empty()) std::memcpy(buf.data(), data + 1, buf.size());
  std::size_t at = 0;
  for (;;) {
    const std::span<const std::byte> rest(buf.data() + at, buf.size() - at);
    const FrameStep s = next_frame(rest, max_body);
    if (s.kind == FrameStep::Kind::need_more) {
      if (s.need <= rest.size()) std::abort();  // it said more, but the frame was all there
      if (rest.size() >= frame_header_size && s.need != frame_header_size + s.length) std::abort();
      break;
    }
    if (s.kind == FrameStep::Kind::too_large) {
      if (s.length <= max_body) std::abort();
      break;
    }
    if (s.kind == FrameStep::Kind::malformed) break;
    if (s.length > max_body || frame_header_size + s.length > rest.size()) std::abort();
    std::byte header[frame_header_size];
    write_frame_header(header, s.length);
    if (std::memcmp(header, rest.data(), frame_header_size) != 0) std::abort();
    at += frame_header_size + s.length;
  }
  return 0;
}

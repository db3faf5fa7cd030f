// Fuzzes the record framing (include/sage/wire.hpp): any bytes must either parse into records
// that lie inside the input, or be refused with an error. Never a crash or an out-of-bounds read.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sage/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The transport hands for_each_record an 8-aligned copy; do the same, with exact-size storage so
  // ASan sees any read past the end.
  auto* buf = static_cast<std::byte*>(std::aligned_alloc(8, (size + 7) / 8 * 8 + 8));
  if (size) std::memcpy(buf, data, size);
  const std::span<const std::byte> body(buf, size);
  std::size_t total = 0;
  auto r = sage::wire::for_each_record(body, [&](sage::wire::Record rec) {
    if (rec.payload.data() < body.data() || rec.payload.data() + rec.payload.size() > body.data() + body.size())
      std::abort();
    if (reinterpret_cast<std::uintptr_t>(rec.payload.data()) % sage::wire::record_alignment != 0) std::abort();
    total += rec.payload.size();
  });
  // A message that parsed completely re-encodes to itself when its padding is canonical.
  if (r.ok()) {
    std::vector<std::byte> again;
    (void)sage::wire::for_each_record(body, [&](sage::wire::Record rec) {
      sage::wire::append_record(again, rec.packet_type, rec.payload);
    });
    if (again.size() < size) std::abort();
  }
  std::free(buf);
  return 0;
}

#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "sage/wire.hpp"

namespace {
std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(std::byte(b));
  return out;
}
struct alignas(8) Aligned {
  std::array<std::byte, 256> data{};
};
}  // namespace

TEST_CASE("records written back to back are read back in order with their payloads") {
  std::vector<std::byte> msg;
  sage::wire::append_record(msg, 101, bytes_of({1, 2, 3}));
  sage::wire::append_record(msg, 255, {});
  sage::wire::append_record(msg, 7, bytes_of({9, 8, 7, 6, 5, 4, 3, 2, 1}));
  CHECK(msg.size() == 16 + 8 + 24);
  Aligned buf;
  std::copy(msg.begin(), msg.end(), buf.data.begin());
  std::vector<std::pair<int, std::size_t>> seen;
  auto r = sage::wire::for_each_record(std::span(buf.data.data(), msg.size()), [&](sage::wire::Record rec) {
    seen.emplace_back(rec.packet_type, rec.payload.size());
  });
  REQUIRE(r.ok());
  CHECK(seen == std::vector<std::pair<int, std::size_t>>{{101, 3}, {255, 0}, {7, 9}});
}

TEST_CASE("a record that declares more bytes than arrived is reported as truncated") {
  Aligned buf;
  std::vector<std::byte> msg;
  sage::wire::append_record(msg, 101, bytes_of({1, 2, 3, 4, 5, 6, 7, 8}));
  std::copy(msg.begin(), msg.end(), buf.data.begin());
  auto r = sage::wire::for_each_record(std::span(buf.data.data(), 12), [](auto) { FAIL("no record expected"); });
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::truncated);
  CHECK(r.error().message().find("declares 8") != std::string::npos);
}

TEST_CASE("nonzero flags, a short header and a misaligned buffer are refused") {
  Aligned buf;
  buf.data[1] = std::byte{1};
  CHECK(sage::wire::for_each_record(std::span(buf.data.data(), 8), [](auto) {}).error() == sage::Errc::malformed);
  CHECK(sage::wire::for_each_record(std::span(buf.data.data(), 5), [](auto) {}).error() == sage::Errc::truncated);
  CHECK(sage::wire::for_each_record(std::span(buf.data.data() + 1, 8), [](auto) {}).error() ==
        sage::Errc::misaligned);
}

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

TEST_CASE("nonzero padding after a record is refused before the record is visited, also when the last record's padding is short") {
  std::vector<std::byte> msg;
  sage::wire::append_record(msg, 101, bytes_of({1, 2, 3}));  // 3 payload bytes, 5 of padding
  sage::wire::append_record(msg, 102, bytes_of({4}));        // 1 payload byte, 7 of padding
  Aligned buf;
  std::copy(msg.begin(), msg.end(), buf.data.begin());
  int visited = 0;
  // Intact, and with the last record's padding cut short (allowed): both records.
  CHECK(sage::wire::for_each_record(std::span(buf.data.data(), msg.size()), [&](auto) { ++visited; }).ok());
  CHECK(sage::wire::for_each_record(std::span(buf.data.data(), 8 + 8 + 8 + 3), [&](auto) { ++visited; }).ok());
  CHECK(visited == 4);
  visited = 0;
  buf.data[8 + 3 + 4] = std::byte{0xff};  // the first record's last padding byte
  auto r = sage::wire::for_each_record(std::span(buf.data.data(), msg.size()), [&](auto) { ++visited; });
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == sage::Errc::malformed);
  CHECK(r.error().detail == "padding after a record must be zero");
  CHECK(visited == 0);
  buf.data[8 + 3 + 4] = std::byte{0};
  buf.data[16 + 8 + 1] = std::byte{1};  // inside the short tail of the last record
  r = sage::wire::for_each_record(std::span(buf.data.data(), 16 + 8 + 2), [&](auto) { ++visited; });
  REQUIRE_FALSE(r.ok());
  CHECK(visited == 1);
}

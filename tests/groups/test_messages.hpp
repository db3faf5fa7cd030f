// Hand-written wire messages for the group tests: what sagec generates, written with FlatBuffers'
// builder and verifier directly (one table, field 0 at vtable offset 4).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "sage/message.hpp"

namespace test {

inline sage::Result<const flatbuffers::Table*> verified_root(std::span<const std::byte> b, flatbuffers::Verifier& v) {
  if (b.size() < 8) return sage::Error{sage::Errc::verify_failed, "buffer of " + std::to_string(b.size()) + " bytes"};
  auto* t = flatbuffers::GetRoot<flatbuffers::Table>(b.data());
  if (!v.VerifyOffset(0) || !t->VerifyTableStart(v)) return sage::Error{sage::Errc::verify_failed, "bad table"};
  return t;
}

// A table with one scalar field `value` of type V.
template <class Tag, std::uint8_t PT, class V, std::uint64_t FP>
struct Scalar {
  static constexpr std::uint8_t packet_type = PT;
  static constexpr std::string_view message_name = Tag::name;
  static constexpr std::uint64_t fingerprint = FP;
  V value{};

  void encode(flatbuffers::FlatBufferBuilder& fbb) const {
    const auto start = fbb.StartTable();
    fbb.AddElement<V>(4, value, V{});
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
  }
  static sage::Result<Scalar> decode(std::span<const std::byte> b) {
    flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
    auto t = verified_root(b, v);
    if (!t) return t.error();
    if (!(*t)->template VerifyField<V>(v, 4, sizeof(V)) || !v.EndTable())
      return sage::Error{sage::Errc::verify_failed, "field value"};
    return Scalar{(*t)->template GetField<V>(4, V{})};
  }
};

struct PingTag { static constexpr std::string_view name = "test.Ping"; };
struct PongTag { static constexpr std::string_view name = "test.Pong"; };
struct FoodTag { static constexpr std::string_view name = "test.Food"; };
struct SeqTag { static constexpr std::string_view name = "test.Seq"; };
struct DoneTag { static constexpr std::string_view name = "test.Done"; };
struct PingV2Tag { static constexpr std::string_view name = "test.Ping"; };

using Ping = Scalar<PingTag, 101, std::int32_t, 0x1001>;
using Pong = Scalar<PongTag, 102, std::int32_t, 0x1002>;
using Food = Scalar<FoodTag, 104, std::int32_t, 0x1004>;
using Seq = Scalar<SeqTag, 105, std::uint64_t, 0x1005>;
using Done = Scalar<DoneTag, 106, std::uint64_t, 0x1006>;
// Same packet_type as Ping, other layout: a build from other schemas.
using PingV2 = Scalar<PingV2Tag, 101, std::int64_t, 0x2001>;

// A table with one [int] field.
struct IntArray {
  static constexpr std::uint8_t packet_type = 103;
  static constexpr std::string_view message_name = "test.IntArray";
  static constexpr std::uint64_t fingerprint = 0x1003;
  std::vector<std::int32_t> values;

  void encode(flatbuffers::FlatBufferBuilder& fbb) const {
    auto vec = fbb.CreateVector(values);
    const auto start = fbb.StartTable();
    fbb.AddOffset(4, vec);
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
  }
  static sage::Result<IntArray> decode(std::span<const std::byte> b) {
    flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
    auto t = verified_root(b, v);
    if (!t) return t.error();
    if (!(*t)->VerifyOffset(v, 4)) return sage::Error{sage::Errc::verify_failed, "values"};
    auto* vec = (*t)->GetPointer<const flatbuffers::Vector<std::int32_t>*>(4);
    if (vec && !v.VerifyVector(vec)) return sage::Error{sage::Errc::verify_failed, "values"};
    if (!v.EndTable()) return sage::Error{sage::Errc::verify_failed, "table"};
    IntArray m;
    if (vec) m.values.assign(vec->begin(), vec->end());
    return m;
  }
};

using all_messages = sage::type_list<Ping, Pong, IntArray, Food, Seq, Done>;

}  // namespace test

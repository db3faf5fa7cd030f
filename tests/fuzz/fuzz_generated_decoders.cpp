// Fuzzes the per-message decoders sagec generates (tests/codegen/schemas/alltypes.fbs and golden.fbs:
// every scalar width, strings, vectors of every element kind, structs, nested and required tables,
// optional scalars, deprecated fields) and the feature schemas beside them (unions, vectors of unions,
// fixed-size arrays, recursive tables, string defaults, escaped names). The first input byte picks the message class, the rest is
// its FlatBuffer. decode() must refuse bad bytes with an Error or return a value; a value that
// decoded must encode to bytes that decode again and re-encode to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "alltypes.sage.hpp"
#include "arrays.sage.hpp"
#include "defaults.sage.hpp"
#include "golden.sage.hpp"
#include "names.sage.hpp"
#include "pancakes.sage.hpp"
#include "recursive.sage.hpp"
#include "union_vectors.sage.hpp"
#include "unions.sage.hpp"

namespace {

template <class T>
void round_trip(std::span<const std::byte> bytes) {
  auto first = T::decode(bytes);
  if (!first) {
    if (first.error().message().empty()) std::abort();  // every refusal says why
    return;
  }
  const auto encoded = first->to_bytes();
  auto second = T::decode(encoded);
  if (!second) std::abort();  // what we encode must verify
  const auto again = second->to_bytes();
  if (again != encoded) std::abort();  // encoding is a function of the value
}

template <class... Ts>
void dispatch(sage::type_list<Ts...>, std::size_t which, std::span<const std::byte> bytes) {
  std::size_t i = 0;
  ((i++ == which ? round_trip<Ts>(bytes) : void()), ...);
}

using all_messages =
    sage::type_list<sagetest::Scalars, sagetest::Defaults, sagetest::Texts, sagetest::Vectors, sagetest::Nested,
                    sagetest::Keywords, sagetest::Empty, sagetest::WithDeprecated, kitchen::orders::OrderMessage,
                    pancakes::FoodAvailableMessage, pancakes::FoodOnTableMessage, pancakes::PancakeStackMessage,
                    feat::unions::Serve, feat::union_vectors::Document, feat::arrays::Placed, feat::recursive::Node,
                    feat::defaults::Greeting, feat::names::class_::Field_>;
constexpr std::size_t message_count = 18;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t which = data[0] % message_count;
  // Exact-size heap copy: ASan sees any read past the end. decode() accepts any alignment.
  std::vector<std::byte> bytes(size - 1);
  if (size > 1) std::memcpy(bytes.data(), data + 1, size - 1);
  dispatch(all_messages{}, which, bytes);
  return 0;
}

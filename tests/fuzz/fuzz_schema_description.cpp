// Fuzzes the schema description parser (runtime/schema/description.hpp), which reads what a peer
// sends in its hello, and compare()/merge() on whatever it accepts. The input is one description, or
// two separated by a 0x01 byte (compared with each other both ways, as versions and as peers).
// Contracts checked: parse never crashes, hangs or throws; an accepted text is canonical
// (to_text(parse(t)) == t); a description is compatible with itself; merge with itself changes nothing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "compat.hpp"
#include "description.hpp"

namespace sd = sage::schema;

namespace {

void check_one(const sd::Description& d, std::string_view text) {
  if (sd::to_text(d) != text) std::abort();
  if (!sd::compare(d, d).diagnostics.empty()) std::abort();
  sd::Description copy = d;
  if (!sd::merge(copy, d).empty() || !(copy == d)) std::abort();
}

void compare_both(const sd::Description& a, const sd::Description& b) {
  sd::CompareOptions peers;
  peers.history = false;
  const bool ab = sd::compare(a, b, peers).compatible();
  const bool ba = sd::compare(b, a, peers).compatible();
  (void)ab;
  (void)ba;
  for (const auto level : {sd::Level::wire, sd::Level::json}) {
    sd::CompareOptions o;
    o.level = level;
    (void)sd::compare(a, b, o);
    (void)sd::compare(b, a, o);
  }
  sd::Description merged = a;
  if (sd::merge(merged, b).empty() && !sd::parse(sd::to_text(merged))) std::abort();  // merge keeps it valid
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto split = input.find('\x01');
  const auto first = input.substr(0, split);
  const auto a = sd::parse(first);
  if (a) check_one(a.description, first);
  if (split == std::string_view::npos) return 0;
  const auto second = input.substr(split + 1);
  const auto b = sd::parse(second);
  if (b) check_one(b.description, second);
  if (a && b) compare_both(a.description, b.description);
  return 0;
}

// codec_peer: the C++ half of tests/python/test_codec.py. `codec_peer write DIR` encodes one sample
// value of each message below into DIR/<name>.bin; `codec_peer check DIR` decodes DIR/<name>.py.bin
// (written by the Python classes sagec generates, from the same samples) and compares them with the
// samples. Exit 0 when everything matched; otherwise one line per mismatch on stderr and exit 1.
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "alltypes.sage.hpp"
#include "arrays.sage.hpp"
#include "golden.sage.hpp"
#include "interop.sage.hpp"
#include "union_vectors.sage.hpp"
#include "unions.sage.hpp"

namespace {

using namespace sagetest;
namespace uv = feat::union_vectors;

Scalars scalars() {
  return Scalars{true, -5, 200, -30000, 60000, -2000000000, 4000000000U, -9000000000000000000LL, 18000000000000000000ULL,
                 1.5f, -2.25};
}

Defaults defaults() {
  Defaults d;
  d.count = 1;
  d.ratio = 0.25f;
  d.on = false;
  d.color = Color::green;
  d.maybe = 7;
  d.maybe_flag = false;
  d.big = Big::small;
  d.lowest = 0;
  d.far = 1.0;
  return d;
}

Mixed mixed() { return Mixed{-1, 2.5, Color::blue, Vec3{4, 5, 6}, true}; }

Inner inner(std::string name, int score) {
  Inner i;
  i.name = std::move(name);
  i.score = score;
  return i;
}

Texts texts() {
  Texts t;
  t.text = "h\xc3\xa9llo";
  t.names = {"a", "", "\xc3\xbc"};
  t.must = "m";
  return t;
}

Vectors vectors() {
  Vectors v;
  v.ints = {1, -2, 3};
  v.bytes = {0, 255};
  v.bools = {true, false, true};
  v.doubles = {0.5};
  v.colors = {Color::red, Color::blue};
  v.points = {Vec3{1, 2, 3}};
  v.mixed = {mixed()};
  v.inners = {inner("x", 1), Inner{}};
  v.longs = {-1, 1LL << 40};
  return v;
}

Nested nested() {
  Nested n;
  n.pos = Vec3{1, 2, 3};
  n.mixed = mixed();
  n.inner = inner("in", 9);
  n.must = inner("must", 7);
  Deep deep;
  deep.inner = inner("d", 1);
  deep.list = {inner("l1", 2)};
  n.deep = deep;
  return n;
}

Keywords keywords() {
  Keywords k;
  k.class_ = 1;
  k.namespace_ = "ns";
  k.packet_type_ = 2;
  k.decode_ = {3, 4};
  k.fbb = 5;
  k.start = "s";
  k.fbb_ref = 6;
  return k;
}

WithDeprecated with_deprecated() {
  WithDeprecated w;
  w.a = 1;
  w.b = "b";
  return w;
}

feat::unions::Serve serve() {
  feat::unions::Serve s;
  s.table_no = 4;
  feat::unions::Waffle w;
  w.grid = {1, 2};
  s.food = w;
  feat::unions::Pancake p;
  p.size = 3;
  p.syrup = true;
  s.spare = p;
  return s;
}

uv::Document document() {
  uv::Document d;
  uv::Text t;
  t.body = "t";
  uv::Image img;
  img.width = 640;
  img.height = 480;
  uv::Group g;
  g.title = "g";
  uv::Text inner_text;
  inner_text.body = "inner";
  g.parts = {inner_text};
  d.parts = {t, img, sage::Box<uv::Group>(g)};
  uv::Image cover;
  cover.width = 1;
  cover.height = 2;
  d.cover = cover;
  return d;
}

feat::arrays::Placed placed() {
  feat::arrays::Placed p;
  for (int i = 0; i < 16; ++i) p.at.matrix[static_cast<std::size_t>(i)] = static_cast<float>(i);
  p.at.ids = {1, 2, 3};
  p.at.suits = {feat::arrays::Suit::spades, feat::arrays::Suit::hearts};
  for (int i = 0; i < 4; ++i)
    p.at.corners[static_cast<std::size_t>(i)] = feat::arrays::Vec2{static_cast<float>(i), static_cast<float>(-i)};
  p.at.tag = -3;
  p.path = {feat::arrays::Transform{}};
  return p;
}

kitchen::orders::OrderMessage order() {
  kitchen::orders::OrderMessage o;
  o.guest = "ann";
  o.appetite = kitchen::orders::Appetite::starving;
  o.seat = kitchen::orders::Seat{12, 3};
  kitchen::orders::Plate plate;
  plate.count = 2;
  plate.toppings = {"syrup"};
  o.plate = plate;
  o.tip = 1.5f;
  return o;
}

// Keyed vectors sorted by key, as C++ writes them (the Python test also sends them unsorted).
interop::Inventory inventory() {
  interop::Inventory inv;
  inv.owner = "ann";
  interop::Item apple, pear;
  apple.name = "apple";
  apple.count = 1;
  pear.name = "pear";
  pear.count = 2;
  inv.items = {apple, pear};
  interop::Slot s1, s7;
  s1.id = 1;
  s1.weight = 0.5f;
  s7.id = 7;
  s7.weight = 1.5f;
  inv.slots = {s1, s7};
  inv.cells = {interop::Cell{2, 3}, interop::Cell{5, -1}};
  inv.at = interop::Vec2{1, 2};
  inv.tags = {"a", "b"};
  interop::Node leaf, root;
  leaf.name = "leaf";
  root.name = "root";
  root.children = {leaf};
  inv.tree = root;
  inv.score = 9;
  return inv;
}

std::string read_file(const std::string& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int failures = 0;

template <class T>
void sample(const std::string& mode, const std::string& dir, const std::string& name, const T& value) {
  if (mode == "write") {
    const auto bytes = value.to_bytes();
    std::ofstream out(dir + "/" + name + ".bin", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) ++failures, std::cerr << name << ": cannot write\n";
    return;
  }
  bool ok = false;
  const auto text = read_file(dir + "/" + name + ".py.bin", ok);
  if (!ok) {
    ++failures, std::cerr << name << ": no file from Python\n";
    return;
  }
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  auto decoded = T::decode(bytes);
  if (!decoded.ok()) {
    ++failures, std::cerr << name << ": C++ cannot decode Python's bytes: " << decoded.error().message() << "\n";
  } else if (!(*decoded == value)) {
    ++failures, std::cerr << name << ": Python's bytes decode in C++ to another value\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
    std::cerr << "usage: codec_peer write|check DIR\n";
    return 2;
  }
  const std::string mode = argv[1], dir = argv[2];
  sample(mode, dir, "Scalars", scalars());
  sample(mode, dir, "Defaults", defaults());
  sample(mode, dir, "Defaults.default", Defaults{});
  sample(mode, dir, "Texts", texts());
  sample(mode, dir, "Vectors", vectors());
  sample(mode, dir, "Nested", nested());
  sample(mode, dir, "Keywords", keywords());
  sample(mode, dir, "Empty", Empty{});
  sample(mode, dir, "WithDeprecated", with_deprecated());
  sample(mode, dir, "Serve", serve());
  sample(mode, dir, "Document", document());
  sample(mode, dir, "Placed", placed());
  sample(mode, dir, "OrderMessage", order());
  sample(mode, dir, "Inventory", inventory());
  sample(mode, dir, "Inventory.unsorted", inventory());
  return failures == 0 ? 0 : 1;
}

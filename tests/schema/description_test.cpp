// runtime/schema: the description's canonical text, the strict parser (hostile input is expected: it
// arrives in a hello), merge(), and compare()'s options on hand-written descriptions. The table of
// compatibility rules is tested row by row in tests/codegen/compat_table_test.cpp.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "compat.hpp"
#include "description.hpp"

namespace sd = sage::schema;

namespace {

// Every construct: recursion (a table holding a vector of itself), struct with an array and a nested
// struct, enum, union with its type field, optional scalar, required and deprecated fields.
const std::string everything =
    "sage-schema 1\n"
    "message 101 0\n"
    "message 200 5\n"
    "table 0 game.Node\n"
    "field 0 name string - required\n"
    "field 1 children [@0] -\n"
    "field 2 where @1 -\n"
    "field 3 mood @3 2\n"
    "field 4 shape_type utype@4 0\n"
    "field 5 shape @4 -\n"
    "field 6 weight float null\n"
    "field 7 old int 0 deprecated\n"
    "field 8 moods [@3] -\n"
    "struct 1 game.Pos size 20 align 4\n"
    "field 0 xy [float:2] -\n"
    "field 8 inner @2 -\n"
    "struct 2 game.Inner size 12 align 4\n"
    "field 0 a int -\n"
    "field 4 b [short:4] -\n"
    "enum 3 game.Mood byte\n"
    "value calm 0\n"
    "value angry -3\n"
    "value sleepy 2\n"
    "union 4 game.Shape\n"
    "value NONE 0 -\n"
    "value Circle 1 @5\n"
    "table 5 game.Circle\n"
    "field 0 r double 1.5\n";

sd::Description parsed(const std::string& text) {
  auto r = sd::parse(text);
  REQUIRE_MESSAGE(r, r.error);
  return r.description;
}

std::string header_plus(const std::string& rest) { return "sage-schema 1\n" + rest; }

}  // namespace

TEST_CASE("a description's text is canonical: parse and to_text are inverse") {
  const auto d = parsed(everything);
  CHECK(sd::to_text(d) == everything);
  CHECK(parsed(sd::to_text(d)) == d);
  CHECK(d.messages.size() == 2);
  REQUIRE(d.message_table(200) != nullptr);
  CHECK(d.message_table(200)->name == "game.Circle");
  CHECK(d.message_table(150) == nullptr);
  CHECK(sd::type_name(d, d.definitions[0].fields[1].type) == "[table game.Node]");
  CHECK(sd::type_name(d, d.definitions[0].fields[3].type) == "enum game.Mood:byte");
  CHECK(sd::type_name(d, d.definitions[1].fields[0].type) == "[float:2]");
  CHECK(sd::fingerprint(d) == sd::fnv1a64(everything));
  CHECK(sd::fnv1a64("") == 0xcbf29ce484222325ULL);
}

TEST_CASE("the parser refuses every departure from the grammar with the line and the reason") {
  struct Bad {
    std::string text;
    std::string reason;
  };
  const std::string table = "table 0 a.T\n";
  const std::vector<Bad> bad = {
      {"", "ends with a newline"},
      {"sage-schema 1", "ends with a newline"},
      {"sage-schema 2\n", "line 1: expected \"sage-schema 1\""},
      {"sage-schema 1\r\n", "line 1"},
      {header_plus("message 101 0\n\n" + table), "line 3: empty token"},
      {header_plus("message  101 0\n" + table), "line 2: empty token"},
      {header_plus("message 101 0 \n" + table), "line 2: empty token"},
      {header_plus("message 101 0\ntabel 0 a.T\n"), "line 3: unknown keyword \"tabel\""},
      {header_plus("message 101 0\ntable 1 a.T\n"), "definition index 1 out of order"},
      {header_plus("message 101 0\ntable 0 a..T\n"), "expected: table <index> <qualified name>"},
      {header_plus("message 101 0\ntable 0 1a.T\n"), "expected: table"},
      {header_plus("message 101 0\ntable 0 " + std::string(256, 'a') + "\n"), "expected: table"},
      {header_plus("message 100 0\n" + table), "packet_type 101..255"},
      {header_plus("message 256 0\n" + table), "packet_type 101..255"},
      {header_plus("message 0101 0\n" + table), "packet_type 101..255"},
      {header_plus("message 101 0\nmessage 101 0\n" + table), "ascending, distinct packet_types"},
      {header_plus("message 102 0\nmessage 101 1\n" + table + "table 1 a.U\n"), "ascending"},
      {header_plus("message 101 3\n" + table), "does not refer to a table"},
      {header_plus("message 101 0\nstruct 0 a.S size 4 align 4\nfield 0 x int -\n"), "does not refer to a table"},
      {header_plus("message 101 0\nmessage 102 0\n" + table), "message of two packet_types"},
      {header_plus("message 101 0\n" + table + "table 1 a.T\n"), "a.T appears twice"},
      {header_plus(table + "message 101 0\n"), "message lines come before the definitions"},
      {header_plus("message 101 0\nfield 0 x int 0\n"), "field outside a table or struct"},
      {header_plus("message 101 0\n" + table + "value x 1\n"), "value outside an enum or union"},
      {header_plus("message 101 0\n" + table + "field 0 x @7 -\n"), "refers to definition 7 of 1"},
      {header_plus("message 101 0\n" + table + "field 0 x utype@0 0\n"), "utype@ must refer to a union"},
      {header_plus("message 101 0\n" + table + "field 0 x int -\n"), "a scalar field needs a default"},
      {header_plus("message 101 0\n" + table + "field 0 x string 0\n"), "only scalar fields have a default"},
      {header_plus("message 101 0\n" + table + "field 0 x int 0 required\n"), "cannot be required"},
      {header_plus("message 101 0\n" + table + "field 0 x int 0 deprecated required\n"), "unknown field flag"},
      {header_plus("message 101 0\n" + table + "field 0 x int 0 optional\n"), "unknown field flag"},
      {header_plus("message 101 0\n" + table + "field 1 x int 0\nfield 0 y int 0\n"), "ascending ids"},
      {header_plus("message 101 0\n" + table + "field 0 x int 0\nfield 1 x int 0\n"), "field x appears twice"},
      {header_plus("message 101 0\n" + table + "field 32765 x int 0\n"), "field id above 32764"},
      {header_plus("message 101 0\n" + table + "field 0 x [int:4] -\n"), "arrays are allowed in structs only"},
      {header_plus("message 101 0\n" + table + "field 0 x [[int]] -\n"), "expected: field"},
      {header_plus("message 101 0\n" + table + "field 0 x in 0\n"), "expected: field"},
      {header_plus("message 101 0\n" + table + "field 0 x int 1;0\n"), "bad default"},
      {header_plus("message 101 0\n" + table + "field 0 x int " + std::string(65, '1') + "\n"), "bad default"},
      {header_plus("message 101 0\n" + table + "field 0 x@ int 0\n"), "expected: field"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nstruct 1 a.S size 4 align 3\nfield 0 y int -\n"),
       "align <power of two>"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nstruct 1 a.S size 4 align 4\n"), "a struct has fields"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nstruct 1 a.S size 4 align 4\nfield 0 y string -\n"),
       "a struct holds only"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nstruct 1 a.S size 4 align 4\nfield 0 y [int:0] -\n"),
       "expected: field"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nstruct 1 a.S size 4 align 4\nfield 0 y @0 -\n"),
       "a struct holds only"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 0\nenum 1 a.E float\n"), "underlying type is an integer"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 0\nenum 1 a.E byte\nvalue a 01\n"), "expected: value"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 0\nenum 1 a.E byte\nvalue a -0\n"), "expected: value"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 0\nenum 1 a.E ulong\nvalue a 18446744073709551616\n"),
       "expected: value"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 0\nenum 1 a.E byte\nvalue a 1\nvalue b 1\n"),
       "value 1 appears twice"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nunion 1 a.U\nvalue A 1 @1\n"), "must refer to a table"},
      {header_plus("message 101 0\n" + table + "field 0 x @1 -\nunion 1 a.U\nvalue A 1\n"), "expected: value"},
      {header_plus("message 101 0\n" + std::string("table 0 a.T\0\n", 13)), "control character"},
  };
  for (const auto& b : bad) {
    INFO("text: " << b.text);
    const auto r = sd::parse(b.text);
    CHECK_FALSE(r);
    CHECK_MESSAGE(r.error.find(b.reason) != std::string::npos, r.error);
    CHECK(r.description == sd::Description{});
  }
}

TEST_CASE("the parser enforces its size limits: 256 KiB of text and 4096 definitions") {
  std::string big = "sage-schema 1\nmessage 101 0\ntable 0 a.T\n";
  while (big.size() <= sd::max_description_bytes) big += "field 0 x int 0\n";
  const auto r = sd::parse(big);
  CHECK_FALSE(r);
  CHECK(r.error.find("the limit is 262144") != std::string::npos);

  std::string many = "sage-schema 1\nmessage 101 0\n";
  for (std::size_t i = 0; i <= sd::max_definitions; ++i) many += "table " + std::to_string(i) + " a.T" + std::to_string(i) + "\n";
  REQUIRE(many.size() < sd::max_description_bytes);
  const auto m = sd::parse(many);
  CHECK_FALSE(m);
  CHECK(m.error.find("more than 4096 definitions") != std::string::npos);
}

TEST_CASE("merge shares definitions by name and refuses conflicting ones") {
  auto a = parsed(header_plus("message 101 0\ntable 0 a.A\nfield 0 p @1 -\nstruct 1 a.P size 4 align 4\nfield 0 x int -\n"));
  const auto b = parsed(header_plus("message 102 0\ntable 0 a.B\nfield 0 p @1 -\nfield 1 q @2 -\n"
                                    "table 1 a.Q\nfield 0 n int 0\nstruct 2 a.P size 4 align 4\nfield 0 x int -\n"));
  REQUIRE(sd::merge(a, b).empty());
  CHECK(sd::to_text(a) == header_plus("message 101 0\nmessage 102 2\ntable 0 a.A\nfield 0 p @1 -\n"
                                      "struct 1 a.P size 4 align 4\nfield 0 x int -\ntable 2 a.B\nfield 0 p @3 -\n"
                                      "field 1 q @1 -\ntable 3 a.Q\nfield 0 n int 0\n"));
  CHECK(sd::parse(sd::to_text(a)));
  const auto before = a;
  CHECK(sd::merge(a, b).empty());  // idempotent
  CHECK(a == before);
  const auto conflict = parsed(header_plus("message 103 0\ntable 0 a.C\nfield 0 p @1 -\nstruct 1 a.P size 8 align 8\nfield 0 x long -\n"));
  CHECK(sd::merge(a, conflict) == "struct a.P is defined differently in two schemas");
  CHECK(a == before);
  const auto reused = parsed(header_plus("message 101 0\ntable 0 a.Z\n"));
  CHECK(sd::merge(a, reused) == "packet_type 101 is a.A and a.Z");
  CHECK(a == before);
}

TEST_CASE("compare terminates on recursive schemas and reports a change deep inside once") {
  const auto old_d = parsed(header_plus("message 101 0\ntable 0 t.Node\nfield 0 kids [@0] -\nfield 1 v int 0\n"));
  const auto new_d = parsed(header_plus("message 101 0\ntable 0 t.Node\nfield 0 kids [@0] -\nfield 1 v long 0\n"));
  const auto c = sd::compare(old_d, new_d);
  REQUIRE(c.diagnostics.size() == 1);
  CHECK(c.diagnostics[0].text == "field t.Node.v changed type from int to long");
  CHECK(c.diagnostics[0].definition == "t.Node");
  CHECK(c.diagnostics[0].field == "v");
  CHECK(c.diagnostics[0].anchor == sd::Diagnostic::Anchor::field);
  CHECK(c.text() == "error: field t.Node.v changed type from int to long\n");
  CHECK(sd::compare(old_d, old_d).diagnostics.empty());
}

TEST_CASE("compare's direction keeps the rules that break it: (required) added breaks old writers only") {
  const auto old_d = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 s string -\n"));
  const auto new_d = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 s string - required\n"));
  sd::CompareOptions o;
  CHECK_FALSE(sd::compare(old_d, new_d, o).compatible());
  o.direction = sd::Direction::old_to_new;
  CHECK_FALSE(sd::compare(old_d, new_d, o).compatible());
  o.direction = sd::Direction::new_to_old;
  CHECK(sd::compare(old_d, new_d, o).compatible());
  // And the reverse change breaks the other direction.
  o.direction = sd::Direction::old_to_new;
  CHECK(sd::compare(new_d, old_d, o).compatible());
  o.direction = sd::Direction::new_to_old;
  CHECK_FALSE(sd::compare(new_d, old_d, o).compatible());
}

TEST_CASE("between peers (history off) messages only one side knows are listed, not errors") {
  const auto a = parsed(header_plus("message 101 0\nmessage 102 1\ntable 0 t.A\ntable 1 t.B\n"));
  const auto b = parsed(header_plus("message 101 0\nmessage 103 1\ntable 0 t.A\ntable 1 t.C\n"));
  sd::CompareOptions peers;
  peers.history = false;
  const auto c = sd::compare(a, b, peers);
  CHECK(c.compatible());
  CHECK(c.only_old == std::vector<int>{102});
  CHECK(c.only_new == std::vector<int>{103});
  const auto ci = sd::compare(a, b);
  CHECK_FALSE(ci.compatible());
  CHECK(ci.text() == "error: message t.B (packet_type 102) was removed; peers built from the old schemas still send it\n");
}

TEST_CASE("compare stops with an error when hostile descriptions would take too long or differ too much") {
  // Old: one message whose 3000 fields all refer to one table of 3000 fields. New: each field refers
  // to its own copy of that table, so every pair must be compared: 9 million field visits.
  std::string old_text = "sage-schema 1\nmessage 101 0\ntable 0 h.M\n";
  std::string new_text = old_text;
  std::string big_fields;
  for (int i = 0; i < 3000; ++i) big_fields += "field " + std::to_string(i) + " f" + std::to_string(i) + " int 0\n";
  for (int i = 0; i < 3000; ++i) {
    old_text += "field " + std::to_string(i) + " x" + std::to_string(i) + " @1 -\n";
    new_text += "field " + std::to_string(i) + " x" + std::to_string(i) + " @" + std::to_string(i + 1) + " -\n";
  }
  old_text += "table 1 h.Big\n" + big_fields;
  for (int i = 0; i < 3000; ++i) new_text += "table " + std::to_string(i + 1) + " h.Big" + std::to_string(i) + "\n" + "field 0 f0 int 0\n";
  const auto o = sd::parse(old_text);
  REQUIRE_MESSAGE(o, o.error);
  const auto n = sd::parse(new_text);
  REQUIRE_MESSAGE(n, n.error);
  // As versions: each pair differs by 2999 removed fields; the diagnostics stop at the cap.
  const auto c = sd::compare(o.description, n.description);
  CHECK_FALSE(c.compatible());
  REQUIRE(c.diagnostics.size() == sd::max_compare_diagnostics + 1);
  CHECK(c.diagnostics.back().text == "more than 256 differences; the comparison stopped here");
  // As peers (fields only one side has are fine): a note per renamed table, capped the same way.
  sd::CompareOptions peers;
  peers.history = false;
  const auto p = sd::compare(o.description, n.description, peers);
  CHECK_FALSE(p.compatible());
  REQUIRE(p.diagnostics.size() == sd::max_compare_diagnostics + 1);
  CHECK(p.diagnostics.front().severity == sd::Severity::note);
  CHECK(p.diagnostics.back().text == "more than 256 differences; the comparison stopped here");
}

TEST_CASE("combine parses and merges per-message descriptions into the one a node sends") {
  const std::string a = header_plus("message 101 0\ntable 0 a.A\nfield 0 p @1 -\nstruct 1 a.P size 4 align 4\nfield 0 x int -\n");
  const std::string b = header_plus("message 102 0\ntable 0 a.B\nfield 0 p @1 -\nstruct 1 a.P size 4 align 4\nfield 0 x int -\n");
  const auto both = sd::combine({b, a});
  REQUIRE_MESSAGE(both, both.error);
  CHECK(sd::to_text(both.description) == header_plus("message 101 2\nmessage 102 0\ntable 0 a.B\nfield 0 p @1 -\n"
                                                     "struct 1 a.P size 4 align 4\nfield 0 x int -\ntable 2 a.A\nfield 0 p @1 -\n"));
  const auto bad = sd::combine({a, "sage-schema 1\nnonsense\n"});
  CHECK_FALSE(bad);
  CHECK(bad.error == "description 2: line 2: unknown keyword \"nonsense\"");
  CHECK(bad.description == sd::Description{});
  const auto conflict = sd::combine({a, header_plus("message 101 0\ntable 0 a.Other\n")});
  CHECK(conflict.error == "description 2: packet_type 101 is a.A and a.Other");
  CHECK(sd::combine({}).description == sd::Description{});
}

TEST_CASE("a packet_type freed by a moved message and taken by another one is reported as reuse") {
  const auto old_d = parsed(header_plus("message 121 0\ntable 0 t.X\n"));
  const auto new_d = parsed(header_plus("message 121 0\nmessage 125 1\ntable 0 t.Y\ntable 1 t.X\n"));
  for (const bool history : {true, false}) {
    sd::CompareOptions o;
    o.history = history;
    o.old_name = "peer A";
    o.new_name = "this node";
    const auto c = sd::compare(old_d, new_d, o);
    CHECK(c.text() ==
          (history ? "error: packet_type of t.X changed from 121 to 125; peers built from the old schemas use 121\n"
                     "error: packet_type 121 of t.Y was used by t.X in the old schemas; peers would decode one as the "
                     "other\n"
                   : "error: t.X is packet_type 121 in peer A but packet_type 125 in this node\n"
                     "error: packet_type 121 is t.X in peer A but t.Y in this node; peers would decode one as the "
                     "other\n"));
    CHECK(c.only_new.empty());
    CHECK_FALSE(sd::compare(new_d, old_d, o).compatible());
  }
}

TEST_CASE("between peers a field removed before others is refused as moved, unless the later fields were renamed too") {
  const auto full = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 a int 0\nfield 1 x int 0\nfield 2 b int 0\n"));
  const auto removed = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 a int 0\nfield 1 b int 0\n"));
  const auto renamed = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 a int 0\nfield 1 c int 0\n"));
  sd::CompareOptions o;
  o.history = false;
  o.old_name = "peer P";
  o.new_name = "this node";
  // b kept its name: it is found at another id.
  CHECK(sd::compare(full, removed, o).text() ==
        "error: field t.M.b has id 2 in peer P but id 1 in this node (fields reordered or inserted); add new fields "
        "at the end\n");
  CHECK_FALSE(sd::compare(removed, full, o).compatible());
  // b renamed to c as well: id 1 is x on one side and c on the other, the same type: only a rename
  // note, so the handshake connects (and x's values land in c): only the history catches it.
  const auto blind = sd::compare(full, renamed, o);
  CHECK(blind.compatible());
  CHECK(blind.text().find("note: field t.M.x (id 1) was renamed to c") != std::string::npos);
  CHECK_FALSE(sd::compare(full, renamed).compatible());  // sagec check --against: field b (id 2) was removed
}

TEST_CASE("between peers (history off) a diagnostic names whose type is whose and never speaks of old schemas") {
  const auto a = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 v int 0\nfield 1 w int 5\n"));
  const auto b = parsed(header_plus("message 101 0\ntable 0 t.M\nfield 0 v long 0\nfield 1 w int 6\n"));
  sd::CompareOptions o;
  o.history = false;
  o.old_name = "peer 127.0.0.1:5";
  o.new_name = "this node";
  const auto c = sd::compare(a, b, o);
  CHECK(c.text() ==
        "error: field t.M.v is int in peer 127.0.0.1:5 but long in this node\n"
        "error: field t.M.w has default 5 in peer 127.0.0.1:5 but 6 in this node\n");
  CHECK(sd::compare(a, b).text().find("changed type from int to long") != std::string::npos);  // sagec check: history
}

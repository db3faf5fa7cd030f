// members.fbs: fields named after every member the generated classes declare (its golden file is
// golden/members.sage.hpp; cli_test.cpp checks that the list of those names is complete).
#include <doctest/doctest.h>

#include <flatbuffers/flatbuffers.h>

#include "members.sage.hpp"

TEST_CASE("fields named after every generated member get a trailing underscore and round trip") {
  using namespace feat::members;
  Members m;
  m.packet_type_ = 1;
  m.message_name_ = "name";
  m.schema_description_ = "description";
  m.fingerprint_ = 2;
  m.max_depth_ = 3;
  m.encode_ = true;
  m.to_bytes_ = {4, 5};
  m.decode_ = "decode";
  m.verify_bytes_ = 6;
  m.pack_ = Packed{.packet_type_ = 7, .max_depth_ = 8, .Layout_ = 9, .table__ = 10};
  m.verify_ = 11;
  m.unpack_ = 12;
  m.Field_ = 13;
  m.View_ = 14;
  m.operator_ = 15;
  m.Layout_ = 16;
  m.to_layout_ = 17;
  m.from_layout_ = 18;
  m.to_value_ = 19;
  m.table__ = "table";
  static_assert(Members::packet_type == 208);
  static_assert(Members::max_depth == 1);  // the struct is inline
  const auto back = Members::decode(m.to_bytes());
  REQUIRE(back.has_value());
  CHECK(*back == m);
  const auto bytes = m.to_bytes();
  REQUIRE(Members::verify_bytes(bytes).has_value());
  const Members::View view(bytes);
  CHECK(view.max_depth_() == 3);
  CHECK(view.pack_().from_layout_ == 0);
  CHECK(view.table__() == "table");
  // The root_type: a wire message too, with its file_identifier in the bytes (decoded either way).
  static_assert(Members::file_identifier == "MEMB");
  CHECK(flatbuffers::BufferHasIdentifier(reinterpret_cast<const std::uint8_t*>(bytes.data()), "MEMB"));
  m.lookup_by_key_ = {Packed{.packet_type_ = 2}, Packed{.packet_type_ = 1}};
  const auto keyed = Members::decode(m.to_bytes());
  REQUIRE(keyed.has_value());
  CHECK(keyed->lookup_by_key_.front().packet_type_ == 1);  // sorted by key
  CHECK(Packed::lookup_by_key(keyed->lookup_by_key_, 2) == &keyed->lookup_by_key_.back());
}

// A hand-written wire message with a View, as sagec generates (for the view compile-fail tests;
// view_handler_compiles.cpp checks that a correct view handler compiles with it).
#pragma once

#include <span>

#include "sage/actor.hpp"

struct Ping {
  static constexpr std::uint8_t packet_type = 101;
  static constexpr std::string_view message_name = "test.Ping";
  static constexpr std::uint64_t fingerprint = 1;
  void encode(flatbuffers::FlatBufferBuilder& fbb) const {
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(fbb.StartTable())));
  }
  static sage::Result<Ping> decode(std::span<const std::byte>) { return Ping{}; }
  static bool verify(flatbuffers::Verifier& v, const flatbuffers::Table& t) { return t.VerifyTableStart(v) && v.EndTable(); }
  static Ping unpack(const flatbuffers::Table&) { return Ping{}; }
  class View {
   public:
    explicit View(std::span<const std::byte>) noexcept {}
    View(const View&) = delete;
    View& operator=(const View&) = delete;
  };
};

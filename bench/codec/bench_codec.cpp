// bench_codec: encode + decode of sage's generated message classes vs flatc's generated C++ for the
// same schema (codec.fbs), in one run (docs/performance.md).
//
//   build/bench/bench_codec [--quick] [--csv]     (each case runs in its own process: common/harness.hpp)
//
// One operation = build a finished FlatBuffer from a message value (reusing one builder) and read
// it back after verifying it:
//   sage:                      msg.encode(fbb); T::decode(bytes)  (verifies, copies into a new value)
//   flatc object API:          T::Pack(fbb, &obj); Verifier; GetRoot<T>(buf)->UnPackTo(&fresh_obj)
//                              (the same work: an owning value out, strings and vectors copied)
//   flatc zero-copy:           CreateT(...) field by field; Verifier; read every field through the
//                              accessors without copying (what FlatBuffers is designed for; the
//                              reader must not outlive the buffer, which sage's values may)
//   sage view read:            msg.encode(fbb); T::verify_bytes(bytes); read every field through
//                              T::View (sage/view.hpp), as a handle(const T::View&) handler does
//                              (the builder is pre-aligned to 8, so the bytes start 8-aligned as
//                              the runtime hands them to views)
// Encode and decode apart (issue 24's targets: encode >= 1.0x flatc's Create* + Finish, owning
// decode >= 1.0x flatc's UnPack):
//   encode:  sage msg.encode(fbb); flatc builder code CreateT(...) + Finish; flatc object API
//            T::Pack(fbb, &obj) + Finish (one reused builder each)
//   decode:  of one buffer built once: sage T::decode(bytes) (verifies, copies into a new value);
//            flatc object API Verifier + GetRoot<T>(buf)->UnPackTo(&fresh_obj)
// Rates: the best of 3 runs, each the median batch of 10,000 operations; allocations are counted
// by replacing operator new (common/alloc_counter.cpp).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "../common/alloc_counter.hpp"
#include "../common/harness.hpp"
#include "codec.sage.hpp"
#include "codec_fb_generated.h"


namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t batch = 10'000;
std::uint64_t checksum = 0;

template <class F>
std::vector<bench::Figure> measure(std::size_t total, F&& one, const char* metric = "encode+decode") {
  for (std::size_t i = 0; i < batch; ++i) one(i);  // warm-up: the builder has grown to size
  std::vector<double> seconds;
  seconds.reserve(total / batch + 1);
  const std::uint64_t before = bench::allocations();
  double best = 0, done = 0;
  for (int rep = 0; rep < 3; ++rep) {  // the best of 3 runs' median batches
    seconds.clear();
    for (std::size_t first = 0; first < total; first += batch) {
      const auto start = Clock::now();
      for (std::size_t i = first; i < first + batch; ++i) one(i);
      seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    done += static_cast<double>(seconds.size() * batch);
    std::sort(seconds.begin(), seconds.end());
    best = std::max(best, static_cast<double>(batch) / seconds[seconds.size() / 2]);
  }
  const double allocs = static_cast<double>(bench::allocations() - before) / done;
  return {bench::Figure{metric, "msg/s", true, best, allocs}};
}

std::span<const std::byte> bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return std::as_bytes(std::span(fbb.GetBufferPointer(), fbb.GetSize()));
}

const std::string entity_name = "goblin-warrior-17";
const std::vector<std::string> entity_tags = {"hostile", "armored"};

// ---- sage ----
std::vector<bench::Figure> sage_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::Amount msg;
  return measure(total, [&](std::size_t i) {
    msg.amount = static_cast<std::int32_t>(i);
    fbb.Clear();
    msg.encode(fbb);
    auto r = codec::Amount::decode(bytes_of(fbb));
    if (!r) std::abort();
    checksum += static_cast<std::uint64_t>(r->amount);
  });
}

codec::EntityUpdate sage_entity() {
  codec::EntityUpdate m;
  m.name = entity_name;
  m.position = {1, 2, 3};
  m.velocity = {0.5f, 0, -0.5f};
  m.health = 87;
  for (int w = 0; w < 8; ++w) m.waypoints.push_back({static_cast<float>(w), 0, static_cast<float>(-w)});
  m.tags = entity_tags;
  return m;
}

std::vector<bench::Figure> sage_entity_update(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::EntityUpdate msg = sage_entity();
  return measure(total, [&](std::size_t i) {
    msg.id = i;
    fbb.Clear();
    msg.encode(fbb);
    auto r = codec::EntityUpdate::decode(bytes_of(fbb));
    if (!r) std::abort();
    checksum += r->id + r->name.size() + r->waypoints.size() + r->tags.size() + static_cast<std::uint64_t>(r->health);
  });
}

// ---- sage view read ----
std::vector<bench::Figure> view_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::Amount msg;
  return measure(total, [&](std::size_t i) {
    msg.amount = static_cast<std::int32_t>(i);
    fbb.Clear();
    fbb.TrackMinAlign(8);
    msg.encode(fbb);
    const auto bytes = bytes_of(fbb);
    if (!codec::Amount::verify_bytes(bytes)) std::abort();
    const codec::Amount::View v(bytes);
    checksum += static_cast<std::uint64_t>(v.amount());
  });
}

std::vector<bench::Figure> view_entity_update(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::EntityUpdate msg = sage_entity();
  return measure(total, [&](std::size_t i) {
    msg.id = i;
    fbb.Clear();
    fbb.TrackMinAlign(8);
    msg.encode(fbb);
    const auto bytes = bytes_of(fbb);
    if (!codec::EntityUpdate::verify_bytes(bytes)) std::abort();
    const codec::EntityUpdate::View e(bytes);
    std::uint64_t sum = e.id() + e.name().size() + static_cast<std::uint64_t>(e.health());
    sum += static_cast<std::uint64_t>(e.position().x + e.velocity().z);
    for (const auto& p : e.waypoints()) sum += static_cast<std::uint64_t>(p.x);
    for (const auto t : e.tags()) sum += t.size();
    checksum += sum;
  });
}

// ---- flatc object API ----
template <class T>
const T* verified_root(const flatbuffers::FlatBufferBuilder& fbb) {
  flatbuffers::Verifier v(fbb.GetBufferPointer(), fbb.GetSize());
  if (!v.VerifyBuffer<T>(nullptr)) std::abort();
  return flatbuffers::GetRoot<T>(fbb.GetBufferPointer());
}

std::vector<bench::Figure> object_api_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec_fb::AmountT obj;
  return measure(total, [&](std::size_t i) {
    obj.amount = static_cast<std::int32_t>(i);
    fbb.Clear();
    fbb.Finish(codec_fb::Amount::Pack(fbb, &obj));
    codec_fb::AmountT out;
    verified_root<codec_fb::Amount>(fbb)->UnPackTo(&out);
    checksum += static_cast<std::uint64_t>(out.amount);
  });
}

std::vector<bench::Figure> object_api_entity_update(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec_fb::EntityUpdateT obj;
  obj.name = entity_name;
  obj.position = std::make_unique<codec_fb::Vec3>(1, 2, 3);
  obj.velocity = std::make_unique<codec_fb::Vec3>(0.5f, 0, -0.5f);
  obj.health = 87;
  for (int w = 0; w < 8; ++w) obj.waypoints.emplace_back(static_cast<float>(w), 0, static_cast<float>(-w));
  obj.tags = entity_tags;
  return measure(total, [&](std::size_t i) {
    obj.id = i;
    fbb.Clear();
    fbb.Finish(codec_fb::EntityUpdate::Pack(fbb, &obj));
    codec_fb::EntityUpdateT out;
    verified_root<codec_fb::EntityUpdate>(fbb)->UnPackTo(&out);
    checksum += out.id + out.name.size() + out.waypoints.size() + out.tags.size() + static_cast<std::uint64_t>(out.health);
  });
}

// ---- flatc zero-copy ----
std::vector<bench::Figure> zero_copy_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  return measure(total, [&](std::size_t i) {
    fbb.Clear();
    fbb.Finish(codec_fb::CreateAmount(fbb, static_cast<std::int32_t>(i)));
    checksum += static_cast<std::uint64_t>(verified_root<codec_fb::Amount>(fbb)->amount());
  });
}

std::vector<bench::Figure> zero_copy_entity_update(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  const codec_fb::Vec3 position(1, 2, 3), velocity(0.5f, 0, -0.5f);
  std::vector<codec_fb::Vec3> waypoints;
  for (int w = 0; w < 8; ++w) waypoints.emplace_back(static_cast<float>(w), 0, static_cast<float>(-w));
  return measure(total, [&](std::size_t i) {
    fbb.Clear();
    const auto name = fbb.CreateString(entity_name);
    const auto points = fbb.CreateVectorOfStructs(waypoints);
    const auto tags = fbb.CreateVectorOfStrings(entity_tags);
    fbb.Finish(codec_fb::CreateEntityUpdate(fbb, i, name, &position, &velocity, 87, points, tags));
    const auto* e = verified_root<codec_fb::EntityUpdate>(fbb);
    std::uint64_t sum = e->id() + e->name()->size() + static_cast<std::uint64_t>(e->health());
    sum += static_cast<std::uint64_t>(e->position()->x() + e->velocity()->z());
    for (const auto* p : *e->waypoints()) sum += static_cast<std::uint64_t>(p->x());
    for (const auto* t : *e->tags()) sum += t->size();
    checksum += sum;
  });
}

// ---- encode and decode apart ----
codec_fb::EntityUpdateT object_entity() {
  codec_fb::EntityUpdateT obj;
  obj.name = entity_name;
  obj.position = std::make_unique<codec_fb::Vec3>(1, 2, 3);
  obj.velocity = std::make_unique<codec_fb::Vec3>(0.5f, 0, -0.5f);
  obj.health = 87;
  for (int w = 0; w < 8; ++w) obj.waypoints.emplace_back(static_cast<float>(w), 0, static_cast<float>(-w));
  obj.tags = entity_tags;
  return obj;
}

std::vector<bench::Figure> sage_encode_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::Amount msg;
  return measure(
      total,
      [&](std::size_t i) {
        msg.amount = static_cast<std::int32_t>(i);
        fbb.Clear();
        msg.encode(fbb);
        checksum += fbb.GetSize();
      },
      "encode");
}

std::vector<bench::Figure> builder_encode_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  return measure(
      total,
      [&](std::size_t i) {
        fbb.Clear();
        fbb.Finish(codec_fb::CreateAmount(fbb, static_cast<std::int32_t>(i)));
        checksum += fbb.GetSize();
      },
      "encode");
}

std::vector<bench::Figure> object_encode_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec_fb::AmountT obj;
  return measure(
      total,
      [&](std::size_t i) {
        obj.amount = static_cast<std::int32_t>(i);
        fbb.Clear();
        fbb.Finish(codec_fb::Amount::Pack(fbb, &obj));
        checksum += fbb.GetSize();
      },
      "encode");
}

std::vector<bench::Figure> sage_encode_entity(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::EntityUpdate msg = sage_entity();
  return measure(
      total,
      [&](std::size_t i) {
        msg.id = i;
        fbb.Clear();
        msg.encode(fbb);
        checksum += fbb.GetSize();
      },
      "encode");
}

std::vector<bench::Figure> builder_encode_entity(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  const codec_fb::Vec3 position(1, 2, 3), velocity(0.5f, 0, -0.5f);
  std::vector<codec_fb::Vec3> waypoints;
  for (int w = 0; w < 8; ++w) waypoints.emplace_back(static_cast<float>(w), 0, static_cast<float>(-w));
  return measure(
      total,
      [&](std::size_t i) {
        fbb.Clear();
        const auto name = fbb.CreateString(entity_name);
        const auto points = fbb.CreateVectorOfStructs(waypoints);
        const auto tags = fbb.CreateVectorOfStrings(entity_tags);
        fbb.Finish(codec_fb::CreateEntityUpdate(fbb, i, name, &position, &velocity, 87, points, tags));
        checksum += fbb.GetSize();
      },
      "encode");
}

std::vector<bench::Figure> object_encode_entity(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec_fb::EntityUpdateT obj = object_entity();
  return measure(
      total,
      [&](std::size_t i) {
        obj.id = i;
        fbb.Clear();
        fbb.Finish(codec_fb::EntityUpdate::Pack(fbb, &obj));
        checksum += fbb.GetSize();
      },
      "encode");
}

std::vector<bench::Figure> sage_decode_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  codec::Amount{.amount = 7}.encode(fbb);
  const auto bytes = bytes_of(fbb);
  return measure(
      total,
      [&](std::size_t) {
        auto r = codec::Amount::decode(bytes);
        if (!r) std::abort();
        checksum += static_cast<std::uint64_t>(r->amount);
      },
      "decode");
}

std::vector<bench::Figure> object_decode_amount(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  fbb.Finish(codec_fb::CreateAmount(fbb, 7));
  return measure(
      total,
      [&](std::size_t) {
        codec_fb::AmountT out;
        verified_root<codec_fb::Amount>(fbb)->UnPackTo(&out);
        checksum += static_cast<std::uint64_t>(out.amount);
      },
      "decode");
}

std::vector<bench::Figure> sage_decode_entity(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  sage_entity().encode(fbb);
  const auto bytes = bytes_of(fbb);
  return measure(
      total,
      [&](std::size_t) {
        auto r = codec::EntityUpdate::decode(bytes);
        if (!r) std::abort();
        checksum += r->id + r->name.size() + r->waypoints.size() + r->tags.size() + static_cast<std::uint64_t>(r->health);
      },
      "decode");
}

std::vector<bench::Figure> object_decode_entity(std::size_t total) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  const auto obj = object_entity();
  fbb.Finish(codec_fb::EntityUpdate::Pack(fbb, &obj));
  return measure(
      total,
      [&](std::size_t) {
        codec_fb::EntityUpdateT out;
        verified_root<codec_fb::EntityUpdate>(fbb)->UnPackTo(&out);
        checksum += out.id + out.name.size() + out.waypoints.size() + out.tags.size() + static_cast<std::uint64_t>(out.health);
      },
      "decode");
}

std::size_t total_for(bool quick) { return quick ? 40'000 : 2'000'000; }  // EntityUpdate: a quarter

}  // namespace

int main(int argc, char** argv) {
  const char* amount = "codec Amount (1 int)";
  const char* entity = "codec EntityUpdate (string + 2 structs + 8 waypoints + 2 tags)";
  // Zero-copy reading: sage's views against FlatBuffers' accessors.
  const char* amount_view = "codec Amount (1 int) zero-copy read";
  const char* entity_view = "codec EntityUpdate zero-copy read";
  // Encode and decode apart.
  const char* amount_encode = "codec Amount (1 int) encode";
  const char* entity_encode = "codec EntityUpdate encode";
  const char* amount_decode = "codec Amount (1 int) decode";
  const char* entity_decode = "codec EntityUpdate decode";
  std::vector<bench::Case> cases = {
      {"amount.sage", amount, "sage", [](bool q) { return sage_amount(total_for(q)); }},
      {"amount.object_api", amount, "flatc object API", [](bool q) { return object_api_amount(total_for(q)); }},
      {"amount.zero_copy", amount, "flatc zero-copy", [](bool q) { return zero_copy_amount(total_for(q)); }},
      {"entity.sage", entity, "sage", [](bool q) { return sage_entity_update(total_for(q) / 4); }},
      {"entity.object_api", entity, "flatc object API",
       [](bool q) { return object_api_entity_update(total_for(q) / 4); }},
      {"entity.zero_copy", entity, "flatc zero-copy", [](bool q) { return zero_copy_entity_update(total_for(q) / 4); }},
      {"amount.view", amount_view, "sage view read", [](bool q) { return view_amount(total_for(q)); }},
      {"amount.view.zero_copy", amount_view, "flatc zero-copy", [](bool q) { return zero_copy_amount(total_for(q)); }},
      {"entity.view", entity_view, "sage view read", [](bool q) { return view_entity_update(total_for(q) / 4); }},
      {"entity.view.zero_copy", entity_view, "flatc zero-copy",
       [](bool q) { return zero_copy_entity_update(total_for(q) / 4); }},
      {"amount.encode", amount_encode, "sage", [](bool q) { return sage_encode_amount(total_for(q)); }},
      {"amount.encode.builder", amount_encode, "flatc CreateAmount + Finish",
       [](bool q) { return builder_encode_amount(total_for(q)); }},
      {"amount.encode.object_api", amount_encode, "flatc object API Pack + Finish",
       [](bool q) { return object_encode_amount(total_for(q)); }},
      {"entity.encode", entity_encode, "sage", [](bool q) { return sage_encode_entity(total_for(q) / 4); }},
      {"entity.encode.builder", entity_encode, "flatc CreateEntityUpdate + Finish",
       [](bool q) { return builder_encode_entity(total_for(q) / 4); }},
      {"entity.encode.object_api", entity_encode, "flatc object API Pack + Finish",
       [](bool q) { return object_encode_entity(total_for(q) / 4); }},
      {"amount.decode", amount_decode, "sage", [](bool q) { return sage_decode_amount(total_for(q)); }},
      {"amount.decode.object_api", amount_decode, "flatc object API UnPack",
       [](bool q) { return object_decode_amount(total_for(q)); }},
      {"entity.decode", entity_decode, "sage", [](bool q) { return sage_decode_entity(total_for(q) / 4); }},
      {"entity.decode.object_api", entity_decode, "flatc object API UnPack",
       [](bool q) { return object_decode_entity(total_for(q) / 4); }},
  };
  const int rc = bench::main(argc, argv, "bench_codec", cases);
  if (checksum == 42) std::printf("\n");
  return rc;
}

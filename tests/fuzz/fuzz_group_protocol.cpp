// Fuzzes what a group link does with the bytes of one transport message before any schema is
// trusted (runtime/groups/protocol.cpp, docs/wire-format.md): the record framing, then the control
// packets hello (versions 1 and 2) / announce / route / from / error, the exact fingerprint check and
// the negotiated check (schema description parse + compare()). Every decoder must refuse bad
// bytes with an Error that says why; what it accepts must re-encode to bytes that decode the same.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "channel/protocol.hpp"
#include "sage/wire.hpp"

namespace proto = sage::detail::protocol;

namespace {

template <class T>
void must_explain(const sage::Result<T>& r) {
  if (!r && r.error().message().empty()) std::abort();
}

void control(std::uint8_t type, std::span<const std::byte> payload) {
  switch (static_cast<proto::Control>(type)) {
    case proto::Control::hello: {
      auto h = proto::decode_hello(payload);
      must_explain(h);
      if (!h) return;
      auto again = proto::decode_hello(proto::encode_hello(*h));
      if (h->version != proto::protocol_version && h->version != 1) {
        // Another version: only refused, never re-encoded. The negotiated check must say why.
        if (proto::check_negotiated({}, *h, "this node", "peer x").ok()) std::abort();
        return;
      }
      if (!again || again->entries != h->entries || again->name != h->name || again->pid != h->pid ||
          again->schema_fingerprint != h->schema_fingerprint || again->description != h->description)
        std::abort();
      // Version 2 decoding guarantees what the docs promise: user packet_types, ascending, a short UTF-8 name.
      for (std::size_t i = 0; i < h->entries.size(); ++i)
        if (h->entries[i].packet_type < 101 || (i > 0 && h->entries[i].packet_type <= h->entries[i - 1].packet_type))
          std::abort();
      if (h->name.size() > proto::max_hello_name || !proto::valid_utf8(h->name)) std::abort();
      // The negotiated check a network peer runs (parses the description, compare() at wire level).
      proto::Hello described;
      described.entries = {{120, 1}};
      described.description = "sage-schema 1\nmessage 120 0\ntable 0 nettest.IntMessage\nfield 0 value int 0\n";
      auto negotiated = proto::check_negotiated(described, *h, "this node", "peer x");
      must_explain(negotiated);
      if (h->version == 1 && negotiated.ok()) std::abort();
      // The check a main group runs against a child's hello: refuses with a sentence or accepts.
      proto::Hello mine;
      mine.entries = {{101, 0x1111}, {102, 0x2222}, {180, 0x12725b09c3bb1f35ULL}};
      mine.schema_fingerprint = proto::schema_fingerprint(mine.entries);
      auto ok = proto::check_compatible(mine, *h, "the main group", "group 'fuzz'");
      must_explain(ok);
      (void)proto::schema_fingerprint(h->entries);
      return;
    }
    case proto::Control::route:
    case proto::Control::from: {
      auto n = proto::decode_name(payload);
      must_explain(n);
      if (n && (n->size() > proto::max_group_name || proto::encode_name(*n).size() != payload.size())) std::abort();
      return;
    }
    case proto::Control::announce: {
      auto a = proto::decode_announce(payload);
      must_explain(a);
      if (!a) return;
      if (proto::encode_announce(*a).size() != payload.size()) std::abort();
      must_explain(proto::check_descriptions("", a->description, "this node", "peer x"));
      return;
    }
    case proto::Control::error: {
      auto e = proto::decode_error(payload);
      must_explain(e);
      if (e && proto::encode_error(*e).size() != payload.size()) std::abort();
      return;
    }
    default:
      return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Transport messages reach the decoders 8-aligned (the link copies them if needed); exact-size
  // storage lets ASan see any read past the end.
  auto* buf = static_cast<std::byte*>(std::aligned_alloc(8, (size + 7) / 8 * 8 + 8));
  if (size) std::memcpy(buf, data, size);
  auto r = sage::wire::for_each_record(std::span<const std::byte>(buf, size),
                                       [](sage::wire::Record rec) { control(rec.packet_type, rec.payload); });
  must_explain(r);
  // The decoders are also reached with payloads of any length and alignment directly.
  if (size > 0) {
    const std::span<const std::byte> payload(buf + 1, size - 1);
    const std::uint8_t type = data[0] % 8 == 7 ? proto::code(proto::Control::announce) : static_cast<std::uint8_t>(1 + data[0] % 7);
    control(type, payload);
  }
  std::free(buf);
  return 0;
}

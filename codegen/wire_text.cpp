#include "wire_text.hpp"

#include <cstring>

#include <flatbuffers/reflection.h>

#include "sage/detail/generated.hpp"
#include "sage/wire.hpp"

namespace sagec {

namespace {

struct Found {
  const Schema* schema = nullptr;
  const flatbuffers::StructDef* table = nullptr;
};

// The table called `name` ("ns.Name", or "Name" when only one table has that name).
Found find_table(const std::vector<std::unique_ptr<Schema>>& schemas, const std::string& name, std::string& error) {
  std::vector<Found> hits;
  for (const auto& s : schemas)
    for (const auto* t : s->parser->structs_.vec) {
      if (t->predecl || t->fixed) continue;
      if (qualified_name(*t) == name) return Found{s.get(), t};
      if (t->name == name) {
        bool dup = false;
        for (const auto& h : hits) dup = dup || qualified_name(*h.table) == qualified_name(*t);
        if (!dup) hits.push_back(Found{s.get(), t});
      }
    }
  if (hits.size() == 1) return hits.front();
  error = hits.empty() ? "no table named " + name + " in the schemas"
                       : "table name " + name + " is ambiguous; write it with its namespace";
  return {};
}

Found find_packet_type(const std::vector<std::unique_ptr<Schema>>& schemas, int packet_type) {
  for (const auto& s : schemas)
    for (const auto* t : s->parser->structs_.vec) {
      if (t->predecl || t->fixed) continue;
      const auto pt = packet_type_of(*t);
      if (pt.present && pt.error.empty() && pt.value == packet_type) return Found{s.get(), t};
    }
  return {};
}

// Verifies `payload` as a `table` with the schema's reflection data (GenerateText does not verify),
// then prints it as one line of strict JSON.
bool payload_json(const Found& f, std::span<const std::byte> payload, std::string& json, std::string& error) {
  auto& parser = *f.schema->parser;
  parser.Serialize();
  std::vector<std::uint64_t> bfbs((parser.builder_.GetSize() + 7) / 8);
  std::memcpy(bfbs.data(), parser.builder_.GetBufferPointer(), parser.builder_.GetSize());
  const auto* rschema = reflection::GetSchema(bfbs.data());
  const reflection::Object* root = nullptr;
  for (const auto* o : *rschema->objects())
    if (o->name()->str() == qualified_name(*f.table)) root = o;
  if (root == nullptr) {
    error = "internal: no reflection data for " + qualified_name(*f.table);
    return false;
  }
  std::vector<std::uint64_t> aligned((payload.size() + 7) / 8);
  if (!payload.empty()) std::memcpy(aligned.data(), payload.data(), payload.size());
  const auto* buf = reinterpret_cast<const std::uint8_t*>(aligned.data());
  if (payload.size() < sage::detail::min_buffer_size || !flatbuffers::Verify(*rschema, *root, buf, payload.size())) {
    error = std::to_string(payload.size()) + " bytes are not a valid " + qualified_name(*f.table) +
            " (truncated, corrupt or another message type)";
    return false;
  }
  parser.opts.strict_json = true;
  parser.opts.indent_step = -1;
  parser.opts.output_default_scalars_in_json = true;
  parser.opts.output_enum_identifiers = true;
  if (!parser.SetRootType(qualified_name(*f.table).c_str()) || !flatbuffers::GenerateText(parser, buf, &json)) {
    error = "cannot print " + qualified_name(*f.table) + " as JSON (a string that is not UTF-8?)";
    return false;
  }
  return true;
}

}  // namespace

std::vector<std::byte> encode_json(const std::vector<std::unique_ptr<Schema>>& schemas, const EncodeRequest& req,
                                   Diagnostics& diags) {
  std::string error;
  const auto found = find_table(schemas, req.type, error);
  if (found.table == nullptr) {
    diags.error(Position{req.json_name, 0, 0}, error);
    return {};
  }
  const auto pt = packet_type_of(*found.table);
  if (!req.raw && (!pt.present || !pt.error.empty())) {
    diags.error(Position{req.json_name, 0, 0}, qualified_name(*found.table) +
                                                   " is a local-only message (no packet_type); use --raw for a bare FlatBuffer");
    return {};
  }
  // flatc's way: the parser that read the schema parses the JSON (this changes its root type and builder).
  auto& json_parser = *found.schema->parser;
  if (!json_parser.SetRootType(qualified_name(*found.table).c_str())) {
    diags.error(Position{req.json_name, 0, 0}, "internal: cannot use " + qualified_name(*found.table) + " as root type");
    return {};
  }
  if (!json_parser.ParseJson(req.json.c_str(), req.json_name.c_str())) {
    Diagnostic d;
    if (split_parser_error(json_parser.error_, d))
      diags.error(Position{req.json_name, d.line, d.column}, d.message);
    else
      diags.error(Position{req.json_name, 0, 0}, json_parser.error_);
    return {};
  }
  const auto* p = reinterpret_cast<const std::byte*>(json_parser.builder_.GetBufferPointer());
  std::span<const std::byte> payload(p, json_parser.builder_.GetSize());
  if (req.raw) return std::vector<std::byte>(payload.begin(), payload.end());
  std::vector<std::byte> out;
  sage::wire::append_record(out, static_cast<std::uint8_t>(pt.value), payload);
  return out;
}

std::string decode_to_json(const std::vector<std::unique_ptr<Schema>>& schemas, const DecodeRequest& req,
                           Diagnostics& diags) {
  const Position at{req.input_name, 0, 0};
  if (req.raw) {
    std::string error;
    const auto found = find_table(schemas, req.type, error);
    std::string json;
    if (found.table == nullptr || !payload_json(found, req.bytes, json, error)) {
      diags.error(at, error);
      return {};
    }
    return json + "\n";
  }
  // Records must start 8-aligned: copy into aligned storage.
  std::vector<std::uint64_t> aligned((req.bytes.size() + 7) / 8);
  if (!req.bytes.empty()) std::memcpy(aligned.data(), req.bytes.data(), req.bytes.size());
  std::span<const std::byte> body(reinterpret_cast<const std::byte*>(aligned.data()), req.bytes.size());
  std::string out;
  std::size_t index = 0;
  auto r = sage::wire::for_each_record(body, [&](sage::wire::Record rec) {
    ++index;
    const std::string which = "record " + std::to_string(index) + ": ";
    const auto found = find_packet_type(schemas, rec.packet_type);
    if (found.table == nullptr) {
      diags.error(at, which + "unknown packet_type " + std::to_string(rec.packet_type) + " (not in the schemas given)");
      return;
    }
    std::string json, error;
    if (!payload_json(found, rec.payload, json, error)) {
      diags.error(at, which + error);
      return;
    }
    out += "{\"packet_type\": " + std::to_string(rec.packet_type) + ", \"type\": \"" + qualified_name(*found.table) +
           "\", \"message\": " + json + "}\n";
  });
  if (!r) diags.error(at, "record " + std::to_string(index + 1) + ": " + r.error().message());
  return out;
}

}  // namespace sagec

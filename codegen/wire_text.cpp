#include "wire_text.hpp"

#include <cstring>

#include <flatbuffers/idl.h>

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

// Verifies a buffer against the parser's schema, field by field, with the FlatBuffers Verifier's
// limits (sage::wire::max_message_depth, max_message_tables). sagec used flatbuffers::Verify with reflection data, whose
// 2.0.8 version looks union members up by position instead of by tag (`union U { A, B = 5 }`
// fails); this does what the generated verify() functions do.
class SchemaVerifier {
 public:
  SchemaVerifier(const std::uint8_t* buf, std::size_t size) : buf_(buf), v_(buf, size, sage::wire::max_message_depth, sage::wire::max_message_tables) {}

  bool root(const flatbuffers::StructDef& table) {
    const auto offset = v_.VerifyOffset(0);
    return offset != 0 && this->table(table, reinterpret_cast<const flatbuffers::Table*>(buf_ + offset));
  }

 private:
  using Table = flatbuffers::Table;

  bool scalar(const Table& t, flatbuffers::voffset_t field, std::size_t size) {
    const auto at = t.GetOptionalFieldOffset(field);
    return at == 0 || v_.VerifyFieldStruct(reinterpret_cast<const std::uint8_t*>(&t), at, size, size);
  }

  bool offset(const Table& t, flatbuffers::voffset_t field, bool required) {
    return required ? t.VerifyOffsetRequired(v_, field) : t.VerifyOffset(v_, field);
  }

  bool union_value(const flatbuffers::EnumDef& u, std::uint8_t tag, const Table* value) {
    if (tag == 0) return true;
    const auto* member = u.ReverseLookup(tag, false);
    if (member == nullptr || member->union_type.struct_def == nullptr || value == nullptr) return false;
    return this->table(*member->union_type.struct_def, value);
  }

  bool vector(const Table& t, const flatbuffers::StructDef& holder, const flatbuffers::FieldDef& f) {
    using namespace flatbuffers;
    const auto field = f.value.offset;
    if (!offset(t, field, f.IsRequired())) return false;
    const auto* vec = t.GetPointer<const Vector<uoffset_t>*>(field);
    if (vec == nullptr) return true;
    const auto et = f.value.type.VectorType();
    const auto* raw = reinterpret_cast<const std::uint8_t*>(vec);
    if (IsScalar(et.base_type)) return v_.VerifyVectorOrString(raw, SizeOf(et.base_type));
    if (et.base_type == BASE_TYPE_STRUCT && et.struct_def->fixed) return v_.VerifyVectorOrString(raw, et.struct_def->bytesize);
    if (!v_.VerifyVectorOrString(raw, sizeof(uoffset_t))) return false;
    const auto* offsets = reinterpret_cast<const Vector<Offset<Table>>*>(vec);
    if (et.base_type == BASE_TYPE_STRING)
      return v_.VerifyVectorOfStrings(reinterpret_cast<const Vector<Offset<String>>*>(vec));
    if (et.base_type == BASE_TYPE_STRUCT) {
      for (uoffset_t i = 0; i < offsets->size(); ++i)
        if (!this->table(*et.struct_def, offsets->Get(i))) return false;
      return true;
    }
    if (et.base_type == BASE_TYPE_UNION) {
      const auto* type_field = holder.fields.Lookup(f.name + UnionTypeFieldSuffix());
      if (type_field == nullptr) return false;
      const auto* tags = t.GetPointer<const Vector<std::uint8_t>*>(type_field->value.offset);
      if (tags == nullptr || tags->size() != offsets->size()) return false;
      for (uoffset_t i = 0; i < offsets->size(); ++i)
        if (!union_value(*et.enum_def, tags->Get(i), tags->Get(i) == 0 ? nullptr : offsets->Get(i))) return false;
      return true;
    }
    return false;
  }

  bool table(const flatbuffers::StructDef& sd, const Table* t) {
    using namespace flatbuffers;
    if (!t->VerifyTableStart(v_)) return false;
    for (const auto* f : sd.fields.vec) {
      const auto& type = f->value.type;
      const auto field = f->value.offset;
      bool ok = true;
      if (IsScalar(type.base_type)) {
        ok = scalar(*t, field, SizeOf(type.base_type));
      } else if (type.base_type == BASE_TYPE_STRING) {
        ok = offset(*t, field, f->IsRequired()) && v_.VerifyString(t->GetPointer<const String*>(field));
      } else if (type.base_type == BASE_TYPE_STRUCT && type.struct_def->fixed) {
        const auto at = t->GetOptionalFieldOffset(field);
        ok = at == 0 ? !f->IsRequired()
                     : v_.VerifyFieldStruct(reinterpret_cast<const std::uint8_t*>(t), at, type.struct_def->bytesize,
                                            type.struct_def->minalign);
      } else if (type.base_type == BASE_TYPE_STRUCT) {
        ok = offset(*t, field, f->IsRequired());
        if (ok && t->GetPointer<const Table*>(field) != nullptr)
          ok = this->table(*type.struct_def, t->GetPointer<const Table*>(field));
      } else if (type.base_type == BASE_TYPE_UNION) {
        const auto* type_field = sd.fields.Lookup(f->name + UnionTypeFieldSuffix());
        ok = type_field != nullptr && offset(*t, field, f->IsRequired()) &&
             union_value(*type.enum_def, t->GetField<std::uint8_t>(type_field->value.offset, 0),
                         t->GetPointer<const Table*>(field));
      } else if (type.base_type == BASE_TYPE_VECTOR) {
        ok = vector(*t, sd, *f);
      } else {
        ok = false;  // nothing else passes sagec check
      }
      if (!ok) return false;
    }
    return v_.EndTable();
  }

  const std::uint8_t* buf_;
  flatbuffers::Verifier v_;
};

// Verifies `payload` as a `table` (GenerateText does not verify), then prints it as one line of
// strict JSON.
bool payload_json(const Found& f, std::span<const std::byte> payload, std::string& json, std::string& error) {
  auto& parser = *f.schema->parser;
  std::vector<std::uint64_t> aligned((payload.size() + 7) / 8);
  if (!payload.empty()) std::memcpy(aligned.data(), payload.data(), payload.size());
  const auto* buf = reinterpret_cast<const std::uint8_t*>(aligned.data());
  if (payload.size() < sage::detail::min_buffer_size || payload.size() >= FLATBUFFERS_MAX_BUFFER_SIZE ||
      !SchemaVerifier(buf, payload.size()).root(*f.table)) {
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

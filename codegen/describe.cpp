#include "describe.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace sagec {

namespace sd = sage::schema;

namespace {

sd::Scalar scalar_of(flatbuffers::BaseType t) {
  switch (t) {
    case flatbuffers::BASE_TYPE_BOOL: return sd::Scalar::bool_;
    case flatbuffers::BASE_TYPE_CHAR: return sd::Scalar::byte_;
    case flatbuffers::BASE_TYPE_UCHAR: return sd::Scalar::ubyte;
    case flatbuffers::BASE_TYPE_SHORT: return sd::Scalar::short_;
    case flatbuffers::BASE_TYPE_USHORT: return sd::Scalar::ushort;
    case flatbuffers::BASE_TYPE_INT: return sd::Scalar::int_;
    case flatbuffers::BASE_TYPE_UINT: return sd::Scalar::uint;
    case flatbuffers::BASE_TYPE_LONG: return sd::Scalar::long_;
    case flatbuffers::BASE_TYPE_ULONG: return sd::Scalar::ulong;
    case flatbuffers::BASE_TYPE_FLOAT: return sd::Scalar::float_;
    case flatbuffers::BASE_TYPE_DOUBLE: return sd::Scalar::double_;
    case flatbuffers::BASE_TYPE_UTYPE: return sd::Scalar::ubyte;
    default: return sd::Scalar::int_;
  }
}

class Builder {
 public:
  std::uint32_t add_struct(const flatbuffers::StructDef& s) {
    if (auto it = index_.find(&s); it != index_.end()) return it->second;
    const auto idx = static_cast<std::uint32_t>(d_.definitions.size());
    index_.emplace(&s, idx);
    sd::Definition def;
    def.kind = s.fixed ? sd::Kind::struct_ : sd::Kind::table;
    def.name = qualified_name(s);
    if (s.fixed) {
      def.size = static_cast<std::uint32_t>(s.bytesize);
      def.align = static_cast<std::uint32_t>(s.minalign);
    }
    d_.definitions.push_back(std::move(def));
    std::vector<const flatbuffers::FieldDef*> fields(s.fields.vec.begin(), s.fields.vec.end());
    std::stable_sort(fields.begin(), fields.end(),
                     [](const auto* a, const auto* b) { return a->value.offset < b->value.offset; });
    std::vector<sd::Field> out;
    for (const auto* f : fields) {
      sd::Field field;
      field.id = s.fixed ? static_cast<std::uint32_t>(f->value.offset) : (static_cast<std::uint32_t>(f->value.offset) - 4) / 2;
      field.name = f->name;
      field.type = type_of(f->value.type);
      const bool scalarish = field.type.shape == sd::Type::Shape::single &&
                             (field.type.element == sd::Type::Element::scalar ||
                              field.type.element == sd::Type::Element::union_type ||
                              (field.type.element == sd::Type::Element::definition &&
                               d_.definitions[field.type.definition].kind == sd::Kind::enum_));
      if (!s.fixed && scalarish) field.default_value = f->IsOptional() ? "null" : f->value.constant;
      if (!s.fixed) {
        field.required = f->IsRequired();
        field.deprecated = f->deprecated;
      }
      out.push_back(std::move(field));
    }
    d_.definitions[idx].fields = std::move(out);
    return idx;
  }

  std::uint32_t add_enum(const flatbuffers::EnumDef& e) {
    if (auto it = index_.find(&e); it != index_.end()) return it->second;
    const auto idx = static_cast<std::uint32_t>(d_.definitions.size());
    index_.emplace(&e, idx);
    sd::Definition def;
    def.kind = e.is_union ? sd::Kind::union_ : sd::Kind::enum_;
    def.name = qualified_name(e);
    def.underlying = scalar_of(e.underlying_type.base_type);
    d_.definitions.push_back(std::move(def));
    std::vector<sd::EnumValue> values;
    for (const auto* v : e.Vals()) {
      sd::EnumValue value;
      value.name = v->name;
      value.value = e.ToString(*v);
      if (e.is_union && v->union_type.struct_def != nullptr) value.table = add_struct(*v->union_type.struct_def);
      values.push_back(std::move(value));
    }
    d_.definitions[idx].values = std::move(values);
    return idx;
  }

  sd::Type type_of(const flatbuffers::Type& t) {
    sd::Type out;
    flatbuffers::Type element = t;
    if (flatbuffers::IsVector(t)) {
      out.shape = sd::Type::Shape::vector;
      element = t.VectorType();
    } else if (flatbuffers::IsArray(t)) {
      out.shape = sd::Type::Shape::array;
      out.array_length = t.fixed_length;
      element = t.VectorType();
    }
    if (element.base_type == flatbuffers::BASE_TYPE_STRING) {
      out.element = sd::Type::Element::string;
    } else if (element.base_type == flatbuffers::BASE_TYPE_STRUCT && element.struct_def != nullptr) {
      out.element = sd::Type::Element::definition;
      out.definition = add_struct(*element.struct_def);
    } else if (element.base_type == flatbuffers::BASE_TYPE_UNION && element.enum_def != nullptr) {
      out.element = sd::Type::Element::definition;
      out.definition = add_enum(*element.enum_def);
    } else if (element.base_type == flatbuffers::BASE_TYPE_UTYPE && element.enum_def != nullptr) {
      out.element = sd::Type::Element::union_type;
      out.definition = add_enum(*element.enum_def);
    } else if (element.enum_def != nullptr && flatbuffers::IsInteger(element.base_type)) {
      out.element = sd::Type::Element::definition;
      out.definition = add_enum(*element.enum_def);
    } else {
      out.element = sd::Type::Element::scalar;
      out.scalar = scalar_of(element.base_type);
    }
    return out;
  }

  sd::Description take() { return std::move(d_); }
  sd::Description& description() { return d_; }

 private:
  sd::Description d_;
  std::map<const void*, std::uint32_t> index_;
};

}  // namespace

sd::Description describe_message(const flatbuffers::StructDef& table) {
  Builder b;
  const auto idx = b.add_struct(table);
  b.description().messages.push_back(sd::Message{packet_type_of(table).value, idx});
  return b.take();
}

MessageDescription message_description(const flatbuffers::StructDef& table) {
  MessageDescription out;
  out.text = sd::to_text(describe_message(table));
  const auto parsed = sd::parse(out.text);
  if (!parsed) {
    out.error = "the description of " + qualified_name(table) + " is not one sage can send (" + parsed.error + ")";
    return out;
  }
  out.fingerprint = sd::fnv1a64(out.text);
  return out;
}

bool describe_schemas(const std::vector<std::unique_ptr<Schema>>& schemas, sd::Description& out, Diagnostics& diags) {
  const auto errors_before = diags.error_count();
  std::set<std::string> seen;
  for (const auto& schema : schemas) {
    for (const auto* s : schema->parser->structs_.vec) {
      if (s->predecl || s->fixed) continue;
      const auto pt = packet_type_of(*s);
      if (!pt.present || !pt.error.empty() || !seen.insert(qualified_name(*s)).second) continue;
      const auto one = message_description(*s);
      if (!one.error.empty()) {
        diags.error(position_of(*s), one.error);
        continue;
      }
      if (auto why = sd::merge(out, describe_message(*s)); !why.empty())
        diags.error(position_of(*s), "cannot describe " + qualified_name(*s) + " together with the other messages: " + why);
    }
  }
  if (diags.error_count() == errors_before) {
    const auto text = sd::to_text(out);
    if (const auto parsed = sd::parse(text); !parsed)
      diags.error(Position{schemas.empty() ? std::string() : schemas.front()->path, 0, 0},
                  "the description of these schemas is not one sage can send (" + parsed.error + ")");
  }
  return diags.error_count() == errors_before;
}

namespace {

// Where a compare() diagnostic is: the definition (and field) it names, in the old or new schemas.
Position locate(const std::vector<std::unique_ptr<Schema>>& schemas, const sd::Diagnostic& d) {
  for (const auto& schema : schemas) {
    for (const auto* s : schema->parser->structs_.vec) {
      if (s->predecl || qualified_name(*s) != d.definition) continue;
      if (d.anchor == sd::Diagnostic::Anchor::packet_type) return attribute_position(*s, "packet_type");
      if (d.anchor == sd::Diagnostic::Anchor::field)
        if (const auto* f = s->fields.Lookup(d.field)) return position_of(*s, *f);
      return position_of(*s);
    }
    for (const auto* e : schema->parser->enums_.vec)
      if (qualified_name(*e) == d.definition) return position_of(*e);
  }
  return Position{schemas.empty() ? std::string() : schemas.front()->path, 0, 0};
}

}  // namespace

bool check_compatible(const std::vector<std::unique_ptr<Schema>>& before,
                      const std::vector<std::unique_ptr<Schema>>& now, sd::Level level, Diagnostics& diags,
                      bool as_peers) {
  const auto errors_before = diags.error_count();
  sd::Description old_desc, new_desc;
  if (!describe_schemas(before, old_desc, diags) || !describe_schemas(now, new_desc, diags)) return false;
  sd::CompareOptions options;
  options.level = level;
  if (as_peers) {
    options.history = false;
    options.old_name = "the peer";
    options.new_name = "this node";
  }
  const auto result = sd::compare(old_desc, new_desc, options);
  for (const auto& d : result.diagnostics) {
    const auto at = locate(d.side == sd::Diagnostic::Side::new_schema ? now : before, d);
    diags.add(Diagnostic{at.file, at.line, at.column, std::string(sd::to_string(d.severity)), d.text});
  }
  return diags.error_count() == errors_before;
}

}  // namespace sagec

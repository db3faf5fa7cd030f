#include "generate.hpp"

#include "describe.hpp"
#include "namer.hpp"
#include "template.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string_view>

namespace fs = std::filesystem;
using flatbuffers::EnumDef;
using flatbuffers::FieldDef;
using flatbuffers::StructDef;
using flatbuffers::Type;

namespace sagec {

namespace {

// ---------------------------------------------------------------------------------------------
// Naming: the one place where schema names become C++ names.

std::string ns_cpp(const std::vector<std::string>& ns) {
  std::string out;
  for (const auto& c : ns) out += (out.empty() ? "" : "::") + cpp_namespace_component(c);
  return out;
}

// The C++ name of definition `d`, fully qualified (so that a member may share a type's name).
std::string type_ref(const flatbuffers::Definition& d, const std::vector<std::string>& /*from*/) {
  const auto ns = namespace_of(d);
  return "::" + (ns.empty() ? "" : ns_cpp(ns) + "::") + cpp_type_name(d.name);
}

std::string identifier_from(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "_" + out;
  return out;
}

// A name for a local variable of a generated function that no member of the class uses.
std::string local(const std::string& base, const std::set<std::string>& members) {
  std::string n = base;
  while (members.count(n)) n += "_";
  return n;
}

// ---------------------------------------------------------------------------------------------
// Types and values

std::string scalar_cpp(flatbuffers::BaseType t) {
  switch (t) {
    case flatbuffers::BASE_TYPE_BOOL: return "bool";
    case flatbuffers::BASE_TYPE_CHAR: return "std::int8_t";
    case flatbuffers::BASE_TYPE_UCHAR: return "std::uint8_t";
    case flatbuffers::BASE_TYPE_SHORT: return "std::int16_t";
    case flatbuffers::BASE_TYPE_USHORT: return "std::uint16_t";
    case flatbuffers::BASE_TYPE_INT: return "std::int32_t";
    case flatbuffers::BASE_TYPE_UINT: return "std::uint32_t";
    case flatbuffers::BASE_TYPE_LONG: return "std::int64_t";
    case flatbuffers::BASE_TYPE_ULONG: return "std::uint64_t";
    case flatbuffers::BASE_TYPE_FLOAT: return "float";
    case flatbuffers::BASE_TYPE_DOUBLE: return "double";
    default: return "std::uint8_t";
  }
}

// The type a scalar is stored as on the wire (bool as a byte).
std::string wire_cpp(flatbuffers::BaseType t) {
  return t == flatbuffers::BASE_TYPE_BOOL ? "std::uint8_t" : scalar_cpp(t);
}

bool is_enum(const Type& t) { return flatbuffers::IsEnum(t) && !t.enum_def->is_union; }

// C++ type of one element (scalar, enum, string, struct or table).
std::string element_cpp(const Type& t, const std::vector<std::string>& ns) {
  if (t.base_type == flatbuffers::BASE_TYPE_UNION) return type_ref(*t.enum_def, ns);
  if (is_enum(t)) return type_ref(*t.enum_def, ns);
  if (t.base_type == flatbuffers::BASE_TYPE_STRING) return "std::string";
  if (t.base_type == flatbuffers::BASE_TYPE_STRUCT) return type_ref(*t.struct_def, ns);
  return scalar_cpp(t.base_type);
}

// A single table field whose table leads back to the table holding it: a sage::Box, since a class
// cannot contain an std::optional of itself.
bool boxed(const StructDef& holder, const FieldDef& f) {
  const auto& t = f.value.type;
  return flatbuffers::IsTable(t) && (t.struct_def == &holder || reaches_table(*t.struct_def, holder));
}

std::string member_cpp(const StructDef& holder, const FieldDef& f, const std::vector<std::string>& ns) {
  const auto& t = f.value.type;
  if (flatbuffers::IsVector(t)) return "std::vector<" + element_cpp(t.VectorType(), ns) + ">";
  if (boxed(holder, f)) return "sage::Box<" + element_cpp(t, ns) + ">";
  if (flatbuffers::IsTable(t) && !f.IsRequired()) return "std::optional<" + element_cpp(t, ns) + ">";
  if (flatbuffers::IsScalar(t.base_type) && f.IsOptional()) return "std::optional<" + element_cpp(t, ns) + ">";
  return element_cpp(t, ns);
}

// An integer constant of type `t` as a C++ literal that compiles cleanly for every value.
std::string int_literal(flatbuffers::BaseType t, const std::string& v) {
  if (t == flatbuffers::BASE_TYPE_LONG && v == "-9223372036854775808") return "std::numeric_limits<std::int64_t>::min()";
  if (t == flatbuffers::BASE_TYPE_INT && v == "-2147483648") return "std::numeric_limits<std::int32_t>::min()";
  if (t == flatbuffers::BASE_TYPE_ULONG && v != "0") return v + "ULL";
  if (t == flatbuffers::BASE_TYPE_UINT && v != "0") return v + "U";
  return v;
}

std::string float_literal(const std::string& c, bool is_float) {
  const std::string limits = is_float ? "std::numeric_limits<float>::" : "std::numeric_limits<double>::";
  std::string v = c;
  bool negative = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    negative = v[0] == '-';
    v = v.substr(1);
  }
  if (v == "inf" || v == "infinity") return (negative ? "-" : "") + limits + "infinity()";
  if (v == "nan") return limits + "quiet_NaN()";
  std::string out = c;
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return is_float ? out + "f" : out;
}

// A scalar constant from the schema (field default) as a C++ expression of the field's value type.
std::string scalar_literal(const Type& t, const std::string& constant, const std::vector<std::string>& ns) {
  using namespace flatbuffers;
  if (is_enum(t)) {
    const auto v = IsUnsigned(t.base_type) ? static_cast<std::int64_t>(StringToUInt(constant.c_str()))
                                           : StringToInt(constant.c_str());
    const auto* ev = t.enum_def->ReverseLookup(v, false);
    if (ev != nullptr) return type_ref(*t.enum_def, ns) + "::" + cpp_enum_value(ev->name);
    return "static_cast<" + type_ref(*t.enum_def, ns) + ">(" + int_literal(t.base_type, constant) + ")";
  }
  switch (t.base_type) {
    case BASE_TYPE_BOOL: return (constant == "0" || constant == "false") ? "false" : "true";
    case BASE_TYPE_FLOAT: return float_literal(constant, true);
    case BASE_TYPE_DOUBLE: return float_literal(constant, false);
    default: return int_literal(t.base_type, constant);
  }
}

// The default as the wire type, for FlatBufferBuilder::AddElement and Table::GetField.
std::string wire_default(const Type& t, const std::string& constant, const std::vector<std::string>& ns) {
  if (t.base_type == flatbuffers::BASE_TYPE_BOOL) return (constant == "0" || constant == "false") ? "0" : "1";
  if (is_enum(t)) return int_literal(t.base_type, constant);
  return scalar_literal(t, constant, ns);
}

// `s` as a C++ string literal: printable ASCII as is, everything else as 3-digit octal escapes
// (which, unlike \x, cannot run into the next character).
std::string string_literal(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      out += buf;
    }
  }
  return out + "\"";
}

// `greeting: string = "hello"`: a missing field decodes to "hello", and a new value has it. (A
// vector's only default, `[]`, is what a missing vector decodes to anyway.)
bool has_string_default(const FieldDef& f) {
  return f.value.type.base_type == flatbuffers::BASE_TYPE_STRING && f.presence == FieldDef::kDefault &&
         !f.value.constant.empty();
}

// The (key) field of a table or struct, or nullptr.
const FieldDef* key_field(const StructDef& s) {
  if (!s.has_key) return nullptr;
  for (const auto* f : s.fields.vec)
    if (f->key && !f->deprecated) return f;
  return nullptr;
}

// `[](const T& a, const T& b) { return a.k < b.k; }` for a type with a (key) field: the order
// flatc's sorted vectors have (strings compare as bytes, as std::string's operator< does).
std::string key_less(const StructDef& s, const std::vector<std::string>& ns) {
  const auto t = type_ref(s, ns);
  const auto k = cpp_member_name(key_field(s)->name, s.name);
  return "[](const " + t + "& a, const " + t + "& b) { return a." + k + " < b." + k + "; }";
}

// lookup_by_key() of a type with a (key) field: its declarations (in the class) and definitions.
std::pair<std::string, std::string> key_lookup(const StructDef& s, const std::vector<std::string>& ns) {
  const auto* kf = key_field(s);
  if (kf == nullptr) return {};
  const auto name = cpp_type_name(s.name);
  const auto member = cpp_member_name(kf->name, s.name);
  const auto param = kf->value.type.base_type == flatbuffers::BASE_TYPE_STRING ? std::string("std::string_view")
                                                                              : element_cpp(kf->value.type, ns);
  const Vars vars{{"name", name}, {"member", member}, {"param", param}, {"key", kf->name}};
  return {fill(R"(
  // The element of `items` whose key ({{key}}) equals `key`, or nullptr. Any order (a linear search);
  // vectors of {{name}} are written sorted by key, as FlatBuffers' LookupByKey needs them.
  static const {{name}}* lookup_by_key(const std::vector<{{name}}>& items, {{param}} key);
  static {{name}}* lookup_by_key(std::vector<{{name}}>& items, {{param}} key);
)",
               vars),
          fill(R"(inline const {{name}}* {{name}}::lookup_by_key(const std::vector<{{name}}>& items, {{param}} key) {
  for (const auto& item : items)
    if (item.{{member}} == key) return &item;
  return nullptr;
}

inline {{name}}* {{name}}::lookup_by_key(std::vector<{{name}}>& items, {{param}} key) {
  for (auto& item : items)
    if (item.{{member}} == key) return &item;
  return nullptr;
}

)",
               vars)};
}

std::size_t pack_order_size(const FieldDef& f) {
  const auto& t = f.value.type;
  if (flatbuffers::IsStruct(t)) return t.struct_def->bytesize;
  if (flatbuffers::IsScalar(t.base_type)) return flatbuffers::SizeOf(t.base_type);
  return sizeof(flatbuffers::uoffset_t);
}

// A description (letters, digits, spaces and @[]:.+- only) as C++ string literals, one per line.
std::string description_literal(const std::string& text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = text.find('\n', pos);
    out += "\n      \"" + text.substr(pos, end - pos) + "\\n\"";
    pos = end + 1;
  }
  return out;
}

std::string hex64(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%016" PRIx64 "ULL", v);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Unions

// The members of a union other than NONE, in schema order.
std::vector<const flatbuffers::EnumVal*> union_members(const EnumDef& u) {
  std::vector<const flatbuffers::EnumVal*> out;
  for (const auto* v : u.Vals())
    if (v->union_type.struct_def != nullptr) out.push_back(v);
  return out;
}

// "1, 5": the wire tags of the alternatives, for the sage::detail union helpers.
std::string union_tags(const EnumDef& u) {
  std::string out;
  for (const auto* v : union_members(u)) out += (out.empty() ? "" : ", ") + std::to_string(v->GetAsInt64());
  return out;
}

// The variant and its tags as template arguments: "::ns::U, 1, 5".
std::string union_args(const EnumDef& u) {
  const auto tags = union_tags(u);
  return type_ref(u, {}) + (tags.empty() ? "" : ", " + tags);
}

// ---------------------------------------------------------------------------------------------
// Emitters

std::string emit_union(const EnumDef& u) {
  const auto ns = namespace_of(u);
  std::string alternatives = "std::monostate";
  std::string cases;
  for (const auto* v : union_members(u)) {
    const auto& table = *v->union_type.struct_def;
    const auto ref = type_ref(table, ns);
    // A table that contains this union again is boxed: a variant cannot contain itself.
    alternatives += ", " + (reaches_table(table, table) ? "sage::Box<" + ref + ">" : ref);
    cases += "//   " + std::to_string(v->GetAsInt64()) + ": " + v->name + "\n";
  }
  return fill(R"({{doc}}// A union: std::monostate (none, tag 0) or one of its tables; alternative i has the i-th tag:
{{cases}}using {{name}} = std::variant<{{alternatives}}>;

)",
              {{"doc", cpp_doc_comment(u.doc_comment, "")},
               {"name", cpp_type_name(u.name)},
               {"cases", cases},
               {"alternatives", alternatives}});
}

std::string emit_enum(const EnumDef& e) {
  const auto ns = namespace_of(e);
  std::string values;
  std::string cases;
  std::set<std::int64_t> seen;
  for (const auto* v : e.Vals()) {
    values += "  " + cpp_enum_value(v->name) + " = " + int_literal(e.underlying_type.base_type, e.ToString(*v)) + ",\n";
    if (seen.insert(v->GetAsInt64()).second)
      cases += "    case " + cpp_type_name(e.name) + "::" + cpp_enum_value(v->name) + ": return \"" + v->name + "\";\n";
  }
  return fill(R"({{doc}}enum class {{name}} : {{underlying}} {
{{values}}};

// The enumerator's name as written in the schema; empty for values without a name.
constexpr std::string_view to_string({{name}} value) noexcept {
  switch (value) {
{{cases}}  }
  return {};
}

)",
              {{"doc", cpp_doc_comment(e.doc_comment, "")},
               {"name", cpp_type_name(e.name)},
               {"underlying", scalar_cpp(e.underlying_type.base_type)},
               {"values", values},
               {"cases", cases}});
}

// A class: its definition, and its member functions (emitted after every class of the header, so
// that tables that contain each other compile).
struct Code {
  std::string decl, defs;
  std::string view;  // a table's View class, emitted after every class (its accessors return Views)
};

Code emit_struct(const StructDef& s) {
  const auto ns = namespace_of(s);
  std::string members;
  std::string stores;
  std::string loads;
  for (const auto* f : s.fields.vec) {
    const auto& t = f->value.type;
    const auto name = cpp_member_name(f->name, s.name);
    const auto offset = std::to_string(f->value.offset);
    members += cpp_doc_comment(f->doc_comment, "  ");
    if (flatbuffers::IsArray(t)) {
      const auto et = t.VectorType();
      const auto ename = element_cpp(et, ns);
      const auto n = std::to_string(t.fixed_length);
      const auto size = std::to_string(flatbuffers::IsStruct(et) ? et.struct_def->bytesize : flatbuffers::SizeOf(et.base_type));
      const auto at = "bytes + " + offset + " + i * " + size;
      members += "  std::array<" + ename + ", " + n + "> " + name + "{};\n";
      if (flatbuffers::IsStruct(et)) {
        stores += "  for (std::size_t i = 0; i < " + n + "; ++i) {\n    const auto layout = this->" + name +
                  "[i].to_layout();\n    std::memcpy(out." + at + ", layout.bytes, sizeof layout.bytes);\n  }\n";
        loads += "  for (std::size_t i = 0; i < " + n + "; ++i) out." + name + "[i] = " + ename + "::from_layout(" + at + ");\n";
      } else {
        stores += "  for (std::size_t i = 0; i < " + n + "; ++i) sage::detail::store(out." + at + ", this->" + name + "[i]);\n";
        loads += "  for (std::size_t i = 0; i < " + n + "; ++i) out." + name + "[i] = sage::detail::load<" + ename + ">(" + at + ");\n";
      }
    } else if (flatbuffers::IsStruct(t)) {
      members += "  " + element_cpp(t, ns) + " " + name + "{};\n";
      stores += "  {\n    const auto layout = this->" + name + ".to_layout();\n";
      stores += "    std::memcpy(out.bytes + " + offset + ", layout.bytes, sizeof layout.bytes);\n  }\n";
      loads += "  out." + name + " = " + element_cpp(t, ns) + "::from_layout(bytes + " + offset + ");\n";
    } else {
      members += "  " + element_cpp(t, ns) + " " + name + "{};\n";
      stores += "  sage::detail::store(out.bytes + " + offset + ", this->" + name + ");\n";
      loads += "  out." + name + " = sage::detail::load<" + element_cpp(t, ns) + ">(bytes + " + offset + ");\n";
    }
  }
  const Vars vars{{"doc", cpp_doc_comment(s.doc_comment, "")},
                  {"name", cpp_type_name(s.name)},
                  {"members", members},
                  {"size", std::to_string(s.bytesize)},
                  {"align", std::to_string(s.minalign)},
                  {"stores", stores},
                  {"loads", loads},
                  {"key_api", key_lookup(s, ns).first}};
  Code code;
  code.decl = fill(R"({{doc}}struct {{name}} {
{{members}}
  bool operator==(const {{name}}&) const = default;
{{key_api}}
  // The FlatBuffers representation: {{size}} bytes, little endian, aligned to {{align}}.
  struct alignas({{align}}) Layout {
    std::uint8_t bytes[{{size}}];
  };
  Layout to_layout() const;
  static {{name}} from_layout(const std::uint8_t* bytes);
};

)",
              vars);
  code.defs = fill(R"(inline {{name}}::Layout {{name}}::to_layout() const {
  Layout out{};
{{stores}}  return out;
}

inline {{name}} {{name}}::from_layout(const std::uint8_t* bytes) {
  {{name}} out;
{{loads}}  return out;
}

)",
                   vars) +
              key_lookup(s, ns).second;
  return code;
}

struct TableCode {
  std::string members, field_offsets, refs, adds, verifies, unpacks;
  std::string view_decls, view_defs;  // the View's accessors: declared in its class, defined after
};

// One accessor of a table's View: `type name() const noexcept`, declared in the class and defined
// (with `body`) after every View class, since it may return another table's View.
void view_accessor(TableCode& c, const std::string& owner, const std::string& name, const std::string& type,
                   const std::string& body) {
  c.view_decls += "  " + type + " " + name + "() const noexcept;\n";
  c.view_defs += "inline auto " + owner + "::View::" + name + "() const noexcept -> " + type + " {\n  " + body + "\n}\n";
}

// One table field being emitted: the names every field kind uses.
struct FieldGen {
  const StructDef& s;
  const FieldDef& f;
  const std::vector<std::string>& ns;
  std::string name;      // the C++ member name
  std::string vt;        // its vtable offset constant, "Field::name"
  std::string required;  // "true" or "false", for the verifiers
  std::string ref;       // a local for the offset pack() writes first
  std::string owner;     // the C++ class name
  // "absent_.test(i)" for a field that may be absent from a decoded buffer (absent_bits()), else empty.
  std::string absent;

  FieldGen(const StructDef& s_, const FieldDef& f_, const std::vector<std::string>& ns_, const std::set<std::string>& names,
           const std::map<std::string, int>& bits)
      : s(s_), f(f_), ns(ns_), name(cpp_member_name(f_.name, s_.name)), vt("Field::" + name),
        required(f_.IsRequired() ? "true" : "false"), ref(local(name + "_ref", names)), owner(cpp_type_name(s_.name)) {
    // A union vector's `_type` field shares its value's bit.
    const bool types = flatbuffers::IsVector(f.value.type) && flatbuffers::IsUnionType(f.value.type.VectorType());
    const auto it = bits.find(types ? f.name.substr(0, f.name.size() - 5) : f.name);
    if (it != bits.end()) absent = "absent_.test(" + std::to_string(it->second) + ")";
  }
  // `code` (an offset), or a null offset of type `offset` when the field was absent from the
  // buffer it was decoded from and still holds what absence decodes to (`unchanged`).
  std::string unless_absent(const std::string& unchanged, const std::string& offset, const std::string& code) const {
    if (absent.empty()) return code;
    return absent + " && " + unchanged + " ? " + offset + "() : " + code;
  }
};

// The string, vector and struct fields of a table that a buffer may leave out (not required):
// schema name -> bit of the table's hidden `absent_` member. Decoding notes which were absent, and
// encoding leaves those absent again while they hold what absence decodes to, so that a buffer
// round-trips through decode -> encode with the same fields present (as flatc's own JSON shows).
std::map<std::string, int> absent_bits(const std::vector<const FieldDef*>& fields) {
  std::map<std::string, int> bits;
  for (const auto* f : fields) {
    const auto& t = f->value.type;
    if (f->IsRequired() || flatbuffers::IsUnionType(t)) continue;
    const bool union_types = flatbuffers::IsVector(t) && flatbuffers::IsUnionType(t.VectorType());
    if (!union_types && (t.base_type == flatbuffers::BASE_TYPE_STRING || flatbuffers::IsVector(t) || flatbuffers::IsStruct(t)))
      bits.emplace(f->name, static_cast<int>(bits.size()));
  }
  return bits;
}

// The hidden `<union>_type` field (or vector of them): written here, read with its union.
void emit_union_type_field(const FieldGen& g, TableCode& c) {
  const auto& t = g.f.value.type;
  const auto value_name = cpp_member_name(g.f.name.substr(0, g.f.name.size() - 5), g.s.name);  // without "_type"
  if (flatbuffers::IsVector(t)) {
    c.refs += "  const auto " + g.ref + " = " +
              g.unless_absent(value_name + ".empty()", "flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>",
                              "sage::detail::write_union_types<" + union_tags(*t.enum_def) + ">({{fbb}}, " + value_name + ")") +
              ";\n";
    c.adds += "  {{fbb}}.AddOffset(" + g.vt + ", " + g.ref + ");\n";
  } else {
    c.adds += "  {{fbb}}.AddElement<std::uint8_t>(" + g.vt + ", sage::detail::union_tag<" + union_tags(*t.enum_def) +
              ">(" + value_name + "), 0);\n";
  }
}

// A scalar or enum, with a default or optional (`= null`).
void emit_scalar_field(const FieldGen& g, const std::string& type, TableCode& c) {
  const auto& t = g.f.value.type;
  const auto wire = is_enum(t) ? scalar_cpp(t.base_type) : wire_cpp(t.base_type);
  const auto value_type = element_cpp(t, g.ns);
  // `table.GetField<wire>(...)` as the member's value type.
  auto as_value = [&](std::string read) {
    if (t.base_type == flatbuffers::BASE_TYPE_BOOL) return read + " != 0";
    if (wire != value_type) return "static_cast<" + value_type + ">(" + read + ")";
    return read;
  };
  c.verifies += "         sage::detail::verify_scalar<" + wire + ">(verifier, table, " + g.vt + ") &&\n";
  if (g.f.IsOptional()) {
    const auto value = (wire == value_type) ? "*" + g.name : "static_cast<" + wire + ">(*" + g.name + ")";
    c.adds += "  if (" + g.name + ") {{fbb}}.AddElement<" + wire + ">(" + g.vt + ", " + value + ");\n";
    c.unpacks += "  if (table.CheckField(" + g.vt + ")) out." + g.name + " = " +
                 as_value("table.GetField<" + wire + ">(" + g.vt + ", 0)") + ";\n";
    view_accessor(c, g.owner, g.name, type,
                  "if (!table_->CheckField(" + g.vt + ")) return std::nullopt;\n  return " +
                      as_value("table_->GetField<" + wire + ">(" + g.vt + ", 0)") + ";");
  } else {
    const auto def = wire_default(t, g.f.value.constant, g.ns);
    const auto value = (wire == value_type) ? g.name : "static_cast<" + wire + ">(" + g.name + ")";
    c.adds += "  {{fbb}}.AddElement<" + wire + ">(" + g.vt + ", " + value + ", " + def + ");\n";
    c.unpacks += "  out." + g.name + " = " + as_value("table.GetField<" + wire + ">(" + g.vt + ", " + def + ")") + ";\n";
    view_accessor(c, g.owner, g.name, type, "return " + as_value("table_->GetField<" + wire + ">(" + g.vt + ", " + def + ")") + ";");
  }
}

void emit_struct_field(const FieldGen& g, const std::set<std::string>& names, TableCode& c) {
  const auto sname = element_cpp(g.f.value.type, g.ns);
  const auto layout = local(g.name + "_layout", names);
  c.refs += "  const auto " + layout + " = " + g.name + ".to_layout();\n";
  // A null pointer: AddStruct leaves the field out.
  c.adds += "  {{fbb}}.AddStruct(" + g.vt + ", " +
            (g.absent.empty() ? "&" + layout
                              : g.absent + " && " + g.name + " == " + sname + "{} ? nullptr : &" + layout) +
            ");\n";
  c.verifies += "         sage::detail::verify_struct<" + sname + ">(verifier, table, " + g.vt + ", " + g.required + ") &&\n";
  c.unpacks += "  out." + g.name + " = sage::detail::read_struct<" + sname + ">(table, " + g.vt + ");\n";
  view_accessor(c, g.owner, g.name, sname, "return sage::detail::read_struct<" + sname + ">(*table_, " + g.vt + ");");
}

void emit_string_field(const FieldGen& g, TableCode& c) {
  const auto fallback = has_string_default(g.f) ? string_literal(g.f.value.constant) : std::string();
  c.refs += "  const auto " + g.ref + " = " +
            g.unless_absent(g.name + (fallback.empty() ? ".empty()" : " == " + fallback), "flatbuffers::Offset<flatbuffers::String>",
                            "{{fbb}}.CreateString(" + g.name + ")") +
            ";\n";
  c.adds += "  {{fbb}}.AddOffset(" + g.vt + ", " + g.ref + ");\n";
  c.verifies += "         sage::detail::verify_string(verifier, table, " + g.vt + ", " + g.required + ") &&\n";
  c.unpacks += "  out." + g.name + " = sage::detail::read_string(table, " + g.vt + (fallback.empty() ? "" : ", " + fallback) + ");\n";
  view_accessor(c, g.owner, g.name, "std::string_view",
                "const auto* s = table_->GetPointer<const flatbuffers::String*>(" + g.vt + ");\n  return s != nullptr ? "
                "std::string_view(s->c_str(), s->size()) : std::string_view(" + fallback + ");");
}

// A union or a vector of unions (the value; its `_type` field is emit_union_type_field's).
void emit_union_field(const FieldGen& g, TableCode& c) {
  const auto& t = g.f.value.type;
  const bool vec = flatbuffers::IsVector(t);
  const auto args = union_args(*t.enum_def);
  const auto type_vt = "Field::" + cpp_member_name(g.f.name + "_type", g.s.name);
  if (vec)
    c.refs += "  const auto " + g.ref + " = " +
              g.unless_absent(g.name + ".empty()", "flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>>",
                              "sage::detail::write_unions({{fbb}}, " + g.name + ")") +
              ";\n";
  else
    c.refs += "  const auto " + g.ref + " = sage::detail::pack_union({{fbb}}, " + g.name + ");\n";
  c.adds += "  {{fbb}}.AddOffset(" + g.vt + ", " + g.ref + ");\n";
  c.verifies += "         sage::detail::verify_union" + std::string(vec ? "s" : "") + "<" + args + ">(verifier, table, " +
                type_vt + ", " + g.vt + ", " + g.required + ") &&\n";
  c.unpacks += "  out." + g.name + " = sage::detail::read_union" + (vec ? "s" : "") + "<" + args + ">(table, " + type_vt +
               ", " + g.vt + ");\n";
  if (vec)
    view_accessor(c, g.owner, g.name, "sage::UnionVectorView<" + args + ">",
                  "return {table_->GetPointer<const flatbuffers::Vector<std::uint8_t>*>(" + type_vt +
                      "),\n          table_->GetPointer<const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>*>(" +
                      g.vt + ")};");
  else
    view_accessor(c, g.owner, g.name, "sage::UnionView<" + args + ">",
                  "return {table_->GetField<std::uint8_t>(" + type_vt + ", 0), table_->GetPointer<const flatbuffers::Table*>(" +
                      g.vt + ")};");
}

// A nested table: required (held by value), optional (std::optional) or recursive (sage::Box).
void emit_table_ref_field(const FieldGen& g, TableCode& c) {
  const auto tname = element_cpp(g.f.value.type, g.ns);
  const bool box = boxed(g.s, g.f);
  if (g.f.IsRequired() && !box) {
    c.refs += "  const auto " + g.ref + " = " + g.name + ".pack({{fbb}});\n";
    c.unpacks += "  out." + g.name + " = " + tname + "::unpack(*table.GetPointer<const flatbuffers::Table*>(" + g.vt + "));\n";
  } else {
    c.refs += "  const auto " + g.ref + " = " + g.name + " ? " + g.name + "->pack({{fbb}}) : flatbuffers::Offset<flatbuffers::Table>();\n";
    c.unpacks += "  out." + g.name + " = sage::detail::read_" + (box ? "boxed_" : "") + "table<" + tname + ">(table, " + g.vt + ");\n";
  }
  c.adds += "  {{fbb}}.AddOffset(" + g.vt + ", " + g.ref + ");\n";
  c.verifies += "         sage::detail::verify_table<" + tname + ">(verifier, table, " + g.vt + ", " + g.required + ") &&\n";
  view_accessor(c, g.owner, g.name, tname + "::View", "return " + tname + "::View(sage::detail::sub_table(*table_, " + g.vt + "));");
}

// A vector of scalars, enums, strings, structs or tables.
void emit_vector_field(const FieldGen& g, TableCode& c) {
  const auto et = g.f.value.type.VectorType();
  const auto ename = element_cpp(et, g.ns);
  const auto& name = g.name;
  const auto& vt = g.vt;
  std::string write, read, verify, element;
  std::string offset;  // the type write returns
  if (flatbuffers::IsScalar(et.base_type)) {
    element = ename;
    write = "sage::detail::write_scalars({{fbb}}, " + name + ")";
    offset = "flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>";
    read = "sage::detail::read_scalars<" + ename + ">(table, " + vt + ")";
    verify = "sage::detail::verify_vector<" + std::to_string(flatbuffers::SizeOf(et.base_type)) + ">(verifier, table, " + vt + ", " + g.required + ")";
  } else if (et.base_type == flatbuffers::BASE_TYPE_STRING) {
    element = "std::string_view";
    write = "sage::detail::write_strings({{fbb}}, " + name + ")";
    offset = "flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>>";
    read = "sage::detail::read_strings(table, " + vt + ")";
    verify = "sage::detail::verify_strings(verifier, table, " + vt + ", " + g.required + ")";
  } else if (flatbuffers::IsStruct(et)) {
    element = ename;
    write = key_field(*et.struct_def) != nullptr
                ? "sage::detail::write_sorted_structs({{fbb}}, " + name + ", " + key_less(*et.struct_def, g.ns) + ")"
                : "sage::detail::write_structs({{fbb}}, " + name + ")";
    offset = "flatbuffers::Offset<flatbuffers::Vector<const " + ename + "::Layout*>>";
    read = "sage::detail::read_structs<" + ename + ">(table, " + vt + ")";
    verify = "sage::detail::verify_vector<sizeof(" + ename + "::Layout)>(verifier, table, " + vt + ", " + g.required + ")";
  } else {
    element = ename + "::View";
    write = key_field(*et.struct_def) != nullptr
                ? "sage::detail::write_sorted_tables({{fbb}}, " + name + ", " + key_less(*et.struct_def, g.ns) + ")"
                : "sage::detail::write_tables({{fbb}}, " + name + ")";
    offset = "flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>>";
    read = "sage::detail::read_tables<" + ename + ">(table, " + vt + ")";
    verify = "sage::detail::verify_tables<" + ename + ">(verifier, table, " + vt + ", " + g.required + ")";
  }
  c.refs += "  const auto " + g.ref + " = " + g.unless_absent(name + ".empty()", offset, write) + ";\n";
  c.adds += "  {{fbb}}.AddOffset(" + vt + ", " + g.ref + ");\n";
  c.verifies += "         " + verify + " &&\n";
  c.unpacks += "  out." + name + " = " + read + ";\n";
  view_accessor(c, g.owner, name, "sage::VectorView<" + element + ">",
                "flatbuffers::uoffset_t n = 0;\n  const auto* p = sage::detail::vector_data(*table_, " + vt +
                    ", n);\n  return {p, n};");
}

// What one field adds to each part of its table's code: the member and its initializer, the
// vtable constant, then the kind's own pack/verify/unpack/View code.
void emit_table_field(const StructDef& s, const FieldDef& f, const std::vector<std::string>& ns, const std::set<std::string>& names,
                      const std::map<std::string, int>& absent, TableCode& c) {
  const auto& t = f.value.type;
  const FieldGen g(s, f, ns, names, absent);
  c.field_offsets += "    static constexpr flatbuffers::voffset_t " + g.name + " = " + std::to_string(f.value.offset) + ";\n";
  if (flatbuffers::IsUnionType(t) || (flatbuffers::IsVector(t) && flatbuffers::IsUnionType(t.VectorType())))
    return emit_union_type_field(g, c);

  c.members += cpp_doc_comment(f.doc_comment, "  ");
  c.view_decls += cpp_doc_comment(f.doc_comment, "  ");
  const auto type = member_cpp(s, f, ns);
  const bool is_union = flatbuffers::IsUnion(t) || (flatbuffers::IsVector(t) && flatbuffers::IsUnion(t.VectorType()));
  if (flatbuffers::IsScalar(t.base_type) && !f.IsOptional())
    c.members += "  " + type + " " + g.name + " = " + scalar_literal(t, f.value.constant, ns) + ";\n";
  else if (has_string_default(f))
    c.members += "  " + type + " " + g.name + " = " + string_literal(f.value.constant) + ";\n";
  else if (is_union)
    // No `{}`: a union's std::variant starts as none without it, and with it every TU that
    // includes the header compiles the variant's constructor (seconds for a union of 100 tables).
    c.members += "  " + type + " " + g.name + ";\n";
  else
    c.members += "  " + type + " " + g.name + "{};\n";

  if (const auto it = absent.find(f.name); it != absent.end())
    c.unpacks += "  if (!table.CheckField(" + g.vt + ")) out.absent_.set(" + std::to_string(it->second) + ");\n";
  if (flatbuffers::IsScalar(t.base_type))
    emit_scalar_field(g, type, c);
  else if (flatbuffers::IsStruct(t))
    emit_struct_field(g, names, c);
  else if (t.base_type == flatbuffers::BASE_TYPE_STRING)
    emit_string_field(g, c);
  else if (is_union)
    emit_union_field(g, c);
  else if (flatbuffers::IsTable(t))
    emit_table_ref_field(g, c);
  else if (flatbuffers::IsVector(t))
    emit_vector_field(g, c);
}

// `root_identifier`: null unless `s` is the schema's root_type; then its file_identifier (or empty).
Code emit_table(const StructDef& s, const std::string* root_identifier) {
  const auto ns = namespace_of(s);
  std::vector<const FieldDef*> fields;
  std::set<std::string> names;
  for (const auto* f : s.fields.vec) {
    if (f->deprecated) continue;
    fields.push_back(f);
    names.insert(cpp_member_name(f->name, s.name));
  }
  const auto absent = absent_bits(fields);
  // Members in declaration (id) order; pack adds the largest fields first, as flatc does.
  TableCode c;
  for (const auto* f : fields) {
    TableCode one;
    emit_table_field(s, *f, ns, names, absent, one);
    c.members += one.members;
    c.field_offsets += one.field_offsets;
    c.refs += one.refs;
    c.verifies += one.verifies;
    c.unpacks += one.unpacks;
    c.view_decls += one.view_decls;
    c.view_defs += one.view_defs;
  }
  auto by_size = fields;
  std::stable_sort(by_size.begin(), by_size.end(),
                   [](const FieldDef* a, const FieldDef* b) { return pack_order_size(*a) > pack_order_size(*b); });
  for (const auto* f : by_size) {
    TableCode one;
    emit_table_field(s, *f, ns, names, absent, one);
    c.adds += one.adds;
  }

  const auto pt = packet_type_of(s);
  Vars vars{{"doc", cpp_doc_comment(s.doc_comment, "")},
            {"name", cpp_type_name(s.name)},
            {"qualified", qualified_name(s)},
            {"members", (absent.empty() ? c.members
                                        : c.members + "  // Which of the fields above a decoded buffer left out (not part of the value).\n"
                                                      "  sage::detail::Absent<" + std::to_string(absent.size()) + "> absent_{};\n") +
                            (c.members.empty() ? "" : "\n")},
            {"field_offsets", c.field_offsets},
            {"refs", c.refs},
            {"adds", c.adds},
            {"verifies", c.verifies},
            {"unpacks", c.unpacks},
            {"fbb", local("fbb", names)},
            {"start", local("start", names)},
            {"table_param", fields.empty() ? "" : " table"}};
  const bool root = root_identifier != nullptr;
  const bool has_identifier = root && !root_identifier->empty();
  vars["root"] = !root ? ""
                       : "  // The schema's root_type: encode()/to_bytes() write it and decode()/View(bytes) read it as a\n"
                         "  // standalone FlatBuffer (a file), whether or not it has a packet_type.\n";
  if (has_identifier)
    vars["root"] += "  // The schema's file_identifier: encode() and to_bytes() write it at bytes 4..7; decode() and\n"
                    "  // verify_bytes() accept buffers with or without it.\n"
                    "  static constexpr std::string_view file_identifier = " + string_literal(*root_identifier) + ";\n";
  vars["finish_identifier"] = has_identifier ? ", file_identifier.data()" : "";
  const auto keys = key_lookup(s, ns);
  vars["key_api"] = keys.first;
  std::string head;
  if (pt.present) {
    vars["packet_type"] = std::to_string(pt.value);
    const auto described = message_description(s);
    vars["fingerprint"] = hex64(described.fingerprint);
    vars["description"] = description_literal(described.text);
    const int depth = nesting_depth(s);
    vars["max_depth"] = depth < 0 ? "-1;  // contains itself: the depth is up to the sender, checked at send"
                                  : std::to_string(depth) + ";  // tables deep at most (the root counts 1)";
    head = fill(R"(  static constexpr std::uint8_t packet_type = {{packet_type}};
  static constexpr std::string_view message_name = "{{qualified}}";
  // What the handshake sends about this message (docs/schemas.md, "Schema descriptions").
  static constexpr std::string_view schema_description ={{description}};
  static constexpr std::uint64_t fingerprint = {{fingerprint}};  // FNV-1a 64 of schema_description
  static constexpr int max_depth = {{max_depth}}
{{root}}
)",
                vars);
  } else {
    head = fill(R"(  // Local-only message (no packet_type): it cannot be sent to another process.
  static constexpr std::string_view message_name = "{{qualified}}";
{{root}}
)",
                vars);
  }
  vars["head"] = head;
  vars["wire_api"] = pt.present || root ? fill(R"(
  // Builds this message into `fbb` and finishes the buffer.
  template <class = void>
  void encode(flatbuffers::FlatBufferBuilder& fbb) const { fbb.Finish(pack(fbb){{finish_identifier}}); }
  // This message as one finished FlatBuffer.
  template <class = void>
  std::vector<std::byte> to_bytes() const {
    flatbuffers::FlatBufferBuilder fbb;
    encode(fbb);
    return sage::detail::finished_bytes(fbb);
  }
  // Verifies `bytes` before reading them (any alignment); bad bytes give an Error, never UB.
  template <class = void>
  static sage::Result<{{name}}> decode(std::span<const std::byte> bytes) {
    return sage::detail::decode_root<{{name}}>(bytes);
  }
  // Checks `bytes` in place as a {{name}} that View(bytes) may read; they must start on an 8-byte
  // boundary (Errc::misaligned otherwise). Bad bytes give an Error, never UB.
  template <class = void>
  static sage::Result<void> verify_bytes(std::span<const std::byte> bytes) {
    if (sage::detail::verified_root<{{name}}>(bytes) != nullptr) [[likely]]
      return {};
    return sage::detail::verify_in_place<{{name}}>(bytes).error();
  }
)",
                                       vars)
                                  : "";
  // Builder references in the field code are {{fbb}}: renamed when a field is called fbb.
  vars["refs"] = fill(c.refs, vars);
  vars["adds"] = fill(c.adds, vars);
  Code code;
  code.decl = fill(R"({{doc}}struct {{name}} {
{{head}}{{members}}  bool operator==(const {{name}}&) const = default;
{{key_api}}{{wire_api}}
  // A zero-copy view of a {{name}} (sage/view.hpp): valid while the bytes it reads are.
  class View;

  // The vtable offset of each field, and the table's parts, for generated code.
  struct Field {
{{field_offsets}}  };
  template <class = void>
  flatbuffers::Offset<flatbuffers::Table> pack(flatbuffers::FlatBufferBuilder& fbb) const;
  template <class = void>
  static bool verify(flatbuffers::Verifier& verifier, const flatbuffers::Table& table);
  template <class = void>
  static {{name}} unpack(const flatbuffers::Table& table);
};

)",
                   vars);
  vars["view_decls"] = c.view_decls.empty() ? "" : c.view_decls + "\n";
  vars["view_from_bytes"] =
      pt.present || root ? fill(R"(  // Reads bytes that {{name}}::verify_bytes() accepted, in place.
  explicit View(std::span<const std::byte> verified_bytes) noexcept
      : table_(&sage::detail::root_table(verified_bytes)) {}
)",
                        vars)
                 : "";
  code.view = fill(R"(class {{name}}::View {
 public:
  explicit View(const flatbuffers::Table& table) noexcept : table_(&table) {}
{{view_from_bytes}}  // Not copyable or movable: a view lives no longer than the call it was handed to.
  View(const View&) = delete;
  View& operator=(const View&) = delete;

  // False for an absent table (whose fields read as their defaults).
  explicit operator bool() const noexcept { return table_ != &sage::detail::empty_table(); }

{{view_decls}}  // The owning value: copies out every field.
  template <class = void>
  {{name}} to_value() const { return {{name}}::unpack(*table_); }

 private:
  const flatbuffers::Table* table_;
};

)",
                   vars);
  code.defs = fill(R"(template <class>
inline flatbuffers::Offset<flatbuffers::Table> {{name}}::pack(flatbuffers::FlatBufferBuilder& {{fbb}}) const {
{{refs}}  const auto {{start}} = {{fbb}}.StartTable();
{{adds}}  return flatbuffers::Offset<flatbuffers::Table>({{fbb}}.EndTable({{start}}));
}

template <class>
inline bool {{name}}::verify(flatbuffers::Verifier& verifier, const flatbuffers::Table& table) {
  return table.VerifyTableStart(verifier) &&
{{verifies}}         verifier.EndTable();
}

template <class>
inline {{name}} {{name}}::unpack(const flatbuffers::Table&{{table_param}}) {
  {{name}} out;
{{unpacks}}  return out;
}

)",
                   vars) +
              (c.view_defs.empty() ? "" : c.view_defs + "\n") + keys.second;
  return code;
}

}  // namespace

std::string header_name(const std::string& schema_path) {
  return fs::path(schema_path).stem().string() + ".sage.hpp";
}

bool defines_something(const flatbuffers::Parser& parser, const std::string& file) {
  for (const auto* s : parser.structs_.vec)
    if (s->file == file && !s->predecl) return true;
  for (const auto* e : parser.enums_.vec)
    if (e->file == file) return true;
  return false;
}

std::vector<flatbuffers::IncludedFile> header_includes(const flatbuffers::Parser& parser, const std::string& file) {
  std::vector<flatbuffers::IncludedFile> out;
  std::set<std::string> seen{file};
  std::function<void(const std::string&)> walk = [&](const std::string& from) {
    const auto it = parser.files_included_per_file_.find(from);
    if (it == parser.files_included_per_file_.end()) return;
    for (const auto& f : it->second) {
      if (!seen.insert(f.filename).second) continue;
      if (defines_something(parser, f.filename))
        out.push_back(f);
      else
        walk(f.filename);
    }
  };
  walk(file);
  return out;
}

std::vector<std::string> included_files(const Schema& schema) {
  std::vector<std::string> out;
  std::set<std::string> seen{schema.parser_path};
  std::function<void(const std::string&)> walk = [&](const std::string& from) {
    const auto it = schema.parser->files_included_per_file_.find(from);
    if (it == schema.parser->files_included_per_file_.end()) return;
    for (const auto& f : it->second)
      if (seen.insert(f.filename).second) {
        out.push_back(f.filename);
        walk(f.filename);
      }
  };
  walk(schema.parser_path);
  return out;
}

std::string generate_header(const Schema& schema) {
  const auto& parser = *schema.parser;

  // What this schema defines: enums first, then structs and tables with what they contain first.
  std::vector<const EnumDef*> enums;
  for (const auto* e : parser.enums_.vec)
    if (schema.owns(*e) && !e->is_union) enums.push_back(e);
  // A union comes after its tables (a variant needs complete types, except boxed ones).
  struct Item {
    const StructDef* s = nullptr;
    const EnumDef* u = nullptr;
  };
  std::vector<Item> order;
  std::set<const void*> placed;
  std::function<void(const StructDef*)> place;
  std::function<void(const EnumDef*)> place_union = [&](const EnumDef* u) {
    if (!schema.owns(*u) || !placed.insert(u).second) return;
    for (const auto* v : union_members(*u)) place(v->union_type.struct_def);
    order.push_back(Item{nullptr, u});
  };
  place = [&](const StructDef* s) {
    if (!schema.owns(*s) || !placed.insert(s).second) return;
    for (const auto* f : s->fields.vec) {
      if (f->deprecated) continue;
      if (f->value.type.struct_def != nullptr) place(f->value.type.struct_def);
      if (f->value.type.enum_def != nullptr && f->value.type.enum_def->is_union) place_union(f->value.type.enum_def);
    }
    order.push_back(Item{s, nullptr});
  };
  std::vector<const StructDef*> wire;
  for (const auto* s : parser.structs_.vec) {
    if (s->predecl) continue;
    place(s);
    if (schema.owns(*s) && !s->fixed && packet_type_of(*s).present) wire.push_back(s);
  }
  for (const auto* e : parser.enums_.vec)
    if (e->is_union) place_union(e);

  // Headers of the nearest included schemas that define something (through those that do not).
  std::set<std::string> includes;
  for (const auto& f : header_includes(parser, schema.parser_path)) includes.insert(header_name(f.schema_name));
  std::string include_lines;
  for (const auto& h : includes) include_lines += "#include \"" + h + "\"\n";

  const std::string guard = "SAGE_GENERATED_" + identifier_from(fs::path(schema.path).stem().string()) + "_" +
                            std::string(16, '0');
  std::string body = fill(R"(// {{header}}: generated by sagec from {{schema}}. DO NOT EDIT.
// Change {{schema}} instead; sage_generate() reruns sagec when it changes.
//
// A table's functions are templates of nothing (`template <class = void>`, called as usual): only
// a translation unit that calls one compiles it (docs/performance.md, "Generated header compile time").
#ifndef {{guard}}
#define {{guard}}

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "sage/detail/generated.hpp"
#include "sage/message.hpp"
#include "sage/view.hpp"
{{includes}}
)",
                          {{"guard", guard},
                           {"header", header_name(schema.path)},
                           {"schema", fs::path(schema.path).filename().string()},
                           {"includes", include_lines}});
  std::vector<std::string> open_ns;
  bool first = true;
  auto enter = [&](const std::vector<std::string>& ns) {
    if (!first && ns == open_ns) return;
    if (!first && !open_ns.empty()) body += "}  // namespace " + ns_cpp(open_ns) + "\n\n";
    if (!ns.empty()) body += "namespace " + ns_cpp(ns) + " {\n\n";
    open_ns = ns;
    first = false;
  };
  for (const auto* e : enums) {
    enter(namespace_of(*e));
    body += emit_enum(*e);
  }
  // Tables may refer to each other in a circle: declare them all first.
  for (const auto& item : order) {
    if (item.s == nullptr || item.s->fixed) continue;
    enter(namespace_of(*item.s));
    body += "struct " + cpp_type_name(item.s->name) + ";\n";
  }
  if (!body.empty() && body.back() == '\n' && body.compare(body.size() - 2, 2, ";\n") == 0) body += "\n";
  // The schema's root_type, if this schema declares it: a standalone buffer (file) API.
  const StructDef* root =
      parser.root_struct_def_ != nullptr && schema.owns(*parser.root_struct_def_) ? parser.root_struct_def_ : nullptr;
  std::vector<Code> code;
  for (const auto& item : order)
    code.push_back(item.u != nullptr ? Code{emit_union(*item.u), "", ""}
                                     : item.s->fixed ? emit_struct(*item.s)
                                                     : emit_table(*item.s, item.s == root ? &parser.file_identifier_ : nullptr));
  auto ns_of = [](const Item& item) { return item.u != nullptr ? namespace_of(*item.u) : namespace_of(*item.s); };
  for (std::size_t i = 0; i < order.size(); ++i) {
    enter(ns_of(order[i]));
    body += code[i].decl;
    std::string().swap(code[i].decl);
  }
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (code[i].view.empty()) continue;
    enter(ns_of(order[i]));
    body += code[i].view;
    std::string().swap(code[i].view);
  }
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (code[i].defs.empty()) continue;
    enter(ns_of(order[i]));
    body += code[i].defs;
    std::string().swap(code[i].defs);
  }
  const std::string stem = fs::path(schema.path).stem().string();
  const std::string list_name = identifier_from(stem) + "_wire_messages";
  if (first) enter({});
  std::string list;
  for (const auto* s : wire) list += (list.empty() ? "" : ", ") + type_ref(*s, open_ns);
  body += fill(R"(// The wire messages of {{schema}}, for sage::decode_packet() and the runtime's packet_type table.
using {{list_name}} = sage::type_list<{{list}}>;
)",
               {{"schema", fs::path(schema.path).filename().string()}, {"list_name", list_name}, {"list", list}});
  if (!open_ns.empty()) body += "\n}  // namespace " + ns_cpp(open_ns) + "\n";

  // An include guard named after the content: two copies of one header (two sage_generate()
  // targets whose schemas include the same schema) are one header to the compiler. The header is
  // hashed with a zero placeholder, which is then overwritten in place (headers can be 100s of MB).
  body += "\n#endif  // " + guard + "\n";
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016" PRIx64, sage::schema::fnv1a64(body));
  for (auto at = body.find(guard); at != std::string::npos; at = body.find(guard, at + guard.size()))
    body.replace(at + guard.size() - 16, 16, hash);
  return body;
}

}  // namespace sagec

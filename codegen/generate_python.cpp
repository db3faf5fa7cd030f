#include "generate_python.hpp"

#include "describe.hpp"
#include "generate.hpp"

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>

namespace fs = std::filesystem;
using flatbuffers::EnumDef;
using flatbuffers::FieldDef;
using flatbuffers::StructDef;
using flatbuffers::Type;

namespace sagec {

namespace {

const std::set<std::string>& python_keywords() {
  static const std::set<std::string> k{"False", "None",   "True",    "and",      "as",       "assert", "async",
                                       "await", "break",  "class",   "continue", "def",      "del",    "elif",
                                       "else",  "except", "finally", "for",      "from",     "global", "if",
                                       "import", "in",    "is",      "lambda",   "nonlocal", "not",    "or",
                                       "pass",  "raise",  "return",  "try",      "while",    "with",   "yield"};
  return k;
}

// Names the generated classes and the runtime's base classes use for themselves.
const std::set<std::string>& python_members() {
  static const std::set<std::string> m{"encode",      "decode",   "packet_type", "message_name", "schema_description",
                                       "fingerprint", "max_depth", "name_of",    "to_dict",      "self",
                                       "get_property", "file_identifier"};
  return m;
}

std::string identifier_from(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "_" + out;
  return out;
}

std::string py_type_name(const std::string& name) { return python_keywords().count(name) ? name + "_" : name; }

std::string py_member_name(const std::string& name) {
  return python_keywords().count(name) || python_members().count(name) || name.rfind('_', 0) == 0 ? name + "_" : name;
}

std::string module_of_file(const std::string& file) {
  return identifier_from(fs::path(file).stem().string()) + "_sage";
}

// A Python string literal of `s` (UTF-8 kept; quotes, backslashes and control characters escaped).
std::string py_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The struct module format of a scalar base type ('?' for bool, stored as one byte).
std::string scalar_format(flatbuffers::BaseType t) {
  switch (t) {
    case flatbuffers::BASE_TYPE_BOOL: return "?";
    case flatbuffers::BASE_TYPE_CHAR: return "b";
    case flatbuffers::BASE_TYPE_UCHAR: return "B";
    case flatbuffers::BASE_TYPE_UTYPE: return "B";
    case flatbuffers::BASE_TYPE_SHORT: return "h";
    case flatbuffers::BASE_TYPE_USHORT: return "H";
    case flatbuffers::BASE_TYPE_INT: return "i";
    case flatbuffers::BASE_TYPE_UINT: return "I";
    case flatbuffers::BASE_TYPE_LONG: return "q";
    case flatbuffers::BASE_TYPE_ULONG: return "Q";
    case flatbuffers::BASE_TYPE_FLOAT: return "f";
    case flatbuffers::BASE_TYPE_DOUBLE: return "d";
    default: return "B";
  }
}

bool is_enum(const Type& t) { return flatbuffers::IsEnum(t) && !t.enum_def->is_union; }

std::string float_literal(const std::string& c) {
  std::string v = c;
  bool negative = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    negative = v[0] == '-';
    v = v.substr(1);
  }
  if (v == "inf" || v == "infinity") return negative ? "-_f.INF" : "_f.INF";
  if (v == "nan") return "_f.NAN";
  std::string out = c;
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}

// The Python expression of a scalar field's default.
std::string scalar_default(const FieldDef& f, const std::function<std::string(const flatbuffers::Definition&)>& ref) {
  const auto& t = f.value.type;
  const auto& c = f.value.constant;
  if (f.IsOptional()) return "None";
  if (is_enum(t)) {
    const auto v = flatbuffers::IsUnsigned(t.base_type) ? static_cast<std::int64_t>(flatbuffers::StringToUInt(c.c_str()))
                                                        : flatbuffers::StringToInt(c.c_str());
    if (const auto* ev = t.enum_def->ReverseLookup(v, false)) return ref(*t.enum_def) + "." + py_member_name(ev->name);
    return c;
  }
  switch (t.base_type) {
    case flatbuffers::BASE_TYPE_BOOL: return (c == "0" || c == "false") ? "False" : "True";
    case flatbuffers::BASE_TYPE_FLOAT:
    case flatbuffers::BASE_TYPE_DOUBLE: return float_literal(c);
    default: return c;
  }
}

std::string hex64(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%016" PRIx64, v);
  return buf;
}

std::string comment(const std::vector<std::string>& lines, const std::string& indent) {
  std::string out;
  for (auto l : lines) {
    for (auto& ch : l)
      if (ch == '\r') ch = ' ';
    out += indent + "#" + l + "\n";
  }
  return out;
}

// `Cls._key = "attr"` for a table or struct with a (key) field: vectors of it are written sorted by
// that field, as FlatBuffers' LookupByKey (and the C++ classes) need them.
std::string key_line(const StructDef& s, const std::string& name) {
  if (!s.has_key) return "";
  for (const auto* f : s.fields.vec)
    if (f->key && !f->deprecated) return name + "._key = " + py_string(py_member_name(f->name)) + "\n";
  return "";
}

}  // namespace

std::string python_module_file(const std::string& schema_path) { return module_of_file(schema_path) + ".py"; }

std::string generate_python(const Schema& schema) {
  const auto& parser = *schema.parser;
  std::set<std::string> imports;
  // A definition as this module refers to it: its class name, prefixed by its module when another
  // schema defines it.
  const std::function<std::string(const flatbuffers::Definition&)> ref = [&](const flatbuffers::Definition& d) {
    if (d.file == schema.parser_path) return py_type_name(d.name);
    const auto m = module_of_file(d.file);
    imports.insert(m);
    return m + "." + py_type_name(d.name);
  };

  std::string classes;
  std::string specs;
  std::vector<std::string> wire;

  for (const auto* e : parser.enums_.vec) {
    if (!schema.owns(*e)) continue;
    const auto name = py_type_name(e->name);
    std::string values, names;
    std::set<std::int64_t> seen;
    for (const auto* v : e->Vals()) {
      const auto value = e->ToString(*v);
      values += "    " + py_member_name(v->name) + " = " + value + "\n";
      if (!e->is_union || v->union_type.struct_def != nullptr || v->GetAsInt64() == 0)
        if (seen.insert(v->GetAsInt64()).second) names += (names.empty() ? "" : ", ") + value + ": " + py_string(v->name);
    }
    if (e->is_union) {
      classes += comment(e->doc_comment, "") + "class " + name +
                 "(_f.Union):\n    \"\"\"A union: a field holds None (NONE) or an instance of one member table.\"\"\"\n" +
                 "    message_name = " + py_string(qualified_name(*e)) + "\n" + values + "\n\n";
      std::string members;
      for (const auto* v : e->Vals())
        if (v->union_type.struct_def != nullptr)
          members += (members.empty() ? "" : ", ") + std::to_string(v->GetAsInt64()) + ": " + ref(*v->union_type.struct_def);
      specs += name + "._names = {" + names + "}\n";
      specs += name + "._members = {" + members + "}\n";
    } else {
      classes += comment(e->doc_comment, "") + "class " + name + "(_f.Enum):\n" + "    message_name = " +
                 py_string(qualified_name(*e)) + "\n" + values + "\n\n";
      specs += name + "._names = {" + names + "}\n";
    }
  }

  for (const auto* s : parser.structs_.vec) {
    if (s->predecl || !schema.owns(*s)) continue;
    const auto name = py_type_name(s->name);
    std::string params, inits, slots, fields;
    if (s->fixed) {
      for (const auto* f : s->fields.vec) {
        const auto& t = f->value.type;
        const auto attr = py_member_name(f->name);
        slots += py_string(attr) + ", ";
        std::string kind, arg, dflt;
        std::size_t count = 0;
        const Type et = flatbuffers::IsArray(t) ? t.VectorType() : t;
        if (flatbuffers::IsArray(t)) count = t.fixed_length;
        if (flatbuffers::IsStruct(et)) {
          kind = "_f.STRUCT";
          arg = ref(*et.struct_def);
          dflt = arg + "()";
        } else {
          kind = "_f.SCALAR";
          arg = py_string(scalar_format(et.base_type));
          dflt = et.base_type == flatbuffers::BASE_TYPE_BOOL ? "False"
                 : (et.base_type == flatbuffers::BASE_TYPE_FLOAT || et.base_type == flatbuffers::BASE_TYPE_DOUBLE) ? "0.0"
                                                                                                                  : "0";
        }
        params += ", " + attr + "=None";
        if (count > 0)
          inits += "        self." + attr + " = [" + dflt + " for _ in range(" + std::to_string(count) + ")] if " + attr +
                   " is None else " + attr + "\n";
        else
          inits += "        self." + attr + " = " + dflt + " if " + attr + " is None else " + attr + "\n";
        fields += "    (" + py_string(attr) + ", " + std::to_string(f->value.offset) + ", " + kind + ", " + arg + ", " +
                  std::to_string(count) + "),\n";
      }
      classes += comment(s->doc_comment, "") + "class " + name + "(_f.Struct):\n    message_name = " +
                 py_string(qualified_name(*s)) + "\n    __slots__ = (" + slots + ")\n\n    def __init__(self" + params +
                 "):\n" + (inits.empty() ? "        pass\n" : inits) + "\n\n";
      specs += name + "._layout = (" + std::to_string(s->bytesize) + ", " + std::to_string(s->minalign) + ", (\n" +
               fields + "))\n";
      specs += key_line(*s, name);
      continue;
    }
    std::size_t nslots = 0;
    for (const auto* f : s->fields.vec) {
      const auto slot = static_cast<std::size_t>((f->value.offset - 4) / 2);
      nslots = std::max(nslots, slot + 1);
      if (f->deprecated) continue;
      const auto& t = f->value.type;
      if (t.base_type == flatbuffers::BASE_TYPE_UTYPE ||
          (flatbuffers::IsVector(t) && t.element == flatbuffers::BASE_TYPE_UTYPE))
        continue;  // the hidden type field of a union: part of the union field
      const auto attr = py_member_name(f->name);
      slots += py_string(attr) + ", ";
      std::string kind, arg = "None", dflt = "None", init;
      const bool required = f->IsRequired();
      if (flatbuffers::IsVector(t)) {
        const auto et = t.VectorType();
        if (et.base_type == flatbuffers::BASE_TYPE_STRING) {
          kind = "_f.VSTRING";
        } else if (et.base_type == flatbuffers::BASE_TYPE_STRUCT && et.struct_def->fixed) {
          kind = "_f.VSTRUCT";
          arg = ref(*et.struct_def);
        } else if (et.base_type == flatbuffers::BASE_TYPE_STRUCT) {
          kind = "_f.VTABLE";
          arg = ref(*et.struct_def);
        } else if (et.base_type == flatbuffers::BASE_TYPE_UNION) {
          kind = "_f.VUNION";
          arg = ref(*et.enum_def);
        } else {
          kind = "_f.VSCALAR";
          arg = py_string(scalar_format(et.base_type));
        }
        init = "[] if " + attr + " is None else " + attr;
      } else if (t.base_type == flatbuffers::BASE_TYPE_STRING) {
        kind = "_f.STRING";
        const bool has_default = f->presence == FieldDef::kDefault && !f->value.constant.empty();
        dflt = has_default ? py_string(f->value.constant) : "\"\"";
      } else if (t.base_type == flatbuffers::BASE_TYPE_STRUCT && t.struct_def->fixed) {
        kind = "_f.STRUCT";
        arg = ref(*t.struct_def);
        init = arg + "() if " + attr + " is None else " + attr;
      } else if (t.base_type == flatbuffers::BASE_TYPE_STRUCT) {
        kind = "_f.TABLE";
        arg = ref(*t.struct_def);
        if (required) init = arg + "() if " + attr + " is None else " + attr;
      } else if (t.base_type == flatbuffers::BASE_TYPE_UNION) {
        kind = "_f.UNION";
        arg = ref(*t.enum_def);
      } else {
        kind = "_f.SCALAR";
        arg = py_string(scalar_format(t.base_type));
        dflt = scalar_default(*f, ref);
      }
      if (init.empty()) {
        params += ", " + attr + "=" + dflt;
        inits += "        self." + attr + " = " + attr + "\n";
      } else {
        params += ", " + attr + "=None";
        inits += "        self." + attr + " = " + init + "\n";
      }
      fields += "    (" + py_string(attr) + ", " + std::to_string(slot) + ", " + kind + ", " + arg + ", " +
                (kind == "_f.SCALAR" || kind == "_f.STRING" ? dflt : "None") + ", " + (required ? "True" : "False") +
                "),\n";
    }
    std::string wire_lines;
    const auto pt = packet_type_of(*s);
    if (pt.present && pt.error.empty()) {
      const auto described = message_description(*s);
      std::string lines;
      std::size_t pos = 0;
      const auto& text = described.text;
      while (pos < text.size()) {
        const auto end = text.find('\n', pos);
        lines += "\n        " + py_string(text.substr(pos, end - pos + 1));
        pos = end + 1;
      }
      wire_lines = "    packet_type = " + std::to_string(pt.value) +
                   "\n    # What the handshake sends about this message (docs/schemas.md, \"Schema descriptions\").\n"
                   "    schema_description = (" +
                   lines + ")\n    fingerprint = " + hex64(described.fingerprint) +
                   "  # FNV-1a 64 of schema_description\n    max_depth = " + std::to_string(nesting_depth(*s)) +
                   "  # tables deep at most (the root counts 1); -1: recursive\n";
      wire.push_back(name);
    } else {
      wire_lines = "    # Local-only message (no packet_type): it cannot be sent to another process.\n";
    }
    if (parser.root_struct_def_ == s && !parser.file_identifier_.empty())
      wire_lines += "    # The schema's root_type and file_identifier: encode() writes it at bytes 4..7; decode() accepts\n"
                    "    # buffers with or without it.\n    file_identifier = " +
                    py_string(parser.file_identifier_) + "\n";
    classes += comment(s->doc_comment, "") + "class " + name + "(_f.Table):\n" + wire_lines +
               "    message_name = " + py_string(qualified_name(*s)) + "\n    __slots__ = (" + slots +
               ")\n\n    def __init__(self" + params + "):\n" + (inits.empty() ? "        pass\n" : inits) + "\n\n";
    specs += name + "._slots = " + std::to_string(nslots) + "\n" + name + "._fields = (\n" + fields + ")\n";
    specs += key_line(*s, name);
  }

  std::string list;
  for (const auto& w : wire) list += w + ", ";
  // Imports of every module the classes refer to (ref() above collected them).
  std::string import_lines;
  for (const auto& m : imports) import_lines += "import " + m + "\n";
  const auto file = fs::path(schema.path).filename().string();
  return "# " + python_module_file(schema.path) + ": generated by sagec from " + file +
         ". DO NOT EDIT.\n# Change " + file +
         " instead and run `sagec generate --lang python` again.\n"
         "from sagepeer import flat as _f\n" +
         import_lines + "\n\n" + classes +
         "# Each class's fields for the sagepeer.flat runtime: (attribute, slot or offset, kind, type, default, "
         "required).\n" +
         specs + "\n# The wire messages of " + file + ", for Manager.register_messages().\nwire_messages = (" + list +
         ")\n";
}

}  // namespace sagec

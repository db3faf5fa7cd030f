#include "description.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <set>

namespace sage::schema {

namespace {

constexpr std::array<std::string_view, 11> scalar_names = {"bool", "byte",  "ubyte", "short", "ushort", "int",
                                                           "uint", "long", "ulong", "float", "double"};

bool scalar_from(std::string_view s, Scalar& out) {
  for (std::size_t i = 0; i < scalar_names.size(); ++i)
    if (scalar_names[i] == s) {
      out = static_cast<Scalar>(i);
      return true;
    }
  return false;
}

bool is_integer(Scalar s) { return s != Scalar::float_ && s != Scalar::double_ && s != Scalar::bool_; }

std::string type_text(const Type& t) {
  std::string e;
  switch (t.element) {
    case Type::Element::scalar: e = std::string(to_string(t.scalar)); break;
    case Type::Element::string: e = "string"; break;
    case Type::Element::definition: e = "@" + std::to_string(t.definition); break;
    case Type::Element::union_type: e = "utype@" + std::to_string(t.definition); break;
  }
  if (t.shape == Type::Shape::vector) return "[" + e + "]";
  if (t.shape == Type::Shape::array) return "[" + e + ":" + std::to_string(t.array_length) + "]";
  return e;
}

bool is_identifier(std::string_view s) {
  if (s.empty() || s.size() > max_name_bytes) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool is_qualified_name(std::string_view s) {
  if (s.empty() || s.size() > max_name_bytes) return false;
  std::size_t start = 0;
  while (true) {
    const auto dot = s.find('.', start);
    if (!is_identifier(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// Canonical unsigned decimal: "0" or no leading zero; fits `out`.
template <typename T>
bool number(std::string_view s, T& out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0') || s[0] == '-' || s[0] == '+') return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Canonical signed decimal integer of at most 64 bits: "0", "-5", "18446744073709551615".
bool integer_text(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && digits[0] == '-') digits.remove_prefix(1);
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0') || (s[0] == '-' && digits == "0")) return false;
  if (s[0] == '-') {
    std::int64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
  }
  std::uint64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A scalar default as FlatBuffers normalises it: digits, letters (inf, nan, null, true), . + - e.
bool default_text(std::string_view s) {
  if (s.empty() || s.size() > 64 || s == "-") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-';
  });
}

bool parse_type(std::string_view s, Type& t) {
  t = Type{};
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') {
    s = s.substr(1, s.size() - 2);
    const auto colon = s.find(':');
    if (colon != std::string_view::npos) {
      t.shape = Type::Shape::array;
      if (!number(s.substr(colon + 1), t.array_length) || t.array_length == 0 || t.array_length > max_array_length)
        return false;
      s = s.substr(0, colon);
    } else {
      t.shape = Type::Shape::vector;
    }
  }
  if (s == "string") {
    t.element = Type::Element::string;
    return true;
  }
  if (scalar_from(s, t.scalar)) {
    t.element = Type::Element::scalar;
    return true;
  }
  if (s.starts_with("utype@")) {
    t.element = Type::Element::union_type;
    return number(s.substr(6), t.definition);
  }
  if (s.starts_with("@")) {
    t.element = Type::Element::definition;
    return number(s.substr(1), t.definition);
  }
  return false;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto sp = line.find(' ', start);
    out.push_back(line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
    if (sp == std::string_view::npos) return out;
    start = sp + 1;
  }
}

// Checks what the grammar cannot: indices, kinds, orders, uniqueness. Returns "" or the reason.
std::string validate(const Description& d) {
  const auto n = d.definitions.size();
  std::set<std::string> names;
  for (const auto& def : d.definitions)
    if (!names.insert(def.name).second) return "definition " + def.name + " appears twice";
  std::set<std::uint32_t> message_defs;
  int last_pt = 0;
  for (const auto& m : d.messages) {
    if (m.packet_type <= last_pt) return "message lines must have ascending, distinct packet_types";
    last_pt = m.packet_type;
    if (m.definition >= n || d.definitions[m.definition].kind != Kind::table)
      return "message " + std::to_string(m.packet_type) + " does not refer to a table";
    if (!message_defs.insert(m.definition).second)
      return "table " + d.definitions[m.definition].name + " is the message of two packet_types";
  }
  for (const auto& def : d.definitions) {
    const std::string where = std::string(to_string(def.kind)) + " " + def.name;
    for (const auto& f : def.fields) {
      const auto& t = f.type;
      const std::string what = where + " field " + f.name + ": ";
      Kind target = Kind::table;
      if (t.element == Type::Element::definition || t.element == Type::Element::union_type) {
        if (t.definition >= n) return what + "refers to definition " + std::to_string(t.definition) + " of " + std::to_string(n);
        target = d.definitions[t.definition].kind;
        if (t.element == Type::Element::union_type && target != Kind::union_)
          return what + "utype@ must refer to a union";
      }
      const bool is_scalarish = t.element == Type::Element::scalar ||
                                (t.element == Type::Element::definition && target == Kind::enum_) ||
                                t.element == Type::Element::union_type;
      if (def.kind == Kind::struct_) {
        if (t.shape == Type::Shape::vector || t.element == Type::Element::string ||
            t.element == Type::Element::union_type ||
            (t.element == Type::Element::definition && target != Kind::struct_ && target != Kind::enum_))
          return what + "a struct holds only scalars, enums, structs and arrays of them";
        if (f.default_value != "-" || f.required || f.deprecated) return what + "struct fields have no default or flags";
      } else {
        if (t.shape == Type::Shape::array) return what + "arrays are allowed in structs only";
        const bool single_scalar = is_scalarish && t.shape == Type::Shape::single;
        if (single_scalar != (f.default_value != "-"))
          return what + (single_scalar ? "a scalar field needs a default" : "only scalar fields have a default");
        if (single_scalar && f.required) return what + "a scalar field cannot be required";
      }
    }
    for (std::size_t i = 1; i < def.fields.size(); ++i)
      if (def.fields[i].id <= def.fields[i - 1].id) return where + ": fields must have ascending ids/offsets";
    std::set<std::string> field_names;
    for (const auto& f : def.fields)
      if (!field_names.insert(f.name).second) return where + ": field " + f.name + " appears twice";
    std::set<std::string> value_names, values;
    for (const auto& v : def.values) {
      if (!value_names.insert(v.name).second) return where + ": value " + v.name + " appears twice";
      if (!values.insert(v.value).second) return where + ": value " + v.value + " appears twice";
      if (def.kind == Kind::union_ && v.table >= 0 &&
          (static_cast<std::size_t>(v.table) >= n || d.definitions[static_cast<std::size_t>(v.table)].kind != Kind::table))
        return where + ": member " + v.name + " must refer to a table";
    }
    if (def.kind == Kind::struct_ && def.fields.empty()) return where + ": a struct has fields";
  }
  return {};
}

}  // namespace

std::string_view to_string(Scalar s) { return scalar_names[static_cast<std::size_t>(s)]; }

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::table: return "table";
    case Kind::struct_: return "struct";
    case Kind::enum_: return "enum";
    case Kind::union_: return "union";
  }
  return "?";
}

const Definition* Description::message_table(int packet_type) const {
  for (const auto& m : messages)
    if (m.packet_type == packet_type) return &definitions[m.definition];
  return nullptr;
}

std::string to_text(const Description& d) {
  std::string out(format_line);
  out += "\n";
  for (const auto& m : d.messages)
    out += "message " + std::to_string(m.packet_type) + " " + std::to_string(m.definition) + "\n";
  for (std::size_t i = 0; i < d.definitions.size(); ++i) {
    const auto& def = d.definitions[i];
    out += std::string(to_string(def.kind)) + " " + std::to_string(i) + " " + def.name;
    if (def.kind == Kind::struct_) out += " size " + std::to_string(def.size) + " align " + std::to_string(def.align);
    if (def.kind == Kind::enum_) out += " " + std::string(to_string(def.underlying));
    out += "\n";
    for (const auto& f : def.fields) {
      out += "field " + std::to_string(f.id) + " " + f.name + " " + type_text(f.type) + " " + f.default_value;
      if (f.required) out += " required";
      if (f.deprecated) out += " deprecated";
      out += "\n";
    }
    for (const auto& v : def.values) {
      out += "value " + v.name + " " + v.value;
      if (def.kind == Kind::union_) out += v.table < 0 ? std::string(" -") : " @" + std::to_string(v.table);
      out += "\n";
    }
  }
  return out;
}

std::string type_name(const Description& d, const Type& t) {
  std::string e;
  switch (t.element) {
    case Type::Element::scalar: e = std::string(to_string(t.scalar)); break;
    case Type::Element::string: e = "string"; break;
    case Type::Element::definition:
    case Type::Element::union_type: {
      if (t.definition >= d.definitions.size()) {
        e = "?";
        break;
      }
      const auto& def = d.definitions[t.definition];
      e = (t.element == Type::Element::union_type ? "union_type " : std::string(to_string(def.kind)) + " ") + def.name;
      if (def.kind == Kind::enum_) e += ":" + std::string(to_string(def.underlying));
      break;
    }
  }
  if (t.shape == Type::Shape::vector) return "[" + e + "]";
  if (t.shape == Type::Shape::array) return "[" + e + ":" + std::to_string(t.array_length) + "]";
  return e;
}

ParseResult parse(std::string_view text) {
  ParseResult r;
  std::size_t line_no = 0;
  auto fail = [&](const std::string& why) {
    r.description = Description{};
    r.error = "line " + std::to_string(line_no) + ": " + why;
    return r;
  };
  if (text.size() > max_description_bytes)
    return fail("description is " + std::to_string(text.size()) + " bytes; the limit is " +
                std::to_string(max_description_bytes));
  if (text.empty() || text.back() != '\n') return fail("a description ends with a newline");
  auto& d = r.description;
  Definition* current = nullptr;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    const auto end = text.find('\n', pos);
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line_no == 1) {
      if (line != format_line)
        return fail("expected \"" + std::string(format_line) + "\" (unknown format or version)");
      continue;
    }
    for (char c : line)
      if (static_cast<unsigned char>(c) < 0x21 && c != ' ') return fail("control character");
    const auto tok = split(line);
    for (const auto& t : tok)
      if (t.empty()) return fail("empty token (tokens are separated by exactly one space)");
    const auto& kw = tok[0];
    if (kw == "message") {
      if (!d.definitions.empty()) return fail("message lines come before the definitions");
      Message m;
      if (tok.size() != 3 || !number(tok[1], m.packet_type) || m.packet_type < 101 || m.packet_type > 255 ||
          !number(tok[2], m.definition))
        return fail("expected: message <packet_type 101..255> <index>");
      d.messages.push_back(m);
    } else if (kw == "table" || kw == "struct" || kw == "enum" || kw == "union") {
      if (d.definitions.size() >= max_definitions)
        return fail("more than " + std::to_string(max_definitions) + " definitions");
      Definition def;
      def.kind = kw == "table" ? Kind::table : kw == "struct" ? Kind::struct_ : kw == "enum" ? Kind::enum_ : Kind::union_;
      const std::size_t want = def.kind == Kind::struct_ ? 7 : def.kind == Kind::enum_ ? 4 : 3;
      std::uint32_t index = 0;
      if (tok.size() != want || !number(tok[1], index) || !is_qualified_name(tok[2]))
        return fail("expected: " + std::string(kw) + " <index> <qualified name>" +
                    (def.kind == Kind::struct_ ? " size <n> align <n>" : def.kind == Kind::enum_ ? " <integer type>" : ""));
      if (index != d.definitions.size()) return fail("definition index " + std::to_string(index) + " out of order");
      def.name = std::string(tok[2]);
      if (def.kind == Kind::struct_) {
        if (tok[3] != "size" || tok[5] != "align" || !number(tok[4], def.size) || !number(tok[6], def.align) ||
            def.size == 0 || def.size > 65535 || def.align == 0 || def.align > 256 || (def.align & (def.align - 1)) != 0)
          return fail("expected: struct <index> <name> size <1..65535> align <power of two>");
      }
      if (def.kind == Kind::enum_ && (!scalar_from(tok[3], def.underlying) || !is_integer(def.underlying)))
        return fail("an enum's underlying type is an integer type");
      d.definitions.push_back(std::move(def));
      current = &d.definitions.back();
    } else if (kw == "field") {
      if (current == nullptr || (current->kind != Kind::table && current->kind != Kind::struct_))
        return fail("field outside a table or struct");
      Field f;
      if (tok.size() < 5 || tok.size() > 7 || !number(tok[1], f.id) || !is_identifier(tok[2]) || !parse_type(tok[3], f.type))
        return fail("expected: field <id> <name> <type> <default|-> [required] [deprecated]");
      if (current->kind == Kind::table && f.id > max_field_id) return fail("field id above " + std::to_string(max_field_id));
      if (tok[4] != "-" && !default_text(tok[4])) return fail("bad default \"" + std::string(tok[4]) + "\"");
      f.name = std::string(tok[2]);
      f.default_value = std::string(tok[4]);
      std::size_t i = 5;
      if (i < tok.size() && tok[i] == "required") f.required = true, ++i;
      if (i < tok.size() && tok[i] == "deprecated") f.deprecated = true, ++i;
      if (i != tok.size()) return fail("unknown field flag \"" + std::string(tok[i]) + "\" (required, deprecated, in that order)");
      current->fields.push_back(std::move(f));
    } else if (kw == "value") {
      if (current == nullptr || (current->kind != Kind::enum_ && current->kind != Kind::union_))
        return fail("value outside an enum or union");
      EnumValue v;
      const std::size_t want = current->kind == Kind::union_ ? 4 : 3;
      if (tok.size() != want || !is_identifier(tok[1]) || !integer_text(tok[2]))
        return fail(current->kind == Kind::union_ ? "expected: value <name> <integer> <@table|->"
                                                  : "expected: value <name> <integer>");
      v.name = std::string(tok[1]);
      v.value = std::string(tok[2]);
      if (current->kind == Kind::union_ && tok[3] != "-") {
        std::uint32_t t = 0;
        if (!tok[3].starts_with("@") || !number(tok[3].substr(1), t)) return fail("expected @<table index> or -");
        v.table = t;
      }
      current->values.push_back(std::move(v));
    } else {
      return fail("unknown keyword \"" + std::string(kw.substr(0, 32)) + "\"");
    }
  }
  if (auto why = validate(d); !why.empty()) {
    line_no = 0;
    r.description = Description{};
    r.error = why;
    return r;
  }
  return r;
}

std::string merge(Description& into, const Description& from) {
  Description out = into;
  std::map<std::string, std::uint32_t> by_name;
  for (std::uint32_t i = 0; i < out.definitions.size(); ++i) by_name.emplace(out.definitions[i].name, i);
  // Map every definition of `from` (all of them: descriptions hold only reachable definitions).
  std::vector<std::uint32_t> map(from.definitions.size());
  std::vector<bool> fresh(from.definitions.size(), false);
  for (std::uint32_t i = 0; i < from.definitions.size(); ++i) {
    const auto it = by_name.find(from.definitions[i].name);
    if (it != by_name.end()) {
      map[i] = it->second;
    } else {
      map[i] = static_cast<std::uint32_t>(out.definitions.size() + std::count(fresh.begin(), fresh.end(), true));
      fresh[i] = true;
    }
  }
  auto remap = [&](Definition def) {
    for (auto& f : def.fields)
      if (f.type.element == Type::Element::definition || f.type.element == Type::Element::union_type)
        f.type.definition = map[f.type.definition];
    for (auto& v : def.values)
      if (v.table >= 0) v.table = map[static_cast<std::size_t>(v.table)];
    return def;
  };
  std::vector<Definition> added;
  for (std::uint32_t i = 0; i < from.definitions.size(); ++i) {
    auto def = remap(from.definitions[i]);
    if (fresh[i]) {
      added.push_back(std::move(def));
    } else if (!(out.definitions[map[i]] == def)) {
      return std::string(to_string(def.kind)) + " " + def.name + " is defined differently in two schemas";
    }
  }
  for (auto& def : added) out.definitions.push_back(std::move(def));
  // Definitions that already existed may refer to each other the same way (compared above); fresh
  // ones may refer to old ones (remapped). Now the messages.
  for (const auto& m : from.messages) {
    const Message mm{m.packet_type, map[m.definition]};
    auto it = std::find_if(out.messages.begin(), out.messages.end(),
                           [&](const Message& x) { return x.packet_type == m.packet_type; });
    if (it != out.messages.end()) {
      if (it->definition != mm.definition)
        return "packet_type " + std::to_string(m.packet_type) + " is " + out.definitions[it->definition].name +
               " and " + out.definitions[mm.definition].name;
      continue;
    }
    out.messages.push_back(mm);
  }
  std::sort(out.messages.begin(), out.messages.end(),
            [](const Message& a, const Message& b) { return a.packet_type < b.packet_type; });
  if (auto why = validate(out); !why.empty()) return why;
  into = std::move(out);
  return {};
}

ParseResult combine(const std::vector<std::string_view>& texts) {
  ParseResult out;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    auto one = parse(texts[i]);
    if (!one) {
      out.description = Description{};
      out.error = "description " + std::to_string(i + 1) + ": " + one.error;
      return out;
    }
    if (auto why = merge(out.description, one.description); !why.empty()) {
      out.description = Description{};
      out.error = "description " + std::to_string(i + 1) + ": " + why;
      return out;
    }
  }
  return out;
}

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t fingerprint(const Description& d) { return fnv1a64(to_text(d)); }

}  // namespace sage::schema

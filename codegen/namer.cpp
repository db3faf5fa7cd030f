#include "namer.hpp"

#include <map>

namespace sagec {

const std::set<std::string>& cpp_keywords() {
  static const std::set<std::string> k = {
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
      "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr",
      "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default", "delete",
      "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
      "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
      "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast",
      "requires", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
      "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename",
      "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
      // not keywords, but names the generated code must be able to refer to
      "std", "sage", "flatbuffers"};
  return k;
}

// Object-like and function-like macros of the C and C++ standard headers the generated code (and
// a typical program) includes, and the platform macros of g++ in gnu++ modes.
const std::set<std::string>& reserved_macros() {
  static const std::set<std::string> m = {
      "errno", "EOF", "NULL", "assert", "stdin", "stdout", "stderr", "BUFSIZ", "FILENAME_MAX", "FOPEN_MAX",
      "TMP_MAX", "L_tmpnam", "SEEK_SET", "SEEK_CUR", "SEEK_END", "EXIT_SUCCESS", "EXIT_FAILURE", "RAND_MAX",
      "MB_CUR_MAX", "CHAR_BIT", "CHAR_MIN", "CHAR_MAX", "SCHAR_MIN", "SCHAR_MAX", "UCHAR_MAX", "SHRT_MIN",
      "SHRT_MAX", "USHRT_MAX", "INT_MIN", "INT_MAX", "UINT_MAX", "LONG_MIN", "LONG_MAX", "ULONG_MAX",
      "LLONG_MIN", "LLONG_MAX", "ULLONG_MAX", "MB_LEN_MAX", "SIZE_MAX", "PTRDIFF_MIN", "PTRDIFF_MAX",
      "INFINITY", "NAN", "HUGE_VAL", "HUGE_VALF", "FLT_MAX", "FLT_MIN", "FLT_EPSILON", "DBL_MAX", "DBL_MIN",
      "DBL_EPSILON", "EDOM", "ERANGE", "EILSEQ", "offsetof", "setjmp", "va_start", "va_end", "va_arg",
      "va_copy", "CLOCKS_PER_SEC", "TIME_UTC", "SIG_DFL", "SIG_ERR", "SIG_IGN", "SIGINT", "SIGTERM", "SIGABRT",
      "SIGSEGV", "SIGFPE", "SIGILL", "linux", "unix", "i386", "major", "minor", "makedev", "FLATBUFFERS_VERSION"};
  return m;
}

const std::set<std::string>& generated_members() {
  // Every name a generated class declares for itself (tests/codegen/cli_test.cpp reads the
  // generated headers and fails on a member missing here; schemas/members.fbs uses each as a field).
  static const std::set<std::string> m = {
      // a table's static members and functions
      "packet_type", "message_name", "schema_description", "fingerprint", "max_depth", "encode", "to_bytes",
      "decode", "verify_bytes", "pack", "verify", "unpack", "Field", "View", "operator",
      // the root_type's file_identifier; a type with a (key) field's lookup
      "file_identifier", "lookup_by_key", "absent_",
      // a struct's
      "Layout", "to_layout", "from_layout",
      // a View's
      "to_value", "table_"};
  return m;
}

namespace {
bool reserved(const std::string& n) { return cpp_keywords().count(n) > 0 || reserved_macros().count(n) > 0; }
}  // namespace

std::string cpp_namespace_component(const std::string& name) { return reserved(name) ? name + "_" : name; }

std::string cpp_type_name(const std::string& name) {
  // A class cannot have a member with its own name: types named like a generated member are escaped.
  return (reserved(name) || generated_members().count(name) > 0) ? name + "_" : name;
}

std::string cpp_enum_value(const std::string& name) { return reserved(name) ? name + "_" : name; }

std::string cpp_member_name(const std::string& field, const std::string& class_name) {
  const bool clash = reserved(field) || generated_members().count(field) > 0 || field == cpp_type_name(class_name);
  return clash ? field + "_" : field;
}

std::vector<Collision> member_collisions(const flatbuffers::StructDef& s) {
  std::vector<Collision> out;
  std::map<std::string, std::string> seen;  // C++ name -> schema name
  for (const auto* f : s.fields.vec) {
    if (f->deprecated) continue;
    const auto cpp = cpp_member_name(f->name, s.name);
    const auto [it, fresh] = seen.emplace(cpp, f->name);
    if (!fresh) out.push_back(Collision{it->second, f->name, cpp, f});
  }
  return out;
}

std::string cpp_qualified_type(const flatbuffers::Definition& d) {
  std::string out = "::";
  if (d.defined_namespace != nullptr)
    for (const auto& c : d.defined_namespace->components) out += cpp_namespace_component(c) + "::";
  return out + cpp_type_name(d.name);
}

std::vector<Collision> enum_value_collisions(const flatbuffers::EnumDef& e) {
  std::vector<Collision> out;
  std::map<std::string, std::string> seen;
  for (const auto* v : e.Vals()) {
    const auto cpp = cpp_enum_value(v->name);
    const auto [it, fresh] = seen.emplace(cpp, v->name);
    if (!fresh) out.push_back(Collision{it->second, v->name, cpp});
  }
  return out;
}

std::string cpp_doc_comment(const std::vector<std::string>& lines, const std::string& indent) {
  std::string out;
  for (auto line : lines) {
    for (auto& c : line)
      if (c == '\r' || c == '\f' || c == '\v') c = ' ';
    auto end = line.find_last_not_of(" \t");
    line.erase(end == std::string::npos ? 0 : end + 1);
    if (!line.empty() && line.back() == '\\') line += '.';
    out += indent + "//" + line + "\n";
  }
  return out;
}

}  // namespace sagec

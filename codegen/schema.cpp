#include "schema.hpp"

#include "namer.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_map>

#include <flatbuffers/util.h>

#include "sage/wire.hpp"

namespace fs = std::filesystem;

namespace sagec {

// ---------------------------------------------------------------------------------------------
// Diagnostics

std::string format_position(const Position& p) {
  std::string s = p.file;
  if (p.line > 0) s += ":" + std::to_string(p.line);
  if (p.line > 0 && p.column > 0) s += ":" + std::to_string(p.column);
  return s;
}

void Diagnostics::error(const Position& at, std::string message) {
  items_.push_back(Diagnostic{at.file, at.line, at.column, "error", std::move(message)});
}

std::size_t Diagnostics::error_count() const {
  return static_cast<std::size_t>(
      std::count_if(items_.begin(), items_.end(), [](const Diagnostic& d) { return d.severity == "error"; }));
}

std::string Diagnostics::text() const {
  std::string out;
  for (const auto& d : items_) {
    out += format_position(Position{d.file, d.line, d.column});
    out += ": " + d.severity + ": " + d.message + "\n";
  }
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string Diagnostics::json() const {
  std::size_t errors = 0;
  std::string list;
  for (const auto& d : items_) {
    if (d.severity == "error") ++errors;
    if (!list.empty()) list += ",\n";
    list += "    {\"file\": \"" + json_escape(d.file) + "\", \"line\": " + std::to_string(d.line) +
            ", \"column\": " + std::to_string(d.column) + ", \"severity\": \"" + d.severity +
            "\", \"message\": \"" + json_escape(d.message) + "\"}";
  }
  return "{\n  \"errors\": " + std::to_string(errors) + ",\n  \"diagnostics\": [" +
         (list.empty() ? "" : "\n" + list + "\n  ") + "]\n}\n";
}

// ---------------------------------------------------------------------------------------------
// Loading

IncludeDirs default_include_dirs(const char* argv0, std::vector<std::string> user) {
  IncludeDirs dirs;
  dirs.user = std::move(user);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec && argv0 != nullptr) exe = fs::absolute(argv0, ec);
  if (!exe.empty()) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "sage" / "schemas";
    if (fs::is_directory(installed, ec)) dirs.builtin.push_back(installed.string());
  }
#ifdef SAGEC_SOURCE_SCHEMA_DIR
  if (fs::is_directory(SAGEC_SOURCE_SCHEMA_DIR, ec)) dirs.builtin.emplace_back(SAGEC_SOURCE_SCHEMA_DIR);
#endif
  return dirs;
}

bool split_parser_error(const std::string& error, Diagnostic& d) {
  // "/abs/path/x.fbs:3: 12: error: expecting: ; instead got: y" (the column is 0-based, at the token's end)
  std::size_t sev = std::string::npos;
  for (const char* s : {": error: ", ": warning: "}) sev = std::min(sev, error.find(s));
  if (sev == std::string::npos) return false;
  const std::string head = error.substr(0, sev);
  const auto c2 = head.rfind(':');
  if (c2 == std::string::npos) return false;
  const auto c1 = head.rfind(':', c2 - 1);
  if (c1 == std::string::npos || c2 == 0) return false;
  auto number = [](std::string t, int& out) {
    while (!t.empty() && t.front() == ' ') t.erase(0, 1);
    const auto r = std::from_chars(t.data(), t.data() + t.size(), out);
    return r.ec == std::errc() && r.ptr == t.data() + t.size();
  };
  int line = 0, col = 0;
  if (!number(head.substr(c1 + 1, c2 - c1 - 1), line) || !number(head.substr(c2 + 1), col)) return false;
  d.file = head.substr(0, c1);
  d.line = line;
  d.column = col + 1;
  const bool is_error = error.compare(sev, 9, ": error: ") == 0;
  d.severity = is_error ? "error" : "warning";
  d.message = error.substr(sev + (is_error ? 9 : 11));
  while (!d.message.empty() && std::isspace(static_cast<unsigned char>(d.message.back()))) d.message.pop_back();
  return true;
}

namespace {

Diagnostic parser_diagnostic(const std::string& error, const std::string& given_path) {
  Diagnostic d;
  d.file = given_path;
  if (split_parser_error(error, d)) {
    std::error_code ec;
    if (fs::equivalent(d.file, given_path, ec)) d.file = given_path;
  } else {
    d.file = given_path;
    d.message = error.empty() ? "schema does not parse" : error;
    while (!d.message.empty() && std::isspace(static_cast<unsigned char>(d.message.back()))) d.message.pop_back();
  }
  // The lexer's words for a character it does not take: "illegal character: code: -61" (a byte
  // >= 0x80, printed as a signed char) or "illegal character: $".
  const std::string illegal = "illegal character: ";
  if (d.message.rfind(illegal, 0) == 0) {
    const std::string rest = d.message.substr(illegal.size());
    int code = 0;
    if (rest.rfind("code: ", 0) == 0 && std::from_chars(rest.data() + 6, rest.data() + rest.size(), code).ec == std::errc()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(code) & 0xFFu);
      d.message = (code < 0 || code > 127)
                      ? std::string("non-ASCII character (byte ") + hex +
                            "): names in a schema are ASCII letters, digits and _ (other text belongs in strings "
                            "and comments)"
                      : std::string("unexpected control character (byte ") + hex + ")";
    } else {
      d.message = "unexpected character '" + rest + "' (not part of the schema language)";
    }
  }
  if (d.message.find("to value of <> type") != std::string::npos)
    d.message += " (attribute values are integers or strings; packet_type is an integer 101..255)";
  if (d.message.find("user define attributes must be declared before use: packet_type") != std::string::npos)
    d.message += " (add `include \"sage.fbs\";` at the top of the schema)";
  // FlatBuffers' parser refuses other union members unless told the target language supports them.
  if (d.message.find("only tables can be union elements") != std::string::npos)
    d.message += " (sagec takes only tables as union members; flatc --cpp also takes structs and strings)";
  return d;
}

}  // namespace

std::unique_ptr<Schema> load_schema(const std::string& path, const IncludeDirs& dirs, Diagnostics& diags) {
  std::string text;
  if (!fs::is_regular_file(path) || !flatbuffers::LoadFile(path.c_str(), false, &text)) {
    diags.error(Position{path, 0, 0}, "cannot read schema file");
    return nullptr;
  }
  return load_schema_text(path, std::move(text), dirs, diags);
}

std::unique_ptr<Schema> load_schema_text(const std::string& path, std::string text, const IncludeDirs& dirs,
                                         Diagnostics& diags) {
  auto schema = std::make_unique<Schema>();
  schema->path = path;
  schema->parser_path = path;
  schema->text = std::move(text);
  remember_source(path, schema->text);
  flatbuffers::IDLOptions opts;
  opts.no_warnings = true;
  schema->parser = std::make_unique<flatbuffers::Parser>(opts);
  std::vector<std::string> storage;
  std::string own_dir = fs::path(path).parent_path().string();
  storage.push_back(own_dir.empty() ? std::string(".") : own_dir);
  for (const auto& d : dirs.user) storage.push_back(d);
  for (const auto& d : dirs.builtin) storage.push_back(d);
  std::vector<const char*> include_paths;
  for (auto& s : storage) {
    if (!s.empty() && s.back() != '/') s += '/';
    include_paths.push_back(s.c_str());
  }
  include_paths.push_back(nullptr);
  if (!schema->parser->Parse(schema->text.c_str(), include_paths.data(), path.c_str())) {
    diags.add(parser_diagnostic(schema->parser->error_, path));
    return nullptr;
  }
  return schema;
}

// ---------------------------------------------------------------------------------------------
// Names and positions

std::vector<std::string> namespace_of(const flatbuffers::Definition& d) {
  return d.defined_namespace ? d.defined_namespace->components : std::vector<std::string>{};
}

std::string qualified_name(const flatbuffers::Definition& d) {
  std::string out;
  for (const auto& c : namespace_of(d)) out += c + ".";
  return out + d.name;
}

namespace {

struct Token {
  std::string text;
  int line;
  int column;
};

// The tokens of one .fbs file (identifiers, numbers, strings and punctuation, comments skipped;
// positions 1-based) and an index of its declarations. The parser does not record where
// definitions are, so sagec finds them here; the indexes keep lookups O(1), so that positions for
// 100k tables or fields cost linear time (issue 11).
struct SourceTokens {
  std::vector<Token> toks;
  // Qualified name ("ns.Name", as the `namespace` statement before it says) -> indexes of `keyword Name`.
  std::unordered_map<std::string, std::vector<std::size_t>> decls;
  // Field name -> index of the name token, per table/struct (by its keyword index); filled lazily.
  std::unordered_map<std::size_t, std::unordered_map<std::string, std::size_t>> fields;
};

std::map<std::string, SourceTokens>& token_cache() {
  static std::map<std::string, SourceTokens> cache;
  return cache;
}

std::vector<Token> tokenize(const std::string& text) {
  std::vector<Token> out;
  int line = 1;
  int col = 1;
  std::size_t i = 0;
  auto advance = [&](std::size_t n) {
    for (std::size_t k = 0; k < n && i < text.size(); ++k, ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
  };
  while (i < text.size()) {
    const char c = text[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      advance(1);
    } else if (text.compare(i, 2, "//") == 0) {
      while (i < text.size() && text[i] != '\n') advance(1);
    } else if (text.compare(i, 2, "/*") == 0) {
      const auto end = text.find("*/", i + 2);
      advance(end == std::string::npos ? text.size() - i : end + 2 - i);
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t j = i;
      while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_' || text[j] == '.'))
        ++j;
      out.push_back(Token{text.substr(i, j - i), line, col});
      advance(j - i);
    } else if (c == '"') {
      std::size_t j = i + 1;
      while (j < text.size() && text[j] != '"' && text[j] != '\n') j += (text[j] == '\\') ? 2 : 1;
      out.push_back(Token{text.substr(i, std::min(j + 1, text.size()) - i), line, col});
      advance(std::min(j + 1, text.size()) - i);
    } else {
      out.push_back(Token{std::string(1, c), line, col});
      advance(1);
    }
  }
  return out;
}

bool is_declaration_keyword(const std::string& t) {
  return t == "table" || t == "struct" || t == "enum" || t == "union" || t == "rpc_service";
}

SourceTokens index_tokens(std::vector<Token> toks) {
  SourceTokens out;
  out.toks = std::move(toks);
  std::string ns;  // "a.b." after `namespace a.b;`
  for (std::size_t i = 0; i + 1 < out.toks.size(); ++i) {
    if (out.toks[i].text == "namespace") ns = out.toks[i + 1].text == ";" ? "" : out.toks[i + 1].text + ".";
    if (is_declaration_keyword(out.toks[i].text)) out.decls[ns + out.toks[i + 1].text].push_back(i);
  }
  return out;
}

// Tokens of `file`: those of the text load_schema_text() parsed under that name, else read from disk.
SourceTokens& tokens_of(const std::string& file) {
  auto& cache = token_cache();
  auto it = cache.find(file);
  if (it != cache.end()) return it->second;
  std::string text;
  flatbuffers::LoadFile(file.c_str(), false, &text);
  return cache.emplace(file, index_tokens(tokenize(text))).first->second;
}

// Index of the keyword token of the first declaration `keyword name` in its namespace, or npos.
// `qualified` is "ns.Name" (qualified_name()).
std::size_t find_declaration(const SourceTokens& src, std::initializer_list<const char*> keywords,
                             const std::string& qualified) {
  const auto it = src.decls.find(qualified);
  if (it == src.decls.end()) return std::string::npos;
  for (const std::size_t i : it->second)
    for (const char* k : keywords)
      if (src.toks[i].text == k) return i;
  return std::string::npos;
}

Position position_at(const std::string& file, const SourceTokens& src, std::size_t i) {
  if (i >= src.toks.size()) return Position{file, 0, 0};
  return Position{file, src.toks[i].line, src.toks[i].column};
}

}  // namespace

void remember_source(const std::string& file, const std::string& text) {
  token_cache()[file] = index_tokens(tokenize(text));
}

Position position_of(const flatbuffers::StructDef& s) {
  const auto& toks = tokens_of(s.file);
  return position_at(s.file, toks, find_declaration(toks, {"table", "struct"}, qualified_name(s)));
}

Position position_of(const flatbuffers::EnumDef& e) {
  const auto& toks = tokens_of(e.file);
  return position_at(e.file, toks, find_declaration(toks, {"enum", "union"}, qualified_name(e)));
}

Position position_of(const flatbuffers::StructDef& s, const flatbuffers::FieldDef& f) {
  auto& src = tokens_of(s.file);
  const std::size_t decl = find_declaration(src, {"table", "struct"}, qualified_name(s));
  if (decl == std::string::npos) return Position{s.file, 0, 0};
  auto [fields, fresh] = src.fields.try_emplace(decl);
  if (fresh) {  // one pass over the body: `name :` at depth 1, first occurrence wins
    const auto& toks = src.toks;
    std::size_t i = decl;
    while (i < toks.size() && toks[i].text != "{") ++i;
    int depth = 0;
    for (; i < toks.size(); ++i) {
      if (toks[i].text == "{") ++depth;
      if (toks[i].text == "}" && --depth == 0) break;
      if (depth == 1 && i + 1 < toks.size() && toks[i + 1].text == ":") fields->second.try_emplace(toks[i].text, i);
    }
  }
  const auto it = fields->second.find(f.name);
  if (it == fields->second.end()) return position_of(s);
  return position_at(s.file, src, it->second);
}

Position attribute_position(const flatbuffers::StructDef& s, const std::string& attribute) {
  const auto& src = tokens_of(s.file);
  std::size_t i = find_declaration(src, {"table", "struct"}, qualified_name(s));
  if (i == std::string::npos) return Position{s.file, 0, 0};
  for (; i < src.toks.size() && src.toks[i].text != "{"; ++i)
    if (src.toks[i].text == attribute || src.toks[i].text == "\"" + attribute + "\"")
      return position_at(s.file, src, i);
  return position_of(s);
}

PacketType packet_type_of(const flatbuffers::StructDef& s) {
  PacketType pt;
  const auto* v = s.attributes.Lookup("packet_type");
  if (v == nullptr) return pt;
  pt.present = true;
  const std::string what = "packet_type of " + s.name;
  if (v->type.base_type == flatbuffers::BASE_TYPE_NONE) {
    pt.error = what + " needs a value, e.g. (packet_type: 101)";
    return pt;
  }
  if (!flatbuffers::IsInteger(v->type.base_type)) {
    pt.error = what + " must be an integer, not " +
               (v->type.base_type == flatbuffers::BASE_TYPE_STRING ? "\"" + v->constant + "\"" : v->constant);
    return pt;
  }
  long long n = 0;
  const auto* end = v->constant.data() + v->constant.size();
  auto [p, ec] = std::from_chars(v->constant.data(), end, n);
  if (ec != std::errc() || p != end || n < 101 || n > 255) {
    pt.error = "packet_type " + v->constant + " of " + s.name +
               " is outside 101..255 (0..100 are reserved for sage's control packets)";
    return pt;
  }
  pt.value = static_cast<int>(n);
  return pt;
}

// ---------------------------------------------------------------------------------------------
// sagec check

namespace {

std::string canonical_file(const std::string& f) {
  std::error_code ec;
  auto p = fs::weakly_canonical(f, ec);
  return ec ? f : p.string();
}

// A display form for definitions in included files: relative to the working directory if inside it.
std::string short_position(const Position& p) {
  std::error_code ec;
  std::string file = p.file;
  auto rel = fs::relative(p.file, fs::current_path(ec), ec);
  if (!ec && !rel.empty() && rel.string().rfind("..", 0) != 0) file = rel.string();
  return format_position(Position{file, p.line, 0});
}

// How diagnostics name a definition: by its short name, or by its qualified name when another
// table, struct, enum or union of the call has the same short name (a.T and b.T).
class DisplayNames {
 public:
  explicit DisplayNames(const std::vector<std::unique_ptr<Schema>>& schemas) {
    for (const auto& schema : schemas) {
      for (const auto* s : schema->parser->structs_.vec)
        if (!s->predecl) qualified_[s->name].insert(qualified_name(*s));
      for (const auto* e : schema->parser->enums_.vec) qualified_[e->name].insert(qualified_name(*e));
    }
  }
  std::string operator()(const flatbuffers::Definition& d) const {
    const auto it = qualified_.find(d.name);
    return it != qualified_.end() && it->second.size() > 1 ? qualified_name(d) : d.name;
  }

 private:
  std::map<std::string, std::set<std::string>> qualified_;  // short name -> qualified names
};

void check_field(const flatbuffers::StructDef& s, const flatbuffers::FieldDef& f, const DisplayNames& shown,
                 Diagnostics& diags) {
  const auto& t = f.value.type;
  const std::string what = "field " + shown(s) + "." + f.name;
  const auto at = position_of(s, f);
  if (f.attributes.Lookup("packet_type"))
    diags.error(at, "packet_type is a table attribute: write `table " + s.name + " (packet_type: N)`, not a field attribute");
  if (f.deprecated || flatbuffers::IsUnionType(t)) return;  // the hidden `<field>_type` of a union
  if (flatbuffers::IsArray(t) && !s.fixed)
    diags.error(at, what + ": fixed-size arrays belong in structs (use a vector in a table)");

  if (f.nested_flatbuffer != nullptr || f.attributes.Lookup("nested_flatbuffer"))
    diags.error(at, what + ": nested_flatbuffer is not supported by sagec (use a nested table)");
  if (f.flexbuffer) diags.error(at, what + ": flexbuffer fields are not supported by sagec");
}

struct Seen {
  std::string name;
  Position at;
};

// The tables a table field (or vector of tables, or union) leads to.
std::vector<const flatbuffers::StructDef*> sub_tables(const flatbuffers::FieldDef& f) {
  std::vector<const flatbuffers::StructDef*> out;
  if (f.deprecated) return out;
  const auto& t = f.value.type;
  if (flatbuffers::IsTable(t) || flatbuffers::IsVectorOfTable(t)) out.push_back(t.struct_def);
  const bool is_union = flatbuffers::IsUnion(t) || (flatbuffers::IsVector(t) && flatbuffers::IsUnion(t.VectorType()));
  if (is_union && t.enum_def != nullptr)
    for (const auto* v : t.enum_def->Vals())
      if (v->union_type.struct_def != nullptr && !v->union_type.struct_def->fixed) out.push_back(v->union_type.struct_def);
  return out;
}

// How many tables deep a message nests (the root counts 1; the FlatBuffers Verifier counts the
// same way); -1 when a table on the way contains itself (the depth is then up to the sender).
class NestingDepth {
 public:
  int of(const flatbuffers::StructDef& s, std::string& path) {
    if (const auto it = memo_.find(&s); it != memo_.end()) {
      path = paths_[&s];
      return it->second;
    }
    if (!on_stack_.insert(&s).second) return -1;
    int depth = 1;
    std::string best;
    for (const auto* f : s.fields.vec)
      for (const auto* sub : sub_tables(*f)) {
        std::string sub_path;
        const int d = this->of(*sub, sub_path);
        if (d < 0) {
          depth = -1;
          break;
        }
        if (depth >= 0 && d + 1 > depth) {
          depth = d + 1;
          best = s.name + "." + f->name + (sub_path.empty() ? "" : " -> " + sub_path);
        }
      }
    on_stack_.erase(&s);
    memo_[&s] = depth;
    paths_[&s] = best;
    path = best;
    return depth;
  }

 private:
  std::map<const flatbuffers::StructDef*, int> memo_;
  std::map<const flatbuffers::StructDef*, std::string> paths_;
  std::set<const flatbuffers::StructDef*> on_stack_;
};

std::string display_file(const std::string& f) {
  std::error_code ec;
  auto rel = fs::relative(f, fs::current_path(ec), ec);
  if (!ec && !rel.empty() && rel.string().rfind("..", 0) != 0) return rel.lexically_normal().string();
  return fs::path(f).lexically_normal().string();
}

// Where `file` writes `include "name"`.
Position include_position(const std::string& file, const std::string& name) {
  const auto& src = tokens_of(file);
  for (std::size_t i = 0; i + 1 < src.toks.size(); ++i)
    if (src.toks[i].text == "include" && src.toks[i + 1].text == "\"" + name + "\"")
      return Position{file, src.toks[i].line, src.toks[i].column};
  return Position{file, 0, 0};
}

// Include cycles among the files `p` read, each reported once (at the include that closes it).
void check_include_cycles(const flatbuffers::Parser& p, const std::string& root, std::set<std::string>& reported,
                          Diagnostics& diags) {
  const auto& graph = p.files_included_per_file_;
  std::vector<std::string> stack;
  std::set<std::string> done;
  std::function<void(const std::string&)> visit = [&](const std::string& file) {
    stack.push_back(file);
    const auto it = graph.find(file);
    if (it != graph.end()) {
      for (const auto& inc : it->second) {
        // A schema that includes itself (FlatBuffers' own tests do): the parser reads it once and
        // its header does not include itself, as with flatc.
        if (canonical_file(inc.filename) == canonical_file(file)) continue;
        const auto on = std::find_if(stack.begin(), stack.end(), [&](const std::string& f) {
          return canonical_file(f) == canonical_file(inc.filename);
        });
        if (on != stack.end()) {
          std::vector<std::string> cycle(on, stack.end());
          std::string key;
          auto sorted = cycle;
          for (auto& c : sorted) c = canonical_file(c);
          std::sort(sorted.begin(), sorted.end());
          for (const auto& c : sorted) key += c + "|";
          if (!reported.insert(key).second) continue;
          std::string names;
          for (const auto& c : cycle) names += display_file(c) + " -> ";
          names += display_file(inc.filename);
          diags.error(include_position(file, inc.schema_name),
                      "include cycle: " + names +
                          "; each schema gets its own header and headers cannot include each other in a circle "
                          "(move what the schemas share into a schema that both include)");
        } else if (done.insert(canonical_file(inc.filename)).second) {
          visit(inc.filename);
        }
      }
    }
    stack.pop_back();
  };
  done.insert(canonical_file(root));
  visit(root);
}

// The most fields one table can have: its vtable (4 bytes + 2 per field) and every field offset
// are 16-bit; FlatBuffers 2.0.8's parser silently wraps the offsets of later fields.
constexpr std::size_t max_table_fields = 32765;

// The deepest nesting the decoders accept (sage::detail::decode_root() passes it to the Verifier).
constexpr int max_nesting_depth = static_cast<int>(sage::wire::max_message_depth);

}  // namespace

int nesting_depth(const flatbuffers::StructDef& s) {
  std::string path;
  return NestingDepth().of(s, path);
}

bool reaches_table(const flatbuffers::StructDef& from, const flatbuffers::StructDef& target) {
  std::set<const flatbuffers::StructDef*> seen;
  std::vector<const flatbuffers::StructDef*> todo{&from};
  while (!todo.empty()) {
    const auto* s = todo.back();
    todo.pop_back();
    for (const auto* f : s->fields.vec)
      for (const auto* sub : sub_tables(*f)) {
        if (sub == &target) return true;
        if (seen.insert(sub).second) todo.push_back(sub);
      }
  }
  return false;
}

bool check_schemas(const std::vector<std::unique_ptr<Schema>>& schemas, Diagnostics& diags) {
  const auto errors_before = diags.error_count();
  std::set<std::string> visited;            // canonical file + qualified name, for deduplication
  std::map<int, Seen> packet_types;         // packet_type -> first message with it
  std::map<std::string, Position> names;    // qualified name -> first definition
  std::map<std::string, std::string> types;  // C++ qualified type -> schema qualified name
  std::set<std::string> cycles;             // include cycles reported
  NestingDepth nesting;
  const DisplayNames shown(schemas);
  for (const auto& schema : schemas) {
    auto& p = *schema->parser;
    for (const auto* s : p.structs_.vec) {
      if (s->predecl) continue;
      const std::string key = canonical_file(s->file) + "|" + qualified_name(*s);
      if (!visited.insert(key).second) continue;
      const auto at = position_of(*s);
      const auto [it, fresh] = names.emplace(qualified_name(*s), at);
      if (!fresh)
        diags.error(at, "message name " + qualified_name(*s) + " already defined at " + short_position(it->second));
      const auto pt = packet_type_of(*s);
      if (pt.present && s->fixed) {
        diags.error(attribute_position(*s, "packet_type"),
                    "packet_type on struct " + shown(*s) + ": only tables can be wire messages");
      } else if (!pt.error.empty()) {
        diags.error(attribute_position(*s, "packet_type"), pt.error);
      } else if (pt.present) {
        const auto [prev, first] = packet_types.emplace(pt.value, Seen{shown(*s), at});
        if (!first)
          diags.error(attribute_position(*s, "packet_type"),
                      "packet_type " + std::to_string(pt.value) + " of " + shown(*s) + " already used by " +
                          prev->second.name + " (" + short_position(prev->second.at) + ")");
      }
      for (const auto* f : s->fields.vec) check_field(*s, *f, shown, diags);
      if (!s->fixed && s->fields.vec.size() > max_table_fields) {
        const auto* first = s->fields.vec[max_table_fields];
        diags.error(position_of(*s, *first),
                    "table " + shown(*s) + " has " + std::to_string(s->fields.vec.size()) + " fields (a union counts 2); "
                    "a FlatBuffers table holds at most " + std::to_string(max_table_fields) +
                    " (16-bit vtable offsets: from field " + first->name + " on they would wrap)");
      }
      for (const auto& c : member_collisions(*s))
        diags.error(position_of(*s, *c.second_field),
                    "field " + shown(*s) + "." + c.second + " and field " + shown(*s) + "." + c.first + " both become the C++ member `" +
                        c.cpp + "` (see \"Names\" in docs/schemas.md); rename one");
      if (const auto cpp = cpp_qualified_type(*s); !types.emplace(cpp, qualified_name(*s)).second && types[cpp] != qualified_name(*s))
        diags.error(at, qualified_name(*s) + " and " + types[cpp] + " both become the C++ type " + cpp + "; rename one");
      if (pt.present && pt.error.empty() && !s->fixed) {
        std::string path;
        const int depth = nesting.of(*s, path);
        if (depth > max_nesting_depth)
          diags.add(Diagnostic{at.file, at.line, at.column, "warning",
                               "message " + shown(*s) + " nests " + std::to_string(depth) + " tables deep (" + path +
                                   "); decoders refuse messages deeper than " + std::to_string(max_nesting_depth) +
                                   " tables, so it can never be received"});
      }
    }
    for (const auto* e : p.enums_.vec) {
      const std::string key = canonical_file(e->file) + "|enum " + qualified_name(*e);
      if (!visited.insert(key).second) continue;
      // One error per table listed more than once, however often.
      std::vector<std::pair<const flatbuffers::StructDef*, int>> listed;
      for (const auto* v : e->Vals()) {
        if (!e->is_union || v->union_type.struct_def == nullptr) continue;
        const auto it = std::find_if(listed.begin(), listed.end(), [&](const auto& l) { return l.first == v->union_type.struct_def; });
        if (it == listed.end())
          listed.emplace_back(v->union_type.struct_def, 1);
        else
          ++it->second;
      }
      for (const auto& [table, times] : listed)
        if (times > 1)
          diags.error(position_of(*e), "union " + shown(*e) + " lists table " + shown(*table) + " " +
                                           (times == 2 ? "twice" : std::to_string(times) + " times") +
                                           "; sagec maps a union to a std::variant of its tables, which must differ");
      for (const auto& c : enum_value_collisions(*e))
        diags.error(position_of(*e), std::string(e->is_union ? "union" : "enum") + " " + shown(*e) + ": values " + c.first +
                                         " and " + c.second + " both become the C++ name `" + c.cpp + "`; rename one");
      if (const auto cpp = cpp_qualified_type(*e); !types.emplace(cpp, qualified_name(*e)).second && types[cpp] != qualified_name(*e))
        diags.error(position_of(*e), qualified_name(*e) + " and " + types[cpp] + " both become the C++ type " + cpp + "; rename one");
    }
    check_include_cycles(p, schema->parser_path, cycles, diags);
    for (const auto* svc : p.services_.vec) {
      if (!schema->owns(*svc)) continue;
      const std::string key = canonical_file(svc->file) + "|" + qualified_name(*svc);
      if (!visited.insert(key).second) continue;
      const auto& toks = tokens_of(svc->file);
      diags.error(position_at(svc->file, toks, find_declaration(toks, {"rpc_service"}, qualified_name(*svc))),
                  "rpc_service " + svc->name + " is not supported by sagec");
    }
  }
  return diags.error_count() == errors_before;
}

}  // namespace sagec

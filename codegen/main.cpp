// sagec: the sage schema compiler.
//
//   sagec generate -o DIR [--lang cpp|python] [--depfile F --stamp S] schemas...
//                                           C++ headers, one <stem>.sage.hpp per schema and per
//                                           schema they include that defines something (or Python
//                                           modules, <stem>_sage.py, with --lang python)
//   sagec check [--format json] schemas...  CI checks: packet_type range and uniqueness, names, constructs
//   sagec check --against OLD.fbs ... NEW.fbs ...   also: can NEW talk to peers built from OLD?
//   sagec check --peers --against A.fbs B.fbs        would two running peers built from A and B connect?
//   sagec check --against-git REF schemas...         the same, OLD = the schemas as they were at REF
//   sagec describe [--format json] schemas...        per wire message: what the handshake sends
//   sagec encode --type T schemas... < message.json > record.bin
//   sagec decode schemas... < record.bin
//
// Exit status: 0 success, 1 errors in the input (diagnostics on stderr, or stdout with --format json),
// 2 usage errors (bad command line).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>

#include "describe.hpp"
#include "generate.hpp"
#include "generate_python.hpp"
#include "git_tree.hpp"
#include "schema.hpp"
#include "template.hpp"
#include "wire_text.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int exit_ok = 0;
constexpr int exit_errors = 1;
constexpr int exit_usage = 2;

std::vector<std::unique_ptr<sagec::Schema>> load_all(const std::vector<std::string>& paths,
                                                     const sagec::IncludeDirs& dirs, sagec::Diagnostics& diags) {
  std::vector<std::unique_ptr<sagec::Schema>> out;
  for (const auto& p : paths)
    if (auto s = sagec::load_schema(p, dirs, diags)) out.push_back(std::move(s));
  return out;
}

bool read_input(const std::string& path, std::string& out) {
  if (path.empty() || path == "-") {
    out.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Writes `text` to `path` unless the file already holds exactly that (so that an unchanged header
// keeps its time stamp and nothing that includes it recompiles). False if it cannot be written.
bool write_if_changed(const fs::path& path, const std::string& text) {
  std::error_code ec;
  if (fs::file_size(path, ec) == text.size() && !ec) {  // compare in chunks: headers can be large
    std::ifstream in(path, std::ios::binary);
    std::string chunk(1 << 20, '\0');
    std::size_t at = 0;
    bool same = static_cast<bool>(in);
    while (same && at < text.size()) {
      in.read(chunk.data(), static_cast<std::streamsize>(std::min(chunk.size(), text.size() - at)));
      const auto got = static_cast<std::size_t>(in.gcount());
      same = got > 0 && text.compare(at, got, chunk, 0, got) == 0;
      at += got;
    }
    if (same) return true;
  }
  const auto tmp = fs::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return false;
  }
  fs::rename(tmp, path, ec);
  return !ec;
}

// A path in a Makefile-style depfile: spaces, '#' and '$' escaped.
std::string make_escape(const std::string& path) {
  std::string out;
  for (const char c : path) {
    if (c == ' ' || c == '#') out += '\\';
    if (c == '$') out += '$';
    out += c;
  }
  return out;
}

int finish(const sagec::Diagnostics& diags, bool json = false) {
  if (json)
    std::cout << diags.json();
  else
    std::cerr << diags.text();
  return diags.has_errors() ? exit_errors : exit_ok;
}

// `sagec describe`: per wire message (ascending packet_type) its name, fingerprint and description;
// then, for JSON, the merged description of all of them (what a node linking them all sends), the
// FNV-1a 64 of that text (description_fingerprint) and the hello's schema fingerprint of their
// entries (schema_fingerprint): two different numbers, named apart.
std::string describe_output(const std::vector<std::unique_ptr<sagec::Schema>>& loaded,
                            const sage::schema::Description& all, bool json) {
  std::map<int, const flatbuffers::StructDef*> wire;
  for (const auto& schema : loaded)
    for (const auto* s : schema->parser->structs_.vec) {
      if (s->predecl || s->fixed) continue;
      const auto pt = sagec::packet_type_of(*s);
      if (pt.present && pt.error.empty()) wire.emplace(pt.value, s);
    }
  char hex[24];
  auto hex64 = [&](std::uint64_t v) {
    std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(v));
    return std::string(hex);
  };
  std::string out;
  if (json) {
    out = "{\n  \"format\": \"" + std::string(sage::schema::format_line) + "\",\n  \"messages\": [";
    bool first = true;
    // The hello's schema fingerprint (docs/wire-format.md "hello", offset 8): FNV-1a 64 over each
    // entry's packet_type and message fingerprint (8 bytes little endian), ascending packet_type.
    std::uint64_t schema_fp = 0xcbf29ce484222325ull;
    auto mix = [&](std::uint64_t byte) { schema_fp = (schema_fp ^ byte) * 0x100000001b3ull; };
    for (const auto& [pt, s] : wire) {
      const auto d = sagec::message_description(*s);
      mix(static_cast<std::uint64_t>(pt));
      for (int i = 0; i < 8; ++i) mix((d.fingerprint >> (8 * i)) & 0xff);
      out += std::string(first ? "\n" : ",\n") + "    {\"packet_type\": " + std::to_string(pt) + ", \"name\": \"" +
             sagec::json_escape(sagec::qualified_name(*s)) + "\", \"fingerprint\": \"" + hex64(d.fingerprint) +
             "\", \"description\": \"" + sagec::json_escape(d.text) + "\"}";
      first = false;
    }
    out += std::string(first ? "" : "\n  ") + "],\n  \"description\": \"" +
           sagec::json_escape(sage::schema::to_text(all)) + "\",\n  \"description_fingerprint\": \"" +
           hex64(sage::schema::fingerprint(all)) + "\",\n  \"schema_fingerprint\": \"" + hex64(schema_fp) + "\"\n}\n";
    return out;
  }
  for (const auto& [pt, s] : wire) {
    const auto d = sagec::message_description(*s);
    out += "packet_type " + std::to_string(pt) + "  " + sagec::qualified_name(*s) + "  fingerprint " +
           hex64(d.fingerprint) + "\n";
    std::size_t pos = 0;
    while (pos < d.text.size()) {
      const auto end = d.text.find('\n', pos);
      out += "    " + d.text.substr(pos, end - pos) + "\n";
      pos = end + 1;
    }
  }
  return out;
}

// `sagec check --against-git REF`: each listed schema and everything it includes, as at REF, against
// the working tree. Diagnostics name files by their repository paths (CI annotations).
int check_against_git(const std::string& ref, const std::vector<std::string>& schemas, const sagec::IncludeDirs& dirs,
                      sage::schema::Level level, bool json) {
  sagec::Diagnostics diags;
  std::string error;
  const auto tree = sagec::GitTree::checkout(ref, error);
  if (!tree) {
    std::cerr << "sagec check: " << error << "\n";
    return exit_usage;
  }
  std::vector<std::string> old_paths;
  for (const auto& p : schemas) {
    const auto rel = tree->repo_path(p);
    if (rel.empty()) {
      diags.error(sagec::Position{p, 0, 0}, "is outside the git repository " + tree->root() + "; --against-git compares files of the repository");
      continue;
    }
    const auto copy = (fs::path(tree->dir()) / rel).string();
    if (fs::is_regular_file(copy))
      old_paths.push_back(copy);
    else
      diags.add(sagec::Diagnostic{p, 0, 0, "note", "not in " + ref + ": a new schema, all its messages are new"});
  }
  // -I directories inside the repository are read as at REF too; others (and sage's own) as they are.
  sagec::IncludeDirs old_dirs = dirs;
  for (auto& d : old_dirs.user)
    if (const auto rel = tree->repo_path(d); !rel.empty()) d = (fs::path(tree->dir()) / rel).string();
  const auto now = load_all(schemas, dirs, diags);
  if (!diags.has_errors()) sagec::check_schemas(now, diags);
  if (sage::schema::Description all; !diags.has_errors()) sagec::describe_schemas(now, all, diags);
  if (!diags.has_errors()) {
    const auto before = load_all(old_paths, old_dirs, diags);
    if (!diags.has_errors()) sagec::check_compatible(before, now, level, diags);
  }
  // Files of the copy, and of the working tree, by their repository paths.
  sagec::Diagnostics out;
  for (auto d : diags.items()) {
    const auto copy = tree->from_copy(d.file);
    if (copy != d.file)
      d.file = copy;
    else if (const auto rel = tree->repo_path(d.file); !rel.empty())
      d.file = rel;
    out.add(std::move(d));
  }
  return finish(out, json);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sagec: the sage schema compiler (FlatBuffers schemas -> typed C++ messages)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("sagec ") + SAGE_VERSION_STRING);
  // One directory per -I (`-I a -I b`): CLI11 2.1.2 would otherwise take every following argument,
  // schemas included, as a directory.
  const std::string include_help = "Directory to search for included schemas (repeat -I for several)";
  std::vector<std::string> include_dirs;
  std::vector<std::string> schemas;

  auto* generate = app.add_subcommand("generate", "Generate one <stem>.sage.hpp per schema");
  std::string out_dir;
  generate->add_option("-o,--output", out_dir, "Directory for the generated headers")->required();
  std::string lang = "cpp";
  generate->add_option("--lang", lang, "Language: cpp (<stem>.sage.hpp) or python (<stem>_sage.py)")
      ->check(CLI::IsMember({"cpp", "python"}))
      ->capture_default_str();
  std::string depfile, stamp;
  generate->add_option("--depfile", depfile,
                       "Write a Makefile-style depfile (for CMake's DEPFILE / Ninja) listing every schema read");
  generate->add_option("--stamp", stamp, "Touch this file after a successful run (the depfile's target when given)");
  generate->add_option("-I,--include", include_dirs, include_help)->allow_extra_args(false);
  generate->add_option("schemas", schemas, "Schema files (.fbs)")->required()->check(CLI::ExistingFile);

  auto* check = app.add_subcommand("check", "Check schemas for CI (exit 0 clean, 1 errors)");
  std::string format = "text";
  std::vector<std::string> against;
  check->add_option("--format", format, "Diagnostics format")->check(CLI::IsMember({"text", "json"}));
  check->add_option("--against", against, "Old schema that peers may still run (repeat for several)")
      ->allow_extra_args(false);
  std::string against_git;
  check->add_option("--against-git", against_git,
                    "Git revision whose schemas peers may still run (each listed schema and its includes as at REF)")
      ->excludes(check->get_option("--against"));
  std::string level = "wire";
  check->add_option("--level", level,
                    "Compatibility level: wire (the binary encoding; the runtime's rule) or json (also names)")
      ->check(CLI::IsMember({"wire", "json"}))
      ->capture_default_str();
  bool as_peers = false;
  check->add_flag("--peers", as_peers,
                  "With --against: judge the two as running peers, as the handshake does (no history rule; the "
                  "--against schemas are 'the peer', the listed ones 'this node')")
      ->needs(check->get_option("--against"));
  check->add_option("-I,--include", include_dirs, include_help)->allow_extra_args(false);
  check->add_option("schemas", schemas, "Schema files (.fbs)")->required();

  auto* describe = app.add_subcommand("describe", "Print each wire message's packet_type, name and schema description");
  describe->add_option("--format", format, "Output format")->check(CLI::IsMember({"text", "json"}));
  describe->add_option("-I,--include", include_dirs, include_help)->allow_extra_args(false);
  describe->add_option("schemas", schemas, "Schema files (.fbs)")->required();

  auto* encode = app.add_subcommand("encode", "JSON message -> wire record (or a bare FlatBuffer with --raw)");
  std::string type, input, output;
  bool raw = false;
  encode->add_option("-t,--type", type, "Message (table) name, e.g. pancakes.FoodAvailableMessage")->required();
  encode->add_flag("--raw", raw, "Write a bare FlatBuffer instead of a sage wire record");
  encode->add_option("-i,--input", input, "JSON file (default: stdin)");
  encode->add_option("-o,--output", output, "Output file (default: stdout)");
  encode->add_option("-I,--include", include_dirs, include_help)->allow_extra_args(false);
  encode->add_option("schemas", schemas, "Schema files (.fbs)")->required();

  auto* decode = app.add_subcommand("decode", "Wire records (or a bare FlatBuffer with --raw) -> JSON lines");
  decode->add_option("-t,--type", type, "Message (table) name; required with --raw");
  decode->add_flag("--raw", raw, "Input is a bare FlatBuffer instead of sage wire records");
  decode->add_option("-i,--input", input, "Input file (default: stdin)");
  decode->add_option("-I,--include", include_dirs, include_help)->allow_extra_args(false);
  decode->add_option("schemas", schemas, "Schema files (.fbs)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  }

  const auto dirs = sagec::default_include_dirs(argv[0], include_dirs);
  sagec::Diagnostics diags;

  if (generate->parsed()) {
    const auto loaded = load_all(schemas, dirs, diags);
    if (diags.has_errors() || !sagec::check_schemas(loaded, diags)) return finish(diags);
    if (sage::schema::Description all; !sagec::describe_schemas(loaded, all, diags)) return finish(diags);
    // A header per schema given and per schema they include that defines something (a generated
    // header includes those), each file once.
    std::vector<std::unique_ptr<sagec::Schema>> included;
    std::vector<const sagec::Schema*> outputs;
    std::set<std::string> read;     // canonical paths of every schema read, for the depfile
    std::map<std::string, std::string> headers;  // header name -> canonical schema path
    const bool python = lang == "python";
    auto output_name = [&](const std::string& schema_path) {
      return python ? sagec::python_module_file(schema_path) : sagec::header_name(schema_path);
    };
    auto canonical = [](const std::string& p) {
      std::error_code ec;
      const auto c = fs::weakly_canonical(p, ec);
      return ec ? p : c.string();
    };
    auto add_output = [&](const sagec::Schema& s) {
      const auto path = canonical(s.path);
      const auto [it, fresh] = headers.emplace(output_name(s.path), path);
      if (fresh) {
        outputs.push_back(&s);
      } else if (it->second != path) {
        diags.error(sagec::Position{s.path, 0, 0}, "this schema and " + it->second + " would both generate " +
                                                       it->first + " (rename one of them)");
      }
    };
    for (const auto& s : loaded) {
      read.insert(canonical(s->path));
      add_output(*s);
    }
    for (const auto& s : loaded)
      for (const auto& f : sagec::included_files(*s)) {
        read.insert(canonical(f));
        if (!sagec::defines_something(*s->parser, f) || headers.count(output_name(f))) continue;
        if (auto inc = sagec::load_schema(f, dirs, diags)) {
          add_output(*inc);
          included.push_back(std::move(inc));
        }
      }
    if (diags.has_errors()) return finish(diags);
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    for (const auto* s : outputs) {
      const auto path = fs::path(out_dir) / output_name(s->path);
      std::string header;
      try {
        header = python ? sagec::generate_python(*s) : sagec::generate_header(*s);
      } catch (const sagec::TemplateError& e) {  // a bug in sagec, not in the schema
        diags.error(sagec::Position{s->path, 0, 0}, std::string("internal error, please report: ") + e.what());
        break;
      }
      if (!write_if_changed(path, header))
        diags.error(sagec::Position{path.string(), 0, 0}, "cannot write the generated header");
    }
    if (!depfile.empty() && !diags.has_errors()) {
      const std::string target = !stamp.empty() ? stamp : (fs::path(out_dir) / output_name(outputs.front()->path)).string();
      std::string text = make_escape(target) + ":";
      for (const auto& r : read) text += " \\\n  " + make_escape(r);
      if (!write_if_changed(depfile, text + "\n")) diags.error(sagec::Position{depfile, 0, 0}, "cannot write the depfile");
    }
    if (!stamp.empty() && !diags.has_errors()) {
      std::ofstream out(stamp, std::ios::binary | std::ios::trunc);
      out << "sagec generate: headers up to date\n";
      if (!out.flush()) diags.error(sagec::Position{stamp, 0, 0}, "cannot write the stamp file");
    }
    return finish(diags);
  }

  if (check->parsed()) {
    const bool json = format == "json";
    const auto compat_level = level == "json" ? sage::schema::Level::json : sage::schema::Level::wire;
    if (!against_git.empty()) return check_against_git(against_git, schemas, dirs, compat_level, json);
    const auto now = load_all(schemas, dirs, diags);
    if (!diags.has_errors()) sagec::check_schemas(now, diags);
    if (sage::schema::Description all; !diags.has_errors()) sagec::describe_schemas(now, all, diags);
    if (!against.empty() && !diags.has_errors()) {
      const auto before = load_all(against, dirs, diags);
      if (!diags.has_errors()) sagec::check_compatible(before, now, compat_level, diags, as_peers);
    }
    return finish(diags, json);
  }

  if (describe->parsed()) {
    const auto loaded = load_all(schemas, dirs, diags);
    if (diags.has_errors() || !sagec::check_schemas(loaded, diags)) return finish(diags);
    sage::schema::Description all;
    if (!sagec::describe_schemas(loaded, all, diags)) return finish(diags);
    std::cout << describe_output(loaded, all, format == "json");
    return finish(diags);
  }

  if (encode->parsed()) {
    sagec::EncodeRequest req;
    req.type = type;
    req.raw = raw;
    req.json_name = input.empty() || input == "-" ? "<stdin>" : input;
    if (!read_input(input, req.json)) {
      std::cerr << "sagec: cannot read " << input << "\n";
      return exit_usage;
    }
    const auto loaded = load_all(schemas, dirs, diags);
    if (diags.has_errors()) return finish(diags);
    const auto bytes = sagec::encode_json(loaded, req, diags);
    if (diags.has_errors()) return finish(diags);
    if (output.empty() || output == "-") {
      std::cout.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      std::cout.flush();
    } else {
      std::ofstream out(output, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      if (!out.flush()) diags.error(sagec::Position{output, 0, 0}, "cannot write");
    }
    return finish(diags);
  }

  if (decode->parsed()) {
    if (raw && type.empty()) {
      std::cerr << "sagec decode: --raw needs --type (a bare FlatBuffer does not say what it is)\n";
      return exit_usage;
    }
    sagec::DecodeRequest req;
    req.type = type;
    req.raw = raw;
    req.input_name = input.empty() || input == "-" ? "<stdin>" : input;
    std::string data;
    if (!read_input(input, data)) {
      std::cerr << "sagec: cannot read " << input << "\n";
      return exit_usage;
    }
    req.bytes.resize(data.size());
    if (!data.empty()) std::memcpy(req.bytes.data(), data.data(), data.size());
    const auto loaded = load_all(schemas, dirs, diags);
    if (diags.has_errors()) return finish(diags);
    std::cout << sagec::decode_to_json(loaded, req, diags);
    return finish(diags);
  }
  return exit_usage;
}

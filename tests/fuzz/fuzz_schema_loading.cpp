// Fuzzes sagec's schema loading and checking in-process (codegen/schema.hpp): arbitrary text is
// parsed as a .fbs by FlatBuffers' parser, then sagec's checks run, then (when they pass) the C++
// generator. Bad text must give diagnostics, never a crash, a hang or an exception.
//
// Includes are sandboxed: the schema "lives" in a private directory that holds only sage.fbs, and
// texts mentioning ".." are skipped, so `include` can reach sage.fbs and nothing else (no device
// files, no reading the machine's files).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "generate.hpp"
#include "schema.hpp"

namespace {

// Inputs beyond this are skipped: the parser's cost grows with the text, and 64 KiB is far more
// than any interesting schema (libFuzzer's default -max_len is 4 KiB anyway).
constexpr std::size_t max_schema_bytes = 64 * 1024;

// The private include directory, removed when the process exits.
struct Sandbox {
  std::string dir;
  Sandbox() {
    dir = (std::filesystem::temp_directory_path() / "sage-fuzz-schema-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) std::abort();
    std::ofstream(dir + "/sage.fbs") << "attribute \"packet_type\";\n";
  }
  ~Sandbox() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

const std::string& sandbox() {
  static const Sandbox s;
  return s.dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > max_schema_bytes) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find("..") != std::string::npos) return 0;
  const std::string path = sandbox() + "/fuzz.fbs";
  sagec::Diagnostics diags;
  std::vector<std::unique_ptr<sagec::Schema>> schemas;
  if (auto s = sagec::load_schema_text(path, std::move(text), sagec::IncludeDirs{}, diags)) schemas.push_back(std::move(s));
  if (schemas.empty()) {
    if (!diags.has_errors()) std::abort();  // a refused schema says why
    return 0;
  }
  if (sagec::check_schemas(schemas, diags)) {
    const std::string header = sagec::generate_header(*schemas.front());
    if (header.empty()) std::abort();
  } else if (!diags.has_errors()) {
    std::abort();
  }
  (void)diags.text();
  (void)diags.json();
  return 0;
}

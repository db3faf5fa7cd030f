// bench_sagec: `sagec generate` against `flatc --cpp` on the same large generated schemas.
//
//   build/bench/bench_sagec [--quick] [--csv]     (each case runs in its own process: common/harness.hpp)
//
// Scenarios: many small tables (100k tables of 3 fields), and many fields (200k fields over 20
// tables of 10k). Each case writes the schema to a fresh temporary directory, runs the tool once as
// a child process (best of `runs`), and reports its wall time and the child's peak RSS. Linear
// scaling shows as the same time per table at every size; see docs/performance.md.
//
// Header compile (issue 24): the time and peak memory of compiling (g++ -O2) a translation unit
// that only includes the generated header, sage's beside flatc's --cpp for the same schema: a
// synthetic schema of 150 tables with a union of 120 of them (TensorFlow Lite's shape), and a
// game-sized one (20 tables, a union of 5).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "../common/harness.hpp"

namespace fs = std::filesystem;

namespace {

std::string tables_schema(int tables) {
  std::string s = "include \"sage.fbs\";\nnamespace big;\n";
  for (int i = 0; i < tables; ++i)
    s += "table T" + std::to_string(i) + " { a: int; b: string; c: [int]; }\n";
  return s;
}

std::string fields_schema(int tables, int fields) {
  std::string s = "include \"sage.fbs\";\nnamespace wide;\n";
  for (int t = 0; t < tables; ++t) {
    s += "table W" + std::to_string(t) + " {\n";
    for (int f = 0; f < fields; ++f) s += "  f" + std::to_string(f) + ": int;\n";
    s += "}\n";
  }
  return s;
}

// Runs `command` (a shell command line) `runs` times; the best wall time in seconds, or -1.
double best_time(const std::string& command, int runs) {
  double best = -1;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = std::system(command.c_str());
    const auto t1 = std::chrono::steady_clock::now();
    if (rc != 0) {
      std::fprintf(stderr, "bench_sagec: failed (exit %d): %s\n", rc, command.c_str());
      std::exit(1);
    }
    const double s = std::chrono::duration<double>(t1 - t0).count();
    if (best < 0 || s < best) best = s;
  }
  return best;
}

// `tables` tables of a few fields, the first `alternatives` of them in a union that a wire message
// holds once and in a vector.
std::string union_schema(int tables, int alternatives) {
  std::string s = "include \"sage.fbs\";\nnamespace big;\n";
  for (int i = 0; i < tables; ++i)
    s += "table T" + std::to_string(i) + " { a: int; b: string; c: [float]; }\n";
  s += "union U { ";
  for (int i = 0; i < alternatives; ++i) s += (i == 0 ? "T" : ", T") + std::to_string(i);
  s += " }\ntable Holder (packet_type: 150) { u: U; us: [U]; name: string; }\nroot_type Holder;\n";
  return s;
}

enum class Tool { sagec, flatc };

// Generates the header with `tool`, then compiles a TU that includes only it; the compiler's wall
// time (best of runs) and its peak RSS.
std::vector<bench::Figure> compile_header(Tool tool, const std::string& schema_text, bool quick) {
  char tmpl[] = "/tmp/bench_header_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("bench_sagec: mkdtemp");
    std::exit(1);
  }
  const fs::path dir = tmpl;
  std::ofstream(dir / "big.fbs") << schema_text;
  const std::string out = (dir / "out").string();
  const std::string generate =
      tool == Tool::sagec
          ? std::string("'") + SAGEC_PATH + "' generate -o '" + out + "' '" + (dir / "big.fbs").string() + "' >/dev/null"
          : std::string("'") + FLATC_PATH + "' --cpp --no-includes -I '" + SAGE_SCHEMA_DIR + "' -o '" + out + "' '" +
                (dir / "big.fbs").string() + "' >/dev/null";
  best_time(generate, 1);
  std::ofstream(dir / "tu.cpp") << "#include \"" << (tool == Tool::sagec ? "big.sage.hpp" : "big_generated.h") << "\"\n";
  const double seconds = best_time(std::string("'") + SAGE_CXX_COMPILER + "' -std=c++20 -O2 -I '" + out + "' -I '" +
                                       SAGE_INCLUDE_DIR + "' -c '" + (dir / "tu.cpp").string() + "' -o /dev/null",
                                   quick ? 1 : 2);
  std::error_code ec;
  fs::remove_all(dir, ec);
  rusage children{};
  getrusage(RUSAGE_CHILDREN, &children);  // the largest child: the compiler (the generator is smaller)
  bench::Figure f{"compile the header (g++ -O2 wall)", "s", false, seconds, -1};
  f.rss_kib = children.ru_maxrss;
  return {f};
}

std::vector<bench::Figure> run_tool(Tool tool, const std::string& schema_text, bool quick) {
  char tmpl[] = "/tmp/bench_sagec_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("bench_sagec: mkdtemp");
    std::exit(1);
  }
  const fs::path dir = tmpl;
  const fs::path schema = dir / "big.fbs";
  std::ofstream(schema) << schema_text;
  const std::string out = (dir / "out").string();
  const std::string command =
      tool == Tool::sagec
          ? std::string("'") + SAGEC_PATH + "' generate -o '" + out + "' '" + schema.string() + "' >/dev/null"
          : std::string("'") + FLATC_PATH + "' --cpp -I '" + SAGE_SCHEMA_DIR + "' -o '" + out + "' '" +
                schema.string() + "' >/dev/null";
  const double seconds = best_time(command, quick ? 1 : 2);
  std::error_code ec;
  fs::remove_all(dir, ec);
  rusage children{};
  getrusage(RUSAGE_CHILDREN, &children);  // the largest child: the tool (sh is smaller)
  bench::Figure f{"generate (wall)", "s", false, seconds, -1};
  f.rss_kib = children.ru_maxrss;
  return {f};
}

}  // namespace

int main(int argc, char** argv) {
  const char* tables = "sagec 100k tables x 3 fields";
  const char* fields = "sagec 200k fields (20 tables x 10k)";
  auto tables_text = [](bool q) { return tables_schema(q ? 2000 : 100000); };
  auto fields_text = [](bool q) { return q ? fields_schema(4, 1000) : fields_schema(20, 10000); };
  const char* union120 = "header compile: 150 tables and a union of 120";
  const char* game = "header compile: game schema (20 tables and a union of 5)";
  auto union_text = [](bool q) { return q ? union_schema(30, 20) : union_schema(150, 120); };
  auto game_text = [](bool) { return union_schema(20, 5); };
  std::vector<bench::Case> cases = {
      {"tables.sagec", tables, "sage (sagec generate)", [&](bool q) { return run_tool(Tool::sagec, tables_text(q), q); }},
      {"tables.flatc", tables, "flatc --cpp", [&](bool q) { return run_tool(Tool::flatc, tables_text(q), q); }},
      {"fields.sagec", fields, "sage (sagec generate)", [&](bool q) { return run_tool(Tool::sagec, fields_text(q), q); }},
      {"fields.flatc", fields, "flatc --cpp", [&](bool q) { return run_tool(Tool::flatc, fields_text(q), q); }},
      {"union.sage", union120, "sage (sagec header)", [&](bool q) { return compile_header(Tool::sagec, union_text(q), q); }},
      {"union.flatc", union120, "flatc --cpp header", [&](bool q) { return compile_header(Tool::flatc, union_text(q), q); }},
      {"game.sage", game, "sage (sagec header)", [&](bool q) { return compile_header(Tool::sagec, game_text(q), q); }},
      {"game.flatc", game, "flatc --cpp header", [&](bool q) { return compile_header(Tool::flatc, game_text(q), q); }},
  };
  return bench::main(argc, argv, "bench_sagec", cases);
}

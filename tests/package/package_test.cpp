// sage as another project's dependency: `cmake --install` + find_package(sage), and
// add_subdirectory(sage). Both build tests/package/consumer (which calls sage_generate() from a
// subdirectory), run it, and check that sagec reruns only when a schema or sagec changes.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

using sage::test_support::ShellRun;

struct TempDir : sage::test_support::TempDir {
  explicit TempDir(const std::string& name) : sage::test_support::TempDir("sage_pkg", name) {}
};

ShellRun shell(const std::string& cmd) { return sage::test_support::run_shell(cmd); }

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

constexpr const char* generating = "sagec: generating consumer_messages";

ShellRun build(const fs::path& dir) {
  auto r = shell("cmake --build " + q(dir) + " -j2");
  INFO(r.out);
  REQUIRE(r.code == 0);
  return r;
}

void touch(const fs::path& p) { fs::last_write_time(p, fs::file_time_type::clock::now()); }

// What tests/package/consumer/network.cpp prints when an order arrived over TCP and one over datagrams.
constexpr const char* network_ok = "network ok: 1 order over tcp, 1 over datagrams\n";

constexpr const char* compiling_main = "Building CXX object CMakeFiles/consumer.dir/main.cpp.o";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Builds the configured consumer in `build_dir`, runs it, then checks the rebuild rules: sagec
// reruns when a listed schema, an included one or sagec changes; a header whose content did not
// change is not rewritten, so nothing recompiles; a changed included schema recompiles its users.
void build_run_and_rebuild(const fs::path& src, const fs::path& build_dir, const fs::path& sagec) {
  auto first = build(build_dir);
  CHECK_MESSAGE(first.out.find(generating) != std::string::npos, first.out);
  const auto run = shell(q(build_dir / "consumer"));
  CHECK(run.code == 0);
  CHECK(run.out == "consumer ok: 3 pancakes at 250 cents, packet_type 200, sage 0.1.0\n");
  const auto network = shell(q(build_dir / "network"));
  CHECK_MESSAGE(network.code == 0, network.out);
  CHECK(network.out == network_ok);

  auto again = build(build_dir);
  CHECK_MESSAGE(again.out.find(generating) == std::string::npos, "nothing changed, yet sagec ran:\n" << again.out);

  touch(src / "messages" / "orders.fbs");
  auto schema_touched = build(build_dir);
  CHECK_MESSAGE(schema_touched.out.find(generating) != std::string::npos, schema_touched.out);
  CHECK_MESSAGE(schema_touched.out.find(compiling_main) == std::string::npos,
                "identical headers, yet main.cpp recompiled:\n" << schema_touched.out);
  auto settled = build(build_dir);
  CHECK(settled.out.find(generating) == std::string::npos);

  // Only orders.fbs is listed; common.fbs comes in through its include.
  const auto common = src / "messages" / "common.fbs";
  auto text = read_text(common);
  const auto at = text.find("= 250;");
  REQUIRE(at != std::string::npos);
  write_text(common, text.replace(at, 6, "= 300;"));
  auto included_changed = build(build_dir);
  CHECK_MESSAGE(included_changed.out.find(generating) != std::string::npos, included_changed.out);
  CHECK_MESSAGE(included_changed.out.find(compiling_main) != std::string::npos, included_changed.out);
  CHECK(shell(q(build_dir / "consumer")).out == "consumer ok: 3 pancakes at 300 cents, packet_type 200, sage 0.1.0\n");

  REQUIRE(fs::exists(sagec));
  touch(sagec);
  auto sagec_changed = build(build_dir);
  CHECK_MESSAGE(sagec_changed.out.find(generating) != std::string::npos, sagec_changed.out);
}

std::string configure_flags(const std::string& generator = SAGE_CMAKE_GENERATOR) {
  return " -G '" + generator + "' -DCMAKE_CXX_COMPILER='" + SAGE_CXX_COMPILER + "' -DCMAKE_BUILD_TYPE=Release";
}

// `cmake --install` of this build into `prefix`.
void install_sage(const fs::path& prefix) {
  const auto install = shell("cmake --install '" SAGE_BINARY_DIR "' --prefix " + q(prefix));
  INFO(install.out);
  REQUIRE(install.code == 0);
}

}  // namespace

TEST_CASE("an installed sage is found by find_package, its sage_generate builds a consumer and reruns only on change") {
  TempDir tmp("install");
  const auto prefix = tmp.path / "prefix";
  install_sage(prefix);
  CHECK(fs::exists(prefix / "bin" / "sagec"));
  CHECK(fs::exists(prefix / "share" / "sage" / "schemas" / "sage.fbs"));
  CHECK(fs::exists(prefix / "include" / "sage" / "detail" / "generated.hpp"));
  bool config = false;
  for (const auto& e : fs::recursive_directory_iterator(prefix))
    config = config || e.path().filename() == "sageConfig.cmake";
  CHECK(config);

  const auto src = tmp.path / "src";
  fs::copy(SAGE_CONSUMER_DIR, src, fs::copy_options::recursive);
  const auto build_dir = tmp.path / "build";
  const auto configure =
      shell("cmake -S " + q(src) + " -B " + q(build_dir) + configure_flags() + " -DCMAKE_PREFIX_PATH=" + q(prefix));
  INFO(configure.out);
  REQUIRE(configure.code == 0);
  build_run_and_rebuild(src, build_dir, prefix / "bin" / "sagec");
}

TEST_CASE("a consumer can take sage in through add_subdirectory and sage_generate works there too") {
  TempDir tmp("subdir");
  const auto src = tmp.path / "src";
  fs::copy(SAGE_CONSUMER_DIR, src, fs::copy_options::recursive);
  const auto build_dir = tmp.path / "build";
  const auto configure =
      shell("cmake -S " + q(src) + " -B " + q(build_dir) + configure_flags() + " -DSAGE_SOURCE_DIR='" SAGE_SOURCE_DIR "'");
  INFO(configure.out);
  REQUIRE(configure.code == 0);
  build_run_and_rebuild(src, build_dir, build_dir / "sage" / "codegen" / "sagec");
}

TEST_CASE("with the Unix Makefiles generator an edited included schema rebuilds its users, a touched one nothing") {
  TempDir tmp("makefiles");
  const auto prefix = tmp.path / "prefix";
  install_sage(prefix);
  const auto src = tmp.path / "src";
  fs::copy(SAGE_CONSUMER_DIR, src, fs::copy_options::recursive);
  const auto build_dir = tmp.path / "build";
  const auto configure = shell("cmake -S " + q(src) + " -B " + q(build_dir) + configure_flags("Unix Makefiles") +
                               " -DCMAKE_PREFIX_PATH=" + q(prefix));
  INFO(configure.out);
  REQUIRE(configure.code == 0);
  build_run_and_rebuild(src, build_dir, prefix / "bin" / "sagec");
}

TEST_CASE("a plain Makefile builds the consumer through pkg-config and reruns sagec when an included schema changes") {
  TempDir tmp("pkgconfig");
  const auto prefix = tmp.path / "prefix";
  install_sage(prefix);
  fs::path pc;
  for (const auto& e : fs::recursive_directory_iterator(prefix))
    if (e.path().filename() == "sage.pc") pc = e.path();
  REQUIRE_MESSAGE(!pc.empty(), "no sage.pc installed");
  CHECK(pc.parent_path().filename() == "pkgconfig");
  const auto src = tmp.path / "src";
  fs::copy(SAGE_CONSUMER_DIR, src, fs::copy_options::recursive);
  const std::string make = "cd " + q(src) + " && PKG_CONFIG_PATH=" + q(pc.parent_path()) + " make CXX='" SAGE_CXX_COMPILER "' 2>&1";
  const auto first = shell(make);
  INFO(first.out);
  REQUIRE(first.code == 0);
  CHECK(first.out.find(" generate -o gen ") != std::string::npos);
  CHECK(shell(q(src / "consumer")).out == "consumer ok: 3 pancakes at 250 cents, packet_type 200, sage 0.1.0\n");
  // TCP and datagrams, linked with `pkg-config --libs sage` alone (ENet comes through Requires).
  const auto network = shell(q(src / "network"));
  CHECK_MESSAGE(network.code == 0, network.out);
  CHECK(network.out == network_ok);
  const auto libs = shell("PKG_CONFIG_PATH=" + q(pc.parent_path()) + " pkg-config --libs sage");
  CHECK_MESSAGE(libs.out.find("-lsage -lnng -pthread") != std::string::npos, libs.out);
  CHECK_MESSAGE(libs.out.find("-lenet") != std::string::npos, libs.out);
  CHECK_MESSAGE(libs.out.find("-lflatbuffers") != std::string::npos, libs.out);
  // The paths in sage.pc are relative to where it is (a moved prefix still works).
  const auto moved = tmp.path / "moved";
  fs::rename(prefix, moved);
  const auto pc_moved = moved / fs::relative(pc, prefix);
  const auto cflags = shell("PKG_CONFIG_PATH=" + q(pc_moved.parent_path()) + " pkg-config --cflags --libs sage");
  CHECK(cflags.code == 0);
  CHECK_MESSAGE(cflags.out.find("-I" + moved.string() + "/") != std::string::npos, cflags.out);
  CHECK_MESSAGE(cflags.out.find("-L" + moved.string() + "/") != std::string::npos, cflags.out);
  fs::rename(moved, prefix);

  const auto common = src / "messages" / "common.fbs";
  auto text = read_text(common);
  write_text(common, text.replace(text.find("= 250;"), 6, "= 300;"));
  const auto again = shell(make);
  INFO(again.out);
  REQUIRE(again.code == 0);
  CHECK(again.out.find(" generate -o gen ") != std::string::npos);
  CHECK(shell(q(src / "consumer")).out == "consumer ok: 3 pancakes at 300 cents, packet_type 200, sage 0.1.0\n");
}

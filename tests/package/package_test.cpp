// sage as another project's dependency: `cmake --install` + find_package(sage), and
// add_subdirectory(sage). Both build tests/package/consumer (which calls sage_generate() from a
// subdirectory), run it, and check that sagec reruns only when a schema or sagec changes.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
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

// Builds the configured consumer in `build_dir`, runs it, then checks the rebuild rules.
void build_run_and_rebuild(const fs::path& src, const fs::path& build_dir, const fs::path& sagec) {
  auto first = build(build_dir);
  CHECK_MESSAGE(first.out.find(generating) != std::string::npos, first.out);
  const auto run = shell(q(build_dir / "consumer"));
  CHECK(run.code == 0);
  CHECK(run.out == "consumer ok: 3 pancakes, packet_type 200, sage 0.1.0\n");

  auto again = build(build_dir);
  CHECK_MESSAGE(again.out.find(generating) == std::string::npos, "nothing changed, yet sagec ran:\n" << again.out);

  touch(src / "messages" / "orders.fbs");
  auto schema_changed = build(build_dir);
  CHECK_MESSAGE(schema_changed.out.find(generating) != std::string::npos, schema_changed.out);
  auto settled = build(build_dir);
  CHECK(settled.out.find(generating) == std::string::npos);

  REQUIRE(fs::exists(sagec));
  touch(sagec);
  auto sagec_changed = build(build_dir);
  CHECK_MESSAGE(sagec_changed.out.find(generating) != std::string::npos, sagec_changed.out);
}

std::string configure_flags() {
  return std::string(" -G '") + SAGE_CMAKE_GENERATOR + "' -DCMAKE_CXX_COMPILER='" + SAGE_CXX_COMPILER +
         "' -DCMAKE_BUILD_TYPE=Release";
}

}  // namespace

TEST_CASE("an installed sage is found by find_package, its sage_generate builds a consumer and reruns only on change") {
  TempDir tmp("install");
  const auto prefix = tmp.path / "prefix";
  const auto install = shell("cmake --install '" SAGE_BINARY_DIR "' --prefix " + q(prefix));
  INFO(install.out);
  REQUIRE(install.code == 0);
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

// `sagec check --against-git REF` on a real temporary git repository: includes are read as at REF,
// diagnostics name repository paths from any subdirectory, new schemas are "added".
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

using sage::test_support::run_shell;

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// A repository with schemas/order.fbs including schemas/common.fbs, committed as v1.
struct Repo : sage::test_support::TempDir {
  explicit Repo(const std::string& name) : TempDir("sage_git", name) {
    write_file(path / "schemas/common.fbs",
               "include \"sage.fbs\";\nnamespace shop;\n\ntable Address {\n  street: string;\n  zip: int;\n}\n");
    write_file(path / "schemas/order.fbs",
               "include \"common.fbs\";\nnamespace shop;\n\ntable Order (packet_type: 130) {\n  id: int;\n  to: Address;\n}\n");
    const auto r = git("init -q && git add . && git commit -qm v1");
    REQUIRE_MESSAGE(r.code == 0, r.out);
  }
  sage::test_support::ShellRun git(const std::string& args) const {
    return run_shell("cd '" + path.string() + "' && git -c user.name=t -c user.email=t@t " + args);
  }
  sage::test_support::ShellRun sagec(const std::string& subdir, const std::string& args) const {
    return run_shell("cd '" + (path / subdir).string() + "' && '" SAGEC_PATH "' " + args);
  }
};

}  // namespace

TEST_CASE("--against-git passes an unchanged tree") {
  Repo repo("unchanged");
  const auto r = repo.sagec(".", "check --against-git HEAD schemas/order.fbs");
  CHECK(r.code == 0);
  CHECK(r.out.empty());
}

TEST_CASE("--against-git catches an edit in an included schema and names its repository path, from any subdirectory") {
  Repo repo("included_edit");
  write_file(repo.path / "schemas/common.fbs",
             "include \"sage.fbs\";\nnamespace shop;\n\ntable Address {\n  street: string;\n  zip: string;\n}\n");
  const std::string expected = "schemas/common.fbs:6:3: error: field shop.Address.zip changed type from int to string";
  const auto top = repo.sagec(".", "check --against-git HEAD schemas/order.fbs");
  CHECK(top.code == 1);
  CHECK_MESSAGE(top.out.find(expected) != std::string::npos, top.out);
  const auto sub = repo.sagec("schemas", "check --against-git HEAD order.fbs");
  CHECK(sub.code == 1);
  CHECK_MESSAGE(sub.out.find(expected) != std::string::npos, sub.out);
  const auto json = repo.sagec("schemas", "check --format json --against-git HEAD order.fbs");
  CHECK(json.code == 1);
  CHECK_MESSAGE(json.out.find("{\"file\": \"schemas/common.fbs\", \"line\": 6, \"column\": 3, \"severity\": \"error\"") !=
                    std::string::npos,
                json.out);
}

TEST_CASE("--against-git reads the old included schema, not the working tree's, even with -I") {
  Repo repo("changed_default");
  write_file(repo.path / "schemas/common.fbs",
             "include \"sage.fbs\";\nnamespace shop;\n\ntable Address {\n  street: string;\n  zip: int = 7;\n}\n");
  const auto r = repo.sagec(".", "check -I schemas --against-git HEAD schemas/order.fbs");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.out.find("schemas/common.fbs:6:3: error: field shop.Address.zip changed its default from 0 to 7") !=
                    std::string::npos,
                r.out);
}

TEST_CASE("--against-git compares with the named revision, not only HEAD") {
  Repo repo("older_ref");
  write_file(repo.path / "schemas/order.fbs",
             "include \"common.fbs\";\nnamespace shop;\n\ntable Order (packet_type: 130) {\n  id: long;\n  to: Address;\n}\n");
  REQUIRE(repo.git("commit -qam v2 && git tag v2").code == 0);
  CHECK(repo.sagec(".", "check --against-git v2 schemas/order.fbs").code == 0);
  const auto r = repo.sagec(".", "check --against-git HEAD~1 schemas/order.fbs");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.out.find("schemas/order.fbs:5:3: error: field shop.Order.id changed type from int to long") !=
                    std::string::npos,
                r.out);
}

TEST_CASE("--against-git passes a schema added since the revision, with a note") {
  Repo repo("added");
  write_file(repo.path / "schemas/ping.fbs", "include \"sage.fbs\";\nnamespace shop;\ntable Ping (packet_type: 131) { n: int; }\n");
  const auto r = repo.sagec("schemas", "check --against-git HEAD order.fbs ping.fbs");
  CHECK(r.code == 0);
  CHECK_MESSAGE(r.out.find("schemas/ping.fbs: note: not in HEAD: a new schema") != std::string::npos, r.out);
}

TEST_CASE("--against-git with an unknown revision or outside a repository is a usage error that says why") {
  Repo repo("bad_ref");
  const auto r = repo.sagec(".", "check --against-git origin/main schemas/order.fbs");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.out.find("unknown revision origin/main") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("fetch-depth: 0") != std::string::npos, r.out);
  sage::test_support::TempDir plain("sage_git", "no_repo");
  write_file(plain.path / "x.fbs", "include \"sage.fbs\";\ntable X (packet_type: 140) { a: int; }\n");
  const auto outside = run_shell("cd '" + plain.path.string() + "' && GIT_CEILING_DIRECTORIES='" +
                                 plain.path.parent_path().string() + "' '" SAGEC_PATH "' check --against-git HEAD x.fbs");
  CHECK(outside.code == 2);
  CHECK_MESSAGE(outside.out.find("needs a git repository") != std::string::npos, outside.out);
  CHECK(repo.sagec(".", "check --against-git HEAD --against schemas/order.fbs schemas/order.fbs").code == 2);
}

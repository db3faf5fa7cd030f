#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "groups/process.hpp"

using namespace sage::detail;

namespace {
int exit_with_first_byte(std::span<const std::byte> args) { return args.empty() ? 0 : std::to_integer<int>(args[0]); }
int sleep_forever(std::span<const std::byte>) {
  for (;;) ::pause();
}
int throw_something(std::span<const std::byte>) { throw std::runtime_error("nope"); }
}  // namespace

TEST_CASE("the fork server runs a child and reports its exit status") {
  auto& fs = ForkServer::instance();
  const std::byte arg{42};
  auto pid = fs.spawn(&exit_with_first_byte, std::span(&arg, 1));
  REQUIRE(pid.ok());
  auto status = fs.take_exit(*pid, 20000);
  REQUIRE(status.has_value());
  CHECK(describe_wait_status(*status) == "exited with status 42");
}

TEST_CASE("a child killed by a signal is reported with the signal") {
  auto& fs = ForkServer::instance();
  auto pid = fs.spawn(&sleep_forever, {});
  REQUIRE(pid.ok());
  CHECK_FALSE(fs.take_exit(*pid).has_value());
  ::kill(*pid, SIGKILL);
  auto status = fs.take_exit(*pid, 20000);
  REQUIRE(status.has_value());
  CHECK(describe_wait_status(*status).find("killed by signal 9") == 0);
}

TEST_CASE("an exception escaping a child's entry becomes exit status 70") {
  auto& fs = ForkServer::instance();
  auto pid = fs.spawn(&throw_something, {});
  REQUIRE(pid.ok());
  auto status = fs.take_exit(*pid, 20000);
  REQUIRE(status.has_value());
  CHECK(describe_wait_status(*status) == "exited with status 70");
}

TEST_CASE("the IPC directory is private and removed with its files") {
  std::string path;
  {
    auto dir = IpcDir::create();
    REQUIRE(dir.ok());
    path = dir->path();
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    std::ofstream(path + "/endpoint.ipc") << "x";
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("directories left by dead sage processes are removed while live ones and symlinks are kept") {
  auto parent = IpcDir::create().value();  // a scratch parent of our own
  // A pid that is not running: a reaped child's.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = parent.path() + "/sage-" + std::to_string(dead) + "-abcdef";
  const std::string live = parent.path() + "/sage-" + std::to_string(::getpid()) + "-abcdef";
  const std::string link = parent.path() + "/sage-" + std::to_string(dead) + "-link00";
  std::filesystem::create_directory(stale);
  std::ofstream(stale + "/g1.ipc") << "x";
  std::filesystem::create_directory(live);
  std::filesystem::create_directory_symlink(live, link);
  CHECK(remove_stale_ipc_dirs(parent.path()) == 1);
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(live));
  CHECK(std::filesystem::is_symlink(link));
  std::filesystem::remove(link);
  std::filesystem::remove(live);
}

// tests/support/shell.hpp: running a command line and a scratch directory, for tests that drive
// real programs (sagec, cmake).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include <doctest/doctest.h>

namespace sage::test_support {

struct ShellRun {
  int code = -1;    // exit status; -1 if the command did not exit normally
  std::string out;  // stdout and stderr together
};

// Runs `cmd` through /bin/sh and waits for it. The caller quotes arguments as the shell needs.
inline ShellRun run_shell(const std::string& cmd) {
  ShellRun r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A fresh directory <temp>/<prefix>_<name>_<pid>, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir(const std::string& prefix, const std::string& name)
      : path(std::filesystem::temp_directory_path() / (prefix + "_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace sage::test_support

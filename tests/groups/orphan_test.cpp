#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "waiting.hpp"

using sage::test_support::process_alive;


TEST_CASE("killing the main process with SIGKILL leaves no child process alive") {
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const pid_t main_pid = ::fork();
  REQUIRE(main_pid >= 0);
  if (main_pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(SAGE_ORPHAN_HELPER, SAGE_ORPHAN_HELPER, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* f = ::fdopen(out[0], "r");
  int pids[3] = {0, 0, 0};
  REQUIRE(std::fscanf(f, "%d %d %d", &pids[0], &pids[1], &pids[2]) == 3);
  std::fclose(f);
  for (int pid : pids) CHECK(process_alive(pid));
  ::kill(main_pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(main_pid, &status, 0) == main_pid);
  CHECK(WIFSIGNALED(status));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto any_alive = [&] { return process_alive(pids[0]) || process_alive(pids[1]) || process_alive(pids[2]); };
  while (any_alive() && std::chrono::steady_clock::now() < deadline) ::usleep(10000);  // polling, not synchronising
  for (int pid : pids) CHECK_FALSE(process_alive(pid));
}

// runtime/groups/process.hpp: the fork server and the private IPC directory.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sage/result.hpp"

namespace sage::detail {

// Runs in a freshly forked child; returns its exit code. `args` is the byte string given to spawn().
using ChildEntry = int (*)(std::span<const std::byte> args);

// The process-wide fork server: a single-threaded helper process forked from this one before any
// nng thread exists, which forks the group children on request. A child therefore is a copy of
// this program's memory as it was when the fork server started, and function pointers of this
// program are valid in it. The fork server dies with the thread that started it
// (PR_SET_PDEATHSIG), and every child dies with the fork server, so no child outlives the main
// process. Thread-safe: every member may be called from any thread.
class ForkServer {
 public:
  // Starts the fork server on first call, then returns it. Throws sage::usage_error if this
  // process already started nng (fork() would copy nng's state without its threads).
  static ForkServer& instance();
  // The server if it was started, else nullptr.
  static ForkServer* started() noexcept;

  // Forks a child that runs entry(args), then _exit()s with its return value. Blocks until the
  // fork server answered. Errc::peer_gone if the fork server is gone, io_error if fork() failed.
  // The fork server passes a pidfd of the child along (SCM_RIGHTS, opened before it can reap the
  // child); kill() uses it, release() closes it.
  // `child_fd` (not -1) travels to the fork server with the request (SCM_RIGHTS) and is the one
  // descriptor the child inherits besides stdin/stdout/stderr (take_spawn_fd() there); the fork
  // server closes its copy once it forked. The caller keeps (and closes) its own.
  Result<pid_t> spawn(ChildEntry entry, std::span<const std::byte> args, int child_fd = -1);

  // Reads every exit report that arrived, without blocking (or waiting up to `wait_ms` for the
  // first one). Then returns the wait status of `pid` if it exited, removing it from the table.
  std::optional<int> take_exit(pid_t pid, int wait_ms = 0);
  // The same without reading the socket: only a report an earlier call (or dead()) read. For a
  // caller that has just read every report waiting (a tick asks once, not once per child).
  std::optional<int> take_read_exit(pid_t pid);

  // Whether the fork server died (its socket reached end of file). Its children died with it
  // (PR_SET_PDEATHSIG) and were reaped by someone else: no exit of theirs will be reported, and
  // spawn() fails with peer_gone from then on. Never blocks.
  bool dead();
  // SIGKILLs a child of spawn() through its pidfd, so a pid that was reaped (and perhaps reused)
  // is never signalled. Without a pidfd (kernels before 5.3) it signals the pid only while the fork
  // server lives and has not reported the exit.
  void kill(pid_t pid);
  // Forgets a child for good: closes its pidfd, drops an exit report not taken.
  void release(pid_t pid);

  // Readable when an exit report may be waiting (for poll()); also at end of file (see dead()).
  int fd() const noexcept { return fd_; }
  pid_t pid() const noexcept { return pid_; }

 private:
  ForkServer(int fd, pid_t pid) : fd_(fd), pid_(pid) {}
  void read_reports(int wait_ms);  // caller holds mu_
  std::mutex mu_;
  int fd_;
  pid_t pid_;
  std::uint64_t next_id_ = 1;
  std::map<pid_t, int> exits_;
  std::map<std::uint64_t, long long> spawned_;
  std::map<pid_t, int> pidfds_;
  bool dead_ = false;
};

// In a child of spawn(): the `child_fd` it was given (once; the caller owns it), else -1.
int take_spawn_fd() noexcept;

// "exited with status 3", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

// A private directory for IPC endpoints: mkdtemp("<parent>/sage-<pid>-XXXXXX"), mode 0700,
// removed with its files by the destructor. Resource type, movable.
class IpcDir {
 public:
  // parent: "" means $XDG_RUNTIME_DIR if set and usable, else /tmp. First removes directories
  // left behind by sage processes of this user that no longer run.
  static Result<IpcDir> create(const std::string& parent = {});
  IpcDir(IpcDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  IpcDir& operator=(IpcDir&& o) noexcept;
  ~IpcDir();
  const std::string& path() const noexcept { return path_; }

 private:
  explicit IpcDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Removes "<parent>/sage-<pid>-*" directories owned by this user whose pid is not running.
// Never follows symlinks. Returns how many it removed.
int remove_stale_ipc_dirs(const std::string& parent);

}  // namespace sage::detail

// The fork server and the private IPC directory. No nng here: the fork server must never start it.
#include "groups/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <utility>

#include "log/log.hpp"
#include "transport/connection.hpp"

namespace sage::detail {

namespace {

// Fork server packets (SOCK_SEQPACKET, one packet per message, host byte order: same machine).
enum class FsType : std::uint32_t { spawn = 1, spawned = 2, exited = 3 };
struct FsHeader {
  FsType type;
  std::uint32_t pad;
  std::uint64_t id;
  long long a;  // spawn: entry pointer; spawned: pid or -errno; exited: pid
  long long b;  // exited: wait status
};
constexpr std::size_t max_spawn_args = 64 * 1024;

void close_fds_except(int keep) {
  // Keep stdin/stdout/stderr and `keep`; the children must not hold the main process's other
  // descriptors (sockets, pipes) open.
  if (keep > 3) ::syscall(SYS_close_range, 3u, static_cast<unsigned>(keep - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0u, 0u);
}

void flush_all() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

int g_spawn_fd = -1;  // in a child: the descriptor passed with its spawn request

[[noreturn]] void run_child(int sock, int sigfd, pid_t server, ChildEntry entry, std::span<const std::byte> args,
                            int passed_fd) {
  ::close(sock);
  ::close(sigfd);
  g_spawn_fd = passed_fd;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != server) ::_exit(111);  // the fork server died before prctl took effect
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGCHLD, SIG_DFL);
  int code = 70;
  try {
    code = entry(args);
  } catch (const std::exception& e) {
    log::write(log::Level::error, "groups", "group child: uncaught exception: ", e.what());
  } catch (...) {
    log::write(log::Level::error, "groups", "group child: uncaught exception");
  }
  flush_all();
  ::_exit(code);  // not exit(): this image's static objects belong to the main program
}

// Sends one packet, with `fd` attached (SCM_RIGHTS) when it is not -1. Returns sendmsg()'s result.
ssize_t send_with_fd(int sock, const void* data, std::size_t size, int fd) {
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n;
}

// Receives one packet into `buf`; an attached descriptor (SCM_RIGHTS) goes to `fd` (else -1).
ssize_t recv_with_fd(int sock, void* buf, std::size_t size, int& fd, int flags) {
  iovec iov{buf, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  fd = -1;
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return n;
}

[[noreturn]] void serve(int sock, pid_t main_pid) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != main_pid) ::_exit(0);
  ::prctl(PR_SET_NAME, "sage-forksrv");
  close_fds_except(sock);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  const int sigfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) ::_exit(2);
  const pid_t self = ::getpid();
  std::vector<std::byte> buf(sizeof(FsHeader) + max_spawn_args);
  for (;;) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(3);
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sigfd, &info, sizeof info) > 0) {
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        FsHeader h{FsType::exited, 0, 0, pid, status};
        ::send(sock, &h, sizeof h, MSG_NOSIGNAL);
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      int passed_fd = -1;
      const ssize_t n = recv_with_fd(sock, buf.data(), buf.size(), passed_fd, 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        // The main process closed its end or died. Leaving takes the children down with us
        // (their parent-death signal is SIGKILL).
        ::_exit(0);
      }
      if (n < static_cast<ssize_t>(sizeof(FsHeader))) {
        if (passed_fd >= 0) ::close(passed_fd);
        continue;
      }
      FsHeader h;
      std::memcpy(&h, buf.data(), sizeof h);
      if (h.type != FsType::spawn) {
        if (passed_fd >= 0) ::close(passed_fd);
        continue;
      }
      const auto entry = reinterpret_cast<ChildEntry>(static_cast<std::uintptr_t>(h.a));
      std::span<const std::byte> args(buf.data() + sizeof h, static_cast<std::size_t>(n) - sizeof h);
      const pid_t child = ::fork();
      if (child == 0) run_child(sock, sigfd, self, entry, args, passed_fd);
      if (passed_fd >= 0) ::close(passed_fd);  // the child has its copy
      FsHeader reply{FsType::spawned, 0, h.id, child > 0 ? child : -errno, 0};
      // A pidfd for the child, opened before this loop can reap it (only this thread calls
      // waitpid), travels with the reply: the main process signals the child through it, never by
      // pid number, so a pid that was reaped and reused is never hit. -1 on kernels before 5.3.
      const int pidfd = child > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, child, 0)) : -1;
      send_with_fd(sock, &reply, sizeof reply, pidfd);
      if (pidfd >= 0) ::close(pidfd);
    }
  }
}

ForkServer* g_server = nullptr;
std::mutex g_server_mu;

}  // namespace

ForkServer& ForkServer::instance() {
  std::lock_guard lk(g_server_mu);
  if (g_server) return *g_server;
  if (network_started())
    throw usage_error(
        "sage: enable_groups() must run before this process uses the network (before any listen, connect, "
        "listen_datagram or connect_datagram, i.e. first thing in main()): group children are forked from a helper "
        "process that must not contain nng's threads or copies of network sockets");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::generic_category(), "sage: socketpair for the fork server");
  flush_all();  // or buffered output would be printed again by every child
  const pid_t main_pid = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "sage: fork of the fork server");
  if (pid == 0) {
    ::close(sv[0]);
    serve(sv[1], main_pid);
  }
  ::close(sv[1]);
  g_server = new ForkServer(sv[0], pid);  // lives as long as the process
  return *g_server;
}

ForkServer* ForkServer::started() noexcept {
  std::lock_guard lk(g_server_mu);
  return g_server;
}

void ForkServer::read_reports(int wait_ms) {
  while (!dead_) {
    if (wait_ms > 0) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, wait_ms) <= 0) return;
      wait_ms = 0;
    }
    FsHeader h;
    int fd = -1;
    const ssize_t n = recv_with_fd(fd_, &h, sizeof h, fd, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      // End of file: the fork server is gone (the reports it sent before were read above), and
      // its children with it (their parent-death signal). Nothing will be reported any more.
      dead_ = true;
      return;
    }
    if (n < 0) return;
    if (n < static_cast<ssize_t>(sizeof h)) {
      if (fd >= 0) ::close(fd);
      continue;
    }
    if (h.type == FsType::exited) exits_[static_cast<pid_t>(h.a)] = static_cast<int>(h.b);
    if (h.type == FsType::spawned) {
      spawned_[h.id] = h.a;
      if (fd >= 0 && h.a > 0) pidfds_[static_cast<pid_t>(h.a)] = fd;
      else if (fd >= 0) ::close(fd);
    }
  }
}

int take_spawn_fd() noexcept { return std::exchange(g_spawn_fd, -1); }

Result<pid_t> ForkServer::spawn(ChildEntry entry, std::span<const std::byte> args, int child_fd) {
  if (args.size() > max_spawn_args) return Error{Errc::too_large, "spawn arguments over 64 KiB"};
  std::lock_guard lk(mu_);
  if (dead_) return Error{Errc::peer_gone, "the fork server (pid " + std::to_string(pid_) + ") is gone"};
  FsHeader h{FsType::spawn, 0, next_id_++, static_cast<long long>(reinterpret_cast<std::uintptr_t>(entry)), 0};
  std::vector<std::byte> packet(sizeof h + args.size());
  std::memcpy(packet.data(), &h, sizeof h);
  if (!args.empty()) std::memcpy(packet.data() + sizeof h, args.data(), args.size());
  if (send_with_fd(fd_, packet.data(), packet.size(), child_fd) != static_cast<ssize_t>(packet.size()))
    return Error{Errc::peer_gone, std::string("the fork server is gone: ") + std::strerror(errno)};
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (auto it = spawned_.find(h.id); it != spawned_.end()) {
      const long long r = it->second;
      spawned_.erase(it);
      if (r <= 0) return Error{Errc::io_error, std::string("fork failed: ") + std::strerror(static_cast<int>(-r))};
      return static_cast<pid_t>(r);
    }
    if (dead_) return Error{Errc::peer_gone, "the fork server (pid " + std::to_string(pid_) + ") is gone"};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Error{Errc::peer_gone, "the fork server did not answer within 10 s"};
    read_reports(static_cast<int>(left));
  }
}

std::optional<int> ForkServer::take_exit(pid_t pid, int wait_ms) {
  std::lock_guard lk(mu_);
  read_reports(0);
  if (exits_.find(pid) == exits_.end() && wait_ms > 0) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
    while (!dead_ && exits_.find(pid) == exits_.end()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      read_reports(static_cast<int>(left));
    }
  }
  auto it = exits_.find(pid);
  if (it == exits_.end()) return std::nullopt;
  const int status = it->second;
  exits_.erase(it);
  return status;
}

std::optional<int> ForkServer::take_read_exit(pid_t pid) {
  std::lock_guard lk(mu_);
  auto it = exits_.find(pid);
  if (it == exits_.end()) return std::nullopt;
  const int status = it->second;
  exits_.erase(it);
  return status;
}

bool ForkServer::dead() {
  std::lock_guard lk(mu_);
  read_reports(0);
  return dead_;
}

void ForkServer::kill(pid_t pid) {
  std::lock_guard lk(mu_);
  read_reports(0);
  if (auto it = pidfds_.find(pid); it != pidfds_.end()) {
    // Safe whatever happened to the process: a pidfd never refers to another one.
    ::syscall(SYS_pidfd_send_signal, it->second, SIGKILL, nullptr, 0);
    return;
  }
  // No pidfd (kernel before 5.3): the pid is ours until the fork server reports its exit, and the
  // report is read above; a dead fork server reports nothing, so then nothing is signalled.
  if (!dead_ && exits_.find(pid) == exits_.end()) ::kill(pid, SIGKILL);
}

void ForkServer::release(pid_t pid) {
  std::lock_guard lk(mu_);
  if (auto it = pidfds_.find(pid); it != pidfds_.end()) {
    ::close(it->second);
    pidfds_.erase(it);
  }
  exits_.erase(pid);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : std::string());
  }
  return "ended with wait status " + std::to_string(status);
}

// ---------------------------------------------------------------------------------------------
// IpcDir

namespace {
std::string default_parent() {
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) {
    struct stat st {};
    if (::stat(x, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid() && ::access(x, W_OK) == 0)
      return x;
  }
  return "/tmp";
}

// Removes the files directly inside `dir` (relative to `parent_fd`) and the directory itself,
// refusing symlinks and directories of other users.
bool remove_dir(int parent_fd, const char* name) {
  const int dfd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return false;
  struct stat st {};
  if (::fstat(dfd, &st) != 0 || st.st_uid != ::getuid()) {
    ::close(dfd);
    return false;
  }
  DIR* d = ::fdopendir(dfd);
  if (!d) {
    ::close(dfd);
    return false;
  }
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    ::unlinkat(dfd, e->d_name, 0);  // sockets and files; a subdirectory makes rmdir fail below
  }
  ::closedir(d);
  return ::unlinkat(parent_fd, name, AT_REMOVEDIR) == 0;
}
}  // namespace

int remove_stale_ipc_dirs(const std::string& parent) {
  const int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return 0;
  DIR* d = ::fdopendir(::dup(pfd));
  int removed = 0;
  if (d) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      long pid = 0;
      char tail[16];
      if (std::sscanf(e->d_name, "sage-%ld-%15s", &pid, tail) != 2 || pid <= 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
      struct stat st {};
      if (::fstatat(pfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
          st.st_uid != ::getuid())
        continue;
      stale.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& name : stale) removed += remove_dir(pfd, name.c_str()) ? 1 : 0;
  }
  ::close(pfd);
  return removed;
}

Result<IpcDir> IpcDir::create(const std::string& parent_in) {
  const std::string parent = parent_in.empty() ? default_parent() : parent_in;
  remove_stale_ipc_dirs(parent);
  std::string tmpl = parent + "/sage-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Error{Errc::io_error, "cannot create the IPC directory " + tmpl + ": " + std::strerror(errno)};
  ::chmod(tmpl.c_str(), 0700);  // mkdtemp already uses 0700; say it explicitly
  return IpcDir(std::move(tmpl));
}

IpcDir& IpcDir::operator=(IpcDir&& o) noexcept {
  if (this != &o) {
    IpcDir old(std::move(*this));
    path_ = std::move(o.path_);
    o.path_.clear();
  }
  return *this;
}

IpcDir::~IpcDir() {
  if (path_.empty()) return;
  const auto slash = path_.rfind('/');
  const std::string parent = slash == 0 ? "/" : path_.substr(0, slash);
  const int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return;
  remove_dir(pfd, path_.c_str() + slash + 1);
  ::close(pfd);
}

}  // namespace sage::detail

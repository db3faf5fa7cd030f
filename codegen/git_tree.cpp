#include "git_tree.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;

namespace sagec {

namespace {

struct Run {
  int code = -1;
  std::string out, err;
};

// Runs git with `args` (no shell), collecting stdout and stderr.
Run git(const std::vector<std::string>& args) {
  Run r;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return r;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<std::string> all{"git"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "git", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    r.err = "cannot run git (is it installed and on PATH?)";
    return r;
  }
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_count = 2;
  char buf[65536];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const auto n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  while (!r.err.empty() && (r.err.back() == '\n' || r.err.back() == ' ')) r.err.pop_back();
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

std::unique_ptr<GitTree> GitTree::checkout(const std::string& ref, std::string& error) {
  std::unique_ptr<GitTree> t(new GitTree);
  t->ref_ = ref;
  auto top = git({"rev-parse", "--show-toplevel"});
  if (top.code != 0) {
    error = "--against-git needs a git repository: " + (top.err.empty() ? "git rev-parse failed" : top.err);
    return nullptr;
  }
  std::error_code ec;
  t->root_ = fs::weakly_canonical(trim(top.out), ec).string();
  auto commit = git({"rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"});
  if (commit.code != 0) {
    error = "--against-git: unknown revision " + ref +
            " (in CI, a shallow checkout has no origin/main: use fetch-depth: 0 or `git fetch origin main` first)";
    return nullptr;
  }
  const std::string sha = trim(commit.out);
  auto files = git({"ls-tree", "-r", "-z", "--full-tree", sha});
  if (files.code != 0) {
    error = "--against-git: git ls-tree " + ref + " failed: " + files.err;
    return nullptr;
  }
  std::string tmpl = (fs::temp_directory_path(ec) / "sagec-git-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    error = "--against-git: cannot create a temporary directory";
    return nullptr;
  }
  t->dir_ = tmpl;
  // Entries are "<mode> <type> <object>\t<path>\0". Regular files are copied; a symbolic link is
  // recreated when it points inside the repository by a relative path; anything else is skipped.
  std::size_t pos = 0;
  while (pos < files.out.size()) {
    auto end = files.out.find('\0', pos);
    if (end == std::string::npos) end = files.out.size();
    const std::string entry = files.out.substr(pos, end - pos);
    pos = end + 1;
    const auto tab = entry.find('\t');
    if (tab == std::string::npos) continue;
    const std::string mode = entry.substr(0, entry.find(' '));
    const std::string path = entry.substr(tab + 1);
    if (path.size() < 4 || path.compare(path.size() - 4, 4, ".fbs") != 0) continue;
    const fs::path rel = fs::path(path).lexically_normal();
    if (rel.is_absolute() || rel.empty() || *rel.begin() == "..") continue;
    if (mode != "100644" && mode != "100755" && mode != "120000") continue;
    auto blob = git({"cat-file", "blob", sha + ":" + path});
    if (blob.code != 0) continue;
    const fs::path target = fs::path(t->dir_) / rel;
    fs::create_directories(target.parent_path(), ec);
    if (mode == "120000") {
      const fs::path link = fs::path(blob.out);
      const fs::path resolved = (rel.parent_path() / link).lexically_normal();
      if (link.is_absolute() || resolved.empty() || *resolved.begin() == "..") continue;
      fs::create_symlink(link, target, ec);
      continue;
    }
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out.write(blob.out.data(), static_cast<std::streamsize>(blob.out.size()));
    if (!out.flush()) {
      error = "--against-git: cannot write " + target.string();
      return nullptr;
    }
  }
  return t;
}

GitTree::~GitTree() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string GitTree::repo_path(const std::string& path) const {
  std::error_code ec;
  const auto abs = fs::weakly_canonical(fs::absolute(path, ec), ec);
  const auto rel = abs.lexically_relative(root_);
  if (ec || rel.empty() || *rel.begin() == "..") return {};
  return rel.generic_string();
}

std::string GitTree::from_copy(const std::string& file) const {
  const auto rel = fs::path(file).lexically_normal().lexically_relative(dir_);
  if (rel.empty() || *rel.begin() == "..") return file;
  return rel.generic_string();
}

}  // namespace sagec

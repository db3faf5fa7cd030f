// git_tree.hpp: the .fbs files of a git revision, for `sagec check --against-git REF`.
#pragma once

#include <memory>
#include <string>

namespace sagec {

// Every .fbs file of `ref` (a commit-ish of the repository enclosing the working directory), written
// under a fresh temporary directory at its repository path, so that includes resolve among the
// files as they were at `ref`. The directory is removed with the object.
class GitTree {
 public:
  // nullptr and `error` set when there is no repository, `ref` is unknown, or git fails.
  static std::unique_ptr<GitTree> checkout(const std::string& ref, std::string& error);
  ~GitTree();
  GitTree(const GitTree&) = delete;
  GitTree& operator=(const GitTree&) = delete;

  const std::string& root() const { return root_; }  // the repository's top level (canonical)
  const std::string& dir() const { return dir_; }    // the temporary copy's top level
  const std::string& ref() const { return ref_; }

  // `path` (relative to the working directory or absolute) as a path inside the repository
  // ("schemas/common.fbs"); empty when it is outside the repository.
  std::string repo_path(const std::string& path) const;
  // A file of the temporary copy as its repository path; `file` unchanged when it is not in the copy.
  std::string from_copy(const std::string& file) const;

 private:
  GitTree() = default;
  std::string root_, dir_, ref_;
};

}  // namespace sagec

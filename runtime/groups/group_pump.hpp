// runtime/groups/group_pump.hpp: the main group's process groups: fork, restart, remove (docs/groups.md).
//
// One GroupPump per main manager that called enable_groups(). It is a lifecycle owner only: it
// starts each child through the fork server, gives it a socketpair link (transport/socket_conn.hpp)
// wrapped in a hub Channel
// (runtime/channel: hello, batching, relay, decode), registers the child's route in the
// Directory, watches its exit, restarts it by its RestartPolicy and says bye on removal. The
// child's side is runtime/groups/child.hpp. Every member runs on the manager's thread.
//
// A child's lifecycle (Child::State):
//   starting --hello checked--> running --bye sent--> leaving --bye_ack, exit 0--> removed
//   starting/running/leaving --exit, crash, lost link, refused hello--> failed
//   failed --RestartPolicy allows--> waiting (the backoff) --due--> starting (same name and
//   Sender index, the next Sender::generation)   else removed
// A failure is not thrown from poll(): it is queued in the manager's FIFO behind what the dead
// incarnation sent (ManagerAccess::report_failure), and the tick that reaches it throws it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "channel/channel.hpp"
#include "groups/process.hpp"
#include "local/pump.hpp"
#include "sage/groups.hpp"

namespace sage::detail {

class GroupPump final : public Pump {
 public:
  // Starts the fork server (throws usage_error if nng already ran in this process) and creates the
  // private IPC directory (throws spawn_error if it cannot).
  GroupPump(Manager& manager, const GroupsOptions& options);
  // Tells every child to finish (bye), waits briefly, kills what is left, removes the directory.
  ~GroupPump() override;

  // Throws group_exists, usage_error (bad name), spawn_error.
  void add_group(std::string_view name, ActorFactory factory, const GroupOptions& options);
  // Throws no_such_group; group_error if the child did not end cleanly (it is removed either way).
  void remove_group(std::string_view name);
  void clear_groups();
  std::vector<std::string> groups() const;
  bool has_group(std::string_view name) const noexcept { return find(name) != nullptr; }
  pid_t pid_of(std::string_view name) const;
  std::string endpoint_of(std::string_view name) const;  // the link's label, "<ipc dir>/g<N>" (tests)
  const std::string& ipc_dir() const noexcept { return dir_.path(); }
  GroupStats stats() const;

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  Clock::time_point next_deadline() const override;  // the earliest restart due

 private:
  struct Child;
  Child* find(std::string_view name) const noexcept;
  void spawn(Child& c);
  void check_exit(Child& c);
  void restart(Child& c);
  void check_fork_server(Manager& manager);
  std::vector<group_error> remove_children(std::vector<Child*> list);
  void fail(Child& c, std::string reason);
  void teardown(Child& c, bool kill_child);
  void erase(Child& c);

  Manager& manager_;
  Waker& waker_;
  Directory& directory_;
  IpcDir dir_;
  std::vector<std::unique_ptr<Child>> children_;
  std::uint64_t next_endpoint_ = 1;
  ChannelCounters counters_;
  std::size_t max_groups_;
  bool fork_server_lost_ = false;  // the fork server died: its fd is no longer watched
};

}  // namespace sage::detail

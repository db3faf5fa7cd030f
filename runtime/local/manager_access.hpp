// runtime/local/manager_access.hpp: the runtime's (and its tests') way into a Manager's internals.
// Not installed: public headers name no runtime-private type.
#pragma once

#include <memory>

#include "sage/manager.hpp"

namespace sage::detail {

class Pump;
class Waker;

// A group's failure, queued in the manager's FIFO behind what the group's process sent before it
// failed: the tick that reaches it throws `error` (Manager::dispatch_record), so everything that
// incarnation sent is dispatched before its failure is reported (docs/groups.md "Incarnations").
// Never seen by actors, observers or the dead-letter handler.
struct GroupFailure {
  group_error error;
};
class Directory;
class GroupPump;
class ChildPump;
class NetPump;

struct ManagerAccess {
  static Waker& waker(Manager& m) noexcept { return *m.waker_; }
  static std::shared_ptr<Waker> shared_waker(Manager& m) { return m.waker_; }
  static Directory& directory(Manager& m) noexcept { return *m.directory_; }
  // Adds a pump; during a tick it takes part from the end of the current dispatch on (its first
  // flush() is this tick's).
  static Pump& add_pump(Manager& m, std::unique_ptr<Pump> pump) { return m.add_pump(std::move(pump)); }
  static void remove_pump(Manager& m, Pump& pump) { m.remove_pump(pump); }
  // The group pump of a main group (throws groups_not_enabled) / of a child (nullptr elsewhere).
  static GroupPump& groups(const Manager& m);
  static ChildPump* child(const Manager& m) noexcept { return m.child_; }
  static void attach_child(Manager& m, std::unique_ptr<ChildPump> pump);
  // The network pump (throws usage_error if the network is not enabled).
  static NetPump& network(const Manager& m);
  // Queues a GroupFailure behind every message queued so far (a pump calls it from poll()).
  static void report_failure(Manager& m, group_error e) {
    m.incoming_.push<GroupFailure>(m.pool_, m.note_type(message_type_v<GroupFailure>), ActorId{}, Sender::local(),
                                   GroupFailure{std::move(e)});
  }
};

}  // namespace sage::detail

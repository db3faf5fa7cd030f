// runtime/local/manager_access.hpp: the runtime's (and its tests') way into a Manager's internals.
// Not installed: public headers name no runtime-private type.
#pragma once

#include <memory>

#include "sage/manager.hpp"

namespace sage::detail {

class Pump;
class Waker;
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
};

}  // namespace sage::detail

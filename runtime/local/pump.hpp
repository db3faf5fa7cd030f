// runtime/local/pump.hpp: the seam through which groups and the network feed a Manager.
//
// A Pump moves messages between a Manager and the world outside its process (child processes,
// the main group, network peers). Owned by the manager; every call comes from the manager's thread.
// An exception thrown by poll() or flush() (e.g. group_error) propagates out of Manager::tick()
// unchanged; the manager stays usable.
#pragma once

#include <chrono>

namespace sage {
class Manager;
}

namespace sage::detail {

class Pump {
 public:
  virtual ~Pump() = default;
  // Start of each tick, before queued messages are dispatched: enqueue what arrived (e.g. with
  // Manager::queue_message_from(msg, Sender::group(i))). Messages enqueued here are dispatched in this tick.
  virtual void poll(Manager& manager) = 0;
  // End of each tick, after update(): send what the actors queued for outside the process.
  virtual void flush(Manager& manager) = 0;
  // The next time this pump needs a tick although nothing arrived (a heartbeat round, a reconnect
  // attempt, a lingering close): bounds Manager::wait_for_next_tick(). max() = none.
  virtual std::chrono::steady_clock::time_point next_deadline() const { return std::chrono::steady_clock::time_point::max(); }
};

}  // namespace sage::detail

// sage/detail/pump.hpp: the seam through which groups and transports feed a Manager.
#pragma once

#include <chrono>

namespace sage {
class Manager;
}

namespace sage::detail {

// Something that moves messages between a Manager and the world outside its process (another
// group, a network peer). Added with Manager::add_pump(), owned by the manager, destroyed before
// the manager's actors are detached. Every call comes from the manager's thread. An exception thrown
// by poll() or flush() (e.g. "group failed") propagates out of Manager::tick() unchanged; the
// manager stays usable.
class Pump {
 public:
  virtual ~Pump() = default;
  // Start of each tick, before queued messages are dispatched: enqueue what arrived, e.g. with
  // Manager::queue_message_from(msg, Sender::group(i)). Messages enqueued here are dispatched in this tick.
  virtual void poll(Manager& manager) = 0;
  // End of each tick, after update(): send what the actors queued for outside the process.
  virtual void flush(Manager& manager) = 0;
  // Blocks until something arrived (returns true) or `deadline` passed (returns false).
  virtual bool wait_until(std::chrono::steady_clock::time_point deadline) = 0;
};

}  // namespace sage::detail

// The loop of a remote group node (sage/remote_group.hpp, docs/network.md "Remote groups").
#include "local/manager_access.hpp"
#include "log/log.hpp"
#include "network/net_pump.hpp"
#include "sage/remote_group.hpp"

namespace sage::detail {

int run_remote_group_loop(Manager& manager, ActorFactory factory, std::string_view host, std::uint16_t port,
                          std::string_view name, std::chrono::milliseconds interval) {
  try {
    manager.join_as_group(host, port, name);
  } catch (const network_error& e) {
    log::write(log::Level::error, "network", "network: ", log::peer(e.error().message()));  // e.what()
    return 2;
  }
  std::unique_ptr<ActorBase> actor = factory(manager);
  manager.register_actor(*actor);
  NetPump& net = ManagerAccess::network(manager);
  for (;;) {
    manager.tick();
    if (net.bye_received()) break;
    if (auto why = net.main_lost()) {
      log::write(log::Level::error, "network", "remote group '", name, "': lost the main group: ", log::peer(*why));
      manager.unregister_actor(*actor);
      return 1;
    }
    manager.wait_for_next_tick(interval);
  }
  // Everything that arrived before the bye was dispatched and what the actor queued was flushed in
  // the last tick; bye_ack tells the main group so.
  net.answer_bye();
  manager.unregister_actor(*actor);
  return 0;
}

}  // namespace sage::detail

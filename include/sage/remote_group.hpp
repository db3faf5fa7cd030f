// sage/remote_group.hpp: a process that hosts a group of an application running elsewhere.
//
//   int main(int argc, char** argv) {   // on the worker machine
//     return sage::run_remote_group<Worker>(sage::type_list<...wire messages...>{}, "main-host", 5555, "workers");
//   }
//
// The node connects to the main group's listener (Manager::listen on the main group), registers
// group `name` and runs an A as the group's default actor until the main group says bye (returns 0)
// or is lost (returns 1; 2 if it could not join). See docs/network.md "Remote groups".
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "sage/manager.hpp"

namespace sage {

namespace detail {
// The node's loop (runtime/network/node_loop.cpp): joins, runs `factory`'s actor, ticks until bye.
int run_remote_group_loop(Manager& manager, ActorFactory factory, std::string_view host, std::uint16_t port,
                          std::string_view name, std::chrono::milliseconds interval);
}  // namespace detail

struct RemoteGroupOptions {
  NetworkOptions network{};
  std::chrono::milliseconds interval{30};  // the node ticks every interval (earlier when messages arrive)
};

// Runs on the calling thread until the group ends; see above. A is constructed from Manager& if it
// has such a constructor, else default-constructed, after the main group accepted the node.
template <class A, WireMessage... Ts>
int run_remote_group(type_list<Ts...> messages, std::string_view host, std::uint16_t port, std::string_view name,
                     const RemoteGroupOptions& options = {}) {
  static_assert(std::is_base_of_v<ActorBase, A>, "run_remote_group<A>: A must be a sage actor");
  Manager manager;
  manager.register_messages(messages);
  manager.enable_network(options.network);
  return detail::run_remote_group_loop(manager, &detail::make_default_actor<A>, host, port, name, options.interval);
}

}  // namespace sage

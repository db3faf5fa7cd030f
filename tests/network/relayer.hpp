// The actor of the relay tests, run by a remote group node (node_helper) and by a local child
// group (groups_and_network_test), so both ends of a relay behave the same:
//   "fwd <group> <text>"  queue <text> to <group> (any group of the application)
//   "ping"                answer "pong from <me>" to whoever sent it
//   anything else         report "<me> got '<text>' from <sender's group>" to the main group
#pragma once

#include <string>

#include "nettest.sage.hpp"
#include "sage/manager.hpp"

namespace nt {

struct Relayer : sage::Actor<Relayer, sage::subscribes<nettest::StringMessage>> {
  bool handle(const nettest::StringMessage& m, const sage::Sender& from) {
    sage::Manager& mgr = *manager();
    const std::string me(mgr.group_name());
    if (m.text.rfind("fwd ", 0) == 0) {
      const auto space = m.text.find(' ', 4);
      mgr.queue_message_to_group(m.text.substr(4, space - 4), nettest::StringMessage{m.text.substr(space + 1)});
    } else if (m.text == "ping") {
      mgr.queue_message_to_group(from, nettest::StringMessage{"pong from " + me});
    } else {
      mgr.queue_message_to_group(sage::main_group,
                                 nettest::StringMessage{me + " got '" + m.text + "' from " +
                                                        std::string(mgr.group_name(from))});
    }
    return true;
  }
};

}  // namespace nt

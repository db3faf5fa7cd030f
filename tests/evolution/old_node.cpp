// The old (or incompatible) build of the evolution tests: this file is compiled twice, against
// v1/evo.fbs (evolution_v1_node) and bad/evo.fbs (evolution_bad_node); evolution_test.cpp is the new
// build (v2/evo.fbs). It is also compiled against x/evo.fbs and y/evo.fbs (evolution_x_node,
// evolution_y_node, EVO_TAG: Order has a field `tag`). It prints what it receives, one line each,
// for the test to check.
//   <node> client <port>   connects, sends Order{7, "tea", 3, angry} and Ping{1}, prints the first
//                          Order it gets back and the PeerRefused it may see, then exits 0
//   <node> dclient <port>  the same over datagrams (connect_datagram, enet://)
//   <node> group <port>    a remote group "old": answers every Order with Order{id + 1, item + "!", qty, mood}
//   <node> relay <port> <name> <target>
//                          a remote group <name>: for every Order from the main group sends
//                          Order{id + 1, tag 7} and Ping{id + 1} to group <target>; prints what it gets
#include <cstdio>
#include <cstdlib>
#include <string>

#include "evo.sage.hpp"
#include "sage/datagram.hpp"
#include "sage/remote_group.hpp"

using namespace std::chrono_literals;

namespace {

void print_order(const evo::Order& o) {
#ifdef EVO_BAD
  std::printf("order id=%lld item=%s qty=%d mood=%d\n", static_cast<long long>(o.id), o.item.c_str(), o.qty,
              static_cast<int>(o.mood));
#else
  std::printf("order id=%d item=%s qty=%d mood=%d\n", o.id, o.item.c_str(), o.qty, static_cast<int>(o.mood));
#endif
  std::fflush(stdout);
}

struct Client : sage::Actor<Client, sage::subscribes<evo::Order, sage::PeerConnected, sage::PeerRefused>> {
  bool done = false;
  bool connected = false;
  bool handle(const evo::Order& o, const sage::Sender&) {
    print_order(o);
    done = true;
    return true;
  }
  bool handle(const sage::PeerConnected& c, const sage::Sender&) {
    std::printf("connected to %s\n", c.name.c_str());
    std::fflush(stdout);
    connected = true;
    return true;
  }
  bool handle(const sage::PeerRefused& r, const sage::Sender&) {
    std::printf("refused by_peer=%d code=%s\n%s\n", r.by_peer ? 1 : 0, std::string(sage::to_string(r.reason.code)).c_str(),
                r.reason.detail.c_str());
    std::fflush(stdout);
    done = true;
    return true;
  }
};

struct OldGroup : sage::Actor<OldGroup, sage::subscribes<evo::Order>> {
  explicit OldGroup(sage::Manager& m) : mgr(m) {}
  sage::Manager& mgr;
  bool handle(const evo::Order& o, const sage::Sender& from) {
    print_order(o);
    evo::Order reply = o;
    reply.id = o.id + 1;
    reply.item = o.item + "!";
    mgr.queue_message_to_group(from, reply);
    return true;
  }
};

#ifndef EVO_BAD
std::string relay_target;

struct RelayGroup : sage::Actor<RelayGroup, sage::subscribes<evo::Order, evo::Ping>> {
  explicit RelayGroup(sage::Manager& m) : mgr(m) {}
  sage::Manager& mgr;
  bool handle(const evo::Order& o, const sage::Sender& from) {
    print_order(o);
    if (mgr.group_name(from) != sage::main_group) return true;
    evo::Order next = o;
    next.id = o.id + 1;
#ifdef EVO_TAG
    next.tag = 7;
#endif
    mgr.queue_message_to_group(relay_target, next);
    mgr.queue_message_to_group(relay_target, evo::Ping{o.id + 1});
    return true;
  }
  bool handle(const evo::Ping& p, const sage::Sender&) {
    std::printf("ping n=%d\n", p.n);
    std::fflush(stdout);
    return true;
  }
};
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 64;
  const std::string mode = argv[1];
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
#ifndef EVO_BAD
  if (mode == "relay" && argc == 5) {
    relay_target = argv[4];
    sage::RemoteGroupOptions o;
    o.interval = 5ms;
    o.network.name = std::string("group ") + argv[3];
    return sage::run_remote_group<RelayGroup>(evo::evo_wire_messages{}, "127.0.0.1", port, argv[3], o);
  }
#endif
  if (argc != 3) return 64;
  if (mode == "group") {
    sage::RemoteGroupOptions o;
    o.interval = 5ms;
    o.network.name = "old group";
    return sage::run_remote_group<OldGroup>(evo::evo_wire_messages{}, "127.0.0.1", port, "old", o);
  }
  if (mode != "client" && mode != "dclient") return 64;
  sage::Manager m;
  m.register_messages(evo::evo_wire_messages{});
  Client client;
  m.register_actor(client);
  sage::Sender server;
  if (mode == "client") {
    sage::NetworkOptions options;
    options.name = "old client";
    m.enable_network(options);
    server = m.connect("127.0.0.1", port);
  } else {
    sage::DatagramOptions options;
    options.name = "old client";
    m.enable_datagrams(options);
    server = m.connect_datagram("127.0.0.1", port);
  }
  evo::Order order;
  order.id = 7;
  order.item = "tea";
  order.qty = 3;
  order.mood = evo::Mood::angry;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  // TCP: sent before the handshake completed, held until the server's hello arrived, then sent.
  // Datagrams: connect_datagram() returns before ENet connected (a send then fails with
  // peer_gone), so the node sends once connected.
  bool sent = false;
  auto send = [&] {
    sent = true;
    m.send_message(order, server);
#ifndef EVO_BAD
    m.send_message(evo::Ping{1}, server);
#endif
  };
  if (mode == "client") send();
  while (!client.done && std::chrono::steady_clock::now() < deadline) {
    m.tick();
    if (!sent && client.connected) send();
    m.wait_for_next_tick(5ms);
  }
  if (!client.done) return 3;
  // A refused peer: a later send fails loudly.
  if (auto r = m.try_send_message(order, server); !r) {
    std::printf("send after: %s\n", r.error().message().c_str());
    std::fflush(stdout);
  }
  return 0;
}

// An order over TCP and one over datagrams (UDP, ENet) between two managers of this process. It
// links only if the libraries libsage.a needs for the network (nng, ENet) come with sage: through
// find_package(sage), or sage.pc alone in the Makefile.
#include <chrono>
#include <iostream>

#include "orders.sage.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;

// The client: an order to each server connection once its handshake is done.
struct Waiter : sage::Actor<Waiter, sage::subscribes<sage::PeerConnected>> {
  sage::Sender tcp_server;
  bool handle(const sage::PeerConnected& p) {
    manager()->send_message(diner::Order{.dish = p.peer == tcp_server ? "tcp" : "datagram", .count = 1}, p.peer);
    return true;
  }
};

// The server: counts the orders per transport.
struct Kitchen : sage::Actor<Kitchen, sage::subscribes<diner::Order>> {
  int tcp = 0;
  int datagram = 0;
  bool handle(const diner::Order& order) {
    (order.dish == "tcp" ? tcp : datagram) += order.count;
    return true;
  }
};

int main() {
  sage::Manager server, client;
  for (auto* m : {&server, &client}) m->register_messages(diner::orders_wire_messages{});
  Kitchen kitchen;
  Waiter waiter;
  server.register_actor(kitchen);
  client.register_actor(waiter);
  const auto tcp = server.listen("127.0.0.1", 0);
  const auto udp = server.listen_datagram("127.0.0.1", 0);
  waiter.tcp_server = client.connect("127.0.0.1", tcp.port);
  client.connect_datagram("127.0.0.1", udp.port);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((kitchen.tcp == 0 || kitchen.datagram == 0) && std::chrono::steady_clock::now() < deadline) {
    client.tick();
    server.tick();
    server.wait_for_next_tick(1ms);
  }
  std::cout << "network ok: " << kitchen.tcp << " order over tcp, " << kitchen.datagram << " over datagrams\n";
  return kitchen.tcp == 1 && kitchen.datagram == 1 ? 0 : 1;
}

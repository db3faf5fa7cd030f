// Fuzzes the datagram receive path end to end on loopback (runtime/transport/datagram.cpp,
// runtime/network/datagram_pump.cpp, runtime/channel/channel.cpp): a real sage Manager listens on
// enet://127.0.0.1; each input is either
//   - a raw UDP datagram sent to its socket (first byte even): the intercept's plausibility check,
//     then ENet's own parser; or
//   - the body of a reliable ENet packet sent by a connected raw ENet peer after a valid hello
//     (first byte odd): sage's record framing, control records and the decoders of a real schema.
// Neither may crash, hang or leak; a peer dropped for bad input is dialed again.
#include <arpa/inet.h>
#include <enet/enet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "channel/protocol.hpp"
#include "enet_challenge.hpp"
#include "pancakes.sage.hpp"
#include "sage/manager.hpp"
#include "sage/wire.hpp"
#include "transport/datagram.hpp"

namespace proto = sage::detail::protocol;
using Clock = std::chrono::steady_clock;

namespace {

struct World {
  sage::Manager server;
  std::uint16_t port = 0;
  ENetHost* client = nullptr;
  ENetPeer* peer = nullptr;
  bool connected = false;
  int udp = -1;
  sockaddr_in to{};

  World() {
    server.register_messages(pancakes::pancakes_wire_messages{});
    sage::DatagramOptions o;
    o.connect_timeout = std::chrono::seconds(2);
    server.enable_datagrams(o);
    port = server.listen_datagram("127.0.0.1", 0).port;
    client = enet_host_create(nullptr, 1, 12, 0, 0);
    udp = ::socket(AF_INET, SOCK_DGRAM, 0);
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
  }
  void service() {
    ENetEvent ev;
    while (enet_host_service(client, &ev, 0) > 0) {
      if (ev.type == ENET_EVENT_TYPE_CONNECT) connected = true;
      if (ev.type == ENET_EVENT_TYPE_DISCONNECT) connected = false, peer = nullptr;
      if (ev.type == ENET_EVENT_TYPE_RECEIVE) enet_packet_destroy(ev.packet);
    }
  }
  void pump(Clock::duration d) {
    const auto until = Clock::now() + d;
    while (Clock::now() < until) {
      server.tick();
      service();
      server.wait_for_next_tick(std::chrono::milliseconds(1));
    }
  }
  bool ensure_peer() {
    if (connected) return true;
    if (peer) enet_peer_reset(peer);
    ENetAddress a{};
    enet_address_set_host_ip(&a, "127.0.0.1");
    a.port = port;
    const auto cookie = enet_challenge::cookie(static_cast<int>(client->socket), port, [&] { server.tick(); },
                                               std::chrono::seconds(2));
    if (!cookie) return false;
    peer = enet_host_connect(client, &a, 12, *cookie);
    const auto until = Clock::now() + std::chrono::seconds(2);
    while (!connected && Clock::now() < until) pump(std::chrono::milliseconds(2));
    if (!connected) return false;
    // Our hello first: a v2 hello without a schema description (it lists no types, so the
    // server holds nothing back); the server still decodes the records of its own table.
    proto::Hello h;
    h.name = "fuzz";
    std::vector<std::byte> body;
    proto::append_control(body, proto::Control::hello, proto::encode_hello(h));
    enet_peer_send(peer, 0, enet_packet_create(body.data(), body.size(), ENET_PACKET_FLAG_RELIABLE));
    enet_host_flush(client);
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World* w = new World;  // lives for the whole run (ENet and the manager are reused)
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    ::sendto(w->udp, data + 1, size - 1, 0, reinterpret_cast<const sockaddr*>(&w->to), sizeof w->to);
  } else if (w->ensure_peer()) {
    const std::uint8_t channel = static_cast<std::uint8_t>((data[0] >> 1) % 12);
    enet_peer_send(w->peer, channel, enet_packet_create(data + 1, size - 1, ENET_PACKET_FLAG_RELIABLE));
    enet_host_flush(w->client);
  }
  w->pump(std::chrono::milliseconds(3));
  return 0;
}

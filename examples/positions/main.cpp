// Game-style state over datagrams (ENet): a server moves three entities and sends their positions
// to every client 30 times a second, unreliable-sequenced (a lost update is not resent, an old one
// never replaces a newer one), plus chat lines reliable and in order on a channel of their own.
//   positions server 5556 [ADDRESS] [--allow IP]...   in one terminal (enet://ADDRESS:5556, default 0.0.0.0)
//   positions client 127.0.0.1 5556                    in another: the latest positions and every chat line
//   positions demo                   server + client in one process through a lossy UDP relay
//                                    (20% loss, duplicates, reordering; the ctest), sealed with a fresh key
// Server and client take `--key-file PATH --key-id ID` (anywhere): shared-key mode over ENet
// (DatagramOptions::keys, docs/security.md): only a client holding the key gets in, and every
// datagram is sealed. The server also admits a client only from an allowed address (each --allow
// IP; 127.0.0.1 if none) and only if its hello names it a positions client (DatagramOptions::admit);
// everyone else is refused with the reason.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lossy_relay.hpp"
#include "positions.sage.hpp"
#include "printable.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;

constexpr const char* client_name = "positions client";  // DatagramOptions::name of the client


// The server's admission: a positions client from an allowed address ("ip:port": the ip must be listed).
std::vector<sage::SharedKey> keys;  // `--key-file PATH --key-id ID`, or none

sage::DatagramOptions server_options(std::set<std::string> allowed) {
  sage::DatagramOptions o;
  o.keys = keys;
  o.admit = [allowed = std::move(allowed)](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    const std::string ip = r.address.substr(0, r.address.rfind(':'));
    if (!allowed.count(ip)) return "address " + ip + " is not allowed here (positions server --allow)";
    if (r.name != client_name) return "this server serves positions clients only";
    return std::nullopt;
  };
  return o;
}

sage::DatagramOptions client_options() {
  sage::DatagramOptions o;
  o.keys = keys;
  o.name = client_name;
  return o;
}

constexpr auto positions_channel = sage::Delivery::sequenced(0);
constexpr auto chat_channel = sage::Delivery::reliable_on(1);

struct Server : sage::Actor<Server, sage::subscribes<sage::PeerConnected, sage::PeerDisconnected>> {
  sage::Manager& mgr;
  std::uint32_t tick = 0;
  int chat_sent = 0;
  int chat_total = 10;
  explicit Server(sage::Manager& m) : mgr(m) {}
  bool handle(const sage::PeerConnected& p) {
    std::printf("server: %s connected\n", p.address.c_str());
    return true;
  }
  bool handle(const sage::PeerDisconnected& p) {
    std::printf("server: %s left: %s\n", p.address.c_str(), printable(p.reason.message(), 300).c_str());
    return true;
  }
  // 30 Hz: every entity's position to every peer; a chat line every 6th tick.
  void step() {
    ++tick;
    for (int e = 0; e < 3; ++e) {
      const float a = static_cast<float>(tick) * 0.05f + static_cast<float>(e) * 2.1f;
      mgr.broadcast_message(positions::Position{e, tick, 10 * std::cos(a), 10 * std::sin(a)}, positions_channel);
    }
    if (tick % 6 == 0 && chat_sent < chat_total && !mgr.peers().empty()) {
      ++chat_sent;
      mgr.broadcast_message(positions::Chat{chat_sent, "line " + std::to_string(chat_sent)}, chat_channel);
    }
  }
};

struct Client : sage::Actor<Client, sage::subscribes<positions::Position, positions::Chat, sage::PeerRefused,
                                                     sage::PeerDisconnected>> {
  std::map<int, positions::Position> latest;
  int chat_seen = 0;
  bool chat_in_order = true;
  int updates = 0;
  bool older = false;
  bool quiet = false;
  std::optional<std::string> gone;  // why the server is gone (refused us, closed, timed out)
  bool handle(const positions::Position& p) {
    auto it = latest.find(p.entity);
    if (it != latest.end() && it->second.tick >= p.tick) older = true;  // never happens: sequenced
    latest[p.entity] = p;
    ++updates;
    return true;
  }
  bool handle(const positions::Chat& c) {
    if (c.n != chat_seen + 1) chat_in_order = false;
    chat_seen = c.n;
    std::printf("chat #%d: %s\n", c.n, printable(c.text, 300).c_str());
    return true;
  }
  bool handle(const sage::PeerRefused& r) {
    if (!gone) gone = "refused by the server: " + r.reason.message();
    return true;
  }
  bool handle(const sage::PeerDisconnected& d) {
    if (!gone) gone = "disconnected: " + d.reason.message();
    return true;
  }
  void show() {
    if (quiet) return;
    std::printf("positions:");
    for (auto& [e, p] : latest) std::printf("  #%d@%u (%.1f, %.1f)", e, p.tick, p.x, p.y);
    std::printf("\n");
  }
};

int run_server(const std::string& address, std::uint16_t port, const std::set<std::string>& allowed) {
  sage::Manager mgr;
  mgr.enable_datagrams(server_options(allowed));
  mgr.register_messages(positions::positions_wire_messages{});
  Server server(mgr);
  server.chat_total = 1 << 30;
  mgr.register_actor(server);
  std::printf("listening on %s\n", mgr.listen_datagram(address, port).url.c_str());
  for (;;) {
    mgr.tick();
    server.step();
    mgr.wait_for_next_tick(33ms);
  }
}

// Until the server is gone: 1 with the reason on stderr.
int run_client(const std::string& host, std::uint16_t port) {
  sage::Manager mgr;
  mgr.enable_datagrams(client_options());
  mgr.register_messages(positions::positions_wire_messages{});
  Client client;
  mgr.register_actor(client);
  mgr.connect_datagram(host, port);  // PeerConnected, or PeerRefused / PeerDisconnected with the reason
  auto next_show = std::chrono::steady_clock::now();
  for (;;) {
    mgr.tick();
    if (client.gone) {
      std::fprintf(stderr, "positions: %s\n", printable(*client.gone, 1000).c_str());
      return 1;
    }
    if (std::chrono::steady_clock::now() >= next_show) {
      client.show();
      next_show += 500ms;
    }
    mgr.wait_for_next_tick(10ms);
  }
}

int run_demo() {
  sage::Manager smgr, cmgr;
  smgr.enable_datagrams(server_options({"127.0.0.1"}));
  cmgr.enable_datagrams(client_options());
  for (auto* m : {&smgr, &cmgr}) m->register_messages(positions::positions_wire_messages{});
  Server server(smgr);
  Client client;
  smgr.register_actor(server);
  cmgr.register_actor(client);
  const auto at = smgr.listen_datagram("127.0.0.1", 0);
  lossy::Relay relay(at.port, {.drop = 0.2, .duplicate = 0.1, .reorder = 0.2, .delay_ms = 5});
  cmgr.connect_datagram("127.0.0.1", relay.port());
  const auto start = std::chrono::steady_clock::now();
  auto next_step = start;
  auto next_show = start;
  // Until every chat line arrived (at most 20 s), stepping the server at 30 Hz.
  while (client.chat_seen < server.chat_total && std::chrono::steady_clock::now() - start < 20s) {
    smgr.tick();
    cmgr.tick();
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_step) {
      server.step();
      next_step += 33ms;
    }
    if (now >= next_show) {
      client.show();
      next_show += 500ms;
    }
    cmgr.wait_for_next_tick(1ms);
  }
  std::printf("chat: %d of %d lines, %s\n", client.chat_seen, server.chat_total,
              client.chat_in_order ? "in order" : "OUT OF ORDER");
  std::printf("positions: %d of %u updates arrived, %s\n", client.updates, server.tick * 3,
              client.older ? "SOME OLDER than one already shown" : "none older than one already shown");
  const bool ok = client.chat_seen == server.chat_total && client.chat_in_order && !client.older && client.updates > 0;
  if (ok) std::printf("positions demo done\n");
  return ok ? 0 : 1;
}

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::set<std::string> allowed;  // `--allow IP` (repeatable): the client addresses; none given: 127.0.0.1
  std::string key_file, key_id;
  int n = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--allow" && i + 1 < argc) allowed.insert(argv[++i]);
    else if (a == "--key-file" && i + 1 < argc) key_file = argv[++i];
    else if (a == "--key-id" && i + 1 < argc) key_id = argv[++i];
    else argv[n++] = argv[i];
  }
  argc = n;
  if (allowed.empty()) allowed.insert("127.0.0.1");
  const std::string mode = argc > 1 ? argv[1] : "demo";
  if (!key_file.empty()) {
    auto key = sage::SharedKey::from_file(key_id.empty() ? "positions" : key_id, key_file);
    if (!key) {
      std::fprintf(stderr, "positions: %s\n", key.error().message().c_str());
      return 2;
    }
    keys = {*key};
  } else if (mode == "demo") {
    keys = {sage::SharedKey::generate("positions")};  // both ends in this process hold it
  }
  if (mode == "server" && (argc == 3 || argc == 4))
    return run_server(argc == 4 ? argv[3] : "0.0.0.0", static_cast<std::uint16_t>(std::stoi(argv[2])), allowed);
  if (mode == "client" && argc == 4) return run_client(argv[2], static_cast<std::uint16_t>(std::stoi(argv[3])));
  if (mode == "demo") return run_demo();
  std::fprintf(stderr, "usage: positions server PORT [ADDRESS] [--allow IP]... | positions client HOST PORT | positions demo"
                       " [--key-file PATH --key-id ID]\n");
  return 2;
} catch (const std::exception& e) {  // listen_datagram() on a port in use, a bad host: the reason
  std::fprintf(stderr, "positions: %s\n", e.what());
  return 1;
}

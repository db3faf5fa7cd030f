// A chat over TCP: the server relays each client's lines to the other clients with the sender's nick.
//   chat server 5555 [ADDRESS]       in one terminal (listens on ADDRESS, default 0.0.0.0; port 0: any)
//   chat client 127.0.0.1 5555 ann   in others: type lines, Ctrl-D leaves
//   chat demo                        a scripted server and two clients in one process (the test)
// Server and client take `--key-file PATH --key-id ID` (anywhere): shared-key mode (docs/security.md
// "Shared keys"), PATH holding the key's 64 hex digits (as SharedKey::hex() writes them,
// `cluster keygen PATH`, or `python3 -c "import secrets; print(secrets.token_hex(32))"`); both ends
// need the same key. The server serves chat clients only: its admission hook refuses every request
// to host a group. What peers send is printed and relayed with control characters escaped.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "chat.sage.hpp"
#include "printable.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;

constexpr std::size_t max_nick = 32, max_text = 2000;

struct Server : sage::Actor<Server, sage::subscribes<chat::Join, chat::Say, sage::PeerDisconnected>> {
  sage::Manager& mgr;
  std::map<std::uint32_t, std::string> nicks;  // by peer index
  bool log = false;                             // `chat server` prints who comes and goes
  explicit Server(sage::Manager& m) : mgr(m) {}
  bool handle(const chat::Join& j, const sage::Sender& from) {
    const std::string nick = printable(j.nick, max_nick);
    nicks[from.index] = nick;
    if (log) std::printf("%s joined\n", nick.c_str());
    relay(from, chat::Line{"server", nick + " joined"});
    return true;
  }
  bool handle(const chat::Say& s, const sage::Sender& from) {
    auto it = nicks.find(from.index);
    if (it == nicks.end()) return true;  // a peer that never sent Join is not in the chat
    relay(from, chat::Line{it->second, printable(s.text, max_text)});
    return true;
  }
  bool handle(const sage::PeerDisconnected& d) {
    if (auto it = nicks.find(d.peer.index); it != nicks.end()) {
      if (log) std::printf("%s left\n", it->second.c_str());
      relay(d.peer, chat::Line{"server", it->second + " left"});
      nicks.erase(it);
    }
    return true;
  }
  void relay(sage::Sender from, const chat::Line& line) {  // to everyone but `from`
    for (auto& [index, nick] : nicks) {
      if (index == from.index) continue;
      // A peer may be gone already, or not know chat.Line (a tool that only sends): not fatal here.
      if (auto r = mgr.try_send_message(line, sage::Sender::peer(index)); !r && log)
        std::printf("cannot send to %s: %s\n", nick.c_str(), printable(r.error().message(), 500).c_str());
    }
  }
};

struct Client : sage::Actor<Client, sage::subscribes<chat::Line, sage::PeerConnected, sage::PeerRefused,
                                                     sage::PeerDisconnected>> {
  std::string me;
  int seen = 0;
  bool connected = false;           // the server's handshake arrived and was accepted
  std::optional<std::string> gone;  // why the server is gone (refused us, closed, lost)
  bool handle(const chat::Line& l) {
    std::printf("[%s sees] <%s> %s\n", me.c_str(), printable(l.nick, max_nick).c_str(),
                printable(l.text, max_text).c_str());
    ++seen;
    return true;
  }
  bool handle(const sage::PeerConnected&) { return connected = true; }
  bool handle(const sage::PeerRefused& r) {
    if (!gone) gone = "refused by " + r.address + ": " + r.reason.message();
    return true;
  }
  bool handle(const sage::PeerDisconnected& d) {
    if (!gone) gone = "lost " + d.address + ": " + d.reason.message();
    return true;
  }
};

// The server's network options: the key (if any) and an admission hook for a chat server.
sage::NetworkOptions server_options(sage::NetworkOptions options) {
  options.admit = [](const sage::AdmissionRequest& r) -> std::optional<std::string> {
    if (r.kind == sage::AdmissionRequest::Kind::group) return "this chat server hosts no groups; it serves chat clients";
    return std::nullopt;  // a chat client (with the key, when the server has one)
  };
  return options;
}

// Lines typed on stdin so far (read without blocking); false at end of input.
bool read_typed(std::string& pending, std::vector<std::string>& lines) {
  pollfd p{0, POLLIN, 0};
  while (::poll(&p, 1, 0) > 0) {
    char buf[4096];
    const auto n = ::read(0, buf, sizeof buf);
    if (n <= 0) return false;
    pending.append(buf, static_cast<std::size_t>(n));
    for (std::size_t eol; (eol = pending.find('\n')) != std::string::npos; pending.erase(0, eol + 1))
      lines.push_back(pending.substr(0, eol));
  }
  return true;
}

// Takes `--key-file PATH --key-id ID` out of argv; true if the key was read (or none was given).
bool take_key(int& argc, char** argv, sage::NetworkOptions& options) {
  std::string file, id;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--key-file" || a == "--key-id") && i + 1 < argc) (a == "--key-file" ? file : id) = argv[++i];
    else argv[out++] = argv[i];
  }
  argc = out;
  if (file.empty() && id.empty()) return true;
  auto key = sage::SharedKey::from_file(id.empty() ? "chat" : id, file);
  if (!key) {
    std::fprintf(stderr, "chat: %s\n", key.error().message().c_str());
    return false;
  }
  options.keys = {*key};
  return true;
}

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines show up at once, even through a pipe
  sage::NetworkOptions options;
  if (!take_key(argc, argv, options)) return 64;
  const std::string mode = argc > 1 ? argv[1] : "demo";
  if (mode == "server" && (argc == 3 || argc == 4)) {
    sage::Manager mgr;
    mgr.enable_network(server_options(options));
    mgr.register_messages(chat::chat_wire_messages{});
    Server server(mgr);
    server.log = true;
    mgr.register_actor(server);
    std::printf("listening on port %u\n", mgr.listen(argc == 4 ? argv[3] : "0.0.0.0", std::stoi(argv[2])).port);
    for (;;) {
      try {
        mgr.tick();
      } catch (const sage::group_error& e) {  // how a lost remote group is reported; admit lets none in
        std::printf("group lost: %s\n", printable(e.what(), 500).c_str());
      }
      mgr.wait_for_next_tick(30ms);
    }
  } else if (mode == "client" && argc == 5) {
    sage::Manager mgr;
    mgr.enable_network(options);
    mgr.register_messages(chat::chat_wire_messages{});
    Client me;
    me.me = argv[4];
    mgr.register_actor(me);
    const sage::Sender server = mgr.connect(argv[2], static_cast<std::uint16_t>(std::stoi(argv[3])));  // or network_error
    std::string pending;
    std::vector<std::string> typed{};
    bool typing = true;
    auto send = [&](const auto& msg) {
      if (auto r = mgr.try_send_message(msg, server); !r && !me.gone) me.gone = "cannot send: " + r.error().message();
    };
    send(chat::Join{argv[4]});
    // In, or refused, before anything is typed: a client that never got in says so.
    for (auto end = std::chrono::steady_clock::now() + 10s; !me.connected && !me.gone;) {
      if (std::chrono::steady_clock::now() > end) me.gone = "no handshake from the server within 10 s";
      mgr.tick();
      mgr.wait_for_next_tick(30ms);
    }
    while (typing && !me.gone) {
      typing = read_typed(pending, typed);
      for (auto& t : typed) send(chat::Say{t});
      typed.clear();
      mgr.tick();
      mgr.wait_for_next_tick(30ms);
    }
    mgr.tick();  // flush the last lines
    if (me.gone) {
      std::fprintf(stderr, "chat: %s\n", printable(*me.gone, 1000).c_str());
      return 1;
    }
  } else if (mode == "demo") {
    sage::Manager hub, ann_mgr, bob_mgr;
    for (auto* m : {&hub, &ann_mgr, &bob_mgr}) m->register_messages(chat::chat_wire_messages{});
    Server server(hub);
    Client ann, bob;
    ann.me = "ann", bob.me = "bob";
    hub.register_actor(server), ann_mgr.register_actor(ann), bob_mgr.register_actor(bob);
    hub.enable_network(server_options({}));
    const auto port = hub.listen("127.0.0.1", 0).port;
    auto until = [&](auto done) {
      for (auto end = std::chrono::steady_clock::now() + 10s; !done() && std::chrono::steady_clock::now() < end;)
        for (auto* m : {&hub, &ann_mgr, &bob_mgr}) m->tick(), m->wait_for_next_tick(1ms);
    };
    ann_mgr.connect("127.0.0.1", port), ann_mgr.send_message(chat::Join{"ann"});
    until([&] { return server.nicks.size() == 1; });
    bob_mgr.connect("127.0.0.1", port), bob_mgr.send_message(chat::Join{"bob"});
    until([&] { return ann.seen == 1; });  // ann sees "bob joined"
    ann_mgr.send_message(chat::Say{"hello bob"});
    until([&] { return bob.seen == 1; });
    bob_mgr.send_message(chat::Say{"hi ann, bye"});
    until([&] { return ann.seen == 2; });
    bob_mgr.disconnect();
    until([&] { return ann.seen == 3; });  // "bob left"
    std::printf("chat demo done\n");
  } else {
    std::fprintf(stderr, "usage: chat server PORT [ADDRESS] | chat client HOST PORT NICK | chat demo"
                         " [--key-file PATH --key-id ID]\n");
    return 64;
  }
} catch (const std::exception& e) {  // e.g. connect() refused: the reason, not std::terminate
  std::fprintf(stderr, "chat: %s\n", e.what());
  return 1;
}

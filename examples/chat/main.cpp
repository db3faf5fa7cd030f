// A chat over TCP: the server relays each client's lines to the other clients with the sender's nick.
//   chat server 5555 [ADDRESS]       in one terminal (listens on ADDRESS, default 0.0.0.0; port 0: any)
//   chat client 127.0.0.1 5555 ann   in others: type lines, Ctrl-D leaves
//   chat demo                        a scripted server and two clients in one process (the test)
// Server and client take `--key-file PATH --key-id ID` (anywhere): shared-key mode (docs/security.md
// "Shared keys"), PATH holding the key's 64 hex digits (as SharedKey::hex() writes them, or
// `python3 -c "import secrets; print(secrets.token_hex(32))"`); both ends need the same key.
#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chat.sage.hpp"
#include "sage/manager.hpp"

using namespace std::chrono_literals;

struct Server : sage::Actor<Server, sage::subscribes<chat::Join, chat::Say, sage::PeerDisconnected>> {
  sage::Manager& mgr;
  std::map<std::uint32_t, std::string> nicks;  // by peer index
  bool log = false;                             // `chat server` prints who comes and goes
  explicit Server(sage::Manager& m) : mgr(m) {}
  bool handle(const chat::Join& j, const sage::Sender& from) {
    nicks[from.index] = j.nick;
    if (log) std::printf("%s joined\n", j.nick.c_str());
    relay(from, chat::Line{"server", j.nick + " joined"});
    return true;
  }
  bool handle(const chat::Say& s, const sage::Sender& from) {
    relay(from, chat::Line{nicks[from.index], s.text});
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
        std::printf("cannot send to %s: %s\n", nick.c_str(), r.error().message().c_str());
    }
  }
};

struct Client : sage::Actor<Client, sage::subscribes<chat::Line>> {
  std::string me;
  int seen = 0;
  bool handle(const chat::Line& l) {
    std::printf("[%s sees] <%s> %s\n", me.c_str(), l.nick.c_str(), l.text.c_str());
    ++seen;
    return true;
  }
};

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
    mgr.enable_network(options);
    mgr.register_messages(chat::chat_wire_messages{});
    Server server(mgr);
    server.log = true;
    mgr.register_actor(server);
    std::printf("listening on port %u\n", mgr.listen(argc == 4 ? argv[3] : "0.0.0.0", std::stoi(argv[2])).port);
    mgr.run(30ms, [] { return false; });
  } else if (mode == "client" && argc == 5) {
    sage::Manager mgr;
    mgr.enable_network(options);
    mgr.register_messages(chat::chat_wire_messages{});
    Client me;
    me.me = argv[4];
    mgr.register_actor(me);
    mgr.connect(argv[2], static_cast<std::uint16_t>(std::stoi(argv[3])));
    mgr.send_message(chat::Join{argv[4]});
    std::mutex mu;  // stdin is read on a thread; the manager's thread sends
    std::vector<std::string> typed;
    bool eof = false;
    std::thread reader([&] {
      for (std::string line; std::getline(std::cin, line);) {
        std::scoped_lock lk(mu);
        typed.push_back(line);
      }
      std::scoped_lock lk(mu);
      eof = true;
    });
    mgr.run(30ms, [&] {
      std::scoped_lock lk(mu);
      for (auto& t : typed) mgr.send_message(chat::Say{t});
      typed.clear();
      return eof;
    });
    mgr.tick();  // flush the last lines
    reader.join();
  } else if (mode == "demo") {
    sage::Manager hub, ann_mgr, bob_mgr;
    for (auto* m : {&hub, &ann_mgr, &bob_mgr}) m->register_messages(chat::chat_wire_messages{});
    Server server(hub);
    Client ann, bob;
    ann.me = "ann", bob.me = "bob";
    hub.register_actor(server), ann_mgr.register_actor(ann), bob_mgr.register_actor(bob);
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

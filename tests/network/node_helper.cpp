// The child processes of the network tests (spawned, not forked: the tests already run nng).
//   node_helper group <port> <name>   a remote group answering pysage's SYN / SYN-ACK / ACK
//   node_helper relay <port> <name>   a remote group running nt::Relayer (relayer.hpp)
//   node_helper client <port>         a client that sends numbered messages until it is killed
#include <cstdio>
#include <cstdlib>
#include <string>

#include "nettest.sage.hpp"
#include "relayer.hpp"
#include "sage/remote_group.hpp"

using namespace std::chrono_literals;

// The child side of pysage's test: SYN from the main group -> SYN-ACK; ACK -> ACK back (done).
struct Handshaker : sage::Actor<Handshaker, sage::subscribes<nettest::Syn, nettest::Ack>> {
  explicit Handshaker(sage::Manager& m) : mgr(m) {}
  sage::Manager& mgr;
  bool handle(const nettest::Syn& m, const sage::Sender& from) {
    mgr.queue_message_to_group(from, nettest::SynAck{std::string(mgr.group_name()) + " got " + m.from});
    return true;
  }
  bool handle(const nettest::Ack& m, const sage::Sender&) {
    mgr.queue_message_to_group(sage::main_group, nettest::Ack{"ack " + m.from});
    return true;
  }
};

int main(int argc, char** argv) {
  if (argc < 3) return 64;
  const std::string mode = argv[1];
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  if (mode == "group" && argc == 4) {
    sage::RemoteGroupOptions o;
    o.interval = 5ms;
    return sage::run_remote_group<Handshaker>(nettest::nettest_wire_messages{}, "127.0.0.1", port, argv[3], o);
  }
  if (mode == "relay" && argc == 4) {
    sage::RemoteGroupOptions o;
    o.interval = 5ms;
    return sage::run_remote_group<nt::Relayer>(nettest::nettest_wire_messages{}, "127.0.0.1", port, argv[3], o);
  }
  if (mode == "client") {
    sage::Manager m;
    m.register_messages(nettest::nettest_wire_messages{});
    m.connect("127.0.0.1", port);
    for (std::uint64_t n = 0;; ++n) {
      (void)m.try_send_message(nettest::Seq{1, n, {}}, m.peers().front().peer);
      m.tick();
      m.wait_for_next_tick(1ms);
    }
  }
  return 64;
}

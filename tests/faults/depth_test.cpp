// Message depth (issue 13, item 6): what sage accepts at send, every receiver accepts. A message
// nested deeper than sage::wire::max_message_depth is refused at the send call naming the type
// and the limit; one exactly at the limit crosses a process group, a TCP connection and a datagram
// peer intact; a too-deep record that does arrive (a sender that skipped the check) is dropped as
// bad input, counted and named, without a crash. docs/reliability.md lists these tests.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "depth.sage.hpp"
#include "sage/datagram.hpp"
#include "sage/manager.hpp"
#include "waiting.hpp"

using namespace std::chrono_literals;
using sage::Manager;
using sage::test_support::tick_until;

namespace {

// A chain `depth` tables deep (the root counts 1).
depth::Chain chain(int depth) {
  depth::Chain root{.level = depth};
  for (int level = depth - 1; level >= 1; --level) {
    depth::Chain outer{.level = level};
    outer.next = std::move(root);
    root = std::move(outer);
  }
  return root;
}

int depth_of(const depth::Chain& c) {
  int d = 1;
  for (const depth::Chain* p = &c; p->next; p = &*p->next) ++d;
  return d;
}

// A sender that skips the send-side check: the same wire type, claiming to nest 1 table deep.
struct UncheckedChain : depth::Chain {
  static constexpr int max_depth = 1;
  UncheckedChain() = default;
  explicit UncheckedChain(depth::Chain c) : depth::Chain(std::move(c)) {}
  static sage::Result<UncheckedChain> decode(std::span<const std::byte> bytes) {
    auto r = depth::Chain::decode(bytes);
    if (!r) return r.error();
    return UncheckedChain(std::move(*r));
  }
};

struct Chains : sage::Actor<Chains, sage::subscribes<depth::Chain>> {
  std::vector<depth::Chain> got;
  bool handle(const depth::Chain& m) {
    got.push_back(m);
    return true;
  }
};

// In a child: sends every Chain back where it came from.
struct Echo : sage::Actor<Echo, sage::subscribes<depth::Chain>> {
  bool handle(const depth::Chain& m, const sage::Sender& from) {
    manager()->queue_message_to_group(from, m);
    return true;
  }
};

bool tick_both_until(Manager& a, Manager& b, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + sage::test_support::default_deadline;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    a.tick();
    b.tick();
    a.wait_for_next_tick(2ms);
  }
  return done();
}

struct Duo {
  Manager server, client;
  Chains at_server;
  explicit Duo() {
    server.register_messages(depth::depth_wire_messages{});
    client.register_messages(depth::depth_wire_messages{});
    server.register_actor(at_server);
    const auto port = server.listen("127.0.0.1", 0).port;
    client.connect("127.0.0.1", port);
    REQUIRE(tick_both_until(server, client, [&] { return server.network_stats().peers_connected == 1; }));
  }
};

}  // namespace

TEST_CASE("the generated max_depth is the schema's nesting depth, -1 for a table that contains itself") {
  static_assert(depth::Chain::max_depth == -1);
  static_assert(depth::Shallow::max_depth == 3);
  static_assert(sage::detail::may_nest_too_deep<depth::Chain>());
  static_assert(!sage::detail::may_nest_too_deep<depth::Shallow>());
  CHECK(sage::wire::max_message_depth == 64);
}

TEST_CASE("a message exactly max_message_depth tables deep decodes, one table deeper is refused by the decoder") {
  const auto at_limit = chain(64).to_bytes();
  auto ok = depth::Chain::decode(at_limit);
  REQUIRE(ok);
  CHECK(depth_of(*ok) == 64);
  CHECK(*ok == chain(64));
  const auto over = chain(65).to_bytes();
  auto bad = depth::Chain::decode(over);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == sage::Errc::verify_failed);
  CHECK(bad.error().detail.find("deeper than 64 tables") != std::string::npos);
}

TEST_CASE("a 70-deep message to a process group is refused at send naming the type and the limit, "
          "a 64-deep one comes back intact") {
  Manager mgr;
  mgr.enable_groups();
  mgr.register_messages(depth::depth_wire_messages{});
  Chains back;
  mgr.register_actor(back);
  mgr.add_process_group<Echo>("echo");

  auto refused = mgr.try_queue_message_to_group("echo", chain(70));
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == sage::Errc::too_deep);
  CHECK(refused.error().detail.find("depth.Chain") != std::string::npos);
  CHECK(refused.error().detail.find("64") != std::string::npos);
  CHECK_THROWS_WITH_AS(mgr.queue_message_to_group("echo", chain(65)), doctest::Contains("depth.Chain"), sage::send_error);
  CHECK(mgr.group_stats().records_sent == 0);

  mgr.queue_message_to_group("echo", chain(64));
  REQUIRE(tick_until(mgr, [&] { return !back.got.empty(); }));
  CHECK(depth_of(back.got.front()) == 64);
  CHECK(back.got.front() == chain(64));
  CHECK(mgr.group_stats().bad_input == 0);
}

TEST_CASE("a 70-deep message over TCP is refused at send naming the type and the limit, a 64-deep one arrives intact") {
  Duo d;
  auto refused = d.client.try_send_message(chain(70), d.client.peers().front().peer);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == sage::Errc::too_deep);
  CHECK(refused.error().message().find("depth.Chain nests more than 64 tables deep") != std::string::npos);
  CHECK_THROWS_WITH_AS(d.client.send_message(chain(70)), doctest::Contains("sage::wire::max_message_depth"),
                       sage::send_error);
  CHECK_THROWS_AS(d.client.broadcast_message(chain(70)), sage::send_error);

  d.client.send_message(chain(64));
  REQUIRE(tick_both_until(d.server, d.client, [&] { return !d.at_server.got.empty(); }));
  CHECK(d.at_server.got.front() == chain(64));
  CHECK(d.server.network_stats().bad_input == 0);
  CHECK(d.client.network_stats().records_sent == 1);
}

TEST_CASE("a too-deep record that arrives anyway is dropped as bad input naming the type, and nothing crashes") {
  Duo d;
  // A client whose type skips the check (it claims depth 1); the server's decoder refuses the record.
  Manager liar;
  liar.register_messages(sage::type_list<UncheckedChain>{});
  liar.connect("127.0.0.1", d.server.listening()->port);
  REQUIRE(tick_both_until(d.server, liar, [&] { return liar.network_stats().peers_connected == 1; }));
  liar.send_message(UncheckedChain(chain(70)));
  REQUIRE(tick_both_until(d.server, liar, [&] { return d.server.network_stats().bad_input == 1; }));
  CHECK(d.server.network_stats().last_bad_input.find("depth.Chain") != std::string::npos);
  CHECK(d.at_server.got.empty());
  // The server still works: its other client gets a 64-deep message through.
  d.client.send_message(chain(64));
  REQUIRE(tick_both_until(d.server, d.client, [&] { return !d.at_server.got.empty(); }));
  CHECK(d.at_server.got.front() == chain(64));
}

TEST_CASE("queue_message and trigger deliver a 70-deep message locally as it is: nothing is encoded") {
  Manager mgr;
  Chains got;
  mgr.register_actor(got);
  mgr.queue_message(chain(70));
  mgr.tick();
  CHECK(mgr.trigger(chain(70)));
  REQUIRE(got.got.size() == 2);
  CHECK(depth_of(got.got[0]) == 70);
  CHECK(got.got[1] == chain(70));
}

TEST_CASE("a 70-deep message over a datagram peer is refused at send in every delivery mode, a 64-deep one arrives") {
  Manager server, client;
  Chains at_server;
  server.register_messages(depth::depth_wire_messages{});
  client.register_messages(depth::depth_wire_messages{});
  server.register_actor(at_server);
  const auto port = server.listen_datagram("127.0.0.1", 0).port;
  const auto peer = client.connect_datagram("127.0.0.1", port);
  REQUIRE(tick_both_until(server, client, [&] {
    return server.datagram_stats().peers_connected == 1 && client.datagram_stats().peers_connected == 1;
  }));

  for (const auto delivery : {sage::Delivery{}, sage::Delivery::sequenced(), sage::Delivery::unsequenced()}) {
    auto refused = client.try_send_message(chain(70), peer, delivery);
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == sage::Errc::too_deep);
    CHECK(refused.error().detail.find("depth.Chain nests more than 64 tables deep") != std::string::npos);
    CHECK_THROWS_WITH_AS(client.broadcast_message(chain(70), delivery), doctest::Contains("sage::wire::max_message_depth"),
                         sage::send_error);
  }
  CHECK(client.datagram_stats().records_sent == 0);

  client.send_message(chain(64), peer, sage::Delivery{});
  REQUIRE(tick_both_until(server, client, [&] { return !at_server.got.empty(); }));
  CHECK(at_server.got.front() == chain(64));
  CHECK(server.datagram_stats().bad_input == 0);
}

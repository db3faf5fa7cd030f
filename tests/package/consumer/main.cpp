// Encodes and decodes one generated message; prints what it got and the runtime's version.
#include <iostream>

#include "common.sage.hpp"  // generated although only orders.fbs (which includes it) is listed
#include "orders.sage.hpp"
#include "sage/version.hpp"

static_assert(sage::WireMessage<diner::Order>);
static_assert(!sage::WireMessage<diner::Note>);

int main() {
  const diner::Order order{.dish = "pancakes", .count = 3, .price = diner::Price{}};
  auto back = diner::Order::decode(order.to_bytes());
  if (!back || !(*back == order)) {
    std::cerr << "round trip failed\n";
    return 1;
  }
  std::cout << "consumer ok: " << back->count << " " << back->dish << " at " << back->price->cents
            << " cents, packet_type " << int{diner::Order::packet_type} << ", sage " << sage::version() << "\n";
  return 0;
}

// runtime/groups/child.hpp: a group's child process: its spec, its pump and its loop.
//
// The main group's GroupPump sends a ChildSpec through the fork server; the forked child runs
// ChildPump::child_main(): a Manager of its own, a spoke Channel over its end of the link's
// socketpair (transport/socket_conn.hpp) to the main group (registered as the Directory's hub, so
// every other group is reached through the main group), the default actor, and its tick loop
// until bye, a failure, or the main group's loss.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "channel/channel.hpp"
#include "local/pump.hpp"
#include "sage/groups.hpp"

namespace sage::detail {

// What a child needs to know, as bytes through the fork server. Pointers are valid in the child:
// it is a fork of this program's image.
struct ChildSpec {
  std::string name;
  std::uint32_t index = 0;
  std::string url;
  GroupOptions options;
  ActorFactory factory = nullptr;
  std::vector<WireCodec> codecs;
};
std::vector<std::byte> encode_spec(const ChildSpec& spec);
ChildSpec decode_spec(std::span<const std::byte> bytes);  // throws std::runtime_error if truncated

// The exit status of a child whose GroupOptions::watchdog fired (a tick ran too long).
inline constexpr int watchdog_exit_status = 125;

ConnectionLimits link_limits(const GroupOptions& options);
// The GroupStats of a group pump's channel counters.
GroupStats group_stats(const ChannelCounters& counters);

class ChildPump final : public Pump, private ChannelEvents {
 public:
  // The ChildEntry the fork server runs: the child's whole life. Returns its exit code.
  static int child_main(std::span<const std::byte> args);

  ChildPump(Directory& directory, const ChildSpec& spec);
  Channel& channel() noexcept { return channel_; }
  GroupStats stats() const;
  // Sends `bytes` as one raw transport message to the main group (tests: garbage is survived).
  Result<void> send_raw(std::span<const std::byte> bytes);
  std::string endpoint_url() const;  // the link's URL (tests)

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  Clock::time_point next_deadline() const override;

 private:
  Verdict on_hello(Channel& channel, const protocol::Hello& theirs, const Result<void>& check) override;
  Verdict on_control(Channel& channel, protocol::Control control, std::span<const std::byte> payload) override;

  ChannelCounters counters_;
  Channel channel_;
  bool bye_received_ = false;
  bool error_acked_ = false;
};

}  // namespace sage::detail

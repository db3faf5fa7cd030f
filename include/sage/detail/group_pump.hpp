// sage/detail/group_pump.hpp: the Pump that connects a manager to its process groups (internal).
//
// One GroupPump per manager that uses groups. In the main group it owns one Link per child (the
// main listens, the child dials), the fork server connection and the IPC directory; in a child it
// owns the one Link to the main group. Every member runs on the manager's thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "sage/detail/process.hpp"
#include "sage/detail/protocol.hpp"
#include "sage/detail/pump.hpp"
#include "sage/detail/transport.hpp"
#include "sage/groups.hpp"

namespace sage::detail {

class GroupPump final : public Pump {
 public:
  enum class Role { main, child };

  // Main group: starts the fork server (throws usage_error if nng already ran in this process)
  // and creates the private IPC directory.
  explicit GroupPump(const GroupsOptions& options);
  // Tells every child to finish (bye), waits briefly, kills what is left, removes the directory.
  ~GroupPump() override;

  // The ChildEntry the fork server runs: a child's whole life (manager, default actor, ticks).
  static int child_main(std::span<const std::byte> args);

  Role role() const noexcept { return role_; }
  // Registers a wire message type for decoding. Throws packet_type_conflict if another type has
  // the same packet_type.
  void register_codec(const WireCodec& codec);

  void add_group(std::string_view name, ActorFactory factory, const GroupOptions& options);
  void remove_group(Manager& manager, std::string_view name);
  void clear_groups(Manager& manager);
  std::vector<std::string> groups() const;
  bool has_group(std::string_view name) const;
  bool is_self(std::string_view name) const noexcept;
  std::string_view self_name() const noexcept { return self_name_; }
  std::uint32_t self_index() const noexcept { return self_index_; }
  pid_t pid_of(std::string_view name) const;
  std::string endpoint_of(std::string_view name) const;
  const std::string& ipc_dir() const noexcept;
  // The URL of the link to the main group (child role; tests).
  std::string endpoint_url() const;

  // The group a Sender names ("" if it names none).
  std::string_view name_of(Sender sender) const;
  // The Sender of a group name, as queue_message_from() uses it.
  Sender sender_of(std::string_view name);

  flatbuffers::FlatBufferBuilder& builder() noexcept { return builder_; }
  // Appends one record for `group` to this tick's batch (encoded payload of `codec`'s type).
  Result<void> queue_record(std::string_view group, const WireCodec& codec, std::span<const std::byte> payload);
  // Main group: appends a record relayed from group `origin` (a remote group node) to child `to`,
  // tagged with a `from` record. peer_gone if there is no such child (or it failed).
  Result<void> relay_record(std::string_view to, std::uint8_t packet_type, std::span<const std::byte> payload,
                            std::string_view origin);
  // Sends `bytes` as one raw transport message to `group` (tests: garbage must be survived).
  Result<void> send_raw(std::string_view group, std::span<const std::byte> bytes);

  const GroupStats& stats() const noexcept { return stats_; }

  void poll(Manager& manager) override;
  void flush(Manager& manager) override;
  bool wait_until(std::chrono::steady_clock::time_point deadline) override;

 private:
  struct Peer;
  struct ChildState;
  GroupPump(Role role, std::string self_name, std::uint32_t self_index);

  Peer* find(std::string_view name) const noexcept;
  Peer* find(std::uint32_t index) const noexcept;
  void spawn(Peer& peer);
  Result<void> append(Peer& peer, std::uint8_t packet_type, std::span<const std::byte> payload, std::string_view tag);
  void append_control(Peer& peer, protocol::Control c, std::span<const std::byte> payload = {});
  Result<void> push_batch(Peer& peer);
  void receive_from(Manager& manager, Peer& peer);
  void handle_message(Manager& manager, Peer& peer, std::span<const std::byte> body);
  void bad_input(Peer& peer, const Error& e);
  protocol::Hello my_hello() const;
  void check_exit(Peer& peer);
  void fail(Peer& peer, std::string reason);
  void teardown(Peer& peer, bool kill_child);
  void erase(Peer& peer);

  Role role_;
  std::string self_name_;
  std::uint32_t self_index_ = 0;
  std::shared_ptr<Waker> waker_ = std::make_shared<Waker>();
  std::optional<IpcDir> dir_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::vector<std::string> names_;  // names_[i] is the group with Sender::group(i); "" = free
  std::vector<WireCodec> codecs_;   // indexed by packet_type (256 entries), decode == nullptr if none
  std::vector<group_error> failures_;  // detected, not yet thrown
  std::uint64_t next_endpoint_ = 1;
  flatbuffers::FlatBufferBuilder builder_{1024};
  GroupStats stats_;
  std::unique_ptr<ChildState> child_;  // child role only
};

}  // namespace sage::detail

// Process groups, the main group's side: the GroupPump (runtime/groups/group_pump.hpp).
#include "groups/group_pump.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "groups/child.hpp"
#include "local/manager_access.hpp"
#include "runtime_assert.hpp"
#include "transport/socket_conn.hpp"

namespace sage::detail {

using namespace std::chrono_literals;
namespace proto = protocol;

namespace {

IpcDir make_ipc_dir(const GroupsOptions& options) {
  auto dir = IpcDir::create(options.ipc_parent_dir);
  if (!dir) throw spawn_error("(IPC directory)", dir.error());
  return std::move(*dir);
}

std::string_view kind_text(proto::ErrorKind k) {
  switch (k) {
    case proto::ErrorKind::constructor_threw: return "default actor's constructor threw: ";
    case proto::ErrorKind::tick_threw: return "exception in tick: ";
    case proto::ErrorKind::handshake_refused: return "handshake refused: ";
    case proto::ErrorKind::other:
    case proto::ErrorKind::full:  // network only: a listener at max_peers
      break;
  }
  return "";
}

}  // namespace

struct GroupPump::Child final : ChannelEvents {
  enum class State : std::uint8_t { starting, running, leaving, failed, waiting };

  Child(GroupPump& pump, std::string name, std::uint32_t index, const GroupOptions& options, ActorFactory factory)
      : pump(pump),
        name(name),
        index(index),
        options(options),
        factory(factory),
        channel({.position = Channel::Position::hub,
                 .peer_name = name,
                 .label = "group '" + name + "'",
                 .self_label = "the main group",
                 .sender = Sender::group(index),
                 .drop_on_bad_input = false,
                 .send_buffer_limit = options.send_buffer_limit,
                 .options_name = "GroupOptions"},
                pump.directory_, *this, pump.counters_) {}

  Verdict on_hello(Channel&, const proto::Hello&, const Result<void>& check) override {
    if (!check) pending_failure = check.error().message();  // acted on in poll(), not while reading
    else if (state == State::starting) state = State::running;
    return std::nullopt;
  }
  Verdict on_control(Channel&, proto::Control control, std::span<const std::byte> payload) override {
    switch (control) {
      case proto::Control::bye_ack:
        bye_acked = true;
        return std::nullopt;
      case proto::Control::error: {
        auto e = proto::decode_error(payload);
        if (!e) return Stop{e.error(), true};
        error_text = std::string(kind_text(e->kind)) + e->text;
        channel.append_control(proto::Control::error_ack);
        (void)channel.flush();
        return std::nullopt;
      }
      default:
        return Stop{Error{Errc::malformed, "control packet_type " + std::to_string(proto::code(control)) +
                                               " is not for the main group"},
                    true};
    }
  }

  GroupPump& pump;
  std::string name;
  std::uint32_t index;
  GroupOptions options;
  ActorFactory factory;
  Channel channel;
  State state = State::starting;
  pid_t pid = -1;
  std::string endpoint;  // the link's label: "<ipc dir>/g<N>" (a socketpair, no file)
  std::string error_text;  // from an error report
  bool bye_acked = false;
  std::optional<int> exit_status;
  std::string pending_failure;  // detected while reading; fail() runs after
  std::vector<Clock::time_point> restarts;
  Clock::time_point restart_at{};  // State::waiting: when to start it again
  std::uint16_t generation = 0;    // the incarnation: restarts so far (Sender::generation)
};

GroupPump::GroupPump(Manager& manager, const GroupsOptions& options)
    : manager_(manager),
      waker_(ManagerAccess::waker(manager)),
      directory_(ManagerAccess::directory(manager)),
      dir_((ForkServer::instance(), make_ipc_dir(options))),
      max_groups_(options.max_groups) {
  waker_.watch(ForkServer::instance().fd());  // exit reports wake the manager
}

GroupPump::~GroupPump() {
  // Ask every child to finish and wait (2 s in all) until it answered, without decoding anything:
  // the manager is going away. A child leaves once its link closes (after its bye_ack was read),
  // so the links are closed before waiting for the exits; what is left then is killed.
  for (auto& c : children_) {
    if (!c->channel.connection() || c->exit_status || c->state == Child::State::failed) continue;
    c->channel.append_control(proto::Control::bye);
    (void)c->channel.flush();
    c->state = Child::State::leaving;
  }
  const auto deadline = Clock::now() + 2s;
  auto answered = [](Child& c) {
    Connection* conn = c.channel.connection();
    if (!conn || c.bye_acked || conn->failure()) return true;
    conn->receive(SIZE_MAX, [&](std::span<const std::byte> body) {
      (void)wire::for_each_record(body, [&](const wire::Record& rec) {
        if (rec.packet_type == proto::code(proto::Control::bye_ack)) c.bye_acked = true;
      });
    });
    return c.bye_acked;
  };
  for (;;) {
    bool all = true;
    for (auto& c : children_) all = answered(*c) && all;
    if (all || Clock::now() >= deadline) break;
    waker_.wait_nested(std::min(deadline, Clock::now() + 50ms));
  }
  for (auto& c : children_) c->channel.detach();  // the children see their link close and exit
  for (auto& c : children_) {
    if (c->pid <= 0 || c->exit_status) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    c->exit_status = ForkServer::instance().take_exit(c->pid, static_cast<int>(std::max<long long>(left, 1)));
  }
  for (auto& c : children_) {
    teardown(*c, true);
    directory_.remove_group(c->name);  // no route may outlive its channel
  }
  if (!fork_server_lost_) waker_.unwatch(ForkServer::instance().fd());
}

GroupPump::Child* GroupPump::find(std::string_view name) const noexcept {
  for (auto& c : children_)
    if (c->name == name) return c.get();
  return nullptr;
}

std::vector<std::string> GroupPump::groups() const {
  std::vector<std::string> out;
  for (auto& c : children_) out.push_back(c->name);
  return out;
}

pid_t GroupPump::pid_of(std::string_view name) const {
  if (auto* c = find(name)) return c->pid;
  throw no_such_group(name);
}

std::string GroupPump::endpoint_of(std::string_view name) const {
  if (auto* c = find(name)) return c->endpoint;
  throw no_such_group(name);
}

GroupStats GroupPump::stats() const {
  GroupStats s = group_stats(counters_);
  for (auto& c : children_)
    if (const Connection* conn = c->channel.connection()) s.receive_buffered_bytes += conn->received_bytes();
  return s;
}

// ---- starting and stopping children ----

void GroupPump::add_group(std::string_view name, ActorFactory factory, const GroupOptions& options) {
  if (name.empty() || name.size() > proto::max_group_name || name == main_group)
    throw usage_error("sage: a group name must have 1.." + std::to_string(proto::max_group_name) +
                      " bytes and not be sage::main_group");
  if (directory_.route(name).kind != Route::Kind::none) throw group_exists(name);
  if (max_groups_ != 0 && children_.size() >= max_groups_)
    throw spawn_error(std::string(name), Error{Errc::io_error, std::to_string(children_.size()) +
                                                                  " groups exist, the limit is " +
                                                                  std::to_string(max_groups_) +
                                                                  " (GroupsOptions::max_groups)"});
  const std::uint32_t index = directory_.add_group(name);
  auto owned = std::make_unique<Child>(*this, std::string(name), index, options, factory);
  Child& c = *owned;
  children_.push_back(std::move(owned));
  directory_.set_route(index, {Route::Kind::child, &c.channel});
  try {
    spawn(c);
  } catch (...) {
    teardown(c, true);
    erase(c);
    throw;
  }
}

void GroupPump::spawn(Child& c) {
  // The link is a Unix socketpair: this end is the Channel's connection, the other end travels
  // with the spawn request to the fork server and on to the child (docs/groups.md "Links").
  c.endpoint = dir_.path() + "/g" + std::to_string(next_endpoint_++);
  auto fds = SocketConn::socket_pair();
  if (!fds) throw spawn_error(c.name, fds.error());
  const int child_end = fds->second;
  auto link = SocketConn::adopt(fds->first, "socketpair " + c.endpoint, link_limits(c.options),
                                ManagerAccess::shared_waker(manager_));
  if (!link) {
    ::close(child_end);
    throw spawn_error(c.name, link.error());
  }
  c.channel.attach(std::move(*link), std::string());
  c.state = Child::State::starting;
  c.bye_acked = false;
  c.error_text.clear();
  c.pending_failure.clear();
  c.exit_status.reset();
  // Our hello goes first on the link; the child reads it when it runs.
  if (auto r = c.channel.flush(); !r) {
    ::close(child_end);
    throw spawn_error(c.name, r.error());
  }

  ChildSpec spec;
  spec.name = c.name;
  spec.index = c.index;
  spec.url = "socketpair " + c.endpoint;
  spec.options = c.options;
  spec.factory = c.factory;
  spec.codecs = directory_.codecs();
  auto pid = ForkServer::instance().spawn(&ChildPump::child_main, encode_spec(spec), child_end);
  ::close(child_end);  // the fork server has its copy (or the spawn failed)
  if (!pid) throw spawn_error(c.name, pid.error());
  c.pid = *pid;
}

void GroupPump::teardown(Child& c, bool kill_child) {
  auto& fs = ForkServer::instance();
  if (kill_child && c.pid > 0 && !c.exit_status) {
    fs.kill(c.pid);  // through the child's pidfd: never a pid sage did not see alive
    c.exit_status = fs.take_exit(c.pid, 10000);  // returns at once if the fork server is gone
  }
  if (c.pid > 0) fs.release(c.pid);
  c.pid = -1;  // released: never signalled again
  c.channel.detach();  // closes the socket
}

void GroupPump::erase(Child& c) {
  directory_.remove_group(c.name);
  std::erase_if(children_, [&](const auto& q) { return q.get() == &c; });
}

void GroupPump::remove_group(std::string_view name) {
  Child* c = find(name);
  if (!c) throw no_such_group(name);
  if (auto e = remove_children({c}); !e.empty()) throw e.front();
}

void GroupPump::clear_groups() {
  std::vector<Child*> all;
  for (auto& c : children_) all.push_back(c.get());
  if (auto e = remove_children(all); !e.empty()) throw e.front();
}

// Removes `list` together: bye to every child first, then one wait for all the answers, then the
// links close and one wait for all the exits. A child that does not answer within its
// shutdown_timeout is killed. Returns a group_error for each child that did not end cleanly.
std::vector<group_error> GroupPump::remove_children(std::vector<Child*> list) {
  auto& fs = ForkServer::instance();
  const auto start = Clock::now();
  struct Leaving {
    Child* c;
    Clock::time_point deadline;
    Clock::time_point grace;  // died without answering: read what is still in flight until then
  };
  std::vector<Leaving> leaving;
  std::vector<Child*> gone;  // waiting for a restart: their failure was reported already
  for (Child* c : list) {
    if (c->state == Child::State::waiting) {
      gone.push_back(c);
      continue;
    }
    if (c->channel.connection() && !c->exit_status) {
      c->channel.append_control(proto::Control::bye);
      (void)c->channel.flush();
      c->state = Child::State::leaving;
    }
    const auto deadline = start + c->options.shutdown_timeout;
    leaving.push_back({c, deadline, deadline});
  }
  for (Child* c : gone) erase(*c);
  // Deliver what each child sent before it answered bye (queued here for the next tick). bye_ack is
  // a child's last record, so once it is read everything before it was read too.
  auto answered = [&](Leaving& l) {
    Child& c = *l.c;
    if (!c.channel.connection() || c.bye_acked) return true;
    if (Clock::now() >= std::min(l.deadline, l.grace)) return true;
    (void)c.channel.receive(manager_);
    if (c.bye_acked) return true;
    if (!c.exit_status) {
      if (auto st = fs.take_exit(c.pid)) {
        c.exit_status = st;
        l.grace = Clock::now() + 500ms;
      }
    }
    return false;
  };
  for (;;) {
    bool all = true;
    auto wake = Clock::time_point::max();
    for (auto& l : leaving) {
      if (answered(l)) continue;
      all = false;
      wake = std::min(wake, std::min(l.deadline, l.grace));
    }
    if (all) break;
    if (!fork_server_lost_) waker_.rearm(fs.fd());
    waker_.wait_nested(std::min(wake, Clock::now() + 50ms));
  }
  // The children wait for their links to close before they exit: nng reports a send as done when
  // the message is queued, not when the peer has it, so leaving earlier could lose the bye_ack
  // and the messages before it. Everything they sent has been read now.
  for (auto& l : leaving) {
    if (l.c->channel.connection()) (void)l.c->channel.receive(manager_);
    l.c->channel.detach();
  }
  for (;;) {
    bool all = true;
    auto wake = Clock::time_point::max();
    for (auto& l : leaving) {
      Child& c = *l.c;
      if (c.exit_status || c.pid <= 0 || Clock::now() >= l.deadline) continue;
      if (auto st = fs.take_exit(c.pid)) {
        c.exit_status = st;
        continue;
      }
      all = false;
      wake = std::min(wake, l.deadline);
    }
    if (all || fs.dead()) break;
    if (!fork_server_lost_) waker_.rearm(fs.fd());
    waker_.wait_nested(std::min(wake, Clock::now() + 50ms));
  }
  std::vector<group_error> errors;
  for (auto& l : leaving) {
    Child& c = *l.c;
    const bool clean = c.bye_acked && c.exit_status && WIFEXITED(*c.exit_status) && WEXITSTATUS(*c.exit_status) == 0;
    if (!clean) {
      std::string reason = c.error_text.empty() ? std::string() : c.error_text + "; ";
      reason += c.exit_status ? describe_wait_status(*c.exit_status) : "did not finish in time and was killed";
      errors.emplace_back(c.name, reason);
    }
    teardown(c, true);
    erase(c);
  }
  return errors;
}

// ---- supervision ----

void GroupPump::fail(Child& c, std::string reason) {
  if (c.state == Child::State::failed) return;
  const bool was_waiting = c.state == Child::State::waiting;  // torn down already
  c.state = Child::State::failed;
  if (!was_waiting) teardown(c, true);
  bool restarted = false;
  const auto now = Clock::now();
  const RestartPolicy& policy = c.options.restart;
  if (policy.mode == RestartPolicy::Mode::on_failure && fork_server_lost_) {
    reason += "; not restarted: the fork server is gone";
  } else if (policy.mode == RestartPolicy::Mode::on_failure) {
    std::erase_if(c.restarts, [&](auto t) { return now - t > policy.window; });
    if (static_cast<int>(c.restarts.size()) < policy.max_restarts) {
      c.restarts.push_back(now);
      // initial_backoff * 2^(n-1) for the n-th restart within the window, capped at max_backoff.
      auto backoff = std::max(policy.initial_backoff, std::chrono::milliseconds(0));
      for (std::size_t i = 1; i < c.restarts.size() && backoff < policy.max_backoff; ++i) backoff *= 2;
      backoff = std::min(backoff, policy.max_backoff);
      c.state = Child::State::waiting;
      c.restart_at = now + backoff;
      restarted = true;
      reason += "; restarting in " + std::to_string(backoff.count()) + " ms";
    } else {
      reason += "; not restarted: " + std::to_string(policy.max_restarts) + " restarts within " +
                std::to_string(policy.window.count()) + " ms";
    }
  }
  // Queued behind what this incarnation sent (read above): dispatched first, then this is thrown.
  ManagerAccess::report_failure(manager_, group_error(c.name, reason, restarted));
  if (!restarted) erase(c);
}

void GroupPump::restart(Child& c) {
  // A new incarnation: its messages carry a new Sender, and a reply to the old one is refused.
  ++c.generation;
  directory_.set_generation(c.index, c.generation);
  c.channel.set_sender(Sender::group(c.index, c.generation));
  try {
    spawn(c);
  } catch (const spawn_error& e) {
    c.state = Child::State::failed;
    teardown(c, true);
    ManagerAccess::report_failure(manager_, group_error(c.name, std::string("restart failed: ") + e.what(), false));
    erase(c);
  }
}

Clock::time_point GroupPump::next_deadline() const {
  auto at = Clock::time_point::max();
  for (auto& c : children_) {
    if (c->state == Child::State::waiting) at = std::min(at, c->restart_at);
    if (c->channel.more_waiting()) return Clock::now();  // a tick's read stopped at its budget
  }
  return at;
}

void GroupPump::check_exit(Child& c) {
  if (c.state == Child::State::failed || c.pid <= 0) return;
  if (!c.pending_failure.empty()) return fail(c, c.pending_failure);
  auto& fs = ForkServer::instance();
  auto st = fs.take_read_exit(c.pid);  // poll() read every report waiting when it began
  Connection* conn = c.channel.connection();
  const bool lost = conn && conn->failure();
  // The connection dropped: the exit report follows within moments; wait a little for the reason.
  if (!st && lost) st = fs.take_exit(c.pid, 2000);
  if (!st && lost && fs.dead()) return;  // no report will come: check_fork_server() says why
  if ((st || lost) && conn) (void)c.channel.receive(manager_);  // everything it sent before (poll's read is budgeted)
  if (!st) {
    if (lost) fail(c, "connection lost");
    return;
  }
  c.exit_status = st;
  std::string reason = c.error_text.empty() ? std::string() : c.error_text + "; ";
  if (c.options.watchdog.count() > 0 && WIFEXITED(*st) && WEXITSTATUS(*st) == watchdog_exit_status)
    reason += "unresponsive: a tick ran longer than the watchdog (" + std::to_string(c.options.watchdog.count()) +
              " ms); ";
  reason += describe_wait_status(*st);
  fail(c, reason);
}

void GroupPump::check_fork_server(Manager& manager) {
  auto& fs = ForkServer::instance();
  if (fork_server_lost_ || !fs.dead()) return;
  // Its socket is at end of file: stop watching it (it would wake every wait) and fail every group
  // now: their processes died with the fork server (PR_SET_PDEATHSIG), nothing can be restarted.
  fork_server_lost_ = true;
  waker_.unwatch(fs.fd());
  std::vector<Child*> all;
  for (auto& c : children_) all.push_back(c.get());
  for (Child* c : all) {
    if (c->state != Child::State::waiting) (void)c->channel.receive(manager);  // what it sent before
    fail(*c, "the fork server (pid " + std::to_string(fs.pid()) + ") died, and the group's process with it");
  }
}

void GroupPump::poll(Manager& manager) {
  auto& fs = ForkServer::instance();
  // Reads every exit report waiting (one recvmsg when there is none); the children's checks below
  // only look at what it read. A report arriving later makes the fork server's fd wake the next
  // wait (it is rearmed below), and that tick reads it.
  check_fork_server(manager);
  // fail() may erase children: walk a snapshot.
  std::vector<Child*> snapshot;
  for (auto& c : children_) snapshot.push_back(c.get());
  const auto now = Clock::now();
  for (Child* c : snapshot) {
    if (std::none_of(children_.begin(), children_.end(), [&](auto& q) { return q.get() == c; })) continue;
    if (c->state == Child::State::waiting) {
      if (now >= c->restart_at) restart(*c);
      continue;
    }
    (void)c->channel.receive_tick(manager);  // group channels count bad input and go on
    check_exit(*c);
  }
  if (!fork_server_lost_) waker_.rearm(fs.fd());
}

void GroupPump::flush(Manager&) {
  for (auto& c : children_)
    if (c->state != Child::State::failed && c->state != Child::State::waiting) (void)c->channel.flush();  // append() checked; a dead link shows in poll()
}

}  // namespace sage::detail

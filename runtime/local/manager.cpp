// The local runtime: Manager and ActorBase (sage/manager.hpp, sage/actor.hpp).
#include "sage/manager.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <utility>

#include "channel/directory.hpp"
#include "local/manager_access.hpp"
#include "local/pump.hpp"
#include "runtime_assert.hpp"
#include "transport/waker.hpp"

namespace sage {
namespace {

// The only process-wide state of the local runtime: counters that keep ids unique in a process.
std::atomic<std::uint64_t> next_actor_serial{1};
std::atomic<std::uint32_t> next_type_index{1};

// Dispatch and update order: higher priority first, then registration order.
bool before(const ActorBase* a, const ActorBase* b) noexcept {
  if (a->priority() != b->priority()) return a->priority() > b->priority();
  return a->id().serial() < b->id().serial();
}

std::string_view last_component(std::string_view name) noexcept {
  const auto dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

template <class V, class P>
void erase_first(V& v, const P& pred) {
  auto it = std::find_if(v.begin(), v.end(), pred);
  if (it != v.end()) v.erase(it);
}

}  // namespace

namespace detail {

std::uint32_t assign_type_index(const MessageType& type) noexcept {
  std::uint32_t expected = 0;
  const std::uint32_t mine = next_type_index.fetch_add(1, std::memory_order_relaxed);
  if (type.index.compare_exchange_strong(expected, mine, std::memory_order_acq_rel, std::memory_order_acquire))
    return mine;
  return expected;  // another thread was first; `mine` stays unused
}

void adopt_task(ActorBase& actor, Task task) {
  Task::Handle h = task.release();
  if (h.done()) {  // finished (or threw) without suspending
    std::exception_ptr error = h.promise().error;
    h.destroy();
    if (error) std::rethrow_exception(error);
    return;
  }
  Manager* m = actor.manager();
  if (!m) {  // the handler unregistered its own actor before suspending
    h.destroy();
    return;
  }
  try {
    m->coroutines_.push_back({h, &actor, m->tick_count_});
  } catch (...) {
    h.destroy();
    throw;
  }
}

}  // namespace detail

// ---- ActorBase ----

ActorBase::~ActorBase() {
  if (manager_) manager_->unregister_actor(*this);
}

void ActorBase::set_priority(int priority) {
  priority_ = priority;
  if (manager_) manager_->priority_changed();
}

// ---- Manager: lifetime and actors ----

Manager::Manager(ManagerOptions options)
    : group_(options.group),
      waker_(std::make_shared<detail::Waker>()),
      directory_(std::make_unique<detail::Directory>()) {}

Manager::~Manager() {
  pumps_.clear();  // before the directory: channels refer to it
  for (Coroutine& c : coroutines_) c.handle.destroy();
  coroutines_.clear();
  dispatching_.clear(pool_);
  incoming_.clear(pool_);
  for (auto& [id, actor] : by_id_) {
    actor->manager_ = nullptr;
    actor->id_ = ActorId{};
    actor->name_.clear();
    actor->active_ = false;
  }
}

ActorId Manager::register_actor(ActorBase& actor, std::string_view name) {
  if (actor.manager_) throw actor_already_registered(actor.id_);
  if (!name.empty() && by_name_.contains(name)) throw duplicate_actor_name(name);
  for (const detail::Subscription& s : actor.subscriptions_) {
    if (s.type) note_type(*s.type);
    if (s.wire) register_wire(*s.wire);  // may throw packet_type_conflict; nothing is registered yet
  }
  const ActorId id = ActorId::make(group_, next_actor_serial.fetch_add(1, std::memory_order_relaxed));
  std::string stored_name(name);
  by_id_.emplace(id, &actor);
  try {
    if (!name.empty()) by_name_.emplace(stored_name, &actor);
    if (depth_ > 0) pending_registrations_.reserve(pending_registrations_.size() + 1);
  } catch (...) {
    by_id_.erase(id);
    throw;
  }
  actor.manager_ = this;
  actor.id_ = id;
  actor.name_ = std::move(stored_name);
  if (depth_ == 0) {
    activate(actor);
  } else {
    pending_registrations_.push_back(&actor);
    unsettled_ = true;
  }
  return id;
}

void Manager::unregister_actor(ActorBase& actor) {
  if (actor.manager_ != this) throw unknown_actor(actor.id_);
  deactivate(actor);
  for (Coroutine& c : coroutines_) {
    if (c.owner == &actor) {
      c.owner = nullptr;
      unsettled_ = true;
    }
  }
  by_id_.erase(actor.id_);
  if (!actor.name_.empty()) by_name_.erase(actor.name_);
  actor.manager_ = nullptr;
  actor.id_ = ActorId{};
  actor.name_.clear();
  if (depth_ == 0 && unsettled_) settle();
}

void Manager::unregister_actor(ActorId id) {
  ActorBase* actor = find(id);
  if (!actor) throw unknown_actor(id);
  unregister_actor(*actor);
}

ActorBase* Manager::find(std::string_view name) const noexcept {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

ActorBase* Manager::find(ActorId id) const noexcept {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

ActorBase& Manager::get_actor(ActorId id) const {
  ActorBase* actor = find(id);
  if (!actor) throw unknown_actor(id);
  return *actor;
}

std::vector<ActorBase*> Manager::actors() const {
  std::vector<ActorBase*> out;
  out.reserve(by_id_.size());
  for (const auto& [id, actor] : by_id_) out.push_back(actor);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->id().serial() < b->id().serial(); });
  return out;
}

void Manager::activate(ActorBase& actor) {
  ActorBase* a = &actor;
  for (const detail::Subscription& s : actor.subscriptions_) {
    if (!s.type) continue;
    auto& subs = types_[detail::type_index(*s.type)]->subscribers;
    auto at = std::upper_bound(subs.begin(), subs.end(), a,
                               [](const ActorBase* x, const Subscriber& e) { return before(x, e.actor); });
    subs.insert(at, Subscriber{a, s.deliver});
  }
  if (actor.observe_) {
    auto at = std::upper_bound(observers_.begin(), observers_.end(), a,
                               [](const ActorBase* x, const Observer& e) { return before(x, e.actor); });
    observers_.insert(at, Observer{a, actor.observe_});
  }
  update_order_.insert(std::upper_bound(update_order_.begin(), update_order_.end(), a, before), a);
  actor.active_ = true;
}

void Manager::deactivate(ActorBase& actor) {
  ActorBase* a = &actor;
  if (!actor.active_) {
    erase_first(pending_registrations_, [a](const ActorBase* p) { return p == a; });
    return;
  }
  // During a dispatch the lists are being iterated: null the entries, remove them in settle().
  const bool now = depth_ == 0;
  auto remove = [&](auto& list, auto is_mine, auto clear) {
    auto it = std::find_if(list.begin(), list.end(), is_mine);
    if (it == list.end()) return;
    if (now)
      list.erase(it);
    else
      clear(*it);
  };
  for (const detail::Subscription& s : actor.subscriptions_) {
    if (!s.type) continue;
    remove(types_[detail::type_index(*s.type)]->subscribers, [a](const Subscriber& e) { return e.actor == a; },
           [](Subscriber& e) { e.actor = nullptr; });
  }
  if (actor.observe_)
    remove(observers_, [a](const Observer& e) { return e.actor == a; }, [](Observer& e) { e.actor = nullptr; });
  remove(update_order_, [a](const ActorBase* e) { return e == a; }, [](ActorBase*& e) { e = nullptr; });
  if (!now) unsettled_ = true;
  actor.active_ = false;
}

void Manager::settle() {
  SAGE_ASSERT(depth_ == 0);
  unsettled_ = false;
  for (auto& slot : types_)
    if (slot) std::erase_if(slot->subscribers, [](const Subscriber& e) { return e.actor == nullptr; });
  std::erase_if(observers_, [](const Observer& e) { return e.actor == nullptr; });
  std::erase_if(update_order_, [](const ActorBase* a) { return a == nullptr; });
  std::erase_if(coroutines_, [](const Coroutine& c) {
    if (c.owner) return false;
    c.handle.destroy();
    return true;
  });
  if (resort_) {
    resort_ = false;
    sort_lists();
  }
  std::vector<ActorBase*> pending;
  pending.swap(pending_registrations_);
  for (ActorBase* a : pending) activate(*a);
}

void Manager::sort_lists() {
  for (auto& slot : types_)
    if (slot) std::sort(slot->subscribers.begin(), slot->subscribers.end(),
              [](const Subscriber& x, const Subscriber& y) { return before(x.actor, y.actor); });
  std::sort(observers_.begin(), observers_.end(),
            [](const Observer& x, const Observer& y) { return before(x.actor, y.actor); });
  std::sort(update_order_.begin(), update_order_.end(), before);
}

void Manager::priority_changed() {
  if (depth_ == 0) {
    sort_lists();
  } else {
    resort_ = true;
    unsettled_ = true;
  }
}

// ---- Manager: messages ----

Manager::TypeSlot& Manager::add_type(const detail::MessageType& type, std::uint32_t index) {
  if (index >= types_.size()) types_.resize(index + 1);
  if (types_[index]) return *types_[index];
  auto slot = std::make_unique<TypeSlot>(type);
  if (type.schema) {
    schema_names_.emplace(type.name);
    schema_names_.emplace(last_component(type.name));
  }
  types_[index] = std::move(slot);
  return *types_[index];
}

bool Manager::is_schema_name(std::string_view name) const { return schema_names_.contains(name); }

void Manager::check_ad_hoc(std::string_view name) const {
  if (is_schema_name(name)) throw ad_hoc_name_conflict(name);
}

void Manager::queue_message(std::string_view name) {
  check_ad_hoc(name);
  enqueue(ActorId{}, Sender::local(), AdHocMessage{std::string(name)});
}

void Manager::queue_message_to_actor(ActorId id, std::string_view name) {
  check_ad_hoc(name);
  queue_message_to_actor(id, AdHocMessage{std::string(name)});
}

bool Manager::trigger(std::string_view name) {
  check_ad_hoc(name);
  return trigger(AdHocMessage{std::string(name)});
}

bool Manager::trigger_to_actor(ActorId id, std::string_view name) {
  check_ad_hoc(name);
  return trigger_to_actor(id, AdHocMessage{std::string(name)});
}

void Manager::observe_all(const detail::MessageType& type, const void* data, Sender from, ActorId target) {
  if (type.encoded) return;  // the bytes for view handlers: wildcards saw the value (or see none)
  const AnyMessageRef ref(type, data, from, target);
  const Observer* o = observers_.data();  // not resized during a dispatch
  const std::size_t n = observers_.size();
  for (std::size_t i = 0; i < n; ++i)
    if (o[i].actor) o[i].observe(*o[i].actor, ref);
}

void Manager::dead_letter(const detail::MessageType& type, const void* data, Sender from, ActorId target) {
  ++stats_.unhandled;
  if (dead_letter_) dead_letter_(AnyMessageRef(type, data, from, target));
}

bool Manager::dispatch_to(ActorId target, const detail::MessageType& type, const void* data, Sender from) {
  DispatchScope scope(*this);
  ++stats_.dispatched;
  return deliver_to(target, type, data, from);
}

bool Manager::deliver_to(ActorId target, const detail::MessageType& type, const void* data, Sender from) {
  ActorBase* actor = find(target);
  if (actor && actor->observe_) {
    actor->observe_(*actor, AnyMessageRef(type, data, from, target));
    actor = find(target);  // the observer may have unregistered it
    if (!actor) return false;
  }
  const detail::Subscription* s = actor ? actor->find_subscription(type) : nullptr;
  if (!s) {
    dead_letter(type, data, from, target);
    return false;
  }
  return s->deliver(*actor, data, from);
}

void Manager::dispatch_record(const TypeSlot& slot, void* data, ActorId target, Sender from) {
  struct Destroy {  // whatever the handlers do, throw included, the message is destroyed
    const detail::MessageType& type;
    void* data;
    ~Destroy() {
      if (type.destroy) type.destroy(data);
    }
  } destroy{*slot.type, data};
  if (slot.type == &detail::message_type_v<detail::GroupFailure>) [[unlikely]] {
    --stats_.dispatched;  // a report, not a message (the tick loop counts every record it took)
    throw group_error(static_cast<const detail::GroupFailure*>(data)->error);
  }
  if (target)
    deliver_to(target, *slot.type, data, from);
  else
    deliver_broadcast(slot, data, from);
}

std::size_t Manager::abort_queued(const detail::MessageType& type, bool all) noexcept {
  std::size_t removed = 0;
  auto sweep = [&](detail::RecordQueue& q) {
    q.for_each([&](detail::RecordHeader& r) {
      if (&r.message_type() != &type || (!all && removed > 0)) return;
      q.abort(r);
      ++removed;
    });
  };
  sweep(dispatching_);  // older messages first
  sweep(incoming_);
  stats_.aborted += removed;
  return removed;
}

std::size_t Manager::suspended_coroutines() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(coroutines_.begin(), coroutines_.end(), [](const Coroutine& c) { return c.owner != nullptr; }));
}

// ---- Manager: ticking ----

bool Manager::tick() { return run_tick(false, {}); }

bool Manager::tick(std::chrono::nanoseconds max_time) { return run_tick(true, max_time); }

bool Manager::run_tick(bool budgeted, std::chrono::nanoseconds max_time) {
  if (ticking_) throw reentrant_tick();
  ticking_ = true;
  struct Reset {
    bool& ticking;
    ~Reset() { ticking = false; }
  } reset{ticking_};

  const Clock::time_point start = Clock::now();
  last_tick_start_ = start;
  ++tick_count_;
  if (budgeted && max_time >= Clock::time_point::max() - start) budgeted = false;
  const Clock::time_point deadline = budgeted ? start + std::chrono::duration_cast<Clock::duration>(max_time) : start;

  pumping_ = true;
  try {
    for (auto& pump : pumps_) pump->poll(*this);
  } catch (...) {
    pumping_ = false;
    throw;
  }
  pumping_ = false;
  // What was queued before this tick (and what a budgeted tick left) is dispatched now; messages
  // queued from here on go to incoming_ and wait for the next tick.
  dispatching_.append(std::move(incoming_));
  {
    // One dispatch scope for the whole loop; what a handler deferred (registrations, priority
    // changes, removals) is applied between two messages, as if each had its own scope. The
    // messages taken are counted once, at the end: what left the queue and was not aborted.
    struct Loop {
      Manager& m;
      const std::size_t queued = m.dispatching_.size();
      const std::uint64_t aborted = m.dispatching_.aborted_total();
      ~Loop() {
        m.stats_.dispatched += queued - m.dispatching_.size() - (m.dispatching_.aborted_total() - aborted);
        if (--m.depth_ == 0 && m.unsettled_) m.settle();
      }
    } loop{*this};
    ++depth_;
    // Wildcard subscribers change only when settled; until then the loop knows whether there are any.
    bool observed = !observers_.empty();
    // A record is off the queue before any handler runs (abort_message() cannot reach it); its
    // memory stays valid until its chunk is left. It counts as delivered even if a handler throws.
    auto visit = [&](detail::RecordHeader& record) __attribute__((always_inline)) {
      const auto& slot = static_cast<const TypeSlot&>(record.type_slot());
      if (record.plain() && !observed) [[likely]]
        deliver_to_subscribers(slot, record.payload(), record.sender());
      else
        dispatch_record(slot, record.payload(), record.target(), record.sender());
      if (unsettled_) [[unlikely]] {
        depth_ = 0;
        settle();
        depth_ = 1;
        observed = !observers_.empty();
      }
    };
    if (budgeted) {
      bool first = true;
      dispatching_.consume(pool_, [&] { return !std::exchange(first, false) && Clock::now() >= deadline; }, visit);
    } else {
      dispatching_.consume(pool_, [] { return false; }, visit);
    }
  }
  const bool flushed = dispatching_.empty();
  resume_coroutines();
  update_actors();
  // Index loop: a pump's flush never adds pumps (SAGE_ASSERT in add_pump), but stay safe.
  pumping_ = true;
  try {
    for (std::size_t i = 0; i < pumps_.size(); ++i) pumps_[i]->flush(*this);
  } catch (...) {
    pumping_ = false;
    throw;
  }
  pumping_ = false;
  return flushed;
}

void Manager::resume_coroutines() {
  if (coroutines_.empty()) return;
  DispatchScope scope(*this);
  // Coroutines that first suspended during this tick (their handler ran in it) wait for the next.
  // The vector may grow meanwhile (handlers triggered from a coroutine); it is not compacted.
  for (std::size_t i = 0; i < coroutines_.size(); ++i) {
    const Coroutine c = coroutines_[i];
    if (!c.owner || c.adopted_in == tick_count_) continue;
    c.handle.resume();
    if (c.handle.done()) {
      coroutines_[i].owner = nullptr;
      unsettled_ = true;
      if (std::exception_ptr error = c.handle.promise().error) std::rethrow_exception(error);
    }
  }
}

void Manager::update_actors() {
  DispatchScope scope(*this);
  const std::size_t n = update_order_.size();  // not resized during a dispatch
  for (std::size_t i = 0; i < n; ++i)
    if (ActorBase* a = update_order_[i]) a->update();
}

bool Manager::wait_for_next_tick(std::chrono::nanoseconds interval) {
  Clock::time_point deadline = last_tick_start_ + std::chrono::duration_cast<Clock::duration>(interval);
  for (const auto& pump : pumps_) deadline = std::min(deadline, pump->next_deadline());
  return waker_->wait_until(deadline);
}

void Manager::run(std::chrono::nanoseconds interval, const std::function<bool()>& stop) {
  for (;;) {
    tick();
    if (stop()) return;
    wait_for_next_tick(interval);
  }
}

detail::Pump& Manager::add_pump(std::unique_ptr<detail::Pump> pump) {
  SAGE_ASSERT(pump != nullptr);
  SAGE_ASSERT(!pumping_);  // pumps are added by API calls, never from a pump's poll() or flush()
  // During a dispatch no pump is being iterated: the new one is flushed at the end of this tick.
  pumps_.push_back(std::move(pump));
  return *pumps_.back();
}

void Manager::remove_pump(detail::Pump& pump) {  // tests' pumps only, never groups' or the network's
  if (ticking_) throw usage_error("sage: a pump cannot be removed during a tick");
  auto it = std::find_if(pumps_.begin(), pumps_.end(), [&](const auto& p) { return p.get() == &pump; });
  SAGE_ASSERT(it != pumps_.end());
  pumps_.erase(it);
}

Manager& default_manager() {
  static Manager manager;
  return manager;
}

}  // namespace sage

// sage/task.hpp: coroutine message handlers.
//
//   sage::Task handle(TimeBombMessage msg) {   // by value: the frame keeps its own copy
//     for (int t = msg.ticks; t > 0; --t) co_await sage::next_tick();
//     manager()->trigger(BombMessage{});
//   }
//
// A handler returning sage::Task runs at once, up to its first co_await; the manager then resumes it
// once per tick (after queued messages are dispatched, before update()) until it finishes.
// A coroutine handler never consumes its message: propagation continues. Its frame is destroyed when
// it finishes, when its actor is unregistered, or when the manager is destroyed.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

namespace sage {

// Awaitable returned by next_tick(): suspends the handler until the manager's next tick.
struct NextTick {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

// Only this can be co_awaited inside a sage::Task (anything else does not compile).
inline NextTick next_tick() noexcept { return {}; }

// The return type of coroutine handlers. A move-only owner of the coroutine frame; the manager takes
// it over from the handler.
class [[nodiscard]] Task {
 public:
  struct promise_type {
    std::exception_ptr error;  // what the coroutine threw; the manager rethrows it from tick()/trigger()

    Task get_return_object() noexcept { return Task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
    NextTick await_transform(NextTick t) noexcept { return t; }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task(Task&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  // The frame, now owned by the caller.
  Handle release() noexcept { return std::exchange(h_, nullptr); }

 private:
  explicit Task(Handle h) noexcept : h_(h) {}
  Handle h_;
};

}  // namespace sage

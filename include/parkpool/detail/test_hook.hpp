// parkpool::detail::TestHook: a seam a test can install at an exact point of the library's code,
// to force an interleaving it could otherwise only make likely. Used by the portable backend
// (PortableBackend::before_sleep_hook_for_test), the parking lot (parking_lot_test_hooks.hpp),
// ParkThread::shutdown (ParkThread::shutdown_flag_stored_hook_for_test) and
// the pool's drain (PoolCore::drain_took_task_hook_for_test).
//
// Tests only: null in production, where a call costs one relaxed load and a branch; each place
// that has one says why that cost is acceptable there. A hook is called on whatever thread reaches
// the point, so an installed function checks that the call is the test's (a backend pointer, a
// thread_local flag) and returns at once otherwise.
//
// Memory order: relaxed, for installing, removing and calling. The hook publishes nothing through
// itself: a test installs it before it starts the thread that should run it (thread creation
// orders the store before that thread's load) or on that thread, and whatever the function then
// shares with the test it orders itself (its own atomics). Any other thread that reads the hook
// meanwhile runs a function that returns at once for it, or sees null.
#pragma once

#include <atomic>

namespace parkpool::detail {

template <class... Args>
class TestHook {
 public:
  using Fn = void (*)(Args...);

  constexpr TestHook() noexcept = default;
  TestHook(const TestHook&) = delete;
  TestHook& operator=(const TestHook&) = delete;

  // The installed function or nullptr; for a call site whose arguments cost something to make.
  Fn get() const noexcept { return fn_.load(std::memory_order_relaxed); }  // relaxed: see above
  // Calls the installed function, if any.
  void operator()(Args... args) const noexcept {
    if (const Fn f = get()) f(args...);
  }

  // Installs `f` for its scope (a test's), and removes it on every way out.
  class Scoped {
   public:
    Scoped(TestHook& hook, Fn f) noexcept : hook_(hook) {
      hook_.fn_.store(f, std::memory_order_relaxed);  // relaxed: see above
    }
    ~Scoped() { hook_.fn_.store(nullptr, std::memory_order_relaxed); }
    Scoped(const Scoped&) = delete;
    Scoped& operator=(const Scoped&) = delete;

   private:
    TestHook& hook_;
  };

 private:
  std::atomic<Fn> fn_{nullptr};
};

}  // namespace parkpool::detail

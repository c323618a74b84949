// parkpool::AsyncEvent: a one-shot event that one coroutine awaits and any thread sets.
//
// What it is
//   `co_await event` suspends until some thread calls `event.set()`; if the event is already set
//   it does not suspend. Once set it stays set (one-shot, no reset). One word, no allocation.
//
// Where the awaiter resumes
//   Under parkpool::block_on: on the block_on thread (set() queues the coroutine there and wakes
//   that thread). Outside block_on: inline, inside set(), on the setting thread. set() is
//   noexcept: an exception that leaves that inline resumption (a coroutine type whose
//   unhandled_exception() rethrows; parkpool::Task stores it instead) calls std::terminate.
//
// Thread safety
//   set() and is_set() from any thread, concurrently. At most one coroutine may be suspended on
//   the event at a time: a second concurrent co_await throws std::logic_error. Any number of
//   coroutines may co_await it after it is set (they do not suspend).
//
// Memory ordering
//   Everything written before set() happens-before everything after the co_await that observes it
//   (and after an is_set() that returns true).
//
// Lifetime
//   set() does not touch the event after its single atomic exchange, so the awaiting side may
//   destroy the event as soon as it resumes. Destroying an event while a coroutine is suspended
//   on it leaves that coroutine suspended forever (asserted in debug builds).
#pragma once

#include <atomic>
#include <cassert>
#include <coroutine>
#include <cstdint>
#include <stdexcept>

#include "parkpool/thread_parker.hpp"

namespace parkpool {

class AsyncEvent {
 public:
  AsyncEvent() noexcept = default;
  AsyncEvent(const AsyncEvent&) = delete;
  AsyncEvent& operator=(const AsyncEvent&) = delete;
  ~AsyncEvent() {
    // Relaxed: a debug check; a legal destruction happens-after every write of state_.
    assert((state_.load(std::memory_order_relaxed) <= kSet) &&
           "parkpool::AsyncEvent destroyed while a coroutine awaits it");
  }

  /// Sets the event and resumes (or queues) the coroutine awaiting it. Returns true if this call
  /// set it, false if it was already set. Any thread.
  bool set() noexcept {
    // (E1) acq_rel. Release pairs with (E2)/(E3): the setter's writes are visible to the awaiter.
    // Acquire pairs with (E4): the awaiter's armed Resumption is visible to us.
    const std::uintptr_t old = state_.exchange(kSet, std::memory_order_acq_rel);
    if (old == kSet) return false;
    if (old != kEmpty) reinterpret_cast<Awaiter*>(old)->resumption_.resume();
    return true;
  }

  /// True once set() has been called (acquire: see "Memory ordering").
  bool is_set() const noexcept {
    // (E2) acquire, pairs with (E1).
    return state_.load(std::memory_order_acquire) == kSet;
  }

  class Awaiter {
   public:
    explicit Awaiter(AsyncEvent& e) noexcept : event_(e) {}
    bool await_ready() const noexcept { return event_.is_set(); }
    bool await_suspend(std::coroutine_handle<> h) {
      resumption_.arm(h);
      std::uintptr_t expected = kEmpty;
      // (E4) release on success, pairs with (E1)'s acquire: publishes resumption_.
      // (E3) acquire on failure, pairs with (E1): if it was set meanwhile, its writes are visible.
      if (event_.state_.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(this),
                                                std::memory_order_release,
                                                std::memory_order_acquire)) {
        return true;
      }
      resumption_.disarm();
      if (expected == kSet) return false;  // set meanwhile: resume at once
      throw std::logic_error("parkpool::AsyncEvent: a second coroutine awaits it concurrently");
    }
    void await_resume() const noexcept {}

   private:
    friend class AsyncEvent;
    AsyncEvent& event_;
    Resumption resumption_;
  };

  Awaiter operator co_await() noexcept { return Awaiter(*this); }

 private:
  // state_:
  //   value        meaning                                  transitions
  //   kEmpty (0)   not set, nobody waits                    -> Awaiter* (await_suspend), -> kSet
  //   Awaiter*     not set, that awaiter is suspended        -> kSet (set(), which resumes it)
  //   kSet (1)     set; final
  // An Awaiter is at least pointer-aligned, so its address is never 0 or 1.
  static constexpr std::uintptr_t kEmpty = 0;
  static constexpr std::uintptr_t kSet = 1;
  static_assert(alignof(void*) > 1);
  std::atomic<std::uintptr_t> state_{kEmpty};
  static_assert(std::atomic<std::uintptr_t>::is_always_lock_free);
};

}  // namespace parkpool

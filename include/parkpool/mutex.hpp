// parkpool::Mutex: a one-byte mutual exclusion lock built on the parking lot.
//
// Size: 1 byte (static_assert below). Waiting threads live in the parking lot, keyed by the
// mutex's address, not in the mutex.
// Thread-safety: lock/unlock from any thread; unlock only by the thread that holds it (not
// checked, as with std::mutex). Meets std Lockable / TimedLockable: std::scoped_lock,
// std::unique_lock and std::condition_variable_any work.
// Memory ordering: unlock() happens-before the lock() (or successful try_lock*) that next
// acquires the mutex, including a direct hand-off to a parked thread. A failed try_lock has no
// ordering effect.
// Lifetime: may be destroyed when unlocked and no thread is waiting or inside a call on it.
// Spurious wakeups: none visible; a waiter that loses the race for the lock after a wakeup
// parks again.
// Fairness: unfair by default (a running thread may barge in ahead of parked ones, which is what
// makes it fast), with eventual fairness: unlock_fair() always, and unlock() on its bucket's fair
// turn, hands the lock directly to the first parked thread (FIFO) instead of freeing it. A
// bucket's fair turn is its first unpark after a deadline drawn at random in [0, 1 ms) after the
// previous fair turn: about every 0.5 ms while unparks keep coming. So a lock held for more than
// 1 ms is handed off on unlock when its key has the bucket to itself; keys that hash to the same
// bucket share that timer, and another key's unpark may take the fair turn first.
// What is not bounded is one waiter's wait. Between fair turns, unlock wakes the first parked
// thread without a hand-off; if a running thread takes the lock first, the woken thread parks
// again at the back of the queue, and the fair turns that come while it moves back up go to the
// threads ahead of it. So a wait may span several fair periods, plus whatever time the holder or
// the woken thread spends preempted (with more runnable threads than CPUs, scheduler time slices
// of milliseconds). Starvation is unlikely, not impossible: the queue keeps moving and every fair
// turn serves its head. If every unlock is an unlock_fair() (Condvar::wait's release is a plain
// unlock), the lock is never free while threads are parked, and they get it in FIFO order.
// Spinning: a thread spins briefly (parking_lot::SpinWait, <1 us plus a few yields) only while
// nobody is parked; once a thread is parked, newcomers park right away.
// Past deadlines: try_lock_until/for with a deadline already passed still tries once (and spins
// briefly); it never blocks.
//
// Recursive locking deadlocks (undefined, as std::mutex).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <parkpool/deadlock.hpp>
#include <parkpool/parking_lot.hpp>

namespace parkpool {

class Condvar;

class Mutex {
 public:
  constexpr Mutex() noexcept = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() noexcept {
    std::uint8_t expected = 0;
    // (M1) acquire: pairs with the release in unlock() (M2) or in unlock_slow's callback (M3).
    // Weak CAS: a spurious failure just takes the slow path, which retries.
    if (!state_.compare_exchange_weak(expected, kLockedBit, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      lock_slow(std::nullopt);
    }
    deadlock::acquire_resource(this);  // no-op unless PARKPOOL_DEADLOCK_DETECTION
  }

  bool try_lock() noexcept {
    std::uint8_t s = state_.load(std::memory_order_relaxed);  // relaxed: seeds the CAS
    for (;;) {
      if ((s & kLockedBit) != 0) return false;
      // (M1') acquire, as (M1). Keeps the PARKED bit.
      if (state_.compare_exchange_weak(s, static_cast<std::uint8_t>(s | kLockedBit),
                                       std::memory_order_acquire, std::memory_order_relaxed)) {
        deadlock::acquire_resource(this);
        return true;
      }
    }
  }

  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) noexcept {
    if (try_lock_fast() || lock_slow(parking_lot::deadline_after(timeout))) {
      deadlock::acquire_resource(this);
      return true;
    }
    return false;
  }

  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
    if (try_lock_fast() || lock_slow(parking_lot::deadline_at(deadline))) {
      deadlock::acquire_resource(this);
      return true;
    }
    return false;
  }

  void unlock() noexcept {
    deadlock::release_resource(this);
    std::uint8_t expected = kLockedBit;
    // (M2) release: pairs with (M1). Fails (slow path) when the PARKED bit is set.
    if (!state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      unlock_slow(false);
    }
  }

  // Unlocks and, if a thread is parked, hands the lock directly to the first one (FIFO).
  void unlock_fair() noexcept {
    deadlock::release_resource(this);
    std::uint8_t expected = kLockedBit;
    // (M2) release, as in unlock().
    if (!state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      unlock_slow(true);
    }
  }

  // True when some thread holds the lock (a racy snapshot, for assertions and tests).
  bool is_locked() const noexcept {
    return (state_.load(std::memory_order_relaxed) & kLockedBit) != 0;
  }

 private:
  friend class Condvar;
  friend struct MutexInspector;  // white-box tests

  // state_ (one byte):
  //   bit         meaning                                       who changes it
  //   kLockedBit  held by some thread                            set: the acquirer (CAS, acquire)
  //                                                              clear: unlock (release), or
  //                                                              kept set on a hand-off
  //   kParkedBit  a thread is (or is about to be) parked on      set: lock_slow (CAS) before
  //               this mutex's key                                 parking, or Condvar requeue
  //                                                              clear: only under the bucket
  //                                                              lock, by unlock_slow's callback
  //                                                              or a timed-out last waiter
  // INV-M1: while a thread is parked on this key, kParkedBit is set (so unlock takes the slow
  //         path and wakes it). Kept because validate requires both bits under the bucket lock,
  //         and the bit is cleared only under that lock when the queue is (or becomes) empty.
  // INV-M2: kLockedBit is never set by a parked thread, and a hand-off leaves kLockedBit set so
  //         no third thread can barge between unlock and the woken owner.
  // States: 0 free; L held; L|P held with waiters; P free with waiters (a waiter was just woken
  // and will retry, or all timed out but one is about to clear it).
  static constexpr std::uint8_t kLockedBit = 1;
  static constexpr std::uint8_t kParkedBit = 2;
  // Tokens: a normal wakeup means "retry"; a hand-off means "you own the lock now".
  static constexpr parking_lot::UnparkToken kTokenNormal{0};
  static constexpr parking_lot::UnparkToken kTokenHandoff{1};

  bool try_lock_fast() noexcept {
    std::uint8_t expected = 0;
    // Acquire, as (M1): pairs with (M2)/(M3).
    return state_.compare_exchange_strong(expected, kLockedBit, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  bool lock_slow(const parking_lot::Deadline& deadline) noexcept;
  void unlock_slow(bool force_fair) noexcept;

  // For Condvar's requeue (called under the mutex's bucket lock): sets kParkedBit if the mutex
  // is locked and returns whether it did (then requeued waiters will be woken by unlock).
  bool mark_parked_if_locked() noexcept;
  // Sets kParkedBit unconditionally (under the mutex's bucket lock, after a requeue onto it).
  void mark_parked() noexcept;

  std::atomic<std::uint8_t> state_{0};
};

static_assert(sizeof(Mutex) == 1, "parkpool::Mutex must be one byte");
static_assert(std::atomic<std::uint8_t>::is_always_lock_free);

}  // namespace parkpool

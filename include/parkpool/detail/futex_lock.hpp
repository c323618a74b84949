// Internal: a lock on one 32-bit futex word that never spins, the IdleCoordinator's mutex_.
//
// Why not std::mutex: on the submitter's wake path from idle (IdleCoordinator::wake_one_slow)
// pthread_mutex_lock / unlock are calls through the PLT into libc, whose code, PLT and GOT lines
// sit on pages of their own; after an idle period each first touch of a page is a TLB miss
// (pool/SLEEP.md, "Tuning"). This lock's uncontended paths are one inline RMW each.
// Why not parkpool::Mutex: it spins (SpinWait) before it parks, and the coordinator's lock is
// taken by a worker announcing its sleep while the other workers withdraw and a submitter claims
// a sleeper: with more threads than CPUs a spinner holds the CPU the lock holder needs. As the
// coordinator's lock it cost ExternalPost 10-15% on the 2-vCPU VM (pool/SLEEP.md). Like glibc's
// default mutex, this one sleeps as soon as the word says the lock is held.
//
// The protocol is written once over a Backend (detail/parker_protocol.hpp has the requirements:
// Word, wait, wake_one) so that tests/model/futex_lock_model.cpp model-checks this very code. The
// parking lot's bucket locks (src/parking_lot.cpp, BucketLock) run it too, with a short spin
// before lock_contended().
//
// The word (the three-state futex mutex of Drepper's "Futexes Are Tricky"; glibc's lll_lock and
// lll_unlock use the same states):
//   0  free
//   1  held, nobody waits
//   2  held, and a thread may be blocked in wait() on the word (or about to block)
// Transitions:
//   lock fast    CAS 0 -> 1                     acquire (pairs with unlock's release)
//   lock slow    exchange(2); 0 read: we hold it acquire (as above); otherwise wait while 2
//                (with state 2: one wake too many later, harmless)
//   unlock       exchange(0); 2 read: wake one  release (pairs with the next lock's acquire)
// INV-W: while a thread is blocked in wait() on the word, the word is 2 or an unlock that read
//        2 is about to wake it. A waiter blocks only while the word is 2 (FUTEX_WAIT compares
//        atomically with the sleep), and only an unlock's exchange moves 2 to 0: that unlock
//        read 2 and wakes one. The woken thread sets 2 again before it looks, so a second
//        waiter is never left behind a 1. (A woken thread that took the lock with CAS 0 -> 1
//        would strand it: tests/detail/futex_lock_test.cpp, EveryWaiterIsWokenWhenSeveralWait,
//        fails on that mutation; the model's split_unlock and missing_wake variants deadlock.)
// No fairness: a thread arriving while the woken one is on its way may barge in (the woken one
// then waits again). The coordinator's critical sections are a few dozen instructions.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "parkpool/detail/deadline.hpp"
#include "parkpool/detail/parker_backend.hpp"

namespace parkpool::detail {

template <class Backend>
struct FutexLockProtocol {
  using Word = typename Backend::Word;
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kHeld = 1;
  static constexpr std::uint32_t kContended = 2;

  static bool try_lock(Word& w) noexcept {
    std::uint32_t expected = kFree;
    // Acquire: pairs with unlock()'s release exchange; the previous holder's critical section
    // happens-before ours. Relaxed on failure: nothing was taken.
    return w.compare_exchange_strong(expected, kHeld, std::memory_order_acquire,
                                     std::memory_order_relaxed);
  }

  static void lock(Word& w, Backend& b) noexcept {
    if (!try_lock(w)) lock_contended(w, b);
  }

  // Out of the inline path in production (FutexLock::lock_slow).
  static void lock_contended(Word& w, Backend& b) noexcept {
    // Acquire: when it reads kFree this exchange takes the lock (pairs with unlock()'s release).
    // It writes kContended either way, so the unlock that frees the word wakes someone (INV-W).
    while (w.exchange(kContended, std::memory_order_acquire) != kFree) {
      b.wait(w, kContended, Deadline::forever());  // returns at once if the word changed
    }
  }

  static void unlock(Word& w, Backend& b) noexcept {
    // Release: pairs with the acquire of the next lock (fast CAS or lock_contended's exchange).
    if (w.exchange(kFree, std::memory_order_release) == kContended) b.wake_one(w);
  }
};

#if defined(__linux__)
// The protocol on a futex word: BasicLockable and Lockable (std::lock_guard, std::unique_lock).
// Not recursive; unlock() by a thread that does not hold it is undefined, as for std::mutex.
class FutexLock {
 public:
  constexpr FutexLock() noexcept = default;
  FutexLock(const FutexLock&) = delete;
  FutexLock& operator=(const FutexLock&) = delete;

  void lock() noexcept {
    if (!Protocol::try_lock(word_)) lock_slow();
  }
  bool try_lock() noexcept { return Protocol::try_lock(word_); }
  void unlock() noexcept { Protocol::unlock(word_, backend_); }

 private:
  using Protocol = FutexLockProtocol<FutexBackend>;
  [[gnu::noinline]] void lock_slow() noexcept { Protocol::lock_contended(word_, backend_); }

  ParkerWord word_{Protocol::kFree};
  [[no_unique_address]] FutexBackend backend_;  // stateless: wait / wake_one are static
};
#else
using FutexLock = std::mutex;  // no futex: the platform's mutex has the same never-spin habit
#endif

}  // namespace parkpool::detail

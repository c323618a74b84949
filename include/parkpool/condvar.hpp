// parkpool::Condvar: a condition variable for parkpool::Mutex, built on the parking lot.
//
// Size: one pointer (8 bytes on 64-bit; static_assert below).
// Thread-safety: wait* from any thread holding the mutex through a std::unique_lock<Mutex>;
// notify_* from any thread, with or without holding the mutex.
// Memory ordering: as std::condition_variable: everything a notifier did while holding the mutex
// before notifying is visible to a waiter when wait returns (the mutex provides the edges). A
// notify that does not hold the mutex still never misses a waiter that started waiting, under
// the mutex, before the notifier's last release of that mutex.
// Lifetime: may be destroyed once no thread waits on it.
// Spurious wakeups: none. wait() returns only after a notify_one/notify_all selected this thread;
// wait_for/wait_until return std::cv_status::timeout only when the deadline passed without a
// notify. (The predicate overloads loop anyway, as they must for stolen wakeups: another thread
// may consume the condition between the notify and the relock.)
// Fairness: waiters are notified in FIFO order. notify_one and notify_all never wake more than
// one thread at a time while the mutex is held: the others are requeued onto the mutex's queue
// and woken one by one by unlock (no thundering herd). notify_all with the mutex free (the
// notifier unlocked first) wakes every waiter at once, with one syscall for up to 32 waiters
// (one more per waiter beyond), and they take the mutex in whatever order they run (as
// std::condition_variable::notify_all does): nobody holds the mutex, so there is no unlock to
// queue them behind, and one wake per waiter would put one inter-processor wakeup per waiter on
// the critical path.
// Past deadlines: wait_until with a past deadline (and wait_for with a non-positive timeout)
// still unlocks the mutex, checks for a pending notify, and relocks before returning timeout.
// Bad input: waiting with a std::unique_lock that does not own its mutex throws std::system_error
// (operation_not_permitted); using one Condvar with two different mutexes at the same time throws
// std::invalid_argument from the wait that brought the second mutex (the lock is still held).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <utility>

#include <parkpool/mutex.hpp>
#include <parkpool/parking_lot.hpp>

namespace parkpool {

class Condvar {
 public:
  constexpr Condvar() noexcept = default;
  Condvar(const Condvar&) = delete;
  Condvar& operator=(const Condvar&) = delete;

  // Wakes one waiter (returns whether one was found). No waiter: one relaxed load, nothing else.
  bool notify_one() noexcept {
    // Relaxed is enough: a waiter stores state_ under its mutex and under the bucket lock before
    // it can sleep, and a notifier that must see it has acquired that mutex since (the caller's
    // contract, see "Memory ordering"), which orders the store before this load.
    Mutex* m = state_.load(std::memory_order_relaxed);
    if (m == nullptr) return false;
    return notify_one_slow(m);
  }

  // Wakes all waiters (returns how many were woken or requeued).
  std::size_t notify_all() noexcept {
    Mutex* m = state_.load(std::memory_order_relaxed);  // relaxed: as notify_one
    if (m == nullptr) return 0;
    return notify_all_slow(m);
  }

  void wait(std::unique_lock<Mutex>& lock) { (void)wait_internal(lock, std::nullopt); }

  template <class Predicate>
  void wait(std::unique_lock<Mutex>& lock, Predicate pred) {
    while (!pred()) wait(lock);
  }

  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<Mutex>& lock,
                            const std::chrono::time_point<Clock, Duration>& deadline) {
    return wait_internal(lock, parking_lot::deadline_at(deadline));
  }

  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<Mutex>& lock,
                  const std::chrono::time_point<Clock, Duration>& deadline, Predicate pred) {
    const parking_lot::Deadline dl = parking_lot::deadline_at(deadline);
    while (!pred()) {
      if (wait_internal(lock, dl) == std::cv_status::timeout) return pred();
    }
    return true;
  }

  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<Mutex>& lock,
                          const std::chrono::duration<Rep, Period>& timeout) {
    return wait_internal(lock, parking_lot::deadline_after(timeout));
  }

  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<Mutex>& lock, const std::chrono::duration<Rep, Period>& timeout,
                Predicate pred) {
    const parking_lot::Deadline dl = parking_lot::deadline_after(timeout);
    while (!pred()) {
      if (wait_internal(lock, dl) == std::cv_status::timeout) return pred();
    }
    return true;
  }

 private:
  friend struct CondvarInspector;  // white-box tests

  std::cv_status wait_internal(std::unique_lock<Mutex>& lock, const parking_lot::Deadline& dl);
  bool notify_one_slow(Mutex* mutex) noexcept;
  std::size_t notify_all_slow(Mutex* mutex) noexcept;

  // state_: the mutex the current waiters use.
  //   value     meaning                               transitions
  //   nullptr   no thread parked on this Condvar      -> m: a waiter's validate (bucket lock)
  //   m         threads parked here wait with m       -> nullptr: notify when the last waiter
  //                                                     leaves this queue (bucket lock), or the
  //                                                     last waiter timing out (bucket lock)
  // All writes happen under this Condvar's bucket lock (INV-C1), so the queue and state_ agree:
  // state_ == nullptr implies no thread is parked on this Condvar's key.
  // Relaxed everywhere: the bucket lock orders writes and validate; notify's unlocked read is
  // ordered by the user's mutex (see notify_one).
  std::atomic<Mutex*> state_{nullptr};
};

static_assert(sizeof(Condvar) <= 8, "parkpool::Condvar must fit in 8 bytes");
static_assert(std::atomic<Mutex*>::is_always_lock_free);

}  // namespace parkpool

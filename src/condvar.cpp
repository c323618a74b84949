// parkpool::Condvar slow paths. State table and invariants in <parkpool/condvar.hpp>.
#include <parkpool/condvar.hpp>

#include <stdexcept>

#include <parkpool/deadlock.hpp>

namespace parkpool {

std::cv_status Condvar::wait_internal(std::unique_lock<Mutex>& lock,
                                      const parking_lot::Deadline& dl) {
  if (lock.mutex() == nullptr || !lock.owns_lock()) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                            "parkpool::Condvar::wait: the unique_lock does not own a mutex");
  }
  Mutex* const mutex = lock.mutex();
  bool bad_mutex = false;
  bool requeued = false;

  // Callback checklist: validate and timed_out run under this Condvar's bucket lock (timed_out
  // under the mutex's bucket lock if we were requeued); no throw, no park, short.
  // before_sleep runs unlocked and releases the mutex (may unpark a mutex waiter: allowed there).
  const parking_lot::ParkResult r = parking_lot::park(
      this,
      [this, mutex, &bad_mutex]() noexcept {
        // INV-C1: state_ is written only under this bucket lock.
        Mutex* current = state_.load(std::memory_order_relaxed);
        if (current == nullptr) {
          state_.store(mutex, std::memory_order_relaxed);
        } else if (current != mutex) {
          bad_mutex = true;  // reported by throwing after park() returns, lock still held
          return false;
        }
        return true;
      },
      [mutex]() noexcept {
        // Queued already, so a notify from here on finds us: releasing the mutex cannot lose a
        // notification (this is the whole point of before_sleep).
        mutex->unlock();
      },
      [this, &requeued](const void* key, bool was_last_thread) noexcept {
        // If we were requeued onto the mutex, a notify selected us: not a timeout.
        requeued = key != static_cast<const void*>(this);
        // INV-C1: the last waiter leaving this Condvar's queue clears state_. On the mutex's
        // queue there is nothing to clear: its kParkedBit may stay set; unlock_slow copes with
        // an empty queue.
        if (!requeued && was_last_thread) state_.store(nullptr, std::memory_order_relaxed);
      },
      parking_lot::kDefaultParkToken, dl);

  if (r.is_invalid()) {
    if (bad_mutex) {
      throw std::invalid_argument(
          "parkpool::Condvar: waited on with two different mutexes at the same time");
    }
    // Unreachable: validate only fails for a different mutex.
    return std::cv_status::no_timeout;
  }
  // Relock. An unparked thread either got the lock handed off by Mutex::unlock_slow (it was
  // requeued onto the mutex and a fair unlock chose it) or must lock it now.
  if (r.is_unparked() && r.token() == Mutex::kTokenHandoff) {
    deadlock::acquire_resource(mutex);  // lock() does this on the other path
  } else {
    mutex->lock();
  }
  return (r.is_timed_out() && !requeued) ? std::cv_status::timeout : std::cv_status::no_timeout;
}

bool Condvar::notify_one_slow(Mutex* mutex) noexcept {
  // Callback checklist: validate and callback run under both bucket locks (this Condvar's and
  // the mutex's); no throw, no park, short.
  const parking_lot::UnparkResult r = parking_lot::unpark_requeue(
      this, mutex,
      [this, mutex]() noexcept {
        // The waiters might have left (timed out) or switched mutex since our unlocked read.
        if (state_.load(std::memory_order_relaxed) != mutex) return parking_lot::RequeueOp::abort;
        // Mutex held by someone (typically the notifier): waking the waiter would only make it
        // block on the mutex, so move it to the mutex's queue; unlock will wake it. kParkedBit
        // is set here, under the mutex's bucket lock, so that unlock takes its slow path (INV-M1).
        if (mutex->mark_parked_if_locked()) return parking_lot::RequeueOp::requeue_one;
        return parking_lot::RequeueOp::unpark_one;
      },
      [this](parking_lot::RequeueOp, parking_lot::UnparkResult result) noexcept {
        // INV-C1: no waiter left on this Condvar.
        if (!result.have_more_threads) state_.store(nullptr, std::memory_order_relaxed);
        return Mutex::kTokenNormal;
      });
  return r.unparked_threads + r.requeued_threads != 0;
}

std::size_t Condvar::notify_all_slow(Mutex* mutex) noexcept {
  // `mutex` comes from an unlocked read of state_: the waiters that used it may have left and
  // their owner destroyed it since. It is dereferenced only under this Condvar's bucket lock
  // after state_ == mutex is re-checked there: then a thread still waits with it, and a mutex
  // must outlive its waiters.
  bool mutex_free = false;
  // Callback checklist: validate and callback run under both bucket locks (this Condvar's and
  // the mutex's); no throw, no park, short.
  const parking_lot::UnparkResult r = parking_lot::unpark_requeue(
      this, mutex,
      [this, mutex, &mutex_free]() noexcept {
        if (state_.load(std::memory_order_relaxed) != mutex) return parking_lot::RequeueOp::abort;
        if (mutex->mark_parked_if_locked()) {
          // Every waiter leaves this Condvar's queue now (INV-C1).
          state_.store(nullptr, std::memory_order_relaxed);
          return parking_lot::RequeueOp::requeue_all;
        }
        mutex_free = true;  // wake them all below instead
        return parking_lot::RequeueOp::abort;
      },
      [](parking_lot::RequeueOp, parking_lot::UnparkResult) noexcept {
        // requeue_all: mark_parked_if_locked already set kParkedBit for them (INV-M1).
        return Mutex::kTokenNormal;
      });
  if (!mutex_free) return r.requeued_threads;
  // The mutex was free (typically: the notifier unlocked before notifying). Requeueing would wake
  // one waiter now and the others one per unlock, each wake a syscall that, on an idle CPU, costs
  // an inter-processor interrupt on the waiter's critical path. Instead wake them all: the
  // parking lot makes up to 32 of them runnable with one FUTEX_WAKE_BITSET, one syscall per
  // waiter beyond (INV-H, INV-B in parking_lot.cpp), and they take the mutex in turn while
  // running, as with glibc's broadcast. (A wake tree, where the first woken waiter wakes the
  // rest, was slower on the 2-vCPU dev VM: bench/parking_lot_bench.cpp WakeTree8, 2026-12-01.)
  // If the mutex is locked again by the time they run, they park on it (correct, only slower).
  // Callback checklist: filter and callback run under this Condvar's bucket lock; no throw, no
  // park, short.
  bool same_waiters = false;
  const parking_lot::UnparkResult w = parking_lot::unpark_filter(
      this,
      [this, mutex, &same_waiters](parking_lot::ParkToken) noexcept {
        // Re-checked under the lock, once: the waiters may have left or switched mutex.
        if (!same_waiters) same_waiters = state_.load(std::memory_order_relaxed) == mutex;
        return same_waiters ? parking_lot::FilterOp::unpark : parking_lot::FilterOp::stop;
      },
      [this, &same_waiters](parking_lot::UnparkResult) noexcept {
        // INV-C1: every waiter left this Condvar's queue, in this critical section.
        if (same_waiters) state_.store(nullptr, std::memory_order_relaxed);
        return Mutex::kTokenNormal;  // each relocks its own mutex in wait_internal
      });
  return w.unparked_threads;
}

}  // namespace parkpool

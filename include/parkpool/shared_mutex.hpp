// parkpool::SharedMutex: a reader-writer lock built on the parking lot.
//
// Size: 4 bytes (static_assert below). Waiters live in the parking lot under two keys: the
// object's address (readers and writers waiting for the lock) and address + 1 (the one writer
// that holds the writer bit and waits for the remaining readers to leave).
// Thread-safety: std SharedLockable and SharedTimedLockable: std::unique_lock, std::shared_lock
// and std::scoped_lock work. Unlock only what the calling thread holds (not checked).
// Memory ordering: unlock() happens-before the next lock()/lock_shared() that acquires; every
// unlock_shared() happens-before the next lock() that acquires. Readers are not ordered among
// themselves.
// Lifetime: may be destroyed when unlocked and no thread waits on it.
// Spurious wakeups: none visible (a woken thread that loses a race parks again).
// Fairness: no writer starvation: a writer that arrives sets the writer bit at once, which stops
// new readers; it then waits only for the readers already inside. Readers are not starved either:
// about every 0.5 ms (eventual fairness of the parking lot), and always with unlock_fair(), a
// writer's unlock hands the lock directly to the waiting threads. That spaces the fair turns; it
// does not bound one waiter's wait: as for Mutex (mutex.hpp, Fairness), a thread woken without a
// hand-off that loses the race parks again at the back of the queue, so a wait may span several
// fair periods plus any preemption. Whom an unlock wakes (as in
// parking_lot's RwLock): a writer at the head of the queue alone; otherwise every queued reader
// and the first queued writer, which claims the lock after them (queued readers thus overtake
// queued writers other than the head). Later writers stay queued, in FIFO order.
// Spinning: brief (parking_lot::SpinWait), only while nobody is parked.
// Past deadlines: the try_*_for/until variants try once and never block past the deadline.
// Bad input: more than 2^29 - 1 simultaneous readers aborts with a message (count overflow).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <parkpool/deadlock.hpp>
#include <parkpool/parking_lot.hpp>

namespace parkpool {

class SharedMutex {
 public:
  constexpr SharedMutex() noexcept = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  // Exclusive.
  void lock() noexcept {
    std::uint32_t expected = 0;
    // (S1) acquire: pairs with (S2) and with the readers' (S4) release sequence.
    if (state_.compare_exchange_weak(expected, kWriterBit, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      deadlock::acquire_resource(this);  // no-op unless PARKPOOL_DEADLOCK_DETECTION
    } else {
      lock_slow(std::nullopt);  // records the resource itself
    }
  }
  bool try_lock() noexcept;
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) noexcept {
    return try_lock() || lock_slow(parking_lot::deadline_after(timeout));
  }
  template <class C, class D>
  bool try_lock_until(const std::chrono::time_point<C, D>& deadline) noexcept {
    return try_lock() || lock_slow(parking_lot::deadline_at(deadline));
  }
  void unlock() noexcept { unlock_impl(false); }
  // unlock(), but if threads wait, the lock is handed to them directly (a fair unlock): to a
  // writer at the head of the queue, or else to every queued reader together with the first
  // queued writer, which then waits for those readers to leave. Nobody can barge in between.
  void unlock_fair() noexcept { unlock_impl(true); }

  // Shared.
  void lock_shared() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);  // relaxed: seeds the CAS
    // (S3) acquire: pairs with (S2).
    if ((s & kWriterBit) != 0 || s >= kMaxReaders ||
        !state_.compare_exchange_weak(s, s + kOneReader, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      lock_shared_slow(std::nullopt);  // records the resource itself
    } else {
      deadlock::acquire_resource(this);
    }
  }
  bool try_lock_shared() noexcept;
  template <class Rep, class Period>
  bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& timeout) noexcept {
    return try_lock_shared() || lock_shared_slow(parking_lot::deadline_after(timeout));
  }
  template <class C, class D>
  bool try_lock_shared_until(const std::chrono::time_point<C, D>& deadline) noexcept {
    return try_lock_shared() || lock_shared_slow(parking_lot::deadline_at(deadline));
  }
  void unlock_shared() noexcept {
    deadlock::release_resource(this);
    // (S4) release: the reader's critical section happens-before the writer's acquire load that
    // sees the count reach zero (S5). An RMW, so all readers' decrements form one release
    // sequence.
    const std::uint32_t prev = state_.fetch_sub(kOneReader, std::memory_order_release);
    if ((prev & ~(kParkedBit | kWriterBit)) == (kOneReader | kWriterParkedBit)) {
      unlock_shared_slow();  // we were the last reader and a writer sleeps waiting for us
    }
  }

 private:
  friend struct SharedMutexInspector;  // white-box tests

  // state_:
  //   bits 0      kWriterBit        a writer holds the lock, or holds its claim and waits for
  //                                 readers to drain; blocks new readers and writers.
  //                                 Set by CAS (acquire), or for a woken writer by a fair
  //                                 unlock's hand-off store (release, under the bucket lock);
  //                                 cleared by unlock (release) or by a writer that times out
  //                                 while draining.
  //   bit 1       kParkedBit        threads are (about to be) parked on key `this`. Set by CAS
  //                                 before parking; cleared only under that key's bucket lock
  //                                 (unlock_slow's callback, or the last waiter timing out).
  //   bit 2       kWriterParkedBit  the draining writer is (about to be) parked on key `this+1`.
  //                                 Set by that writer; cleared under the bucket lock of
  //                                 `this+1` by the last reader's unpark, or by the writer.
  //   bits 3..31  reader count      incremented (acquire) only while kWriterBit is clear, or
  //                                 for woken readers by a fair unlock's hand-off store;
  //                                 decremented (release) by unlock_shared at any time.
  // INV-R1: threads parked on `this` exist only while kParkedBit is set.
  // INV-R2: kWriterParkedBit is set only while kWriterBit is set and the count is non-zero,
  //         and whoever makes the count zero with kWriterParkedBit set wakes `this+1`.
  // INV-R3: a writer never sleeps on `this+1` unless validate (under its bucket lock) saw a
  //         non-zero count and kWriterParkedBit, so the last reader's wake cannot be missed.
  static constexpr std::uint32_t kWriterBit = 1;
  static constexpr std::uint32_t kParkedBit = 2;
  static constexpr std::uint32_t kWriterParkedBit = 4;
  static constexpr std::uint32_t kOneReader = 8;
  static constexpr std::uint32_t kMaxReaders = ~std::uint32_t{0} - kOneReader + 1;

  void unlock_impl(bool fair) noexcept {
    deadlock::release_resource(this);
    std::uint32_t expected = kWriterBit;
    // (S2) release: pairs with (S1)/(S3).
    if (!state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      unlock_slow(fair);
    }
  }
  bool lock_slow(const parking_lot::Deadline& deadline) noexcept;
  bool wait_for_readers(const parking_lot::Deadline& deadline) noexcept;
  void unlock_slow(bool force_fair) noexcept;
  bool lock_shared_slow(const parking_lot::Deadline& deadline) noexcept;
  void unlock_shared_slow() noexcept;
  void wake_after_abandoned_claim() noexcept;
  const void* readers_key() const noexcept {
    return static_cast<const void*>(reinterpret_cast<const char*>(this) + 1);
  }

  std::atomic<std::uint32_t> state_{0};
};

static_assert(sizeof(SharedMutex) == 4, "parkpool::SharedMutex must be 4 bytes");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

}  // namespace parkpool

// parkpool::Mutex slow paths. The state table and invariants are in <parkpool/mutex.hpp>.
#include <parkpool/mutex.hpp>

namespace parkpool {

bool Mutex::lock_slow(const parking_lot::Deadline& deadline) noexcept {
  parking_lot::SpinWait spin;
  // Relaxed loads of state_ in this loop only choose the next CAS; every acquisition is a CAS
  // with acquire, and every decision to sleep is re-checked by validate under the bucket lock.
  std::uint8_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Free: grab it, even if threads are parked (barging; they are served by eventual fairness).
    if ((s & kLockedBit) == 0) {
      // (M1'') acquire, pairs with (M2)/(M3).
      if (state_.compare_exchange_weak(s, static_cast<std::uint8_t>(s | kLockedBit),
                                       std::memory_order_acquire, std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    // Spin only while nobody is parked: once there is a queue, spinning just delays it.
    if ((s & kParkedBit) == 0 && spin.spin()) {
      s = state_.load(std::memory_order_relaxed);
      continue;
    }
    // Announce that we are going to park. Relaxed: the bit carries no data; validate re-checks
    // it under the bucket lock, which orders it against unlock_slow's callback.
    if ((s & kParkedBit) == 0) {
      if (!state_.compare_exchange_weak(s, static_cast<std::uint8_t>(s | kParkedBit),
                                        std::memory_order_relaxed, std::memory_order_relaxed)) {
        continue;
      }
    }

    // Callback checklist (validate, timed_out: under the bucket lock; no throw, no park, short).
    const parking_lot::ParkResult r = parking_lot::park(
        this,
        [this]() noexcept {
          // Park only if the lock is still held and the PARKED bit still announced: if an unlock
          // cleared it in between, it did not see us and would never wake us (lost wakeup).
          // Relaxed: the bucket lock orders this against the callback that clears the bits.
          return state_.load(std::memory_order_relaxed) == (kLockedBit | kParkedBit);
        },
        []() noexcept {},
        [this](const void*, bool was_last_thread) noexcept {
          // INV-M1: the last waiter leaving clears the bit, under the bucket lock, so that the
          // next unlock can take the fast path. Relaxed: data is published by unlock's release.
          if (was_last_thread) {
            state_.fetch_and(static_cast<std::uint8_t>(~kParkedBit), std::memory_order_relaxed);
          }
        },
        parking_lot::kDefaultParkToken, deadline);

    if (r.is_unparked()) {
      // Hand-off: the unlocker kept kLockedBit set for us. The happens-before edge from its
      // critical section comes through the parking lot's wake (P1)->(P2).
      if (r.token() == kTokenHandoff) return true;
    } else if (r.is_timed_out()) {
      return false;
    }
    // Normal wakeup or invalid validate: start over, spinning again.
    spin.reset();
    s = state_.load(std::memory_order_relaxed);
  }
}

void Mutex::unlock_slow(bool force_fair) noexcept {
  // Callback checklist: runs under the bucket lock; no throw, no park; sets the final state in
  // the same critical section as the dequeue, so no parker can validate in between.
  parking_lot::unpark_one(this, [this, force_fair](parking_lot::UnparkResult result) noexcept {
    if (result.unparked_threads != 0 && (force_fair || result.be_fair)) {
      // Hand-off: kLockedBit stays set (INV-M2); kParkedBit reflects the remaining queue.
      if (!result.have_more_threads) {
        // Relaxed: only this thread (the owner) and bucket-locked code write the word now; the
        // new owner is synchronized by the parking lot's wake.
        state_.store(kLockedBit, std::memory_order_relaxed);
      }
      return kTokenHandoff;
    }
    // (M3) release: pairs with the acquire of the next locker (M1). Keep kParkedBit while
    // threads remain parked (INV-M1).
    state_.store(result.have_more_threads ? kParkedBit : std::uint8_t{0},
                 std::memory_order_release);
    return kTokenNormal;
  });
}

bool Mutex::mark_parked_if_locked() noexcept {
  std::uint8_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & kLockedBit) == 0) return false;
    // Relaxed: under the mutex's bucket lock; the bit carries no data.
    if (state_.compare_exchange_weak(s, static_cast<std::uint8_t>(s | kParkedBit),
                                     std::memory_order_relaxed, std::memory_order_relaxed)) {
      return true;
    }
  }
}

void Mutex::mark_parked() noexcept {
  // Relaxed: under the mutex's bucket lock; the bit carries no data.
  state_.fetch_or(kParkedBit, std::memory_order_relaxed);
}

}  // namespace parkpool

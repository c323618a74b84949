// parkpool::SharedMutex slow paths. State table and invariants in <parkpool/shared_mutex.hpp>.
#include <parkpool/shared_mutex.hpp>

#include <cstdio>
#include <cstdlib>

namespace parkpool {
namespace {

constexpr parking_lot::ParkToken kReaderToken{1};
constexpr parking_lot::ParkToken kWriterToken{2};
constexpr parking_lot::UnparkToken kTokenNormal{0};
constexpr parking_lot::UnparkToken kTokenHandoff{1};

[[noreturn]] void too_many_readers() noexcept {
  std::fputs("parkpool::SharedMutex: reader count overflow (2^29 - 1 readers)\n", stderr);
  std::abort();
}

// The unpark_filter filter that selects whom an unlock wakes, as parking_lot's RwLock does: a
// writer at the head of the queue alone; otherwise every queued reader and the first queued
// writer (later writers stay parked). Waking that writer with the readers is what keeps it from
// being forgotten: a writer queued behind readers that stayed parked would only be woken by the
// next exclusive unlock, and the readers' unlock_shared never wakes key `this`. Runs under the
// bucket lock (no throw, no park, short); it counts what it selected.
struct HeadBatch {
  std::size_t readers = 0;
  bool writer = false;
  parking_lot::FilterOp operator()(parking_lot::ParkToken t) noexcept {
    if (t == kWriterToken) {
      if (writer) return parking_lot::FilterOp::skip;
      writer = true;
      return parking_lot::FilterOp::unpark;
    }
    if (writer && readers == 0) return parking_lot::FilterOp::stop;  // a head writer goes alone
    ++readers;
    return parking_lot::FilterOp::unpark;
  }
};

}  // namespace

bool SharedMutex::try_lock() noexcept {
  std::uint32_t s = state_.load(std::memory_order_relaxed);  // relaxed: seeds the CAS
  for (;;) {
    if ((s & kWriterBit) != 0 || s >= kOneReader) return false;
    // (S1') acquire, as (S1).
    if (state_.compare_exchange_weak(s, s | kWriterBit, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      deadlock::acquire_resource(this);
      return true;
    }
  }
}

bool SharedMutex::try_lock_shared() noexcept {
  std::uint32_t s = state_.load(std::memory_order_relaxed);  // relaxed: seeds the CAS
  for (;;) {
    if ((s & kWriterBit) != 0) return false;
    if (s >= kMaxReaders) too_many_readers();
    // (S3') acquire, as (S3).
    if (state_.compare_exchange_weak(s, s + kOneReader, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      deadlock::acquire_resource(this);
      return true;
    }
  }
}

bool SharedMutex::lock_slow(const parking_lot::Deadline& deadline) noexcept {
  parking_lot::SpinWait spin;
  // Relaxed loads of state_ in this loop only choose the next CAS (as in Mutex::lock_slow):
  // every acquisition is a CAS with acquire, and validate re-checks under the bucket lock.
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & kWriterBit) == 0) {
      // Claim the writer bit even with readers inside: from now on no new reader enters (no
      // writer starvation), then wait for the ones inside. (S1'') acquire, as (S1).
      if (state_.compare_exchange_weak(s, s | kWriterBit, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        // The claim blocks others from now on: it counts as holding the resource.
        deadlock::acquire_resource(this);
        return s < kOneReader || wait_for_readers(deadline);
      }
      continue;
    }
    if ((s & kParkedBit) == 0 && spin.spin()) {
      s = state_.load(std::memory_order_relaxed);
      continue;
    }
    if ((s & kParkedBit) == 0 &&
        !state_.compare_exchange_weak(s, s | kParkedBit, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
      continue;  // relaxed: the bit carries no data, validate re-checks it under the lock
    }
    // Callback checklist (validate, timed_out: bucket lock held; no throw, no park, short).
    const parking_lot::ParkResult r = parking_lot::park(
        this,
        [this]() noexcept {
          // Relaxed: whoever clears W after our P (in the word's order) saw P and wakes under
          // this bucket lock.
          const std::uint32_t st = state_.load(std::memory_order_relaxed);
          return (st & (kWriterBit | kParkedBit)) == (kWriterBit | kParkedBit);
        },
        []() noexcept {},
        [this](const void*, bool was_last_thread) noexcept {
          // INV-R1. An RMW, not a store: readers change the count concurrently. Relaxed: the
          // bit carries no data.
          if (was_last_thread) {
            state_.fetch_and(~kParkedBit, std::memory_order_relaxed);
          }
        },
        kWriterToken, deadline);
    if (r.is_unparked() && r.token() == kTokenHandoff) {
      // The writer bit is ours, but the readers handed off with us may be inside: drain them, as
      // after a claim (they see kWriterParkedBit and wake us, INV-R2).
      deadlock::acquire_resource(this);
      // wait_for_readers returns at once if they have all left (its first load is (S5)).
      return wait_for_readers(deadline);
    }
    if (r.is_timed_out()) return false;
    spin.reset();
    s = state_.load(std::memory_order_relaxed);
  }
}

bool SharedMutex::wait_for_readers(const parking_lot::Deadline& deadline) noexcept {
  parking_lot::SpinWait spin;
  // (S5) acquire: pairs with the readers' (S4) release sequence.
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (s < kOneReader) return true;
    if ((s & kWriterParkedBit) == 0 && spin.spin()) {
      s = state_.load(std::memory_order_acquire);  // (S5)
      continue;
    }
    // Acquire on failure: `s` may show a count of zero (S5). On success only because a failure
    // order may not be stronger (GCC's warning, Relacy); the count is re-read with (S5) anyway.
    if ((s & kWriterParkedBit) == 0 &&
        !state_.compare_exchange_weak(s, s | kWriterParkedBit, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
      continue;
    }
    parking_lot::ParkResult r = parking_lot::ParkResult::invalid();
    {
      // We park on readers_key() but wait for the readers, recorded as holders of `this`, as is
      // our own claim of the writer bit (lock_slow): the scope points the deadlock detector at
      // `this` and discounts that claim. No-op unless PARKPOOL_DEADLOCK_DETECTION.
      const deadlock::WaitForHolders waiting_for_readers(this);
      // Callback checklist (validate: bucket lock of readers_key(); no throw, no park, short).
      r = parking_lot::park(
          readers_key(),
          [this]() noexcept {
            // INV-R3: sleep only if the last reader will see kWriterParkedBit and wake us.
            const std::uint32_t st = state_.load(std::memory_order_relaxed);
            return st >= kOneReader && (st & kWriterParkedBit) != 0;
          },
          []() noexcept {}, [](const void*, bool) noexcept {}, kWriterToken, deadline);
    }
    if (r.is_timed_out()) {
      // Abandon the claim: readers may enter again; wake whoever parked behind our claim.
      // Relaxed: nothing was written under the claim, and an RMW keeps the release sequences of
      // the last unlock (S2) and the readers' (S4) going for the next acquirer.
      const std::uint32_t prev =
          state_.fetch_and(~(kWriterBit | kWriterParkedBit), std::memory_order_relaxed);
      deadlock::release_resource(this);
      if ((prev & kParkedBit) != 0) wake_after_abandoned_claim();
      return false;
    }
    s = state_.load(std::memory_order_acquire);  // (S5)
  }
}

void SharedMutex::unlock_shared_slow() noexcept {
  // Callback checklist (bucket lock of readers_key(); no throw, no park, short).
  parking_lot::unpark_one(readers_key(), [this](parking_lot::UnparkResult) noexcept {
    // INV-R2: cleared under the lock, so a writer's validate either runs before (and is woken
    // now) or after (and sees the bit clear: it re-checks the count instead of sleeping).
    // Relaxed: an RMW, so it continues our (S4) release sequence; the writer re-reads with (S5).
    state_.fetch_and(~kWriterParkedBit, std::memory_order_relaxed);
    return kTokenNormal;
  });
}

void SharedMutex::unlock_slow(bool force_fair) noexcept {
  // We hold the writer bit with no readers; kParkedBit is set. Wake a head writer alone, or every
  // queued reader and the first queued writer (HeadBatch).
  HeadBatch head;
  // Callback checklist (filter and callback: bucket lock held; no throw, no park, short).
  parking_lot::unpark_filter(
      this, head, [this, &head, force_fair](parking_lot::UnparkResult result) noexcept {
        // No reader can enter and no writer can claim while we hold kWriterBit, and only
        // parkers (setting kParkedBit, re-validated under this lock) race with us: a store is
        // safe. (S2') release, as (S2).
        const std::uint32_t parked = result.have_more_threads ? kParkedBit : 0U;
        if (result.unparked_threads != 0 && (force_fair || result.be_fair)) {
          if (head.readers > kMaxReaders / kOneReader) too_many_readers();
          // Hand-off: the readers' counts are added for them and the writer, if any, gets the
          // writer bit as a claim (no new reader enters) and drains those readers itself.
          const std::uint32_t owners = (head.writer ? kWriterBit : 0U) +
                                       static_cast<std::uint32_t>(head.readers) * kOneReader;
          state_.store(owners | parked, std::memory_order_release);
          return kTokenHandoff;
        }
        state_.store(parked, std::memory_order_release);
        return kTokenNormal;
      });
}

void SharedMutex::wake_after_abandoned_claim() noexcept {
  // Readers may be inside (we gave up waiting for them), so no hand-off: wake the queued readers
  // and the first queued writer (HeadBatch) normally and let them retry.
  HeadBatch head;
  parking_lot::unpark_filter(this, head, [this](parking_lot::UnparkResult result) noexcept {
    // An RMW: readers change the count concurrently. INV-R1. Relaxed: the bit carries no data.
    if (!result.have_more_threads) state_.fetch_and(~kParkedBit, std::memory_order_relaxed);
    return kTokenNormal;
  });
}

bool SharedMutex::lock_shared_slow(const parking_lot::Deadline& deadline) noexcept {
  parking_lot::SpinWait spin;
  // Relaxed loads of state_ in this loop only choose the next CAS, as in lock_slow.
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & kWriterBit) == 0) {
      if (s >= kMaxReaders) too_many_readers();
      // (S3'') acquire, as (S3).
      if (state_.compare_exchange_weak(s, s + kOneReader, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        deadlock::acquire_resource(this);
        return true;
      }
      continue;
    }
    if ((s & kParkedBit) == 0 && spin.spin()) {
      s = state_.load(std::memory_order_relaxed);
      continue;
    }
    if ((s & kParkedBit) == 0 &&
        !state_.compare_exchange_weak(s, s | kParkedBit, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
      continue;
    }
    // Callback checklist (validate, timed_out: bucket lock held; no throw, no park, short).
    const parking_lot::ParkResult r = parking_lot::park(
        this,
        [this]() noexcept {
          // Relaxed: whoever clears W after our P (in the word's order) saw P and wakes under
          // this bucket lock.
          const std::uint32_t st = state_.load(std::memory_order_relaxed);
          return (st & (kWriterBit | kParkedBit)) == (kWriterBit | kParkedBit);
        },
        []() noexcept {},
        [this](const void*, bool was_last_thread) noexcept {
          // INV-R1; an RMW and relaxed, as in lock_slow.
          if (was_last_thread) state_.fetch_and(~kParkedBit, std::memory_order_relaxed);
        },
        kReaderToken, deadline);
    if (r.is_unparked() && r.token() == kTokenHandoff) {  // our count was added
      deadlock::acquire_resource(this);
      return true;
    }
    if (r.is_timed_out()) return false;
    spin.reset();
    s = state_.load(std::memory_order_relaxed);
  }
}

}  // namespace parkpool

// Private interface between src/parking_lot.cpp and src/deadlock.cpp (deadlock detection).
#pragma once

namespace parkpool::parking_lot::detail {

// Called by park() around a sleep without deadline (only with PARKPOOL_DEADLOCK_DETECTION):
// `thread_data` identifies the calling thread's parking record.
void deadlock_park_begin(const void* thread_data) noexcept;
void deadlock_park_end() noexcept;

// With every bucket locked (so nobody is queued, dequeued or requeued): the key the thread of
// `thread_data` is parked on, or nullptr when it is not queued.
const void* parked_key_locked(const void* thread_data) noexcept;
void lock_all_buckets() noexcept;
// Aborts with a message when the calling thread runs a parking-lot callback (it holds a bucket
// lock: lock_all_buckets() would wait for itself forever).
void check_not_in_callback_here() noexcept;
void unlock_all_buckets() noexcept;

}  // namespace parkpool::parking_lot::detail

// Observing the parking lot's queues from a test without waking anyone: the race-free way to know
// that a thread is asleep on a key (a flag set just before a park call says only that the thread
// is about to park).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <thread>
#include <type_traits>

#include "parkpool/parking_lot.hpp"

namespace parkpool::test {

// The threads queued on `key` now: an unpark_filter whose filter skips every one of them.
inline std::size_t queued_on(const void* key) {
  namespace pl = parkpool::parking_lot;
  std::size_t n = 0;
  pl::unpark_filter(
      key,
      [&n](pl::ParkToken) {
        ++n;
        return pl::FilterOp::skip;
      },
      [](pl::UnparkResult) { return pl::kDefaultUnparkToken; });
  return n;
}

// How long the waits below wait for a thread to queue before they report a failure.
inline constexpr std::chrono::seconds kQueueWaitBound(30);

// Waits, yielding, until at least `n` threads are queued on `key`; after 30 s, a failure. It
// returns the failure instead of asserting, so that the calling test stops there (an ASSERT_*
// in a helper returns only from the helper, and the test went on):
//   ASSERT_TRUE(wait_until_queued(&key, n));
// [[nodiscard]]: a call that drops the result does not compile (-Werror).
[[nodiscard]] inline testing::AssertionResult wait_until_queued(const void* key, std::size_t n) {
  const auto end = std::chrono::steady_clock::now() + kQueueWaitBound;
  for (;;) {
    const std::size_t queued = queued_on(key);
    if (queued >= n) return testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= end) {
      return testing::AssertionFailure()
             << "threads never parked: " << queued << " of " << n << " queued on the key after "
             << kQueueWaitBound.count() << " s";
    }
    std::this_thread::yield();
  }
}

// What wait_queued_or_returned saw first. `returned` is a legitimate outcome of the wait: the
// caller tells from it whether the waiter slept (a waiter that should sleep but returns at once
// shows up in its own result, which the caller then checks); `timed_out` never is.
enum class QueuedOrReturned { queued, returned, timed_out };

// Waits, yielding, until a thread is queued on `key` or `returned` is set, whichever comes first;
// after 30 s of neither, timed_out. A waiter that returns at once instead of sleeping (a deadline
// taken as past) is then caught by its result, without a sleep and without a hang. The caller
// asserts that it did not time out, and goes on by the outcome:
//   const QueuedOrReturned seen = wait_queued_or_returned(&key, returned);
//   ASSERT_TRUE(in_time(seen));
//   if (seen == QueuedOrReturned::returned) ...
[[nodiscard]] inline QueuedOrReturned wait_queued_or_returned(const void* key,
                                                              const std::atomic<bool>& returned) {
  const auto end = std::chrono::steady_clock::now() + kQueueWaitBound;
  while (queued_on(key) == 0) {
    // Relaxed: only its value is used; the waiter's results are read after join(), which orders
    // them.
    if (returned.load(std::memory_order_relaxed)) return QueuedOrReturned::returned;
    if (std::chrono::steady_clock::now() >= end) return QueuedOrReturned::timed_out;
    std::this_thread::yield();
  }
  return QueuedOrReturned::queued;
}

// The assertion on wait_queued_or_returned's outcome: queued and returned pass, timed_out fails
// with a message, so that ASSERT_TRUE(in_time(seen)) stops the test at the call.
[[nodiscard]] inline testing::AssertionResult in_time(QueuedOrReturned seen) {
  if (seen != QueuedOrReturned::timed_out) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << "the waiter neither parked nor returned within " << kQueueWaitBound.count() << " s";
}

// A release action for JoinOnExit (join_on_exit.hpp), for threads that park on `keys` while
// `flag` is false (their validate reads it): the flag makes a later park return at once, since
// validate reads it under the bucket lock, which unpark_all takes after the store (so relaxed
// suffices); unpark_all wakes those already queued.
template <class... Keys>
std::function<void()> let_go(std::atomic<bool>& flag, const Keys&... key) {
  // The keys are the objects whose addresses the threads park on: a pointer passed here would
  // compile and unpark the pointer's own address instead.
  static_assert((!std::is_pointer_v<Keys> && ...), "pass the key object, not its address");
  return [&flag, ... keys = static_cast<const void*>(&key)] {
    flag.store(true, std::memory_order_relaxed);
    (parkpool::parking_lot::unpark_all(keys), ...);
  };
}

}  // namespace parkpool::test

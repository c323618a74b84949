// Observing the parking lot's queues from a test without waking anyone: the race-free way to know
// that a thread is asleep on a key (a flag set just before a park call says only that the thread
// is about to park).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

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

// Waits, yielding, until at least `n` threads are queued on `key`; after 30 s, a failure. It
// returns the failure instead of asserting, so that the calling test stops there (an ASSERT_*
// in a helper returns only from the helper, and the test went on):
//   ASSERT_TRUE(wait_until_queued(&key, n));
// [[nodiscard]]: a call that drops the result does not compile (-Werror).
[[nodiscard]] inline testing::AssertionResult wait_until_queued(const void* key, std::size_t n) {
  constexpr std::chrono::seconds kBound(30);
  const auto end = std::chrono::steady_clock::now() + kBound;
  for (;;) {
    const std::size_t queued = queued_on(key);
    if (queued >= n) return testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= end) {
      return testing::AssertionFailure() << "threads never parked: " << queued << " of " << n
                                         << " queued on the key after " << kBound.count() << " s";
    }
    std::this_thread::yield();
  }
}

// Waits until a thread is queued on `key` or `returned` is set, whichever comes first, and says
// whether one queued. A waiter that returns at once instead of sleeping (a deadline taken as past)
// is then caught by its result, without a sleep and without a hang; after 30 s of neither, a
// failure.
inline bool wait_queued_or_returned(const void* key, const std::atomic<bool>& returned) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (queued_on(key) == 0) {
    if (returned.load()) return false;
    if (std::chrono::steady_clock::now() >= end) {
      ADD_FAILURE() << "the waiter neither parked nor returned";
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

}  // namespace parkpool::test

// The portable backend of the Parker (see detail/parker_backend.hpp): a futex emulated with a
// mutex and a condition variable. Built on every platform.
#include <chrono>

#include "parkpool/detail/parker_backend.hpp"

namespace parkpool::detail {

WaitStatus PortableBackend::wait(Word& word, std::uint32_t expected,
                                 const Deadline& deadline) noexcept {
  std::unique_lock<std::mutex> lock(mutex);
  // Relaxed load under the mutex: an unpark that changed the word before taking the mutex in
  // wake_one() is ordered before this load by the mutex (its unlock happens-before our lock), so
  // a stale PARKED here means its wake_one() has not yet taken the mutex and will notify us.
  if (word.load(std::memory_order_relaxed) != expected) return WaitStatus::woken;
  before_sleep_hook_for_test(*this);  // tests only (detail/test_hook.hpp)
  using std::chrono::nanoseconds;
  switch (deadline.clock) {
    case Deadline::Clock::forever:
      condvar.wait(lock);
      return WaitStatus::woken;
    case Deadline::Clock::monotonic: {
      const std::chrono::steady_clock::time_point tp{nanoseconds(deadline.ns)};
      if (condvar.wait_until(lock, tp) == std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= tp) {
        return WaitStatus::timed_out;
      }
      return WaitStatus::woken;
    }
    case Deadline::Clock::realtime: {
      const std::chrono::system_clock::time_point tp{
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              nanoseconds(deadline.ns))};
      if (condvar.wait_until(lock, tp) == std::cv_status::timeout &&
          std::chrono::system_clock::now() >= tp) {
        return WaitStatus::timed_out;
      }
      return WaitStatus::woken;
    }
  }
  return WaitStatus::woken;
}

void PortableBackend::wake_one(Word& /*word*/) noexcept {
  // Taking and releasing the mutex orders this wake after the waiter's check-then-sleep: either
  // the waiter has not checked yet (and will see the new word) or it is already waiting.
  { std::lock_guard<std::mutex> lock(mutex); }
  condvar.notify_one();
}

}  // namespace parkpool::detail

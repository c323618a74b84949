// Shared helpers for parkpool's tests. Header-only; every test executable can include it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdlib>

namespace parkpool::test {

// True when the test runs under a sanitizer or valgrind, which slow concurrency code 5-50x.
inline bool slow_instrumentation() noexcept {
#if defined(PARKPOOL_UNDER_SANITIZER)
  return true;
#else
  return std::getenv("PARKPOOL_TEST_SLOW") != nullptr;
#endif
}

// Scales a stress iteration count down under instrumentation, so that the same test stays
// bounded in time everywhere. Never returns less than `floor`.
inline std::size_t scaled(std::size_t n, std::size_t divisor = 20,
                          std::size_t floor = 100) noexcept {
  if (!slow_instrumentation()) return n;
  std::size_t s = n / divisor;
  return s < floor ? (n < floor ? n : floor) : s;
}

// A wall-clock budget for a stress loop: loops stop at the iteration bound or at the budget,
// whichever comes first, so a slow machine shortens a stress test instead of timing it out.
class TimeBudget {
 public:
  explicit TimeBudget(std::chrono::milliseconds budget)
      : end_(std::chrono::steady_clock::now() + budget) {}
  bool exhausted() const noexcept { return std::chrono::steady_clock::now() >= end_; }

 private:
  std::chrono::steady_clock::time_point end_;
};

}  // namespace parkpool::test

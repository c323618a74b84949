// Internal: the two production backends of the Parker's protocol (detail/parker_protocol.hpp).
// Both are always built on Linux so that one test binary can run the same contract over both;
// PARKPOOL_PORTABLE_BACKEND chooses which one parkpool::Parker uses.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "parkpool/detail/cpu_relax.hpp"
#include "parkpool/detail/deadline.hpp"
#include "parkpool/detail/parker_protocol.hpp"
#include "parkpool/detail/test_hook.hpp"

#ifndef PARKPOOL_PORTABLE_BACKEND
#if defined(__linux__)
#define PARKPOOL_PORTABLE_BACKEND 0
#else
#define PARKPOOL_PORTABLE_BACKEND 1
#endif
#endif

namespace parkpool::detail {

inline std::int64_t monotonic_now_ns() noexcept {
  // libstdc++ and libc++ implement steady_clock with CLOCK_MONOTONIC (a vDSO read, no syscall).
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline std::int64_t realtime_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using ParkerWord = std::atomic<std::uint32_t>;
static_assert(sizeof(ParkerWord) == 4, "the futex word must be exactly 32 bits");
static_assert(ParkerWord::is_always_lock_free, "the parker word must be lock-free");

#if defined(__linux__)
// Sleeps with FUTEX_WAIT on the state word itself: no memory beyond the word, one syscall to
// sleep and one to wake. Deadlines are absolute (FUTEX_WAIT_BITSET), on CLOCK_MONOTONIC or, for
// system_clock deadlines, CLOCK_REALTIME (FUTEX_CLOCK_REALTIME), so EINTR never shifts them.
struct FutexBackend {
  using Word = ParkerWord;
  static constexpr const char* kName = "futex";
  static WaitStatus wait(Word& word, std::uint32_t expected, const Deadline& deadline) noexcept;
  static void wake_one(Word& word) noexcept;
  static std::int64_t monotonic_ns() noexcept { return monotonic_now_ns(); }
  static std::int64_t realtime_ns() noexcept { return realtime_now_ns(); }
  static void cpu_relax() noexcept { detail::cpu_relax(); }
};
#endif

// Emulates the futex with a mutex and a condition variable, the way crossbeam's parker does:
// wait() re-checks the word under the mutex before sleeping and wake_one() takes the mutex
// before notifying, so a wake between the check and the sleep cannot be lost. Builds anywhere.
struct PortableBackend {
  using Word = ParkerWord;
  static constexpr const char* kName = "portable";
  WaitStatus wait(Word& word, std::uint32_t expected, const Deadline& deadline) noexcept;
  void wake_one(Word& word) noexcept;
  static std::int64_t monotonic_ns() noexcept { return monotonic_now_ns(); }
  static std::int64_t realtime_ns() noexcept { return realtime_now_ns(); }
  static void cpu_relax() noexcept { detail::cpu_relax(); }

  // Tests only: a hook wait() calls with the mutex held, after the word check found `expected`
  // and before the condition variable's wait (nullptr: none). It is called for every
  // PortableBackend that is about to sleep, so a hook checks the backend it is given and returns
  // at once for any other. It lets a test hold a waiter between its check and its sleep, the
  // window that wake_one()'s lock round closes. Costs one relaxed load and a branch, only on the
  // sleep path, which is about to block anyway.
  static inline TestHook<PortableBackend&> before_sleep_hook_for_test;

  std::mutex mutex;
  std::condition_variable condvar;
};

#if PARKPOOL_PORTABLE_BACKEND
using DefaultParkerBackend = PortableBackend;
#else
using DefaultParkerBackend = FutexBackend;
#endif

}  // namespace parkpool::detail

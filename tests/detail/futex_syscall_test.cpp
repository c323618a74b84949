// detail::futex_syscall: the inline futex(2) call of the Parker's backend and the parking lot.
// Checks the calling convention (each argument register reaches the kernel: the value, the
// timeout, the bitset) and the return convention (-errno, errno untouched), which the callers
// rely on to tell a timeout from a wake. futex(2) is Linux only: elsewhere this file has no
// tests (the header is not used there).
#include <gtest/gtest.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <thread>

#include "parkpool/detail/futex_syscall.hpp"
#include "thread_state.hpp"

namespace {

using parkpool::detail::futex_syscall;

TEST(FutexSyscall, WaitOnAChangedWordReturnsMinusEagainAndLeavesErrnoAlone) {
  std::uint32_t word = 1;
  errno = 1234;
  EXPECT_EQ(futex_syscall(&word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0), -EAGAIN);
  EXPECT_EQ(errno, 1234);
}

TEST(FutexSyscall, RelativeTimeoutReachesTheKernel) {
  std::uint32_t word = 0;
  const timespec ts{0, 2'000'000};  // 2 ms
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(futex_syscall(&word, FUTEX_WAIT_PRIVATE, 0, &ts, nullptr, 0), -ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2));
}

TEST(FutexSyscall, AbsoluteDeadlineAndBitsetReachTheKernel) {
  std::uint32_t word = 0;
  timespec now{};
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &now), 0);
  // FUTEX_WAIT_BITSET reads an absolute CLOCK_MONOTONIC deadline (r10) and the bitset (r9).
  EXPECT_EQ(
      futex_syscall(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, &now, nullptr, FUTEX_BITSET_MATCH_ANY),
      -ETIMEDOUT);
  // An empty bitset is invalid: only the kernel seeing val3 == 0 gives EINVAL here.
  EXPECT_EQ(futex_syscall(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, &now, nullptr, 0), -EINVAL);
}

TEST(FutexSyscall, WakeWithNoWaiterReturnsZero) {
  std::uint32_t word = 0;
  EXPECT_EQ(futex_syscall(&word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0), 0);
}

TEST(FutexSyscall, WakeReturnsTheThreadItWokeAndTheWaiterReturnsZero) {
  std::atomic<std::uint32_t> word{0};
  std::uint32_t* const addr = reinterpret_cast<std::uint32_t*>(&word);  // what the kernel sees
  std::atomic<pid_t> tid{0};
  std::atomic<long> waiter_rc{1};
  std::thread waiter([&] {
    // Release / acquire: pairs with the loop below, which then reads the thread's state by tid.
    tid.store(static_cast<pid_t>(syscall(SYS_gettid)), std::memory_order_release);
    // One untimed wait: only a FUTEX_WAKE (or a signal, which this test sends none of) ends it.
    // Release: pairs with the acquire loads below and the final read after join().
    waiter_rc.store(futex_syscall(addr, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0),
                    std::memory_order_release);
  });
  pid_t t = 0;
  while ((t = tid.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
  // Wake only once the waiter sleeps (in the kernel); bounded, so a broken call fails instead of
  // hanging. A waiter that never got to sleep leaves waiter_rc at 1 and fails below.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  (void)parkpool::test::wait_until_sleeping(t, std::chrono::seconds(20));
  long woken = 0;
  while (woken == 0 && std::chrono::steady_clock::now() < give_up &&
         waiter_rc.load(std::memory_order_acquire) == 1) {
    woken = futex_syscall(addr, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  if (woken == 0) {
    // Unblock the thread before failing, so that the test ends. Relaxed: the kernel compares
    // the word itself; nothing is published through it.
    word.store(1, std::memory_order_relaxed);
    futex_syscall(addr, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  waiter.join();
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(waiter_rc.load(std::memory_order_relaxed), 0);  // ordered by join()
}

}  // namespace
#endif  // __linux__

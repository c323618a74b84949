// Probe tests for tests/test_watchdog_test.cpp, which runs this executable with a --gtest_filter
// and checks how test_main.cpp's hang watchdog ends it. Not a test of its own (no add_test).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

// Sleeps in FUTEX_WAIT on a word nobody changes: the shape of a lost wakeup.
[[noreturn]] void hang_probe_thread() {
  static std::atomic<std::uint32_t> word{0};
  for (;;) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, 0u, nullptr,
              nullptr, 0);
  }
}

}  // namespace

TEST(Probe, HangsInAFutexWait) {
  std::thread t([] {
    ::pthread_setname_np(::pthread_self(), "hang-probe");
    hang_probe_thread();
  });
  t.join();  // never returns
}
#endif  // __linux__

// Each takes 0.4 s, 1.2 s together: under a 1 s limit, a watchdog that re-arms at every test start
// reports none of them (0.6 s to spare each, for a loaded machine); one that counted from the
// first start would report the third.
TEST(Probe, FinishesIn400msA) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); }
TEST(Probe, FinishesIn400msB) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); }
TEST(Probe, FinishesIn400msC) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); }

// White-box tests of the production backends (detail/parker_backend.hpp): how one backend keeps
// the contract inside, which the contract tests over every backend (parker_protocol_test.cpp)
// cannot reach. The portable backend is built on every platform, so these run in every build.
#include <parkpool/detail/parker_backend.hpp>
#include <parkpool/detail/parker_protocol.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;
using parkpool::detail::Deadline;
using parkpool::detail::kParked;
using parkpool::detail::ParkerWord;
using parkpool::detail::PortableBackend;
using parkpool::detail::WaitStatus;

// The state the hook shares with the test: globals, since the hook is a plain function pointer.
// The hook acts only for g_target, the test's own backend; every other backend passes through.
// Relaxed unless said otherwise: each flag carries only its own value, and the test reads them
// after join(), which orders them.
std::atomic<PortableBackend*> g_target{nullptr};
std::atomic<bool> g_in_window{false};           // the waiter checked the word and has not slept yet
std::atomic<bool> g_wake_returned{false};       // the waker's wake_one() returned
std::atomic<bool> g_returned_in_window{false};  // ... before the hook let the waiter sleep

// The bounded wait for an event that must not happen: with wake_one()'s lock round, wake_one()
// blocks on the mutex the waiter holds while the hook runs, so it cannot return before the hook
// does. Without the lock round it returns within microseconds of the waker seeing g_in_window;
// 200 ms is that with a wide margin for sanitizers and a loaded machine, and is what every
// passing run pays.
constexpr auto kWindow = 200ms;

// Called by PortableBackend::wait() with its mutex held, after the word check, before the sleep.
void hold_between_check_and_sleep(PortableBackend& backend) {
  if (&backend != g_target.load(std::memory_order_relaxed)) return;
  // Release, pairs with the waker's acquire load: the waiter's check of the word happens-before
  // the waker's change of it, so the check cannot see the change (the window is really open).
  g_in_window.store(true, std::memory_order_release);
  const auto end = std::chrono::steady_clock::now() + kWindow;
  while (!g_wake_returned.load(std::memory_order_relaxed) &&
         std::chrono::steady_clock::now() < end) {
    std::this_thread::yield();
  }
  g_returned_in_window.store(g_wake_returned.load(std::memory_order_relaxed),
                             std::memory_order_relaxed);
}

// Installs the hook for one backend and removes it on every way out of the test.
class BeforeSleepHook {
 public:
  // The hook is installed first, inert until g_target names the backend (it checks that).
  explicit BeforeSleepHook(PortableBackend& backend)
      : installed_(PortableBackend::before_sleep_hook_for_test, &hold_between_check_and_sleep) {
    g_in_window.store(false, std::memory_order_relaxed);
    g_wake_returned.store(false, std::memory_order_relaxed);
    g_returned_in_window.store(false, std::memory_order_relaxed);
    g_target.store(&backend, std::memory_order_relaxed);
  }
  ~BeforeSleepHook() { g_target.store(nullptr, std::memory_order_relaxed); }
  BeforeSleepHook(const BeforeSleepHook&) = delete;
  BeforeSleepHook& operator=(const BeforeSleepHook&) = delete;

 private:
  parkpool::detail::TestHook<PortableBackend&>::Scoped installed_;  // removed after g_target
};

// wait() checks the word and sleeps under the mutex; wake_one() takes and releases that mutex
// before notifying. The lock round is what keeps a wake from falling between the check and the
// sleep: without it, the notify finds no sleeper and the waiter sleeps past the wake (forever,
// for an untimed park). The window is a few instructions wide, so this test holds the waiter in
// it with the backend's test hook while the waker changes the word and calls wake_one().
// The waiter calls the backend's wait() itself, not the protocol's park: park would consume the
// token left in the word on the way out of a timeout and report `unparked` all the same.
TEST(PortableBackend, AWakeBetweenTheCheckAndTheSleepIsNotLost) {
  PortableBackend backend;
  ParkerWord word{kParked};
  BeforeSleepHook hook(backend);

  // Relaxed: a flag for the waker to stop waiting for a window the waiter never reached.
  std::atomic<bool> waiter_returned{false};
  std::thread waker([&] {
    // Acquire, pairs with the release store in the hook.
    while (!g_in_window.load(std::memory_order_acquire) &&
           !waiter_returned.load(std::memory_order_relaxed)) {
      std::this_thread::yield();
    }
    // What an unpark does: PARKED -> NOTIFIED, then wake_one() since the owner is parked.
    parkpool::detail::ParkerProtocol<PortableBackend>::unpark(word, backend);
    g_wake_returned.store(true, std::memory_order_relaxed);
  });

  // The deadline only ends a sleep that a lost wake would make endless, so that the failure is a
  // message and not a ctest TIMEOUT. With the lock round the waiter is woken as soon as it sleeps
  // (the waker is blocked on the mutex its sleep releases); 5 s is far beyond that anywhere.
  const std::int64_t deadline_ns =
      parkpool::detail::monotonic_now_ns() + std::chrono::nanoseconds(5s).count();
  const WaitStatus status = backend.wait(word, kParked, Deadline::monotonic(deadline_ns));
  waiter_returned.store(true, std::memory_order_relaxed);
  waker.join();

  ASSERT_TRUE(g_in_window.load(std::memory_order_relaxed))
      << "the hook never held the waiter between its check and its sleep: the test proved nothing";
  EXPECT_FALSE(g_returned_in_window.load(std::memory_order_relaxed))
      << "wake_one() returned while wait() held the mutex between its check of the word and its "
         "sleep: it did not take the mutex before notifying";
  EXPECT_TRUE(status == WaitStatus::woken)
      << "lost wakeup: wait() returned timed_out: the word changed and wake_one() notified while "
         "the waiter was between its check and its sleep, and the waiter slept until its deadline";
}

}  // namespace

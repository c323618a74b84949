// Stress tests of thread parking and block_on: bounded in iterations and in time.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "parkpool/async_event.hpp"
#include "parkpool/task.hpp"
#include "parkpool/thread_parker.hpp"
#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::AsyncEvent;
using parkpool::Task;

// Several block_on threads, each awaiting a chain of events that other threads set, while extra
// "noise" wakers hit the same threads' block_on parkers with stale tokens. The noise wakers are
// the block_on calls' own (BlockOnContext::owner_waker): since block_on parks on a parker of its
// own, a this_thread::waker() no longer reaches it (it did when this test was written).
TEST(ThreadParkerStress, BlockOnWithConcurrentSettersAndStaleWakes) {
  constexpr int kWaiters = 3;
  const std::size_t rounds = parkpool::test::scaled(50'000, 20, 50);
  parkpool::test::TimeBudget budget(60s);
  std::vector<std::vector<AsyncEvent>> events(kWaiters);
  for (auto& v : events) v = std::vector<AsyncEvent>(rounds);
  std::vector<parkpool::Waker> wakers(kWaiters);
  std::barrier start(kWaiters + 2);
  std::atomic<bool> stop_noise{false};

  std::vector<std::thread> waiters;
  std::vector<std::size_t> completed(kWaiters, 0);
  // progress[w] = the round waiter w is about to await: the setter sets round r once every
  // waiter reached it, so most sets meet a suspended (or suspending) coroutine. Correctness does
  // not depend on this pacing; it only makes the interesting interleavings frequent.
  std::vector<std::atomic<std::size_t>> progress(kWaiters);
  for (int w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&, w] {
      auto chain = [&]() -> Task<std::size_t> {
        // Runs on this thread inside block_on, before its first suspension.
        wakers[static_cast<std::size_t>(w)] =
            parkpool::detail::BlockOnContext::current()->owner_waker();
        start.arrive_and_wait();
        std::size_t n = 0;
        for (auto& e : events[static_cast<std::size_t>(w)]) {
          progress[static_cast<std::size_t>(w)].store(n, std::memory_order_relaxed);
          co_await e;
          ++n;
        }
        co_return n;
      };
      completed[static_cast<std::size_t>(w)] = parkpool::block_on(chain());
    });
  }
  std::thread setter([&] {
    start.arrive_and_wait();
    for (std::size_t r = 0; r < rounds; ++r) {
      for (auto& p : progress) {
        while (p.load(std::memory_order_relaxed) < r && !budget.exhausted()) {
          std::this_thread::yield();
        }
      }
      for (auto& v : events) v[r].set();
    }
  });
  std::thread noise([&] {
    start.arrive_and_wait();
    std::vector<parkpool::Waker> copies = wakers;  // written before the barrier
    // Each copy keeps its thread's block_on parker state alive: a wake after that block_on
    // returned (or its thread exited) is one more stale token, harmless by the same rule.
    while (!stop_noise.load(std::memory_order_relaxed) && !budget.exhausted()) {
      for (auto& w : copies) parkpool::Waker(w).wake();  // clone + consuming wake
    }
  });
  for (auto& t : waiters) t.join();
  stop_noise.store(true, std::memory_order_relaxed);
  setter.join();
  noise.join();
  for (std::size_t c : completed) EXPECT_EQ(c, rounds);
}

// Shutdown racing with repeated parks and unparks from several threads: never hangs.
TEST(ThreadParkerStress, ShutdownRacesWithUnparkers) {
  const std::size_t iters = parkpool::test::scaled(20'000, 20, 50);
  parkpool::test::TimeBudget budget(60s);
  for (std::size_t i = 0; i < iters && !budget.exhausted(); ++i) {
    parkpool::ParkThread p;
    std::barrier sync(3);
    std::thread unparker([&, u = p.unpark()] {
      sync.arrive_and_wait();
      for (int k = 0; k < 3; ++k) u.unpark();
    });
    std::thread stopper([&] {
      sync.arrive_and_wait();
      p.shutdown();
    });
    sync.arrive_and_wait();
    while (!p.is_shutdown()) p.park();  // must terminate: shutdown always wakes
    p.park();
    unparker.join();
    stopper.join();
  }
}

}  // namespace

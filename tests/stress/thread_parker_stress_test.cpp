// Stress tests of thread parking and block_on: bounded in iterations and in time.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "join_on_exit.hpp"
#include "parkpool/async_event.hpp"
#include "parkpool/task.hpp"
#include "parkpool/thread_parker.hpp"
#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::AsyncEvent;
using parkpool::Task;
using parkpool::test::WakeWithin;

// Several block_on threads, each awaiting a chain of events that a setter sets, while a noise
// thread hits the same threads' block_on parkers with stale tokens. The noise wakers are the
// block_on calls' own (BlockOnContext::owner_waker): since block_on parks on a parker of its own,
// a this_thread::waker() no longer reaches it (it did when this test was written).
//
// A waiter whose resumption is queued depends on Resumption::resume's wake of its thread. One
// watcher (WakeWithin over `ended`, the count of rounds every waiter has ended) bounds each
// round: one that has not ended 20 s after the previous one fails the test naming it; the
// release then wakes every waiter's block_on parker (which finds its resumption queued), and
// the threads stop at their next round. The noise is paced by the same rounds, one stale wake
// per waiter once every waiter has reached the round, racing with that round's set() but never
// outliving it: until 2026-12-08 it woke the waiters without pause, which rescued every lost
// wake (with that wake deleted the test passed, in 5.6 s) and left nothing to bound.
TEST(ThreadParkerStress, BlockOnWithConcurrentSettersAndStaleWakes) {
  constexpr int kWaiters = 3;
  const std::size_t rounds = parkpool::test::scaled(50'000, 20, 50);
  parkpool::test::TimeBudget budget(60s);
  std::vector<std::vector<AsyncEvent>> events(kWaiters);
  for (auto& v : events) v = std::vector<AsyncEvent>(rounds);
  std::vector<parkpool::Waker> wakers(kWaiters);
  // Release increments, after a waiter wrote its waker: the watcher's release reads them only
  // once it sees all (acquire), as the barrier below publishes them to the noise thread.
  std::atomic<int> wakers_made{0};
  std::barrier start(kWaiters + 2);
  // progress[w] = the round waiter w is about to await: the setter sets round r once every
  // waiter reached it, so most sets meet a suspended (or suspending) coroutine, and the noise
  // thread wakes every waiter once per round then too. Relaxed: a count only compared.
  std::vector<std::atomic<std::size_t>> progress(kWaiters);
  std::atomic<std::size_t> ended{0};  // rounds every waiter ended (stored by the setter)
  const WakeWithin wake(
      "a waiter's block_on, which the setter's AsyncEvent::set must wake; the round is the "
      "first one some waiter has not ended",
      ended, [&] {
        if (wakers_made.load(std::memory_order_acquire) < kWaiters) return;
        for (const parkpool::Waker& w : wakers) w.wake_by_ref();
      });

  std::vector<std::thread> waiters;
  std::vector<std::size_t> completed(kWaiters, 0);
  for (int w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&, w] {
      auto chain = [&]() -> Task<std::size_t> {
        // Runs on this thread inside block_on, before its first suspension.
        wakers[static_cast<std::size_t>(w)] =
            parkpool::detail::BlockOnContext::current()->owner_waker();
        wakers_made.fetch_add(1, std::memory_order_release);
        start.arrive_and_wait();
        std::size_t n = 0;
        for (auto& e : events[static_cast<std::size_t>(w)]) {
          if (wake.lost()) break;  // the test failed: stop at the next round
          progress[static_cast<std::size_t>(w)].store(n, std::memory_order_relaxed);
          co_await e;
          ++n;
        }
        co_return n;
      };
      completed[static_cast<std::size_t>(w)] = parkpool::block_on(chain());
    });
  }
  // Waits until every waiter reached round r (or the pacing no longer matters).
  const auto all_reached = [&](std::size_t r) {
    for (auto& p : progress) {
      while (p.load(std::memory_order_relaxed) < r && !budget.exhausted() && !wake.lost()) {
        std::this_thread::yield();
      }
    }
  };
  std::thread setter([&] {
    start.arrive_and_wait();
    for (std::size_t r = 0; r < rounds; ++r) {
      all_reached(r);
      ended.store(r, std::memory_order_relaxed);  // relaxed: WakeWithin only compares it
      // After a failure too: a waiter that already awaits a later round needs its event set.
      for (auto& v : events) v[r].set();
    }
  });
  std::thread noise([&] {
    start.arrive_and_wait();
    std::vector<parkpool::Waker> copies = wakers;  // written before the barrier
    // Each copy keeps its thread's block_on parker state alive: a wake after that block_on
    // returned (or its thread exited) is one more stale token, harmless by the same rule.
    for (std::size_t r = 0; r < rounds && !budget.exhausted() && !wake.lost(); ++r) {
      all_reached(r);
      for (auto& w : copies) parkpool::Waker(w).wake();  // clone + consuming wake
    }
  });
  for (auto& t : waiters) t.join();
  setter.join();
  noise.join();
  if (!wake.lost()) {
    for (std::size_t c : completed) EXPECT_EQ(c, rounds);
  }
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

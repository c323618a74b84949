// Regression (issue 5): the pool's workers called IdleCoordinator::found_work(i) without the
// has_more() re-check, so the first worker woken from idle, as the last searcher, always woke the
// next sleeper too: two FUTEX_WAKEs per task after an idle period (the second one before the task
// started: wake latency 22 us instead of 2 us on the 2-vCPU VM), and a wasted wake + spin + park
// per task under sparse load. With the fix, one task posted to an idle pool wakes exactly one
// worker. The count is exact: every park ends as an unpark, a timeout (none: untimed parks here)
// or is still in progress, and nothing but the claim for that one task unparks a worker.
#include <parkpool/thread_pool.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;

parkpool::PoolOptions untimed_sleep(std::size_t threads) {
  parkpool::PoolOptions o;
  o.threads = threads;
  o.idle.spin_min = 0ns;
  o.idle.spin_max = 0ns;    // no spin: an idle worker parks at once
  o.idle.timed_park = 0ns;  // untimed park: only a wake ends it
  return o;
}

// True once every worker is inside (or about to enter) its park: parks counted minus parks that
// ended. A worker bumps `parks` before it parks, and wakes only by an unpark here.
bool all_parked(const parkpool::ThreadPool& pool) {
  const parkpool::PoolStats s = pool.stats();
  for (const parkpool::WorkerStats& w : s.workers) {
    if (w.parks - w.unparks - w.timed_out_parks != 1) return false;
  }
  return true;
}

void wait_all_parked(const parkpool::ThreadPool& pool) {
  // Bounded by the ctest TIMEOUT; the state, not a sleep, orders the test.
  while (!all_parked(pool)) std::this_thread::yield();
}

TEST(Issue5WastedWake, OneTaskOnAnIdlePoolWakesOneWorker) {
  for (std::size_t threads : {2u, 4u}) {
    parkpool::ThreadPool pool(untimed_sleep(threads));
    for (int round = 0; round < 20; ++round) {
      wait_all_parked(pool);
      const std::uint64_t before = pool.stats().total.unparks;
      std::atomic<bool> ran{false};
      pool.post([&ran] { ran.store(true, std::memory_order_release); });
      while (!ran.load(std::memory_order_acquire)) std::this_thread::yield();
      wait_all_parked(pool);
      EXPECT_EQ(pool.stats().total.unparks - before, 1u)
          << "threads " << threads << ", round " << round
          << ": a single task must wake exactly one sleeping worker";
    }
  }
}

TEST(Issue5WastedWake, ABacklogStillRampsUpASecondWorker) {
  // The other half of the rule: when work is still queued after the woken worker took its task,
  // it wakes the next sleeper (ramp-up). Two tasks that each wait for the other can only finish
  // if both run at once, i.e. if the second worker was woken.
  parkpool::ThreadPool pool(untimed_sleep(2));
  for (int round = 0; round < 20; ++round) {
    wait_all_parked(pool);
    std::atomic<int> arrived{0};
    std::atomic<int> left{0};
    std::thread::id ids[2];
    auto meet = [&](int k) {
      ids[k] = std::this_thread::get_id();
      arrived.fetch_add(1, std::memory_order_acq_rel);
      while (arrived.load(std::memory_order_acquire) < 2) std::this_thread::yield();
      left.fetch_add(1, std::memory_order_release);
    };
    pool.post([&] { meet(0); });
    pool.post([&] { meet(1); });
    while (left.load(std::memory_order_acquire) < 2) std::this_thread::yield();
    EXPECT_NE(ids[0], ids[1]) << "round " << round;
  }
  wait_all_parked(pool);
}

}  // namespace

// Stress tests for the parking lot and its primitives: bounded in iterations (scaled down under
// sanitizers) and in wall time (TimeBudget), ordered by barriers, never by sleeps.
#include <parkpool/condvar.hpp>
#include <parkpool/mutex.hpp>
#include <parkpool/parking_lot.hpp>
#include <parkpool/shared_mutex.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

using namespace std::chrono_literals;

namespace {

// Resident set size in KiB from /proc/self/status (0 if unavailable).
long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

}  // namespace

TEST(ParkingLotStress, ThreadChurnKeepsMemoryBounded) {
  // Threads are created, park, get unparked and exit in a loop. The table never allocates and
  // per-thread data dies with the thread: RSS after many rounds stays near RSS after a few.
  parkpool::Mutex m;
  parkpool::Condvar cv;
  const std::size_t rounds = parkpool::test::scaled(2000, 10, 100);
  parkpool::test::TimeBudget budget(60s);
  long rss_after_warmup = 0;
  for (std::size_t r = 0; r < rounds && !budget.exhausted(); ++r) {
    bool go = false;  // guarded by m
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i) {
      ts.emplace_back([&] {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return go; });
      });
    }
    {
      std::scoped_lock lk(m);
      go = true;
    }
    cv.notify_all();
    for (auto& t : ts) t.join();
    if (r == 50) rss_after_warmup = rss_kib();
  }
  const long rss_end = rss_kib();
  if (rss_after_warmup > 0) {
    // 8 MiB of slack for allocator noise; a per-thread leak of even 1 KiB over 2000 x 4 threads
    // would exceed it.
    EXPECT_LT(rss_end - rss_after_warmup, 8 * 1024) << rss_after_warmup << " -> " << rss_end;
  }
}

TEST(ParkingLotStress, MpmcQueueManyThreadsOnFewCores) {
  parkpool::Mutex m;
  parkpool::Condvar not_empty;
  parkpool::Condvar not_full;
  std::deque<std::size_t> q;
  constexpr std::size_t kCap = 8;
  constexpr int kProducers = 8;
  constexpr int kConsumers = 8;
  const std::size_t per = parkpool::test::scaled(50000);
  std::atomic<std::size_t> consumed{0};
  std::atomic<std::size_t> sum{0};
  bool closed = false;  // guarded by m
  std::vector<std::thread> ts;
  for (int p = 0; p < kProducers; ++p) {
    ts.emplace_back([&] {
      for (std::size_t i = 1; i <= per; ++i) {
        std::unique_lock lk(m);
        not_full.wait(lk, [&] { return q.size() < kCap; });
        q.push_back(i);
        lk.unlock();
        not_empty.notify_one();
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    ts.emplace_back([&] {
      for (;;) {
        std::unique_lock lk(m);
        not_empty.wait(lk, [&] { return !q.empty() || closed; });
        if (q.empty()) return;
        const std::size_t v = q.front();
        q.pop_front();
        lk.unlock();
        not_full.notify_one();
        sum.fetch_add(v, std::memory_order_relaxed);
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (int p = 0; p < kProducers; ++p) ts[static_cast<std::size_t>(p)].join();
  {
    std::scoped_lock lk(m);
    closed = true;
  }
  not_empty.notify_all();
  for (std::size_t i = kProducers; i < ts.size(); ++i) ts[i].join();
  EXPECT_EQ(consumed.load(), per * kProducers);
  EXPECT_EQ(sum.load(), kProducers * per * (per + 1) / 2);
}

TEST(ParkingLotStress, TimedLocksRacingUnlocksNeverLoseTheLock) {
  // Timed-out waiters clear kParkedBit only when last; a mistake shows as a thread parked
  // forever (hang -> ctest TIMEOUT) or as a broken counter.
  parkpool::Mutex m;
  long counter = 0;
  std::atomic<long> timeouts{0};
  const std::size_t iters = parkpool::test::scaled(20000);
  parkpool::test::TimeBudget budget(60s);
  std::vector<std::thread> ts;
  std::vector<long> mine(6, 0);
  std::barrier start(6);
  for (int t = 0; t < 6; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < iters && !budget.exhausted(); ++i) {
        if (m.try_lock_for(std::chrono::microseconds(i % 50))) {
          ++counter;
          ++mine[static_cast<std::size_t>(t)];
          if (i % 7 == 0) {
            m.unlock_fair();
          } else {
            m.unlock();
          }
        } else {
          timeouts.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  long total = 0;
  for (long v : mine) total += v;
  EXPECT_EQ(counter, total);
  EXPECT_FALSE(m.is_locked());
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(ParkingLotStress, SharedMutexWritersAndTimedReaders) {
  parkpool::SharedMutex m;
  long a = 0;
  long b = 0;
  std::atomic<long> bad{0};
  const std::size_t iters = parkpool::test::scaled(20000);
  parkpool::test::TimeBudget budget(60s);
  std::barrier start(8);
  std::vector<std::thread> ts;
  for (int w = 0; w < 3; ++w) {
    ts.emplace_back([&, w] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < iters && !budget.exhausted(); ++i) {
        const bool got =
            (w == 0) ? (m.lock(), true) : m.try_lock_for(std::chrono::microseconds(i % 30));
        if (!got) continue;
        ++a;
        ++b;
        // Writer 1 hands off (unlock_fair) every other time: hand-offs to a writer draining the
        // readers handed off with it, besides the parking lot's own occasional fair unlocks.
        if (w == 1 && i % 2 == 0) {
          m.unlock_fair();
        } else {
          m.unlock();
        }
      }
    });
  }
  for (int r = 0; r < 5; ++r) {
    ts.emplace_back([&, r] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < iters && !budget.exhausted(); ++i) {
        const bool got = (r % 2 == 0) ? (m.lock_shared(), true)
                                      : m.try_lock_shared_for(std::chrono::microseconds(i % 30));
        if (!got) continue;
        if (a != b) bad.fetch_add(1);
        m.unlock_shared();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(ParkingLotStress, RequeueStormWithTimedWaiters) {
  parkpool::Mutex m;
  parkpool::Condvar cv;
  long epoch = 0;  // guarded by m
  const std::size_t rounds = parkpool::test::scaled(20000);
  parkpool::test::TimeBudget budget(60s);
  std::atomic<bool> stop{false};
  std::barrier start(7);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 6; ++i) {
    waiters.emplace_back([&, i] {
      start.arrive_and_wait();
      std::unique_lock lk(m);
      while (!stop.load(std::memory_order_relaxed)) {
        const long seen = epoch;
        if (i % 3 == 0) {
          cv.wait_for(lk, std::chrono::microseconds(50),
                      [&] { return epoch != seen || stop.load(); });
        } else {
          cv.wait(lk, [&] { return epoch != seen || stop.load(); });
        }
      }
    });
  }
  start.arrive_and_wait();
  for (std::size_t r = 0; r < rounds && !budget.exhausted(); ++r) {
    {
      std::scoped_lock lk(m);
      ++epoch;
      if (r % 3 == 0) cv.notify_all();
    }
    if (r % 3 == 1) cv.notify_all();
    if (r % 3 == 2) cv.notify_one();
  }
  {
    std::scoped_lock lk(m);
    stop.store(true);
    ++epoch;
  }
  cv.notify_all();
  for (auto& t : waiters) t.join();  // a lost notify_all hangs here
}

// Tests for <parkpool/deadlock.hpp>. The cycle tests need a build with
// -DPARKPOOL_DEADLOCK_DETECTION=ON; in other builds they are skipped and only the no-op contract
// is checked.
#include <parkpool/deadlock.hpp>
#include <parkpool/mutex.hpp>
#include <parkpool/parking_lot.hpp>
#include <parkpool/shared_mutex.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <set>
#include <thread>
#include <vector>

#include <unistd.h>

#include "join_on_exit.hpp"
#include "parking_lot_probe.hpp"

namespace pl = parkpool::parking_lot;
namespace dd = parkpool::deadlock;
using namespace std::chrono_literals;

namespace {

using parkpool::test::JoinOnExit;
using parkpool::test::let_go;
using parkpool::test::once;
using parkpool::test::queued_on;
using parkpool::test::wait_until_queued;

// A thread that holds `hold` and then parks (no deadline) on `wait_for` until `release` is set.
std::thread holder_waiter(const void* hold, const void* wait_for, std::latch& holding,
                          std::atomic<bool>& release) {
  return std::thread([hold, wait_for, &holding, &release] {
    dd::acquire_resource(hold);
    holding.count_down();
    holding.wait();  // every thread holds its resource before anyone parks
    while (!release.load()) {
      pl::park(
          wait_for, [&] { return !release.load(); }, [] {}, [](const void*, bool) {});
    }
    dd::release_resource(hold);
  });
}

// check_deadlock() until it reports at least `n` cycles, for at most 10 s. A thread counts as
// parked only once its before_sleep returned, a moment after wait_until_queued sees it queued
// (<parkpool/deadlock.hpp>): one check right after could miss a cycle that has just formed.
std::vector<dd::Cycle> check_until_cycles(std::size_t n) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    std::vector<dd::Cycle> cycles = dd::check_deadlock();
    if (cycles.size() >= n || std::chrono::steady_clock::now() > end) return cycles;
    std::this_thread::sleep_for(1ms);  // a bounded poll, not a wait for a race to pass
  }
}

const dd::DeadlockedThread* find_waiting_on(const dd::Cycle& c, const void* key) {
  for (const auto& t : c) {
    if (t.waiting_on == key) return &t;
  }
  return nullptr;
}

}  // namespace

TEST(Deadlock, DisabledBuildReportsNothing) {
  if (dd::kEnabled) GTEST_SKIP() << "built with PARKPOOL_DEADLOCK_DETECTION";
  int a = 0;
  dd::acquire_resource(&a);
  dd::release_resource(&a);
  EXPECT_TRUE(dd::check_deadlock().empty());
}

TEST(Deadlock, FindsPlantedTwoThreadCycle) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  int a = 0;
  int b = 0;
  std::latch holding(2);
  std::atomic<bool> release{false};
  std::thread t1 = holder_waiter(&a, &b, holding, release);
  std::thread t2 = holder_waiter(&b, &a, holding, release);
  JoinOnExit join(let_go(release, a, b), t1, t2);
  ASSERT_TRUE(wait_until_queued(&a, 1));
  ASSERT_TRUE(wait_until_queued(&b, 1));
  const std::vector<dd::Cycle> cycles = check_until_cycles(1);
  ASSERT_EQ(cycles.size(), 1U);
  ASSERT_EQ(cycles[0].size(), 2U);
  const auto* w_b = find_waiting_on(cycles[0], &b);
  const auto* w_a = find_waiting_on(cycles[0], &a);
  ASSERT_NE(w_b, nullptr);
  ASSERT_NE(w_a, nullptr);
  EXPECT_EQ(w_b->thread, t1.get_id());
  EXPECT_EQ(w_a->thread, t2.get_id());
  EXPECT_EQ(w_b->holding, std::vector<const void*>{&a});
  release.store(true);
  pl::unpark_all(&a);
  pl::unpark_all(&b);
  t1.join();
  t2.join();
  EXPECT_TRUE(dd::check_deadlock().empty());
}

TEST(Deadlock, FindsPlantedThreeThreadCycle) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  int a = 0;
  int b = 0;
  int c = 0;
  std::latch holding(3);
  std::atomic<bool> release{false};
  std::thread t1 = holder_waiter(&a, &b, holding, release);
  std::thread t2 = holder_waiter(&b, &c, holding, release);
  std::thread t3 = holder_waiter(&c, &a, holding, release);
  JoinOnExit join(let_go(release, a, b, c), t1, t2, t3);
  ASSERT_TRUE(wait_until_queued(&a, 1));
  ASSERT_TRUE(wait_until_queued(&b, 1));
  ASSERT_TRUE(wait_until_queued(&c, 1));
  const std::vector<dd::Cycle> cycles = check_until_cycles(1);
  ASSERT_EQ(cycles.size(), 1U);
  ASSERT_EQ(cycles[0].size(), 3U);
  std::set<std::thread::id> ids;
  for (const auto& t : cycles[0]) ids.insert(t.thread);
  EXPECT_EQ(ids, (std::set<std::thread::id>{t1.get_id(), t2.get_id(), t3.get_id()}));
  release.store(true);
  for (const void* k :
       {static_cast<const void*>(&a), static_cast<const void*>(&b), static_cast<const void*>(&c)}) {
    pl::unpark_all(k);
  }
  t1.join();
  t2.join();
  t3.join();
}

TEST(Deadlock, NoCycleInACorrectProgram) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  // t1 holds a and waits on an event nobody holds; t2 waits on a (a chain, not a cycle); a timed
  // park is never part of a deadlock.
  int a = 0;
  int event = 0;
  std::latch holding(1);
  std::atomic<bool> release{false};
  std::thread t1 = holder_waiter(&a, &event, holding, release);
  holding.wait();
  std::thread t2([&] {
    while (!release.load()) {
      pl::park(
          &a, [&] { return !release.load(); }, [] {}, [](const void*, bool) {});
    }
  });
  int b = 0;
  std::thread t3([&] {
    dd::acquire_resource(&b);
    pl::park(
        &b, [] { return true; }, [] {}, [](const void*, bool) {}, pl::kDefaultParkToken,
        pl::deadline_after(300ms));  // waits on what it holds, but with a deadline
    dd::release_resource(&b);
  });
  JoinOnExit join(let_go(release, event, a, b), t1, t2, t3);
  ASSERT_TRUE(wait_until_queued(&event, 1));
  ASSERT_TRUE(wait_until_queued(&a, 1));
  ASSERT_TRUE(wait_until_queued(&b, 1));  // t3 really is in its timed park when we look
  EXPECT_TRUE(dd::check_deadlock().empty());
  t3.join();
  release.store(true);
  pl::unpark_all(&event);
  pl::unpark_all(&a);
  t1.join();
  t2.join();
}

TEST(Deadlock, FindsAbbaWithRealMutexes) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  parkpool::Mutex a;
  parkpool::Mutex b;
  std::latch both_locked(2);
  std::thread t1([&] {
    a.lock();
    both_locked.arrive_and_wait();
    b.lock();
    b.unlock();
    a.unlock();
  });
  std::thread t2([&] {
    b.lock();
    both_locked.arrive_and_wait();
    a.lock();
    a.unlock();
    b.unlock();
  });
  // Breaks the deadlock as the test does below.
  JoinOnExit join(once([&] { a.unlock(); }), t1, t2);
  ASSERT_TRUE(wait_until_queued(&a, 1));
  ASSERT_TRUE(wait_until_queued(&b, 1));
  const std::vector<dd::Cycle> cycles = check_until_cycles(1);
  ASSERT_EQ(cycles.size(), 1U);
  EXPECT_EQ(cycles[0].size(), 2U);
  // Break the deadlock from outside: parkpool::Mutex does not track its owner, so unlocking a
  // on t1's behalf lets t2 finish, which then lets t1 finish; t1's own final unlock of a is then
  // an unlock of an unlocked mutex, harmless for this mutex (a test-only trick).
  a.unlock();
  t2.join();
  t1.join();
}

namespace {

// The key a SharedMutex writer parks on while it waits for the readers to leave (documented in
// <parkpool/shared_mutex.hpp>: the object's address + 1).
const void* readers_key(const parkpool::SharedMutex& s) {
  return static_cast<const void*>(reinterpret_cast<const char*>(&s) + 1);
}

// The cycle of FindsWriterWaitingForAReaderThatWaitsForIt; a helper so that a failed ASSERT
// returns here and the test still breaks the deadlock and joins its threads.
void expect_reader_writer_cycle(const std::vector<dd::Cycle>& cycles,
                                const parkpool::SharedMutex& s, const parkpool::Mutex& m,
                                std::thread::id r, std::thread::id w) {
  ASSERT_EQ(cycles.size(), 1U);
  ASSERT_EQ(cycles[0].size(), 2U);
  const auto* w_s = find_waiting_on(cycles[0], &s);  // reported as waiting for s, not s + 1
  const auto* w_m = find_waiting_on(cycles[0], &m);
  ASSERT_NE(w_s, nullptr);
  ASSERT_NE(w_m, nullptr);
  EXPECT_EQ(w_s->thread, w);
  EXPECT_EQ(w_m->thread, r);
  EXPECT_EQ(w_s->holding, (std::vector<const void*>{&m, &s}));  // m, and its claim on s
  EXPECT_EQ(w_m->holding, std::vector<const void*>{&s});
}

}  // namespace

TEST(Deadlock, FindsWriterWaitingForAReaderThatWaitsForIt) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  // r reads s and then wants m; w holds m and then wants to write s. w claims the writer bit and
  // parks on s's second key until the readers leave: the edge w -> r goes through that key.
  parkpool::SharedMutex s;
  parkpool::Mutex m;
  std::latch both_locked(2);
  std::thread r([&] {
    s.lock_shared();
    both_locked.arrive_and_wait();
    m.lock();
    m.unlock();
    s.unlock_shared();
  });
  std::thread w([&] {
    m.lock();
    both_locked.arrive_and_wait();
    s.lock();
    s.unlock();
    m.unlock();
  });
  // Breaks the deadlock as the test does below.
  JoinOnExit join(once([&] { m.unlock(); }), r, w);
  ASSERT_TRUE(wait_until_queued(&m, 1));
  ASSERT_TRUE(wait_until_queued(readers_key(s), 1));
  expect_reader_writer_cycle(check_until_cycles(1), s, m, r.get_id(), w.get_id());
  // Break it as in FindsAbbaWithRealMutexes: unlocking m on w's behalf lets r finish, whose
  // unlock_shared lets w finish; w's own final unlock of m is harmless for this mutex.
  m.unlock();
  r.join();
  w.join();
  EXPECT_TRUE(dd::check_deadlock().empty());
}

TEST(Deadlock, WriterWaitingForOtherReadersIsNoCycle) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  // The writer's claim on s is recorded as holding s, and it waits for the holders of s: its own
  // claim must not count as a self-loop.
  parkpool::SharedMutex s;
  std::latch reading(1);
  std::atomic<bool> release{false};
  std::thread r([&] {
    s.lock_shared();
    reading.count_down();
    while (!release.load()) std::this_thread::yield();
    s.unlock_shared();
  });
  reading.wait();
  std::thread w([&] {
    s.lock();
    s.unlock();
  });
  // Relaxed: it publishes nothing, r only stops spinning on it and leaves.
  JoinOnExit join([&] { release.store(true, std::memory_order_relaxed); }, r, w);
  ASSERT_TRUE(wait_until_queued(readers_key(s), 1));
  EXPECT_TRUE(dd::check_deadlock().empty());
  release.store(true);
  r.join();
  w.join();
}

TEST(Deadlock, FindsReaderThatTriesToWrite) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  // lock() while holding lock_shared() on the same SharedMutex: the thread claims the writer bit
  // and waits for itself to leave. Its read hold counts even though its claim does not.
  parkpool::SharedMutex s;
  std::thread t([&] {
    s.lock_shared();
    s.lock();
    s.unlock();  // the main thread released the read hold on t's behalf
  });
  // Releases t's read hold on its behalf, as the test does below.
  JoinOnExit join(once([&] { s.unlock_shared(); }), t);
  ASSERT_TRUE(wait_until_queued(readers_key(s), 1));
  const std::vector<dd::Cycle> cycles = check_until_cycles(1);
  EXPECT_EQ(cycles.size(), 1U);
  if (cycles.size() == 1U) {
    EXPECT_EQ(cycles[0].size(), 1U);
    EXPECT_EQ(cycles[0][0].thread, t.get_id());
    EXPECT_EQ(cycles[0][0].waiting_on, static_cast<const void*>(&s));
  }
  s.unlock_shared();  // on t's behalf: SharedMutex does not track readers (test-only trick)
  t.join();
}

namespace {

// Waits, yielding, until `flag` is set, at most 30 s; false when it never was.
bool wait_for_flag(const std::atomic<bool>& flag) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!flag.load()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

// "When a parked thread counts: from the moment its park's before_sleep callback has returned".
// A thread parks (no deadline) on a resource it holds: while it is still in before_sleep (queued
// already) a check reports nothing; once it sleeps, it is a one-thread cycle ("a thread waiting
// on a resource it holds"), holding the resource once: it took it twice and gave back one hold
// ("Forgets one hold").
TEST(Deadlock, ParkCountsOnceBeforeSleepReturnedAndAThreadWaitingOnWhatItHoldsIsACycle) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  int r = 0;
  std::atomic<bool> in_before_sleep{false};
  std::atomic<bool> checked{false};
  std::atomic<bool> release{false};
  std::thread t([&] {
    dd::acquire_resource(&r);
    dd::acquire_resource(&r);
    dd::release_resource(&r);  // one of two holds: it still holds r
    while (!release.load()) {
      pl::park(
          &r, [&] { return !release.load(); },
          [&] {
            in_before_sleep.store(true);
            (void)wait_for_flag(checked);  // bounded; the release below sets it too
          },
          [](const void*, bool) {});
    }
    dd::release_resource(&r);
  });
  JoinOnExit join(
      [&] {
        checked.store(true);
        release.store(true);
        pl::unpark_all(&r);
      },
      t);
  ASSERT_TRUE(wait_for_flag(in_before_sleep));
  const std::vector<dd::Cycle> during = dd::check_deadlock();
  checked.store(true);
  EXPECT_TRUE(during.empty()) << "a thread still in before_sleep counted as parked";
  const std::vector<dd::Cycle> cycles = check_until_cycles(1);
  ASSERT_EQ(cycles.size(), 1U);
  ASSERT_EQ(cycles[0].size(), 1U);
  EXPECT_EQ(cycles[0][0].thread, t.get_id());
  EXPECT_EQ(cycles[0][0].waiting_on, static_cast<const void*>(&r));
  EXPECT_EQ(cycles[0][0].holding, std::vector<const void*>{&r});
  release.store(true);
  pl::unpark_all(&r);
  t.join();
  EXPECT_TRUE(dd::check_deadlock().empty());
}

// Only parks without a deadline count, also for a thread whose earlier park had none: a thread
// ends an untimed park, then holds r and parks on r with a deadline. Deterministic: the check
// runs while that timed park is queued and in before_sleep (which then returns and times out).
TEST(Deadlock, ATimedParkAfterAnUntimedOneIsNoDeadlock) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  int k = 0;
  int r = 0;
  std::atomic<bool> go{false};
  std::atomic<bool> in_before_sleep{false};
  std::atomic<bool> checked{false};
  pl::ParkResult timed = pl::ParkResult::invalid();
  std::thread t([&] {
    pl::park(
        &k, [&] { return !go.load(); }, [] {}, [](const void*, bool) {});
    dd::acquire_resource(&r);
    timed = pl::park(
        &r, [] { return true; },
        [&] {
          in_before_sleep.store(true);
          (void)wait_for_flag(checked);
        },
        [](const void*, bool) {}, pl::kDefaultParkToken, pl::deadline_after(0ns));
    dd::release_resource(&r);
  });
  JoinOnExit join(
      [&] {
        checked.store(true);
        go.store(true);
        pl::unpark_all(&k);
      },
      t);
  ASSERT_TRUE(wait_until_queued(&k, 1));
  EXPECT_EQ(pl::unpark_all(&k), 1U);
  ASSERT_TRUE(wait_for_flag(in_before_sleep));
  const std::vector<dd::Cycle> cycles = dd::check_deadlock();
  checked.store(true);
  t.join();
  EXPECT_TRUE(timed.is_timed_out());
  EXPECT_TRUE(cycles.empty()) << "a timed park counted as a wait (the untimed park's record left)";
}

// WaitForHolders: "scopes nest". An inner scope that ended gives the outer one back: the park
// counts as waiting for the holders of the outer resource, here the thread itself (its claim
// and one more hold of r1), and is reported with r1 as waiting_on.
TEST(Deadlock, WaitForHoldersScopesNest) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs -DPARKPOOL_DEADLOCK_DETECTION=ON";
  int r1 = 0;
  int r2 = 0;
  int k = 0;
  std::atomic<bool> release{false};
  std::thread t([&] {
    dd::acquire_resource(&r1);  // the claim
    dd::acquire_resource(&r1);  // and a hold that counts
    {
      const dd::WaitForHolders outer(&r1);
      { const dd::WaitForHolders inner(&r2); }
      while (!release.load()) {
        pl::park(
            &k, [&] { return !release.load(); }, [] {}, [](const void*, bool) {});
      }
    }
    dd::release_resource(&r1);
    dd::release_resource(&r1);
  });
  JoinOnExit join(let_go(release, k), t);
  ASSERT_TRUE(wait_until_queued(&k, 1));
  const std::vector<dd::Cycle> cycles = check_until_cycles(1);
  ASSERT_EQ(cycles.size(), 1U) << "the park did not count as waiting for r1";
  ASSERT_EQ(cycles[0].size(), 1U);
  EXPECT_EQ(cycles[0][0].waiting_on, static_cast<const void*>(&r1));
  release.store(true);
  pl::unpark_all(&k);
  t.join();
}

namespace {

// <parkpool/deadlock.hpp>: check_deadlock() "must not be called from a parking-lot callback".
// It locks every bucket, including the one the callback's caller holds: it used to hang there
// for good (the deadlock detector deadlocking, silently). Like a parking_lot call from a
// callback, it aborts with a message instead.
TEST(DeadlockDeathTest, CheckFromAParkingLotCallbackAbortsInsteadOfHanging) {
  if (!dd::kEnabled) GTEST_SKIP() << "needs PARKPOOL_DEADLOCK_DETECTION";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  int key = 0;
  EXPECT_DEATH(
      {
        // A bound: without the check the child hangs (as it used to); SIGALRM then ends it with
        // no message, which fails the test at once instead of at the binary's ctest TIMEOUT.
        alarm(20);
        pl::unpark_one(&key, [](pl::UnparkResult) {
          (void)dd::check_deadlock();
          return pl::kDefaultUnparkToken;
        });
      },
      "from a callback");
}

}  // namespace

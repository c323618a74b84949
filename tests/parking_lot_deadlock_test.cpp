// Tests for <parkpool/deadlock.hpp>. The cycle tests need a build with
// -DPARKPOOL_DEADLOCK_DETECTION=ON; in other builds they are skipped and only the no-op contract
// is checked.
#include <parkpool/deadlock.hpp>
#include <parkpool/mutex.hpp>
#include <parkpool/parking_lot.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <set>
#include <thread>
#include <vector>

namespace pl = parkpool::parking_lot;
namespace dd = parkpool::deadlock;
using namespace std::chrono_literals;

namespace {

std::size_t queued_on(const void* key) {
  std::size_t n = 0;
  pl::unpark_filter(
      key,
      [&n](pl::ParkToken) {
        ++n;
        return pl::FilterOp::skip;
      },
      [](pl::UnparkResult) { return pl::kDefaultUnparkToken; });
  return n;
}

void wait_until_queued(const void* key, std::size_t n) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (queued_on(key) < n) {
    ASSERT_LT(std::chrono::steady_clock::now(), end) << "threads never parked";
    std::this_thread::yield();
  }
}

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
  wait_until_queued(&a, 1);
  wait_until_queued(&b, 1);
  const std::vector<dd::Cycle> cycles = dd::check_deadlock();
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
  wait_until_queued(&a, 1);
  wait_until_queued(&b, 1);
  wait_until_queued(&c, 1);
  const std::vector<dd::Cycle> cycles = dd::check_deadlock();
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
  wait_until_queued(&event, 1);
  wait_until_queued(&a, 1);
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
  wait_until_queued(&a, 1);
  wait_until_queued(&b, 1);
  const std::vector<dd::Cycle> cycles = dd::check_deadlock();
  ASSERT_EQ(cycles.size(), 1U);
  EXPECT_EQ(cycles[0].size(), 2U);
  // Break the deadlock from outside: parkpool::Mutex does not track its owner, so unlocking a
  // on t1's behalf lets t2 finish, which then lets t1 finish; t1's own final unlock of a is then
  // an unlock of an unlocked mutex, harmless for this mutex (a test-only trick).
  a.unlock();
  t2.join();
  t1.join();
}

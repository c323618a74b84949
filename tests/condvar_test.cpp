// Contract tests for <parkpool/condvar.hpp>.
//
// A lost wakeup (a notify or an unlock that wakes nobody) fails the test that loses it instead of
// hanging the binary: the test's thread never joins a waiter without a bound. The waiters' bodies
// are counted by Finished (join_on_exit.hpp), which the test waits for with a 20 s bound (far
// above any legitimate wake); on failure the ASSERT returns and the test's JoinOnExit releases the
// stranded waiters through a path independent of the notify under test where it can: it makes
// the predicate true and calls notify_all() repeatedly (a notify_all that wakes only one still
// frees one waiter per call), and unpark_all on the mutex's key frees a waiter that a broken
// unlock left parked on the mutex.
#include <parkpool/condvar.hpp>
#include <parkpool/parking_lot.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <deque>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "join_on_exit.hpp"
#include "parking_lot_probe.hpp"
#include "parkpool_test.hpp"

using namespace std::chrono_literals;
using parkpool::Condvar;
using parkpool::Mutex;

namespace {

using parkpool::test::Finished;
using parkpool::test::in_time;
using parkpool::test::JoinOnExit;
using parkpool::test::queued_on;
using parkpool::test::QueuedOrReturned;
using parkpool::test::wait_queued_or_returned;
using parkpool::test::wait_until_queued;

// Part of a release action: frees a thread that a lost unlock wakeup left parked on `m`'s key
// (parkpool::Mutex parks on its own address; its lock loop then retries). A no-op for std::mutex.
template <class M>
void unpark_mutex(M& m) {
  if constexpr (std::is_same_v<M, Mutex>) parkpool::parking_lot::unpark_all(&m);
}

// The contract shared with std::condition_variable, run on both (typed suite).
template <class M, class CV>
struct CvPair {
  using Mutex = M;
  using Condvar = CV;
};
template <class P>
class CondvarContract : public ::testing::Test {};
using CvPairs = ::testing::Types<CvPair<parkpool::Mutex, parkpool::Condvar>,
                                 CvPair<std::mutex, std::condition_variable>>;
TYPED_TEST_SUITE(CondvarContract, CvPairs);

TYPED_TEST(CondvarContract, WaitForTimesOutAndRelocks) {
  typename TypeParam::Mutex m;
  typename TypeParam::Condvar cv;
  std::unique_lock<typename TypeParam::Mutex> lk(m);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(cv.wait_for(lk, 10ms, [] { return false; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 10ms);
  EXPECT_TRUE(lk.owns_lock());
}

TYPED_TEST(CondvarContract, NotifiedPredicateWaitReturnsWithTheLock) {
  typename TypeParam::Mutex m;
  typename TypeParam::Condvar cv;
  int value = 0;  // guarded by m
  Finished finished;
  std::thread waiter(finished([&] {
    std::unique_lock<typename TypeParam::Mutex> lk(m);
    cv.wait(lk, [&] { return value == 1; });
    value = 2;
  }));
  // Repeated until it returns: makes the predicate true and notifies all.
  JoinOnExit join(
      [&] {
        // try_lock: the release must not itself block on a lock whose wakeup was lost.
        if (std::unique_lock<typename TypeParam::Mutex> lk(m, std::try_to_lock); lk) {
          if (value == 0) value = 1;
        }
        cv.notify_all();
        unpark_mutex(m);
      },
      waiter);
  {
    std::scoped_lock<typename TypeParam::Mutex> lk(m);
    value = 1;
  }
  cv.notify_one();
  // Bounded: a notify_one that wakes nobody fails here instead of hanging the join.
  ASSERT_TRUE(finished.within(1, "the waiter notify_one() must wake"));
  waiter.join();
  EXPECT_EQ(value, 2);
}

TYPED_TEST(CondvarContract, NotifyAllReleasesEveryWaiter) {
  typename TypeParam::Mutex m;
  typename TypeParam::Condvar cv;
  bool go = false;  // guarded by m
  int done = 0;     // guarded by m
  Finished finished;
  std::vector<std::thread> ts;
  for (int i = 0; i < 5; ++i) {
    ts.emplace_back(finished([&] {
      std::unique_lock<typename TypeParam::Mutex> lk(m);
      cv.wait(lk, [&] { return go; });
      ++done;
    }));
  }
  JoinOnExit join(
      [&] {
        // try_lock: the release must not itself block on a lock whose wakeup was lost.
        if (std::unique_lock<typename TypeParam::Mutex> lk(m, std::try_to_lock); lk) go = true;
        cv.notify_all();
        unpark_mutex(m);
      },
      ts);
  {
    std::scoped_lock<typename TypeParam::Mutex> lk(m);
    go = true;
  }
  cv.notify_all();
  // Bounded: a notify_all that misses a waiter fails here instead of hanging the joins.
  ASSERT_TRUE(finished.within(5, "the waiters notify_all() must wake"));
  for (auto& t : ts) t.join();
  EXPECT_EQ(done, 5);
}

}  // namespace

TEST(Condvar, FitsInEightBytes) { static_assert(sizeof(Condvar) <= 8); }

TEST(Condvar, NotifyWithoutWaitersDoesNothing) {
  Condvar cv;
  EXPECT_FALSE(cv.notify_one());
  EXPECT_EQ(cv.notify_all(), 0U);
}

TEST(Condvar, NotifyOneWakesExactlyOneAndNoSpuriousWakeups) {
  Mutex m;
  Condvar cv;
  std::atomic<int> returned{0};
  constexpr int kWaiters = 3;
  Finished finished;
  std::vector<std::thread> ts;
  for (int i = 0; i < kWaiters; ++i) {
    ts.emplace_back(finished([&] {
      std::unique_lock lk(m);
      cv.wait(lk);  // no predicate: returns only on a notify (no spurious wakeups)
      EXPECT_TRUE(lk.owns_lock());
      returned.fetch_add(1);
    }));
  }
  // Repeated until they return: also wakes a waiter that starts waiting after the first call.
  JoinOnExit join(
      [&] {
        cv.notify_all();
        parkpool::parking_lot::unpark_all(&m);
      },
      ts);
  ASSERT_TRUE(wait_until_queued(&cv, kWaiters));
  for (int i = 1; i <= kWaiters; ++i) {
    EXPECT_TRUE(cv.notify_one());
    // Bounded (it was, by an unnamed 30 s ASSERT_LT): a notify_one that wakes nobody fails here,
    // naming it.
    ASSERT_TRUE(finished.within(i, "the waiters the notify_one() calls, one each, must wake"));
    // Exactly i returned: the rest are still parked on the Condvar.
    EXPECT_EQ(returned.load(), i);
    EXPECT_EQ(queued_on(&cv), static_cast<std::size_t>(kWaiters - i));
  }
  for (auto& t : ts) t.join();
  EXPECT_FALSE(cv.notify_one());
}

TEST(Condvar, NotifyAllUnderLockRequeuesOntoTheMutex) {
  Mutex m;
  Condvar cv;
  constexpr int kWaiters = 8;
  int ready = 0;  // guarded by m
  Finished finished;
  std::vector<std::thread> ts;
  for (int i = 0; i < kWaiters; ++i) {
    ts.emplace_back(finished([&] {
      std::unique_lock lk(m);
      cv.wait(lk, [&] { return ready != 0; });
      ++ready;
    }));
  }
  JoinOnExit join(
      [&] {
        parkpool::parking_lot::unpark_all(&m);
        // try_lock: the release must not itself block on a lock whose wakeup was lost.
        if (std::unique_lock lk(m, std::try_to_lock); lk && ready == 0) ready = 1;
        cv.notify_all();
      },
      ts);
  ASSERT_TRUE(wait_until_queued(&cv, kWaiters));
  {
    std::unique_lock lk(m);
    ready = 1;
    EXPECT_EQ(cv.notify_all(), static_cast<std::size_t>(kWaiters));
    // Mutex held: nobody was woken, all moved to the mutex's queue (no thundering herd).
    EXPECT_EQ(queued_on(&cv), 0U);
    EXPECT_EQ(queued_on(&m), static_cast<std::size_t>(kWaiters));
  }
  // Bounded: each requeued waiter is woken by the previous holder's unlock; a lost hand-off
  // fails here instead of hanging the joins.
  ASSERT_TRUE(finished.within(kWaiters, "the requeued waiters each unlock must hand off to"));
  for (auto& t : ts) t.join();
  EXPECT_EQ(ready, kWaiters + 1);
}

// With the mutex free, notify_all wakes every waiter at once (one batched wake) instead of
// requeueing them; each relocks the mutex itself.
TEST(Condvar, NotifyAllWithoutLockWakesEveryWaiter) {
  Mutex m;
  Condvar cv;
  constexpr int kWaiters = 4;
  std::atomic<bool> ready{false};
  std::atomic<int> done{0};
  Finished finished;
  std::vector<std::thread> ts;
  for (int i = 0; i < kWaiters; ++i) {
    ts.emplace_back(finished([&] {
      std::unique_lock lk(m);
      while (!ready.load()) cv.wait(lk);
      done.fetch_add(1);
    }));
  }
  JoinOnExit join(
      [&] {
        // Relaxed: it publishes nothing, and a waiter that misses it is woken by a later call.
        ready.store(true, std::memory_order_relaxed);
        cv.notify_all();
        parkpool::parking_lot::unpark_all(&m);
      },
      ts);
  ASSERT_TRUE(wait_until_queued(&cv, kWaiters));
  ready.store(true);
  EXPECT_EQ(cv.notify_all(), static_cast<std::size_t>(kWaiters));
  EXPECT_EQ(queued_on(&cv), 0U);  // all left the Condvar's queue in the notify
  // Bounded: a waiter the notify_all dequeued but did not wake fails here, not in a hung join.
  ASSERT_TRUE(finished.within(kWaiters, "the waiters notify_all() must wake"));
  for (auto& t : ts) t.join();
  EXPECT_EQ(done.load(), kWaiters);
}

TEST(Condvar, TimeoutTable) {
  // deadline (past / now / short) x notify (never / before the deadline).
  struct Row {
    const char* name;
    std::chrono::milliseconds timeout;
    bool notify;
    std::cv_status expect;
  };
  const Row rows[] = {{"past, never", -1ms, false, std::cv_status::timeout},
                      {"now, never", 0ms, false, std::cv_status::timeout},
                      {"short, never", 20ms, false, std::cv_status::timeout},
                      {"long, notified", 30000ms, true, std::cv_status::no_timeout}};
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Mutex m;
    Condvar cv;
    std::cv_status st_for = std::cv_status::no_timeout;
    std::cv_status st_until = std::cv_status::no_timeout;
    bool unlocked_during_wait = false;
    Finished finished;
    std::thread t(finished([&] {
      std::unique_lock lk(m);
      const auto start = std::chrono::steady_clock::now();
      st_for = cv.wait_for(lk, row.timeout);
      EXPECT_TRUE(lk.owns_lock());
      EXPECT_TRUE(m.is_locked());
      if (!row.notify && row.timeout > 0ms) {
        EXPECT_GE(std::chrono::steady_clock::now() - start, row.timeout);
      }
      st_until = cv.wait_until(lk, std::chrono::system_clock::now() + row.timeout);
      EXPECT_TRUE(lk.owns_lock());
    }));
    JoinOnExit join(
        [&] {
          cv.notify_all();
          parkpool::parking_lot::unpark_all(&m);
        },
        t);
    if (row.notify) {
      for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(wait_until_queued(&cv, 1));
        // Taking the mutex proves the waiter released it while waiting.
        std::unique_lock lk(m);
        unlocked_during_wait = true;
        cv.notify_one();
      }
    }
    // Bounded below the notified row's 30 s waits: a lost notify fails here, naming it, rather
    // than after the waits time out.
    ASSERT_TRUE(finished.within(1, "the waiter, timed out or woken by notify_one()"));
    t.join();
    EXPECT_EQ(st_for, row.expect);
    EXPECT_EQ(st_until, row.expect);
    if (row.notify) {
      EXPECT_TRUE(unlocked_during_wait);
    }
    EXPECT_FALSE(m.is_locked());
    EXPECT_FALSE(cv.notify_one());  // the timed-out waiter left no trace
  }
}

TEST(Condvar, DeadlineTooFarToRepresentWaitsUntilNotified) {
  // A coarse time_point's max() is beyond steady_clock's nanoseconds: it must mean "no deadline".
  // Converting it to nanoseconds used to overflow (signed overflow, in practice a time in the
  // past), so these waits timed out at once. The notifier notifies only once the waiter is parked
  // on the Condvar; a waiter that times out at once has returned `timeout` by then, or, in the
  // predicate form, false: the first notify there leaves the predicate false, so the waiter must
  // wait again, with the same deadline, for the second. (A broken waiter can still win a race
  // with a notify that lands between its queueing and its deadline check; the conversion itself
  // is checked exactly in parking_lot_test, Deadline.TimePointsTooFarToRepresentMeanNoDeadline.)
  using namespace std::chrono;
  using Wait = bool (*)(Condvar&, std::unique_lock<Mutex>&, const bool& ready);
  struct Row {
    const char* name;
    Wait wait;     // true iff the wait ended because of a notify (with `ready` set)
    int notifies;  // the last one sets `ready`
  };
  const Row rows[] = {
      {"steady_clock seconds max",
       [](Condvar& cv, std::unique_lock<Mutex>& lk, const bool&) {
         return cv.wait_until(lk, time_point<steady_clock, seconds>::max()) ==
                std::cv_status::no_timeout;
       },
       1},
      {"sys_seconds max",
       [](Condvar& cv, std::unique_lock<Mutex>& lk, const bool&) {
         return cv.wait_until(lk, sys_seconds::max()) == std::cv_status::no_timeout;
       },
       1},
      {"system_clock hours max",
       [](Condvar& cv, std::unique_lock<Mutex>& lk, const bool&) {
         return cv.wait_until(lk, time_point<system_clock, hours>::max()) ==
                std::cv_status::no_timeout;
       },
       1},
      {"sys_seconds max, predicate",
       [](Condvar& cv, std::unique_lock<Mutex>& lk, const bool& ready) {
         return cv.wait_until(lk, sys_seconds::max(), [&] { return ready; });
       },
       2},
      {"steady_clock seconds max, predicate",
       [](Condvar& cv, std::unique_lock<Mutex>& lk, const bool& ready) {
         return cv.wait_until(lk, time_point<steady_clock, seconds>::max(), [&] { return ready; });
       },
       2},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Mutex m;
    Condvar cv;
    bool ready = false;  // guarded by m
    bool woken = false;
    std::atomic<bool> returned{false};
    Finished finished;
    std::thread t(finished([&] {
      std::unique_lock lk(m);
      woken = row.wait(cv, lk, ready);
      EXPECT_TRUE(lk.owns_lock());
      returned.store(true, std::memory_order_relaxed);  // `woken` is read after join()
    }));
    JoinOnExit join(
        [&] {
          parkpool::parking_lot::unpark_all(&m);
          // try_lock: the release must not itself block on a lock whose wakeup was lost.
          if (std::unique_lock lk(m, std::try_to_lock); lk) ready = true;
          cv.notify_all();
        },
        t);
    for (int i = 1; i <= row.notifies; ++i) {
      // The notify dequeues the waiter: seeing it parked again means it went back to waiting. A
      // return instead (its wait timed out) is reported by `woken`.
      const QueuedOrReturned seen = wait_queued_or_returned(&cv, returned);
      ASSERT_TRUE(in_time(seen));
      if (seen == QueuedOrReturned::returned) break;
      std::unique_lock lk(m);
      ready = i == row.notifies;
      cv.notify_one();
    }
    // Bounded: the wait has no deadline, so a lost notify_one would hang the join.
    ASSERT_TRUE(finished.within(1, "the waiter with no deadline notify_one() must wake"));
    t.join();
    EXPECT_TRUE(woken) << "the wait timed out instead of waiting for the notify";
  }
}

TEST(Condvar, DeadlineTooFarInThePastTimesOutAtOnce) {
  using namespace std::chrono;
  Mutex m;
  Condvar cv;
  std::unique_lock lk(m);
  EXPECT_EQ(cv.wait_until(lk, time_point<steady_clock, seconds>::min()), std::cv_status::timeout);
  EXPECT_EQ(cv.wait_until(lk, sys_seconds::min()), std::cv_status::timeout);
  EXPECT_EQ(cv.wait_until(lk, time_point<system_clock, hours>::min()), std::cv_status::timeout);
  EXPECT_FALSE(cv.wait_until(lk, sys_seconds::min(), [] { return false; }));
  EXPECT_TRUE(lk.owns_lock());
}

TEST(Condvar, PastDeadlineStillUnlocksAndRelocks) {
  // While a waiter with a past deadline is inside wait, another thread can take the mutex:
  // observed by requeue bookkeeping being clean and the relock being real.
  Mutex m;
  Condvar cv;
  std::unique_lock lk(m);
  EXPECT_EQ(cv.wait_until(lk, std::chrono::steady_clock::now() - 1s), std::cv_status::timeout);
  EXPECT_TRUE(lk.owns_lock());
  EXPECT_TRUE(m.is_locked());
  EXPECT_FALSE(cv.wait_for(lk, -1s, [] { return false; }));
  EXPECT_TRUE(cv.wait_for(lk, -1s, [] { return true; }));
}

TEST(Condvar, WaitWithoutOwningTheLockThrows) {
  Mutex m;
  Condvar cv;
  std::unique_lock<Mutex> lk(m, std::defer_lock);
  EXPECT_THROW(cv.wait(lk), std::system_error);
  std::unique_lock<Mutex> empty;
  EXPECT_THROW(cv.wait_for(empty, 1ms), std::system_error);
}

TEST(Condvar, TwoMutexesAtOnceThrowsAndKeepsTheLock) {
  Mutex m1;
  Mutex m2;
  Condvar cv;
  Finished finished;
  std::thread waiter(finished([&] {
    std::unique_lock lk(m1);
    cv.wait(lk);
  }));
  JoinOnExit join(
      [&] {
        cv.notify_all();
        parkpool::parking_lot::unpark_all(&m1);
      },
      waiter);
  ASSERT_TRUE(wait_until_queued(&cv, 1));
  {
    std::unique_lock lk(m2);
    EXPECT_THROW(cv.wait(lk), std::invalid_argument);
    EXPECT_TRUE(lk.owns_lock());
  }
  cv.notify_all();
  // Bounded: a notify_all that misses the waiter fails here instead of hanging the join.
  ASSERT_TRUE(finished.within(1, "the waiter notify_all() must wake"));
  waiter.join();
}

// INV-C1: the Condvar forgets its waiters' mutex when the last waiter leaves, whichever way it
// leaves: a timeout, notify_one or notify_all waking it (mutex free) or requeueing it onto the
// held mutex. A Condvar still pointing at the old mutex rejects the next waiter that brings
// another one ("two different mutexes at the same time", std::invalid_argument), and a later
// notify would use the old mutex, which may be destroyed by then.
TEST(Condvar, LastWaiterLeavingForgetsItsMutex) {
  enum class Leave { timeout, notify_one, notify_all };
  struct Row {
    const char* name;
    Leave leave;
    bool held;  // the notifier holds the mutex: the waiter is requeued onto it
  };
  const Row rows[] = {{"timeout", Leave::timeout, false},
                      {"notify_one, mutex free", Leave::notify_one, false},
                      {"notify_one, mutex held", Leave::notify_one, true},
                      {"notify_all, mutex free", Leave::notify_all, false},
                      {"notify_all, mutex held", Leave::notify_all, true}};
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Mutex first;
    Mutex second;
    Condvar cv;
    if (row.leave == Leave::timeout) {
      std::unique_lock lk(first);
      EXPECT_EQ(cv.wait_for(lk, 1ms), std::cv_status::timeout);
    } else {
      Finished finished;
      std::thread waiter(finished([&] {
        std::unique_lock lk(first);
        cv.wait(lk);
      }));
      JoinOnExit join(
          [&] {
            cv.notify_all();
            parkpool::parking_lot::unpark_all(&first);
          },
          waiter);
      ASSERT_TRUE(wait_until_queued(&cv, 1));
      // Taking the mutex proves the waiter released it (in wait): the mutex is then really free
      // for the rows that let it go before notifying.
      std::unique_lock lk(first);
      if (!row.held) lk.unlock();
      if (row.leave == Leave::notify_one) {
        EXPECT_TRUE(cv.notify_one());
      } else {
        EXPECT_EQ(cv.notify_all(), 1U);
      }
      EXPECT_EQ(queued_on(&cv), 0U);
      if (lk.owns_lock()) lk.unlock();
      // Bounded: a lost notify (or, requeued, a lost unlock wakeup) fails here, not in the join.
      ASSERT_TRUE(finished.within(1, "the waiter the notify must wake or requeue"));
      waiter.join();
    }
    // No waiter is left: a wait with another mutex is legal (here it times out at once).
    std::unique_lock lk(second);
    EXPECT_NO_THROW(EXPECT_EQ(cv.wait_for(lk, 0ms), std::cv_status::timeout));
  }
}

TEST(Condvar, TimedWaiterRequeuedOntoMutexIsNotATimeout) {
  // A notify that requeues the waiter onto the held mutex counts as a notification even if the
  // deadline passes while the waiter is queued on the mutex.
  Mutex m;
  Condvar cv;
  std::cv_status st = std::cv_status::timeout;
  Finished finished;
  std::thread t(finished([&] {
    std::unique_lock lk(m);
    st = cv.wait_for(lk, 200ms);
  }));
  JoinOnExit join(
      [&] {
        cv.notify_all();
        parkpool::parking_lot::unpark_all(&m);
      },
      t);
  ASSERT_TRUE(wait_until_queued(&cv, 1));
  {
    std::unique_lock lk(m);
    cv.notify_one();  // requeued onto m
    EXPECT_EQ(queued_on(&m), 1U);
    std::this_thread::sleep_for(300ms);  // time is what is tested: let the deadline pass
  }
  // Bounded: the requeued waiter is woken by this unlock; a lost one fails here.
  ASSERT_TRUE(finished.within(1, "the requeued waiter the unlock must wake"));
  t.join();
  EXPECT_EQ(st, std::cv_status::no_timeout);
}

TEST(Condvar, ProducerConsumerQueueDeliversEverythingOnce) {
  Mutex m;
  Condvar not_empty;
  Condvar not_full;
  std::deque<int> q;
  constexpr std::size_t kCapacity = 4;
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  const int per_producer = static_cast<int>(parkpool::test::scaled(20000));
  std::vector<long> consumed_sum(kConsumers, 0);
  std::atomic<int> remaining{kProducers * per_producer};
  Finished finished;
  std::vector<std::thread> ts;
  for (int p = 0; p < kProducers; ++p) {
    ts.emplace_back(finished([&, p] {
      for (int i = 1; i <= per_producer; ++i) {
        std::unique_lock lk(m);
        not_full.wait(lk, [&] { return q.size() < kCapacity; });
        q.push_back(p * per_producer + i);
        lk.unlock();
        not_empty.notify_one();
      }
    }));
  }
  for (int c = 0; c < kConsumers; ++c) {
    ts.emplace_back(finished([&, c] {
      for (;;) {
        std::unique_lock lk(m);
        not_empty.wait(lk, [&] { return !q.empty() || remaining.load() == 0; });
        if (q.empty()) return;
        consumed_sum[static_cast<std::size_t>(c)] += q.front();
        q.pop_front();
        if (remaining.fetch_sub(1) == 1) not_empty.notify_all();  // the last item: release all
        lk.unlock();
        not_full.notify_one();
      }
    }));
  }
  // A stranded producer or consumer is released by waking everyone repeatedly: the queue then
  // drains to the end (every predicate is re-checked under m).
  JoinOnExit join(
      [&] {
        parkpool::parking_lot::unpark_all(&m);
        not_full.notify_all();
        not_empty.notify_all();
      },
      ts);
  // Bounded (a generous 60 s for the whole run): a lost notify leaves a producer or consumer
  // asleep with work pending; that fails here instead of hanging the joins.
  ASSERT_TRUE(finished.within(kProducers + kConsumers,
                              "producers and consumers, each woken by the other side's notify",
                              60s));
  for (auto& t : ts) t.join();
  long total = 0;
  for (long s : consumed_sum) total += s;
  const long n = static_cast<long>(kProducers) * per_producer;
  EXPECT_EQ(total, n * (n + 1) / 2);
  EXPECT_TRUE(q.empty());
}

TEST(Condvar, RequeueStormNoLostNotification) {
  // Many waiters, notify_all and notify_one racing with timed waits: every round every waiter
  // must come back (bounded: a lost wakeup fails the round instead of hanging the joins).
  const std::size_t rounds = parkpool::test::scaled(300, 10, 20);
  parkpool::test::TimeBudget budget(30s);
  Mutex m;
  Condvar cv;
  for (std::size_t r = 0; r < rounds && !budget.exhausted(); ++r) {
    int generation = 0;  // guarded by m
    constexpr int kWaiters = 6;
    std::barrier start(kWaiters + 1);
    Finished finished;
    std::vector<std::thread> ts;
    for (int i = 0; i < kWaiters; ++i) {
      ts.emplace_back(finished([&, i] {
        start.arrive_and_wait();
        std::unique_lock lk(m);
        if (i % 2 == 0) {
          cv.wait(lk, [&] { return generation != 0; });
        } else {
          while (!cv.wait_for(lk, 1ms, [&] { return generation != 0; })) {
          }
        }
      }));
    }
    // The barrier is passed before any ASSERT below, so the release needs no count_down.
    start.arrive_and_wait();
    JoinOnExit join(
        [&] {
          parkpool::parking_lot::unpark_all(&m);
          cv.notify_all();
        },
        ts);
    {
      std::unique_lock lk(m);
      generation = 1;
      if (r % 2 == 0) cv.notify_all();
    }
    if (r % 2 != 0) {
      for (int i = 0; i < kWaiters; ++i) cv.notify_one();
      cv.notify_all();
    }
    ASSERT_TRUE(finished.within(kWaiters, "the round's waiters the notifies must wake"))
        << "round " << r;
    for (auto& t : ts) t.join();
  }
  EXPECT_FALSE(cv.notify_one());
}

TEST(Condvar, NotifyAllRacingTheDestructionOfTheLastWaitersMutex) {
  // notify_all reads the waiters' mutex from the Condvar without a lock; the waiter may leave
  // (its wait timed out) and destroy that mutex right after. notify_all used to ask the mutex
  // whether it was locked before re-checking, under the bucket lock, that a waiter still used
  // it: a read of freed memory (ASAN reports it when the race hits). Bounded in time and rounds.
  Condvar cv;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> notifies{0};
  std::thread notifier([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      cv.notify_all();
      notifies.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const std::size_t rounds = parkpool::test::scaled(200000);
  parkpool::test::TimeBudget budget(2s);
  std::size_t r = 0;
  for (; r < rounds && !budget.exhausted(); ++r) {
    auto m = std::make_unique<Mutex>();
    {
      std::unique_lock lk(*m);
      (void)cv.wait_for(lk, std::chrono::microseconds(r % 3));  // a timeout, or notified
      EXPECT_TRUE(lk.owns_lock());
    }
    m.reset();  // the notifier may still hold this address from its unlocked read
  }
  stop.store(true, std::memory_order_relaxed);
  notifier.join();
  EXPECT_GT(r, 0U);
  EXPECT_GT(notifies.load(), 0U);
}

// Contract tests for <parkpool/shared_mutex.hpp>; the shared contract also runs on
// std::shared_timed_mutex (typed suite).
//
// A lost wakeup or hand-off fails the test that loses it instead of hanging the binary: the
// test's thread waits for its threads with a 20 s bound (Finished, join_on_exit.hpp; far above
// any legitimate wake) before joining them, and on failure its JoinOnExit releases them
// independently of the unlock under test: unpark_all on the mutex's key and on its drain key
// (unpark_shared below; a woken waiter retries), besides any lock the test's thread still holds.
#include <parkpool/shared_mutex.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <latch>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "handoff_probe.hpp"
#include "join_on_exit.hpp"
#include "parking_lot_probe.hpp"
#include "parkpool_test.hpp"

using namespace std::chrono_literals;

namespace {

using parkpool::test::Finished;
using parkpool::test::JoinOnExit;
using parkpool::test::unlock_if_held;

// Part of a release action: wakes every thread parked on a parkpool::SharedMutex, on its own
// address (waiting writers and readers) and on its drain key (this + 1, a writer waiting for the
// readers to leave; see readers_key()). A woken waiter retries. A no-op for the std mutex.
template <class M>
void unpark_shared(M& m) {
  if constexpr (std::is_same_v<M, parkpool::SharedMutex>) {
    parkpool::parking_lot::unpark_all(&m);
    parkpool::parking_lot::unpark_all(reinterpret_cast<const char*>(&m) + 1);
  }
}

template <class M>
class SharedLockableContract : public ::testing::Test {};
using SharedTypes = ::testing::Types<parkpool::SharedMutex, std::shared_timed_mutex>;
TYPED_TEST_SUITE(SharedLockableContract, SharedTypes);

TYPED_TEST(SharedLockableContract, ReadersShareTheLock) {
  TypeParam m;
  // Both readers must be inside at the same time to pass the latch: an exclusive lock hangs.
  std::latch both_inside(2);
  auto reader = [&] {
    std::shared_lock lk(m);
    both_inside.arrive_and_wait();
  };
  std::thread a(reader);
  std::thread b(reader);
  a.join();
  b.join();
}

TYPED_TEST(SharedLockableContract, WriterExcludesReadersAndWriters) {
  TypeParam m;
  std::unique_lock wl(m);
  bool got_shared = true;
  bool got_exclusive = true;
  std::thread([&] {
    got_shared = m.try_lock_shared();
    got_exclusive = m.try_lock();
  }).join();
  EXPECT_FALSE(got_shared);
  EXPECT_FALSE(got_exclusive);
  wl.unlock();
  {
    std::shared_lock rl(m);
    std::thread([&] {
      got_shared = m.try_lock_shared();
      if (got_shared) m.unlock_shared();
      got_exclusive = m.try_lock();
    }).join();
    EXPECT_TRUE(got_shared);
    EXPECT_FALSE(got_exclusive);
  }
}

TYPED_TEST(SharedLockableContract, TimeoutTable) {
  struct Row {
    const char* name;
    std::chrono::milliseconds timeout;
  };
  const Row rows[] = {{"past", -1ms}, {"now", 0ms}, {"short", 15ms}};
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    TypeParam m;
    m.lock();
    bool r1 = true;
    bool r2 = true;
    bool w1 = true;
    bool w2 = true;
    std::thread([&] {
      r1 = m.try_lock_shared_for(row.timeout);
      r2 = m.try_lock_shared_until(std::chrono::steady_clock::now() + row.timeout);
      w1 = m.try_lock_for(row.timeout);
      w2 = m.try_lock_until(std::chrono::system_clock::now() + row.timeout);
    }).join();
    EXPECT_FALSE(r1 || r2 || w1 || w2);
    m.unlock();
    // Free: every variant succeeds, even with a past deadline.
    EXPECT_TRUE(m.try_lock_shared_for(row.timeout));
    m.unlock_shared();
    EXPECT_TRUE(m.try_lock_for(row.timeout));
    m.unlock();
  }
}

TYPED_TEST(SharedLockableContract, ReadersAndWritersKeepAnInvariant) {
  // Writers keep a == b under the exclusive lock; readers check it under the shared lock.
  TypeParam m;
  long a = 0;
  long b = 0;
  const std::size_t iters = parkpool::test::scaled(20000);
  std::atomic<long> bad{0};
  Finished finished;
  std::vector<std::thread> ts;
  for (int w = 0; w < 2; ++w) {
    ts.emplace_back(finished([&] {
      for (std::size_t i = 0; i < iters; ++i) {
        std::unique_lock lk(m);
        ++a;
        ++b;
      }
    }));
  }
  for (int r = 0; r < 3; ++r) {
    ts.emplace_back(finished([&] {
      for (std::size_t i = 0; i < iters; ++i) {
        std::shared_lock lk(m);
        if (a != b) bad.fetch_add(1);
      }
    }));
  }
  JoinOnExit join([&] { unpark_shared(m); }, ts);
  // Bounded (generous: the run takes well under a second): a lost wakeup leaves a thread parked
  // on a free lock; that fails here instead of hanging the joins.
  ASSERT_TRUE(finished.within(5, "the readers and writers each unlock must wake", 60s));
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(a, static_cast<long>(2 * iters));
}

}  // namespace

TEST(SharedMutex, TryLockUntilDeadlineTooFarToRepresentWaitsForTheUnlock) {
  // A coarse time_point's max() is beyond steady_clock's nanoseconds: it must mean "no deadline".
  // Converting it to nanoseconds used to overflow (signed overflow, in practice a time in the
  // past), so the timed locks gave up at once. The writer holding the lock unlocks only once the
  // waiter is parked on the mutex (or has returned: the failure), so `true` means it waited.
  using namespace std::chrono;
  using TryLock = bool (*)(parkpool::SharedMutex&);
  struct Row {
    const char* name;
    TryLock try_lock;  // locks and, on success, unlocks
  };
  const Row rows[] = {
      {"shared, steady_clock seconds max",
       [](parkpool::SharedMutex& m) {
         const bool got = m.try_lock_shared_until(time_point<steady_clock, seconds>::max());
         if (got) m.unlock_shared();
         return got;
       }},
      {"shared, sys_seconds max",
       [](parkpool::SharedMutex& m) {
         const bool got = m.try_lock_shared_until(sys_seconds::max());
         if (got) m.unlock_shared();
         return got;
       }},
      {"exclusive, system_clock hours max",
       [](parkpool::SharedMutex& m) {
         const bool got = m.try_lock_until(time_point<system_clock, hours>::max());
         if (got) m.unlock();
         return got;
       }},
      {"exclusive, steady_clock seconds max",
       [](parkpool::SharedMutex& m) {
         const bool got = m.try_lock_until(time_point<steady_clock, seconds>::max());
         if (got) m.unlock();
         return got;
       }},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    parkpool::SharedMutex m;
    m.lock();
    bool got = false;
    std::atomic<bool> returned{false};
    bool held = true;  // by this thread (JoinOnExit calls its release from this thread)
    Finished finished;
    std::thread t(finished([&] {
      got = row.try_lock(m);
      returned.store(true, std::memory_order_relaxed);  // `got` is read after join()
    }));
    JoinOnExit join(
        [&] {
          unlock_if_held(held, m);
          unpark_shared(m);
        },
        t);
    // Both kinds of waiter park on the mutex's own address while a writer holds it. Queued, or
    // returned without waiting: `got` then reports it.
    ASSERT_TRUE(parkpool::test::in_time(parkpool::test::wait_queued_or_returned(&m, returned)));
    held = false;
    m.unlock();
    // Bounded: the wait has no deadline, so an unlock that does not wake it would hang the join.
    ASSERT_TRUE(finished.within(1, "the waiter with no deadline unlock() must wake"));
    t.join();
    EXPECT_TRUE(got) << "the timed lock gave up instead of waiting for the unlock";
  }
  // Too far in the past: one try, no wait.
  parkpool::SharedMutex m;
  m.lock();
  bool got = true;
  std::thread([&] {
    got = m.try_lock_shared_until(sys_seconds::min()) ||
          m.try_lock_until(time_point<steady_clock, hours>::min());
  }).join();
  EXPECT_FALSE(got);
  m.unlock();
}

TEST(SharedMutex, IsFourBytes) { static_assert(sizeof(parkpool::SharedMutex) == 4); }

TEST(SharedMutex, WriterIsNotStarvedByOverlappingReaders) {
  // Readers keep the lock continuously shared (each re-locks while another still holds it). A
  // writer must still get in, and readers arriving after it must wait for it.
  parkpool::SharedMutex m;
  std::atomic<bool> stop{false};
  std::atomic<bool> writer_done{false};
  std::barrier start(4);
  Finished finished;
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back(finished([&] {
      start.arrive_and_wait();
      while (!stop.load()) {
        std::shared_lock lk(m);
        std::this_thread::yield();
      }
    }));
  }
  start.arrive_and_wait();  // passed before any ASSERT: the release needs no arrive
  bool got = false;
  std::thread writer;
  JoinOnExit join(
      [&] {
        stop.store(true);
        unpark_shared(m);
      },
      readers, writer);
  writer = std::thread([&] {
    got = m.try_lock_for(20s);
    if (got) m.unlock();
    writer_done.store(true);
  });
  writer.join();  // bounded by its 20 s deadline
  stop.store(true);
  // Bounded: readers parked behind the writer's claim must be woken by its unlock (or by its
  // giving up); a lost wakeup fails here instead of hanging the joins.
  ASSERT_TRUE(finished.within(3, "the readers the writer's unlock must wake"));
  for (auto& t : readers) t.join();
  EXPECT_TRUE(got);
}

TEST(SharedMutex, WaitingWriterBlocksNewReaders) {
  parkpool::SharedMutex m;
  m.lock_shared();
  bool shared_held = true;  // by this thread (JoinOnExit calls its release from this thread)
  Finished finished;
  std::thread writer(finished([&] {
    m.lock();
    m.unlock();
  }));
  JoinOnExit join(
      [&] {
        if (shared_held) {
          shared_held = false;
          m.unlock_shared();
        }
        unpark_shared(m);
      },
      writer);
  // Once the writer has claimed the writer bit, try_lock_shared fails even though only readers
  // hold the lock.
  const auto end = std::chrono::steady_clock::now() + 30s;
  bool blocked = false;
  while (!blocked && std::chrono::steady_clock::now() < end) {
    if (m.try_lock_shared()) {
      m.unlock_shared();
      std::this_thread::yield();
    } else {
      blocked = true;
    }
  }
  EXPECT_TRUE(blocked);
  shared_held = false;
  m.unlock_shared();
  // Bounded: the last reader's unlock_shared must wake the draining writer; a lost wakeup fails
  // here instead of hanging the join.
  ASSERT_TRUE(finished.within(1, "the draining writer unlock_shared() must wake"));
  writer.join();
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(SharedMutex, WriterTimingOutWhileDrainingReadersLetsBlockedThreadsIn) {
  parkpool::SharedMutex m;
  m.lock_shared();
  bool writer_got = true;
  Finished finished;
  std::thread writer([&] { writer_got = m.try_lock_for(300ms); });
  // A reader that arrives behind the writer's claim parks; when the writer gives up, it must be
  // woken (the lock is only shared again).
  std::thread late_reader(finished([&] {
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (m.try_lock_shared()) {  // wait until the writer's claim is visible
      m.unlock_shared();
      if (std::chrono::steady_clock::now() > end) return;
      std::this_thread::yield();
    }
    m.lock_shared();
    m.unlock_shared();
  }));
  JoinOnExit join([&] { unpark_shared(m); }, writer, late_reader);
  writer.join();  // bounded by its 300 ms deadline
  // Bounded: the writer giving up must wake the parked reader; a lost wakeup fails here.
  ASSERT_TRUE(finished.within(1, "the reader the abandoning writer must wake"));
  late_reader.join();
  EXPECT_FALSE(writer_got);
  m.unlock_shared();
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

// Regression: an unlock used to wake only the run of readers at the head of the queue and leave a
// writer queued behind them parked on the mutex; the readers' unlock_shared never wakes that key,
// so the writer slept on a free lock until its deadline (or forever). Queue here: [reader,
// writer]. Both the ordinary unlock and the hand-off of unlock_fair must wake the writer.
TEST(SharedMutex, WriterQueuedBehindReadersIsWokenWhenTheReadersLeave) {
  for (const bool fair : {false, true}) {
    SCOPED_TRACE(fair ? "unlock_fair" : "unlock");
    parkpool::SharedMutex m;
    m.lock();
    bool writer_got = false;
    bool held = true;  // by this thread (JoinOnExit calls its release from this thread)
    Finished finished;
    std::thread reader(finished([&] {
      m.lock_shared();
      m.unlock_shared();
    }));
    std::thread writer;
    JoinOnExit join(
        [&] {
          unlock_if_held(held, m);
          unpark_shared(m);
        },
        reader, writer);
    ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 1));
    writer = std::thread([&] {
      writer_got = m.try_lock_for(20s);  // the bug: false after 20 s, the lock long free
      if (writer_got) m.unlock();
    });
    ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 2));
    held = false;
    if (fair) {
      m.unlock_fair();
    } else {
      m.unlock();
    }
    // Bounded: the reader has no deadline; an unlock that does not wake it fails here.
    ASSERT_TRUE(finished.within(1, "the queued reader the unlock must wake"));
    reader.join();
    writer.join();  // bounded by its 20 s deadline
    EXPECT_TRUE(writer_got) << "the writer queued behind a reader was never woken";
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  }
}

// unlock_fair hands the lock over with no window for barging: with [reader, writer, reader,
// writer] queued, both readers get their count, the first writer gets the writer bit (it then waits
// for those readers) and the second writer stays queued. Checked right after unlock_fair returns,
// while the first writer still holds the lock.
TEST(SharedMutex, UnlockFairHandsOffToEveryReaderAndTheFirstWriter) {
  parkpool::SharedMutex m;
  m.lock();
  std::atomic<int> readers_done{0};
  std::latch release_first_writer(1);
  std::atomic<int> writers_got{0};
  bool held = true;  // by this thread (JoinOnExit calls its release from this thread)
  bool released = false;
  Finished finished;
  std::vector<std::thread> threads;
  JoinOnExit join(
      [&] {
        unlock_if_held(held, m);
        if (!released) {
          released = true;
          release_first_writer.count_down();
        }
        unpark_shared(m);
      },
      threads);
  auto reader = [&] {
    m.lock_shared();
    // Counted while still inside: the first writer gets in as soon as the last unlock_shared
    // makes the count zero, so a count taken after unlock_shared may not have happened yet when
    // the writer checks it (this test failed that way once, 2026-12-07).
    readers_done.fetch_add(1);
    m.unlock_shared();
  };
  auto writer = [&](bool first) {
    if (!m.try_lock_for(20s)) return;
    writers_got.fetch_add(1);
    if (first) {
      // Both handed-off readers left before we were let in (we drained them).
      EXPECT_EQ(readers_done.load(), 2);
      release_first_writer.wait();
    }
    m.unlock();
  };
  threads.emplace_back(finished(reader));
  ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 1));
  threads.emplace_back(finished([&] { writer(true); }));
  ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 2));
  threads.emplace_back(finished(reader));
  ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 3));
  threads.emplace_back(finished([&] { writer(false); }));
  ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 4));
  held = false;
  m.unlock_fair();
  EXPECT_EQ(parkpool::test::queued_on(&m), 1U) << "only the second writer stays queued";
  // A lock wrongly taken here is given back: kept, it would block the writers for good.
  const bool got_shared = m.try_lock_shared();
  EXPECT_FALSE(got_shared) << "the first writer's claim must block new readers";
  if (got_shared) m.unlock_shared();
  const bool got_exclusive = m.try_lock();
  EXPECT_FALSE(got_exclusive);
  if (got_exclusive) m.unlock();
  released = true;
  release_first_writer.count_down();
  // Bounded: the readers have no deadline; a lost hand-off fails here, not in a hung join.
  ASSERT_TRUE(finished.within(4, "the readers and writers unlock_fair() must hand off to"));
  for (auto& t : threads) t.join();
  EXPECT_EQ(readers_done.load(), 2);
  EXPECT_EQ(writers_got.load(), 2);
}

// Same lost writer, on the other path that wakes queued threads: a writer that abandons its claim
// (timed out waiting for a reader) wakes the queue without a hand-off. Queue behind its claim:
// [reader, writer]. The abandoning writer's deadline must pass after both have queued; if the
// machine is so slow that it does not, the round is repeated.
TEST(SharedMutex, WriterQueuedBehindReadersIsWokenAfterAnAbandonedClaim) {
  bool exercised = false;
  for (int round = 0; round < 20 && !exercised; ++round) {
    parkpool::SharedMutex m;
    const void* drain_key = reinterpret_cast<const char*>(&m) + 1;  // see readers_key()
    m.lock_shared();
    std::atomic<bool> first_returned{false};
    std::thread first_writer([&] {
      EXPECT_FALSE(m.try_lock_for(300ms));  // we hold a shared lock throughout
      first_returned.store(true);
    });
    // Nothing to release: its wait ends at its deadline.
    parkpool::test::JoinOnExit join([] {}, first_writer);
    // It holds the claim and waits for us.
    ASSERT_TRUE(parkpool::test::wait_until_queued(drain_key, 1));
    // Until `n` threads are queued behind the claim, or the claim was abandoned first.
    auto queued_behind_claim = [&](std::size_t n) {
      while (parkpool::test::queued_on(&m) < n) {
        if (first_returned.load()) return false;
        std::this_thread::yield();
      }
      return true;
    };
    bool shared_held = true;  // by this thread (JoinOnExit calls its release from this thread)
    Finished finished;
    std::thread reader(finished([&] {
      m.lock_shared();
      m.unlock_shared();
    }));
    std::thread second_writer;
    JoinOnExit join_rest(
        [&] {
          if (shared_held) {
            shared_held = false;
            m.unlock_shared();
          }
          unpark_shared(m);
        },
        reader, second_writer);
    const bool reader_queued = queued_behind_claim(1);
    bool second_got = false;
    second_writer = std::thread([&] {
      second_got = m.try_lock_for(20s);
      if (second_got) m.unlock();
    });
    exercised = reader_queued && queued_behind_claim(2) && !first_returned.load();
    first_writer.join();
    // Now the second writer can drain and get in, if it was woken. Before joining the reader: if
    // the woken second writer claims first, the reader parks again until that writer is done.
    shared_held = false;
    m.unlock_shared();
    // Bounded: the reader has no deadline; a lost wakeup fails here instead of hanging the join.
    ASSERT_TRUE(finished.within(1, "the reader queued behind the abandoned claim"));
    reader.join();
    second_writer.join();  // bounded by its 20 s deadline
    EXPECT_TRUE(second_got) << "the writer queued behind a reader was never woken";
  }
  EXPECT_TRUE(exercised) << "the first writer always timed out before the others queued";
}

namespace parkpool {
// White-box access (friend of SharedMutex): the state word and its reader unit.
struct SharedMutexInspector {
  static std::atomic<std::uint32_t>& state(SharedMutex& m) { return m.state_; }
  static constexpr std::uint32_t kOneReader = SharedMutex::kOneReader;
  static constexpr std::uint32_t kMaxReaders = SharedMutex::kMaxReaders;
};
}  // namespace parkpool

namespace {

using parkpool::SharedMutexInspector;

// "Bad input: more than 2^29 - 1 simultaneous readers aborts with a message": the count field
// (29 bits) must not wrap into the flag bits. The 2^29 - 1st reader still gets in; every shared
// entry point refuses the next one. (The state is set directly: 2^29 real lock_shared calls would
// take seconds.)
TEST(SharedMutexDeathTest, ReaderCountOverflowAbortsWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  constexpr std::uint32_t kOne = SharedMutexInspector::kOneReader;
  constexpr std::uint32_t kFull = SharedMutexInspector::kMaxReaders;
  static_assert(kFull / kOne == (std::uint32_t{1} << 29) - 1, "2^29 - 1 readers fill the count");
  parkpool::SharedMutex m;
  auto& state = SharedMutexInspector::state(m);
  // Relaxed: single-threaded set-up of the test's own mutex.
  state.store(kFull - kOne, std::memory_order_relaxed);  // 2^29 - 2 readers inside
  EXPECT_TRUE(m.try_lock_shared());                      // the last one that fits
  EXPECT_EQ(state.load(std::memory_order_relaxed), kFull);
  EXPECT_FALSE(m.try_lock());  // readers inside: no writer
  const char* msg = "reader count overflow";
  EXPECT_DEATH(m.lock_shared(), msg);
  EXPECT_DEATH((void)m.try_lock_shared(), msg);
  EXPECT_DEATH((void)m.try_lock_shared_for(0ms), msg);
  EXPECT_DEATH((void)m.try_lock_shared_until(std::chrono::steady_clock::now() + 1s), msg);
  m.unlock_shared();
  EXPECT_EQ(state.load(std::memory_order_relaxed), kFull - kOne);
  state.store(0, std::memory_order_relaxed);  // the fake readers leave
  m.lock();
  m.unlock();
}

// Takes `m` back, shared, if it is free (for barge_after_unlock). After a plain wakeup the woken
// writer may already have claimed the writer bit: then this fails, as after a hand-off.
bool try_take_shared(parkpool::SharedMutex& m) {
  if (!m.try_lock_shared()) return false;
  m.unlock_shared();
  return true;
}

// Eventual fairness: "about every 0.5 ms (eventual fairness of the parking lot) ... a writer's
// unlock hands the lock directly to the waiting threads". Every round holds the lock 3 ms with a
// writer queued, longer than the bucket's fair period (a random delay in [0, 1 ms) after the
// previous fair unpark), so every unlock must hand off.
TEST(SharedMutex, LockHeldLongerThanOneMillisecondIsHandedOff) {
  parkpool::SharedMutex m;
  int barged = 0;
  ASSERT_TRUE(parkpool::test::barge_after_unlock(
      m, 16, [] { std::this_thread::sleep_for(3ms); },  // the hold time itself is what is tested
      [](parkpool::SharedMutex& mu) { mu.unlock(); }, try_take_shared, barged));
  EXPECT_EQ(barged, 0) << "unlock after a >1 ms hold must hand off to the queued writer";
}

// "always with unlock_fair()": the rounds follow each other within tens of microseconds, so most
// find the fair timer not due, where a plain unlock leaves the lock free. (In
// UnlockFairHandsOffToEveryReaderAndTheFirstWriter the timer is usually due, and a plain unlock
// passed there.)
TEST(SharedMutex, UnlockFairHandsOffWhetherOrNotTheFairTimerIsDue) {
  parkpool::SharedMutex m;
  int barged = 0;
  ASSERT_TRUE(parkpool::test::barge_after_unlock(
      m, 100, [] {}, [](parkpool::SharedMutex& mu) { mu.unlock_fair(); }, try_take_shared, barged));
  EXPECT_EQ(barged, 0) << "unlock_fair left the lock free instead of handing it off";
}

// "Whom an unlock wakes: a writer at the head of the queue alone". Queue [writer, reader]: the
// hand-off of unlock_fair gives the writer bit to the writer and leaves the reader queued; the
// reader must not be let in (with a count) alongside the writer.
TEST(SharedMutex, UnlockFairHandsOffToAHeadWriterAlone) {
  parkpool::SharedMutex m;
  m.lock();
  std::latch release_writer(1);
  std::atomic<bool> reader_in{false};
  bool held = true;  // by this thread (JoinOnExit calls its release from this thread)
  bool released = false;
  Finished finished;
  std::thread writer;
  std::thread reader;
  JoinOnExit join(
      [&] {
        unlock_if_held(held, m);
        if (!released) {
          released = true;
          release_writer.count_down();
        }
        unpark_shared(m);
      },
      writer, reader);
  writer = std::thread(finished([&] {
    m.lock();
    release_writer.wait();
    m.unlock();
  }));
  ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 1));
  reader = std::thread(finished([&] {
    m.lock_shared();
    reader_in.store(true);
    m.unlock_shared();
  }));
  ASSERT_TRUE(parkpool::test::wait_until_queued(&m, 2));
  held = false;
  m.unlock_fair();
  EXPECT_EQ(parkpool::test::queued_on(&m), 1U) << "the reader behind a head writer stays queued";
  EXPECT_FALSE(reader_in.load());
  // A shared lock wrongly taken here is given back: kept, it would block the writer for good.
  const bool got_shared = m.try_lock_shared();
  EXPECT_FALSE(got_shared) << "the writer holds the lock";
  if (got_shared) m.unlock_shared();
  released = true;
  release_writer.count_down();
  // Bounded: the writer's unlock must wake the queued reader; a lost wakeup fails here.
  ASSERT_TRUE(finished.within(2, "the writer handed the lock and the reader its unlock must wake"));
  writer.join();
  reader.join();
  EXPECT_TRUE(reader_in.load());
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

// INV-R2: the last reader to leave wakes the writer that sleeps on the drain key (this + 1) and
// clears kWriterParkedBit, so the writer then holds kWriterBit alone. The writer is seen parked
// on the drain key before any reader leaves: spinning, it would see the count reach zero by
// itself and no wakeup would be needed. Readers leave one by one; only the last one may wake it.
TEST(SharedMutex, LastReaderToLeaveWakesTheDrainingWriter) {
  for (const int readers : {1, 3}) {
    SCOPED_TRACE(readers);
    parkpool::SharedMutex m;
    const void* drain_key = reinterpret_cast<const char*>(&m) + 1;  // see readers_key()
    for (int i = 0; i < readers; ++i) m.lock_shared();              // this thread is every reader
    int inside = readers;  // shared locks this thread still holds; only this thread uses it
    std::atomic<bool> got{false};
    std::uint32_t seen_by_writer = 0;
    std::thread writer([&] {
      m.lock();
      seen_by_writer = SharedMutexInspector::state(m).load(std::memory_order_relaxed);
      got.store(true);
      m.unlock();
    });
    parkpool::test::JoinOnExit join(
        [&] {
          for (; inside > 0; --inside) m.unlock_shared();
          parkpool::parking_lot::unpark_all(drain_key);  // a writer left asleep by the bug retries
        },
        writer);
    ASSERT_TRUE(parkpool::test::wait_until_queued(drain_key, 1));
    for (; inside > 0; --inside) m.unlock_shared();
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (!got.load()) {
      ASSERT_LT(std::chrono::steady_clock::now(), end) << "the draining writer was never woken";
      std::this_thread::yield();
    }
    writer.join();
    EXPECT_EQ(seen_by_writer, 1U) << "the writer should hold kWriterBit alone";
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  }
}

}  // namespace

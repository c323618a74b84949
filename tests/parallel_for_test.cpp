// parallel_for: every index exactly once for random ranges and grains (seeded), signed and
// unsigned and narrow index types, empty ranges, exceptions, calls from inside the pool, calls
// after shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {

using parkpool::parallel_for;
using parkpool::PoolOptions;
using parkpool::ThreadPool;

using parkpool::test::with_threads;

TEST(ParallelFor, CoversRandomRangesExactlyOnce) {
  ThreadPool pool(with_threads(2));
  std::mt19937_64 rng(20261122);  // fixed seed: reproducible
  const int rounds = static_cast<int>(parkpool::test::scaled(200, 10, 20));
  for (int round = 0; round < rounds; ++round) {
    const std::int64_t first = static_cast<std::int64_t>(rng() % 2000) - 1000;
    const std::int64_t len = static_cast<std::int64_t>(rng() % 5000);
    const std::size_t grain = static_cast<std::size_t>(rng() % 64);  // 0 = automatic
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(len));
    parallel_for(
        pool, first, first + len,
        [&](std::int64_t i) { hits[static_cast<std::size_t>(i - first)].fetch_add(1); }, grain);
    for (std::int64_t i = 0; i < len; ++i) {
      ASSERT_EQ(hits[static_cast<std::size_t>(i)].load(), 1)
          << "round " << round << " first " << first << " len " << len << " grain " << grain;
    }
  }
}

// Ranges at the ends of their index types: the index arithmetic (offsets from `first`, converted
// back to the index type) must neither overflow nor wrap there; a signed first + i computed in
// the index type would be undefined at INT_MAX (UBSan reports it in the asan stage). Each range
// is short, so every index is checked; grains 0 (automatic), 1 and 7.
template <class I>
void expect_each_once_near(ThreadPool& pool, I first, I last) {
  const auto len = static_cast<std::size_t>(static_cast<std::uint64_t>(last) -
                                            static_cast<std::uint64_t>(first));
  for (std::size_t grain : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
    // Relaxed: counts only; parallel_for's return orders every body's increment before the reads.
    std::vector<std::atomic<int>> hits(len);
    parallel_for(
        pool, first, last,
        [&](I i) {
          hits[static_cast<std::size_t>(static_cast<std::uint64_t>(i) -
                                        static_cast<std::uint64_t>(first))]
              .fetch_add(1, std::memory_order_relaxed);
        },
        grain);
    for (std::size_t k = 0; k < len; ++k) {
      ASSERT_EQ(hits[k].load(std::memory_order_relaxed), 1)
          << "index " << k << " of [" << +first << ", " << +last << "), grain " << grain;
    }
  }
}

TEST(ParallelFor, RangesAtTheEndsOfTheIndexTypes) {
  ThreadPool pool(with_threads(2));
  constexpr int kLen = 3000;
  expect_each_once_near(pool, std::numeric_limits<int>::max() - kLen,
                        std::numeric_limits<int>::max());
  expect_each_once_near(pool, std::numeric_limits<int>::min(),
                        std::numeric_limits<int>::min() + kLen);
  expect_each_once_near(pool, std::numeric_limits<std::int64_t>::max() - kLen,
                        std::numeric_limits<std::int64_t>::max());
  expect_each_once_near(pool, std::numeric_limits<std::int64_t>::min(),
                        std::numeric_limits<std::int64_t>::min() + kLen);
  expect_each_once_near(pool, std::numeric_limits<std::size_t>::max() - kLen,
                        std::numeric_limits<std::size_t>::max());
  expect_each_once_near(pool, std::numeric_limits<std::int16_t>::min(),
                        std::numeric_limits<std::int16_t>::max());
  expect_each_once_near(pool, std::uint16_t{0}, std::numeric_limits<std::uint16_t>::max());
}

TEST(ParallelFor, EmptyAndReversedRangesDoNothing) {
  ThreadPool pool(with_threads(2));
  int calls = 0;
  parallel_for(pool, 5, 5, [&](int) { ++calls; });
  parallel_for(pool, 5, 3, [&](int) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ParallelFor, NarrowAndUnsignedIndexTypes) {
  ThreadPool pool(with_threads(2));
  std::vector<std::atomic<int>> hits(256);
  parallel_for(
      pool, std::int8_t{-128}, std::int8_t{127},
      [&](std::int8_t i) { hits[static_cast<std::size_t>(i + 128)].fetch_add(1); }, 3);
  for (std::size_t i = 0; i < 255; ++i) ASSERT_EQ(hits[i].load(), 1) << i;
  EXPECT_EQ(hits[255].load(), 0);
  std::atomic<std::uint64_t> sum{0};
  parallel_for(pool, 0u, 1001u, [&](unsigned i) { sum.fetch_add(i); });
  EXPECT_EQ(sum.load(), 500500u);
}

// grain 0 is "about 4 chunks per worker": n / (4 * workers) indices each, and at least one, so a
// range shorter than that still has chunks of one index. A grain beyond the range makes the range
// one chunk, also where the grain does not fit the index type (256 for std::uint8_t). Each index
// must run once; a grain that came out 0 would split a one-index chunk forever.
TEST(ParallelFor, ShortRangesWithAutomaticGrainAndGrainsBeyondTheRangeRunEachIndexOnce) {
  ThreadPool pool(with_threads(2));
  for (int len = 1; len <= 9; ++len) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(len));
    parallel_for(
        pool, 0, len, [&](int i) { hits[static_cast<std::size_t>(i)].fetch_add(1); }, 0);
    for (int i = 0; i < len; ++i) {
      ASSERT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << "len " << len << " index " << i;
    }
  }
  for (std::size_t grain :
       {std::size_t{200}, std::size_t{256}, std::size_t{512}, std::size_t{1} << 40}) {
    std::vector<std::atomic<int>> hits(200);
    parallel_for(
        pool, std::uint8_t{0}, std::uint8_t{200}, [&](std::uint8_t i) { hits[i].fetch_add(1); },
        grain);
    for (std::size_t i = 0; i < hits.size(); ++i) {
      ASSERT_EQ(hits[i].load(), 1) << "grain " << grain << " index " << i;
    }
  }
}

// grain 0 with 4 indices per worker: every index is a chunk of its own, offered to the other
// workers by the join that split it off, so index 1 can start while index 0 runs. With chunks of
// more than one index (fewer chunks per worker) index 1 would run after index 0 in the same
// loop. Bounded: index 0 waits at most 20 s for index 1.
TEST(ParallelFor, AutomaticGrainMakesFourChunksPerWorker) {
  ThreadPool pool(with_threads(2));
  std::atomic<bool> one_started{false};
  std::atomic<bool> zero_saw_one{false};
  parallel_for(
      pool, 0, 8,
      [&](int i) {
        if (i == 1) one_started.store(true);
        if (i == 0) {
          zero_saw_one.store(parkpool::test::wait_for([&] { return one_started.load(); },
                                                      std::chrono::seconds(20)));
        }
      },
      0);
  EXPECT_TRUE(zero_saw_one.load()) << "indices 0 and 1 ran in one chunk";
}

TEST(ParallelFor, ExceptionPropagates) {
  ThreadPool pool(with_threads(2));
  EXPECT_THROW(parallel_for(
                   pool, 0, 10000,
                   [](int i) {
                     if (i == 7777) throw std::runtime_error("x");
                   },
                   16),
               std::runtime_error);
  // The pool is still fine.
  std::atomic<int> n{0};
  parallel_for(pool, 0, 100, [&](int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 100);
}

TEST(ParallelFor, AfterShutdownThrowsPoolClosedWhateverTheRange) {
  // A range of one chunk runs on the caller without the pool; after shutdown() it must still
  // throw pool_closed, like a larger range (which goes through join) and like submit/post.
  ThreadPool pool(with_threads(2));
  pool.shutdown();
  int calls = 0;
  EXPECT_THROW(parallel_for(pool, 0, 1, [&](int) { ++calls; }), parkpool::pool_closed);
  EXPECT_THROW(parallel_for(
                   pool, 0, 100, [&](int) { ++calls; }, 1000),
               parkpool::pool_closed);
  EXPECT_THROW(parallel_for(
                   pool, 0, 100, [&](int) { ++calls; }, 1),
               parkpool::pool_closed);
  EXPECT_THROW(parallel_for(pool, 5, 5, [&](int) { ++calls; }), parkpool::pool_closed);
  EXPECT_EQ(calls, 0);
}

TEST(ParallelFor, FromATaskInTheFinalDrainRunsEveryIndex) {
  // pool_closed is for callers that are not workers of the pool: a task still running while
  // shutdown() drains may use parallel_for (one chunk, or several through join) like post().
  ThreadPool pool(with_threads(2));
  std::atomic<bool> running{false};
  std::atomic<int> calls{0};
  auto f = pool.submit([&] {
    running.store(true);
    // Bounded: shutdown() sets the flag before it waits for this task.
    if (!parkpool::test::wait_for([&] { return pool.is_shutdown(); })) return false;
    parallel_for(pool, 0, 1, [&](int) { calls.fetch_add(1); });
    parallel_for(
        pool, 0, 100, [&](int) { calls.fetch_add(1); }, 7);
    return true;
  });
  ASSERT_TRUE(parkpool::test::wait_for([&] { return running.load(); }));
  pool.shutdown();
  EXPECT_TRUE(f.get()) << "the task never saw the pool shut down";
  EXPECT_EQ(calls.load(), 101);
}

TEST(ParallelFor, NegativeGrainThrowsAndAnyIntegralGrainWorks) {
  // A negative grain used to convert to SIZE_MAX: one chunk, the whole range on the caller.
  ThreadPool pool(with_threads(2));
  std::atomic<int> calls{0};
  auto body = [&](int) { calls.fetch_add(1); };
  EXPECT_THROW(parallel_for(pool, 0, 1000, body, -1), std::invalid_argument);
  EXPECT_THROW(parallel_for(pool, 0, 1000, body, std::int64_t{-64}), std::invalid_argument);
  EXPECT_EQ(calls.load(), 0);
  std::vector<std::atomic<int>> hits(1000);
  auto mark = [&](int i) { hits[static_cast<std::size_t>(i)].fetch_add(1); };
  parallel_for(pool, 0, 1000, mark, 7);                  // int
  parallel_for(pool, 0, 1000, mark, std::uint16_t{64});  // narrow unsigned
  parallel_for(pool, 0, 1000, mark, 0L);                 // automatic
  for (const auto& h : hits) EXPECT_EQ(h.load(), 3);
}

TEST(ParallelFor, OneChunkRunsOnTheCallingThread) {
  ThreadPool pool(with_threads(2));
  const auto caller = std::this_thread::get_id();
  std::atomic<int> elsewhere{0};
  parallel_for(
      pool, 0, 100,
      [&](int) {
        if (std::this_thread::get_id() != caller) elsewhere.fetch_add(1);
      },
      100);
  EXPECT_EQ(elsewhere.load(), 0);
}

TEST(ParallelFor, NestedInsideATaskAndInsideParallelFor) {
  ThreadPool pool(with_threads(2));
  std::atomic<long> total{0};
  auto f = pool.submit([&] {
    parallel_for(
        pool, 0, 64,
        [&](int) {
          parallel_for(
              pool, 0, 64, [&](int j) { total.fetch_add(j); }, 4);
        },
        2);
  });
  f.get();
  EXPECT_EQ(total.load(), 64L * (63 * 64 / 2));
}

}  // namespace

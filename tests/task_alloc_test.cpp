// Heap tasks from workers come from the per-worker TaskCache (pool/include/parkpool/detail/
// task_cache.hpp): post() and TaskGroup::run() on a worker do not call operator new once the cache
// is warm; tasks too big for a block still work (plain new); tasks posted from outside and run on
// a worker, or allocated on one worker and run on another, are released correctly (ASAN/LSAN
// check the memory side; this file checks the counts and the results).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <new>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

// Allocation counting (plain and aligned operator new; under ASAN/TSAN through the sanitizer's
// malloc hook): one translation unit of this executable includes it.
#include "counting_new.hpp"

namespace {

using parkpool::PoolOptions;
using parkpool::TaskGroup;
using parkpool::ThreadPool;

using parkpool::test::with_threads;

// Posts `n` small tasks from the calling worker and waits for them through a TaskGroup-free
// counter (the tasks run on this one-worker pool after the current task returns).
// The zero counts below mean something only if the counter sees allocations at all, in every
// build (plain operator new replacement, or the ASAN/TSAN malloc hook).
TEST(TaskAlloc, TheAllocationCounterSeesOperatorNew) {
  const long counted = parkpool::test::count_allocations([] {
    int* p = new int(7);
    asm volatile("" : : "r"(p) : "memory");  // escapes: the new/delete pair cannot be elided
    delete p;
  });
  EXPECT_GE(counted, 1);
}

TEST(TaskAlloc, PostOnAWorkerDoesNotAllocateOnceWarm) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> ran{0};
  constexpr int kN = 200;
  auto post_all = [&] {
    for (int i = 0; i < kN; ++i) pool.post([&ran] { ran.fetch_add(1); });
  };
  // The posted tasks have all finished (their blocks freed) once they all ran and the one
  // worker then ran one more task: it finishes a task before it takes the next. (Submitting
  // from outside alone is not enough: the worker takes an external task every 64 local ones.)
  auto all_finished = [&](int n) {
    ASSERT_TRUE(parkpool::test::wait_for([&] { return ran.load() == n; }));
    pool.submit([] {}).get();
  };
  // Warm-up: kN blocks enter the worker's cache when these tasks run and are freed.
  pool.submit(post_all).get();
  all_finished(kN);
  const long counted =
      pool.submit([&] { return parkpool::test::count_allocations(post_all); }).get();
  all_finished(2 * kN);
  EXPECT_EQ(ran.load(), 2 * kN);
  EXPECT_EQ(counted, 0);
}

TEST(TaskAlloc, TaskGroupRunOnAWorkerDoesNotAllocateOnceWarm) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> ran{0};
  constexpr int kN = 200;
  auto run_group = [&] {
    TaskGroup g(pool);
    for (int i = 0; i < kN; ++i) g.run([&ran] { ran.fetch_add(1); });
    g.wait();
  };
  const long counted = pool.submit([&] {
                             run_group();  // warm-up: fills the worker's cache
                             return parkpool::test::count_allocations(run_group);
                           })
                           .get();
  EXPECT_EQ(ran.load(), 2 * kN);
  EXPECT_EQ(counted, 0);
}

TEST(TaskAlloc, BigCallablesAndOutsidePostsStillRunOnce) {
  ThreadPool pool(with_threads(2));
  std::atomic<long> sum{0};
  std::array<long, 16> big{};  // 128 bytes: too big for a block, takes plain new
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<long>(i);
  const int n = static_cast<int>(parkpool::test::scaled(20000));
  pool.submit([&] {
        TaskGroup g(pool);
        for (int i = 0; i < n; ++i) {
          g.run([&sum, big] { sum.fetch_add(big[15]); });  // big
          g.run([&sum] { sum.fetch_add(1); });             // small, may be stolen
          pool.post([&sum] { sum.fetch_add(1); });         // small, from a worker
        }
        g.wait();
      })
      .get();
  // From outside: a small non-trivially-copyable callable (not stored inline in the injector)
  // is a homeless block, adopted by the worker that runs it.
  struct Counted {
    std::atomic<long>* s;
    Counted(std::atomic<long>* p) : s(p) {}  // NOLINT: implicit on purpose
    Counted(const Counted& o) : s(o.s) {}
    void operator()() const { s->fetch_add(1); }
  };
  static_assert(!std::is_trivially_copyable_v<Counted>);
  for (int i = 0; i < n; ++i) pool.post(Counted(&sum));
  pool.shutdown();  // runs everything accepted
  EXPECT_EQ(sum.load(), static_cast<long>(n) * (15 + 1 + 1) + n);
}

}  // namespace

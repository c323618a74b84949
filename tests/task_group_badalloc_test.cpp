// TaskGroup::run() when its task cannot be scheduled: the owner's deque is full and growing it
// throws std::bad_alloc. run()'s contract: it throws, accepts nothing and leaves the group
// unchanged, so the group's inline slot (thread_pool.hpp, TaskGroup::run) is free again for the
// next run(). Its own executable: it replaces the global operator new (support/failing_new.hpp,
// in every build) to make the allocations of one thread fail on demand.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <new>

#include "failing_new.hpp"
#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {
// While true, every allocation of this thread throws std::bad_alloc.
thread_local bool t_refuse = false;
// Refusals made so far: shows that the bad_alloc the test sees is the injected one.
std::atomic<int> g_refusals{0};
}  // namespace

bool parkpool::test::refuse_allocation(std::size_t) noexcept {
  if (!t_refuse) return false;
  g_refusals.fetch_add(1, std::memory_order_relaxed);
  return true;
}

namespace {

using parkpool::TaskGroup;
using parkpool::ThreadPool;

using parkpool::test::wait_for;
using parkpool::test::with_threads;

// Records whether it ran from inside `group` (the slot) or not.
struct WhereRan {
  const TaskGroup* group;
  int* where;  // 1: inside the group, 2: elsewhere
  void operator()() const {
    const auto* b = reinterpret_cast<const unsigned char*>(group);
    const auto* q = reinterpret_cast<const unsigned char*>(this);
    *where = q >= b && q < b + sizeof(TaskGroup) ? 1 : 2;
  }
};
static_assert(sizeof(WhereRan) <= TaskGroup::kInlineCallableBytes);

TEST(TaskGroupBadAlloc, ARunWhoseScheduleThrowsLeavesTheSlotFree) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> filler_runs{0};
  constexpr std::size_t kFill = parkpool::detail::WorkerContext::kDequeCapacity;
  pool.submit([&] {
        // Fill this worker's deque to its initial ring (one worker: nobody takes them), so that
        // the next push must grow it.
        for (std::size_t i = 0; i < kFill; ++i) {
          pool.post([&filler_runs] { filler_runs.fetch_add(1, std::memory_order_relaxed); });
        }
        TaskGroup g(pool);
        int never = 0;
        const int refusals_before = g_refusals.load(std::memory_order_relaxed);
        t_refuse = true;
        bool threw = false;
        try {
          g.run(WhereRan{&g, &never});  // into the slot; the push must grow the deque: fails
        } catch (const std::bad_alloc&) {
          threw = true;
        }
        t_refuse = false;
        ASSERT_TRUE(threw);
        EXPECT_GT(g_refusals.load(std::memory_order_relaxed), refusals_before);
        int where = 0;
        g.run(WhereRan{&g, &where});  // the group is unchanged: the slot is free
        g.wait();
        EXPECT_EQ(never, 0);  // the failed run() accepted nothing
        EXPECT_EQ(where, 1);
      })
      .get();
  // The fillers run after the task (below it in the deque).
  EXPECT_TRUE(wait_for(
      [&] { return filler_runs.load(std::memory_order_relaxed) == static_cast<int>(kFill); }));
}

}  // namespace

// TaskGroup::run() when its task cannot be scheduled: the owner's deque is full and growing it
// throws std::bad_alloc. run()'s contract: it throws, accepts nothing and leaves the group
// unchanged, so the group's inline slot (thread_pool.hpp, TaskGroup::run) is free again for the
// next run(). Its own executable: it replaces the global operator new (in every build, as
// thread_parker_badalloc_test.cpp does) to make the allocations of one thread fail on demand.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {
// While true, every allocation of this thread throws std::bad_alloc.
thread_local bool t_refuse = false;
// Refusals made so far: shows that the bad_alloc the test sees is the injected one.
std::atomic<int> g_refusals{0};

void* allocate(std::size_t n, std::size_t align) {
  if (t_refuse) {
    g_refusals.fetch_add(1, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n == 0 ? 1 : n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

#if defined(__GNUC__) && !defined(__clang__)
// GCC pairs the inlined replacement delete with the library new and warns; the pair is ours.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) { return allocate(n, alignof(std::max_align_t)); }
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

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

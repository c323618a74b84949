// White-box tests of GroupLatch (pool/include/parkpool/detail/pool_core.hpp), a TaskGroup's
// count: the owner worker's spawns and completions go to its plain counters, every other thread's
// to the shared CountLatch (whose count may go negative); done() is exact on the owner,
// done_snapshot() on any thread; register_waiter() folds the owned balance into the shared part
// before the owner sleeps, and unfolds when nothing is pending. The snapshot's read order under
// concurrency is checked by tests/model/group_latch_model.cpp.
#include <gtest/gtest.h>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {

using parkpool::detail::CountLatch;
using parkpool::detail::GroupLatch;
using parkpool::detail::WorkerContext;

// GroupLatch only compares these pointers: it never dereferences a WorkerContext.
struct FakeWorkers {
  alignas(64) char owner_storage[64];
  alignas(64) char thief_storage[64];
  const WorkerContext* owner() const {
    return reinterpret_cast<const WorkerContext*>(owner_storage);
  }
  const WorkerContext* thief() const {
    return reinterpret_cast<const WorkerContext*>(thief_storage);
  }
  WorkerContext* owner_mut() { return reinterpret_cast<WorkerContext*>(owner_storage); }
};

TEST(GroupLatch, TheOwnersOwnTasksNeverTouchTheSharedWord) {
  FakeWorkers w;
  GroupLatch g(w.owner_mut());
  for (int i = 0; i < 3; ++i) g.add(w.owner());
  EXPECT_EQ(g.shared().count(), 0);
  EXPECT_FALSE(g.done());
  EXPECT_FALSE(g.done_snapshot());
  for (int i = 0; i < 2; ++i) g.count_down(w.owner(), nullptr);
  EXPECT_FALSE(g.done());
  EXPECT_FALSE(g.done_snapshot());
  g.count_down(w.owner(), nullptr);
  EXPECT_EQ(g.shared().count(), 0);
  EXPECT_TRUE(g.done());
  EXPECT_TRUE(g.done_snapshot());
}

TEST(GroupLatch, AThiefsCompletionOfAnOwnedSpawnMakesTheSharedPartNegative) {
  FakeWorkers w;
  GroupLatch g(w.owner_mut());
  g.add(w.owner());
  g.add(w.owner());
  g.count_down(w.thief(), nullptr);  // stolen and finished elsewhere
  EXPECT_EQ(g.shared().count(), -1);
  EXPECT_FALSE(g.done());
  EXPECT_FALSE(g.done_snapshot());
  g.count_down(w.thief(), nullptr);
  EXPECT_EQ(g.shared().count(), -2);
  EXPECT_TRUE(g.done());
  EXPECT_TRUE(g.done_snapshot());
}

TEST(GroupLatch, TheOwnerFinishingAnotherThreadsSpawnBalances) {
  FakeWorkers w;
  GroupLatch g(w.owner_mut());
  g.add(w.thief());  // run() from a task on another worker (or from outside the pool)
  EXPECT_EQ(g.shared().count(), 1);
  EXPECT_FALSE(g.done_snapshot());
  g.count_down(w.owner(), nullptr);  // the owner ran it: its completed_ goes up
  EXPECT_EQ(g.shared().count(), 1);
  EXPECT_TRUE(g.done());
  EXPECT_TRUE(g.done_snapshot());
}

TEST(GroupLatch, WithoutAnOwnerEverythingIsShared) {
  FakeWorkers w;
  GroupLatch g(nullptr);  // constructed off the pool
  g.add(nullptr);
  g.add(w.thief());
  EXPECT_EQ(g.shared().count(), 2);
  g.count_down(w.thief(), nullptr);
  g.count_down(nullptr, nullptr);
  EXPECT_EQ(g.shared().count(), 0);
  EXPECT_TRUE(g.done());
}

TEST(GroupLatch, RegisteringFoldsTheOwnedBalanceAndLaterOwnerEventsAreShared) {
  parkpool::ThreadPool pool(parkpool::test::with_threads(1));
  parkpool::detail::PoolCore* core = &parkpool::detail::PoolAccess::core(pool);
  FakeWorkers w;
  GroupLatch g(w.owner_mut());
  g.add(w.owner());
  g.add(w.owner());
  g.add(w.owner());
  g.count_down(w.owner(), core);      // owned balance 2
  g.count_down(w.thief(), core);      // shared -1: pending 1
  ASSERT_TRUE(g.register_waiter(1));  // tag of worker 0: the last count_down unparks it
  EXPECT_EQ(g.shared().count(), 1);   // -1 + the folded 2
  EXPECT_FALSE(g.done());
  EXPECT_FALSE(g.done_snapshot());
  g.add(w.owner());  // folded: the owner's events now go to the shared word
  EXPECT_EQ(g.shared().count(), 2);
  g.count_down(w.owner(), core);
  EXPECT_EQ(g.shared().count(), 1);
  g.count_down(w.thief(), core);  // the last one: reads the tag and unparks worker 0 (harmless)
  EXPECT_TRUE(g.done());
  EXPECT_TRUE(g.done_snapshot());
  g.clear_waiter();  // unfolds
  g.add(w.owner());
  EXPECT_EQ(g.shared().count(), 0);  // owned again
  EXPECT_FALSE(g.done());
  g.count_down(w.owner(), core);
  EXPECT_TRUE(g.done());
}

TEST(GroupLatch, RegisteringWithNothingPendingFailsAndUnfolds) {
  FakeWorkers w;
  GroupLatch g(w.owner_mut());
  g.add(w.owner());
  g.count_down(w.thief(), nullptr);  // shared -1, owned +1: nothing pending
  EXPECT_FALSE(g.register_waiter(1));
  EXPECT_EQ(g.shared().count(), 0);  // the fold happened: -1 + 1
  g.add(w.owner());                  // unfolded: owned again
  EXPECT_EQ(g.shared().count(), 0);
  EXPECT_FALSE(g.done());
  g.count_down(w.owner(), nullptr);
  EXPECT_TRUE(g.done());
}

TEST(CountLatch, ANegativeCountNeverDisturbsTheTag) {
  CountLatch l(0);
  l.count_down(nullptr);  // -1: legal only as a GroupLatch's shared part; no tag is read
  EXPECT_EQ(l.count(), -1);
  l.add(3);
  EXPECT_EQ(l.count(), 2);
  EXPECT_TRUE(l.register_waiter(7));
  l.add(-1);
  EXPECT_EQ(l.count(), 1);
  EXPECT_FALSE(l.done());
}

}  // namespace

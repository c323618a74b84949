// TaskGroup's inline slot (thread_pool.hpp, TaskGroup::run): the owner worker's first run() after
// the group's construction or after its own wait() stores a callable of at most
// kInlineCallableBytes in the group itself; every other task is allocated. Where a callable lives
// is observed through its own address (`this` in its call operator): inside the TaskGroup object
// or not. Checked: which run()s use the slot, that a thread other than the owner never does, that
// a failed run() leaves the slot free (the callable's copy throwing; schedule() throwing
// std::bad_alloc: task_group_badalloc_test.cpp), that a run() or wait() made by the callable's
// copy inside run() neither takes nor frees the slot being built, and that a slot task run by a
// thief is reused only after the owner's wait() (its payload intact in every round; TSAN checks the
// ordering of the reuse).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {

using parkpool::TaskGroup;
using parkpool::ThreadPool;

using parkpool::test::wait_for;
using parkpool::test::with_threads;

bool inside(const TaskGroup& g, const void* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(&g);
  const auto* q = static_cast<const unsigned char*>(p);
  return q >= b && q < b + sizeof(TaskGroup);
}

// A callable of `Bytes` bytes (a multiple of 8) that records where it ran from.
template <std::size_t Bytes>
struct Where {
  static_assert(Bytes >= 8 && Bytes % 8 == 0);
  const void** out;
  std::array<std::uint64_t, Bytes / 8 - 1> pad{};
  void operator()() const { *out = this; }
};
static_assert(sizeof(Where<TaskGroup::kInlineCallableBytes>) == TaskGroup::kInlineCallableBytes);

TEST(TaskGroupSlot, TheOwnersFirstRunIsStoredInTheGroupUntilItsWait) {
  ThreadPool pool(with_threads(1));
  pool.submit([&] {
        TaskGroup g(pool);
        const void* a = nullptr;
        const void* b = nullptr;
        const void* c = nullptr;
        g.run(Where<8>{&a});
        g.run(Where<8>{&b});  // the slot holds a's task until the wait: b is allocated
        g.wait();             // one worker: both ran here, in this wait
        ASSERT_NE(a, nullptr);
        ASSERT_NE(b, nullptr);
        EXPECT_TRUE(inside(g, a));
        EXPECT_FALSE(inside(g, b));
        g.run(Where<8>{&c});  // after the owner's wait the slot is free again
        g.wait();
        ASSERT_NE(c, nullptr);
        EXPECT_TRUE(inside(g, c));
      })
      .get();
}

TEST(TaskGroupSlot, OnlyCallablesUpToTheLimitAreStoredInTheGroup) {
  ThreadPool pool(with_threads(1));
  pool.submit([&] {
        const void* at_limit = nullptr;
        const void* over = nullptr;
        {
          TaskGroup g(pool);
          g.run(Where<TaskGroup::kInlineCallableBytes>{&at_limit});
          g.wait();
          EXPECT_TRUE(inside(g, at_limit));
        }
        {
          TaskGroup g(pool);
          g.run(Where<TaskGroup::kInlineCallableBytes + 8>{&over});
          g.wait();
          ASSERT_NE(over, nullptr);
          EXPECT_FALSE(inside(g, over));
        }
      })
      .get();
}

TEST(TaskGroupSlot, RunsFromOtherThreadsAreNeverStoredInTheGroup) {
  ThreadPool pool(with_threads(2));
  // Constructed off the pool: no owner, so no run() uses the slot.
  {
    TaskGroup g(pool);
    const void* a = nullptr;
    g.run(Where<8>{&a});
    g.wait();
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(inside(g, a));
  }
  // Constructed on worker A, whose slot is free: a run() from worker B is not stored in it. B's
  // run() comes from a task A posted and did not pop itself (A polls until B has run it).
  pool.submit([&] {
        TaskGroup g(pool);
        const void* from_b = nullptr;
        std::atomic<bool> b_done{false};
        const std::thread::id a_id = std::this_thread::get_id();
        std::atomic<bool> ran_on_a{false};
        pool.post([&] {
          ran_on_a.store(std::this_thread::get_id() == a_id, std::memory_order_relaxed);
          g.run(Where<8>{&from_b});
          b_done.store(true, std::memory_order_release);
        });
        ASSERT_TRUE(wait_for([&] { return b_done.load(std::memory_order_acquire); }));
        EXPECT_FALSE(ran_on_a.load(std::memory_order_relaxed));
        const void* from_a = nullptr;
        g.run(Where<8>{&from_a});  // the owner's first run(): the slot
        g.wait();
        ASSERT_NE(from_b, nullptr);
        ASSERT_NE(from_a, nullptr);
        EXPECT_FALSE(inside(g, from_b));
        EXPECT_TRUE(inside(g, from_a));
      })
      .get();
}

// The slot's state is the owner's alone. A task of the group running on another worker calls
// run() while the owner's run() fills the slot: that run() must not even read the state (it
// checks that it is not the owner first), or it races with the owner's writes (TSAN reports it;
// until 2026-12-08 run() read the state first). H, too big for the slot, is the other worker's;
// it keeps calling run() until the owner's run() has filled the slot. None of H's tasks may land
// in the slot.
struct CountsSlotUse {
  const TaskGroup* group;
  std::atomic<int>* in_slot;
  void operator()() const {
    if (inside(*group, this)) in_slot->fetch_add(1, std::memory_order_relaxed);
  }
};
static_assert(sizeof(CountsSlotUse) <= TaskGroup::kInlineCallableBytes);

TEST(TaskGroupSlot, RunsFromTheGroupsTasksOnOtherWorkersDoNotTouchTheOwnersSlot) {
  ThreadPool pool(with_threads(2));
  std::atomic<int> from_h{0}, from_h_in_slot{0};
  pool.submit([&] {
        TaskGroup g(pool);
        std::atomic<bool> h_started{false}, owner_ran{false};
        g.run([&, big = std::array<std::uint64_t, 8>{}] {  // over 40 bytes: allocated
          (void)big;
          h_started.store(true, std::memory_order_release);
          do {
            g.run(CountsSlotUse{&g, &from_h_in_slot});  // this worker's deque: runs after H
            from_h.fetch_add(1, std::memory_order_relaxed);
          } while (!owner_ran.load(std::memory_order_acquire) &&
                   from_h.load(std::memory_order_relaxed) < 100000);
        });
        ASSERT_TRUE(wait_for([&] { return h_started.load(std::memory_order_acquire); }));
        const void* mine = nullptr;
        g.run(Where<8>{&mine});  // the owner's first run(): the slot, while H calls run()
        owner_ran.store(true, std::memory_order_release);
        g.wait();
        ASSERT_NE(mine, nullptr);
        EXPECT_TRUE(inside(g, mine));
      })
      .get();
  EXPECT_GT(from_h.load(), 0);
  EXPECT_EQ(from_h_in_slot.load(), 0);
}

TEST(TaskGroupSlot, AWaitOnAnotherThreadLeavesTheSlotTakenUntilTheOwnersWait) {
  ThreadPool pool(with_threads(1));
  std::unique_ptr<TaskGroup> g;  // owned by the worker, outlives the task that constructs it
  const void* first = nullptr;
  pool.submit([&] {
        g = std::make_unique<TaskGroup>(pool);
        g->run(Where<8>{&first});
      })
      .get();
  g->wait();  // here, off the pool (polls): the slot's task has finished, but the slot stays
              // taken, since the owner might be in run() during a wait of another thread
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(inside(*g, first));
  const void* second = nullptr;
  const void* third = nullptr;
  pool.submit([&] {
        g->run(Where<8>{&second});  // allocated
        g->wait();                  // the owner's wait frees the slot
        g->run(Where<8>{&third});   // the slot again
        g->wait();
      })
      .get();
  ASSERT_NE(second, nullptr);
  ASSERT_NE(third, nullptr);
  EXPECT_FALSE(inside(*g, second));
  EXPECT_TRUE(inside(*g, third));
}

// A callable that fits the slot and whose copy throws: run() throws, nothing is counted, and the
// slot stays free for the next run().
struct SmallCopyThrows {
  const void** out;
  explicit SmallCopyThrows(const void** o) : out(o) {}
  SmallCopyThrows(const SmallCopyThrows&) { throw std::runtime_error("copy"); }
  void operator()() const { *out = this; }
};

TEST(TaskGroupSlot, ARunWhoseCallableThrowsLeavesTheSlotFree) {
  ThreadPool pool(with_threads(1));
  pool.submit([&] {
        TaskGroup g(pool);
        const void* never = nullptr;
        const SmallCopyThrows bad(&never);
        EXPECT_THROW(g.run(bad), std::runtime_error);
        const void* a = nullptr;
        g.run(Where<8>{&a});
        g.wait();
        EXPECT_EQ(never, nullptr);
        ASSERT_NE(a, nullptr);
        EXPECT_TRUE(inside(g, a));
      })
      .get();
}

// A callable whose copy, made by the owner's run() while it builds the task in the slot, itself
// calls run() on the same group (reentrant; `nested` 2: wait() first, which finds nothing
// pending). That inner run() must not take the slot the outer one is still building its task in:
// with the slot marked taken only after the construction, the inner task went into the slot, the
// outer construction then overwrote it, and the deque held the slot twice (the outer callable ran
// twice, the inner one never).
struct RunsWhileCopied {
  TaskGroup* g;
  std::atomic<int>* runs;  // runs[which] counts this callable's calls
  int which;
  int nested;  // 0: a plain copy; 1: the copy calls run(); 2: the copy calls wait(), then run()
  RunsWhileCopied(TaskGroup* grp, std::atomic<int>* r, int w, int n)
      : g(grp), runs(r), which(w), nested(n) {}
  RunsWhileCopied(const RunsWhileCopied& o) : g(o.g), runs(o.runs), which(o.which), nested(0) {
    if (o.nested == 2) g->wait();
    if (o.nested != 0) g->run(RunsWhileCopied(g, runs, 1, 0));  // a plain copy: no recursion
  }
  void operator()() const { runs[which].fetch_add(1, std::memory_order_relaxed); }
};
static_assert(sizeof(RunsWhileCopied) <= TaskGroup::kInlineCallableBytes);

void run_reentrant_copy(int nested) {
  ThreadPool pool(with_threads(1));
  std::array<std::atomic<int>, 2> runs{};
  pool.submit([&] {
        TaskGroup g(pool);
        const RunsWhileCopied outer(&g, runs.data(), 0, nested);
        g.run(outer);  // the owner's first run(): its copy runs the inner run()
        g.wait();
        const void* after = nullptr;
        g.run(Where<8>{&after});  // the owner's wait freed the slot
        g.wait();
        ASSERT_NE(after, nullptr);
        EXPECT_TRUE(inside(g, after));
      })
      .get();
  EXPECT_EQ(runs[0].load(), 1);
  EXPECT_EQ(runs[1].load(), 1);
}

TEST(TaskGroupSlot, ARunMadeByTheCallablesCopyDoesNotTakeTheSlotBeingBuilt) {
  run_reentrant_copy(1);
}

TEST(TaskGroupSlot, AWaitMadeByTheCallablesCopyDoesNotFreeTheSlotBeingBuilt) {
  run_reentrant_copy(2);
}

// Each round: the owner fills the slot, then polls until the other worker has run the task (the
// owner pops nothing meanwhile, so the task is stolen), runs a second task, which must not go to
// the slot although the thief may be done with it, and waits for the group. The first task
// checks that its payload is its round's and that it runs from the slot, on the thief. The next
// round refills the slot: the thief's destruction of the last callable must happen-before that
// (the group's count, L1); TSAN reports a reuse it did not order, ASAN one after the group died.
struct RoundCheck {
  const TaskGroup* group = nullptr;
  std::thread::id owner;
  std::atomic<int> started{-1};
  std::atomic<int> bad_payload{0}, off_slot{0}, on_owner{0}, second_in_slot{0};
};
std::uint64_t payload_of(int round) {
  return static_cast<std::uint64_t>(static_cast<unsigned>(round)) *
         std::uint64_t{0x9E3779B97F4A7C15};
}
struct RoundTask {
  int round;
  std::uint64_t check;
  RoundCheck* c;
  void operator()() const {
    if (check != payload_of(round)) {
      c->bad_payload.fetch_add(1, std::memory_order_relaxed);
    }
    if (!inside(*c->group, this)) c->off_slot.fetch_add(1, std::memory_order_relaxed);
    if (std::this_thread::get_id() == c->owner) c->on_owner.fetch_add(1, std::memory_order_relaxed);
    c->started.store(round, std::memory_order_release);
  }
};
static_assert(sizeof(RoundTask) <= TaskGroup::kInlineCallableBytes);
struct SecondTask {
  RoundCheck* c;
  void operator()() const {
    if (inside(*c->group, this)) c->second_in_slot.fetch_add(1, std::memory_order_relaxed);
  }
};

TEST(TaskGroupSlot, ASlotTaskRunByAThiefIsReusedAfterTheOwnersWait) {
  ThreadPool pool(with_threads(2));
  constexpr int kRounds = 2000;
  RoundCheck c;
  int rounds = 0;
  pool.submit([&] {
        TaskGroup g(pool);
        c.group = &g;
        c.owner = std::this_thread::get_id();
        for (int r = 0; r < kRounds; ++r) {
          g.run(RoundTask{r, payload_of(r), &c});
          if (!wait_for([&] { return c.started.load(std::memory_order_acquire) == r; })) {
            ADD_FAILURE() << "round " << r << ": the other worker did not run the task in 20 s";
            g.wait();
            return;
          }
          // The slot is still taken (the owner has not waited): this one is allocated, while
          // the thief may still be finishing the slot's task.
          g.run(SecondTask{&c});
          g.wait();
          ++rounds;
        }
      })
      .get();
  EXPECT_EQ(rounds, kRounds);
  EXPECT_EQ(c.bad_payload.load(), 0);
  EXPECT_EQ(c.on_owner.load(), 0);
  EXPECT_EQ(c.off_slot.load(), 0);
  EXPECT_EQ(c.second_in_slot.load(), 0);
}

}  // namespace

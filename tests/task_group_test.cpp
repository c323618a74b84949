// TaskGroup: run/wait from outside and inside the pool, helping waits that cannot deadlock a
// one-worker pool, first-exception propagation, cancel, reuse, nesting 10,000 deep, closed pool,
// and the abort when two threads block in wait() of one group at once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"
#include "thread_state.hpp"

namespace {

using parkpool::PoolOptions;
using parkpool::TaskGroup;
using parkpool::ThreadPool;

using parkpool::test::with_threads;

TEST(TaskGroup, WaitFromOutsideSeesEveryTask) {
  ThreadPool pool(with_threads(2));
  std::vector<int> out(1000, 0);
  TaskGroup g(pool);
  for (std::size_t i = 0; i < out.size(); ++i) g.run([&out, i] { out[i] = static_cast<int>(i); });
  g.wait();
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int>(i));
}

TEST(TaskGroup, WaitWithNoTasksReturnsAtOnce) {
  ThreadPool pool(with_threads(1));
  TaskGroup g(pool);
  g.wait();
  EXPECT_EQ(pool.submit([&] {
                  TaskGroup inner(pool);
                  inner.wait();
                  return 1;
                })
                .get(),
            1);
}

TEST(TaskGroup, WaitInsideAOneWorkerPoolHelpsInsteadOfDeadlocking) {
  ThreadPool pool(with_threads(1));
  auto f = pool.submit([&] {
    std::atomic<int> sum{0};
    TaskGroup g(pool);
    for (int i = 1; i <= 100; ++i) g.run([&sum, i] { sum.fetch_add(i); });
    g.wait();  // the only worker is here: it must run the tasks itself
    return sum.load();
  });
  EXPECT_EQ(f.get(), 5050);
}

TEST(TaskGroup, TasksMayRunMoreTasksOfTheirGroup) {
  ThreadPool pool(with_threads(2));
  std::atomic<int> n{0};
  TaskGroup g(pool);
  for (int i = 0; i < 10; ++i) {
    g.run([&] {
      for (int j = 0; j < 10; ++j) g.run([&] { n.fetch_add(1); });
    });
  }
  g.wait();
  EXPECT_EQ(n.load(), 100);
}

TEST(TaskGroup, WaitRethrowsTheFirstExceptionAndResets) {
  ThreadPool pool(with_threads(2));
  TaskGroup g(pool);
  g.run([] { throw std::runtime_error("first"); });
  EXPECT_THROW(g.wait(), std::runtime_error);
  // Reset: the group is usable again and not cancelled.
  EXPECT_FALSE(g.is_cancelled());
  std::atomic<int> n{0};
  g.run([&] { n.fetch_add(1); });
  g.wait();
  EXPECT_EQ(n.load(), 1);
}

TEST(TaskGroup, OnlyOneOfManyExceptionsIsRethrown) {
  ThreadPool pool(with_threads(2));
  TaskGroup g(pool);
  for (int i = 0; i < 100; ++i) g.run([i] { throw i; });
  try {
    g.wait();
    FAIL() << "no exception";
  } catch (int v) {
    EXPECT_GE(v, 0);
    EXPECT_LT(v, 100);
  }
}

TEST(TaskGroup, WaitRethrowsTheFirstExceptionNotALaterOne) {
  // B is already running when A throws, and throws itself only after A's exception was recorded
  // (recording the first exception cancels the group, which B watches). A's exception is the
  // first: wait() must rethrow it, not B's. Every wait is bounded: if a task never starts, the
  // other gives up without throwing and EXPECT_THROW fails instead of the test hanging.
  ThreadPool pool(with_threads(2));
  TaskGroup g(pool);
  std::atomic<bool> b_running{false};
  g.run([&] {  // B: occupies one worker, so that A runs on the other
    b_running.store(true, std::memory_order_relaxed);  // a flag only: publishes nothing
    if (!parkpool::test::wait_for([&] { return g.is_cancelled(); })) return;
    throw std::runtime_error("second");
  });
  g.run([&] {  // A
    if (!parkpool::test::wait_for([&] { return b_running.load(std::memory_order_relaxed); }))
      return;
    throw std::logic_error("first");
  });
  EXPECT_THROW(g.wait(), std::logic_error);
}

// Occupies a one-worker pool with a task of `g` until release() (the tasks run after it are
// queued behind it, in order: the injector is FIFO).
struct OnlyWorkerBusy {
  explicit OnlyWorkerBusy(TaskGroup& g) {
    g.run([this] {
      started_.count_down();
      release_.wait();
    });
    started_.wait();
  }
  void release() { release_.count_down(); }
  std::latch started_{1}, release_{1};
};

TEST(TaskGroup, CancelDiscardsTasksNotYetStarted) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> ran{0};
  TaskGroup g(pool);
  OnlyWorkerBusy busy(g);
  for (int i = 0; i < 50; ++i) g.run([&] { ran.fetch_add(1); });
  g.cancel();
  EXPECT_TRUE(g.is_cancelled());
  busy.release();
  g.wait();
  EXPECT_EQ(ran.load(), 0);
  pool.shutdown();
  const auto st = pool.stats();
  EXPECT_EQ(st.total.tasks_cancelled, 50u);
  EXPECT_EQ(st.tasks_accepted, st.total.tasks_run + st.total.tasks_cancelled);
}

TEST(TaskGroup, DestructorWaitsForPendingTasks) {
  ThreadPool pool(with_threads(2));
  std::atomic<int> n{0};
  {
    TaskGroup g(pool);
    for (int i = 0; i < 100; ++i) g.run([&] { n.fetch_add(1); });
  }
  EXPECT_EQ(n.load(), 100);
}

// "TaskGroup::run destroys the callable before wait() can return" (thread_pool.hpp, submit): a
// callable may capture what the waiter destroys once wait() returned. The task's copy of the
// callable (the only one still armed after the moves into the task) waits in its destructor, up
// to 1 s, for wait() to return: it must time out, since wait() cannot return before it finishes.
struct DestructionProbe {
  struct State {
    std::atomic<bool> wait_returned{false};
    std::atomic<bool> destroyed{false};
    std::atomic<bool> destroyed_after_return{false};
  };
  explicit DestructionProbe(State* s) noexcept : state(s) {}
  DestructionProbe(DestructionProbe&& o) noexcept : state(std::exchange(o.state, nullptr)) {}
  DestructionProbe(const DestructionProbe&) = delete;
  DestructionProbe& operator=(const DestructionProbe&) = delete;
  DestructionProbe& operator=(DestructionProbe&&) = delete;
  ~DestructionProbe() {
    if (state == nullptr) return;  // moved from
    parkpool::test::wait_for([this] { return state->wait_returned.load(); },
                             std::chrono::seconds(1));
    state->destroyed_after_return.store(state->wait_returned.load());
    state->destroyed.store(true);
  }
  void operator()() const noexcept {}
  State* state;
};

TEST(TaskGroup, TheCallableIsDestroyedBeforeWaitReturns) {
  // The group and the wait off the pool: a worker runs (and destroys) the task.
  ThreadPool pool(with_threads(2));
  DestructionProbe::State state;
  bool destroyed_at_return = false;
  {
    TaskGroup g(pool);
    g.run(DestructionProbe(&state));
    g.wait();
    destroyed_at_return = state.destroyed.load();
    state.wait_returned.store(true);
  }
  EXPECT_TRUE(destroyed_at_return) << "wait() returned before the task's callable was destroyed";
  // A callable destroyed after wait() returned sees that (bounded by its 1 s wait).
  ASSERT_TRUE(parkpool::test::wait_for([&] { return state.destroyed.load(); }));
  EXPECT_FALSE(state.destroyed_after_return.load());
}

// wait() may be called by one thread after another. A worker's wait that slept registered itself
// on the group's count; it must leave nothing registered behind, or a later wait from outside
// the pool that has to block finds that registration and aborts as a second waiter ("two threads
// wait for the same group at once"). The sleeps are waited for (bounded) only to make each wait
// block: the test is correct whether or not they are seen.
TEST(TaskGroup, AWaitFromOutsideAfterAWorkersBlockingWaitBlocksNormally) {
  ThreadPool pool(with_threads(2));
  TaskGroup g(pool);  // constructed off the pool: every wait registers on its shared count
  // Round 1: a worker waits (and sleeps) while the other worker runs the group's task.
  std::atomic<bool> started{false}, release{false};
  std::atomic<pid_t> waiter{0};
  g.run([&] {
    started.store(true);
    parkpool::test::wait_for([&] { return release.load(); });
  });
  ASSERT_TRUE(parkpool::test::wait_for([&] { return started.load(); }));
  auto waited = pool.submit([&] {
    waiter.store(parkpool::test::current_tid());
    g.wait();
  });
  ASSERT_TRUE(parkpool::test::wait_for([&] { return waiter.load() != 0; }));
  parkpool::test::wait_until_sleeping(waiter.load(), std::chrono::seconds(10));
  release.store(true);
  waited.get();
  // Round 2: this thread waits; the group's task finishes once it sleeps.
  std::atomic<bool> release2{false};
  g.run([&] { parkpool::test::wait_for([&] { return release2.load(); }); });
  const pid_t me = parkpool::test::current_tid();
  std::thread opener([&] {
    parkpool::test::wait_until_sleeping(me, std::chrono::seconds(10));
    release2.store(true);
  });
  g.wait();
  opener.join();
}

// Each level runs the next one in a new group and waits: the wait helps, so on one worker the
// whole chain runs nested on that worker's stack.
void nest(ThreadPool& pool, int depth, std::atomic<int>& reached) {
  reached.fetch_add(1, std::memory_order_relaxed);
  if (depth == 0) return;
  TaskGroup g(pool);
  g.run([&pool, depth, &reached] { nest(pool, depth - 1, reached); });
  g.wait();
}

TEST(TaskGroup, Nests10000Deep) {
  const int depth = parkpool::test::slow_instrumentation() ? 2000 : 10000;
  for (std::size_t threads : {1u, 2u}) {
    ThreadPool pool(with_threads(threads));
    std::atomic<int> reached{0};
    nest(pool, depth, reached);
    EXPECT_EQ(reached.load(), depth + 1);
  }
}

// The owner's wait() first runs what it finds in its own deque (TaskGroup::wait_impl), and must
// then still wait for a task of the group that another worker took and is running. Here the
// owner's only task is stolen (the owner polls until the other worker started it), and that task
// finishes only after the owner has parked inside wait(): a wait() that returned once its own
// deque was empty would see it unfinished.
TEST(TaskGroup, TheOwnersWaitReturnsOnlyAfterAStolenTaskFinished) {
  ThreadPool pool(with_threads(2));
  std::atomic<bool> started{false}, gate{false}, finished{false}, entering{false};
  std::atomic<std::uint64_t> parks_before{0};
  auto owner = pool.submit([&] {
    TaskGroup g(pool);
    g.run([&] {
      started.store(true);
      parkpool::test::wait_for([&] { return gate.load(); });
      finished.store(true);
    });
    if (!parkpool::test::wait_for([&] { return started.load(); })) return false;
    parks_before.store(pool.stats().total.parks);
    entering.store(true);
    g.wait();
    return finished.load();
  });
  ASSERT_TRUE(parkpool::test::wait_for([&] { return entering.load(); }));
  // The other worker is running the task, so a new park is the owner's, in wait().
  EXPECT_TRUE(
      parkpool::test::wait_for([&] { return pool.stats().total.parks > parks_before.load(); }));
  gate.store(true);
  EXPECT_TRUE(owner.get());
}

// A wait nested in a task that the owner runs while its own outer wait() of the same group is
// registered for the group's last count_down: the nested wait registers too (the same tag), and
// when it returns it drops the registration (and GroupLatch's fold). The task then runs one more
// task of the group, Z, which the other worker takes. Two endings:
//   - Z finishes only after the owner went back to sleep in its outer wait: the outer wait must
//     have registered again, or Z's count_down wakes nobody (until 2026-12-08 it slept on with
//     the group done);
//   - Z finishes before the task returns: the outer wait then ends, and must leave the group's
//     count intact (until 2026-12-08 its clear_waiter() zeroed the shared count that balanced
//     Z's owned +1, so a second wait() of the done group slept for good).
// Each sleep of the owner is seen as a new park, counted from before this thread lets the owner
// go on (the other worker runs one of the group's tasks meanwhile and does not park).
void outer_wait_after_a_nested_wait(bool z_ends_before_the_task_returns) {
  using parkpool::test::wait_for;
  ThreadPool pool(with_threads(2));
  std::atomic<bool> y_started{false}, z_started{false}, gate_y{false}, gate_z{false};
  std::atomic<bool> go_outer{false}, go_nested{false}, go_finish{false};
  std::atomic<bool> t_started{false}, t_ready_to_finish{false}, t_on_owner{false};
  std::atomic<TaskGroup*> group{nullptr};
  std::atomic<std::thread::id> owner_id{};
  auto parks = [&] { return pool.stats().total.parks; };
  auto a_park_after = [&](std::uint64_t before) {
    return wait_for([&] { return parks() > before; });
  };
  auto owner = pool.submit([&] {
    owner_id.store(std::this_thread::get_id());
    TaskGroup g(pool);
    g.run([&] {  // Y: taken by the other worker (this one polls)
      y_started.store(true);
      wait_for([&] { return gate_y.load(); });
    });
    if (!wait_for([&] { return y_started.load(); })) return false;
    group.store(&g);
    if (!wait_for([&] { return go_outer.load(); })) return false;
    g.wait();  // the outer wait: registers, sleeps, runs T (posted below) when woken
    g.wait();  // the group is done: returns at once
    return true;
  });  // and the destructor finds it done
  ASSERT_TRUE(wait_for([&] { return group.load() != nullptr; }));
  std::uint64_t before = parks();
  go_outer.store(true);
  ASSERT_TRUE(a_park_after(before)) << "the owner did not park in its outer wait";
  pool.post([&] {  // T: the owner, the only sleeper, is woken for it and runs it
    TaskGroup& g = *group.load();
    t_on_owner.store(std::this_thread::get_id() == owner_id.load());
    t_started.store(true);
    wait_for([&] { return go_nested.load(); });
    g.wait();    // nested: the same tag; returns when Y is done, and drops the registration
    g.run([&] {  // Z: taken by the other worker (this one polls)
      z_started.store(true);
      wait_for([&] { return gate_z.load(); });
    });
    wait_for([&] { return z_started.load(); });
    if (z_ends_before_the_task_returns) {
      // Z's end: the other worker then goes idle and parks (after Z's count_down); nothing else
      // parks while this worker runs T.
      const std::uint64_t z_running = parks();
      gate_z.store(true);
      a_park_after(z_running);
    }
    t_ready_to_finish.store(true);
    wait_for([&] { return go_finish.load(); });
  });
  ASSERT_TRUE(wait_for([&] { return t_started.load(); }));
  ASSERT_TRUE(t_on_owner.load()) << "T did not run on the owner";
  before = parks();
  go_nested.store(true);
  ASSERT_TRUE(a_park_after(before)) << "the owner did not park in the nested wait";
  gate_y.store(true);  // Y ends: the nested wait returns; Z goes to the other worker
  ASSERT_TRUE(wait_for([&] { return t_ready_to_finish.load(); }));
  if (!z_ends_before_the_task_returns) {
    before = parks();
    go_finish.store(true);  // T returns: the owner goes back to its outer wait
    ASSERT_TRUE(a_park_after(before)) << "the owner did not park in its outer wait again";
    gate_z.store(true);  // Z's count_down is the group's last
  } else {
    go_finish.store(true);  // T returns: the group is done
  }
  ASSERT_EQ(owner.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the owner's waits did not return after the group's last task";
  EXPECT_TRUE(owner.get());
}

TEST(TaskGroup, AnOuterWaitIsWokenAfterAWaitNestedInItsTaskDroppedTheRegistration) {
  outer_wait_after_a_nested_wait(false);
}

TEST(TaskGroup, AnOuterWaitThatEndsAfterANestedWaitLeavesTheGroupDone) {
  outer_wait_after_a_nested_wait(true);
}

// A group constructed in a task is owned by that worker: its run()s there and the group's tasks
// it runs are counted in plain stores that cannot wake anyone. A waiter elsewhere polls. Here
// every count is the owner's (one worker), so only the polling can see the tasks finish: a waiter
// that trusted the shared word alone would return at once, one that waited for a wake would hang.
TEST(TaskGroup, ForeignWaiterOffThePoolSeesTasksTheOwnerCountedItself) {
  ThreadPool pool(with_threads(1));
  constexpr int kTasks = 50;
  std::atomic<int> ran{0};
  std::latch go(1);
  std::unique_ptr<TaskGroup> g;
  pool.submit([&] {
        g = std::make_unique<TaskGroup>(pool);
        for (int i = 0; i < kTasks; ++i) {
          g->run([&] {
            go.wait();  // the first task holds the only worker until the waiter is about to wait
            ran.fetch_add(1, std::memory_order_relaxed);
          });
        }
      })
      .get();  // the owner task returned; its tasks are queued on its worker
  EXPECT_EQ(ran.load(), 0);
  go.count_down();
  g->wait();  // foreign: this thread is not the owner
  EXPECT_EQ(ran.load(), kTasks);
  g->wait();  // nothing pending: returns at once
  g.reset();  // the destructor has nothing to wait for
}

// The owner blocks in user code with the group's tasks (and their nested runs) still in its deque;
// a task on the other worker waits for the group: it must take them (helping) and see them all.
// Deterministic: the waiter's worker is held until every task is queued, so none is stolen before
// the wait, and only a waiter that helps can run them (one that only polls waits for good).
TEST(TaskGroup, ForeignWaiterOnAnotherWorkerHelpsWhileTheOwnerIsBlocked) {
  ThreadPool pool(with_threads(2));
  constexpr int kTasks = 40;
  std::atomic<int> ran{0};
  std::atomic<bool> waiter_started{false};
  std::latch created(1);
  std::latch release(1);
  std::latch waited(1);        // the waiter's group->wait() has returned: g may go
  TaskGroup* group = nullptr;  // written before created.count_down(), read after created.wait()
  auto waiter = pool.submit([&] {
    waiter_started.store(true);
    created.wait();                   // holds this worker: the owner below runs on the other one
    if (group == nullptr) return -1;  // the test gave up before the owner ran
    group->wait();                    // foreign: this worker is not the owner
    const int seen = ran.load(std::memory_order_relaxed);
    waited.count_down();
    return seen;
  });
  if (!parkpool::test::wait_for([&] { return waiter_started.load(); })) {
    created.count_down();  // lets the waiter's task end, should it ever run
    FAIL() << "the waiter's task did not start within 20 s";
  }
  auto owner = pool.submit([&] {
    TaskGroup g(pool);
    for (int i = 0; i < kTasks; ++i) {
      g.run([&] {
        ran.fetch_add(1, std::memory_order_relaxed);
        g.run([&] { ran.fetch_add(1, std::memory_order_relaxed); });
      });
    }
    group = &g;
    created.count_down();
    release.wait();  // blocks this worker
    // Runs what is left (nothing unless the waiter failed to help), so that the foreign wait
    // ends; g stays alive until it has.
    g.wait();
    waited.wait();
  });
  const bool helped = waiter.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  EXPECT_TRUE(helped) << "a worker waiting for a TaskGroup owned by a blocked worker did not run "
                         "the group's tasks within 5 s (PoolCore::wait_foreign must help): "
                      << ran.load() << " of " << 2 * kTasks << " ran";
  release.count_down();  // on failure the owner now runs its tasks and the foreign wait ends
  owner.get();           // the tasks use this frame until then
  EXPECT_EQ(waiter.get(), 2 * kTasks);
}

// A callable whose copy throws: run() must throw and leave the group unchanged (nothing
// counted), or wait() and the destructor wait forever for a task that does not exist.
struct CopyThrows {
  std::atomic<int>* ran;
  explicit CopyThrows(std::atomic<int>* r) : ran(r) {}
  CopyThrows(const CopyThrows&) { throw std::runtime_error("copy"); }
  void operator()() const { ran->fetch_add(1, std::memory_order_relaxed); }
};

TEST(TaskGroup, RunWhoseCallableCannotBeCopiedLeavesTheGroupUnchanged) {
  ThreadPool pool(with_threads(2));
  std::atomic<int> ran{0};
  const CopyThrows bad(&ran);
  {
    TaskGroup g(pool);  // constructed off the pool: the shared count
    EXPECT_THROW(g.run(bad), std::runtime_error);
    g.run([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    g.wait();  // hangs if the failed run() was counted
    EXPECT_EQ(ran.load(), 1);
    EXPECT_THROW(g.run(bad), std::runtime_error);
  }  // the destructor waits for nothing either
  // The same on a worker that owns its group (its own plain count).
  pool.submit([&] {
        TaskGroup g(pool);
        EXPECT_THROW(g.run(bad), std::runtime_error);
        g.run([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        g.wait();
        EXPECT_THROW(g.run(bad), std::runtime_error);
      })
      .get();
  EXPECT_EQ(ran.load(), 2);
}

TEST(TaskGroup, RunAfterShutdownThrowsPoolClosed) {
  ThreadPool pool(with_threads(1));
  pool.shutdown();
  TaskGroup g(pool);
  bool accepted = false;
  try {
    g.run([] {});
    accepted = true;
  } catch (const parkpool::pool_closed&) {
  }
  if (accepted) {
    // No worker is left to run it, so wait() and ~TaskGroup would block for good.
    std::fprintf(stderr,
                 "TaskGroup.RunAfterShutdownThrowsPoolClosed: run() after shutdown() did not throw "
                 "pool_closed: the group counts a task that no worker will run (the injector's "
                 "gate did not close, or its refusal was lost)\n");
    std::fflush(stderr);
    std::_Exit(1);
  }
  g.wait();  // nothing was accepted
}

// "The first exception is rethrown by wait(); it also cancels the group's tasks that have not
// started." One worker and the injector's FIFO order make "not started" exact: the tasks queued
// behind the throwing one are discarded, not run.
TEST(TaskGroup, FirstExceptionDiscardsTheTasksNotYetStarted) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> ran{0};
  TaskGroup g(pool);
  OnlyWorkerBusy busy(g);
  g.run([] { throw std::runtime_error("first"); });
  for (int i = 0; i < 20; ++i) {
    g.run([&] { ran.fetch_add(1, std::memory_order_relaxed); });  // relaxed: read after wait()
  }
  busy.release();
  EXPECT_THROW(g.wait(), std::runtime_error);
  EXPECT_EQ(ran.load(std::memory_order_relaxed), 0);
  pool.shutdown();
  EXPECT_EQ(pool.stats().total.tasks_cancelled, 20u);
}

// "The destructor waits for pending tasks (without rethrowing their exception)": a destructor
// that rethrew would terminate the process.
TEST(TaskGroup, DestructorWaitsWithoutRethrowing) {
  ThreadPool pool(with_threads(2));
  std::atomic<int> n{0};
  {
    TaskGroup g(pool);
    g.run([] { throw std::runtime_error("dropped by the destructor"); });
    for (int i = 0; i < 10; ++i) {
      // Relaxed: read after the destructor's wait, which orders every task before it.
      g.run([&] { n.fetch_add(1, std::memory_order_relaxed); });
    }
  }
  // Every task finished or was discarded (the exception cancels those not yet started) before
  // the destructor returned: the ones that ran are all counted already.
  const int ran = n.load(std::memory_order_relaxed);
  pool.shutdown();
  const auto st = pool.stats();
  EXPECT_EQ(st.total.tasks_run + st.total.tasks_cancelled, 11u);
  EXPECT_EQ(static_cast<std::uint64_t>(ran) + 1, st.total.tasks_run);  // + the throwing one
}

// The waiting half of the same sentence on the group's owner worker, where the destructor runs the
// group's tasks itself while it waits. Exact on one worker: the tasks can run nowhere else, so a
// destructor that returned without waiting there would leave all eleven queued behind the task
// running it (the tests above wait off the pool, and two workers usually finish the tasks before
// the destructor even looks).
TEST(TaskGroup, DestructorOnItsOwnerWorkerFinishesEveryTaskBeforeReturning) {
  ThreadPool pool(with_threads(1));
  // Relaxed: written and read on the one worker only (and read after shutdown()'s join).
  std::atomic<int> n{0};
  auto group_in_a_task = [&] {
    {
      TaskGroup g(pool);
      g.run([] { throw std::runtime_error("dropped by the destructor"); });
      for (int i = 0; i < 10; ++i) g.run([&] { n.fetch_add(1, std::memory_order_relaxed); });
    }
    return n.load(std::memory_order_relaxed);
  };
  const int ran_before_return = pool.submit(group_in_a_task).get();
  pool.shutdown();
  const auto st = pool.stats();
  // The submitted task, plus every task of the group run or discarded before its destructor
  // returned; the throwing one counts as run.
  EXPECT_EQ(st.total.tasks_run + st.total.tasks_cancelled, 12u);
  EXPECT_EQ(static_cast<std::uint64_t>(ran_before_return) + 2, st.total.tasks_run);
  EXPECT_EQ(n.load(std::memory_order_relaxed), ran_before_return);
}

// A callable that counts its live copies: a task of the group holds one until it has run or been
// discarded.
struct Counted {
  std::atomic<int>* live;
  explicit Counted(std::atomic<int>* l) : live(l) { live->fetch_add(1, std::memory_order_relaxed); }
  Counted(const Counted& o) : live(o.live) { live->fetch_add(1, std::memory_order_relaxed); }
  Counted& operator=(const Counted&) = delete;
  ~Counted() { live->fetch_sub(1, std::memory_order_relaxed); }
  void operator()() const {}
};

// The destructor waits also when the exception was recorded before it ran (the cancelled tasks
// are discarded, not run, but still waited for). On the owner of a one-worker pool: h.wait() runs
// the throwing task (the newest on the worker's deque) first, so the group is failed and
// cancelled while ten tasks are still queued; a destructor that skipped the wait of a failed
// group would return with their callables alive.
TEST(TaskGroup, DestructorWaitsForTheTasksTheFirstExceptionCancelled) {
  ThreadPool pool(with_threads(1));
  // Relaxed: counted and read on the one worker only.
  std::atomic<int> live{0};
  auto groups_in_a_task = [&] {
    int left = -1;
    {
      TaskGroup g(pool);
      TaskGroup h(pool);
      for (int i = 0; i < 10; ++i) g.run(Counted(&live));
      h.run([] {});
      g.run([] { throw std::runtime_error("dropped by the destructor"); });
      h.wait();  // runs the throwing task, the newest, before h's own
      left = live.load(std::memory_order_relaxed);
    }
    return std::pair(left, live.load(std::memory_order_relaxed));
  };
  const auto [queued_before, alive_after] = pool.submit(groups_in_a_task).get();
  EXPECT_EQ(queued_before, 10) << "the set-up did not leave the ten tasks queued";
  EXPECT_EQ(alive_after, 0) << "the destructor returned with tasks of the group still queued";
  pool.shutdown();
  EXPECT_EQ(pool.stats().total.tasks_cancelled, 10u);
}

// Two foreign waiters (neither is the owner: both poll, so the overlap is not detected) of a group
// whose task throws: both return once the tasks have finished, and the exception is rethrown by
// exactly one of them. They used to both move from the group's exception_ptr, a data race.
TEST(TaskGroup, OverlappingForeignWaitsRethrowTheExceptionOnce) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> waiting{0};
  std::atomic<int> ran{0};
  std::unique_ptr<TaskGroup> g;
  pool.submit([&] {
        g = std::make_unique<TaskGroup>(pool);  // owned by the only worker
        g->run([&] {
          // Holds the only worker until both waiters are about to wait, so their waits overlap
          // (unless one is descheduled for the whole of the other's).
          while (waiting.load(std::memory_order_relaxed) < 2) std::this_thread::yield();
          ran.fetch_add(1, std::memory_order_relaxed);
          throw std::runtime_error("task");
        });
        g->run([&] { ran.fetch_add(1, std::memory_order_relaxed); });
      })
      .get();
  std::atomic<int> threw{0};
  auto waiter = [&] {
    waiting.fetch_add(1, std::memory_order_relaxed);
    try {
      g->wait();
    } catch (const std::runtime_error&) {
      threw.fetch_add(1, std::memory_order_relaxed);
    }
    EXPECT_EQ(ran.load(std::memory_order_relaxed), 2);  // returned after both tasks
  };
  std::thread other(waiter);
  waiter();
  other.join();
  EXPECT_EQ(threw.load(), 1);
  g->wait();  // reset: nothing pending, no exception left
  g.reset();
}

// wait() is for one thread at a time. Two threads that both block in it would share the one wake
// of the group's last task; the second to register for it aborts with a message instead of
// leaving the first asleep forever. In both tests the group's task never finishes (its gate never
// opens), so both waiters reach the registration in every interleaving. Before the check, two
// external waiters both "registered" (they carry the same tag) and the child hung: alarm(20)
// ends such a child with SIGALRM and no message, which fails the test at once.
std::shared_future<void> gate_that_never_opens() {
  static std::promise<void> never;  // set by nobody; the death-test child aborts while it waits
  static const std::shared_future<void> gate = never.get_future().share();
  return gate;
}

TEST(TaskGroupDeathTest, TwoExternalThreadsBlockedInWaitAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        alarm(20);
        ThreadPool pool(with_threads(1));
        TaskGroup g(pool);  // constructed off the pool: every waiter registers for the wake
        g.run([gate = gate_that_never_opens()] { gate.wait(); });  // the count stays at 1
        std::thread other([&g] { g.wait(); });
        g.wait();
        other.join();
      },
      "two threads wait for the same group at once");
}

TEST(TaskGroupDeathTest, AWorkerAndAnExternalThreadBlockedInWaitAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        alarm(20);
        ThreadPool pool(with_threads(2));
        TaskGroup g(pool);  // constructed off the pool
        std::latch started(1);
        g.run([&started, gate = gate_that_never_opens()] {
          started.count_down();
          gate.wait();  // holds one worker and the group's count
        });
        started.wait();  // so the other worker, not this task's, takes the waiting task below
        pool.post([&g] { g.wait(); });  // the other worker finds nothing to help with: it sleeps
        g.wait();
      },
      "two threads wait for the same group at once");
}

}  // namespace

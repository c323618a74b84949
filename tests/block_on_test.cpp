// Tests of parkpool::block_on, parkpool::Task and parkpool::AsyncEvent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdlib>
#include <latch>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "counting_new.hpp"  // this executable's one replacement of operator new
#include "join_on_exit.hpp"
#include "parkpool/async_event.hpp"
#include "parkpool/task.hpp"
#include "parkpool/thread_parker.hpp"
#include "parkpool_test.hpp"
#include "thread_state.hpp"

namespace {

using parkpool::AsyncEvent;
using parkpool::block_on;
using parkpool::Task;
using parkpool::test::Finished;
using parkpool::test::WakeWithin;

// Bounds a block_on that waits for another thread: a lost wake of it fails the test, naming
// `what`, after 20 s (WakeWithin) instead of hanging it. Nothing but that wake can end the call,
// so the release does nothing (after a further 10 s the binary aborts).
template <class Awaitable>
decltype(auto) block_on_within(Awaitable&& a, const char* what) {
  const WakeWithin wake(what, [] {});
  return block_on(std::forward<Awaitable>(a));
}

Task<int> answer() { co_return 42; }
Task<void> nothing() { co_return; }
Task<int> fails() {
  throw std::runtime_error("boom");
  co_return 0;
}
Task<int> add(Task<int> a, int b) { co_return co_await std::move(a) + b; }

TEST(BlockOn, ReturnsTheValueOfAReadyCoroutine) { EXPECT_EQ(block_on(answer()), 42); }

TEST(BlockOn, RunsAVoidTask) {
  bool ran = false;
  auto t = [&]() -> Task<void> {
    ran = true;
    co_return;
  };
  block_on(t());
  EXPECT_TRUE(ran);
  block_on(nothing());
}

TEST(BlockOn, RethrowsTheCoroutinesException) {
  try {
    block_on(fails());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "boom");
  }
  // Through an awaiting coroutine too.
  auto outer = []() -> Task<int> { co_return co_await fails(); };
  EXPECT_THROW(block_on(outer()), std::runtime_error);
}

TEST(BlockOn, AwaitsNestedTasks) { EXPECT_EQ(block_on(add(add(answer(), 1), 2)), 45); }

Task<int> count_down(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await count_down(n - 1);
}

TEST(BlockOn, DeepChainsDoNotOverflowTheStack) {
  // Symmetric transfer: 10^4 nested awaits resume without growing the stack. Without
  // optimization or under the sanitizers GCC does not turn the transfer into a tail call, so
  // the depth is cut there.
#if defined(__OPTIMIZE__)
  const bool tail_calls = !parkpool::test::slow_instrumentation();
#else
  const bool tail_calls = false;
#endif
  const int depth = tail_calls ? 10'000 : 200;
  EXPECT_EQ(block_on(count_down(depth)), depth);
}

TEST(BlockOn, EmptyTaskIsAClearError) {
  Task<int> t = answer();
  Task<int> moved = std::move(t);
  EXPECT_THROW(block_on(std::move(t)), std::invalid_argument);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(block_on(std::move(moved)), 42);
  auto awaits_empty = []() -> Task<int> {
    Task<int> none;
    co_return co_await std::move(none);
  };
  EXPECT_THROW(block_on(awaits_empty()), std::invalid_argument);
}

TEST(BlockOn, AwaitingATaskTwiceIsAClearError) {
  auto twice = []() -> Task<int> {
    Task<int> t = answer();
    int a = co_await std::move(t);
    int b = co_await std::move(t);  // NOLINT(bugprone-use-after-move): the error under test
    co_return a + b;
  };
  EXPECT_THROW(block_on(twice()), std::logic_error);
}

// task.hpp: "A coroutine returning Task<T> starts suspended; it runs when awaited ... or when
// passed to parkpool::block_on", once. An eager Task would have run (and finished) at the call.
TEST(Task, StartsSuspendedAndRunsWhenAwaitedOrBlockedOn) {
  int runs = 0;
  auto body = [&]() -> Task<int> { co_return ++runs; };
  Task<int> t = body();
  Task<int> u = body();
  ASSERT_EQ(runs, 0);  // ASSERT: resuming a finished (eager) coroutine below would be UB
  EXPECT_TRUE(t.valid());
  EXPECT_FALSE(t.done());
  EXPECT_EQ(block_on(std::move(t)), 1);
  EXPECT_EQ(runs, 1);
  auto outer = [&]() -> Task<int> {
    EXPECT_EQ(runs, 1);  // u has not run yet: it runs at the co_await
    co_return co_await std::move(u);
  };
  EXPECT_EQ(block_on(outer()), 2);
  EXPECT_EQ(runs, 2);
}

TEST(BlockOn, ReadyCoroutineAllocatesOnlyItsFrame) {
  // On a fresh thread: also shows the thread's block_on parker is not created (its state is an
  // aligned allocation, which the counter sees too: ThreadsParkerIsCreatedByTheFirstWait).
  long allocs = -1;
  int value = 0;
  std::thread t(
      [&] { allocs = parkpool::test::count_allocations([&] { value = block_on(answer()); }); });
  t.join();
  EXPECT_EQ(value, 42);
  EXPECT_GE(allocs, 0);
  EXPECT_LE(allocs, 1);  // the frame (0 if the compiler elided it)
}

// Suspends, arms a Resumption and resumes it from a new thread: block_on must wait for a wake.
// With `after_sleep_of` set, the new thread resumes only once that thread sleeps in the kernel
// (bounded wait): the owner has then parked in block_on.
struct ResumedFromAnotherThread {
  std::thread& thread;
  pid_t after_sleep_of = 0;
  parkpool::Resumption resumption{};
  bool await_ready() noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    resumption.arm(h);
    thread = std::thread([this] {
      if (after_sleep_of != 0) {
        (void)parkpool::test::wait_until_sleeping(after_sleep_of, std::chrono::seconds(10));
      }
      resumption.resume();
    });
  }
  void await_resume() noexcept {}
};

// The counter above would see the parker being made: the first block_on that has to wait on a
// fresh thread makes it (one allocation at least), a second one does not.
TEST(BlockOn, ThreadsParkerIsCreatedByTheFirstWait) {
  long first = -1, second = -1;
  Finished finished;  // not in the counted calls: its own allocations would count
  std::thread t(finished([&] {
    auto waits = [] {
      std::thread resumer;
      auto root = [&]() -> Task<int> {
        co_await ResumedFromAnotherThread{resumer};
        co_return 1;
      };
      EXPECT_EQ(block_on(root()), 1);
      resumer.join();
    };
    first = parkpool::test::count_allocations(waits);
    second = parkpool::test::count_allocations(waits);
  }));
  // Bounded: a lost resumption wake leaves the thread in block_on; nothing else can end it, so
  // the failed test aborts the binary 10 s later (JoinOnExit), instead of hanging it.
  parkpool::test::JoinOnExit join([] {}, t);
  ASSERT_TRUE(
      finished.within(1, "the thread's two block_on calls, each ended by a resumption's wake"));
  t.join();
  EXPECT_GT(first, second);
}

TEST(BlockOn, WaitsForACoroutineCompletedFromAnotherThread) {
  AsyncEvent event;
  int payload = 0;
  const auto caller = std::this_thread::get_id();
  std::thread::id resumed_on;
  auto waiter = [&]() -> Task<int> {
    co_await event;
    resumed_on = std::this_thread::get_id();
    co_return payload;
  };
  std::thread setter([&] {
    payload = 7;  // published by set() (release) to the resumed coroutine
    event.set();
  });
  EXPECT_EQ(block_on_within(waiter(), "block_on, which the other thread's set() must wake"), 7);
  EXPECT_EQ(resumed_on, caller);  // resumed on the block_on thread, not the setter's
  setter.join();
}

TEST(BlockOn, ManyEventsInSequence) {
  constexpr int kEvents = 100;
  std::vector<AsyncEvent> events(kEvents);
  auto waiter = [&]() -> Task<int> {
    int n = 0;
    for (auto& e : events) {
      co_await e;
      ++n;
    }
    co_return n;
  };
  std::thread setter([&] {
    for (auto& e : events) EXPECT_TRUE(e.set());
  });
  EXPECT_EQ(block_on_within(waiter(), "block_on, which each of the other thread's set() must wake"),
            kEvents);
  setter.join();
}

TEST(BlockOn, AcceptsAnyAwaitable) {
  AsyncEvent event;
  std::thread setter([&] { event.set(); });
  // An lvalue awaitable, wrapped in one Task.
  block_on_within(event, "block_on, which the other thread's set() must wake");
  setter.join();
  EXPECT_TRUE(event.is_set());
}

// An awaitable that resumes the coroutine on a new thread: the root then finishes on a thread
// other than the block_on thread (the foreign-completion path).
struct ResumeOnNewThread {
  std::thread* thread;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    *thread = std::thread([h] { h.resume(); });
  }
  void await_resume() const noexcept {}
};

TEST(BlockOn, CoroutineFinishedOnAForeignThread) {
  for (int i = 0; i < 50; ++i) {
    std::thread worker;
    std::thread::id finished_on;
    auto task = [&]() -> Task<int> {
      co_await ResumeOnNewThread{&worker};
      finished_on = std::this_thread::get_id();
      co_return 5;
    };
    EXPECT_EQ(block_on_within(task(), "block_on, which the foreign completion must wake"), 5);
    EXPECT_EQ(finished_on, worker.get_id());
    worker.join();
  }
}

// Resumes the coroutine directly (no Resumption) on a new thread once `owner` sleeps in the
// kernel (bounded wait): the root then finishes on that thread while block_on is parked, and
// only the foreign completion's wake (INV-B1) can end the park.
struct ResumeOnNewThreadOnceOwnerSleeps {
  std::thread& thread;
  pid_t owner;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    thread = std::thread([h, owner = owner] {
      (void)parkpool::test::wait_until_sleeping(owner, std::chrono::seconds(10));
      h.resume();
    });
  }
  void await_resume() const noexcept {}
};

// The foreign-completion path with the owner parked: block_on must be woken by the thread that
// finished the root (a completer that published kDone without waking, or an owner that parked
// without a waker for completers to use, hangs here until the ctest TIMEOUT).
// CoroutineFinishedOnAForeignThread covers the same path but parks only when the scheduler
// lets the owner get there first. block_on runs on a thread of its own, so that a lost wake fails
// the test (after 20 s, naming it) instead of hanging the binary: that thread is then left behind
// (nothing can wake it; its state is shared, so it outlives the test).
TEST(BlockOn, RootFinishedOnAForeignThreadWhileTheOwnerIsParked) {
  struct Shared {
    std::thread worker;
    std::thread::id owner_id;
    std::thread::id finished_on;
    int result = 0;
    std::atomic<bool> returned{false};
  };
  const auto s = std::make_shared<Shared>();
  std::thread owner([s] {
    s->owner_id = std::this_thread::get_id();
    auto task = [&sh = *s]() -> Task<int> {
      co_await ResumeOnNewThreadOnceOwnerSleeps{sh.worker, parkpool::test::current_tid()};
      sh.finished_on = std::this_thread::get_id();
      co_return 8;
    };
    s->result = block_on(task());
    // Release: pairs with the test's acquire load; publishes the results.
    s->returned.store(true, std::memory_order_release);
  });
  constexpr auto kBound = parkpool::test::Finished::kFinishBound;
  const auto end = std::chrono::steady_clock::now() + kBound;
  // Acquire: pairs with the owner's release store.
  while (!s->returned.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() >= end) {
      owner.detach();  // parked for good: nothing can wake it any more
      FAIL() << "lost wakeup: block_on, parked while another thread finished its root, did not "
                "return within "
             << kBound.count() << " s (the completer's wake of the parked owner)";
    }
    std::this_thread::yield();
  }
  owner.join();
  s->worker.join();
  EXPECT_EQ(s->result, 8);
  EXPECT_NE(s->finished_on, s->owner_id);
}

TEST(BlockOn, NestedBlockOnOnDifferentThreads) {
  // The outer coroutine (thread A) starts thread B, which runs its own block_on; the two
  // coroutines hand events back and forth.
  AsyncEvent to_inner;
  AsyncEvent to_outer;
  int inner_result = 0;
  std::thread b;
  auto outer = [&]() -> Task<int> {
    b = std::thread([&] {
      auto inner = [&]() -> Task<int> {
        co_await to_inner;
        to_outer.set();
        co_return 10;
      };
      inner_result = block_on(inner());
    });
    to_inner.set();
    co_await to_outer;
    co_return 1;
  };
  EXPECT_EQ(block_on_within(outer(), "the outer block_on, which the inner one's set() must wake"),
            1);
  b.join();
  EXPECT_EQ(inner_result, 10);
}

// An eagerly started, self-destroying coroutine (no executor of its own). An exception that
// escapes it terminates, or with Rethrow leaves the call that resumed it (its resume()).
template <bool Rethrow>
struct BasicDetached {
  struct promise_type {
    BasicDetached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept(!Rethrow) {
      if constexpr (Rethrow) {
        throw;
      } else {
        std::terminate();
      }
    }
  };
};
using Detached = BasicDetached<false>;

TEST(BlockOn, NestedBlockOnOnTheSameThread) {
  // A detached coroutine D, started under the outer block_on, waits for outer_event. Another
  // thread sets outer_event while the inner block_on (same thread) runs: D's resumption waits in
  // the outer queue, the inner call consumes the wake token, and D still runs afterwards.
  AsyncEvent outer_event;
  AsyncEvent inner_event;
  AsyncEvent d_done;
  std::thread setter;
  auto outer = [&]() -> Task<int> {
    [](AsyncEvent& wait_for, AsyncEvent& done) -> Detached {
      co_await wait_for;
      done.set();
    }(outer_event, d_done);
    setter = std::thread([&] {
      outer_event.set();
      inner_event.set();
    });
    auto inner = [&]() -> Task<int> {
      co_await inner_event;
      co_return 2;
    };
    const int v = block_on(inner());  // nested, same thread
    co_await d_done;
    co_return v + 1;
  };
  EXPECT_EQ(block_on_within(outer(),
                            "the nested block_on calls, which the other thread's set() calls "
                            "must wake"),
            3);
  setter.join();
}

// block_on parks on a parker of its own, not on this_thread's: a token a user left for a later
// this_thread::park() survives a block_on that had to park (found by review: block_on's first
// park consumed it, and the later this_thread::park() slept until some other wake).
TEST(BlockOn, KeepsATokenLeftForThisThreadPark) {
  (void)parkpool::this_thread::park_timeout(std::chrono::nanoseconds(0));  // no token
  parkpool::this_thread::current_unparker().unpark();  // "my next park() returns at once"
  std::thread resumer;
  auto root = [&]() -> Task<int> {
    co_await ResumedFromAnotherThread{resumer, parkpool::test::current_tid()};
    co_return 5;
  };
  EXPECT_EQ(
      block_on_within(root(), "block_on, parked, which the other thread's resume() must wake"), 5);
  resumer.join();
  EXPECT_EQ(parkpool::this_thread::park_timeout(std::chrono::nanoseconds(0)),
            parkpool::UnparkReason::unparked);
}

// ... and block_on leaves none of its own tokens for this_thread::park() (found by review: a wake
// that arrived while the owner ran, whose resumption it drained without parking, made a later
// this_thread::park() return although nobody had unparked the thread).
TEST(BlockOn, LeavesNoTokenForThisThreadPark) {
  (void)parkpool::this_thread::park_timeout(std::chrono::nanoseconds(0));  // no token
  AsyncEvent woken_while_running, detached_done;
  auto root = [&]() -> Task<int> {
    [](AsyncEvent& wait_for, AsyncEvent& done) -> Detached {
      co_await wait_for;  // queued on this block_on by the foreign set(), with a wake
      done.set();
    }(woken_while_running, detached_done);
    std::thread([&] { woken_while_running.set(); }).join();  // push + wake while the owner runs
    co_await detached_done;
    co_return 6;
  };
  EXPECT_EQ(block_on(root()), 6);
  EXPECT_EQ(parkpool::this_thread::park_timeout(std::chrono::nanoseconds(0)),
            parkpool::UnparkReason::timed_out);
}

// Nested block_on calls on one thread share its block_on parker, so an inner call can consume a
// wake meant for the outer one. Here it does: a resumption of the outer call is queued with a
// wake while the outer root runs, then the outer root runs a nested block_on that parks (and
// consumes that token) before it is resumed. The outer call must still run the queued
// resumption: it checks its queue before every park (INV-B3); a block_on that parked without
// looking would sleep forever here (the ctest TIMEOUT).
TEST(BlockOn, NestedBlockOnConsumingTheOuterWakeLosesNoResumption) {
  const pid_t me = parkpool::test::current_tid();
  AsyncEvent outer_event, detached_done;
  std::thread resumer;
  auto inner = [&]() -> Task<int> {
    co_await ResumedFromAnotherThread{resumer, me};
    co_return 1;
  };
  auto outer = [&]() -> Task<int> {
    [](AsyncEvent& wait_for, AsyncEvent& done) -> Detached {
      co_await wait_for;  // a resumption of the outer block_on
      done.set();
    }(outer_event, detached_done);
    std::thread([&] { outer_event.set(); }).join();  // queued on the outer call, with a wake
    const int v = block_on(inner());  // parks: takes that wake, then sleeps until resumed
    co_await detached_done;           // only the queued resumption sets it
    co_return v + 1;
  };
  EXPECT_EQ(block_on_within(outer(),
                            "the nested block_on, parked, which the other thread's resume() "
                            "must wake"),
            2);
  resumer.join();
}

Detached append_when_set(AsyncEvent& e, std::vector<int>& order, int id, AsyncEvent& done) {
  co_await e;
  order.push_back(id);
  done.set();
}

// Resumptions queued on a block_on run in the order they were queued (src/thread_parker.cpp,
// drain_ready: the queue is a LIFO stack, reversed before it runs). Two coroutines suspended on
// two events, set in order by another thread while the root runs (both queued before the owner
// drains): the first set runs first.
TEST(BlockOn, QueuedResumptionsRunInTheOrderTheyWereQueued) {
  AsyncEvent first, second, first_done, second_done;
  std::vector<int> order;
  auto root = [&]() -> Task<int> {
    append_when_set(first, order, 1, first_done);
    append_when_set(second, order, 2, second_done);
    std::thread([&] {
      first.set();
      second.set();
    }).join();  // both queued on this block_on, in this order
    co_await first_done;
    co_await second_done;
    co_return 0;
  };
  EXPECT_EQ(block_on(root()), 0);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

// async_event.hpp: "if the event is already set it does not suspend". The awaiter says it is
// ready; and under block_on on a fresh thread, a coroutine awaiting a set event never suspends,
// so block_on allocates nothing beyond the frame (thread_parker.hpp, "Size and cost"): an awaiter
// that suspended anyway would arm a Resumption, which makes the thread's block_on parker (an
// allocation the counter sees). Set before the await, by a set() that reports it set the event
// (a second one reports it was set already: one-shot). SetBeforeAwaitDoesNotSuspend, merged
// here on 2026-12-08, checked only the result of the same awaits, which an awaiter that suspends
// (and is resumed) also gives.
TEST(AsyncEvent, AwaitingASetEventDoesNotSuspend) {
  AsyncEvent e;
  EXPECT_FALSE(e.is_set());
  EXPECT_TRUE(e.set());
  EXPECT_FALSE(e.set());  // one-shot: already set
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.operator co_await().await_ready());
  long allocs = -1;
  int value = 0;
  std::thread t([&] {
    auto awaits_set = [&]() -> Task<int> {
      co_await e;
      co_await e;
      co_return 4;
    };
    allocs = parkpool::test::count_allocations([&] { value = block_on(awaits_set()); });
  });
  t.join();
  EXPECT_EQ(value, 4);
  EXPECT_GE(allocs, 0);
  EXPECT_LE(allocs, 1);  // the frame (0 if the compiler elided it)
}

TEST(AsyncEvent, OutsideBlockOnResumesInlineOnTheSetter) {
  AsyncEvent e;
  std::atomic<bool> resumed{false};
  std::thread::id resumed_on;
  [](AsyncEvent& ev, std::atomic<bool>& r, std::thread::id& on) -> Detached {
    co_await ev;
    on = std::this_thread::get_id();
    r.store(true);
  }(e, resumed, resumed_on);
  EXPECT_FALSE(resumed.load());
  bool second_threw = false;
  [](AsyncEvent& ev, bool& threw) -> Detached {
    try {
      co_await ev;  // a second concurrent awaiter
    } catch (const std::logic_error&) {
      threw = true;
    }
  }(e, second_threw);
  EXPECT_TRUE(second_threw);
  std::thread::id setter_id;
  std::thread setter([&] {
    setter_id = std::this_thread::get_id();
    e.set();
  });
  setter.join();
  EXPECT_TRUE(resumed.load());
  EXPECT_EQ(resumed_on, setter_id);
}

// An AsyncEvent awaiter that, between its ready check and its suspension, lets set() run: what
// another thread's set() does when it lands in that window.
struct SetInTheWindow {
  AsyncEvent& event;
  AsyncEvent::Awaiter inner;
  bool& ready_seen;
  bool await_ready() {
    ready_seen = inner.await_ready();
    return ready_seen;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    event.set();
    return inner.await_suspend(h);
  }
  void await_resume() const noexcept { inner.await_resume(); }
};

// async_event.hpp: a co_await of a set event does not suspend, and a set event stays set. The
// window between the awaiter's ready check (not set yet) and its suspension: set() finds no
// awaiter registered, so it resumes nobody; the awaiter's CAS then finds kSet and must continue
// the coroutine at once (await_suspend returns false), without an exception (it is not a second
// awaiter) and without leaving it suspended with nobody to resume it.
TEST(AsyncEvent, SetBetweenTheReadyCheckAndTheSuspendDoesNotSuspend) {
  AsyncEvent e;
  bool ready_seen = true;
  bool continued = false;
  bool threw = false;
  std::thread::id continued_on;
  [](AsyncEvent& ev, bool& ready, bool& cont, bool& thr, std::thread::id& on) -> Detached {
    try {
      co_await SetInTheWindow{ev, AsyncEvent::Awaiter{ev}, ready};
    } catch (const std::logic_error&) {
      thr = true;
      co_return;
    }
    on = std::this_thread::get_id();
    cont = true;
  }(e, ready_seen, continued, threw, continued_on);
  EXPECT_FALSE(ready_seen) << "the event was set before the ready check: the window was missed";
  EXPECT_FALSE(threw) << "the awaiter took the set event for a second awaiter";
  EXPECT_TRUE(continued) << "the coroutine stayed suspended on a set event";
  EXPECT_EQ(continued_on, std::this_thread::get_id());
  EXPECT_TRUE(e.is_set());
  EXPECT_FALSE(e.set());  // still set, once
}

TEST(CachedParkThread, BlockOnThroughTheHandle) {
  parkpool::CachedParkThread cached;
  EXPECT_EQ(cached.block_on(answer()), 42);
}

// Many block_on calls each waiting for a set from another thread: no lost resumption. One
// watcher (WakeWithin over the loop's count of rounds) bounds every round: a round that has not
// ended 20 s after the last one did fails the test naming it, instead of hanging the binary
// until the watchdog; a watcher per round would start thousands of threads.
TEST(BlockOn, RepeatedCrossThreadCompletionsLoseNoWakeup) {
  const std::size_t rounds = parkpool::test::scaled(20'000);
  parkpool::test::TimeBudget budget(std::chrono::seconds(30));
  std::vector<AsyncEvent> events(rounds);
  std::atomic<std::size_t> published{0};
  std::thread setter([&] {
    for (std::size_t i = 0; i < rounds; ++i) {
      // Wait until the waiter has (probably) started round i; correctness does not depend on it.
      while (published.load(std::memory_order_acquire) < i) std::this_thread::yield();
      events[i].set();
    }
  });
  // The setter needs published to advance; a failed ASSERT below returns before it did.
  parkpool::test::JoinOnExit join([&] { published.store(rounds, std::memory_order_release); },
                                  setter);
  // The release, only after a round's wake was lost: every block_on of this thread parks on one
  // parker of the thread's own (thread_parker.cpp), so a waker of it, taken once, wakes the
  // stranded round's block_on, which then finds its resumption queued and returns.
  const parkpool::Waker owner = block_on([]() -> Task<parkpool::Waker> {
    co_return parkpool::detail::BlockOnContext::current()->owner_waker();
  }());
  std::atomic<std::size_t> done{0};  // rounds ended; WakeWithin's count
  {
    const WakeWithin wake("the round's block_on, which the setter's AsyncEvent::set must wake",
                          done, [&owner] { owner.wake_by_ref(); });
    for (std::size_t i = 0; i < rounds; ++i) {
      auto t = [&](std::size_t k) -> Task<std::size_t> {
        published.store(k, std::memory_order_release);
        co_await events[k];
        co_return k;
      };
      ASSERT_EQ(block_on(t(i)), i);
      // Relaxed: a count the watcher only compares (WakeWithin).
      done.fetch_add(1, std::memory_order_relaxed);
      if (budget.exhausted() || wake.lost()) break;
    }
  }
  // Let the setter finish the remaining events (it needs published to advance).
  published.store(rounds, std::memory_order_release);
  setter.join();
  EXPECT_GT(done.load(std::memory_order_relaxed), 0u);
}

// task.hpp: "awaiting a Task twice (or after block_on) throws std::logic_error"; block_on of a
// Task that already ran is the same error, not a second run of a finished coroutine.
TEST(BlockOn, ATaskThatBlockOnAlreadyRanIsAClearError) {
  Task<int> t = answer();
  EXPECT_EQ(block_on(std::move(t)), 42);
  // NOLINTNEXTLINE(bugprone-use-after-move): block_on leaves the finished Task; reuse is the error
  EXPECT_TRUE(t.valid());
  EXPECT_TRUE(t.done());
  EXPECT_THROW(block_on(std::move(t)), std::logic_error);  // NOLINT(bugprone-use-after-move)
  auto awaits_finished = [&t]() -> Task<int> {
    co_return co_await std::move(t);  // NOLINT(bugprone-use-after-move): the error under test
  };
  EXPECT_THROW(block_on(awaits_finished()), std::logic_error);
}

// The same for a Task that was awaited (started) by another coroutine: block_on refuses it.
TEST(BlockOn, ATaskAlreadyAwaitedIsAClearErrorForBlockOn) {
  Task<int> t = answer();
  auto awaits = [&t]() -> Task<int> { co_return co_await std::move(t); };
  EXPECT_EQ(block_on(awaits()), 42);
  EXPECT_THROW(block_on(std::move(t)), std::logic_error);  // NOLINT(bugprone-use-after-move)
}

BasicDetached</*Rethrow=*/true> throw_after(AsyncEvent& e) {
  co_await e;
  throw std::runtime_error("escaped the inline resumption");
}

// async_event.hpp: "set() is noexcept: an exception that leaves that inline resumption (a
// coroutine type whose unhandled_exception() rethrows; parkpool::Task stores it instead) calls
// std::terminate" (Resumption::resume's contract).
TEST(AsyncEventDeathTest, ExceptionLeavingTheInlineResumptionTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        AsyncEvent e;
        throw_after(e);  // suspended on e: outside block_on, set() resumes it inline
        e.set();
      },
      "escaped the inline resumption");
}

Detached wait_for_event(AsyncEvent& e) { co_await e; }

// thread_parker.hpp, "Coroutines under block_on": a detached coroutine started under block_on
// must finish before the root does; "a resumption still queued when the root finishes makes
// block_on abort with a message" (rather than return with a coroutine stranded in its queue).
TEST(BlockOnDeathTest, ResumptionStillQueuedWhenTheRootFinishesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto root = []() -> Task<int> {
    AsyncEvent e;
    wait_for_event(e);                      // suspends on e, armed with this block_on
    std::thread([&e] { e.set(); }).join();  // queues its resumption on this block_on
    co_return 1;                            // the root finishes first: nothing drains it
  };
  EXPECT_DEATH((void)block_on(root()), "block_on finished with resumptions still queued");
}

// A thread_local whose destructor runs a block_on that has to wait. Constructed before the
// thread's block_on parker (made by the first waiting block_on), so destroyed after it.
struct BlocksOnInItsDestructor {
  bool armed = false;
  ~BlocksOnInItsDestructor() {
    if (!armed) return;
    std::thread resumer;
    auto root = [&]() -> Task<int> {
      co_await ResumedFromAnotherThread{resumer};  // arms a Resumption: needs the parker
      co_return 1;
    };
    (void)block_on(root());
    resumer.join();
  }
};

// thread_parker.hpp, "Lifetime": using block_on from a thread_local destructor that runs after
// the block_on parker it needs was destroyed terminates with a message (the this_thread half is
// in thread_parker_test.cpp).
TEST(BlockOnDeathTest, WaitingFromAThreadLocalDestructorAfterItsParkerIsGoneTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::thread([] {
          static thread_local BlocksOnInItsDestructor late;
          late.armed = true;  // constructed now: before the block_on parker below
          std::thread resumer;
          auto root = [&]() -> Task<int> {
            co_await ResumedFromAnotherThread{resumer};  // makes the thread's block_on parker
            co_return 1;
          };
          (void)block_on(root());
          resumer.join();
        }).join();
      },
      "after the thread's cached parker was destroyed");
}

}  // namespace

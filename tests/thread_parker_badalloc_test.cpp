// Tests of <parkpool/thread_parker.hpp> and <parkpool/async_event.hpp> when a thread's cached
// parker cannot be allocated. The header's promises ("Errors", Resumption::arm, BlockOnContext::
// run):
//   (a) the first use of this_thread::* (or CachedParkThread) allocates the thread's parker and
//       may throw std::bad_alloc;
//   (b) an awaitable arming a Resumption under block_on (AsyncEvent's co_await) allocates the
//       thread's block_on parker the first time and may throw std::bad_alloc;
//   (c) a block_on that must park and cannot allocate its parker terminates (run() is noexcept).
// Its own executable: it replaces the global operator new (support/failing_new.hpp), to make the
// next allocation of one thread fail on demand. Every test runs on a fresh thread, whose cached
// parkers do not exist yet.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>
#include <thread>

#include "failing_new.hpp"
#include "parkpool/async_event.hpp"
#include "parkpool/task.hpp"
#include "parkpool/thread_parker.hpp"

namespace {
// When true, the next allocation of this thread throws std::bad_alloc (and clears the flag: one
// refusal only, so that a wrong outcome cannot also starve the code that reports it).
thread_local bool t_refuse_next = false;
// Refusals made so far, by any thread: shows that the bad_alloc a test sees is the injected one.
std::atomic<int> g_refusals{0};

void refuse_next_allocation() { t_refuse_next = true; }

// Runs f on a new thread (whose cached parkers do not exist yet) and joins it.
template <class F>
void on_fresh_thread(F f) {
  std::thread(f).join();
}
}  // namespace

bool parkpool::test::refuse_allocation(std::size_t) noexcept {
  if (!t_refuse_next) return false;
  t_refuse_next = false;
  g_refusals.fetch_add(1, std::memory_order_relaxed);
  return true;
}

namespace {
using namespace std::chrono_literals;
using parkpool::AsyncEvent;
using parkpool::block_on;
using parkpool::CachedParkThread;
using parkpool::Resumption;
using parkpool::Task;
using parkpool::UnparkReason;
namespace this_thread = parkpool::this_thread;

// Expects `f()` to throw the injected std::bad_alloc (one refusal).
template <class F>
void expect_refused(F f) {
  const int before = g_refusals.load(std::memory_order_relaxed);
  bool threw = false;
  refuse_next_allocation();
  try {
    f();
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  t_refuse_next = false;  // before any assertion: a failure report allocates
  EXPECT_TRUE(threw);
  EXPECT_EQ(g_refusals.load(std::memory_order_relaxed), before + 1);
}

// ParkThread() "allocates the Parker state (may throw std::bad_alloc)": the allocation the cached
// parkers below depend on. With memory back, a ParkThread works (its own token is consumed).
TEST(ThreadParkerBadAlloc, ParkThreadConstructorThrows) {
  expect_refused([] { parkpool::ParkThread p; });
  parkpool::ParkThread p;
  p.unpark().unpark();
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked);
}

// (a) "The first use of a thread's cached parker allocates it and may throw std::bad_alloc
// (this_thread::*, ...)". The parker is a block-scope thread_local: an initialization that
// throws leaves it uncreated, so each entry point throws in turn, and once memory is back the
// next use creates it and it works (a token left by its unparker is consumed by park). Nothing
// may be left half made: a "destroyed at thread exit" state would make the later use abort.
TEST(ThreadParkerBadAlloc, FirstUseOfThisThreadThrowsAndTheParkerIsMadeLater) {
  on_fresh_thread([] {
    expect_refused([] { (void)this_thread::current_unparker(); });
    expect_refused([] { (void)this_thread::waker(); });
    expect_refused([] { (void)this_thread::park_timeout(0ns); });
    expect_refused([] { (void)this_thread::park_timeout(1ms); });  // the duration template
    expect_refused([] { CachedParkThread().unpark(); });
    expect_refused([] { this_thread::park(); });  // throws before it could block

    // Memory is back: the parker is created now, once, and works.
    const parkpool::UnparkThread u = this_thread::current_unparker();
    EXPECT_EQ(this_thread::current_unparker(), u);  // the same parker on later uses
    EXPECT_EQ(this_thread::park_timeout(0ns), UnparkReason::timed_out);
    u.unpark();
    this_thread::park();  // consumes the token left above: returns
    this_thread::waker().wake();
    EXPECT_EQ(this_thread::park_timeout(0ns), UnparkReason::unparked);
  });
}

Task<int> await_event(AsyncEvent& event, bool refuse) {
  if (refuse) refuse_next_allocation();  // the first allocation: arming's block_on parker
  co_await event;
  co_return 7;
}

// (b) "The first use of a thread's cached parker allocates it and may throw std::bad_alloc (...,
// or an awaitable arming a Resumption)", and Resumption::arm "May throw std::bad_alloc the first
// time a thread's parker is made". Awaiting an unset AsyncEvent under block_on arms a Resumption,
// which needs the thread's block_on parker: the bad_alloc leaves await_suspend, so the coroutine
// receives it (the Task stores it) and block_on rethrows it. The event must stay unregistered
// (no stale awaiter): a later co_await on it must neither see "a second coroutine awaits it"
// (std::logic_error) nor be resumed through the dead awaiter, and with memory back it completes.
TEST(ThreadParkerBadAlloc, AwaitingAnAsyncEventUnderBlockOnThrowsAndTheEventStaysUsable) {
  on_fresh_thread([] {
    AsyncEvent event;
    const int before = g_refusals.load(std::memory_order_relaxed);
    EXPECT_THROW(block_on(await_event(event, /*refuse=*/true)), std::bad_alloc);
    EXPECT_EQ(g_refusals.load(std::memory_order_relaxed), before + 1);
    EXPECT_FALSE(event.is_set());

    // Memory is back. Another thread sets the event, before or after the coroutine suspends on
    // it (either order is correct; both must complete).
    auto waiter = [&]() -> Task<int> {
      const std::jthread setter([&] { event.set(); });  // joined also if the co_await throws
      co_return co_await await_event(event, /*refuse=*/false);
    };
    int result = 0;
    EXPECT_NO_THROW(result = block_on(waiter()));  // std::logic_error: a stale awaiter is left
    EXPECT_EQ(result, 7);
    EXPECT_TRUE(event.is_set());
  });
}

// An awaitable that arms a Resumption and, if arming succeeded, hands it to another thread that
// resumes it: the coroutine always suspends and is always resumed through the block_on queue.
struct ResumedElsewhere {
  Resumption& resumption;
  std::thread& resumer;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    resumption.arm(h);  // may throw: then nothing was handed over
    resumer = std::thread([r = &resumption] { r->resume(); });
  }
  void await_resume() const noexcept {}
};

// (b), on a bare Resumption: arm() throws std::bad_alloc when it must make the block_on parker
// and cannot, and the same Resumption can be armed again once memory is back; the coroutine then
// suspends, is queued by another thread and block_on runs it to completion.
TEST(ThreadParkerBadAlloc, ArmingAResumptionThrowsAndTheResumptionCanBeArmedAgain) {
  on_fresh_thread([] {
    Resumption resumption;
    std::thread resumer;
    auto task = [&](bool refuse) -> Task<int> {
      if (refuse) refuse_next_allocation();
      co_await ResumedElsewhere{resumption, resumer};
      co_return 3;
    };
    const int before = g_refusals.load(std::memory_order_relaxed);
    EXPECT_THROW(block_on(task(true)), std::bad_alloc);
    EXPECT_EQ(g_refusals.load(std::memory_order_relaxed), before + 1);
    EXPECT_FALSE(resumer.joinable());  // nothing was handed over

    EXPECT_EQ(block_on(task(false)), 3);
    ASSERT_TRUE(resumer.joinable());
    resumer.join();
  });
}

// An awaitable that suspends without a Resumption and is never resumed: block_on's run() gets
// nothing queued, so it must park, and its parker is made then (not earlier, by an arm()).
struct NeverResumed {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept { refuse_next_allocation(); }
  void await_resume() const noexcept {}
};

[[noreturn]] void report_terminate() noexcept {
  std::fputs("parkpool-test: std::terminate called\n", stderr);
  std::abort();
}

// (c) "a block_on that must park and cannot allocate it terminates (see run())": run() is
// noexcept because a suspended coroutine can neither be waited for nor unwound past. The
// terminate handler marks that std::terminate (not an abort elsewhere, nor a hang) ended the
// process. The catch around block_on turns a bad_alloc that escaped instead into a normal exit,
// which EXPECT_DEATH reports.
TEST(ThreadParkerBadAllocDeathTest, BlockOnThatMustParkWithoutAParkerTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::set_terminate(&report_terminate);
        on_fresh_thread([] {
          auto task = []() -> Task<void> { co_await NeverResumed{}; };
          try {
            block_on(task());
          } catch (const std::bad_alloc&) {
          }
        });
      },
      "parkpool-test: std::terminate called");
}

}  // namespace

// Tests of <parkpool/thread_parker.hpp>: ParkThread, UnparkThread, Waker, this_thread.
// block_on, Task and AsyncEvent are in block_on_test.cpp.
#include "parkpool/thread_parker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstring>
#include <future>
#include <latch>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "join_on_exit.hpp"
#include "parker_access.hpp"
#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::ParkThread;
using parkpool::UnparkReason;
using parkpool::UnparkThread;
using parkpool::Waker;
using parkpool::test::Finished;
using parkpool::test::JoinOnExit;
using parkpool::test::WakeWithin;

TEST(ParkThread, UnparkBeforeParkReturnsImmediately) {
  ParkThread p;
  p.unpark().unpark();
  p.park();  // consumes the token; would hang otherwise (ctest TIMEOUT)
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
}

TEST(ParkThread, ParkTimeoutWithoutUnparkTimesOut) {
  ParkThread p;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(p.park_timeout(5ms), UnparkReason::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 5ms);
}

TEST(ParkThread, UnparkFromAnotherThreadWakesParkedThread) {
  ParkThread p;
  int data = 0;
  std::thread t([u = p.unpark(), &data] {
    data = 42;  // published by unpark (release) to the park that consumes it (acquire)
    u.unpark();
  });
  {
    // Bounded: an unpark that does not wake this thread fails, naming it, instead of hanging.
    WakeWithin wake("this thread's park, which the other thread's unpark() must end",
                    [u = p.unpark()] { u.unpark(); });
    p.park();
  }
  EXPECT_EQ(data, 42);
  t.join();
}

// park_timeout from a table: timeout (past / zero / short / huge) x token (before / from another
// thread during the park / never) x shutdown (before / never). A shutdown row parks twice: the
// shutdown also leaves a token, so the first park would report `unparked` even if it ignored the
// flag; the second finds no token, and only the flag check makes it return `unparked` at once
// (without it, the past and zero rows time out at once, the 2 ms row after 2 ms, and the forever
// row sleeps until its WakeWithin fails it and unparks it).
TEST(ParkThread, ParkTimeoutTable) {
  enum class Token { before, during, never };
  struct Row {
    std::chrono::nanoseconds timeout;
    Token token;
    bool shutdown;
    UnparkReason expected;
  };
  const Row rows[] = {
      {-1ms, Token::before, false, UnparkReason::unparked},
      {-1ms, Token::never, false, UnparkReason::timed_out},
      {0ns, Token::before, false, UnparkReason::unparked},
      {0ns, Token::never, false, UnparkReason::timed_out},
      {2ms, Token::before, false, UnparkReason::unparked},
      {2ms, Token::never, false, UnparkReason::timed_out},
      {std::chrono::nanoseconds::max(), Token::before, false, UnparkReason::unparked},
      {std::chrono::nanoseconds::max(), Token::during, false, UnparkReason::unparked},
      {std::chrono::hours(1), Token::during, false, UnparkReason::unparked},
      {-1ms, Token::never, true, UnparkReason::unparked},
      {0ns, Token::never, true, UnparkReason::unparked},
      {2ms, Token::never, true, UnparkReason::unparked},
      {std::chrono::nanoseconds::max(), Token::never, true, UnparkReason::unparked},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(::testing::Message()
                 << "timeout=" << row.timeout.count() << "ns token=" << static_cast<int>(row.token)
                 << " shutdown=" << row.shutdown);
    ParkThread p;
    if (row.shutdown) p.shutdown();
    if (row.token == Token::before) p.unpark().unpark();
    std::thread unparker;
    std::latch started(1);
    if (row.token == Token::during) {
      // "During" means concurrently with the park call; the token is delivered whether the park
      // has started sleeping or not, and the result is the same either way.
      unparker = std::thread([&, u = p.unpark()] {
        started.wait();
        u.unpark();
      });
    }
    started.count_down();
    {
      // Bounds the park that an unpark "during" must end, or that the shutdown flag must.
      std::optional<WakeWithin> wake;
      if (row.token == Token::during) {
        wake.emplace("this thread's park, which the other thread's unpark() must end",
                     [u = p.unpark()] { u.unpark(); });
      } else if (row.shutdown) {
        wake.emplace("the second park after shutdown(), which the flag must return at once",
                     [u = p.unpark()] { u.unpark(); });
      }
      EXPECT_EQ(p.park_timeout(row.timeout), row.expected);
      if (row.shutdown) {
        EXPECT_EQ(p.park_timeout(row.timeout), UnparkReason::unparked)
            << "the second park after shutdown(), with the shutdown's token taken by the first";
      }
    }
    if (unparker.joinable()) unparker.join();
  }
}

// Runs `park` on a new thread and unparks that thread's parker (`parker_of()`, evaluated on it)
// once it is seen PARKED, never before. A park that should wait but times out at once returns
// timed_out without ever being seen parked; one that should return at once but sleeps is unparked
// and returns unparked: either mistake shows in the result, without a sleep and without a hang.
template <class ParkerOf, class Park>
UnparkReason park_then_unpark_once_parked(ParkerOf parker_of, Park park) {
  std::atomic<const parkpool::Parker*> parker{nullptr};
  std::atomic<bool> returned{false};
  std::latch checked(1);  // keeps the owner (and its cached parker) alive until main is done
  UnparkReason r = UnparkReason::timed_out;
  Finished parked;  // counts the owner's return from park(), before it waits for `checked`
  std::thread owner([&] {
    parker.store(&parker_of(), std::memory_order_release);
    parked([&] { r = park(); })();
    returned.store(true, std::memory_order_release);
    checked.wait();
  });
  bool checked_released = false;  // used on this thread only (JoinOnExit releases here too)
  // The owner's parker lives until `checked` lets the owner go: unparked only before that.
  JoinOnExit join(
      [&] {
        if (!returned.load(std::memory_order_acquire)) {
          if (const parkpool::Parker* q = parker.load(std::memory_order_acquire)) {
            q->unparker().unpark();
          }
        } else if (!checked_released) {
          checked_released = true;
          checked.count_down();
        }
      },
      owner);
  const auto end = std::chrono::steady_clock::now() + 30s;
  const parkpool::Parker* p = nullptr;
  while (!returned.load(std::memory_order_acquire)) {
    if (p == nullptr) p = parker.load(std::memory_order_acquire);
    if (p != nullptr &&
        parkpool::detail::ParkerTestAccess::state(*p) == parkpool::detail::kParked) {
      p->unparker().unpark();
      break;
    }
    if (std::chrono::steady_clock::now() >= end) {
      ADD_FAILURE() << "the owner neither parked nor returned";
      break;
    }
    std::this_thread::yield();
  }
  // Bounded: a park that should wait forever and an unpark that does not wake it would hang the
  // join. On failure the JoinOnExit unparks the owner until its park returned, then lets it go.
  if (testing::AssertionResult done =
          parked.within(1, "the owner, which the unpark() once it was parked must wake");
      !done) {
    ADD_FAILURE() << done.message();
    return UnparkReason::timed_out;
  }
  checked_released = true;
  checked.count_down();
  owner.join();
  return r;
}

TEST(ParkThread, CoarseTimeoutsSaturateInsteadOfOverflowing) {
  // park_timeout(hours::max()) used to convert to nanoseconds at the call site: a signed overflow
  // that in practice made hours::max() -1 h (timed out at once) and -hours::max() +1 h (slept an
  // hour). Huge timeouts of any period must mean forever, hugely negative ones "now", in each of
  // the three APIs.
  using std::chrono::hours;
  using std::chrono::seconds;
  const auto cached = []() -> const parkpool::Parker& {
    return parkpool::detail::current_park_thread().parker();
  };
  const auto check = [&](auto timeout, UnparkReason expected) {
    SCOPED_TRACE(::testing::Message()
                 << "timeout=" << timeout.count() << " ticks of " << decltype(timeout)::period::num
                 << "/" << decltype(timeout)::period::den << " s");
    {
      ParkThread pt;
      EXPECT_EQ(
          park_then_unpark_once_parked([&]() -> const parkpool::Parker& { return pt.parker(); },
                                       [&] { return pt.park_timeout(timeout); }),
          expected)
          << "ParkThread";
      EXPECT_EQ(pt.park_timeout(0ns), UnparkReason::timed_out) << "a token was left behind";
    }
    EXPECT_EQ(park_then_unpark_once_parked(
                  cached, [&] { return parkpool::this_thread::park_timeout(timeout); }),
              expected)
        << "this_thread";
    EXPECT_EQ(park_then_unpark_once_parked(
                  cached, [&] { return parkpool::CachedParkThread{}.park_timeout(timeout); }),
              expected)
        << "CachedParkThread";
  };
  check(hours::max(), UnparkReason::unparked);
  check(seconds::max(), UnparkReason::unparked);
  check(hours::min(), UnparkReason::timed_out);
  check(-hours::max(), UnparkReason::timed_out);
  check(-seconds::max(), UnparkReason::timed_out);
}

TEST(ParkThread, ShutdownMakesEveryLaterParkReturnAtOnce) {
  ParkThread p;
  p.shutdown();
  EXPECT_TRUE(p.is_shutdown());
  for (int i = 0; i < 3; ++i) p.park();  // none blocks
  EXPECT_EQ(p.park_timeout(1h), UnparkReason::unparked);
  EXPECT_EQ(p.park_deadline(std::chrono::steady_clock::time_point::max()), UnparkReason::unparked);
}

// "Every later park*/park_timeout returns at once (park_timeout reports `unparked`)": every one,
// not only the first. shutdown() also leaves a token, so a timed park that ignored the flag would
// still report `unparked` once (taking that token) and then time out; zero timeouts make that
// second call return timed_out instead of sleeping. Each API on a ParkThread of its own, so that
// no other call takes the token first.
TEST(ParkThread, EveryTimedParkAfterShutdownReportsUnparked) {
  {
    ParkThread p;
    p.shutdown();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked) << i;
  }
  {
    ParkThread p;
    p.shutdown();
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(p.park_deadline(std::chrono::steady_clock::now()), UnparkReason::unparked) << i;
    }
  }
}

// An executor with N workers, each parked on its own ParkThread; shutting all down wakes all.
// shutdown() runs only once every worker is seen PARKED (its Parker's state word: asleep in the
// kernel, or about to sleep with the word already PARKED, so that only a token can end its park):
// the flag, which park() checks before it sleeps, cannot end these parks, the shutdown's unpark
// must. (Until 2026-12-08 the workers only counted down a latch before parking, and the shutdowns
// could land before any park, where the flag alone returns it.)
TEST(ParkThread, ShutdownWakesAllParkedThreads) {
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<ParkThread>> parkers;
  for (int i = 0; i < kThreads; ++i) parkers.push_back(std::make_unique<ParkThread>());
  std::atomic<int> woke{0};
  Finished finished;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(finished([&, i] {
      // The first park sleeps until shutdown(); the two after it show that none blocks after it.
      for (int k = 0; k < 3; ++k) parkers[static_cast<std::size_t>(i)]->park();
      woke.fetch_add(1, std::memory_order_relaxed);
    }));
  }
  JoinOnExit join(
      [&] {
        for (auto& p : parkers) p->unpark().unpark();
      },
      threads);
  for (int i = 0; i < kThreads; ++i) {
    // A bounded poll of the state word, no sleep: shutdown() waits until the park is under way.
    ASSERT_TRUE(
        parkpool::test::wait_until_parked(parkers[static_cast<std::size_t>(i)]->parker(), 20s))
        << "worker " << i << " was not seen parked within 20 s";
  }
  EXPECT_EQ(woke.load(), 0);  // nobody returns before shutdown (no spurious wakeups)
  for (auto& p : parkers) p->shutdown();
  // Bounded: a shutdown that does not wake its parked thread fails here after 20 s, naming it.
  ASSERT_TRUE(
      finished.within(kThreads, "the threads parked until shutdown(), which must wake them"));
  for (auto& t : threads) t.join();
  EXPECT_EQ(woke.load(), kThreads);
}

// Shutdown racing with park, in every interleaving the scheduler offers: park never hangs.
TEST(ParkThread, ShutdownRacingWithParkNeverHangs) {
  const std::size_t iters = parkpool::test::scaled(2000);
  parkpool::test::TimeBudget budget(20s);
  for (std::size_t i = 0; i < iters && !budget.exhausted(); ++i) {
    ParkThread p;
    std::barrier sync(2);
    std::thread t([&] {
      sync.arrive_and_wait();
      p.shutdown();
    });
    sync.arrive_and_wait();
    {
      WakeWithin wake("this thread's parks, which the other thread's shutdown() must end",
                      [&p] { p.shutdown(); });
      p.park();
      p.park();
    }
    t.join();
  }
}

TEST(ParkThread, MovedParkThreadKeepsItsUnparkers) {
  ParkThread a;
  UnparkThread u = a.unpark();
  ParkThread b(std::move(a));
  u.unpark();
  b.park();
  EXPECT_EQ(u, b.unpark());
}

// A shut-down ParkThread hands its shutdown on with the move: the moved-from one is empty and
// not shut down, so its park terminates as any moved-from ParkThread's does (found by review: it
// kept its flag and returned at once, with no Parker behind it).
TEST(ParkThreadDeathTest, ParkOnAMovedFromShutDownParkThreadTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ParkThread a;
  a.shutdown();
  ParkThread b(std::move(a));
  EXPECT_TRUE(b.is_shutdown());
  b.park();                       // returns at once: b is shut down
  EXPECT_FALSE(a.is_shutdown());  // NOLINT(bugprone-use-after-move): the state under test
  EXPECT_DEATH(a.park(), "moved-from Parker");
  ParkThread c;
  c.shutdown();
  ParkThread d;
  d = std::move(c);
  EXPECT_TRUE(d.is_shutdown());
  EXPECT_DEATH((void)c.park_timeout(1h), "moved-from Parker");  // NOLINT(bugprone-use-after-move)
}

// An executor's worker owns its ParkThread and leaves once a park returns because of the shutdown,
// destroying it; the park may see the flag as soon as shutdown() has stored it, while shutdown()
// still runs on the executor's thread. shutdown() must therefore not touch the ParkThread after
// its flag store (as AsyncEvent::set after its exchange). Forced with
// shutdown_flag_stored_hook_for_test: between the store and the unpark the hook destroys the
// ParkThread, as that worker would, and fills its storage with the state address of a decoy
// Parker: a shutdown that still reads its ParkThread then unparks the decoy (found by review:
// shutdown() read parker_ after the store, and unparked the decoy).
alignas(ParkThread) unsigned char g_owner_exits_storage[sizeof(ParkThread)];
void* g_owner_exits_decoy = nullptr;  // Unparker::into_raw of the decoy (one reference)
int g_owner_exits_calls = 0;
void destroy_park_thread_as_its_owner_would(const void* p) {
  if (p != static_cast<const void*>(g_owner_exits_storage)) return;  // not the test's
  ++g_owner_exits_calls;
  std::launder(reinterpret_cast<ParkThread*>(g_owner_exits_storage))->~ParkThread();
  for (std::size_t off = 0; off + sizeof(void*) <= sizeof g_owner_exits_storage;
       off += sizeof(void*)) {
    std::memcpy(g_owner_exits_storage + off, &g_owner_exits_decoy, sizeof(void*));
  }
}

TEST(ParkThread, ShutdownDoesNotTouchTheParkThreadAfterItsFlagStore) {
  g_owner_exits_calls = 0;  // a global: a repeated run (--gtest_repeat) counts from 0 again
  parkpool::Parker decoy;
  g_owner_exits_decoy = parkpool::Unparker::into_raw(parkpool::Unparker(decoy.unparker()));
  auto* pt = new (g_owner_exits_storage) ParkThread;
  const UnparkThread observer = pt->unpark();  // keeps the state alive to look at it afterwards
  {
    const parkpool::detail::TestHook<const void*>::Scoped hook(
        ParkThread::shutdown_flag_stored_hook_for_test, &destroy_park_thread_as_its_owner_would);
    pt->shutdown();
  }
  EXPECT_EQ(g_owner_exits_calls, 1);
  EXPECT_EQ(decoy.park_timeout(0ns), UnparkReason::timed_out)
      << "shutdown() read its ParkThread after the flag store (the decoy's address was there)";
  std::ostringstream state;
  state << observer.unparker();
  EXPECT_NE(state.str().find("NOTIFIED"), std::string::npos)
      << "the shutdown's token did not reach its parker: " << state.str();
  (void)parkpool::Unparker::from_raw(g_owner_exits_decoy);  // the reference taken above
  g_owner_exits_decoy = nullptr;
}

TEST(Waker, FromUnparkerWakes) {
  parkpool::Parker parker;
  Waker w(parker.unparker());
  w.wake_by_ref();
  EXPECT_EQ(parker.park_timeout(0ns), UnparkReason::unparked);
  w.wake();
  EXPECT_FALSE(w);  // wake() consumes
  EXPECT_EQ(parker.park_timeout(0ns), UnparkReason::unparked);
}

TEST(Waker, EmptyWakerIsANoOp) {
  Waker w;
  EXPECT_FALSE(w);
  w.wake_by_ref();
  w.wake();
  Waker copy(w);
  EXPECT_FALSE(copy);
}

TEST(Waker, CopiesWakeTheSameTargetAndShareOneCount) {
  ParkThread p;
  Waker a = p.unpark().into_waker();
  Waker b = a;
  EXPECT_TRUE(a.will_wake(b));
  Waker c = std::move(b);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  c.wake();
  p.park();
  EXPECT_TRUE(a.will_wake(p.unpark().into_waker()));
}

// A Waker made from an Unparker holds exactly one reference to the parker state ("Size and
// cost": a copy is one increment, a drop one decrement; WakerVTable: clone returns one more
// reference, wake consumes it, wake_by_ref does not, drop releases it). The parker's handle count
// shows each step: a clone that shared its reference, a wake_by_ref that consumed one, or a wake
// or drop that kept one changes a count here, where otherwise it is a use-after-free or a leak
// that no assertion sees.
TEST(Waker, UnparkerWakerHoldsOneReferencePerHandle) {
  const auto handles = [](const ParkThread& p) {
    return parkpool::detail::ParkerTestAccess::handles(p.parker());
  };
  ParkThread p;
  EXPECT_EQ(handles(p), 1u);  // the ParkThread's own
  UnparkThread u = p.unpark();
  EXPECT_EQ(handles(p), 2u);
  {
    const Waker copied = u.into_waker();  // from an lvalue: a new reference
    EXPECT_EQ(handles(p), 3u);
  }
  EXPECT_EQ(handles(p), 2u);            // dropped
  Waker w = std::move(u).into_waker();  // from an rvalue: u's reference moves into the Waker
  EXPECT_EQ(handles(p), 2u);
  {
    Waker c = w;  // clone: one more
    EXPECT_EQ(handles(p), 3u);
    EXPECT_TRUE(c.will_wake(w));
    c.wake_by_ref();  // keeps the reference
    EXPECT_TRUE(c);
    EXPECT_EQ(handles(p), 3u);
    c.wake();  // consumes it
    EXPECT_FALSE(c);
    EXPECT_EQ(handles(p), 2u);
    const Waker d = w;
    EXPECT_EQ(handles(p), 3u);
  }
  EXPECT_EQ(handles(p), 2u);  // d dropped, c (empty) released nothing
  // The wakes reached the parker: one token (a Parker holds at most one).
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked);
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
}

// A custom vtable: Waker is type-erased.
// Relaxed throughout: both tests that use it are single-threaded (a Waker's calls run on the
// test's thread); the counts need no ordering.
struct CountingTarget {
  std::atomic<int> refs{1};
  std::atomic<int> wakes{0};
};
const parkpool::WakerVTable kCountingVTable{
    [](void* d) noexcept -> void* {
      static_cast<CountingTarget*>(d)->refs.fetch_add(1, std::memory_order_relaxed);
      return d;
    },
    [](void* d) noexcept {
      auto* t = static_cast<CountingTarget*>(d);
      t->wakes.fetch_add(1, std::memory_order_relaxed);
      t->refs.fetch_sub(1, std::memory_order_relaxed);
    },
    [](void* d) noexcept {
      static_cast<CountingTarget*>(d)->wakes.fetch_add(1, std::memory_order_relaxed);
    },
    [](void* d) noexcept {
      static_cast<CountingTarget*>(d)->refs.fetch_sub(1, std::memory_order_relaxed);
    }};

TEST(Waker, CustomVTableCountsReferences) {
  CountingTarget target;
  {
    Waker w = Waker::from_raw(&kCountingVTable, &target);
    Waker c1 = w;
    Waker c2 = w;
    EXPECT_EQ(target.refs.load(std::memory_order_relaxed), 3);
    c1.wake();
    c2.wake_by_ref();
    EXPECT_EQ(target.wakes.load(std::memory_order_relaxed), 2);
    EXPECT_EQ(target.refs.load(std::memory_order_relaxed), 2);
  }
  EXPECT_EQ(target.refs.load(std::memory_order_relaxed), 0);
}

// A null vtable gives an empty Waker and leaves data alone: its reference stays the caller's
// (it used to be kept in the empty Waker, which could never release it).
TEST(Waker, FromRawWithANullVTableIsEmptyAndLeavesDataToTheCaller) {
  CountingTarget target;
  {
    Waker w = Waker::from_raw(nullptr, &target);
    EXPECT_FALSE(w);
    EXPECT_TRUE(w.will_wake(Waker()));  // the very state of Waker(): no data kept
    w.wake_by_ref();
    Waker copy(w);
    EXPECT_FALSE(copy);
    w.wake();
  }
  EXPECT_EQ(target.refs.load(std::memory_order_relaxed), 1);  // not dropped, not cloned
  EXPECT_EQ(target.wakes.load(std::memory_order_relaxed), 0);
  // The caller still owns the reference: it can adopt it with a real table and release it.
  { const Waker owner = Waker::from_raw(&kCountingVTable, &target); }
  EXPECT_EQ(target.refs.load(std::memory_order_relaxed), 0);
}

// Assigning to a Waker that holds a reference releases it and takes one of the source's: a copy
// clones (the source keeps its own), a move takes the source's (the source is empty afterwards).
TEST(Waker, AssignmentReleasesTheOldTargetAndReferencesTheNewOne) {
  CountingTarget t1, t2, t3;
  {
    Waker a = Waker::from_raw(&kCountingVTable, &t1);
    const Waker b = Waker::from_raw(&kCountingVTable, &t2);
    Waker c = Waker::from_raw(&kCountingVTable, &t3);
    a = b;                                                  // copy
    EXPECT_EQ(t1.refs.load(std::memory_order_relaxed), 0);  // a's old reference released
    EXPECT_EQ(t2.refs.load(std::memory_order_relaxed), 2);  // cloned
    EXPECT_TRUE(a.will_wake(b));
    const Waker& same = a;
    a = same;  // self-assignment: no change
    EXPECT_EQ(t2.refs.load(std::memory_order_relaxed), 2);
    a = std::move(c);                                       // move
    EXPECT_EQ(t2.refs.load(std::memory_order_relaxed), 1);  // a's old reference released
    EXPECT_EQ(t3.refs.load(std::memory_order_relaxed), 1);  // moved, not cloned
    EXPECT_FALSE(c);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  }
  EXPECT_EQ(t1.refs.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(t2.refs.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(t3.refs.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(t1.wakes.load(std::memory_order_relaxed) + t2.wakes.load(std::memory_order_relaxed) +
                t3.wakes.load(std::memory_order_relaxed),
            0);  // assignment never wakes
}

// will_wake: "True if both wake the same target with the same operations". The same data behind
// another table is another waker (the table decides what wake does); another target under the
// same table is another waker too.
const parkpool::WakerVTable kInertVTable{[](void* d) noexcept -> void* { return d; },
                                         [](void*) noexcept {}, [](void*) noexcept {},
                                         [](void*) noexcept {}};

TEST(Waker, WillWakeNeedsTheSameTableAndTheSameData) {
  CountingTarget t1, t2;
  const Waker counting = Waker::from_raw(&kCountingVTable, &t1);
  const Waker inert_same_data = Waker::from_raw(&kInertVTable, &t1);  // adopts nothing
  const Waker other_target = Waker::from_raw(&kCountingVTable, &t2);
  EXPECT_TRUE(counting.will_wake(counting));
  EXPECT_FALSE(counting.will_wake(inert_same_data));
  EXPECT_FALSE(inert_same_data.will_wake(counting));
  EXPECT_FALSE(counting.will_wake(other_target));
  EXPECT_FALSE(counting.will_wake(Waker()));
}

// The record a waker's wake destroys may hold that very Waker (a coroutine frame resumed
// inline): wake() must not write to the Waker after the call. The record lives in a buffer
// of the test's; its wake destroys it and fills the buffer with a pattern, which a late write
// (Waker::wake cleared data_ after the call until 2026-12-06) changes, in any build.
struct SelfFreeingRecord {
  Waker waker;
};
alignas(SelfFreeingRecord) unsigned char g_record_storage[sizeof(SelfFreeingRecord)];
int g_self_freeing_wakes = 0;
const parkpool::WakerVTable kSelfFreeingVTable{
    [](void* d) noexcept -> void* { return d; },
    [](void*) noexcept {
      ++g_self_freeing_wakes;
      std::launder(reinterpret_cast<SelfFreeingRecord*>(g_record_storage))->~SelfFreeingRecord();
      std::memset(g_record_storage, 0xA5, sizeof g_record_storage);  // the memory reused
    },
    [](void*) noexcept {}, [](void*) noexcept {}};

TEST(Waker, WakeMayDestroyTheWakerItIsCalledOn) {
  g_self_freeing_wakes = 0;  // a global: a repeated run (--gtest_repeat) counts from 0 again
  auto* rec = new (g_record_storage) SelfFreeingRecord{};
  rec->waker = Waker::from_raw(&kSelfFreeingVTable, rec);
  rec->waker.wake();
  EXPECT_EQ(g_self_freeing_wakes, 1);
  for (unsigned char b : g_record_storage) ASSERT_EQ(b, 0xA5) << "wake() wrote to a dead Waker";
}

// "Lifetime": the parker state lives as long as any Waker referring to it, and waking a thread
// that has exited is a harmless no-op. A second handle (an UnparkThread taken on the thread) shows
// the state through its snapshot ("Unparker{state=..., handles=...}"): after the thread's exit its
// cached ParkThread's reference is gone and the Waker's remains; each clone, wake and drop then
// does to the orphaned state what it does to a live one (a token, one reference more or less),
// and nothing else: the test's own thread is not woken.
TEST(Waker, OutlivesItsThread) {
  (void)parkpool::this_thread::park_timeout(0ns);  // takes a token an earlier test may have left
  Waker w;
  std::optional<UnparkThread> observer;
  std::thread t([&] {
    w = parkpool::this_thread::waker();
    observer.emplace(parkpool::this_thread::current_unparker());
  });
  t.join();  // the thread and its cached ParkThread are gone; the Waker keeps the state alive
  ASSERT_TRUE(w);
  ASSERT_TRUE(observer);
  const auto state = [&observer] {
    std::ostringstream os;
    os << observer->unparker();
    return os.str();
  };
  if (state() != "Unparker{state=EMPTY, handles=2}") {
    ADD_FAILURE() << "after its thread exited, the state should be held by the Waker and the "
                     "observer only: "
                  << state();
    // The Waker holds no reference of its own: its drop would release the observer's, and the
    // observer's destructor would then release a freed state. Leak the observer instead.
    (void)new UnparkThread(std::move(*observer));
    return;
  }
  EXPECT_TRUE(w.will_wake(observer->into_waker()));  // the exited thread's parker
  w.wake_by_ref();                                   // a token nobody will take
  EXPECT_EQ(state(), "Unparker{state=NOTIFIED, handles=2}");
  {
    Waker copy = w;
    EXPECT_TRUE(copy.will_wake(w));
    EXPECT_EQ(state(), "Unparker{state=NOTIFIED, handles=3}");
    copy.wake();  // consumes the copy's reference; the token is still one
    EXPECT_FALSE(copy);
    EXPECT_EQ(state(), "Unparker{state=NOTIFIED, handles=2}");
  }
  w.wake();
  EXPECT_FALSE(w);
  EXPECT_EQ(state(), "Unparker{state=NOTIFIED, handles=1}");  // the observer's alone
  // No wake reached this thread's own cached parker.
  EXPECT_EQ(parkpool::this_thread::park_timeout(0ns), UnparkReason::timed_out);
}

TEST(ThisThread, CurrentUnparkerWakesTheCallingThread) {
  std::latch ready(1);
  std::atomic<bool> flag{false};
  UnparkThread target = parkpool::this_thread::current_unparker();
  std::thread t([&] {
    ready.wait();
    flag.store(true, std::memory_order_relaxed);
    target.unpark();
  });
  ready.count_down();
  {
    WakeWithin wake("this thread's park, which the other thread's unpark() must end",
                    [target] { target.unpark(); });
    while (!flag.load(std::memory_order_relaxed)) parkpool::this_thread::park();
  }
  t.join();
  // If the flag was set before the first park, the unpark's token is still there: take it, so
  // that it does not wake a later test's first park on this (the main) thread early.
  (void)parkpool::this_thread::park_timeout(std::chrono::nanoseconds(0));
}

TEST(ThisThread, EachThreadHasItsOwnCachedParker) {
  UnparkThread mine = parkpool::this_thread::current_unparker();
  EXPECT_EQ(mine, parkpool::this_thread::current_unparker());  // cached: same parker
  bool same = true;
  std::thread t([&] { same = (mine == parkpool::this_thread::current_unparker()); });
  t.join();
  EXPECT_FALSE(same);
  parkpool::CachedParkThread cached;
  EXPECT_EQ(cached.unpark(), mine);
}

// 10^5 wake/park cycles between two threads: a lost wakeup fails after 20 s (WakeWithin) and a
// spurious one fails a counter check. Each side parks exactly once per round, never in a
// loop: every round has exactly one unpark for each side, issued after the counter it publishes,
// and the next one only after the other side's park returned, so a park that returns sees its
// round's counter unless it returned without a token.
TEST(ThisThread, ManyWakeParkCyclesLoseNoWakeup) {
  const std::size_t cycles = parkpool::test::scaled(100'000);
  std::atomic<std::size_t> ping{0};
  std::atomic<std::size_t> pong{0};
  std::atomic<std::size_t> spurious_peer{0};
  UnparkThread main_unparker = parkpool::this_thread::current_unparker();
  std::promise<UnparkThread> peer_promise;
  auto peer_future = peer_promise.get_future();
  std::thread peer([&] {
    peer_promise.set_value(parkpool::this_thread::current_unparker());
    for (std::size_t i = 1; i <= cycles; ++i) {
      parkpool::this_thread::park();
      // Acquire: pairs with the release store of ping (also ordered by the unpark's token).
      if (ping.load(std::memory_order_acquire) != i) {
        // A spurious return: count it, and catch up without parking (a park here would take
        // the token of a later round: the two sides could then both sleep, and the test hang
        // instead of failing).
        spurious_peer.fetch_add(1);
        while (ping.load(std::memory_order_acquire) != i) std::this_thread::yield();
      }
      pong.store(i, std::memory_order_release);
      main_unparker.unpark();
    }
  });
  UnparkThread peer_unparker = peer_future.get();
  std::size_t spurious_main = 0;
  // Bounded: a lost wakeup (of either side: this thread then waits for the peer) fails, naming
  // it, instead of hanging until the ctest TIMEOUT.
  WakeWithin wake("this thread's ping-pong parks, each of which the peer's unpark() must end",
                  [main_unparker] { main_unparker.unpark(); });
  for (std::size_t i = 1; i <= cycles; ++i) {
    ping.store(i, std::memory_order_release);
    peer_unparker.unpark();
    parkpool::this_thread::park();
    if (pong.load(std::memory_order_acquire) != i) {
      ++spurious_main;  // a spurious return: count it, and catch up as the peer does
      while (pong.load(std::memory_order_acquire) != i) std::this_thread::yield();
    }
  }
  peer.join();
  EXPECT_EQ(spurious_main, 0u);
  EXPECT_EQ(spurious_peer.load(), 0u);
}

// A thread_local whose destructor uses this_thread after the thread's cached parker is gone.
// Constructed before the cached parker, so destroyed after it (reverse order of construction).
struct UsesThisThreadInItsDestructor {
  bool armed = false;
  ~UsesThisThreadInItsDestructor() {
    if (armed) (void)parkpool::this_thread::current_unparker();
  }
};

// The header's Lifetime rule: using this_thread from a thread_local destructor that runs after
// the thread's cached parker was destroyed terminates with a message (instead of touching a
// destroyed ParkThread).
TEST(ThisThreadDeathTest, UseFromAThreadLocalDestructorAfterTheParkerIsGoneTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::thread([] {
          static thread_local UsesThisThreadInItsDestructor late;
          late.armed = true;  // constructed now: before the cached parker below
          parkpool::this_thread::current_unparker().unpark();
          parkpool::this_thread::park();  // consumes the token: the cached parker exists
        }).join();
      },
      "after the thread's cached parker was destroyed");
}

// Before the cached parker is gone (a thread_local destroyed first), this_thread still works.
TEST(ThisThread, UseFromAThreadLocalDestructorBeforeTheParkerIsGoneWorks) {
  static std::atomic<bool> woke{false};
  struct ParksInItsDestructor {
    bool armed = false;
    ~ParksInItsDestructor() {
      if (!armed) return;
      parkpool::this_thread::current_unparker().unpark();
      parkpool::this_thread::park();                // the token above: returns at once
      woke.store(true, std::memory_order_relaxed);  // relaxed: read after join()
    }
  };
  // Static (the local class's destructor cannot capture): reset, or a repeated run
  // (--gtest_repeat) passed on the first run's value. Relaxed: the thread start orders it.
  woke.store(false, std::memory_order_relaxed);
  std::thread([] {
    (void)parkpool::this_thread::current_unparker();  // the cached parker first
    static thread_local ParksInItsDestructor early;   // then this: destroyed before the parker
    early.armed = true;
  }).join();
  EXPECT_TRUE(woke.load(std::memory_order_relaxed));  // relaxed: join() orders the store
}

// Unparker::into_raw "returns nullptr for a moved-from Unparker", and a Waker made from one is
// empty (wake, copy and destruction do nothing), not a Waker around a null state.
TEST(Waker, FromAMovedFromUnparkerIsEmpty) {
  parkpool::Parker parker;
  parkpool::Unparker u = parker.unparker();
  parkpool::Unparker taken = std::move(u);
  // NOLINTNEXTLINE(bugprone-use-after-move): the moved-from handle is what is tested
  EXPECT_EQ(parkpool::Unparker::into_raw(std::move(u)), nullptr);
  parkpool::Unparker again = std::move(taken);
  Waker w(std::move(taken));  // NOLINT(bugprone-use-after-move): moved-from on purpose
  EXPECT_FALSE(w);
  Waker copy(w);
  EXPECT_FALSE(copy);
  w.wake_by_ref();
  w.wake();
  EXPECT_EQ(parker.park_timeout(0ns), UnparkReason::timed_out);  // nothing woke the parker
  Waker live(again);
  EXPECT_TRUE(live);
  EXPECT_FALSE(live.will_wake(copy));
}

}  // namespace

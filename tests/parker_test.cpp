// Contract tests of <parkpool/parker.hpp>. The same file runs on the futex backend and, in the
// PARKPOOL_PORTABLE_BACKEND build, on the mutex+condvar backend.
#include <parkpool/parker.hpp>

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "join_on_exit.hpp"
#include "parker_access.hpp"
#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::Parker;
using parkpool::ParkerOptions;
using parkpool::Unparker;
using parkpool::UnparkReason;
using parkpool::detail::ParkerTestAccess;
using parkpool::test::Finished;
using parkpool::test::JoinOnExit;
using parkpool::test::WakeWithin;
using Clock = std::chrono::steady_clock;

TEST(Parker, UnparkBeforeParkReturnsImmediately) {
  Parker p;
  p.unparker().unpark();
  p.park();  // must not block: the token is there
  EXPECT_EQ(ParkerTestAccess::state(p), parkpool::detail::kEmpty);
}

TEST(Parker, AtMostOneTokenTwoUnparksThenSecondParkBlocks) {
  Parker p;
  p.unparker().unpark();
  p.unparker().unpark();
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked);
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
  const auto start = Clock::now();
  EXPECT_EQ(p.park_timeout(20ms), UnparkReason::timed_out);
  EXPECT_GE(Clock::now() - start, 20ms);
}

TEST(Parker, ParkReturnsOnlyAfterUnparkFromAnotherThread) {
  Parker p;
  std::atomic<bool> unparked{false};
  std::thread t([&p, &unparked, u = p.unparker()] {
    // Non-fatal, and the unpark follows either way: a fatal ASSERT here would return without
    // unparking and leave the main thread parked until the ctest TIMEOUT, with no message.
    EXPECT_TRUE(parkpool::test::wait_until_parked(p));
    unparked.store(true, std::memory_order_relaxed);
    u.unpark();
  });
  {
    // Bounded: an unpark that does not wake this thread fails, naming it, instead of hanging.
    WakeWithin wake("this thread's park, which the other thread's unpark() must wake",
                    [u = p.unparker()] { u.unpark(); });
    p.park();
  }
  EXPECT_TRUE(unparked.load(std::memory_order_relaxed));
  t.join();
}

TEST(Parker, UnparkPublishesPriorWrites) {
  // The happens-before edge of the contract: a plain write before unpark is visible after park.
  for (int i = 0; i < 200; ++i) {
    Parker p;
    int payload = 0;
    std::thread t([&payload, u = p.unparker(), i] {
      payload = i + 1;
      u.unpark();
    });
    {
      WakeWithin wake("this thread's park, which the other thread's unpark() must end",
                      [u = p.unparker()] { u.unpark(); });
      p.park();
    }
    EXPECT_EQ(payload, i + 1);
    t.join();
  }
}

TEST(Parker, ZeroAndNegativeTimeoutsNeverBlock) {
  Parker p;
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
  EXPECT_EQ(p.park_timeout(-1s), UnparkReason::timed_out);
  EXPECT_EQ(p.park_timeout(std::chrono::nanoseconds::min()), UnparkReason::timed_out);
  p.unparker().unpark();
  EXPECT_EQ(p.park_timeout(-5ms), UnparkReason::unparked);
  p.unparker().unpark();
  EXPECT_EQ(p.park_deadline(Clock::now() - 1h), UnparkReason::unparked);
  EXPECT_EQ(p.park_deadline(Clock::now() - 1h), UnparkReason::timed_out);
  EXPECT_EQ(p.park_deadline(Clock::time_point::min()), UnparkReason::timed_out);
  EXPECT_EQ(p.park_deadline(std::chrono::system_clock::now() - 1s), UnparkReason::timed_out);
}

// --- Table-driven timeouts: deadline (past / now / short / huge) x unpark (before / during /
// never)
enum class DeadlineKind { past, now, short_, huge };
enum class UnparkWhen { before, during, never };

struct TimeoutCase {
  DeadlineKind deadline;
  UnparkWhen unpark;
  UnparkReason expected;
};

const char* name(DeadlineKind d) {
  switch (d) {
    case DeadlineKind::past:
      return "past";
    case DeadlineKind::now:
      return "now";
    case DeadlineKind::short_:
      return "short";
    case DeadlineKind::huge:
      return "huge";
  }
  return "?";
}
const char* name(UnparkWhen u) {
  switch (u) {
    case UnparkWhen::before:
      return "before";
    case UnparkWhen::during:
      return "during";
    case UnparkWhen::never:
      return "never";
  }
  return "?";
}

// The parking call under test, in each of the five API forms.
enum class Form {
  timeout,
  coarse_timeout,
  steady_deadline,
  system_deadline,
  coarse_clock_deadline
};

// `finite`: the deadline of DeadlineKind::short_, from now.
UnparkReason park_with(Parker& p, Form form, DeadlineKind kind, std::chrono::milliseconds finite) {
  switch (form) {
    case Form::timeout:
      switch (kind) {
        case DeadlineKind::past:
          return p.park_timeout(-1ms);
        case DeadlineKind::now:
          return p.park_timeout(0ns);
        case DeadlineKind::short_:
          return p.park_timeout(finite);
        case DeadlineKind::huge:
          return p.park_timeout(std::chrono::nanoseconds::max());
      }
      break;
    case Form::coarse_timeout:
      // A timeout in hours: hours::max() must mean forever, not overflow on its way to
      // nanoseconds.
      switch (kind) {
        case DeadlineKind::past:
          return p.park_timeout(-std::chrono::hours(1));
        case DeadlineKind::now:
          return p.park_timeout(std::chrono::hours(0));
        case DeadlineKind::short_:
          return p.park_timeout(finite);  // hours cannot express milliseconds
        case DeadlineKind::huge:
          return p.park_timeout(std::chrono::hours::max());
      }
      break;
    case Form::steady_deadline:
      switch (kind) {
        case DeadlineKind::past:
          return p.park_deadline(Clock::now() - 1s);
        case DeadlineKind::now:
          return p.park_deadline(Clock::now());
        case DeadlineKind::short_:
          return p.park_deadline(Clock::now() + finite);
        case DeadlineKind::huge:
          return p.park_deadline(Clock::time_point::max());
      }
      break;
    case Form::system_deadline: {
      using S = std::chrono::system_clock;
      switch (kind) {
        case DeadlineKind::past:
          return p.park_deadline(S::now() - 1s);
        case DeadlineKind::now:
          return p.park_deadline(S::now());
        case DeadlineKind::short_:
          return p.park_deadline(S::now() + finite);
        case DeadlineKind::huge:
          return p.park_deadline(S::now() +
                                 std::chrono::hours(24 * 365 * 100));  // 100 years fits in ns
      }
      break;
    }
    case Form::coarse_clock_deadline: {
      // A deadline in hours on steady_clock: hours::max() must mean forever, not overflow.
      using H = std::chrono::time_point<Clock, std::chrono::hours>;
      switch (kind) {
        case DeadlineKind::past:
          return p.park_deadline(std::chrono::time_point_cast<std::chrono::hours>(Clock::now()) -
                                 std::chrono::hours(1));
        case DeadlineKind::now:
          return p.park_deadline(std::chrono::time_point_cast<std::chrono::hours>(Clock::now()));
        case DeadlineKind::short_:
          return p.park_timeout(finite);  // hours cannot express milliseconds
        case DeadlineKind::huge:
          return p.park_deadline(H(std::chrono::hours::max() - std::chrono::hours(1)));
      }
      break;
    }
  }
  ADD_FAILURE() << "unreachable";
  return UnparkReason::timed_out;
}

class ParkerTimeoutTable : public ::testing::TestWithParam<std::tuple<Form, TimeoutCase>> {};

TEST_P(ParkerTimeoutTable, Behaves) {
  const auto [form, c] = GetParam();
  SCOPED_TRACE(std::string("deadline=") + name(c.deadline) + " unpark=" + name(c.unpark));
  Parker p;
  if (c.unpark == UnparkWhen::before) p.unparker().unpark();

  if (c.unpark == UnparkWhen::during &&
      (c.deadline == DeadlineKind::past || c.deadline == DeadlineKind::now)) {
    // Past deadlines return without waiting, so an unpark "during" the call can only land after
    // it: the unparker waits until the call has returned, and the token must then remain. A call
    // that waited for the unpark instead would still be inside when the unparker gives up on it
    // (10 s), which `returned_first` catches. (The unparker used to unpark after waiting up to
    // 50 ms for a sleep that never comes; under TSAN on a loaded machine the owner once had not
    // reached the call by then, found the token and correctly returned unparked: a test race.)
    std::mutex m;
    std::condition_variable cv;
    bool returned = false;  // under m
    bool returned_first = false;
    std::thread unparker([&, u = p.unparker()] {
      std::unique_lock<std::mutex> lk(m);
      returned_first = cv.wait_for(lk, 10s, [&] { return returned; });
      lk.unlock();
      u.unpark();
    });
    const UnparkReason r = park_with(p, form, c.deadline, 30ms);
    {
      std::lock_guard<std::mutex> lk(m);
      returned = true;
    }
    cv.notify_one();
    unparker.join();
    EXPECT_TRUE(returned_first) << "the call waited for the unpark";
    EXPECT_EQ(r, UnparkReason::timed_out);
    EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked) << "the late token was lost";
    return;
  }

  std::thread unparker;
  if (c.unpark == UnparkWhen::during) {
    unparker = std::thread([&p, u = p.unparker()] {
      // Unparks even if the owner never slept (a failure), so that no case can hang on it.
      EXPECT_TRUE(parkpool::test::wait_until_parked(p)) << "the owner never slept";
      u.unpark();
    });
  }
  // A finite deadline is 30 ms where the park should time out (the elapsed time is checked
  // against it), and 30 s where an unpark during the park should end it: the unparker thread
  // must get a CPU before the deadline, and on a loaded machine under TSAN it once did not
  // within 30 ms (the park timed out and the token was left for the next call).
  const auto finite = c.unpark == UnparkWhen::during ? std::chrono::milliseconds(30s) : 30ms;
  const auto start = Clock::now();
  std::optional<WakeWithin> wake;  // bounds the park that an unpark "during" must end
  if (c.unpark == UnparkWhen::during) {
    wake.emplace("this thread's park, which the other thread's unpark() once it slept must wake",
                 [u = p.unparker()] { u.unpark(); });
  }
  const UnparkReason r = park_with(p, form, c.deadline, finite);
  wake.reset();
  const auto elapsed = Clock::now() - start;
  if (unparker.joinable()) unparker.join();

  EXPECT_EQ(r, c.expected);
  if (c.expected == UnparkReason::timed_out && c.deadline == DeadlineKind::short_) {
    EXPECT_GE(elapsed, finite) << "returned before the deadline";
  }
  // No token may be left behind or invented.
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
}

std::vector<std::tuple<Form, TimeoutCase>> all_cases() {
  std::vector<TimeoutCase> cases = {
      {DeadlineKind::past, UnparkWhen::before, UnparkReason::unparked},
      {DeadlineKind::past, UnparkWhen::during, UnparkReason::timed_out},
      {DeadlineKind::past, UnparkWhen::never, UnparkReason::timed_out},
      {DeadlineKind::now, UnparkWhen::before, UnparkReason::unparked},
      {DeadlineKind::now, UnparkWhen::during, UnparkReason::timed_out},
      {DeadlineKind::now, UnparkWhen::never, UnparkReason::timed_out},
      {DeadlineKind::short_, UnparkWhen::before, UnparkReason::unparked},
      {DeadlineKind::short_, UnparkWhen::during, UnparkReason::unparked},
      {DeadlineKind::short_, UnparkWhen::never, UnparkReason::timed_out},
      {DeadlineKind::huge, UnparkWhen::before, UnparkReason::unparked},
      {DeadlineKind::huge, UnparkWhen::during, UnparkReason::unparked},
      // huge x never would block forever by contract; HugeTimeoutDoesNotReturnEarly covers it.
  };
  std::vector<std::tuple<Form, TimeoutCase>> out;
  for (Form f : {Form::timeout, Form::coarse_timeout, Form::steady_deadline, Form::system_deadline,
                 Form::coarse_clock_deadline}) {
    for (const auto& c : cases) out.emplace_back(f, c);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllForms, ParkerTimeoutTable, ::testing::ValuesIn(all_cases()));

TEST(Parker, HugeTimeoutDoesNotReturnEarly) {
  // An overflowing deadline computation would turn "forever" into the past. Let the owner sleep,
  // check (after real time has passed: time is what is tested here) that it is still asleep.
  Parker p;
  std::atomic<bool> returned{false};
  Finished finished;
  std::thread t(finished([&] {
    EXPECT_EQ(p.park_timeout(std::chrono::nanoseconds::max()), UnparkReason::unparked);
    returned.store(true, std::memory_order_release);
  }));
  JoinOnExit join([&p] { p.unparker().unpark(); }, t);
  ASSERT_TRUE(parkpool::test::wait_until_parked(p));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(returned.load(std::memory_order_acquire));
  p.unparker().unpark();
  // Bounded: the park has no deadline, so an unpark that does not wake it would hang the join.
  ASSERT_TRUE(finished.within(1, "the owner parked with a huge timeout, which unpark() must wake"));
  t.join();
  EXPECT_TRUE(returned.load());
}

// Runs `park` on a new thread that owns `p` and unparks it once it is seen PARKED (asleep or
// about to sleep), never before. A park that should wait but times out at once returns timed_out
// without ever being seen parked; one that should return at once but sleeps is unparked and
// returns unparked. Either mistake shows in the result, without a sleep and without a hang.
template <class Park>
UnparkReason park_then_unpark_once_parked(Parker& p, Park park) {
  std::atomic<bool> returned{false};
  UnparkReason r = UnparkReason::timed_out;
  Finished finished;
  std::thread owner(finished([&] {
    r = park(p);
    returned.store(true, std::memory_order_release);
  }));
  JoinOnExit join([&p] { p.unparker().unpark(); }, owner);
  const auto end = Clock::now() + 30s;
  while (ParkerTestAccess::state(p) != parkpool::detail::kParked &&
         !returned.load(std::memory_order_acquire)) {
    if (Clock::now() >= end) {
      ADD_FAILURE() << "the owner neither parked nor returned";
      break;
    }
    std::this_thread::yield();
  }
  if (!returned.load(std::memory_order_acquire)) p.unparker().unpark();
  // Bounded: a park that should wait forever and an unpark that does not wake it would hang the
  // join. On failure the JoinOnExit unparks again and joins.
  if (testing::AssertionResult done =
          finished.within(1, "the owner, which the unpark() once it was parked must wake");
      !done) {
    ADD_FAILURE() << done.message();
    return UnparkReason::timed_out;
  }
  owner.join();
  return r;
}

TEST(Parker, CoarseTimeoutsSaturateInsteadOfOverflowing) {
  // park_timeout(hours::max()) used to convert to nanoseconds at the call site: a signed overflow
  // that in practice made hours::max() -1 h (timed out at once) and -hours::max() +1 h (slept an
  // hour). Huge timeouts of any period must mean forever, hugely negative ones "now".
  using std::chrono::hours;
  using std::chrono::seconds;
  const auto waits = [](auto timeout) {
    return [timeout](Parker& p) { return p.park_timeout(timeout); };
  };
  {
    Parker p;
    EXPECT_EQ(park_then_unpark_once_parked(p, waits(hours::max())), UnparkReason::unparked);
  }
  {
    Parker p;
    EXPECT_EQ(park_then_unpark_once_parked(p, waits(seconds::max())), UnparkReason::unparked);
  }
  {
    Parker p;
    EXPECT_EQ(park_then_unpark_once_parked(p, waits(hours::min())), UnparkReason::timed_out);
    EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out) << "a token was left behind";
  }
  {
    Parker p;
    EXPECT_EQ(park_then_unpark_once_parked(p, waits(-hours::max())), UnparkReason::timed_out);
    EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out) << "a token was left behind";
  }
  {
    Parker p;
    EXPECT_EQ(park_then_unpark_once_parked(p, waits(-seconds::max())), UnparkReason::timed_out);
    EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out) << "a token was left behind";
  }
}

// A clock that is not steady_clock or system_clock: waited on in slices and re-checked.
struct SlowClock {
  using duration = std::chrono::microseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<SlowClock>;
  static constexpr bool is_steady = true;
  static time_point now() {
    return time_point(std::chrono::duration_cast<duration>(Clock::now().time_since_epoch()));
  }
};

TEST(Parker, CustomClockDeadlineTimesOutOnThatClock) {
  static_assert(SlowClock::is_steady);
  Parker p;
  const auto deadline = SlowClock::now() + 25ms;
  EXPECT_EQ(p.park_deadline(deadline), UnparkReason::timed_out);
  EXPECT_GE(SlowClock::now(), deadline);
  p.unparker().unpark();
  EXPECT_EQ(p.park_deadline(SlowClock::now() + 1h), UnparkReason::unparked);
}

// A user clock at half the speed of steady_clock: 10 ms of it are 20 ms of steady_clock.
struct HalfSpeedClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<HalfSpeedClock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static time_point now() { return time_point(Clock::now().time_since_epoch() / 2); }
};

// "Other clocks are waited on in steady_clock slices and re-checked against Clock::now() until
// it reaches the deadline": the first slice (the distance on the user clock, taken as steady_clock
// time) ends when the slow clock is only halfway there, and the park must go on sleeping, not
// return timed_out before its own clock reached the deadline.
TEST(Parker, UserClockDeadlineIsRecheckedOnThatClock) {
  Parker p;
  const auto deadline = HalfSpeedClock::now() + 10ms;
  EXPECT_EQ(p.park_deadline(deadline), UnparkReason::timed_out);
  EXPECT_GE(HalfSpeedClock::now(), deadline) << "returned before the clock reached the deadline";
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out) << "a token was invented";
}

// A coarse deadline on a clock other than steady_clock/system_clock: hours near max() is forever
// and hours near min() is in the past, as on steady_clock (no overflow converting to the clock's
// microseconds).
TEST(Parker, CustomClockCoarseDeadlinesSaturate) {
  using H = std::chrono::time_point<SlowClock, std::chrono::hours>;
  Parker p;
  EXPECT_EQ(p.park_deadline(H(std::chrono::hours::min() + std::chrono::hours(1))),
            UnparkReason::timed_out);
  std::thread t([&p, u = p.unparker()] {
    EXPECT_TRUE(parkpool::test::wait_until_parked(p)) << "the owner never slept";
    u.unpark();
  });
  {
    WakeWithin wake("this thread's park, which the other thread's unpark() once it slept must wake",
                    [u = p.unparker()] { u.unpark(); });
    EXPECT_EQ(p.park_deadline(H(std::chrono::hours::max() - std::chrono::hours(1))),
              UnparkReason::unparked);
  }
  t.join();
}

// --- Signals: EINTR inside the wait must not produce an early return.
std::atomic<int> g_signals{0};
void on_signal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

TEST(Parker, SignalsNeverCauseAnEarlyReturn) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the futex wait really returns EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  Parker p;
  std::atomic<bool> returned{false};
  Finished finished;
  std::thread t(finished([&] {
    p.park();
    returned.store(true, std::memory_order_release);
  }));
  JoinOnExit join([&p] { p.unparker().unpark(); }, t);
  const int before = g_signals.load();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(parkpool::test::wait_until_parked(p));
    ASSERT_EQ(pthread_kill(t.native_handle(), SIGUSR1), 0);
    // Let each signal land separately: wait (bounded) for its handler. ThreadSanitizer defers
    // user handlers to its own safe points, which a raw futex syscall is not, so there the
    // handler may not run while the thread is parked; the kernel still interrupts the futex wait
    // with EINTR, which is the path under test.
    const parkpool::test::TimeBudget budget(std::chrono::seconds(2));
    while (g_signals.load() == before + i && !budget.exhausted()) std::this_thread::yield();
    EXPECT_FALSE(returned.load(std::memory_order_acquire)) << "park returned after signal " << i;
  }
  p.unparker().unpark();
  // Bounded: an unpark that does not wake the owner would hang the join.
  ASSERT_TRUE(finished.within(1, "the owner, parked through 20 signals, which unpark() must wake"));
  t.join();
  EXPECT_TRUE(returned.load());
  if (!parkpool::test::slow_instrumentation()) {
    EXPECT_EQ(g_signals.load(), before + 20) << "every signal reached the parked thread";
  }

  // Timed: signals during park_timeout do not shorten it.
  std::thread t2([&] {
    const auto start = Clock::now();
    EXPECT_EQ(p.park_timeout(60ms), UnparkReason::timed_out);
    EXPECT_GE(Clock::now() - start, 60ms);
  });
  for (int i = 0; i < 5; ++i) {
    if (!parkpool::test::wait_until_parked(p, 100ms)) break;
    pthread_kill(t2.native_handle(), SIGUSR1);
    std::this_thread::yield();
  }
  t2.join();
  sigaction(SIGUSR1, &old, nullptr);
}

// --- Lifetime, handles, raw pointers
TEST(Parker, UnparkAfterParkerIsGoneIsHarmless) {
  std::vector<Unparker> keep;
  {
    Parker p;
    keep.push_back(p.unparker());
    keep.push_back(p.unparker());
  }
  for (auto& u : keep) u.unpark();  // ASAN would report a use-after-free
  SUCCEED();
}

TEST(Parker, HandlesAreCounted) {
  Parker p;
  EXPECT_EQ(ParkerTestAccess::handles(p), 1u);
  {
    Unparker a = p.unparker();
    Unparker b = a;
    EXPECT_EQ(ParkerTestAccess::handles(p), 3u);
    Unparker c = std::move(b);
    EXPECT_EQ(ParkerTestAccess::handles(p), 3u);
    b.unpark();  // moved-from: no-op
    EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
    c.unpark();
    EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked);
    EXPECT_TRUE(a == c);
  }
  EXPECT_EQ(ParkerTestAccess::handles(p), 1u);
}

TEST(Parker, IntoRawFromRawRoundTrips) {
  Parker p;
  void* raw_u = Unparker::into_raw(Unparker(p.unparker()));
  ASSERT_NE(raw_u, nullptr);
  EXPECT_EQ(ParkerTestAccess::handles(p), 2u);
  Unparker back = Unparker::from_raw(raw_u);
  back.unpark();
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::unparked);

  void* raw_p = Parker::into_raw(std::move(p));
  ASSERT_NE(raw_p, nullptr);
  back.unpark();
  Parker again = Parker::from_raw(raw_p);
  EXPECT_EQ(again.park_timeout(0ns), UnparkReason::unparked) << "token lost across into_raw";
  EXPECT_EQ(ParkerTestAccess::handles(again), 2u);
  // Under ASAN, a missing release in from_raw shows up as a leak at exit.
}

TEST(Parker, MovedToAnotherThreadParksThere) {
  Parker p;
  Unparker u = p.unparker();
  std::atomic<const Parker*> moved{nullptr};  // the Parker in the thread, once it runs
  Finished finished;
  std::thread t(finished([q = std::move(p), &moved]() mutable {
    moved.store(&q);
    q.park();
  }));
  JoinOnExit join([&u] { u.unpark(); }, t);
  // Unparked once it sleeps there (q lives until the park returns), so that the wake must reach
  // the thread the Parker moved to.
  const auto end = Clock::now() + 30s;
  while (moved.load() == nullptr && Clock::now() < end) std::this_thread::yield();
  ASSERT_NE(moved.load(), nullptr) << "the thread never started";
  ASSERT_TRUE(parkpool::test::wait_until_parked(*moved.load()));
  u.unpark();
  ASSERT_TRUE(finished.within(1, "the owner on the Parker's new thread, which unpark() must wake"));
  t.join();
}

TEST(Parker, PrintsItsState) {
  Parker p;
  std::ostringstream a;
  a << p;
  EXPECT_NE(a.str().find("state=EMPTY"), std::string::npos) << a.str();
  p.unparker().unpark();
  std::ostringstream b;
  b << p << ' ' << p.unparker() << ' ' << UnparkReason::timed_out;
  EXPECT_NE(b.str().find("Parker{state=NOTIFIED"), std::string::npos) << b.str();
  EXPECT_NE(b.str().find("Unparker{state=NOTIFIED"), std::string::npos) << b.str();
  EXPECT_NE(b.str().find("timed_out"), std::string::npos) << b.str();
}

TEST(ParkerDeathTest, ParkOnMovedFromParkerTerminatesWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Parker p;
        Parker q = std::move(p);
        p.park();  // NOLINT(bugprone-use-after-move): the misuse under test
      },
      "moved-from Parker");
}

// --- Spin
TEST(Parker, SpinIsConfiguredInTime) {
  Parker p(ParkerOptions{5ms});
  EXPECT_EQ(p.spin(), 5ms);
  p.set_spin(-1ms);
  EXPECT_EQ(p.spin(), 0ns);
}

TEST(Parker, SpinningParkerReceivesUnparkWithoutSleeping) {
  Parker p(ParkerOptions{std::chrono::seconds(10)});
  std::latch ready(1);
  std::thread t([&ready, u = p.unparker()] {
    ready.wait();
    u.unpark();
  });
  ready.count_down();
  const auto start = Clock::now();
  p.park();  // returns from the spin, long before the 10 s budget
  const auto elapsed = Clock::now() - start;
  t.join();
  EXPECT_EQ(ParkerTestAccess::state(p), parkpool::detail::kEmpty);
  // The spin takes the token as soon as it arrives: a spin that never looked at the word would
  // spin out the whole budget and only then find the token on its way to sleep.
  EXPECT_LT(elapsed, 5s) << "the spin ran out its budget instead of taking the token";
}

TEST(Parker, SpinEndsThenSleeps) {
  Parker p(ParkerOptions{2ms});
  Finished finished;
  std::thread t(finished([&] { p.park(); }));
  JoinOnExit join([&p] { p.unparker().unpark(); }, t);
  ASSERT_TRUE(parkpool::test::wait_until_parked(p)) << "the spinner never went to sleep";
  p.unparker().unpark();
  ASSERT_TRUE(finished.within(1, "the owner asleep after its spin, which unpark() must wake"));
  t.join();
}

TEST(Parker, NanTimeoutTriesTheTokenAndReturns) {
  // A floating-point NaN timeout is "now", like 0: no UB converting it (the asan stage's
  // -fsanitize=float-cast-overflow reports one), no wait.
  const auto nan = std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN());
  Parker p;
  EXPECT_EQ(p.park_timeout(nan), UnparkReason::timed_out);
  p.unparker().unpark();
  EXPECT_EQ(p.park_timeout(nan), UnparkReason::unparked);
  EXPECT_EQ(p.park_timeout(nan), UnparkReason::timed_out);
}

// A clock of the user's with a floating-point duration (park_deadline's generic branch).
struct FloatClock {
  using rep = double;
  using period = std::nano;
  using duration = std::chrono::duration<double, std::nano>;
  using time_point = std::chrono::time_point<FloatClock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static time_point now() noexcept {
    return time_point(duration(static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count())));
  }
};

TEST(Parker, NanDeadlineOnAUserClockMeansNow) {
  // A NaN deadline is "now" on every clock. On a user clock it looped forever on 1 ns parks
  // (the time left, NaN, is not <= 0) until 2026-12-06; a watchdog unparks after 10 s, so the
  // old code fails here with `unparked` instead of hanging.
  const FloatClock::time_point nan{FloatClock::duration(std::numeric_limits<double>::quiet_NaN())};
  Parker p;
  std::atomic<bool> done{false};  // its value only: relaxed (join orders the rest)
  std::thread watchdog([&done, u = p.unparker()] {
    const auto end = Clock::now() + 10s;
    while (!done.load(std::memory_order_relaxed) && Clock::now() < end) {
      std::this_thread::sleep_for(1ms);
    }
    if (!done.load(std::memory_order_relaxed)) u.unpark();
  });
  const auto start = Clock::now();
  const UnparkReason r = p.park_deadline(nan);
  const auto elapsed = Clock::now() - start;
  done.store(true, std::memory_order_relaxed);
  watchdog.join();
  EXPECT_EQ(r, UnparkReason::timed_out);
  EXPECT_LT(elapsed, 10s);
  // The token is still tried first, as for any past deadline.
  p.unparker().unpark();
  EXPECT_EQ(p.park_deadline(nan), UnparkReason::unparked);
}

TEST(Parker, SpinRespectsASystemClockDeadline) {
  Parker p(ParkerOptions{std::chrono::seconds(10)});
  const auto start = Clock::now();
  EXPECT_EQ(p.park_deadline(std::chrono::system_clock::now() + 20ms), UnparkReason::timed_out);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 20ms);
  EXPECT_LT(elapsed, 5s) << "spun past the deadline";
}

TEST(Parker, SpinRespectsTheDeadline) {
  Parker p(ParkerOptions{std::chrono::seconds(10)});
  const auto start = Clock::now();
  EXPECT_EQ(p.park_timeout(20ms), UnparkReason::timed_out);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 20ms);
  EXPECT_LT(elapsed, 5s) << "spun past the deadline";
}

// The Unparker a signal handler wakes (set before the handler is installed).
const parkpool::Unparker* g_handler_unparker = nullptr;
void unpark_from_handler(int) { g_handler_unparker->unpark(); }

// "With the futex backend it may also be called from signal handlers": an unpark() made inside
// a handler wakes the parked thread. The signal goes to this thread (raise runs the handler before
// it returns; under ThreadSanitizer at its next intercepted call, join() at the latest).
TEST(Parker, UnparkFromASignalHandlerWakesTheParkedThread) {
  if (PARKPOOL_PORTABLE_BACKEND) GTEST_SKIP() << "the portable backend's unpark is not signal-safe";
  Parker p;
  const Unparker u = p.unparker();
  g_handler_unparker = &u;
  struct sigaction sa {};
  sa.sa_handler = unpark_from_handler;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
  // On every way out (a failed ASSERT below too), once the thread is joined: the old action back.
  struct RestoreAction {
    const struct sigaction& old;
    ~RestoreAction() {
      sigaction(SIGUSR2, &old, nullptr);
      g_handler_unparker = nullptr;
    }
  } restore{old};
  Finished finished;
  std::thread t(finished([&] { p.park(); }));  // returns only once the handler's token arrives
  JoinOnExit join([&u] { u.unpark(); }, t);
  ASSERT_TRUE(parkpool::test::wait_until_parked(p));
  ASSERT_EQ(raise(SIGUSR2), 0);
  // Bounded: a handler's unpark that does not wake the owner would hang the join.
  ASSERT_TRUE(finished.within(1, "the owner the signal handler's unpark() must wake"));
  t.join();
}

}  // namespace

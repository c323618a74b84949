// The Parker protocol (detail/parker_protocol.hpp) run over every production backend in one
// binary: the same contract for the futex and the portable mutex+condvar backends. Then park_slow
// over a scripted backend, single-threaded, for the races no timing-based test can aim at: an
// unpark that lands just before the CAS (P), and one that lands between a wait's timeout and (T).
#include <parkpool/detail/parker_backend.hpp>
#include <parkpool/detail/parker_protocol.hpp>
#include <parkpool/parker.hpp>  // operator<< for UnparkReason: failures print timed_out, not <01>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <utility>

#include "backends.hpp"
#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::UnparkReason;
using parkpool::detail::Deadline;
using parkpool::detail::kEmpty;
using parkpool::detail::kNotified;
using parkpool::detail::kParked;
using parkpool::detail::WaitStatus;

template <class Backend>
struct Core {
  using P = parkpool::detail::ParkerProtocol<Backend>;
  typename Backend::Word state{parkpool::detail::kEmpty};
  Backend backend;
  std::int64_t spin_ns = 0;

  void unpark() { P::unpark(state, backend); }
  UnparkReason park(Deadline d = Deadline::forever()) {
    if (P::try_consume(state)) return UnparkReason::unparked;
    return P::park_slow(state, backend, d, spin_ns);
  }
  UnparkReason park_for(std::chrono::nanoseconds t) {
    return park(Deadline::monotonic(parkpool::detail::monotonic_now_ns() + t.count()));
  }
  void wait_parked() {
    while (state.load(std::memory_order_acquire) != kParked) std::this_thread::yield();
  }
};

template <class Backend>
class ParkerProtocol : public ::testing::Test {};

TYPED_TEST_SUITE(ParkerProtocol, parkpool::test::ProductionBackends);

TYPED_TEST(ParkerProtocol, TokenSemantics) {
  Core<TypeParam> c;
  c.unpark();
  c.unpark();
  EXPECT_EQ(c.park(), UnparkReason::unparked);
  EXPECT_EQ(c.park_for(5ms), UnparkReason::timed_out);
}

TYPED_TEST(ParkerProtocol, WakesASleeper) {
  Core<TypeParam> c;
  std::thread t([&] {
    c.wait_parked();
    c.unpark();
  });
  EXPECT_EQ(c.park(), UnparkReason::unparked);
  t.join();
}

TYPED_TEST(ParkerProtocol, TimedOutThenLateTokenIsKept) {
  Core<TypeParam> c;
  EXPECT_EQ(c.park_for(2ms), UnparkReason::timed_out);
  c.unpark();
  EXPECT_EQ(c.park_for(0ns), UnparkReason::unparked);
}

TYPED_TEST(ParkerProtocol, RealtimeDeadline) {
  Core<TypeParam> c;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.park(Deadline::realtime(parkpool::detail::realtime_now_ns() + 10'000'000)),
            UnparkReason::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 10ms);
}

TYPED_TEST(ParkerProtocol, PingPongNoLostWakeup) {
  Core<TypeParam> a, b;
  const std::size_t rounds = parkpool::test::scaled(20000);
  std::thread t([&] {
    for (std::size_t i = 0; i < rounds; ++i) {
      // Non-fatal, and a is unparked either way: a fatal ASSERT would return without unparking
      // and leave the main thread parked on a until the ctest TIMEOUT, with no message.
      EXPECT_EQ(b.park(), UnparkReason::unparked) << "round " << i;
      a.unpark();
    }
  });
  for (std::size_t i = 0; i < rounds; ++i) {
    b.unpark();
    ASSERT_EQ(a.park(), UnparkReason::unparked);
  }
  t.join();
}

TYPED_TEST(ParkerProtocol, SpinPingPong) {
  Core<TypeParam> a, b;
  a.spin_ns = b.spin_ns = 50'000;
  const std::size_t rounds = parkpool::test::scaled(20000);
  std::thread t([&] {
    for (std::size_t i = 0; i < rounds; ++i) {
      // Non-fatal, and a is unparked either way: a fatal ASSERT would return without unparking
      // and leave the main thread parked on a until the ctest TIMEOUT, with no message.
      EXPECT_EQ(b.park(), UnparkReason::unparked) << "round " << i;
      a.unpark();
    }
  });
  for (std::size_t i = 0; i < rounds; ++i) {
    b.unpark();
    ASSERT_EQ(a.park(), UnparkReason::unparked);
  }
  t.join();
}

// A backend whose every call the test scripts. The test itself plays the other thread: it makes
// the unpark at the exact point of park_slow it targets, from inside the call the protocol makes
// there, so the interleaving is fixed and nothing depends on timing.
struct ScriptedBackend {
  // std::atomic's operations, plus an action the test can schedule just before the next
  // compare_exchange_strong: the point between the protocol's last look at the word and its CAS
  // (P), where with spin 0 no backend call comes in between. store() too, which the protocol does
  // not use: a change that replaces one of its RMWs by a store compiles and meets the assertions.
  struct Word {
    explicit Word(std::uint32_t v) noexcept : value(v) {}

    std::atomic<std::uint32_t> value;
    std::function<void()> before_next_cas;

    std::uint32_t load(std::memory_order mo) const noexcept { return value.load(mo); }
    void store(std::uint32_t v, std::memory_order mo) noexcept { value.store(v, mo); }
    std::uint32_t exchange(std::uint32_t v, std::memory_order mo) noexcept {
      return value.exchange(v, mo);
    }
    bool compare_exchange_strong(std::uint32_t& expected, std::uint32_t desired,
                                 std::memory_order success, std::memory_order failure) noexcept {
      if (auto action = std::exchange(before_next_cas, nullptr)) action();
      return value.compare_exchange_strong(expected, desired, success, failure);
    }
  };

  // What each wait() does once the word holds `expected` (none: it times out, word untouched).
  std::function<WaitStatus(Word&)> on_wait;
  int waits = 0;
  int wakes = 0;

  WaitStatus wait(Word& w, std::uint32_t expected, const Deadline&) noexcept {
    ++waits;
    // As FUTEX_WAIT: a word that already differs returns at once.
    if (w.load(std::memory_order_relaxed) != expected) return WaitStatus::woken;
    return on_wait ? on_wait(w) : WaitStatus::timed_out;
  }
  void wake_one(Word&) noexcept { ++wakes; }

  // The protocol reads the clocks through static functions, so the scripted clock is static
  // (ParkSlowScripted resets it after each test). None: the time is always 0.
  static inline std::function<std::int64_t()> monotonic_clock;
  static std::int64_t monotonic_ns() noexcept { return monotonic_clock ? monotonic_clock() : 0; }
  static std::int64_t realtime_ns() noexcept { return 0; }
  static void cpu_relax() noexcept {}
};

class ParkSlowScripted : public ::testing::Test {
 protected:
  using P = parkpool::detail::ParkerProtocol<ScriptedBackend>;
  void TearDown() override { ScriptedBackend::monotonic_clock = nullptr; }
  std::uint32_t word() const { return c.state.load(std::memory_order_relaxed); }
  Core<ScriptedBackend> c;
};

TEST_F(ParkSlowScripted, ATokenThatLandsAfterTheSpinsLastCheckIsReportedAsUnparked) {
  // The spin reads the clock at its start (0) and after every kSpinsPerClockRead checks of the
  // word. At that second read the token arrives and the clock says the spin is over: the spin
  // returns without having seen it, so (P) fails on NOTIFIED and (C) consumes the token.
  c.spin_ns = 1'000;
  int clock_reads = 0;
  ScriptedBackend::monotonic_clock = [&]() -> std::int64_t {
    if (++clock_reads == 1) return 0;
    c.unpark();
    return 1'000;
  };
  EXPECT_EQ(c.park(), UnparkReason::unparked)
      << "(C) consumed the token that failed the CAS (P), but park reported no token: it is lost";
  EXPECT_EQ(word(), kEmpty) << "the token must be consumed exactly once, by (C)";
  EXPECT_EQ(clock_reads, 2) << "the spin read the clock other than scripted: the unpark did not "
                               "land between the spin's last check and (P)";
  EXPECT_EQ(c.backend.waits, 0) << "(P) failed on a token: park must not sleep";
}

TEST_F(ParkSlowScripted, WithoutSpinATokenThatLandsJustBeforeTheCasIsReportedAsUnparked) {
  // spin 0, the Parker's default: the token arrives after the fast path found the word EMPTY and
  // before the CAS (P).
  c.state.before_next_cas = [&] { c.unpark(); };
  EXPECT_EQ(c.park(), UnparkReason::unparked)
      << "(C) consumed the token that failed the CAS (P), but park reported no token: it is lost";
  EXPECT_EQ(word(), kEmpty) << "the token must be consumed exactly once, by (C)";
  EXPECT_EQ(c.backend.waits, 0) << "(P) failed on a token: park must not sleep";
}

TEST_F(ParkSlowScripted, ATokenThatArrivesAfterTheWaitTimedOutIsReportedAsUnparked) {
  // The wait times out, and before (T) an unpark replaces PARKED with NOTIFIED (and issues a wake
  // that finds no sleeper). (T) must consume and report that token, not overwrite it.
  c.backend.on_wait = [&](ScriptedBackend::Word&) {
    c.unpark();
    return WaitStatus::timed_out;
  };
  EXPECT_EQ(c.park(Deadline::monotonic(1'000)), UnparkReason::unparked)
      << "a token that arrived between the wait's timeout and (T) was dropped: park reported "
         "timed_out and the token is lost";
  EXPECT_EQ(c.backend.wakes, 1) << "the scripted unpark did not meet PARKED: it did not race "
                                   "the timeout as intended";
  EXPECT_EQ(word(), kEmpty) << "(T) must consume the late token, leaving the word EMPTY";

  // Consumed exactly once: the next timed park finds no token and times out.
  c.backend.on_wait = nullptr;
  EXPECT_EQ(c.park(Deadline::monotonic(0)), UnparkReason::timed_out)
      << "the late token was reported by the first park and is still there for a second one";
  EXPECT_EQ(word(), kEmpty);
}

TEST_F(ParkSlowScripted, AWaitThatTimesOutWithNoTokenReportsTimedOutAndLeavesTheWordEmpty) {
  EXPECT_EQ(c.park(Deadline::monotonic(1'000)), UnparkReason::timed_out)
      << "no unpark was made, yet park reported a token";
  EXPECT_EQ(c.backend.waits, 1);
  EXPECT_EQ(word(), kEmpty) << "a timed-out park must leave PARKED: an unpark would then issue "
                               "a wake for a thread that no longer sleeps";
}

}  // namespace

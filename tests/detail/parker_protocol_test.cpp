// The Parker protocol (detail/parker_protocol.hpp) run over every production backend in one
// binary: the same contract for the futex and the portable mutex+condvar backends.
#include <parkpool/detail/parker_backend.hpp>
#include <parkpool/detail/parker_protocol.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "backends.hpp"
#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::UnparkReason;
using parkpool::detail::Deadline;
using parkpool::detail::kParked;

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

}  // namespace

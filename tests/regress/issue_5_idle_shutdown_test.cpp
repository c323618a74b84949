// Regression (issue 5): IdleCoordinator::shutdown() popped sleepers without counting them as
// searchers, but a popped worker comes back as one. Its next found_work() (which the contract
// allows on every task found) subtracted from S == 0; the borrow ran through the sleeper count
// into the shutdown bit and cleared it, so a worker announcing afterwards slept forever.
// Without the fix this test hangs in the last wait_for_work (the ctest TIMEOUT fails it) or
// fails the state checks.
#include <parkpool/idle.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;

parkpool::IdleOptions sleep_at_once() {
  parkpool::IdleOptions o;
  o.spin_min = 0ns;
  o.spin_max = 0ns;
  o.timed_park = 0ns;  // untimed park: a lost wake cannot be rescued by a timeout
  return o;
}

TEST(Issue5IdleShutdown, FoundWorkAfterShutdownKeepsTheShutdownBit) {
  parkpool::IdleCoordinator idle(2, sleep_at_once());
  bool returned = true;
  std::thread w0([&] {
    // Non-fatal, and the wait follows either way: a fatal ASSERT would return before worker 0
    // announces its sleep, and the main thread would wait for sleeping() == 1 until the ctest
    // TIMEOUT, with no message.
    EXPECT_TRUE(idle.try_start_searching(0));
    returned = idle.wait_for_work(0, [] { return false; });  // parks until shutdown
    idle.found_work(0);  // allowed by the contract; must not disturb the state
  });
  // Wait until worker 0 is announced asleep (the state, not time, orders the threads).
  while (idle.sleeping() != 1) std::this_thread::yield();
  idle.shutdown();
  w0.join();
  EXPECT_FALSE(returned) << "wait_for_work must report the shutdown";
  EXPECT_TRUE(idle.is_shutdown()) << "found_work after shutdown cleared the shutdown bit";
  EXPECT_EQ(idle.searching(), 0u);
  EXPECT_EQ(idle.sleeping(), 0u);

  // A worker arriving after shutdown must not park (it would never be woken).
  std::thread w1([&] { EXPECT_FALSE(idle.wait_for_work(1, [] { return false; })); });
  w1.join();
}

TEST(Issue5IdleShutdown, RepeatedShutdownRacesWithSleepers) {
  // The same with both workers popped at once, many times (each round is bounded by the join).
  for (int round = 0; round < 200; ++round) {
    parkpool::IdleCoordinator idle(2, sleep_at_once());
    std::thread workers[2];
    for (std::size_t w = 0; w < 2; ++w) {
      workers[w] = std::thread([&idle, w] {
        (void)idle.try_start_searching(w);
        while (idle.wait_for_work(w, [] { return false; })) {
        }
        idle.found_work(w);
        EXPECT_FALSE(idle.wait_for_work(w, [] { return false; }));
      });
    }
    while (idle.sleeping() + idle.searching() == 0) std::this_thread::yield();
    idle.shutdown();
    for (auto& t : workers) t.join();
    ASSERT_TRUE(idle.is_shutdown());
    ASSERT_EQ(idle.searching(), 0u) << "round " << round;
  }
}

}  // namespace

// Lost-wakeup stress for the Parker: rings of 2, 3 and 8 threads (8 on the 2 cores), mixed
// park / park_timeout, and many unparkers hammering one parker. Bounded in iterations and time;
// a lost wakeup hangs, which the ctest TIMEOUT turns into a failure.
#include <parkpool/parker.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::Parker;
using parkpool::ParkerOptions;
using parkpool::Unparker;
using parkpool::UnparkReason;

// Thread i parks, then unparks thread i+1. Exactly one token circulates. `timed` threads use
// park_timeout with random short timeouts and retry when they time out: a token lost at a
// timeout would stop the ring.
void ring(std::size_t n, std::size_t rounds, bool timed, std::chrono::nanoseconds spin) {
  std::vector<Parker> parkers;
  parkers.reserve(n);
  for (std::size_t i = 0; i < n; ++i) parkers.emplace_back(ParkerOptions{spin});
  std::vector<Unparker> unparkers;
  for (auto& p : parkers) unparkers.push_back(p.unparker());
  std::atomic<std::uint64_t> passes{0};

  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i, p = std::move(parkers[i])]() mutable {
      std::minstd_rand rng(static_cast<unsigned>(i + 1));
      for (std::size_t r = 0; r < rounds; ++r) {
        if (timed && (rng() & 1u) != 0) {
          while (p.park_timeout(std::chrono::microseconds(rng() % 50)) == UnparkReason::timed_out) {
          }
        } else {
          p.park();
        }
        passes.fetch_add(1, std::memory_order_relaxed);
        unparkers[(i + 1) % n].unpark();
      }
    });
  }
  unparkers[0].unpark();
  for (auto& t : threads) t.join();
  EXPECT_EQ(passes.load(), n * rounds);
}

TEST(ParkerStress, Ring2) { ring(2, parkpool::test::scaled(100000), false, 0ns); }
TEST(ParkerStress, Ring3) { ring(3, parkpool::test::scaled(50000), false, 0ns); }
TEST(ParkerStress, Ring8OnTwoCores) { ring(8, parkpool::test::scaled(10000), false, 0ns); }
TEST(ParkerStress, Ring2Timed) { ring(2, parkpool::test::scaled(50000), true, 0ns); }
TEST(ParkerStress, Ring3TimedWithSpin) { ring(3, parkpool::test::scaled(30000), true, 20us); }
TEST(ParkerStress, Ring8TimedWithSpin) { ring(8, parkpool::test::scaled(5000), true, 5us); }

// Many unparkers, one parker: each unparker publishes a count then unparks. The parker must see
// every count, so the last unpark's token must reach it (merged tokens must not drop the last).
TEST(ParkerStress, ManyUnparkersHammerOneParker) {
  constexpr std::size_t kUnparkers = 6;
  const std::size_t per = parkpool::test::scaled(50000);
  Parker p;
  std::atomic<std::uint64_t> published{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kUnparkers; ++i) {
    threads.emplace_back([&, u = p.unparker()] {
      for (std::size_t k = 0; k < per; ++k) {
        published.fetch_add(1, std::memory_order_relaxed);
        u.unpark();
      }
    });
  }
  const std::uint64_t total = kUnparkers * per;
  // Relaxed load: the count itself is the data; the token (acquire) orders nothing else here.
  while (published.load(std::memory_order_relaxed) < total) p.park();
  for (auto& t : threads) t.join();
  EXPECT_EQ(published.load(), total);
  // However many unparks merged, at most one token is left over.
  (void)p.park_timeout(0ns);
  EXPECT_EQ(p.park_timeout(0ns), UnparkReason::timed_out);
}

}  // namespace

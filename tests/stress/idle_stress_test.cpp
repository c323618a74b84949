// Stress tests of <parkpool/idle.hpp>: a minimal pool on the coordinator, hammered with bursts from
// several producers, ping-pong (a park/wake every round), foreign unparks and shutdown races.
// Bounded in iterations (scaled under sanitizers) and time. A lost wakeup shows up as a task that
// never runs: every wait for completion has a deadline and fails with the state it saw.
// The option sets used for lost-wakeup checks have no timed park, so no timeout can paper over a
// lost wakeup. Figures (wake latency, idle burn) are printed; they are noisy on a shared machine.
#include <parkpool/idle.hpp>
#include <parkpool/parker.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::IdleCoordinator;
using parkpool::IdleOptions;
using Clock = std::chrono::steady_clock;

struct NamedOptions {
  const char* name;
  IdleOptions options;
};

IdleOptions make(std::chrono::nanoseconds lo, std::chrono::nanoseconds hi,
                 std::chrono::nanoseconds timed, std::size_t max_searching = 0) {
  IdleOptions o;
  o.spin_min = lo;
  o.spin_max = hi;
  o.timed_park = timed;
  o.max_searching = max_searching;
  return o;
}

// Option sets where no timeout can recover a lost wakeup within a test's deadline (no timed park,
// or one far longer than the deadline), plus one short timed park that races its expiry against
// claims (its safety net could hide a lost wakeup, so it is there for the races and the counts).
std::vector<NamedOptions> strict_options() {
  return {{"no_spin", make(0ns, 0ns, 0ns)},
          {"short_spin", make(0ns, 3us, 0ns)},
          {"spin_all_search", make(1us, 5us, 0ns, 64)},
          {"efficiency", IdleOptions::efficiency()},
          {"long_timed_park", make(0ns, 2us, 300s)},
          {"racy_timed_park", make(0ns, 0ns, 20us)}};
}

// A minimal pool: tasks are tickets (posted_ counts published, claimed_ counts taken).
class MiniPool {
 public:
  MiniPool(std::size_t workers, IdleOptions options) : idle_(workers, options) {
    for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this, i] { run(i); });
  }
  MiniPool(const MiniPool&) = delete;
  MiniPool& operator=(const MiniPool&) = delete;
  ~MiniPool() { stop(); }

  void post(std::uint64_t n = 1) {
    posted_.fetch_add(n, std::memory_order_release);  // publish, then notify
    idle_.notify_work();
  }
  void stop() {
    idle_.shutdown();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::uint64_t executed() const { return executed_.load(std::memory_order_acquire); }
  std::uint64_t posted() const { return posted_.load(std::memory_order_acquire); }
  IdleCoordinator& idle() { return idle_; }

  // Waits until every posted task ran; false (with a message) after `limit`.
  bool wait_all(std::uint64_t total, std::chrono::milliseconds limit = 30000ms) {
    const auto end = Clock::now() + limit;
    while (executed() < total) {
      if (Clock::now() > end) {
        ADD_FAILURE() << "lost wakeup? executed " << executed() << " of " << total << ", sleeping "
                      << idle_.sleeping() << ", searching " << idle_.searching();
        return false;
      }
      std::this_thread::yield();
    }
    return true;
  }

 private:
  bool has_work() const {
    return claimed_.load(std::memory_order_relaxed) < posted_.load(std::memory_order_acquire);
  }
  bool try_take() {
    std::uint64_t c = claimed_.load(std::memory_order_relaxed);
    while (c < posted_.load(std::memory_order_acquire)) {
      if (claimed_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  // Even workers use found_work(w, has_more), odd ones the unconditional found_work(w): both
  // protocols race each other in every test with two or more workers.
  void found(std::size_t w) {
    if (w % 2 == 0) {
      idle_.found_work(w, [this] { return has_work(); });
    } else {
      idle_.found_work(w);
    }
  }
  void run(std::size_t w) {
    for (;;) {
      if (try_take()) {
        found(w);
        executed_.fetch_add(1, std::memory_order_release);
        continue;
      }
      // Search "other queues" as a counted searcher when allowed (tokio style), then wait.
      if (idle_.try_start_searching(w) && try_take()) {
        found(w);
        executed_.fetch_add(1, std::memory_order_release);
        continue;
      }
      if (!idle_.wait_for_work(w, [this] { return has_work(); })) return;
    }
  }

  IdleCoordinator idle_;
  alignas(64) std::atomic<std::uint64_t> posted_{0};
  alignas(64) std::atomic<std::uint64_t> claimed_{0};
  alignas(64) std::atomic<std::uint64_t> executed_{0};
  std::vector<std::thread> threads_;
};

// After all work ran and nothing is posted, every worker must end up announced asleep and no
// worker counted as searching (INV-P / INV-S survive the races). Only for spin-free option sets
// where workers do not stay searching.
void expect_quiescent(IdleCoordinator& idle) {
  const auto end = Clock::now() + 10s;
  while (!(idle.sleeping() == idle.workers() && idle.searching() == 0)) {
    if (Clock::now() > end) {
      ADD_FAILURE() << "not quiescent: sleeping " << idle.sleeping() << " of " << idle.workers()
                    << ", searching " << idle.searching();
      return;
    }
    std::this_thread::yield();
  }
}

TEST(IdleStress, BurstsFromSeveralProducersRunEveryTask) {
  const std::size_t worker_counts[] = {1, 2, 4, 8};
  for (const NamedOptions& no : strict_options()) {
    for (std::size_t workers : worker_counts) {
      SCOPED_TRACE(std::string(no.name) + " workers=" + std::to_string(workers));
      MiniPool pool(workers, no.options);
      const std::size_t producers = 3;
      const std::uint64_t per_producer = parkpool::test::scaled(3000);
      std::vector<std::thread> ps;
      for (std::size_t p = 0; p < producers; ++p) {
        ps.emplace_back([&pool, per_producer, p] {
          std::mt19937 rng(static_cast<unsigned>(p) + 1);
          std::uint64_t sent = 0;
          while (sent < per_producer) {
            // Bursts of 1..8 single posts, then a pause of a few yields (lets workers park).
            const std::uint64_t burst = std::min<std::uint64_t>(rng() % 8 + 1, per_producer - sent);
            for (std::uint64_t i = 0; i < burst; ++i) pool.post();
            sent += burst;
            for (unsigned y = rng() % 4; y > 0; --y) std::this_thread::yield();
          }
        });
      }
      for (auto& t : ps) t.join();
      ASSERT_TRUE(pool.wait_all(producers * per_producer));
      if (no.options.spin_max == 0ns) expect_quiescent(pool.idle());
      pool.stop();
      EXPECT_EQ(pool.executed(), producers * per_producer);
    }
  }
}

TEST(IdleStress, PingPongEveryRoundNeedsAWakeAndNoneIsLost) {
  for (const NamedOptions& no : strict_options()) {
    for (std::size_t workers : {std::size_t{1}, std::size_t{3}}) {
      SCOPED_TRACE(std::string(no.name) + " workers=" + std::to_string(workers));
      MiniPool pool(workers, no.options);
      const std::uint64_t rounds = parkpool::test::scaled(3000);
      parkpool::test::TimeBudget budget(20s);
      std::uint64_t r = 0;
      for (; r < rounds && !budget.exhausted(); ++r) {
        pool.post();
        ASSERT_TRUE(pool.wait_all(r + 1, 10000ms)) << "round " << r;
      }
      pool.stop();
      EXPECT_EQ(pool.executed(), r);
    }
  }
}

TEST(IdleStress, PlainStorePublicationRacingTheAnnounceNeverLosesAWakeup) {
  // The other tests publish with an RMW (MiniPool's fetch_add) or under a lock, which on x86 is a
  // full barrier by itself and hides a missing store->load fence on the notifier's side (N1 in
  // notify_work: removing it passed every test). Here each ticket is published by a plain
  // release store, as a pool's deque push does (a release fence, then a plain store of bottom_),
  // and the worker goes idle the moment it took a ticket, so its announce (A1) races the next
  // publication. Without N1 the notifier's load can read P == 0 while its store still sits in the
  // store buffer, and the worker's re-check misses it: a lost wakeup. A hardware race, so the
  // check is probabilistic: with N1 removed it failed 5 of 30 runs of 200k rounds and 4 of 20 runs
  // of this length on the 2-vCPU dev VM (2026-12-07), and 0 of 50 with N1. A lost wakeup leaves
  // the worker asleep with a ticket published: the round's deadline fails the test, and
  // shutdown() releases the worker.
  IdleOptions o = make(0ns, 0ns, 0ns);  // no spin, no timed park: every idle episode announces
  o.asymmetric_barrier = false;         // notify_work's fence path (one worker: no membarrier)
  IdleCoordinator c(1, o);
  const std::uint64_t rounds = parkpool::test::scaled(1000000);
  parkpool::test::TimeBudget budget(10s);
  // published: the last ticket posted (the plain store under test: release, as a deque push
  // publishes its item; the worker's acquire loads are the consumer's side); taken: the last
  // ticket the worker took (the test's own bookkeeping: relaxed, it publishes nothing).
  std::atomic<std::uint64_t> published{0}, taken{0};
  auto has_work = [&] {
    return published.load(std::memory_order_acquire) > taken.load(std::memory_order_relaxed);
  };
  std::thread worker([&] {
    for (;;) {
      const std::uint64_t p = published.load(std::memory_order_acquire);
      if (taken.load(std::memory_order_relaxed) < p) {
        c.found_work(0);
        taken.store(p, std::memory_order_relaxed);
        continue;
      }
      if (!c.wait_for_work(0, has_work)) return;
    }
  });
  std::uint64_t r = 1;
  bool lost = false;
  for (; r <= rounds && !budget.exhausted(); ++r) {
    published.store(r, std::memory_order_release);
    c.notify_work();
    const auto deadline = Clock::now() + 2s;  // a wake takes microseconds
    for (unsigned i = 0; taken.load(std::memory_order_relaxed) < r; ++i) {
      if ((i & 255u) == 0 && Clock::now() > deadline) {
        lost = true;
        break;
      }
      parkpool::detail::cpu_relax();
    }
    if (lost) break;
  }
  const std::size_t asleep = c.sleeping();  // 1 after a lost wakeup: the worker sleeps on
  c.shutdown();
  worker.join();
  EXPECT_FALSE(lost) << "lost wakeup at round " << r << " of " << rounds << ", sleeping " << asleep;
  EXPECT_GT(c.total_stats().parks, 0u);  // the rounds did go through the sleep handshake
}

TEST(IdleStress, ForeignUnparksRacingNotifiesKeepCountsConsistent) {
  IdleOptions o = make(0ns, 0ns, 0ns);
  const std::size_t workers = 4;
  MiniPool pool(workers, o);
  std::atomic<bool> stop{false};
  std::thread hammer([&] {
    std::mt19937 rng(7);
    while (!stop.load(std::memory_order_relaxed)) {
      pool.idle().unparker(rng() % workers).unpark();
      std::this_thread::yield();
    }
  });
  const std::uint64_t total = parkpool::test::scaled(20000);
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < total; ++i) {
      pool.post();
      if (i % 16 == 0) std::this_thread::yield();
    }
  });
  producer.join();
  EXPECT_TRUE(pool.wait_all(total));
  stop.store(true, std::memory_order_relaxed);
  hammer.join();
  expect_quiescent(pool.idle());  // stale tokens and foreign wakes left no residue
  pool.stop();
  EXPECT_EQ(pool.executed(), total);
}

TEST(IdleStress, ShutdownRacingPostsAndParkingAlwaysJoins) {
  const std::uint64_t rounds = parkpool::test::scaled(300, 10, 30);
  parkpool::test::TimeBudget budget(60s);
  std::mt19937 rng(11);
  for (std::uint64_t r = 0; r < rounds && !budget.exhausted(); ++r) {
    const auto& all = strict_options();
    const NamedOptions& no = all[r % all.size()];
    auto pool = std::make_unique<MiniPool>(1 + r % 4, no.options);
    std::atomic<bool> go{false};
    std::thread producer([&] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int i = 0; i < 64; ++i) pool->post();
    });
    go.store(true, std::memory_order_release);
    for (unsigned y = rng() % 64; y > 0; --y) std::this_thread::yield();
    pool->stop();  // joins every worker: a worker that missed the shutdown hangs here
    producer.join();
    pool.reset();
  }
}

// ---------------------------------------------------------------- figures

std::int64_t percentile(std::vector<std::int64_t> v, double p) {
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[idx];
}

TEST(IdleStress, EveryPostToAnAnnouncedSleeperRunsAndTheWakeRoundTripIsPrinted) {
  // Asserted: each of `rounds` posts to a worker announced asleep (no spin) runs within 10 s: a
  // lost wake on the announce/park path fails the round. Printed, not asserted (speed belongs to
  // bench/; the VM is shared): the round trip post -> task ran, against a bare Parker unpark /
  // park / ack round trip in the same binary.
  const std::size_t rounds = parkpool::test::scaled(2000);
  std::vector<std::int64_t> idle_rt, bare_rt;
  {
    MiniPool pool(1, make(0ns, 0ns, 0ns));
    for (std::size_t r = 0; r < rounds; ++r) {
      // Wait until the worker is announced asleep so every round measures a wake from park.
      const auto end = Clock::now() + 10s;
      while (pool.idle().sleeping() != 1) {
        ASSERT_LT(Clock::now(), end) << "the idle worker never announced its sleep";
        std::this_thread::yield();
      }
      const auto t0 = Clock::now();
      pool.post();
      ASSERT_TRUE(pool.wait_all(r + 1, 10000ms));
      idle_rt.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    }
  }
  {
    parkpool::Parker parker;
    const parkpool::Unparker u = parker.unparker();
    std::atomic<std::uint64_t> acked{0};
    std::atomic<bool> parked{false};
    std::thread t([&] {
      for (std::size_t r = 0; r < rounds; ++r) {
        parked.store(true, std::memory_order_release);
        parker.park();
        acked.store(r + 1, std::memory_order_release);
      }
    });
    for (std::size_t r = 0; r < rounds; ++r) {
      while (!parked.exchange(false, std::memory_order_acq_rel)) std::this_thread::yield();
      std::this_thread::yield();  // give it a chance to reach FUTEX_WAIT, like the idle rounds
      const auto t0 = Clock::now();
      u.unpark();
      while (acked.load(std::memory_order_acquire) != r + 1) {
      }
      bare_rt.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    }
    t.join();
  }
  std::printf(
      "[figures] wake round trip, idle coordinator: p50 %.1f us p99 %.1f us; "
      "bare Parker: p50 %.1f us p99 %.1f us (%zu rounds)\n",
      static_cast<double>(percentile(idle_rt, 0.5)) / 1e3,
      static_cast<double>(percentile(idle_rt, 0.99)) / 1e3,
      static_cast<double>(percentile(bare_rt, 0.5)) / 1e3,
      static_cast<double>(percentile(bare_rt, 0.99)) / 1e3, rounds);
}

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

TEST(IdleStress, IdleWorkersStopBurningCpuAfterABurst) {
  // Issue 5: in the 200 ms after a burst, < 5% of one core (wide margin; target 0.1 ms).
  for (const NamedOptions& no :
       {NamedOptions{"default", IdleOptions{}}, NamedOptions{"latency", IdleOptions::latency()},
        NamedOptions{"efficiency", IdleOptions::efficiency()}}) {
    MiniPool pool(2, no.options);
    const std::uint64_t burst = parkpool::test::scaled(100000);
    for (std::uint64_t i = 0; i < burst; ++i) pool.post();
    ASSERT_TRUE(pool.wait_all(burst));
    const auto s0 = pool.idle().total_stats();
    const double before = process_cpu_ms();
    std::this_thread::sleep_for(200ms);  // measuring idleness, not ordering threads
    const double used = process_cpu_ms() - before;
    const auto s1 = pool.idle().total_stats();
    std::printf(
        "[figures] idle burn %s: %.3f ms CPU in the 200 ms after a %llu-task burst "
        "(during it: %llu parks, %llu timed out, %llu unparks)\n",
        no.name, used, static_cast<unsigned long long>(burst),
        static_cast<unsigned long long>(s1.parks - s0.parks),
        static_cast<unsigned long long>(s1.timed_out_parks - s0.timed_out_parks),
        static_cast<unsigned long long>(s1.unparks - s0.unparks));
    if (!parkpool::test::slow_instrumentation()) {
      EXPECT_LT(used, 10.0) << no.name;
    }
    pool.stop();
  }
}

}  // namespace

// White-box tests of private join jobs (WorkerContext::private_jobs, pool_core.hpp): a join nested
// more than kPublicJoinDepth deep keeps b private while no worker is idle, publishes every private
// job when it sees an idle worker, never loses or double-runs one, and leaves none behind after an
// exception. Every wait in these tests is bounded (a failure, not a hang, if the mechanism breaks).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <stdexcept>
#include <thread>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {

using parkpool::join;
using parkpool::PoolOptions;
using parkpool::ThreadPool;
using parkpool::detail::tl_current_worker;
using parkpool::detail::WorkerContext;

using parkpool::test::wait_for;
using parkpool::test::with_threads;

// Runs f() nested inside `levels` joins (each join's b is trivial).
template <class F>
void nested(ThreadPool& pool, int levels, F& f) {
  if (levels == 0) {
    f();
    return;
  }
  join(
      pool, [&] { nested(pool, levels - 1, f); }, [] {});
}

// Keeps the other worker busy (not idle) until `release` is set: posts a task that sets `started`
// and then waits for `release`. Returns whether that task started (bounded by wait_for).
bool occupy_other_worker(ThreadPool& pool, std::atomic<bool>& started, std::atomic<bool>& release) {
  pool.post([&] {
    started.store(true);
    wait_for([&] { return release.load(); });
  });
  return wait_for([&] { return started.load(); });
}

// With no idle worker, a deep join's b stays private; when the other worker then runs out of
// work, this worker's next join publishes it and the idle worker steals and runs it.
TEST(PrivateJoin, DeepJobIsPublishedWhenAWorkerGoesIdle) {
  ThreadPool pool(with_threads(2));
  std::atomic<bool> busy_started{false}, release_busy{false}, stolen{false};
  std::atomic<bool> was_private{false}, ok{false};
  pool.submit([&] {
        const std::thread::id owner = std::this_thread::get_id();
        // Keep the other worker busy (not idle) while the deep job is pushed.
        if (!occupy_other_worker(pool, busy_started, release_busy)) return;
        auto deep = [&] {
          WorkerContext* w = tl_current_worker;
          join(
              pool,
              [&] {
                was_private.store(w->private_count == 1);
                release_busy.store(true);  // the other worker becomes idle
                // Keep joining (trivially) until the private job was stolen.
                ok.store(wait_for([&] {
                  join(
                      pool, [] {}, [] {});
                  return stolen.load();
                }));
              },
              [&] { stolen.store(std::this_thread::get_id() != owner); });
        };
        // The nesting fills the public depths; `deep`'s join is the first private one.
        nested(pool, static_cast<int>(WorkerContext::kPublicJoinDepth), deep);
      })
      .get();
  EXPECT_TRUE(busy_started.load());
  EXPECT_TRUE(was_private.load()) << "the deep job should have been private (no idle worker)";
  EXPECT_TRUE(ok.load()) << "the idle worker never got the private job";
  EXPECT_TRUE(stolen.load());
}

// Publishing keeps the private jobs' order, oldest first (INV-J1): with two deep joins' b private
// when the other worker goes idle, the thief's first steal (the oldest item) is the outer b.
TEST(PrivateJoin, PrivateJobsArePublishedOldestFirst) {
  ThreadPool pool(with_threads(2));
  std::atomic<bool> busy_started{false}, release_busy{false};
  std::atomic<bool> were_private{false}, ok{false};
  std::atomic<int> first_stolen{0};  // 1: the outer b, 2: the inner b
  pool.submit([&] {
        const std::thread::id owner = std::this_thread::get_id();
        if (!occupy_other_worker(pool, busy_started, release_busy)) return;
        auto stolen_as = [&](int which) {
          if (std::this_thread::get_id() == owner) return;
          int none = 0;
          first_stolen.compare_exchange_strong(none, which);
        };
        auto deep = [&] {
          WorkerContext* w = tl_current_worker;
          join(
              pool,
              [&] {
                join(
                    pool,
                    [&] {
                      were_private.store(w->private_count == 2);
                      release_busy.store(true);  // the other worker becomes idle
                      // Keep joining (trivially) until the other worker stole one of them.
                      ok.store(wait_for([&] {
                        join(
                            pool, [] {}, [] {});
                        return first_stolen.load() != 0;
                      }));
                    },
                    [&] { stolen_as(2); });
              },
              [&] { stolen_as(1); });
        };
        nested(pool, static_cast<int>(WorkerContext::kPublicJoinDepth), deep);
      })
      .get();
  EXPECT_TRUE(busy_started.load());
  EXPECT_TRUE(were_private.load()) << "both deep jobs should have been private (no idle worker)";
  EXPECT_TRUE(ok.load()) << "the idle worker never got a private job";
  EXPECT_EQ(first_stolen.load(), 1) << "the thief's first steal was not the oldest (outer) b";
}

// join_depth counts the joins in progress on the worker, not the joins it has made: after many
// finished joins, an outermost join is still depth 1 and its b goes to the deque at once, even
// with no idle worker (the other one is kept busy, so a deep join's b would stay private).
TEST(PrivateJoin, AnOutermostJoinAfterManyJoinsIsStillPublic) {
  ThreadPool pool(with_threads(2));
  std::atomic<bool> busy_started{false}, release_busy{false};
  std::uint32_t depth_in_a = 0;
  std::size_t private_in_a = 99;
  pool.submit([&] {
        if (!occupy_other_worker(pool, busy_started, release_busy)) return;
        for (int i = 0; i < 3 * static_cast<int>(WorkerContext::kPublicJoinDepth); ++i) {
          join(
              pool, [] {}, [] {});
        }
        join(
            pool,
            [&] {
              depth_in_a = tl_current_worker->join_depth;
              private_in_a = tl_current_worker->private_count;
            },
            [] {});
        release_busy.store(true);
      })
      .get();
  EXPECT_TRUE(busy_started.load());
  EXPECT_EQ(depth_in_a, 1u);
  EXPECT_EQ(private_in_a, 0u) << "an outermost join's b was kept private";
}

// A shallow join's b is public at once: an idle worker takes it while a() waits for it.
TEST(PrivateJoin, ShallowJobIsStealableAtOnce) {
  ThreadPool pool(with_threads(2));
  std::atomic<bool> stolen{false}, ok{false};
  pool.submit([&] {
        const std::thread::id owner = std::this_thread::get_id();
        join(
            pool, [&] { ok.store(wait_for([&] { return stolen.load(); })); },
            [&] { stolen.store(std::this_thread::get_id() != owner); });
      })
      .get();
  EXPECT_TRUE(ok.load());
}

// a() throws in a deep join whose b is private: b does not run, the exception propagates, and no
// private job is left behind (the worker asserts that between tasks in debug builds; checked here).
TEST(PrivateJoin, ExceptionLeavesNoPrivateJobBehind) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> b_runs{0};
  std::size_t left = 99;
  bool threw = false;
  pool.submit([&] {
        auto deep = [&] {
          const std::size_t before = tl_current_worker->private_count;
          try {
            join(
                pool, [&]() -> int { throw std::runtime_error("a"); },
                [&] {
                  b_runs.fetch_add(1);
                  return 0;
                });
          } catch (const std::runtime_error&) {
            threw = true;
          }
          left = tl_current_worker->private_count - before;
        };
        nested(pool, static_cast<int>(WorkerContext::kPublicJoinDepth) + 2, deep);
      })
      .get();
  EXPECT_TRUE(threw);
  EXPECT_EQ(b_runs.load(), 0);
  EXPECT_EQ(left, 0u);
}

// A TaskGroup inside deep joins: run() publishes the enclosing joins' private jobs first (INV-J1),
// so wait() runs the group's task (the newest) and no b runs twice or is lost; every join still
// returns the right results.
TEST(PrivateJoin, WaitingInsideADeepJoinRunsPrivateJobsOnce) {
  ThreadPool pool(with_threads(1));
  std::atomic<int> b_runs{0};
  long result = 0;
  pool.submit([&] {
        std::function<long(int)> rec = [&](int depth) -> long {
          if (depth == 0) {
            parkpool::TaskGroup g(pool);
            std::atomic<long> x{0};
            g.run([&] { x.store(1); });
            g.wait();  // one worker: it runs g's task itself
            return x.load();
          }
          auto [a, b] = join(
              pool, [&] { return rec(depth - 1); },
              [&] {
                b_runs.fetch_add(1);
                return 1L;
              });
          return a + b;
        };
        result = rec(static_cast<int>(WorkerContext::kPublicJoinDepth) + 6);
      })
      .get();
  EXPECT_EQ(b_runs.load(), static_cast<int>(WorkerContext::kPublicJoinDepth) + 6);
  EXPECT_EQ(result, 1 + static_cast<long>(WorkerContext::kPublicJoinDepth) + 6);
}

// take_back() takes the newest private job back only if it is this join's own. While a() waits
// (a TaskGroup wait inside a() of two nested private joins, with the other worker busy, so no
// idle capacity), the worker runs its newest private job: the inner join's own b. Back in that
// join, the private job on top is then the enclosing join's; taking it instead would run the
// inner b twice and lose the outer one, whose join would then wait forever. Bounded: a join that
// never returns ends the process after 30 s with a message instead of hanging it.
TEST(PrivateJoin, AJobRunWhileAWaitsIsNotTakenBackAgain) {
  ThreadPool pool(with_threads(2));
  parkpool::TaskGroup g(pool);  // constructed off the pool: no owner, a plain shared count
  std::atomic<bool> busy_started{false}, release_busy{false}, t_counted{false};
  std::atomic<bool> inner_was_private{false};
  std::atomic<int> inner_b_runs{0}, outer_b_runs{0};
  auto f = pool.submit([&] {
    pool.post([&] {  // taken by the other worker, which stays busy until released
      pool.post([&] { t_counted.store(true); });  // U: runs after T (own deque: LIFO)
      g.run([] {});                               // T: the group's only task
      busy_started.store(true);
      wait_for([&] { return release_busy.load(); });
    });
    if (!wait_for([&] { return busy_started.load(); })) return;
    auto deep = [&] {
      join(
          pool,
          [&] {
            join(
                pool,
                [&] {
                  inner_was_private.store(tl_current_worker->private_count == 2);
                  g.wait();  // T is pending: runs the newest private job, the inner b
                },
                [&] {
                  inner_b_runs.fetch_add(1);
                  release_busy.store(true);
                  // Until T has run and counted down: then g.wait() ends without taking the
                  // outer b too.
                  wait_for([&] { return t_counted.load(); });
                });
          },
          [&] { outer_b_runs.fetch_add(1); });
    };
    // The nesting fills the public depths; both of `deep`'s joins are private.
    nested(pool, static_cast<int>(WorkerContext::kPublicJoinDepth), deep);
  });
  if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    std::fprintf(stderr,
                 "PrivateJoin.AJobRunWhileAWaitsIsNotTakenBackAgain: the joins did not return "
                 "within 30 s (inner b ran %d times, outer b %d): a private job was lost\n",
                 inner_b_runs.load(), outer_b_runs.load());
    std::fflush(stderr);
    std::_Exit(1);
  }
  f.get();
  EXPECT_TRUE(busy_started.load());
  EXPECT_TRUE(inner_was_private.load()) << "both deep jobs should have been private";
  EXPECT_EQ(inner_b_runs.load(), 1);
  EXPECT_EQ(outer_b_runs.load(), 1);
}

// More nesting than the private array holds: the overflow goes to the deque; results stay right.
TEST(PrivateJoin, DeeperThanThePrivateCapacity) {
  ThreadPool pool(with_threads(2));
  std::function<long(ThreadPool&, int)> chain = [&](ThreadPool& p, int n) -> long {
    if (n == 0) return 0;
    auto [a, b] = join(
        p, [&] { return chain(p, n - 1); }, [] { return 1L; });
    return a + b;
  };
  const int depth = static_cast<int>(WorkerContext::kPrivateCap) * 4;
  EXPECT_EQ(pool.submit([&] { return chain(pool, depth); }).get(), depth);
}

}  // namespace

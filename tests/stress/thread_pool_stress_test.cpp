// Stress: submitters racing shutdown (every task either ran exactly once or its call threw
// pool_closed), and a seeded randomized operation sequence mixing post, submit, TaskGroup, join,
// parallel_for and shutdown from several threads, and trees of owner-counted TaskGroups waited by
// their owners and by a foreign thread. Bounded in rounds and wall time.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "parkpool/thread_pool.hpp"
#include "parkpool_test.hpp"
#include "pool_test.hpp"

namespace {

using namespace std::chrono_literals;
using parkpool::PoolOptions;
using parkpool::ThreadPool;

using parkpool::test::with_threads;

// Each submitter owns a slot array: slot k counts how often the k-th accepted task ran.
struct Slots {
  explicit Slots(std::size_t n) : ran(n) {}
  std::vector<std::atomic<std::uint32_t>> ran;
  std::size_t accepted = 0;  // written by the owning submitter only
};

TEST(ThreadPoolStress, EightSubmittersRaceShutdownAndNothingIsLost) {
  constexpr std::size_t kSubmitters = 8;
  const std::size_t rounds = parkpool::test::scaled(60, 2, 6);
  const std::size_t per = parkpool::test::scaled(20000, 10, 500);
  parkpool::test::TimeBudget budget(120s);
  for (std::size_t round = 0; round < rounds && !budget.exhausted(); ++round) {
    ThreadPool pool(with_threads(2));
    std::vector<Slots> slots;
    slots.reserve(kSubmitters);
    for (std::size_t s = 0; s < kSubmitters; ++s) slots.emplace_back(per);
    std::atomic<std::size_t> total_accepted{0};
    std::barrier start(kSubmitters + 1);
    std::vector<std::thread> ts;
    for (std::size_t s = 0; s < kSubmitters; ++s) {
      ts.emplace_back([&, s] {
        Slots& my = slots[s];
        start.arrive_and_wait();
        for (std::size_t k = 0; k < per; ++k) {
          auto* cell = &my.ran[k];
          try {
            switch (k % 3) {
              case 0:
                pool.post([cell] { cell->fetch_add(1, std::memory_order_relaxed); });
                break;
              case 1:
                (void)pool.submit([cell] { cell->fetch_add(1, std::memory_order_relaxed); });
                break;
              default:
                // A task that spawns: the parent is the accepted task; its child runs on a worker,
                // which may post even while shutdown drains.
                pool.post([cell, &pool] {
                  pool.post([cell] { cell->fetch_add(1, std::memory_order_relaxed); });
                });
                break;
            }
          } catch (const parkpool::pool_closed&) {
            break;  // closed: nothing more is accepted, and this call accepted nothing
          }
          my.accepted = k + 1;
          total_accepted.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    start.arrive_and_wait();
    // Shut down once a round-dependent amount of work was accepted (varies the race point).
    const std::size_t target = (round * 7919) % (kSubmitters * per / 2);
    while (total_accepted.load(std::memory_order_relaxed) < target) std::this_thread::yield();
    pool.shutdown();
    for (auto& t : ts) t.join();
    // shutdown() has returned: every accepted task has run, exactly once; nothing else ran.
    for (std::size_t s = 0; s < kSubmitters; ++s) {
      for (std::size_t k = 0; k < per; ++k) {
        const std::uint32_t expect = k < slots[s].accepted ? 1u : 0u;
        ASSERT_EQ(slots[s].ran[k].load(), expect)
            << "round " << round << " submitter " << s << " task " << k << " accepted "
            << slots[s].accepted;
      }
    }
    const auto st = pool.stats();
    EXPECT_EQ(st.tasks_accepted, st.total.tasks_run + st.total.tasks_cancelled);
  }
}

// Seeded random mix of operations from several threads; one of them shuts the pool down at a
// random step. Invariant checked: an operation that returned ran all its work exactly once; an
// operation that threw pool_closed ran none of it.
TEST(ThreadPoolStress, RandomizedOperationSequences) {
  const std::size_t seeds = parkpool::test::scaled(300, 3, 20);
  parkpool::test::TimeBudget budget(150s);
  for (std::size_t seed = 1; seed <= seeds && !budget.exhausted(); ++seed) {
    const std::size_t threads = 1 + seed % 4;
    ThreadPool pool(with_threads(threads));
    constexpr std::size_t kActors = 4;
    constexpr std::size_t kSteps = 60;
    std::atomic<std::uint64_t> expected{0}, ran{0};
    std::barrier start(kActors);
    std::vector<std::thread> ts;
    const std::size_t shutdown_actor = seed % kActors;
    const std::size_t shutdown_step = (seed * 37) % kSteps;
    for (std::size_t a = 0; a < kActors; ++a) {
      ts.emplace_back([&, a] {
        std::mt19937 rng(static_cast<std::uint32_t>(seed * 1000 + a));
        std::vector<std::future<void>> futures;
        start.arrive_and_wait();
        for (std::size_t step = 0; step < kSteps; ++step) {
          if (a == shutdown_actor && step == shutdown_step) pool.shutdown();
          try {
            switch (rng() % 6) {
              case 0: {  // post
                pool.post([&] { ran.fetch_add(1); });
                expected.fetch_add(1);
                break;
              }
              case 1: {  // submit
                futures.push_back(pool.submit([&] { ran.fetch_add(1); }));
                expected.fetch_add(1);
                break;
              }
              case 2: {  // TaskGroup with nested runs; each run() either accepted or threw
                parkpool::TaskGroup g(pool);
                const int n = static_cast<int>(rng() % 20);
                for (int i = 0; i < n; ++i) {
                  g.run([&] {
                    ran.fetch_add(1);
                    g.run([&] { ran.fetch_add(1); });  // from a worker: always accepted
                    expected.fetch_add(1);
                  });
                  expected.fetch_add(1);
                }
                g.wait();
                break;
              }
              case 3: {  // join, nested
                auto r = parkpool::join(
                    pool,
                    [&] {
                      return parkpool::join(
                                 pool, [&] { return 1; }, [&] { return 2; })
                          .second;
                    },
                    [&] { return 3; });
                ran.fetch_add(static_cast<std::uint64_t>(r.first + r.second));  // 2 + 3
                expected.fetch_add(5);
                break;
              }
              case 4: {  // parallel_for
                const int n = static_cast<int>(rng() % 500);
                std::atomic<int> hits{0};
                parkpool::parallel_for(
                    pool, 0, n, [&](int) { hits.fetch_add(1); },
                    static_cast<std::size_t>(rng() % 16));
                ran.fetch_add(static_cast<std::uint64_t>(hits.load()));
                expected.fetch_add(static_cast<std::uint64_t>(n));
                break;
              }
              default: {  // a task that spawns from the worker and waits on it (helping)
                futures.push_back(pool.submit([&] {
                  auto inner = parkpool::join(
                      pool, [&] { ran.fetch_add(1); }, [&] { ran.fetch_add(1); });
                  (void)inner;
                }));
                expected.fetch_add(2);
                break;
              }
            }
          } catch (const parkpool::pool_closed&) {
            // Accepted nothing (for TaskGroup: only the runs that threw; the earlier ones count).
          }
        }
        for (auto& f : futures) f.get();
      });
    }
    for (auto& t : ts) t.join();
    pool.shutdown();
    EXPECT_EQ(ran.load(), expected.load()) << "seed " << seed << " threads " << threads;
    const auto st = pool.stats();
    EXPECT_EQ(st.tasks_accepted, st.total.tasks_run + st.total.tasks_cancelled) << "seed " << seed;
  }
}

// TaskGroups constructed on workers, so each is counted by its owner worker without RMWs
// (GroupLatch): a tree where every node run()s three children into its own group and waits. Thieves
// take children (their completions make the shared count negative), owners sleep while their
// children run elsewhere (fold, then the last count_down wakes them), and every child also run()s
// one extra task into its parent's group from wherever it runs (a run() off the owner). A wait
// that returned early would return a partial sum, or let a task touch a dead group (ASAN/TSAN).
void run_children(ThreadPool& pool, parkpool::TaskGroup& g, long (&parts)[3], int depth,
                  std::atomic<long>& extra);
// A node and its three subtrees, once the node's group has been waited for.
long node_count(const long (&parts)[3]) { return 1 + parts[0] + parts[1] + parts[2]; }

long group_tree(ThreadPool& pool, int depth, std::atomic<long>& extra) {
  if (depth == 0) return 1;
  parkpool::TaskGroup g(pool);
  long parts[3] = {0, 0, 0};
  run_children(pool, g, parts, depth, extra);
  g.wait();
  return node_count(parts);
}

void run_children(ThreadPool& pool, parkpool::TaskGroup& g, long (&parts)[3], int depth,
                  std::atomic<long>& extra) {
  for (int i = 0; i < 3; ++i) {
    g.run([&pool, &g, &parts, &extra, depth, i] {
      parts[i] = group_tree(pool, depth - 1, extra);
      // relaxed: read only after the root's wait, whose acquire sees every completion (and so
      // every increment) of the tree's groups.
      g.run([&extra] { extra.fetch_add(1, std::memory_order_relaxed); });
    });
  }
}

TEST(ThreadPoolStress, OwnerCountedTaskGroupTreesCountEveryTask) {
  constexpr int kDepth = 6;                   // 1093 nodes, 1092 extra runs
  constexpr long kNodes = (729 * 3 - 1) / 2;  // 3^0 + ... + 3^6
  const std::size_t rounds = parkpool::test::scaled(300, 10, 30);
  parkpool::test::TimeBudget budget(60s);
  for (std::size_t threads : {2u, 3u, 8u}) {
    ThreadPool pool(with_threads(threads));
    for (std::size_t r = 0; r < rounds && !budget.exhausted(); ++r) {
      std::atomic<long> extra{0};
      long nodes = 0;
      if (r % 2 == 0) {
        // The whole tree on the pool: every wait is its owner's (exact, woken by the last task).
        nodes = pool.submit([&] { return group_tree(pool, kDepth, extra); }).get();
      } else {
        // The root group is constructed on a worker (its owner) and waited by this thread: the
        // foreign wait (done_snapshot polling) against owner counts, thieves and extra run()s.
        long parts[3] = {0, 0, 0};
        std::unique_ptr<parkpool::TaskGroup> root =
            pool.submit([&] {
                  auto g = std::make_unique<parkpool::TaskGroup>(pool);
                  run_children(pool, *g, parts, kDepth, extra);
                  return g;
                })
                .get();
        root->wait();
        nodes = node_count(parts);
      }
      ASSERT_EQ(nodes, kNodes) << threads << " workers, round " << r;
      // Every extra task belongs to a group whose wait() returned before the root's did.
      ASSERT_EQ(extra.load(std::memory_order_relaxed), kNodes - 1) << threads << " workers";
    }
    pool.shutdown();  // quiescent: every task's statistics are counted
    const parkpool::PoolStats st = pool.stats();
    EXPECT_EQ(st.tasks_accepted, st.total.tasks_run + st.total.tasks_cancelled);
  }
}

// Repeated construction and destruction racing the workers' startup and first sleep.
TEST(ThreadPoolStress, CreateSubmitDestroyLoop) {
  const std::size_t rounds = parkpool::test::scaled(2000, 20, 100);
  parkpool::test::TimeBudget budget(60s);
  for (std::size_t r = 0; r < rounds && !budget.exhausted(); ++r) {
    std::atomic<int> n{0};
    {
      ThreadPool pool(with_threads(1 + r % 3));
      for (int i = 0; i < static_cast<int>(r % 5); ++i) pool.post([&] { n.fetch_add(1); });
    }
    ASSERT_EQ(n.load(), static_cast<int>(r % 5));
  }
}

}  // namespace

// Relacy model of the pool's final drain (PoolCore::worker_main in pool/src/thread_pool.cpp, after
// shutdown() set draining_): a worker leaves only when it reads drain_idle_ == the number of
// workers; a counted worker leaves the count (fetch_sub) *before* it looks for a task, and
// re-enters it (fetch_add) when find_task() found none.
//
// What is modelled, with the production orders:
//   - one Chase-Lev deque per worker: the deque of chase_lev_model.hpp, the one chase_lev_model.cpp
//     checks (push, pop with its empty fast path, D3 and the last-item CAS D4, steal with D1', D6,
//     D5 and D4, empty_hint()); rings of capacity 4, which no suite wraps (chase_lev_model's
//     reader[] witness of D1 is sound only where no thief's CAS can lose before a wrapping put,
//     which the drain's thieves can);
//   - find_task(): own pop(), then find_task_slow()'s steal attempts on every other worker from a
//     start Relacy chooses (next_random() % n), at most 4 attempts per victim while steal() says
//     retry, the next victim on empty; each attempt runs steal()'s seq_cst fence D6;
//   - the drain loop as thread_pool.cpp has it: the seq_cst load of drain_idle_ (the exit test),
//     any_work() (empty_hint() of every deque: relaxed loads), the drain backoff as rl::yield,
//     the fetch_sub before find_task() and the fetch_add after it found nothing, both seq_cst;
//   - tasks: task 1 is in worker 0's deque when the drain starts (pushed before the threads start,
//     as a task pushed before shutdown); a task, when it runs, pushes its children onto the
//     running worker's own deque (a running task that pushes: what the count is for). A task's
//     payload is written by its pusher and asserted by its runner (a missing publication is a
//     Relacy data race or a wrong value).
// The properties, on ghost state (plain ints, not rl::var: Relacy runs one thread at a time, so
// they follow the schedule and are invisible to the memory model): no task is taken twice (INV-1,
// asserted at each take); when a worker leaves, no task is in a deque (pushed, not yet taken) and
// no worker holds one (taken, not finished): "no worker leaves while another holds or can still
// find a task" (else, with the others gone, a task that blocks on one it posted hangs shutdown():
// the bug of 2026-12-06); in after(), once every worker has left, every task of the suite was
// pushed and ran exactly once. A worker that spins forever (the count never reads "all idle") is
// Relacy's livelock (execution_depth_limit).
// The suites reach the case the count is for: a planted assertion (not kept) that no other worker
// holds a task when a worker counts itself fails in both (two: iteration 126,354; three: 2).
//
// What is left out: the injector (closed and, here, empty: pop_injector() finds nothing; the real
// drain also takes the external tasks left in it, under its head mutex after relaxed pre-checks:
// see "The relaxed count" below), the private join jobs (only their owner runs them),
// steal_more()'s batch (it needs kBatchFrom = 64 visible items), ring growth (chase_lev_model's
// grow suite), the inline slot, the every-64th injector poll, the idle coordinator before the drain
// (idle_model), the cache flush and on_thread_stop after it, workers whose thread did not start
// (the constructor's catch counts them), and the backoff's sleeps (an rl::yield instead: it lets
// another thread run and makes the spinning thread's relaxed loads see the newest stores, as time
// does).
//
// The relaxed count (by hand: `drain_model relaxed_two`, `relaxed_three`; not registered).
// The comment at the drain_idle_ load argued that the RMWs and the load must be seq_cst: B leaves
// the count (Rb), then steals from C (seq_cst CAS on C's top_); C's pop sees the steal through a
// relaxed read of top_, C's steal attempts run D6, then C counts itself (Rc); with relaxed RMWs Rc
// could precede Rb in the count's modification order. Relacy passes both suites with all three
// operations relaxed (two: 1,159,564 schedules, 5.3 s; three: 1,000,000 random schedules, 7.4 s),
// and cannot do otherwise: it executes one operation at a time, a load reads only stores already
// executed and an RMW the newest value, so the count's modification order is the execution order
// of its RMWs; Rc before Rb there, with Rb before the CAS, the CAS before C's read of top_ (which
// reads it) and that read before Rc, is a cycle. The outcome feared is load buffering (Rb reads
// from Rc; po, rf, po back to Rc), which Relacy never produces. So this model can show neither
// that seq_cst is needed nor that relaxed suffices. By the C++20 rules it is not needed on the
// deque path: [atomics.order] p4.4 with M = drain_idle_, A = Rc coherence-ordered before B = Rb,
// X = C's D6 fence (sequenced before Rc) and Y = the D6 fence of B's successful steal (sequenced
// after Rb) puts X before Y in S; Y precedes B's CAS in S (sequenced before it, both seq_cst);
// the CAS precedes X in S (p4.2: C's read of top_ is coherence-ordered after the CAS and sequenced
// before X). A cycle: the deque's own fences forbid the outcome whatever the count's orders. (If C
// learns of the steal by losing its last-item CAS to B's, that CAS is seq_cst and sequenced before
// X: the same.) The argument needs a seq_cst fence between B's decrement and its take; the
// injector path has none (B's own pop may take the fast path, without D3; the injector's pop is a
// mutex and relaxed stores), and there the seq_cst RMWs do not help either (C sees the empty
// injector through relaxed loads, not through a seq_cst operation): not settled here.
//
// Variants (argv[1]):
//   two    2 workers; task 1 in worker 0's deque pushes tasks 2 and 3 (two items in one deque:
//          the owner's pop races a thief's steals). The production orders.
//   three  3 workers; task 1 in worker 0's deque pushes task 2; the victim order of
//          find_task_slow() is Relacy's choice. The production orders.
//   b1  two with the drain until 2026-12-06 (66688a8..e141b62): a worker leaves the count only
//       after find_task() returned a task and tests the count after each empty find_task(). A
//       counted worker steals a task while still counted; the robbed owner pops nothing, counts
//       itself, reads "all idle" and leaves while the thief holds the task (the leave assert)
//   b2  three with that drain: the same, with three workers
//   b3  two where a worker leaves as soon as its find_task() finds nothing (no count: what the
//       comment's first sentence rules out): it leaves while a task can still be found
//   b4  two with pop()'s seq_cst fence D3 removed: the owner and a thief take the same task
//   b5  two with the fetch_sub deleted (a counted worker looks for a task still counted): a
//       counted worker that any_work() sends looking (in Relacy's first failure, on a stale top_)
//       and finds nothing counts itself a second time; it reads "all idle" (2) and leaves while
//       the other worker has not counted itself, which then reads 3 for ever (Relacy's livelock:
//       shutdown() would hang)
//   b6  two with steal()'s seq_cst fence D6 removed: a task taken twice
// By hand only (the relaxed count; see above: Relacy passes them):
//   relaxed_two, relaxed_three   two / three with both RMWs and the load on drain_idle_ relaxed
//
// Search: two runs every schedule with at most 3 preemptions (rl::sched_bound: 1 -> 653
// schedules, 2 -> 32,718, 3 -> 1,110,348; 4 not tried: each bound multiplied the count by 34 to
// 50); three runs 1,000,000 random schedules (random_params): its bounded tree explodes with three
// spinning workers (bound 1: 1,141,779 schedules, 9.8 s; bound 2 stopped by hand past 36 million;
// b2 at bound 1 was not rejected within 100 s, 10.6 million schedules, the random search rejects
// it at once).
// DRAIN_MODEL_BOUND=<n> (a bounded search, for either suite) and DRAIN_MODEL_ITERATIONS=<n> (the
// random search's length) override them. Measured on this 2-core VM on 2026-12-07, with a load
// of ~4 from other work: one variant at a time, two 5.1 s, three 7.8 s; in `ctest -L model -j2`
// two 11.7 s and three 29.6 s with 2,000,000 schedules, halved since. Every broken variant is
// rejected in 0.3 s or less: b1 at schedule 32,581 (it needs 3 preemptions), b2 at random
// schedule 12,426, b3 at 419, b4 24,197, b5 4,296, b6 27,240.
// Usage: drain_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: two three
// PARKPOOL_MODEL_BROKEN: b1 b2 b3 b4 b5 b6
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include "chase_lev_model.hpp"
#include "model_params.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using parkpool::model::Deque;
using parkpool::model::Steal;

enum class Drain {
  counted_before_find,  // thread_pool.cpp: fetch_sub before find_task(), fetch_add after none
  counted_after_find,   // b1, b2: the drain until 2026-12-06 (fetch_sub after a task was found)
  leave_when_empty,     // b3: leave when the own find_task() found nothing
};

struct Config {
  Drain drain = Drain::counted_before_find;
  rl::memory_order count_rmw = rl::mo_seq_cst;   // the fetch_sub and the fetch_add
  rl::memory_order count_load = rl::mo_seq_cst;  // the exit test's load
  bool leave_count = true;                       // the fetch_sub; b5: false (deleted)
  bool pop_fence = true;                         // D3; b4: false
  bool steal_fence = true;                       // D6; b6: false
};
Config g_cfg;

constexpr int kMaxWorkers = 3;
constexpr int kMaxTasks = 3;  // tasks are 1..kMaxTasks; 0 = nothing
constexpr int kCapacity = 4;  // each deque's ring: no suite wraps it (see the header)

// A suite: how many workers, and the chain of tasks (child[t]: the task t pushes when it runs).
struct Chain {
  int tasks;                    // 1..tasks, all of which must run
  int child[kMaxTasks + 1][2];  // child[t]: pushed in this order, 0 = none
};

template <unsigned N, const Chain& C>
struct DrainSuite : rl::test_suite<DrainSuite<N, C>, N> {
  Deque q[N];
  rl::atomic<unsigned> drain_idle;               // PoolCore::drain_idle_
  rl::var<int> payload[kMaxTasks + 1];           // written by the pusher before push(t)
  rl::var<int> ran[kMaxWorkers][kMaxTasks + 1];  // ran[w][t], written only by worker w
  // Ghost state (plain ints, not rl::var: the schedule's order, invisible to the memory model).
  int in_deque = 0;                // pushed and not yet taken
  int held[kMaxWorkers] = {};      // taken by worker w and not finished
  int pushed[kMaxTasks + 1] = {};  // pushes of task t
  int taken[kMaxTasks + 1] = {};   // takes of task t (pop or steal)

  void before() {
    for (Deque& d : q) d.init(kCapacity);
    drain_idle.store(0, rl::mo_relaxed, $);
    for (auto& p : payload) p($) = 0;
    for (auto& row : ran) {
      for (auto& c : row) c($) = 0;
    }
    in_deque = 0;
    for (int& h : held) h = 0;
    for (int& p : pushed) p = 0;
    for (int& k : taken) k = 0;
    push(0, 1);  // task 1, pushed by worker 0 before the drain
  }

  void push(unsigned w, int t) {
    payload[t]($) = 10 * t;
    ++in_deque;
    ++pushed[t];
    q[w].push(t);
  }
  // The take's linearization point (pop's return, steal's CAS): ghost bookkeeping only.
  int took(unsigned w, int t) {
    RL_ASSERT(t >= 1 && t <= C.tasks);  // never a slot nobody wrote
    RL_ASSERT(taken[t] == 0);           // INV-1: never a task taken twice
    ++taken[t];
    --in_deque;
    ++held[w];
    return t;
  }
  // WorkerContext::find_task(): own pop(), then find_task_slow() (the injector is empty).
  int find_task(unsigned me) {
    if (const int t = q[me].pop(); t != 0) return took(me, t);
    if (N < 2) return 0;
    const unsigned start = N == 2 ? 0 : rl::rand(N);  // next_random() % n
    for (unsigned k = 0; k < N; ++k) {
      const unsigned v = (start + k) % N;
      if (v == me) continue;
      for (int attempt = 0; attempt < 4; ++attempt) {
        int t = 0;
        const Steal r = q[v].steal(t);
        if (r == Steal::success) return took(me, t);
        if (r == Steal::empty) break;
      }
    }
    return 0;
  }
  // t->fn(t, true): the task reads its payload, counts its run, pushes its children.
  void run(unsigned me, int t) {
    RL_ASSERT(payload[t]($) == 10 * t);
    ran[me][t]($) = ran[me][t]($) + 1;
    for (const int c : C.child[t]) {
      if (c != 0) push(me, c);
    }
    --held[me];
  }
  // WorkerContext::any_work() without the injector: empty_hint() of every deque.
  bool any_work() {
    for (Deque& d : q) {
      if (!d.empty_hint()) return true;
    }
    return false;
  }
  // The worker leaves the drain: nothing may be left to find or held by another worker.
  void leave(unsigned me) {
    (void)me;
    RL_ASSERT(in_deque == 0);  // a task still in a deque: nobody may be left to take it
    for (unsigned w = 0; w < N; ++w) RL_ASSERT(held[w] == 0);  // a task still running elsewhere
  }
  bool all_idle() { return drain_idle.load(g_cfg.count_load, $) == N; }

  void thread(unsigned me) {
    switch (g_cfg.drain) {
      case Drain::counted_before_find:
        drain(me);
        break;
      case Drain::counted_after_find:
        old_drain(me);
        break;
      case Drain::leave_when_empty:
        while (const int t = find_task(me)) run(me, t);
        leave(me);
        break;
    }
  }

  // PoolCore::worker_main's drain loop.
  void drain(unsigned me) {
    bool counted = false;
    for (;;) {
      if (counted) {
        if (all_idle()) break;
        if (!any_work()) {
          rl::yield(1, $);  // drain_backoff()
          continue;
        }
        if (g_cfg.leave_count) drain_idle.fetch_sub(1, g_cfg.count_rmw, $);
        counted = false;
      }
      if (const int t = find_task(me)) {
        run(me, t);
        continue;
      }
      drain_idle.fetch_add(1, g_cfg.count_rmw, $);
      counted = true;
    }
    leave(me);
  }

  // The drain until 2026-12-06 (66688a8 to e141b62).
  void old_drain(unsigned me) {
    bool counted = false;
    for (;;) {
      if (const int t = find_task(me)) {
        if (counted) {
          drain_idle.fetch_sub(1, g_cfg.count_rmw, $);
          counted = false;
        }
        run(me, t);
        continue;
      }
      if (!counted) {
        drain_idle.fetch_add(1, g_cfg.count_rmw, $);
        counted = true;
      }
      if (all_idle()) break;
      rl::yield(1, $);
    }
    leave(me);
  }

  void after() {
    for (int t = 1; t <= C.tasks; ++t) {
      RL_ASSERT(pushed[t] == 1);  // the chain ran to its end
      int n = 0;
      for (unsigned w = 0; w < N; ++w) n += ran[w][t]($);
      RL_ASSERT(n == 1);  // every task ran exactly once
    }
    for (Deque& d : q) RL_ASSERT(d.empty_hint());
  }
};

// two: task 1 (in worker 0's deque) pushes tasks 2 and 3.
constexpr Chain kFork{3, {{0, 0}, {2, 3}, {0, 0}, {0, 0}}};
// three: task 1 (in worker 0's deque) pushes task 2.
constexpr Chain kChain{2, {{0, 0}, {2, 0}, {0, 0}, {0, 0}}};
using Two = DrainSuite<2, kFork>;
using Three = DrainSuite<3, kChain>;

// The searches (the header has the figures): two, every schedule with at most kTwoBound
// preemptions; three, kThreeIterations random schedules. DRAIN_MODEL_BOUND=<n> makes either a
// bounded search with n preemptions; DRAIN_MODEL_ITERATIONS=<n> sets a random search's length.
constexpr unsigned kTwoBound = 3;
constexpr unsigned kThreeIterations = 1000000;

template <class Suite>
bool run(rl::test_params p) {
  if (const char* e = std::getenv("DRAIN_MODEL_BOUND")) {
    p = parkpool::model::bounded_params(static_cast<unsigned>(std::strtoul(e, nullptr, 10)));
  } else if (const char* i = std::getenv("DRAIN_MODEL_ITERATIONS")) {
    p.iteration_count = static_cast<unsigned>(std::strtoul(i, nullptr, 10));
  }
  parkpool::model::g_deque_orders = parkpool::model::DequeOrders{};
  parkpool::model::g_deque_orders.pop_fence = g_cfg.pop_fence;
  parkpool::model::g_deque_orders.steal_fence = g_cfg.steal_fence;
  return rl::simulate<Suite>(p);
}
bool two() { return run<Two>(parkpool::model::bounded_params(kTwoBound)); }
bool three() {
  rl::test_params p = parkpool::model::random_params();
  p.iteration_count = kThreeIterations;
  return run<Three>(p);
}

using Variant = parkpool::model::Variant<Config>;
constexpr Variant kVariants[] = {
    {"two", two, [](Config&) {}},
    {"three", three, [](Config&) {}},
    {"b1", two, [](Config& c) { c.drain = Drain::counted_after_find; }},
    {"b2", three, [](Config& c) { c.drain = Drain::counted_after_find; }},
    {"b3", two, [](Config& c) { c.drain = Drain::leave_when_empty; }},
    {"b4", two, [](Config& c) { c.pop_fence = false; }},
    {"b5", two, [](Config& c) { c.leave_count = false; }},
    {"b6", two, [](Config& c) { c.steal_fence = false; }},
    {"relaxed_two", two,
     [](Config& c) {
       c.count_rmw = rl::mo_relaxed;
       c.count_load = rl::mo_relaxed;
     }},
    {"relaxed_three", three,
     [](Config& c) {
       c.count_rmw = rl::mo_relaxed;
       c.count_load = rl::mo_relaxed;
     }},
};

bool run_model(const std::string& v, int& known) {
  return parkpool::model::run_variant(kVariants, g_cfg, v, known);
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

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
//   - the closed injector (injector.hpp) with the tasks posted from outside before shutdown: they
//     are pushed in before(), which happens before every thread, as close() (G3) and draining_'s
//     release (G4, G5) make every accepted push visible to the drain; so tail_ holds their number
//     and never changes, and the producer side (tail lock, chunks, spare) is left out
//     (injector_model checks it). pop() as the header has it: the lock-free pre-check (relaxed
//     head_, seen_, then tail_), then under head_mutex (a Relacy mutex, as injector_model and
//     idle_model use for a lock: parkpool::Mutex has its own model) head_ and seen_ re-read, the
//     acquire load of tail_ and the store of seen_ when head_ caught up with seen_, the item from
//     the one chunk's slot head_index, head_ stored relaxed; empty_hint() (head_, then tail_);
//   - find_task(): own pop(), then find_task_slow(): pop_injector(), then the steal attempts on
//     every other worker from a start Relacy chooses (next_random() % n), at most 4 attempts per
//     victim while steal() says retry, the next victim on empty; each attempt runs steal()'s
//     seq_cst fence D6. The deque suites (two, three) start with an empty injector: there its
//     pre-check, three loads of values that never change, is left out (points where Relacy could
//     only switch threads; pop_injector() finds nothing, as before the injector was modelled);
//   - the drain loop as thread_pool.cpp has it: the seq_cst load of drain_idle_ (the exit test),
//     any_work() (the injector's empty_hint(), then empty_hint() of every deque: relaxed loads),
//     the drain backoff as rl::yield, the fetch_sub (Rb) before find_task() and the fetch_add
//     (Rc) after it found nothing, both seq_cst, with no fence of their own (774c03b had added
//     two, X after Rb and Y before Rc, for the injector path; this model's extension showed that
//     path does not arise, below, and they were removed again);
//   - tasks: a suite's first tasks are in worker 0's deque (pushed before the threads start, as a
//     task pushed before shutdown) or in the injector; a task, when it runs, pushes its children
//     onto the running worker's own deque (a running task that pushes: what the count is for); a
//     task that pushes nothing reads a relaxed atomic instead (its body: a point where Relacy can
//     switch threads while the task is held; without it such a task is taken and finished with no
//     point in between, and "held" could never be observed for it). A task's payload is written by
//     its pusher (or before the drain, for the injector's) and asserted by its runner (a missing
//     publication is a Relacy data race or a wrong value).
// The properties, on ghost state (plain ints, not rl::var: Relacy runs one thread at a time, so
// they follow the schedule and are invisible to the memory model): no task is taken twice (INV-1,
// asserted at each take: a deque pop, a steal's CAS, an injector pop), and no take returns a slot
// nobody wrote; when a worker leaves, no task is in a deque or in the injector (pushed, not yet
// taken) and no worker holds one (taken, not finished): "no worker leaves while another holds or
// can still find a task" (else, with the others gone, a task that blocks on one it posted hangs
// shutdown(): the bug of 2026-12-06); in after(), once every worker has left, every task of the
// suite was pushed and ran exactly once, and every deque and the injector are empty. A worker that
// spins forever (the count never reads "all idle") is Relacy's livelock (execution_depth_limit).
// The suites reach the case the count is for: a planted assertion (not kept) that no worker that
// had counted itself and left the count holds a task taken from a deque when another worker counts
// itself (Rc) fails in every suite (two: iteration 68,169; three: 502; inj_two: 464,106;
// inj_three: 522,563; without the task body's point it never failed in inj_two or inj_three, whose
// deque tasks push nothing); one that no other worker holds a task taken from the injector when a
// worker counts itself fails in inj_two at 60,387 (the counting worker's pre-check read head_ ==
// seen_ == tail_ after the other's pop) and inj_three at 30. (The earlier plant of 54e3401, any
// task held, failed in two at 126,354 and three at 2.)
//
// The injector path does not arise in the drain. 774c03b argued that a worker B that left the count
// (Rb) and then takes a task T that C's find_task() missed through the injector's relaxed
// pre-check needs fences X (after Rb) and Y (before C's Rc) to be ordered. But B counted
// itself only after its own pop_injector() found the injector empty, and that is exact in the
// drain: tail_'s last value happens before the drain (G3 to G5), so the pre-check's h == tail_
// means every item was popped (head_ only grows), and the locked check is exact; the closed
// injector never fills again. So a worker that has a decrement to make never takes an injector
// task: the model confirms it (an assertion planted at every injector take that the taker never
// counted itself held over inj_two's 2,074,486 schedules and inj_three's 1,000,000, not kept). The
// injector tasks are taken only by workers that never counted themselves, and such a worker is not
// in the count, so nobody reads "all idle" while it holds one. Hence, too, any_work()'s injector
// test cannot matter in the drain: a counted worker saw the injector empty for good
// (any_work_no_injector passes; it is not a bug of the drain, and any_work() serves the idle
// handshake too, idle_model). The remaining path after Rb is a steal, which D6 orders (below).
//
// What is left out: the producer side of the injector and its chunks (above), the private join
// jobs (only their owner runs them), the inline slot (pop_injector() copies an external item
// into it; here an item is the task), steal_more()'s batch (it needs kBatchFrom = 64 visible
// items), ring growth (chase_lev_model's grow suite), the every-64th injector poll in find_task()
// (it only moves pop_injector() before the own deque, on one call in 64), the idle coordinator
// before the drain (idle_model), the cache flush and on_thread_stop after it, workers whose thread
// did not start (the constructor's catch counts them), and the backoff's sleeps (an rl::yield
// instead: it lets another thread run and makes the spinning thread's relaxed loads see the newest
// stores, as time does).
//
// The relaxed count (by hand: `drain_model relaxed_two` etc.; not registered). relaxed_<suite>
// makes both RMWs and the load on drain_idle_ relaxed. Relacy passes all four
// (figures under Search), and cannot do otherwise: it executes one operation at a time, a load
// reads only stores already executed and an RMW the newest value, so the count's modification
// order is the execution order of its RMWs. Take B, which leaves the count (Rb) and then steals
// from C (seq_cst CAS on C's top_), and C, whose pop sees the steal through a relaxed read of top_
// and which then counts itself (Rc): Rc before Rb in the modification order, with Rb before the
// CAS, the CAS before C's read of top_ (which reads it) and that read before Rc, is a cycle in
// Relacy's execution order. The outcome feared is load buffering (Rb reads from Rc; po, rf, po
// back to Rc), which Relacy never produces. So this model can show neither that seq_cst is needed
// nor that it is not. By the C++20 rules the deques' fences suffice on the
// steal path: [atomics.order] p4.4 with M = drain_idle_, A = Rc coherence-ordered before B = Rb,
// X' = C's D6 fence (sequenced before Rc) and Y' = the D6 fence of B's successful steal (sequenced
// after Rb) puts X' before Y' in S; Y' precedes B's CAS in S (sequenced before it, both seq_cst);
// the CAS precedes X' in S (p4.2: C's read of top_ is coherence-ordered after the CAS and sequenced
// before X'). A cycle: the deque's own fences forbid the outcome whatever the count's orders. (If
// C learns of the steal by losing its last-item CAS to B's, that CAS is seq_cst and sequenced
// before X': the same.) The injector path, which no fence of the deques covers, does not arise
// (above).
//
// Variants (argv[1]):
//   two        2 workers; task 1 in worker 0's deque pushes tasks 2 and 3 (two items in one deque:
//              the owner's pop races a thief's steals). The production orders.
//   three      3 workers; task 1 in worker 0's deque pushes task 2; the victim order of
//              find_task_slow() is Relacy's choice. The production orders.
//   inj_two    2 workers; tasks 1 and 2 in the injector, task 1 pushes task 3 onto its runner's
//              deque (two pops race for the injector's items; the child races the other
//              worker's steals). The production orders.
//   inj_three  3 workers; task 1 in the injector pushes task 2. The production orders.
//   b1  two with the drain until 2026-12-06 (66688a8..e141b62): a worker leaves the count only
//       after find_task() returned a task and tests the count after each empty find_task(). A
//       counted worker steals a task while still counted; the robbed owner pops nothing, counts
//       itself, reads "all idle" and leaves while the thief holds the task (the leave assert)
//   b2  three with that drain: the same, with three workers
//   b3  two where a worker leaves as soon as its find_task() finds nothing (no count: what the
//       comment's first sentence rules out): it leaves while a task can still be found or is held
//   b4  two with pop()'s seq_cst fence D3 removed: the owner and a thief take the same task
//   b5  two with the fetch_sub deleted (a counted worker looks for a task still counted): a
//       counted worker that any_work() sends looking and finds nothing counts itself a second
//       time; it reads "all idle" and leaves while the other worker has not counted itself, which
//       then reads 3 for ever (Relacy's livelock: shutdown() would hang)
//   b6  two with steal()'s seq_cst fence D6 removed: a task taken twice
//   b7  inj_two with find_task_slow()'s pop_injector() deleted (the every-64th poll left as the
//       only way in, which this model leaves out): nobody takes the injector's tasks, any_work()
//       keeps sending the counted workers back to a find_task() that never looks there (Relacy's
//       livelock, at the first schedule: shutdown() would spin with the tasks never run)
//   b8  inj_two with the pre-check without `&& h == tail_` (trusting seen_ as if it were tail_):
//       with head_ == seen_ below tail_ (items pushed since the last acquiring pop: here all of
//       them) pop() says empty; the same livelock as b7
//   b9  inj_two with the test under the lock comparing head_ to the pre-check's seen_ instead of
//       a re-load: a stale seen_ (0, after the other worker's pop stored 2) skips the acquire of
//       tail_ and the empty test, and pop() returns the chunk's slot past the last item (the take
//       asserts a slot nobody wrote)
//   b10 inj_two with the pre-check's head_ used under the lock instead of a re-load: after the
//       other worker popped both items, a stale head_ (1) passes the pre-check (seen_ is 2) and,
//       under the lock, skips the empty test (seen_ != 1): the pop takes the slot past the last
//       item (the same assert)
//   b11 inj_three with the drain until 2026-12-06 (b2's drain; found by the random search)
//   b12 inj_two where a worker leaves as soon as its find_task() finds nothing (b3's drain): it
//       leaves while the other holds an injector task
// By hand only (Relacy passes them; see above):
//   relaxed_two, relaxed_three, relaxed_inj_two, relaxed_inj_three   the suite with both RMWs
//       and the load on drain_idle_ relaxed
//   any_work_no_injector (inj_two), any_work_no_injector_three (inj_three)   any_work() without
//       the injector's empty_hint(): not a bug of the drain (above)
//
// Search: two and inj_two run every schedule with at most 3 preemptions (rl::sched_bound; two
// before the injector and the task body's point: 1 -> 653 schedules, 2 -> 32,718, 3 ->
// 1,110,348; 4 not tried: each bound multiplied the count by 34 to 50); three and inj_three run
// 1,000,000 random schedules (random_params): the bounded tree explodes with three spinning
// workers (three at bound 1: 1,141,779 schedules, 9.8 s; bound 2 stopped by hand past 36 million;
// b2 at bound 1 was not rejected within 100 s, 10.6 million schedules, the random search rejects
// it at once).
// DRAIN_MODEL_BOUND=<n> (a bounded search, for any suite) and DRAIN_MODEL_ITERATIONS=<n> (the
// random search's length) override them. Measured on this 2-core VM on 2026-12-07/08 while other
// jobs kept its load at 5 to 7, one variant at a time (user time, then wall time), with 774c03b's
// fences X and Y still in: two 1,347,882 schedules, 7.3 s (22.6 s); inj_two 2,074,486, 13.1 s
// (25.0 s); three 7.4 s (38.6 s); inj_three 8.1 s (13.3 s). Without them, as now: two 1,248,127
// (without the task body's point 1,110,348, the count of 54e3401's two: the same drain), inj_two
// 1,918,090 (9.6 s user, on a loaded machine). By hand: relaxed_two 1,299,550 schedules,
// relaxed_inj_two 1,977,484, any_work_no_injector 1,854,156, the three-worker ones 1,000,000
// each; 6.8 to 10.6 s user each. Every broken variant is rejected within 2 s of user time: b1 at
// schedule 39,429 (it needs 3 preemptions), b2 at random schedule 12,426, b3 at 419, b4 33,051, b5
// 5,740, b6 34,265, b7 and b8 at 1, b9 3,433, b10 6,049, b11 at random schedule 263,244 (2.0 s),
// b12 2,828. Usage: drain_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: two three inj_two inj_three
// PARKPOOL_MODEL_BROKEN: b1 b2 b3 b4 b5 b6 b7 b8 b9 b10 b11 b12
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

// Injector::pop() as injector.hpp has it, or one of the mutations b8..b10 make.
enum class InjectorPop {
  production,
  precheck_seen_only,  // b8: the pre-check without `&& h == tail_`
  locked_stale_seen,   // b9: the test under the lock uses the pre-check's seen_, not a re-load
  locked_stale_head,   // b10: under the lock, the pre-check's head_, not a re-load
};

struct Config {
  Drain drain = Drain::counted_before_find;
  rl::memory_order count_rmw = rl::mo_seq_cst;   // the fetch_sub and the fetch_add
  rl::memory_order count_load = rl::mo_seq_cst;  // the exit test's load
  bool leave_count = true;                       // the fetch_sub; b5: false (deleted)
  bool pop_fence = true;                         // D3; b4: false
  bool steal_fence = true;                       // D6; b6: false
  bool slow_injector = true;      // find_task_slow()'s pop_injector(); b7: false (deleted)
  bool any_work_injector = true;  // any_work()'s injector test; by hand: false
  InjectorPop injector_pop = InjectorPop::production;
};
Config g_cfg;

constexpr int kMaxWorkers = 3;
constexpr int kMaxTasks = 3;       // tasks are 1..kMaxTasks; 0 = nothing
constexpr int kCapacity = 4;       // each deque's ring: no suite wraps it (see the header)
constexpr int kInjectorSlots = 4;  // the injector's one chunk (no suite fills it)

// The closed injector of the drain (injector.hpp): its items were pushed before the drain (in
// before(), which happens before every thread, as close() and the release of draining_ make
// every accepted push visible to the drain), so the producer side is left out: tail_ holds the
// number pushed and never changes. One chunk: head_index is head_chunk_/head_index_ (under
// head_mutex), items[] the chunk's slots (plain memory written by the pushes, read under the
// lock). head_, seen_ and tail_ are atomics with the header's orders.
struct Injector {
  rl::mutex head_mutex;
  rl::var<int> head_index;  // under head_mutex
  rl::var<int> items[kInjectorSlots];
  rl::atomic<unsigned> tail;  // items ever pushed
  rl::atomic<unsigned> head;  // items ever popped: written under head_mutex
  rl::atomic<unsigned> seen;  // the consumers' copy of tail: written under head_mutex

  // push() before the drain, from the constructor's thread: every item, then tail_.
  void init(const int (&pushed)[2]) {
    head_index($) = 0;
    unsigned n = 0;
    for (const int t : pushed) {
      if (t != 0) items[n++]($) = t;
    }
    for (unsigned i = n; i < kInjectorSlots; ++i) items[i]($) = 0;
    tail.store(n, rl::mo_release, $);
    head.store(0, rl::mo_relaxed, $);
    seen.store(0, rl::mo_relaxed, $);
  }

  // Injector::pop(): false when it found the queue empty.
  bool pop(int& out) {
    const InjectorPop bug = g_cfg.injector_pop;
    const unsigned h0 = head.load(rl::mo_relaxed, $);
    const unsigned s0 = seen.load(rl::mo_relaxed, $);
    if (bug == InjectorPop::precheck_seen_only) {
      if (h0 == s0) return false;
    } else if (h0 == s0 && h0 == tail.load(rl::mo_relaxed, $)) {
      return false;
    }
    head_mutex.lock($);
    const unsigned h = bug == InjectorPop::locked_stale_head ? h0 : head.load(rl::mo_relaxed, $);
    const unsigned s = bug == InjectorPop::locked_stale_seen ? s0 : seen.load(rl::mo_relaxed, $);
    if (s == h) {
      const unsigned t = tail.load(rl::mo_acquire, $);
      if (t == h) {
        head_mutex.unlock($);
        return false;
      }
      seen.store(t, rl::mo_relaxed, $);
    }
    const int i = head_index($);
    RL_ASSERT(i < kInjectorSlots);  // never a slot past the chunk
    out = items[i]($);
    head_index($) = i + 1;
    head.store(h + 1, rl::mo_relaxed, $);
    head_mutex.unlock($);
    return true;
  }
  // Injector::empty_hint(): head_ first, then tail_, both relaxed.
  bool empty_hint() {
    const unsigned h = head.load(rl::mo_relaxed, $);
    return tail.load(rl::mo_relaxed, $) == h;
  }
};

// A suite: how many workers, where its first tasks are when the drain starts, and the tasks a
// task pushes (child[t]: the task t pushes onto its runner's deque when it runs).
struct Chain {
  int tasks;                    // 1..tasks, all of which must run
  int deque0[2];                // in worker 0's deque, pushed in this order; 0 = none
  int injector[2];              // in the injector, pushed in this order; 0 = none
  int child[kMaxTasks + 1][2];  // child[t]: pushed in this order, 0 = none
};

template <unsigned N, const Chain& C>
struct DrainSuite : rl::test_suite<DrainSuite<N, C>, N> {
  Deque q[N];
  Injector inj;
  rl::atomic<unsigned> drain_idle;               // PoolCore::drain_idle_
  rl::atomic<int> body;                          // read by a running task (see run())
  rl::var<int> payload[kMaxTasks + 1];           // written by the pusher before push(t)
  rl::var<int> ran[kMaxWorkers][kMaxTasks + 1];  // ran[w][t], written only by worker w
  // Ghost state (plain ints, not rl::var: the schedule's order, invisible to the memory model).
  int in_deque = 0;                // pushed onto a deque and not yet taken
  int in_injector = 0;             // in the injector and not yet popped
  int held[kMaxWorkers] = {};      // taken by worker w and not finished
  int pushed[kMaxTasks + 1] = {};  // pushes of task t (deque or injector)
  int taken[kMaxTasks + 1] = {};   // takes of task t (pop, steal or injector pop)

  void before() {
    for (Deque& d : q) d.init(kCapacity);
    drain_idle.store(0, rl::mo_relaxed, $);
    body.store(0, rl::mo_relaxed, $);
    for (auto& p : payload) p($) = 0;
    for (auto& row : ran) {
      for (auto& c : row) c($) = 0;
    }
    in_deque = 0;
    in_injector = 0;
    for (int& h : held) h = 0;
    for (int& p : pushed) p = 0;
    for (int& k : taken) k = 0;
    for (const int t : C.deque0) {
      if (t != 0) push(0, t);  // pushed by worker 0 before the drain
    }
    for (const int t : C.injector) {
      if (t == 0) continue;
      payload[t]($) = 10 * t;  // posted from outside before shutdown
      ++in_injector;
      ++pushed[t];
    }
    inj.init(C.injector);
  }

  void push(unsigned w, int t) {
    payload[t]($) = 10 * t;
    ++in_deque;
    ++pushed[t];
    q[w].push(t);
  }
  // The take's linearization point (pop's return, steal's CAS, the injector's pop under its
  // lock): ghost bookkeeping only.
  int took(unsigned w, int t, bool from_injector) {
    RL_ASSERT(t >= 1 && t <= C.tasks);  // never a slot nobody wrote
    RL_ASSERT(taken[t] == 0);           // INV-1: never a task taken twice
    ++taken[t];
    --(from_injector ? in_injector : in_deque);
    ++held[w];
    return t;
  }
  // The deque suites (two, three) start with an empty injector; its pre-check would read three
  // constants, each read only a point where Relacy can switch threads: left out there.
  static constexpr bool kInjector = C.injector[0] != 0;
  // WorkerContext::pop_injector().
  int pop_injector(unsigned me) {
    if (!kInjector) return 0;
    int t = 0;
    return inj.pop(t) ? took(me, t, true) : 0;
  }
  // WorkerContext::find_task(): own pop(), then find_task_slow(): the injector, then steals
  // (no private jobs, no every-64th poll: see the header).
  int find_task(unsigned me) {
    if (const int t = q[me].pop(); t != 0) return took(me, t, false);
    if (g_cfg.slow_injector) {
      if (const int t = pop_injector(me)) return t;
    }
    if (N < 2) return 0;
    const unsigned start = N == 2 ? 0 : rl::rand(N);  // next_random() % n
    for (unsigned k = 0; k < N; ++k) {
      const unsigned v = (start + k) % N;
      if (v == me) continue;
      for (int attempt = 0; attempt < 4; ++attempt) {
        int t = 0;
        const Steal r = q[v].steal(t);
        if (r == Steal::success) return took(me, t, false);
        if (r == Steal::empty) break;
      }
    }
    return 0;
  }
  // t->fn(t, true): the task reads its payload, counts its run, pushes its children.
  void run(unsigned me, int t) {
    RL_ASSERT(payload[t]($) == 10 * t);
    // The task's body: a point where Relacy may switch threads while the task is held (a task
    // that pushes has its pushes).
    if (C.child[t][0] == 0) (void)body.load(rl::mo_relaxed, $);
    ran[me][t]($) = ran[me][t]($) + 1;
    for (const int c : C.child[t]) {
      if (c != 0) push(me, c);
    }
    --held[me];
  }
  // WorkerContext::any_work(): the injector's empty_hint(), then every deque's.
  bool any_work() {
    if (kInjector && g_cfg.any_work_injector && !inj.empty_hint()) return true;
    for (Deque& d : q) {
      if (!d.empty_hint()) return true;
    }
    return false;
  }
  // The worker leaves the drain: nothing may be left to find or held by another worker.
  void leave(unsigned me) {
    (void)me;
    RL_ASSERT(in_deque == 0);     // a task still in a deque: nobody may be left to take it
    RL_ASSERT(in_injector == 0);  // a task still in the injector: the same
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
        if (g_cfg.leave_count) drain_idle.fetch_sub(1, g_cfg.count_rmw, $);  // Rb
        counted = false;
      }
      if (const int t = find_task(me)) {
        run(me, t);
        continue;
      }
      drain_idle.fetch_add(1, g_cfg.count_rmw, $);  // Rc
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
    RL_ASSERT(inj.empty_hint());
  }
};

// two: task 1 (in worker 0's deque) pushes tasks 2 and 3.
constexpr Chain kFork{3, {1, 0}, {0, 0}, {{0, 0}, {2, 3}, {0, 0}, {0, 0}}};
// three: task 1 (in worker 0's deque) pushes task 2.
constexpr Chain kChain{2, {1, 0}, {0, 0}, {{0, 0}, {2, 0}, {0, 0}, {0, 0}}};
// inj_two: tasks 1 and 2 in the injector; task 1 pushes task 3 onto its runner's deque.
constexpr Chain kInjFork{3, {0, 0}, {1, 2}, {{0, 0}, {3, 0}, {0, 0}, {0, 0}}};
// inj_three: task 1 in the injector pushes task 2 onto its runner's deque.
constexpr Chain kInjChain{2, {0, 0}, {1, 0}, {{0, 0}, {2, 0}, {0, 0}, {0, 0}}};
using Two = DrainSuite<2, kFork>;
using Three = DrainSuite<3, kChain>;
using InjTwo = DrainSuite<2, kInjFork>;
using InjThree = DrainSuite<3, kInjChain>;

// The searches (the header has the figures): two and inj_two, every schedule with at most
// kTwoBound preemptions; three and inj_three, kThreeIterations random schedules.
// DRAIN_MODEL_BOUND=<n> makes any suite a bounded search with n preemptions;
// DRAIN_MODEL_ITERATIONS=<n> sets a random search's length.
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
template <class Suite>
bool bounded() {
  return run<Suite>(parkpool::model::bounded_params(kTwoBound));
}
template <class Suite>
bool random_search() {
  rl::test_params p = parkpool::model::random_params();
  p.iteration_count = kThreeIterations;
  return run<Suite>(p);
}
bool two() { return bounded<Two>(); }
bool three() { return random_search<Three>(); }
bool inj_two() { return bounded<InjTwo>(); }
bool inj_three() { return random_search<InjThree>(); }

// The relaxed count: both RMWs and the load relaxed.
void relaxed(Config& c) {
  c.count_rmw = rl::mo_relaxed;
  c.count_load = rl::mo_relaxed;
}

using Variant = parkpool::model::Variant<Config>;
constexpr Variant kVariants[] = {
    {"two", two, [](Config&) {}},
    {"three", three, [](Config&) {}},
    {"inj_two", inj_two, [](Config&) {}},
    {"inj_three", inj_three, [](Config&) {}},
    {"b1", two, [](Config& c) { c.drain = Drain::counted_after_find; }},
    {"b2", three, [](Config& c) { c.drain = Drain::counted_after_find; }},
    {"b3", two, [](Config& c) { c.drain = Drain::leave_when_empty; }},
    {"b4", two, [](Config& c) { c.pop_fence = false; }},
    {"b5", two, [](Config& c) { c.leave_count = false; }},
    {"b6", two, [](Config& c) { c.steal_fence = false; }},
    {"b7", inj_two, [](Config& c) { c.slow_injector = false; }},
    {"b8", inj_two, [](Config& c) { c.injector_pop = InjectorPop::precheck_seen_only; }},
    {"b9", inj_two, [](Config& c) { c.injector_pop = InjectorPop::locked_stale_seen; }},
    {"b10", inj_two, [](Config& c) { c.injector_pop = InjectorPop::locked_stale_head; }},
    {"b11", inj_three, [](Config& c) { c.drain = Drain::counted_after_find; }},
    {"b12", inj_two, [](Config& c) { c.drain = Drain::leave_when_empty; }},
    {"relaxed_two", two, relaxed},
    {"relaxed_three", three, relaxed},
    {"relaxed_inj_two", inj_two, relaxed},
    {"relaxed_inj_three", inj_three, relaxed},
    {"any_work_no_injector", inj_two, [](Config& c) { c.any_work_injector = false; }},
    {"any_work_no_injector_three", inj_three, [](Config& c) { c.any_work_injector = false; }},
};

bool run_model(const std::string& v, int& known) {
  return parkpool::model::run_variant(kVariants, g_cfg, v, known);
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

// Relacy model of the IdleCoordinator sleep handshake (pool/SLEEP.md, src/idle.cpp).
//
// The model mirrors src/idle.cpp for one worker that can sleep: the state word (S searching,
// P sleeping), the mutex-protected sleeper set, announce (A1) + re-check (A2), notify (N1/N2) +
// claim (C1), withdraw, found_work (R0), with the same memory orders. The Parker is modelled with
// its own token under a Relacy mutex + condition variable (crossbeam's portable parker), NOT with
// Relacy's futex emulation, whose wait/wake execute a seq_cst fence that would hide a missing fence
// in the protocol. A lost wakeup leaves the worker blocked in park() forever: Relacy reports a
// deadlock. The worker loops like a pool worker (a woken worker is a searcher and looks again).
//
// Variants (argv[1]):
//   v1  handshake, production orderings (relaxed RMWs on state_, seq_cst fences N1 and A1)
//   v2  handshake, TSAN path (N1+N2 one acq_rel RMW on state_, A1 acq_rel RMW, no fences)
//   v3  last searcher: a third thread is searching when the task is published, so notify skips;
//       that searcher then finds other work (R0) and must wake the sleeper or the sleeper's
//       re-check must see the task. Production orderings.
//       The searcher uses found_work(w, has_more): it wakes only if has_more() sees work.
//   v4  v3 on the TSAN path
//   v5  v3 with the unconditional found_work(w) (always wakes the next sleeper)
//   v6  shutdown against an idle worker (set D, then drain under the mutex): the worker returns
//   v7  v6, then the worker calls found_work() (the contract allows it on every task found; the
//       pool's wait_until does it on its way out) and waits again: it must return at once. The
//       drain accounts a popped sleeper like a claim (P-1, S+1), as src/idle.cpp does.
//   b1  v1 with the worker's seq_cst fence (A1) replaced by release/acquire: must fail
//   b2  v1 with the submitter's seq_cst fence (N1) replaced by release/acquire: must fail
//   b3  v3 with the worker's fence replaced by release/acquire: must fail
//   b4  v3 without the fence R1 before has_more(): must fail
//   b5  v6 with the drain before D is set: a worker announcing in between parks forever
//   b6  v7 with the drain subtracting P only (the bug fixed on 2026-11-22): found_work's S-1
//       borrows through P into D, clears it, and the second wait parks forever
// The asymmetric barrier (notify_work_local, SLEEP.md "Asymmetric barrier"): the publisher is a
// working worker whose notify has no fence (L1 is a compiler barrier: nothing to model) and a
// relaxed load (L2); A1 and R1 add the membarrier (H) unless the state word they wrote counts
// every other worker as searching or asleep. membarrier(2) is modelled by what it guarantees:
// the publisher executes a seq_cst fence at some point between the request and the return of
// (H). The publisher polls for a pending request before and after each of its steps (an IPI can
// land between any two instructions) and acknowledges under a Relacy mutex + condvar, through
// which (H) waits; a publisher that has returned acknowledges for good (a thread that is not
// running passed a full barrier when it was switched out). The mutex gives exactly membarrier's
// two orders: what the publisher did before its acknowledgement happens before what (H)'s caller
// does after it, and what that caller did before (H) happens before the publisher's later steps.
//   v8  v1 with the publisher a working worker using notify_work_local (2 workers)
//   v9  v3 likewise (3 workers: the searcher's R1 issues (H) because the publisher works)
//   v10 the searcher itself publishes, with notify_work_local, after its found_work: at the
//       sleeper's A1 it may still be counted as searching, so (H) is skipped by the count and
//       only coherence (its L2 comes after its R0, later than A1 in state_'s order) saves the wake
//   b7  v8 without (H) after A1: must fail
//   b8  v9 without (H) before has_more(): must fail
//   b9  v8 with the count off by one (the sleeper's A1 also counts itself as working, so it
//       believes every other worker idle and skips (H)): must fail
// Usage: idle_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: v1 v2 v3 v4 v5 v6 v7 v8 v9 v10
// PARKPOOL_MODEL_BROKEN: b1 b2 b3 b4 b5 b6 b7 b8 b9
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Config {
  bool rmw_handshake = false;                        // the TSAN path
  bool worker_fence = true;                          // the seq_cst fence after A1
  bool submit_fence = true;                          // N1
  rl::memory_order announce_mo = rl::mo_relaxed;     // A1 (production: relaxed + fence)
  rl::memory_order notify_load_mo = rl::mo_relaxed;  // N2
  bool searcher_has_more = true;                     // the searcher uses found_work(w, has_more)
  bool r1_fence = true;                              // the seq_cst fence before has_more() (R1)
  bool drain_before_flag = false;     // broken shutdown: drains sleepers before setting D
  bool drain_counts_searcher = true;  // the drain does P-1, S+1 per popped sleeper (a claim)
  bool asymmetric = false;       // the publisher uses notify_work_local with the asymmetric barrier
  unsigned workers = 2;          // N, for (H)'s count
  bool heavy_a1 = true;          // (H) after A1
  bool heavy_r1 = true;          // (H) before has_more()
  unsigned a1_self_working = 0;  // b9: 1 (wrong: the announcing worker is not working)
};
Config g_cfg;

constexpr unsigned kS = 1;         // searching count, bits 0..7
constexpr unsigned kP = 1u << 8;   // sleeping count, bits 8..15
constexpr unsigned kD = 1u << 16;  // shutdown
unsigned searching_of(unsigned v) { return v & 0xffu; }
unsigned sleeping_of(unsigned v) { return (v >> 8) & 0xffu; }

struct Coordinator {
  rl::atomic<unsigned> state;
  rl::atomic<int> queue;        // the pool's queue: number of tasks published (0 or 1)
  rl::mutex sleepers_mutex;     // mutex_ in src/idle.cpp
  rl::atomic<int> in_sleepers;  // slot.in_sleepers (the model has one sleeper-capable worker)
  rl::mutex park_mutex;         // the Parker: token under a mutex + condvar
  rl::condition_variable park_cv;
  rl::var<int> token;
  // membarrier emulation (see the header comment): requests and acknowledgements under mb_mutex.
  rl::mutex mb_mutex;
  rl::condition_variable mb_cv;
  rl::var<int> mb_requested;
  rl::var<int> mb_acked;
  rl::var<int> mb_publisher_gone;
  rl::atomic<int> mb_pending;  // a hint the publisher polls (relaxed): a request may be waiting

  void init(unsigned initial_state) {
    state.store(initial_state, rl::mo_relaxed, $);
    queue.store(0, rl::mo_relaxed, $);
    in_sleepers.store(0, rl::mo_relaxed, $);
    token($) = 0;
    mb_requested($) = 0;
    mb_acked($) = 0;
    mb_publisher_gone($) = 0;
    mb_pending.store(0, rl::mo_relaxed, $);
  }

  // others_working(): the asymmetric barrier is in use and `after` (the value the caller's own
  // RMW wrote) counts a worker besides the caller's `self_working` as working.
  bool others_working(unsigned after, unsigned self_working) {
    return g_cfg.asymmetric &&
           searching_of(after) + sleeping_of(after) + self_working < g_cfg.workers;
  }
  // (H): wait until the publisher has executed a seq_cst fence after this request (or returned).
  void heavy_barrier() {
    mb_mutex.lock($);
    const int ticket = ++mb_requested($);
    mb_pending.store(1, rl::mo_relaxed, $);
    while (mb_acked($) < ticket && mb_publisher_gone($) == 0) mb_cv.wait(mb_mutex, $);
    mb_mutex.unlock($);
  }
  // The publisher: the IPI of a pending (H) may land here.
  void membarrier_point() {
    if (mb_pending.load(rl::mo_relaxed, $) == 0) return;
    mb_mutex.lock($);
    if (mb_acked($) < mb_requested($)) {
      rl::atomic_thread_fence(rl::mo_seq_cst, $);
      mb_acked($) = mb_requested($);
      mb_cv.notify_all($);
    }
    mb_mutex.unlock($);
  }
  void publisher_returns() {
    mb_mutex.lock($);
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    mb_publisher_gone($) = 1;
    mb_cv.notify_all($);
    mb_mutex.unlock($);
  }

  void unpark() {
    park_mutex.lock($);
    token($) = 1;
    park_mutex.unlock($);
    park_cv.notify_one($);
  }
  void park() {
    park_mutex.lock($);
    while (token($) == 0) park_cv.wait(park_mutex, $);
    token($) = 0;
    park_mutex.unlock($);
  }

  // wake_one_slow(): claim (C1) under the mutex, unpark after it. Relaxed like src/idle.cpp.
  void wake_one() {
    bool claimed = false;
    sleepers_mutex.lock($);
    unsigned cur = state.load(rl::mo_relaxed, $);
    while (searching_of(cur) == 0 && sleeping_of(cur) > 0) {
      if (state.compare_exchange_weak(cur, cur - kP + kS, rl::mo_relaxed, $)) {
        claimed = true;
        break;
      }
    }
    if (claimed) in_sleepers.store(0, rl::mo_relaxed, $);
    sleepers_mutex.unlock($);
    if (claimed) unpark();
  }

  // notify_work(), called after the task was published.
  void notify() {
    unsigned cur;
    if (g_cfg.rmw_handshake) {
      cur = state.fetch_add(0, rl::mo_acq_rel, $);
    } else {
      if (g_cfg.submit_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // N1
      cur = state.load(g_cfg.notify_load_mo, $);                           // N2
    }
    if (searching_of(cur) == 0 && sleeping_of(cur) > 0) wake_one();
  }

  // announce_sleep() (A1). False if shutdown was seen under the mutex. `others` as in
  // src/idle.cpp's Announce::others_working.
  bool announce(bool& searching, bool& others) {
    sleepers_mutex.lock($);
    if ((state.load(rl::mo_relaxed, $) & kD) != 0) {
      sleepers_mutex.unlock($);
      return false;
    }
    in_sleepers.store(1, rl::mo_relaxed, $);
    const unsigned delta = searching ? kP - kS : kP;
    searching = false;
    const unsigned after =
        state.fetch_add(delta, g_cfg.rmw_handshake ? rl::mo_acq_rel : g_cfg.announce_mo, $) + delta;
    sleepers_mutex.unlock($);
    if (!g_cfg.rmw_handshake && g_cfg.worker_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);
    others = g_cfg.heavy_a1 && others_working(after, g_cfg.a1_self_working);
    return true;
  }

  // shutdown(): set D (relaxed), then drain the sleepers under the mutex, unpark after it.
  void shutdown() {
    if (!g_cfg.drain_before_flag) state.fetch_or(kD, rl::mo_relaxed, $);
    sleepers_mutex.lock($);
    const bool popped = in_sleepers.load(rl::mo_relaxed, $) != 0;
    if (popped) {
      in_sleepers.store(0, rl::mo_relaxed, $);
      if (g_cfg.drain_counts_searcher) {
        state.fetch_add(kS - kP, rl::mo_relaxed, $);  // unsigned wrap: P-1, S+1 in one RMW
      } else {
        state.fetch_sub(kP, rl::mo_relaxed, $);
      }
    }
    sleepers_mutex.unlock($);
    if (g_cfg.drain_before_flag) state.fetch_or(kD, rl::mo_relaxed, $);
    if (popped) unpark();
  }

  // withdraw(): the re-check saw work.
  void withdraw(bool& searching) {
    sleepers_mutex.lock($);
    if (in_sleepers.load(rl::mo_relaxed, $) != 0) {
      in_sleepers.store(0, rl::mo_relaxed, $);
      state.fetch_add(kS - kP, rl::mo_relaxed, $);
    }
    searching = true;
    sleepers_mutex.unlock($);
  }

  // found_work() (R0) and found_work(w, has_more) (R0, R1 fence, has_more()), as src/idle.cpp.
  void found_work(bool& searching, bool with_has_more = false) {
    if (!searching) return;
    searching = false;
    const unsigned old =
        state.fetch_sub(kS, g_cfg.rmw_handshake ? rl::mo_acq_rel : rl::mo_relaxed, $);
    if (searching_of(old) != 1 || sleeping_of(old) == 0) return;
    if (!with_has_more) {
      wake_one();
      return;
    }
    if (!g_cfg.rmw_handshake && g_cfg.r1_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);
    // A has_more() that says false is repeated after (H) if another worker works (we do, from R0).
    bool more = has_work();
    if (!more && g_cfg.heavy_r1 && others_working(old - kS, 1)) {
      heavy_barrier();
      more = has_work();
    }
    if (more) wake_one();
  }

  // has_work(): the pool reads its queue with acquire.
  bool has_work() { return queue.load(rl::mo_acquire, $) != 0; }

  // A pool worker until it takes the task or sees shutdown: search, announce, re-check, park.
  // `searching` is the slot's flag: in on entry, out on return (the caller may call found_work).
  void worker(bool& searching) {
    for (int round = 0;; ++round) {
      RL_ASSERT(round < 4);  // one task, at most two wakes: the loop is bounded
      if ((state.load(rl::mo_relaxed, $) & kD) != 0) return;  // wait_for_work's fast exit
      if (has_work()) {
        found_work(searching);
        return;
      }
      bool others = false;
      if (!announce(searching, others)) return;
      bool found = has_work();  // A2
      if (!found && others) {   // repeated after (H)
        heavy_barrier();
        found = has_work();
      }
      if (found) {
        withdraw(searching);
        continue;
      }
      park();
      // Popped by a claim (a searcher now) or shutdown, or still listed (foreign/stale token).
      if (in_sleepers.load(rl::mo_relaxed, $) != 0) {
        withdraw(searching);
      } else {
        searching = true;
      }
      if ((state.load(rl::mo_relaxed, $) & kD) != 0) return;  // on_unparked returns false
    }
  }

  void submitter() {
    if (g_cfg.asymmetric) {
      local_submitter();
      return;
    }
    queue.store(1, rl::mo_release, $);  // publish
    notify();
  }

  // A working worker: publish, then notify_work_local() (L1 is a compiler barrier, L2 a relaxed
  // load), with the membarrier's landing points around every step.
  void local_submitter() {
    membarrier_point();
    queue.store(1, rl::mo_release, $);  // publish
    membarrier_point();
    const unsigned cur = state.load(rl::mo_relaxed, $);  // (L2)
    membarrier_point();
    if (searching_of(cur) == 0 && sleeping_of(cur) > 0) wake_one();
    publisher_returns();
  }
};

// Two threads: the worker (not searching) against a submitter.
struct Handshake : rl::test_suite<Handshake, 2> {
  Coordinator c;
  void before() { c.init(0); }
  void thread(unsigned idx) {
    if (idx == 0) {
      bool searching = false;
      c.worker(searching);
    } else {
      c.submitter();
    }
  }
  void after() {}
};

// Three threads: a searcher (S = 1 at the start) that finds other work, the worker, a submitter
// whose notify may skip because of the searcher.
struct LastSearcher : rl::test_suite<LastSearcher, 3> {
  Coordinator c;
  void before() { c.init(kS); }
  void thread(unsigned idx) {
    if (idx == 0) {
      bool searching = false;
      c.worker(searching);
    } else if (idx == 1) {
      c.submitter();
    } else {
      bool searching = true;
      c.found_work(searching, g_cfg.searcher_has_more);
    }
  }
  void after() {}
};

// The two-thread handshake is searched exhaustively (every interleaving and every value the
// memory model allows each load to read: ~5 s); the three-thread model is too large for that and
// runs 500,000 random schedules (~1 s). IDLE_MODEL_ITERATIONS overrides the random count.
// The asymmetric variants (v8..v10, b7..b9) add the membarrier emulation's mutex and condvar,
// which make even two threads too large for the exhaustive search (more than 10 minutes), and
// random schedules found b8's failure only at the 755,006th: they use Relacy's context-bound
// search instead, every schedule with at most 4 preemptions (3 for the three-thread suite:
// 1.6 million schedules, ~6 s; 4 took 113 s), and every value each load may read in each.
// It rejects b7..b9 within 2 preemptions.
// Two threads: an idle worker (no task is ever published) against shutdown(): the worker must
// return, never stay parked.
struct Shutdown : rl::test_suite<Shutdown, 2> {
  Coordinator c;
  void before() { c.init(0); }
  void thread(unsigned idx) {
    if (idx == 0) {
      bool searching = false;
      c.worker(searching);
    } else {
      c.shutdown();
    }
  }
  void after() {}
};

// Shutdown, then the worker's found_work() and a second wait: the second wait must return at
// once (D still set), and the counts must not have wrapped.
struct ShutdownThenFoundWork : rl::test_suite<ShutdownThenFoundWork, 2> {
  Coordinator c;
  void before() { c.init(0); }
  void thread(unsigned idx) {
    if (idx == 0) {
      bool searching = false;
      c.worker(searching);
      c.found_work(searching);
      c.worker(searching);  // parks forever (a Relacy deadlock) if D was lost
    } else {
      c.shutdown();
    }
  }
  void after() {
    const unsigned s = c.state.load(rl::mo_relaxed, $);
    RL_ASSERT((s & kD) != 0);
    RL_ASSERT(sleeping_of(s) == 0);
  }
};

// Two threads: a searcher (S = 1) that finds other work (R0, with has_more) and then, working,
// publishes the task with notify_work_local; the worker goes to sleep meanwhile.
struct SearcherPublishes : rl::test_suite<SearcherPublishes, 2> {
  Coordinator c;
  void before() { c.init(kS); }
  void thread(unsigned idx) {
    if (idx == 0) {
      bool searching = false;
      c.worker(searching);
    } else {
      bool searching = true;
      c.found_work(searching, true);
      c.local_submitter();
    }
  }
  void after() {}
};

template <class Suite>
bool run_bounded(unsigned preemptions) {
  rl::test_params p;
  p.search_type = rl::sched_bound;
  p.context_bound = preemptions;
  p.output_history = false;
  return rl::simulate<Suite>(p);
}

template <class Suite>
bool run(bool full_search) {
  rl::test_params p;
  unsigned long iterations = 500000;
  if (const char* e = std::getenv("IDLE_MODEL_ITERATIONS"))
    iterations = std::strtoul(e, nullptr, 10);
  p.iteration_count = iterations;
  p.search_type = full_search ? rl::sched_full : rl::sched_random;
  p.output_history = false;
  return rl::simulate<Suite>(p);
}

}  // namespace

// Runs the suite of one variant (v1..v7 correct, b1..b6 broken); `known` tells model_main the
// variant exists.
static bool run_model(const std::string& v, int& known) {
  known = 1;
  bool ok;
  if (v == "v1") {
    ok = run<Handshake>(true);
  } else if (v == "v2") {
    g_cfg.rmw_handshake = true;
    ok = run<Handshake>(true);
  } else if (v == "v3") {
    ok = run<LastSearcher>(false);
  } else if (v == "v4") {
    g_cfg.rmw_handshake = true;
    ok = run<LastSearcher>(false);
  } else if (v == "v5") {
    g_cfg.searcher_has_more = false;
    ok = run<LastSearcher>(false);
  } else if (v == "v6") {
    ok = run<Shutdown>(true);
  } else if (v == "v7") {
    ok = run<ShutdownThenFoundWork>(true);
  } else if (v == "v8" || v == "b7" || v == "b9") {
    // The handshake with a working publisher; b7 drops (H) after A1, b9 miscounts at A1.
    g_cfg.asymmetric = true;
    g_cfg.heavy_a1 = v != "b7";
    g_cfg.a1_self_working = v == "b9" ? 1 : 0;
    ok = run_bounded<Handshake>(4);
  } else if (v == "v9" || v == "b8") {
    // The last searcher with 3 workers; b8 drops (H) before has_more().
    g_cfg.asymmetric = true;
    g_cfg.workers = 3;
    g_cfg.heavy_r1 = v != "b8";
    ok = run_bounded<LastSearcher>(3);
  } else if (v == "v10") {
    g_cfg.asymmetric = true;
    ok = run_bounded<SearcherPublishes>(4);
  } else if (v == "b6") {
    g_cfg.drain_counts_searcher = false;
    ok = run<ShutdownThenFoundWork>(true);
  } else if (v == "b5") {
    g_cfg.drain_before_flag = true;
    ok = run<Shutdown>(true);
  } else if (v == "b4") {
    g_cfg.r1_fence = false;
    ok = run<LastSearcher>(false);
  } else if (v == "b1") {
    g_cfg.worker_fence = false;
    g_cfg.announce_mo = rl::mo_acq_rel;  // release/acquire instead of seq_cst
    ok = run<Handshake>(true);
  } else if (v == "b2") {
    g_cfg.submit_fence = false;
    g_cfg.notify_load_mo = rl::mo_acquire;  // release publish + acquire load, no seq_cst
    ok = run<Handshake>(true);
  } else if (v == "b3") {
    g_cfg.worker_fence = false;
    g_cfg.announce_mo = rl::mo_acq_rel;
    ok = run<LastSearcher>(false);
  } else {
    known = 0;
    return false;
  }
  return ok;
}

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

// Relacy model of GroupLatch's snapshot (pool/include/parkpool/detail/pool_core.hpp, INV-G1): a
// TaskGroup's pending count is (spawned_ - completed_) + shared, where the owner worker writes
// spawned_ / completed_ with plain stores (single writer, no RMW) and every other thread counts in
// the shared word. A waiter that is not the owner reads the three with done_snapshot() and must
// never see 0 while a task it waits for is still running.
//
// The scenario, with the counters as in the header:
//   thread 0  an outside thread: run(T0) (shared +1), publishes T0 (release), then waits as a
//             foreign waiter: one snapshot; if it reads 0, T0 and its child C must have finished
//   thread 1  the owner worker: takes T0 (acquire); T0 runs C on the owner (spawned_ +1, relaxed,
//             before C is published by a release); T0 finishes on the owner (completed_ +1,
//             release)
//   thread 2  a thief: takes C (acquire), C finishes there (shared -1, acq_rel)
// The finished flags are rl::var: a missing happens-before is reported as a data race.
//
// Variants (argv[1]):
//   snapshot         the header's order: completed_, then shared, then spawned_ (acquire loads of
//                    the first two, relaxed of spawned_, as the header has it since 2026-12-08:
//                    spawned_ is only stored relaxed, so an acquire of it synchronized with
//                    nothing)
//   b_spawned_first  spawned_ read first: the snapshot can miss C's spawn yet count C's
//                    completion (shared back to 0) while T0 still runs, and read 0
//   b_relaxed        the header's order with relaxed loads of completed_ and shared too: a
//                    completion is counted without the task's effects (or its spawns) being visible
// Usage: group_latch_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: snapshot
// PARKPOOL_MODEL_BROKEN: b_spawned_first b_relaxed
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include <string>

namespace {

struct Config {
  bool spawned_first = false;              // b_spawned_first
  rl::memory_order read = rl::mo_acquire;  // completed_ and shared; b_relaxed: rl::mo_relaxed
  rl::memory_order spawned_read = rl::mo_relaxed;  // the header's: relaxed in every variant
};
Config g_cfg;

struct SnapshotTest : rl::test_suite<SnapshotTest, 3> {
  rl::atomic<long> spawned;    // owner only writes
  rl::atomic<long> completed;  // owner only writes
  rl::atomic<long> shared;     // any thread, RMW
  rl::atomic<int> t0_ready;
  rl::atomic<int> c_ready;
  rl::var<int> t0_done;
  rl::var<int> c_done;

  void before() {
    spawned($).store(0, rl::mo_relaxed);
    completed($).store(0, rl::mo_relaxed);
    shared($).store(0, rl::mo_relaxed);
    t0_ready($).store(0, rl::mo_relaxed);
    c_ready($).store(0, rl::mo_relaxed);
    t0_done($) = 0;
    c_done($) = 0;
  }

  bool snapshot_is_zero() {
    long c = 0, sh = 0, s = 0;
    if (g_cfg.spawned_first) {
      s = spawned($).load(g_cfg.spawned_read);
      sh = shared($).load(g_cfg.read);
      c = completed($).load(g_cfg.read);
    } else {
      c = completed($).load(g_cfg.read);
      sh = shared($).load(g_cfg.read);
      s = spawned($).load(g_cfg.spawned_read);
    }
    return (s - c) + sh == 0;
  }

  void thread(unsigned index) {
    if (index == 0) {
      shared($).fetch_add(1, rl::mo_relaxed);  // run(T0) off the pool: shared_.add(1)
      t0_ready($).store(1, rl::mo_release);    // the injector's publication
      if (snapshot_is_zero()) {
        RL_ASSERT(t0_done($) == 1);
        RL_ASSERT(c_done($) == 1);
      }
    } else if (index == 1) {
      if (t0_ready($).load(rl::mo_acquire) == 0) return;
      // T0 runs on the owner and run()s C there: an owned spawn, then C's publication.
      spawned($).store(spawned($).load(rl::mo_relaxed) + 1, rl::mo_relaxed);
      c_ready($).store(1, rl::mo_release);  // the deque's bottom_ release
      t0_done($) = 1;
      completed($).store(completed($).load(rl::mo_relaxed) + 1, rl::mo_release);
    } else {
      if (c_ready($).load(rl::mo_acquire) == 0) return;  // the steal's acquire
      c_done($) = 1;
      shared($).fetch_sub(1, rl::mo_acq_rel);  // CountLatch::count_down (L2)
    }
  }
};

template <class Test>
bool simulate() {
  rl::test_params p;
  p.search_type = rl::random_scheduler_type;
  p.iteration_count = 200000;
  return rl::simulate<Test>(p);
}

bool run_model(const std::string& variant, int& known) {
  g_cfg = Config{};
  known = 1;
  if (variant == "snapshot") return simulate<SnapshotTest>();
  if (variant == "b_spawned_first") {
    g_cfg.spawned_first = true;
    return simulate<SnapshotTest>();
  }
  if (variant == "b_relaxed") {
    g_cfg.read = rl::mo_relaxed;
    return simulate<SnapshotTest>();
  }
  known = 0;
  return false;
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

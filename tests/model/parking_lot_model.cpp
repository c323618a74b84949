// Relacy model of the parking lot's lock-free unpark path (INV-W in src/parking_lot.cpp):
// unpark_one(key) without a callback reads the bucket's waiter count with a release RMW and
// returns without locking when it is zero; a parker increments it with an acquire RMW, under the
// bucket lock, before validate. The waker sets a flag with a RELAXED store and calls the
// lock-free unpark_one; the waiter parks while the flag is clear. No lost wakeup is allowed
// (it shows as a Relacy deadlock), whatever order the user's own flag accesses use.
//
// The two_homes suite builds the one wake list that holds threads of two home words (INV-H),
// which no primitive's model builds (their batches are all of one key that nobody is requeued
// onto): thread 0 parks on key 2 (home word 0), thread 1 on key 1 (home word 1), and thread 2
// sets a flag, requeues key 2 onto key 1 and unpark_all's key 1. Both parkers park while the flag
// is clear (validate re-checks it under the bucket lock, so one that comes after the requeue
// does not park), and each must return (a lost wake of either home word is a Relacy deadlock;
// wake_first_home_only is found within the first few hundred of the 200,000 schedules).
//
// clang-format off
// PARKPOOL_MODEL_CORRECT: fast_unpark two_homes
// PARKPOOL_MODEL_BROKEN: waiters_relaxed waiters_plain_load wake_first_home_only
// clang-format on
#include <cstdio>
#include <string>

#include "parking_lot_model.hpp"

#include "model_params.hpp"

namespace {

model::Bugs g_bugs;

struct FastUnparkTest : rl::test_suite<FastUnparkTest, 2> {
  model::Lot lot;
  rl::atomic<int> flag;

  void before() {
    lot.init(2, &g_bugs);
    flag.store(0, rl::mo_relaxed, $);
  }
  void thread(unsigned index) {
    if (index == 0) {
      flag.store(1, rl::mo_relaxed, $);
      lot.unpark_one_fast(1);
    } else {
      while (flag.load(rl::mo_relaxed, $) == 0) {
        lot.park(
            1, 1, [this] { return flag.load(rl::mo_relaxed, $) == 0; }, [] {});
      }
    }
  }
};

struct TwoHomesTest : rl::test_suite<TwoHomesTest, 3> {
  model::Lot lot;
  rl::atomic<int> flag;

  void before() {
    lot.init(3, &g_bugs);
    flag.store(0, rl::mo_relaxed, $);
  }
  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    if (index == 2) {
      // Relaxed: the parkers read the flag under the bucket lock, which the requeue and the
      // unpark take after this store.
      flag.store(1, rl::mo_relaxed, $);
      lot.unpark_requeue(
          2, 1, [] { return model::Op::requeue_all; },
          [](model::Op, const model::UnparkResult&) { return 0; });
      lot.unpark_all(1, [](const model::UnparkResult&) { return 0; });
      return;
    }
    const int key = index == 0 ? 2 : 1;
    while (flag.load(rl::mo_relaxed, $) == 0) {
      lot.park(
          me, key, [this] { return flag.load(rl::mo_relaxed, $) == 0; }, [] {});
    }
  }
};

bool run_model(const std::string& variant, int& known) {
  g_bugs = model::Bugs{};
  known = 1;
  bool two_homes = true;
  if (variant == "fast_unpark") {
    two_homes = false;
  } else if (variant == "two_homes") {
  } else if (variant == "wake_first_home_only") {
    g_bugs.wake_first_home_only = true;
  } else if (variant == "waiters_relaxed") {
    two_homes = false;
    g_bugs.waiters_relaxed = true;
  } else if (variant == "waiters_plain_load") {
    two_homes = false;
    g_bugs.waiters_plain_load = true;
  } else {
    known = 0;
    return false;
  }
  rl::test_params p = parkpool::model::random_params();
  return two_homes ? rl::simulate<TwoHomesTest>(p) : rl::simulate<FastUnparkTest>(p);
}

}  // namespace

int main(int argc, char** argv) { return model::model_main(argc, argv, run_model); }

// Relacy model of the parking lot's lock-free unpark path (INV-W in src/parking_lot.cpp):
// unpark_one(key) without a callback reads the bucket's waiter count with a release RMW and
// returns without locking when it is zero; a parker increments it with an acquire RMW, under the
// bucket lock, before validate. The waker sets a flag with a RELAXED store and calls the
// lock-free unpark_one; the waiter parks while the flag is clear. No lost wakeup is allowed
// (it shows as a Relacy deadlock), whatever order the user's own flag accesses use.
//
// PARKPOOL_MODEL_CORRECT: fast_unpark
// PARKPOOL_MODEL_BROKEN: waiters_relaxed waiters_plain_load
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

bool run_model(const std::string& variant, int& known) {
  g_bugs = model::Bugs{};
  known = 1;
  if (variant == "fast_unpark") {
  } else if (variant == "waiters_relaxed") {
    g_bugs.waiters_relaxed = true;
  } else if (variant == "waiters_plain_load") {
    g_bugs.waiters_plain_load = true;
  } else {
    known = 0;
    return false;
  }
  rl::test_params p = parkpool::model::random_params();
  return rl::simulate<FastUnparkTest>(p);
}

}  // namespace

int main(int argc, char** argv) { return model::model_main(argc, argv, run_model); }

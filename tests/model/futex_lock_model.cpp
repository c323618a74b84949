// Relacy model of the IdleCoordinator's lock (include/parkpool/detail/futex_lock.hpp). It checks
// the production protocol itself: FutexLockProtocol instantiated on the Parker models' Relacy
// word and futex (model_parker.hpp). Three threads each take the lock twice and increment a plain
// counter (rl::var: Relacy reports a data race if the lock does not order the critical sections);
// after all, the counter must be 6. A lost wakeup shows as a Relacy deadlock (a thread blocked in
// the futex forever). Broken variants, injected through the word and the Parker models' backend:
//   split_unlock    unlock() reads the word and then stores 0 (with unlock's release order) as two
//                   operations, "look for waiters, then release": a waiter that marks the word
//                   and sleeps in between is never woken (Relacy: deadlock)
//   relaxed_orders  every ordering on the word weakened to relaxed: the critical sections race
//   missing_wake    unlock never wakes a waiter
//
// PARKPOOL_MODEL_CORRECT: correct
// PARKPOOL_MODEL_BROKEN: split_unlock relaxed_orders missing_wake
// The protocol headers come before <relacy/relacy.hpp> (through model_parker.hpp), which
// macro-renames pthread calls and the memory_order_* constants.
#include "parkpool/detail/futex_lock.hpp"
// (keep this order)
#include "model_main.hpp"
#include "model_parker.hpp"

#include <string>

namespace {

using parkpool::model::ModelParkerBackend;
using parkpool::model::ModelWord;
bool g_split_unlock = false;

// The Parker models' word, with the split_unlock fault on the exchange to 0 (only unlock() writes
// 0). The order is kept, so that the model reports the lost wakeup and not a race.
struct LockWord : ModelWord {
  std::uint32_t exchange(std::uint32_t x, std::memory_order mo) {
    if (g_split_unlock && x == 0) {
      const int old = v.load(rl::mo_relaxed, $);  // the bug: a read, then a separate store
      v.store(0, parkpool::model::to_rl(mo), $);
      return static_cast<std::uint32_t>(old);
    }
    return ModelWord::exchange(x, mo);
  }
};

struct LockBackend : ModelParkerBackend {
  using Word = LockWord;  // wait / wake_one take the base ModelWord&
};

using Protocol = parkpool::detail::FutexLockProtocol<LockBackend>;

struct ThreeLockers : rl::test_suite<ThreeLockers, 3> {
  LockWord word;
  LockBackend backend;
  rl::var<int> counter;

  void before() {
    word.v.store(static_cast<int>(Protocol::kFree), rl::mo_relaxed, $);
    counter($) = 0;
  }
  void thread(unsigned) {
    for (int i = 0; i < 2; ++i) {
      Protocol::lock(word, backend);
      counter($) = counter($) + 1;
      Protocol::unlock(word, backend);
    }
  }
  void after() {
    RL_ASSERT(counter($) == 6);
    // Every waiter that set 2 was woken and took the lock; the last unlock left the word free.
    RL_ASSERT(word.v.load(rl::mo_relaxed, $) == static_cast<int>(Protocol::kFree));
  }
};

bool run_model(const std::string& variant, int& known) {
  auto& faults = parkpool::model::g_parker_faults;
  faults = {};
  g_split_unlock = false;
  known = 1;
  if (variant == "correct") {
  } else if (variant == "split_unlock") {
    g_split_unlock = true;
  } else if (variant == "relaxed_orders") {
    faults.relaxed_orders = true;
  } else if (variant == "missing_wake") {
    faults.missing_wake = true;
  } else {
    known = 0;
    return false;
  }
  return parkpool::model::simulate<ThreeLockers>("ThreeLockers", 200000);
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

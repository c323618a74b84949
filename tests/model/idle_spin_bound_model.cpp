// Relacy model of the spin bound of IdleCoordinator::wait_for_work (include/parkpool/idle.hpp,
// pool/SLEEP.md step 1): at most max_searching workers spin at once, although claims (a notify
// that wakes a sleeper as a searcher: notify_work(backlog), notify_stalled) add to S without
// the cap. What is modelled: S, the searcher count of state_, with the same memory orders
// (relaxed CAS in try_start_searching, relaxed RMW for a claim and for the announce's S-1, the
// relaxed load of the spin check); a claim reaches its worker through the Parker (modelled by a
// release store / acquire load of a flag: the unpark/park edge). The spin itself is a critical
// section counted by an instrumentation counter, which must never exceed the cap. The wake
// protocol (no lost wakeup) is idle_model.cpp's subject, not this one's.
//
// Threads (cap 1): worker 0 becomes a searcher through try_start_searching and runs the spin
// check; worker 1 is claimed by thread 2 (S+1 unchecked) and, once woken, runs the spin check
// as a counted searcher; thread 2 is the notifier. Whatever the interleaving, the two checks must
// not let both spin at once: the later of the two RMWs that counted them precedes, in S's
// modification order, a load that happens after it.
//
//   bounded     the spin check of src: spin only if S <= cap, with this worker counted
//   two_claims  a third searcher, also claimed (cap 1, both claims race worker 0's CAS)
//   unbounded   the code before 2026-12-06: a worker already counted spins regardless: must fail
//
// PARKPOOL_MODEL_CORRECT: bounded two_claims
// PARKPOOL_MODEL_BROKEN: unbounded
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include "model_params.hpp"

#include <string>

namespace {

constexpr int kCap = 1;
bool g_unbounded = false;

// The part of a worker's wait_for_work this model checks: with `searching` (counted in S), the
// spin check, the spin (counted in `spinners`) and the announce's S-1.
void spin_then_announce(rl::atomic<int>& s, rl::atomic<int>& spinners, bool searching) {
  if (!searching) return;  // not counted: parks without spinning (idle_model.cpp)
  const bool spin = g_unbounded || s.load(rl::mo_relaxed, $) <= kCap;
  if (spin) {
    const int inside = spinners.fetch_add(1, rl::mo_seq_cst, $) + 1;  // instrumentation
    RL_ASSERT(inside <= kCap);
    spinners.fetch_sub(1, rl::mo_seq_cst, $);
  }
  s.fetch_sub(1, rl::mo_relaxed, $);  // (A1)'s S-1: no longer searching
}

// try_start_searching: a relaxed CAS that respects the cap.
bool try_start_searching(rl::atomic<int>& s) {
  int cur = s.load(rl::mo_relaxed, $);
  for (;;) {
    if (cur >= kCap) return false;
    if (s.compare_exchange_weak(cur, cur + 1, rl::mo_relaxed, $)) return true;
  }
}

template <int Threads>
struct SpinBoundTest : rl::test_suite<SpinBoundTest<Threads>, Threads> {
  rl::atomic<int> s;
  rl::atomic<int> spinners;
  rl::atomic<int> woken[Threads];  // the Parker's unpark -> park edge for a claimed worker

  void before() {
    s.store(0, rl::mo_relaxed, $);
    spinners.store(0, rl::mo_relaxed, $);
    for (auto& w : woken) w.store(0, rl::mo_relaxed, $);
  }
  void thread(unsigned index) {
    const int notifier = Threads - 1;
    if (index == 0) {
      spin_then_announce(s, spinners, try_start_searching(s));
    } else if (static_cast<int>(index) == notifier) {
      for (int w = 1; w < notifier; ++w) {
        s.fetch_add(1, rl::mo_relaxed, $);     // the claim (C1): S+1 without the cap
        woken[w].store(1, rl::mo_release, $);  // unpark
      }
    } else {
      while (woken[index].load(rl::mo_acquire, $) == 0) rl::yield(1, $);  // park
      spin_then_announce(s, spinners, true);  // woken by a claim: counted as a searcher
    }
  }
  void after() { RL_ASSERT(s.load(rl::mo_relaxed, $) == 0); }
};

bool run_model(const std::string& variant, int& known) {
  g_unbounded = false;
  known = 1;
  bool three_workers = false;
  if (variant == "bounded") {
  } else if (variant == "two_claims") {
    three_workers = true;
  } else if (variant == "unbounded") {
    g_unbounded = true;
  } else {
    known = 0;
    return false;
  }
  rl::test_params p = parkpool::model::random_params(2000);
  if (three_workers) return rl::simulate<SpinBoundTest<4>>(p);
  return rl::simulate<SpinBoundTest<3>>(p);
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

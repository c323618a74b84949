// Relacy model of the Parker protocol. It checks the production code itself: the protocol in
// include/parkpool/detail/parker_protocol.hpp is instantiated with a backend whose atomic word is
// a Relacy atomic and whose wait/wake are Relacy's futex. The broken variants are injected through
// that backend, so the model must show it can catch each bug class:
//   plain_store_consume  the token is consumed by a load and a plain store instead of an RMW
//                        (rust-lang/rust#53366 / #114591): a token arriving at a timeout is lost
//   relaxed_orders       every ordering on the word weakened to relaxed: the unparker's writes
//                        are no longer visible after park (Relacy reports the data race)
//   missing_wake         unpark never wakes a sleeping owner: a lost wakeup (Relacy: deadlock)
//
// PARKPOOL_MODEL_CORRECT: correct
// PARKPOOL_MODEL_BROKEN: plain_store_consume relaxed_orders missing_wake
#include "model_main.hpp"
#include "model_parker.hpp"  // first: it orders the protocol header before Relacy

#include <cstdio>
#include <cstring>
#include <string>

namespace {

using parkpool::UnparkReason;
using parkpool::model::ModelParker;

// 1. An unpark racing a park: the park returns, and sees the unparker's write.
struct Handoff : rl::test_suite<Handoff, 2> {
  ModelParker p;
  rl::var<int> data;
  void before() { p.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      p.park();
      RL_ASSERT(data($) == 1);
    } else {
      data($) = 1;
      p.unpark();
    }
  }
};

// 2. An unpark racing a timed park: whatever the timed park reports, the token is never lost
// (a following untimed park returns) and an `unparked` result sees the unparker's write.
struct TimeoutRace : rl::test_suite<TimeoutRace, 2> {
  ModelParker p;
  rl::var<int> data;
  void before() { p.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      if (p.park_timeout() == UnparkReason::timed_out) p.park();
      RL_ASSERT(data($) == 1);
    } else {
      data($) = 1;
      p.unpark();
    }
  }
};

// 3. Ping-pong over two parkers for two rounds, one side timed: repeated sleeps and wakes.
struct PingPong : rl::test_suite<PingPong, 2> {
  ModelParker a, b;
  rl::var<int> turns;
  void before() {
    a.init();
    b.init();
  }
  void thread(unsigned index) {
    for (int round = 0; round < 2; ++round) {
      if (index == 0) {
        turns($) = round * 2 + 1;
        b.unpark();
        a.park();
        RL_ASSERT(turns($) == round * 2 + 2);
      } else {
        while (b.park_timeout() == UnparkReason::timed_out) {
        }
        RL_ASSERT(turns($) == round * 2 + 1);
        turns($) = round * 2 + 2;
        a.unpark();
      }
    }
  }
};

// 4. Two unparkers whose tokens may merge: each publishes a count, then unparks. The owner parks
// until it has seen both counts, so the last unpark's token must reach it: a token overwritten or
// a wake skipped leaves the owner asleep forever (Relacy reports the deadlock).
struct LastUnparkIsNeverLost : rl::test_suite<LastUnparkIsNeverLost, 3> {
  ModelParker p;
  rl::atomic<int> published;
  void before() {
    p.init();
    published.store(0, rl::mo_relaxed, $);
  }
  void thread(unsigned index) {
    if (index == 0) {
      // Relaxed: the count is the data; the token orders nothing else.
      while (published.load(rl::mo_relaxed, $) < 2) p.park();
    } else {
      published.fetch_add(1, rl::mo_relaxed, $);
      p.unpark();
    }
  }
};

using parkpool::model::simulate;

}  // namespace

// Runs every scenario for one variant; `known` tells model_main the variant exists.
static bool run_model(const std::string& v, int& known) {
  auto& faults = parkpool::model::g_parker_faults;
  known = 1;
  if (v == "plain_store_consume") {
    faults.plain_store_consume = true;
  } else if (v == "relaxed_orders") {
    faults.relaxed_orders = true;
  } else if (v == "missing_wake") {
    faults.missing_wake = true;
  } else if (v != "correct") {
    known = 0;
    return false;
  }
  bool all_ok = true;
  all_ok &= simulate<Handoff>("Handoff", 200000);
  all_ok &= simulate<TimeoutRace>("TimeoutRace", 200000);
  all_ok &= simulate<PingPong>("PingPong", 200000);
  all_ok &= simulate<LastUnparkIsNeverLost>("LastUnpark", 200000);
  return all_ok;
}

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

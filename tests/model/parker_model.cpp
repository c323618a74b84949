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
#include "parkpool/detail/parker_protocol.hpp"  // before Relacy, which macro-renames pthread calls

#include <relacy/relacy.hpp>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

using parkpool::UnparkReason;
using parkpool::detail::Deadline;
using parkpool::detail::kEmpty;
using parkpool::detail::WaitStatus;

enum class Variant { correct, plain_store_consume, relaxed_orders, missing_wake };
Variant g_variant = Variant::correct;

rl::memory_order map(std::memory_order mo) {
  if (g_variant == Variant::relaxed_orders) return rl::mo_relaxed;
  switch (mo) {
    // C++20's scoped names: Relacy macro-renames the memory_order_* constants.
    case std::memory_order::relaxed:
      return rl::mo_relaxed;
    case std::memory_order::consume:
    case std::memory_order::acquire:
      return rl::mo_acquire;
    case std::memory_order::release:
      return rl::mo_release;
    case std::memory_order::acq_rel:
      return rl::mo_acq_rel;
    case std::memory_order::seq_cst:
      return rl::mo_seq_cst;
  }
  return rl::mo_seq_cst;
}

// The protocol's Word, on a Relacy atomic. Same interface as std::atomic<std::uint32_t>.
struct ModelWord {
  rl::atomic<int> v;

  std::uint32_t load(std::memory_order mo) {
    return static_cast<std::uint32_t>(v.load(map(mo), $));
  }
  std::uint32_t exchange(std::uint32_t x, std::memory_order mo) {
    if (g_variant == Variant::plain_store_consume && x == kEmpty) {
      const int old = v.load(map(mo), $);  // the bug: a read and a separate plain store
      v.store(static_cast<int>(x), rl::mo_relaxed, $);
      return static_cast<std::uint32_t>(old);
    }
    return static_cast<std::uint32_t>(v.exchange(static_cast<int>(x), map(mo), $));
  }
  bool compare_exchange_strong(std::uint32_t& expected, std::uint32_t desired,
                               std::memory_order success, std::memory_order failure) {
    if (g_variant == Variant::plain_store_consume && desired == kEmpty) {
      const int old = v.load(map(success), $);
      if (static_cast<std::uint32_t>(old) != expected) {
        expected = static_cast<std::uint32_t>(old);
        return false;
      }
      v.store(static_cast<int>(desired), rl::mo_relaxed, $);
      return true;
    }
    int e = static_cast<int>(expected);
    const bool ok =
        v.compare_exchange_strong(e, static_cast<int>(desired), map(success), $, map(failure), $);
    expected = static_cast<std::uint32_t>(e);
    return ok;
  }
};

struct ModelBackend {
  using Word = ModelWord;
  WaitStatus wait(Word& w, std::uint32_t expected, const Deadline& d) {
    // A timed wait may time out at any point the scheduler chooses; Relacy's futex may also
    // return spuriously (EINTR), which the protocol must absorb.
    struct timespec ts {};
    const int rc = rl::rl_futex(&w.v, rl::RL_FUTEX_WAIT, static_cast<int>(expected),
                                d.is_forever() ? nullptr : &ts, nullptr, 0, $);
    return rc == rl::RL_ETIMEDOUT ? WaitStatus::timed_out : WaitStatus::woken;
  }
  void wake_one(Word& w) {
    if (g_variant == Variant::missing_wake) return;
    rl::rl_futex(&w.v, rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
  }
  static std::int64_t monotonic_ns() { return 0; }
  static void cpu_relax() {}
};

using Protocol = parkpool::detail::ParkerProtocol<ModelBackend>;

struct ModelParker {
  ModelWord state;
  ModelBackend backend;
  void init() { state.v.store(static_cast<int>(kEmpty), rl::mo_relaxed, $); }
  void unpark() { Protocol::unpark(state, backend); }
  UnparkReason park(Deadline d) {
    if (Protocol::try_consume(state)) return UnparkReason::unparked;
    return Protocol::park_slow(state, backend, d, 0);
  }
  void park() { park(Deadline::forever()); }
  UnparkReason park_timeout() { return park(Deadline::monotonic(1)); }
};

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

template <class Model>
bool run(const char* name, rl::iteration_t iterations) {
  rl::test_params params;
  params.iteration_count = iterations;
  params.search_type = rl::random_scheduler_type;
  params.output_history = false;
  const bool ok = rl::simulate<Model>(params);
  std::printf("  %-14s %s\n", name, ok ? "no failure found" : "FAILURE found");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(
        stderr,
        "usage: %s <correct|plain_store_consume|relaxed_orders|missing_wake> [--expect-failure]\n",
        argv[0]);
    return 2;
  }
  const std::string v = argv[1];
  const bool expect_failure = argc > 2 && std::strcmp(argv[2], "--expect-failure") == 0;
  if (v == "correct")
    g_variant = Variant::correct;
  else if (v == "plain_store_consume")
    g_variant = Variant::plain_store_consume;
  else if (v == "relaxed_orders")
    g_variant = Variant::relaxed_orders;
  else if (v == "missing_wake")
    g_variant = Variant::missing_wake;
  else {
    std::fprintf(stderr, "unknown variant '%s'\n", v.c_str());
    return 2;
  }
  std::printf("parker model, variant %s\n", v.c_str());
  bool all_ok = true;
  all_ok &= run<Handoff>("Handoff", 200000);
  all_ok &= run<TimeoutRace>("TimeoutRace", 200000);
  all_ok &= run<PingPong>("PingPong", 200000);
  all_ok &= run<LastUnparkIsNeverLost>("LastUnpark", 200000);
  if (expect_failure) {
    std::printf(all_ok ? "ERROR: the broken variant was not rejected\n"
                       : "ok: the broken variant was rejected\n");
    return all_ok ? 1 : 0;
  }
  return all_ok ? 0 : 1;
}

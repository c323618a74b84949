// Shared by the Relacy models: the production Parker protocol
// (include/parkpool/detail/parker_protocol.hpp) on a Relacy atomic word and Relacy's futex, with
// fault injection for the models' deliberately broken variants.
//
// Include order matters: the protocol header must come before <relacy/relacy.hpp>, which
// macro-renames pthread calls and the memory_order_* constants. This header does both in the
// right order; a model includes it first.
#pragma once

#include "parkpool/detail/parker_protocol.hpp"

#include <relacy/relacy.hpp>

#include <cstdint>
#include <cstdio>

namespace parkpool::model {

// Faults a model may inject into the Parker (all off by default).
struct ParkerFaults {
  bool relaxed_orders = false;       // every ordering on the word weakened to relaxed
  bool plain_store_consume = false;  // the token consumed by a load and a plain store, not an RMW
  bool missing_wake = false;         // unpark never issues the futex wake
};
inline ParkerFaults g_parker_faults;

// std::memory_order to Relacy's. C++20's scoped names, because Relacy macro-renames the
// memory_order_* constants.
inline rl::memory_order to_rl(std::memory_order mo, bool weaken = false) {
  if (weaken) return rl::mo_relaxed;
  switch (mo) {
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

// The protocol's Word on a Relacy atomic: the interface of std::atomic<std::uint32_t>.
struct ModelWord {
  rl::atomic<int> v;

  std::uint32_t load(std::memory_order mo) {
    return static_cast<std::uint32_t>(v.load(order(mo), $));
  }
  std::uint32_t exchange(std::uint32_t x, std::memory_order mo) {
    if (g_parker_faults.plain_store_consume && x == detail::kEmpty) {
      const int old = v.load(order(mo), $);  // the bug: a read and a separate plain store
      v.store(static_cast<int>(x), rl::mo_relaxed, $);
      return static_cast<std::uint32_t>(old);
    }
    return static_cast<std::uint32_t>(v.exchange(static_cast<int>(x), order(mo), $));
  }
  bool compare_exchange_strong(std::uint32_t& expected, std::uint32_t desired,
                               std::memory_order success, std::memory_order failure) {
    if (g_parker_faults.plain_store_consume && desired == detail::kEmpty) {
      const int old = v.load(order(success), $);
      if (static_cast<std::uint32_t>(old) != expected) {
        expected = static_cast<std::uint32_t>(old);
        return false;
      }
      v.store(static_cast<int>(desired), rl::mo_relaxed, $);
      return true;
    }
    int e = static_cast<int>(expected);
    const bool ok = v.compare_exchange_strong(e, static_cast<int>(desired), order(success), $,
                                              order(failure), $);
    expected = static_cast<std::uint32_t>(e);
    return ok;
  }

 private:
  static rl::memory_order order(std::memory_order mo) {
    return to_rl(mo, g_parker_faults.relaxed_orders);
  }
};

// Relacy's futex: a timed wait may time out whenever the scheduler chooses, and any wait may
// return spuriously (EINTR), which the protocol must absorb.
struct ModelParkerBackend {
  using Word = ModelWord;
  detail::WaitStatus wait(Word& w, std::uint32_t expected, const detail::Deadline& d) {
    struct timespec ts {};
    const int rc = rl::rl_futex(&w.v, rl::RL_FUTEX_WAIT, static_cast<int>(expected),
                                d.is_forever() ? nullptr : &ts, nullptr, 0, $);
    return rc == rl::RL_ETIMEDOUT ? detail::WaitStatus::timed_out : detail::WaitStatus::woken;
  }
  void wake_one(Word& w) {
    if (g_parker_faults.missing_wake) return;
    rl::rl_futex(&w.v, rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
  }
  static std::int64_t monotonic_ns() { return 0; }
  static std::int64_t realtime_ns() { return 0; }
  static void cpu_relax() {}
};

using ModelParkerProtocol = detail::ParkerProtocol<ModelParkerBackend>;

// parkpool::Parker's inline paths over the model backend (no spin: spin_ns = 0).
struct ModelParker {
  ModelWord state;
  ModelParkerBackend backend;

  void init() { state.v.store(static_cast<int>(detail::kEmpty), rl::mo_relaxed, $); }
  void unpark() { ModelParkerProtocol::unpark(state, backend); }
  UnparkReason park(const detail::Deadline& d) {
    if (ModelParkerProtocol::try_consume(state)) return UnparkReason::unparked;
    return ModelParkerProtocol::park_slow(state, backend, d, 0);
  }
  void park() { park(detail::Deadline::forever()); }
  // A timed park; in the model the deadline may pass at any point.
  UnparkReason park_timeout() { return park(detail::Deadline::monotonic(1)); }
};

// Runs one Relacy suite with the random scheduler and prints its verdict on one line.
template <class Model>
bool simulate(const char* name, rl::iteration_t iterations) {
  rl::test_params params;
  params.iteration_count = iterations;
  params.search_type = rl::random_scheduler_type;
  params.output_history = false;
  const bool ok = rl::simulate<Model>(params);
  std::printf("  %-22s %s\n", name, ok ? "no failure found" : "FAILURE found");
  return ok;
}

}  // namespace parkpool::model

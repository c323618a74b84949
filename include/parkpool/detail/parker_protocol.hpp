// Internal: the Parker's state machine, written once and instantiated three times: with the
// futex backend, with the portable mutex+condition_variable backend, and in tests/model/ with a
// Relacy backend that model-checks this very code. All atomics of the protocol reach it through
// `Backend::Word`, which is what makes the model checker swappable (crossbeam's and folly's habit).
//
// Backend requirements (see detail/parker_backend.hpp for the production ones):
//   typename Backend::Word   an atomic 32-bit word with std::atomic's load / exchange /
//                            compare_exchange_strong taking std::memory_order
//   WaitStatus b.wait(Word& w, std::uint32_t expected, const Deadline& d) noexcept
//                            blocks while w == expected (checked atomically with the sleep, as
//                            FUTEX_WAIT does) until woken, d passes (-> timed_out) or spuriously
//   void b.wake_one(Word& w) noexcept   wakes one thread blocked in wait on w
//   static std::int64_t Backend::monotonic_ns() noexcept, static void Backend::cpu_relax() noexcept
#pragma once

#include <atomic>
#include <cstdint>

#include "parkpool/detail/deadline.hpp"

namespace parkpool {

/// Why a timed park returned.
enum class UnparkReason : std::uint8_t {
  unparked,   ///< the call consumed a token
  timed_out,  ///< the deadline passed and no token was consumed
};

namespace detail {

enum class WaitStatus : std::uint8_t { woken, timed_out };

// The state word. One 32-bit word so that the kernel can wait on it directly.
//
//   value     meaning                                     who moves it there
//   EMPTY     no token; the owner is running or spinning  owner (consumes NOTIFIED, leaves PARKED)
//   PARKED    no token; the owner sleeps (or is about to) owner only, and only from EMPTY
//   NOTIFIED  a token is available                        any unparker, from any state
//
//   transitions: EMPTY -> PARKED (owner, about to sleep)      EMPTY/PARKED/NOTIFIED -> NOTIFIED
//   (unpark)
//                NOTIFIED -> EMPTY (owner consumes the token)  PARKED -> EMPTY (owner times out)
//
// There is no SPINNING state: while the owner spins the word stays EMPTY, which already tells
// unpark that no wake syscall is needed. A separate state would cost an extra read-modify-write
// on every park and buy nothing.
//
// INV-1 (one token): the token is a state, not a count: unparks that meet NOTIFIED merge.
// INV-2 (no lost token): only the owner leaves NOTIFIED, and only by a read-modify-write that
//   returns NOTIFIED to it, so every token that was ever published is either still in the word or
//   was returned to exactly one park call as `unparked`.
// INV-3 (no lost wake): the owner sleeps only while the word is PARKED (the backend checks it
//   atomically with the sleep), and every unpark that replaces PARKED issues a wake.
inline constexpr std::uint32_t kEmpty = 0;
inline constexpr std::uint32_t kParked = 1;
inline constexpr std::uint32_t kNotified = 2;

template <class Backend>
struct ParkerProtocol {
  using Word = typename Backend::Word;

  // Fast path of every park: consumes the token if present. One atomic RMW, no syscall.
  //
  // (A) acquire, pairs with (U) in unpark: the unparker's writes before unpark() happen-before
  // the return of the park that consumes its token. It is a read-modify-write, never a load
  // followed by a store: an RMW reads the latest value in the word's modification order, so when
  // several unparks merged into one token (INV-1) the park synchronizes with the *last* of them
  // (each later exchange continues the release sequence). A plain store would also overwrite a
  // token published between the load and the store (the bug of rust-lang/rust#53366 / #114591).
  // Writing EMPTY over EMPTY is harmless: only the owner leaves EMPTY for PARKED.
  static bool try_consume(Word& state) noexcept {
    return state.exchange(kEmpty, std::memory_order_acquire) == kNotified;
  }

  // (U) release, pairs with (A), (C), (D) and (T): publishes the unparker's prior writes to the
  // park that consumes the token. Always an exchange, never "skip if already NOTIFIED": every
  // unpark must be part of the release sequence the consuming park acquires (see (A)).
  static void unpark(Word& state, Backend& backend) noexcept {
    if (state.exchange(kNotified, std::memory_order_release) == kParked) {
      // INV-3: the owner is asleep or about to sleep on PARKED; the word now differs, so either
      // the backend's wait sees NOTIFIED and does not sleep, or this wake reaches it.
      backend.wake_one(state);
    }
  }

  // Slow path: the fast path found no token. Spins up to spin_ns (EMPTY stays EMPTY, so unparks
  // need no syscall meanwhile), then sleeps until a token arrives or the deadline passes.
  // Never returns spuriously.
  static UnparkReason park_slow(Word& state, Backend& backend, const Deadline& deadline,
                                std::int64_t spin_ns) noexcept {
    if (spin_ns > 0 && spin(state, deadline, spin_ns)) return UnparkReason::unparked;

    std::uint32_t expected = kEmpty;
    // (P) relaxed CAS EMPTY -> PARKED. Relaxed suffices: PARKED publishes no data; what matters is
    // only its place in the word's modification order, which every RMW respects. If it fails,
    // the word is NOTIFIED (only the owner writes EMPTY or PARKED).
    if (!state.compare_exchange_strong(expected, kParked, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
      // (C) acquire, pairs with (U). An RMW, for the reason given at (A).
      state.exchange(kEmpty, std::memory_order_acquire);
      return UnparkReason::unparked;
    }
    for (;;) {
      const WaitStatus status = backend.wait(state, kParked, deadline);
      if (status == WaitStatus::timed_out) {
        // (T) acquire, pairs with (U). Leaving PARKED with an RMW: a token that arrives between
        // the timeout and here is consumed and reported, never overwritten (INV-2).
        return state.exchange(kEmpty, std::memory_order_acquire) == kNotified
                   ? UnparkReason::unparked
                   : UnparkReason::timed_out;
      }
      expected = kNotified;
      // (D) acquire, pairs with (U). Woken (or spuriously, or by a signal): consume the token if
      // it is there; otherwise the word is still PARKED and we sleep again (no spurious return).
      if (state.compare_exchange_strong(expected, kEmpty, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
        return UnparkReason::unparked;
      }
    }
  }

  // Bounded spin, measured in time. Returns true when it consumed a token.
  static bool spin(Word& state, const Deadline& deadline, std::int64_t spin_ns) noexcept {
    const std::int64_t start = Backend::monotonic_ns();
    std::int64_t end = saturating_add(start, spin_ns);
    if (deadline.clock == Deadline::Clock::monotonic && deadline.ns < end) end = deadline.ns;
    if (deadline.clock == Deadline::Clock::realtime) {
      // The spin measures monotonic time: a wall-clock deadline caps it by what is left of it
      // now (before 2026-12-06 it was not capped: a 10 s spin overran a 20 ms deadline).
      const std::int64_t left = deadline.ns - Backend::realtime_ns();
      if (left < spin_ns) end = start + (left > 0 ? left : 0);
    }
    for (;;) {
      // Check the clock every kSpinsPerClockRead pauses: a clock read is ~20-40 ns through the
      // vDSO, a pause ~40 ns on the Xeon VM we measure on (2026-11-21), so the overshoot stays
      // well under a microsecond.
      for (int i = 0; i < kSpinsPerClockRead; ++i) {
        // Relaxed load: only a hint; the token is taken by the acquire RMW (A) below.
        if (state.load(std::memory_order_relaxed) == kNotified && try_consume(state)) return true;
        Backend::cpu_relax();
      }
      if (Backend::monotonic_ns() >= end) return false;
    }
  }

  static constexpr int kSpinsPerClockRead = 8;
};

}  // namespace detail
}  // namespace parkpool

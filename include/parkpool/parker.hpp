// parkpool::Parker / parkpool::Unparker: per-thread token parking (crossbeam semantics).
//
// What it is
//   A Parker owns one token, initially absent. park() blocks until the token is available and
//   consumes it; Unparker::unpark() makes it available (at most one: two unparks then two parks
//   leave the second park blocked). park_timeout() / park_deadline() do the same with a limit and
//   report whether they consumed the token. It is the building block a thread pool uses to put a
//   worker to sleep and wake it.
//
// Size and cost
//   Parker and Unparker are one pointer. They share one heap block (64 bytes, cache-line aligned)
//   holding a 32-bit state word and a reference count (the portable backend adds a mutex and a
//   condition variable). unpark() is one atomic exchange, plus one FUTEX_WAKE only when the owner
//   sleeps. park() with the token present is one atomic exchange. A park_timeout of zero or less,
//   or a park_deadline in the past, costs one atomic operation (plus a vDSO clock read for a
//   deadline) and no syscall.
//
// Thread safety
//   Only the thread that owns the Parker may call park*, and only one thread at a time: the
//   Parker is movable (to hand it to the thread that will park) but not copyable. Unparker is
//   copyable and unpark() may be called from any number of threads concurrently. With the futex
//   backend it may also be called from signal handlers (it is async-signal-safe: one atomic and
//   one syscall); the portable backend's unpark() locks a std::mutex and notifies a
//   std::condition_variable, which are not async-signal-safe.
//
// Memory ordering
//   Everything a thread wrote before unpark() happens-before everything after the park call that
//   consumes that token (release on unpark, acquire on consumption). When several unparks merge
//   into one token, the consuming park synchronizes with all of them. A park that returns
//   `timed_out` synchronizes with nothing.
//
// Spurious wakeups
//   None, ever: park() returns only after consuming the token; park_timeout()/park_deadline()
//   return `unparked` exactly when they consumed a token and `timed_out` only once the deadline
//   has passed. Spurious futex returns and signals (EINTR) are absorbed inside.
//
// Deadlines
//   park_timeout(d): d <= 0 (or a floating-point NaN) tries to take the token and returns at
//   once; nanoseconds::max() and
//   any timeout beyond ~285 years mean forever. d may be any duration: one too large for
//   nanoseconds (hours::max()) saturates to forever, one too negative to "now", instead of
//   overflowing in the conversion. park_deadline(tp) accepts a time_point of any
//   clock: steady_clock deadlines are absolute CLOCK_MONOTONIC waits; system_clock deadlines are
//   absolute CLOCK_REALTIME waits, so if the wall clock is set forward past the deadline the park
//   times out at once, and if it is set back the park waits longer (the deadline is a wall-clock
//   instant). Other clocks are waited on in steady_clock slices and re-checked against Clock::now()
//   until it reaches the deadline, as std::condition_variable does. time_point::max() is forever.
//
// Optional spin
//   ParkerOptions::spin (off by default) makes park spin for up to that long before sleeping,
//   while the state word stays EMPTY, so an unpark during the spin needs no syscall and the owner
//   needs no wakeup. It pays when unparks usually arrive within the budget: on the 2-core VM we
//   measure on, a blocking ping-pong costs ~50 us per round trip (a sleeping core takes ~15 us to
//   wake) and a spinning one ~0.3 us; it costs up to `spin` of CPU per park when no unpark comes.
//
// Lifetime
//   The state lives as long as the Parker or any Unparker (or raw pointer from into_raw) refers to
//   it: unpark() after the Parker is destroyed is a harmless no-op. A moved-from Unparker's
//   unpark() is a no-op; calling park* on a moved-from Parker terminates with a message.
//
// Backends
//   Linux: futex on the state word (default). Elsewhere, or with PARKPOOL_PORTABLE_BACKEND:
//   std::mutex + std::condition_variable, same protocol, same contract except async-signal
//   safety (see "Thread safety").
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <type_traits>
#include <utility>

#include "parkpool/detail/deadline.hpp"
#include "parkpool/detail/parker_backend.hpp"
#include "parkpool/detail/parker_protocol.hpp"

namespace parkpool {

std::ostream& operator<<(std::ostream& os, UnparkReason reason);

/// Construction options of a Parker.
struct ParkerOptions {
  /// How long park() spins before sleeping. Zero (the default) sleeps at once. Negative values
  /// are treated as zero.
  std::chrono::nanoseconds spin{0};
};

namespace detail {

// The block shared by a Parker and its Unparkers.
struct alignas(64) ParkerInner {
  using Backend = DefaultParkerBackend;
  using Protocol = ParkerProtocol<Backend>;

  // The state word; its state table and invariants are in detail/parker_protocol.hpp.
  Backend::Word state{kEmpty};
  // Number of Parker/Unparker/raw handles. Increments are relaxed (a new handle is made from a
  // live one, so the block cannot be freed meanwhile); decrements are acq_rel so that every use
  // of the block happens-before its deletion by the last handle (an RMW, not a fence, so that
  // ThreadSanitizer sees the ordering).
  std::atomic<std::uint32_t> refs{1};
  // Spin budget in ns; written by the owner only (construction or set_spin), read by the owner.
  std::int64_t spin_ns = 0;
  [[no_unique_address]] Backend backend;
};

[[noreturn]] void parker_misuse(const char* what) noexcept;

// White-box access for tests (WebKit's "inspector" habit); defined only in tests/.
struct ParkerTestAccess;

}  // namespace detail

/// Wakes the thread parked on the associated Parker. Copyable; see the header comment.
class Unparker {
 public:
  Unparker(const Unparker& other) noexcept : inner_(other.inner_) { retain(); }
  Unparker(Unparker&& other) noexcept : inner_(other.inner_) { other.inner_ = nullptr; }
  Unparker& operator=(const Unparker& other) noexcept {
    if (this != &other) {
      Unparker copy(other);
      swap(copy);
    }
    return *this;
  }
  Unparker& operator=(Unparker&& other) noexcept {
    Unparker moved(static_cast<Unparker&&>(other));
    swap(moved);
    return *this;
  }
  ~Unparker() { release(); }

  /// Makes the token available if it is not already, and wakes the owner if it sleeps.
  /// Release semantics: see "Memory ordering" above. No-op on a moved-from Unparker.
  void unpark() const noexcept {
    if (inner_ != nullptr) [[likely]] {
      detail::ParkerInner::Protocol::unpark(inner_->state, inner_->backend);
    }
  }

  /// Gives up this handle's reference as an opaque pointer (for C interfaces). Pass it to
  /// from_raw exactly once, or the state leaks. Returns nullptr for a moved-from Unparker.
  static void* into_raw(Unparker&& u) noexcept {
    void* raw = u.inner_;
    u.inner_ = nullptr;
    return raw;
  }
  /// Takes back a reference produced by Unparker::into_raw (exactly once). A pointer from
  /// Parker::into_raw must go back through Parker::from_raw instead.
  static Unparker from_raw(void* raw) noexcept {
    return Unparker(static_cast<detail::ParkerInner*>(raw));
  }

  /// True if both refer to the same parker state.
  friend bool operator==(const Unparker& a, const Unparker& b) noexcept {
    return a.inner_ == b.inner_;
  }
  /// Prints the state, e.g. "Unparker{state=PARKED, handles=2}".
  friend std::ostream& operator<<(std::ostream& os, const Unparker& u);

  void swap(Unparker& other) noexcept {
    detail::ParkerInner* t = inner_;
    inner_ = other.inner_;
    other.inner_ = t;
  }

 private:
  friend class Parker;
  explicit Unparker(detail::ParkerInner* inner) noexcept : inner_(inner) {}
  void retain() const noexcept {
    if (inner_ != nullptr) inner_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept;

  detail::ParkerInner* inner_;
};

/// A per-thread parking token. Movable, not copyable; only its owning thread parks.
class Parker {
 public:
  Parker() : Parker(ParkerOptions{}) {}
  explicit Parker(ParkerOptions options);
  Parker(Parker&&) noexcept = default;
  Parker& operator=(Parker&&) noexcept = default;
  Parker(const Parker&) = delete;
  Parker& operator=(const Parker&) = delete;
  ~Parker() = default;

  /// Blocks until the token is available, then consumes it. Never returns spuriously.
  void park() noexcept {
    detail::ParkerInner& in = inner("Parker::park");
    if (Protocol::try_consume(in.state)) return;
    park_slow(detail::Deadline::forever());
  }

  /// Like park(), for at most `timeout`. Returns unparked iff it consumed the token.
  UnparkReason park_timeout(std::chrono::nanoseconds timeout) noexcept {
    detail::ParkerInner& in = inner("Parker::park_timeout");
    if (Protocol::try_consume(in.state)) return UnparkReason::unparked;
    if (timeout.count() <= 0) return UnparkReason::timed_out;
    return park_timeout_slow(timeout.count());
  }
  /// The same for any other duration, converted with saturation: without this overload,
  /// park_timeout(hours::max()) converted implicitly to nanoseconds at the call site, a signed
  /// overflow that in practice gave -1 h (an immediate timeout). A nanoseconds argument still
  /// picks the overload above (a non-template wins an exact tie).
  template <class Rep, class Period>
  UnparkReason park_timeout(std::chrono::duration<Rep, Period> timeout) noexcept {
    return park_timeout(std::chrono::nanoseconds(detail::saturating_ns(timeout)));
  }

  /// Like park(), until `deadline` on Clock. Returns unparked iff it consumed the token.
  template <class Clock, class Duration>
  UnparkReason park_deadline(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
    detail::ParkerInner& in = inner("Parker::park_deadline");
    if (Protocol::try_consume(in.state)) return UnparkReason::unparked;
    if (deadline == std::chrono::time_point<Clock, Duration>::max()) {
      park_slow(detail::Deadline::forever());
      return UnparkReason::unparked;
    }
    const std::int64_t ns = detail::saturating_ns(deadline.time_since_epoch());
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
      return park_until(detail::Deadline::monotonic(ns));
    } else if constexpr (std::is_same_v<Clock, std::chrono::system_clock>) {
      return park_until(detail::Deadline::realtime(ns));
    } else {
      // Any other clock: wait in steady_clock slices until Clock itself reaches the deadline.
      // The distance is computed in long double, as parking_lot::deadline_at does: comparing or
      // subtracting the time points converts a coarse deadline to Clock::duration first, a
      // signed overflow for one beyond that range (hours near max() or min()).
      using LongNs = std::chrono::duration<long double, std::nano>;
      for (;;) {
        const LongNs left =
            LongNs(deadline.time_since_epoch()) - LongNs(Clock::now().time_since_epoch());
        if (!(left.count() > 0)) return UnparkReason::timed_out;  // also NaN: "now"
        const std::int64_t left_ns = detail::saturating_ns(left);
        const UnparkReason r = park_timeout_slow(left_ns > 0 ? left_ns : 1);
        if (r == UnparkReason::unparked) return r;
      }
    }
  }

  /// The Unparker of this Parker; copy it to hand it to other threads.
  const Unparker& unparker() const noexcept { return unparker_; }

  /// Changes the spin budget (owner thread only).
  void set_spin(std::chrono::nanoseconds spin) noexcept;
  std::chrono::nanoseconds spin() const noexcept;

  /// Gives up the Parker as an opaque pointer owning one reference; see Unparker::into_raw.
  static void* into_raw(Parker&& p) noexcept { return Unparker::into_raw(std::move(p.unparker_)); }
  /// Takes back a pointer from Parker::into_raw (exactly once).
  static Parker from_raw(void* raw) noexcept { return Parker(Unparker::from_raw(raw)); }

  /// Prints the state, e.g. "Parker{state=NOTIFIED, handles=3, spin=0ns, backend=futex}".
  friend std::ostream& operator<<(std::ostream& os, const Parker& p);

 private:
  using Protocol = detail::ParkerInner::Protocol;
  const detail::ParkerInner* block() const noexcept { return unparker_.inner_; }
  explicit Parker(Unparker u) noexcept : unparker_(std::move(u)) {}
  detail::ParkerInner& inner(const char* what) const noexcept {
    if (unparker_.inner_ == nullptr) [[unlikely]]
      detail::parker_misuse(what);
    return *unparker_.inner_;
  }
  // Out of line: the sleeping paths (WebKit's *_slow habit keeps the inline paths small).
  UnparkReason park_slow(const detail::Deadline& deadline) noexcept;
  UnparkReason park_timeout_slow(std::int64_t timeout_ns) noexcept;
  UnparkReason park_until(const detail::Deadline& deadline) noexcept;

  friend struct detail::ParkerTestAccess;
  Unparker unparker_;
};

}  // namespace parkpool

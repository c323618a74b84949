// parkpool::parking_lot: address-keyed parking with parking_lot_core semantics.
//
// What: a global table that queues threads by an address ("key") and puts them to sleep, so that
// a synchronization primitive needs only a few bits of state of its own (parkpool::Mutex is one
// byte). All queueing, sleeping and waking lives here.
//
// Size: the table is a fixed static array of kBucketCount (4096) buckets of one cache line each,
// 256 KiB of zero-initialized storage, plus one ThreadData of ~64 bytes per thread in
// thread_local storage. Nothing is ever allocated.
//
// Why a fixed array and not parking_lot's grow-only table: a grow-only table has to allocate
// when threads are created (and parking_lot never frees the old tables), which makes park()
// allocate on a thread's first use and makes memory follow the peak thread count forever. A
// fixed array (folly's choice) never allocates, never rehashes (so no global "rehash" lock and no
// retry loop on the bucket pointer), is constant-initialized (usable during static
// initialization and destruction and during thread-local teardown), and bounds memory under any
// thread churn. The price is that with many more sleeping threads than buckets, unrelated keys
// share queues; with 4096 buckets that needs thousands of simultaneously parked threads before
// the linear queue walk matters. parkpool targets pools of tens to hundreds of threads.
//
// Thread-safety: every function may be called from any thread, concurrently, except from inside
// a callback (see "Callback contract"). A thread parks on at most one key at a time.
//
// Memory ordering (user terms):
//  - validate / timed_out / unpark callbacks / requeue validate for one bucket run under that
//    bucket's lock: everything a callback did happens-before every later callback on a key that
//    hashes to the same bucket. A primitive changes its state word in the callback atomically
//    with the queue.
//  - An unpark (or requeue followed by an unpark) that wakes a thread happens-before park()
//    returns ParkResult::unparked in that thread: the unparked thread sees everything the waker
//    did before and in the unpark callback, including the token.
//  - unpark_one(key) without a callback and unpark_all(key) may return without taking any lock
//    when no thread is queued in the key's bucket. They still never miss a thread: if a thread
//    parks concurrently, either it is found, or its validate sees every store the unparker made
//    before calling unpark_*, whatever memory order those stores used (INV-W in parking_lot.cpp).
//    Calls that take a callback always take the lock, because the callback must be atomic with
//    concurrent validate calls.
//
// Lifetime: nothing to create or destroy; the table is static and trivially destructible. The
// key is only an identity: the parking lot never dereferences it. A primitive may be destroyed as
// soon as no thread is parked on its key and no call on it is in progress.
//
// Spurious wakeups: none. park() returns `unparked` only when an unpark_* call selected this
// thread; it absorbs spurious futex wakeups and EINTR internally.
//
// Fairness: FIFO per key. UnparkResult::be_fair becomes true, for one unpark, roughly every
// 0.5 ms per bucket (a random delay in [0, 1 ms) after the previous fair unpark), so primitives
// can hand the lock directly to the woken thread and no waiter starves.
//
// Past deadlines: park() with a deadline that already passed still runs validate, queues the
// thread and runs before_sleep (a Condvar still unlocks and relocks its mutex), then times out
// without sleeping, unless it was unparked in between.
//
// Callback contract (validate, timed_out, unpark callbacks, filter, requeue validate):
//  - they run while the bucket lock is held (before_sleep is the exception: it runs unlocked);
//  - they must be short, must not allocate on a hot path, must not block, must not park, and
//    must not call any parking_lot function (doing so is detected and aborts with a message);
//  - they must not throw: a throw terminates the process with a message (the lock cannot be
//    restored safely);
//  - the wake syscall happens after the bucket lock is released, so a callback never delays a
//    woken thread that would immediately need the same bucket.
//
// Bad input: unpark_requeue with key_from == key_to throws std::invalid_argument before doing
// anything. Calling park or unpark_* from a callback, or park from before_sleep, aborts with a
// message (it would deadlock or corrupt the queue).
//
// fork(): the table has no pthread_atfork handlers. In the child of a multithreaded parent, a
// bucket lock that another thread held at the moment of fork() stays locked forever, exactly like
// a pthread mutex would; the child may use the parking lot only if no other thread was inside it
// (for instance: fork with no other thread running, or exec soon after).
//
// Platform: Linux (futex). Other platforms are not supported yet.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "parkpool/detail/cpu_relax.hpp"
#include "parkpool/detail/deadline.hpp"

namespace parkpool::parking_lot {

// A value the parking thread leaves for unpark_filter's filter to look at.
struct ParkToken {
  std::size_t value = 0;
  friend constexpr bool operator==(ParkToken, ParkToken) = default;
};
// A value an unparking thread hands to the thread it wakes.
struct UnparkToken {
  std::size_t value = 0;
  friend constexpr bool operator==(UnparkToken, UnparkToken) = default;
};
inline constexpr ParkToken kDefaultParkToken{0};
inline constexpr UnparkToken kDefaultUnparkToken{0};

// The outcome of park().
class ParkResult {
 public:
  enum class Kind : std::uint8_t {
    unparked,   // an unpark_* call selected this thread; token() is what it passed
    invalid,    // validate returned false: the thread was never queued and never slept
    timed_out,  // the deadline passed; timed_out(key, was_last_thread) has run
  };
  static constexpr ParkResult unparked(UnparkToken t) noexcept { return {Kind::unparked, t}; }
  static constexpr ParkResult invalid() noexcept { return {Kind::invalid, {}}; }
  static constexpr ParkResult timed_out() noexcept { return {Kind::timed_out, {}}; }

  constexpr Kind kind() const noexcept { return kind_; }
  constexpr bool is_unparked() const noexcept { return kind_ == Kind::unparked; }
  constexpr bool is_invalid() const noexcept { return kind_ == Kind::invalid; }
  constexpr bool is_timed_out() const noexcept { return kind_ == Kind::timed_out; }
  // Meaningful only when is_unparked().
  constexpr UnparkToken token() const noexcept { return token_; }
  friend constexpr bool operator==(ParkResult, ParkResult) = default;

 private:
  constexpr ParkResult(Kind k, UnparkToken t) noexcept : kind_(k), token_(t) {}
  Kind kind_;
  UnparkToken token_;
};

// What an unpark_* call did; passed to its callback (under the bucket lock) and returned.
struct UnparkResult {
  std::size_t unparked_threads = 0;  // threads woken
  std::size_t requeued_threads = 0;  // threads moved to key_to (unpark_requeue only)
  bool have_more_threads = false;    // threads still parked on the key after this call
  // True about every 0.5 ms per bucket when a thread is unparked: the primitive should hand
  // its resource directly to the woken thread (eventual fairness).
  bool be_fair = false;
};

// unpark_filter's per-thread decision.
enum class FilterOp : std::uint8_t {
  unpark,  // wake this thread and continue
  skip,    // leave this thread parked and continue
  stop,    // leave this thread and all later ones parked
};

// unpark_requeue's decision, returned by its validate callback.
enum class RequeueOp : std::uint8_t {
  abort,                    // do nothing
  unpark_one_requeue_rest,  // wake the first thread, move all others to key_to
  requeue_all,              // move all threads to key_to
  unpark_one,               // wake the first thread, leave the others
  requeue_one,              // move the first thread to key_to, leave the others
};

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;

namespace detail {

// Terminates the process with a message naming the callback that threw.
[[noreturn]] void callback_threw(const char* which) noexcept;

// A non-owning, allocation-free reference to a callable; calls never throw (a throw terminates
// with a message, see the callback contract).
template <class Sig>
class CallbackRef;
template <class R, class... A>
class CallbackRef<R(A...)> {
 public:
  template <class F>
  CallbackRef(F& f, const char* name) noexcept : obj_(erase(f)), call_(&invoke<F>), name_(name) {}
  R operator()(A... a) const noexcept { return call_(obj_, name_, a...); }

 private:
  // A plain function passed by name has no object address: keep the function's own address
  // (function pointer <-> void* is conditionally-supported; POSIX (dlsym) requires it).
  template <class F>
  static void* erase(F& f) noexcept {
    if constexpr (std::is_function_v<F>) {
      return reinterpret_cast<void*>(&f);
    } else {
      return const_cast<void*>(static_cast<const void*>(std::addressof(f)));
    }
  }
  template <class F>
  static R invoke(void* obj, const char* name, A... a) noexcept {
    try {
      if constexpr (std::is_function_v<F>) {
        return reinterpret_cast<F*>(obj)(a...);
      } else {
        return (*static_cast<F*>(obj))(a...);
      }
    } catch (...) {
      callback_threw(name);
    }
  }
  void* obj_;
  R (*call_)(void*, const char*, A...) noexcept;
  const char* name_;
};

using ValidateRef = CallbackRef<bool()>;
using BeforeSleepRef = CallbackRef<void()>;
using TimedOutRef = CallbackRef<void(const void*, bool)>;
using UnparkCallbackRef = CallbackRef<UnparkToken(UnparkResult)>;
using FilterRef = CallbackRef<FilterOp(ParkToken)>;
using RequeueValidateRef = CallbackRef<RequeueOp()>;
using RequeueCallbackRef = CallbackRef<UnparkToken(RequeueOp, UnparkResult)>;

ParkResult park_slow(const void* key, ValidateRef validate, BeforeSleepRef before_sleep,
                     TimedOutRef timed_out, ParkToken park_token,
                     const Deadline& deadline) noexcept;
UnparkResult unpark_one_slow(const void* key, const UnparkCallbackRef* callback) noexcept;
std::size_t unpark_all_slow(const void* key, UnparkToken token) noexcept;
UnparkResult unpark_filter_slow(const void* key, FilterRef filter,
                                UnparkCallbackRef callback) noexcept;
UnparkResult unpark_requeue_slow(const void* key_from, const void* key_to,
                                 RequeueValidateRef validate, RequeueCallbackRef callback) noexcept;
// Lock-free check used by the callback-less entry points: false means no thread is queued in
// the key's bucket and, by INV-W, none can miss the caller's earlier stores.
bool may_have_waiters(const void* key) noexcept;

}  // namespace detail

// Parks the calling thread on `key`.
//  1. locks the key's bucket; validate() (bool, under the lock) decides: false -> returns
//     invalid without queueing;
//  2. queues the thread (FIFO), unlocks, runs before_sleep() (no lock held; may call unpark_*,
//     must not park);
//  3. sleeps until an unpark_* selects it (-> unparked with its token) or until `deadline`
//     (-> timed_out(key_now, was_last_thread) runs under the bucket lock, where key_now is the
//     key the thread was parked on at that moment, which differs from `key` after a requeue,
//     and was_last_thread says no other thread remains parked on key_now).
template <class Validate, class BeforeSleep, class TimedOut>
ParkResult park(const void* key, Validate&& validate, BeforeSleep&& before_sleep,
                TimedOut&& timed_out, ParkToken park_token = kDefaultParkToken,
                const Deadline& deadline = std::nullopt) noexcept {
  static_assert(std::is_invocable_r_v<bool, Validate&>, "validate: bool()");
  static_assert(std::is_invocable_v<BeforeSleep&>, "before_sleep: void()");
  static_assert(std::is_invocable_v<TimedOut&, const void*, bool>,
                "timed_out: void(const void* key, bool was_last_thread)");
  return detail::park_slow(key, detail::ValidateRef(validate, "validate"),
                           detail::BeforeSleepRef(before_sleep, "before_sleep"),
                           detail::TimedOutRef(timed_out, "timed_out"), park_token, deadline);
}

// Wakes the first thread parked on `key`, if any. callback(UnparkResult) -> UnparkToken runs
// under the bucket lock in every case (also when no thread was found: unparked_threads == 0),
// so the primitive can update its state atomically with the queue; the returned token is handed
// to the woken thread. Always takes the bucket lock.
template <class Callback>
UnparkResult unpark_one(const void* key, Callback&& callback) noexcept {
  static_assert(std::is_invocable_r_v<UnparkToken, Callback&, UnparkResult>,
                "callback: UnparkToken(UnparkResult)");
  const detail::UnparkCallbackRef ref(callback, "unpark_one callback");
  return detail::unpark_one_slow(key, &ref);
}

// Wakes the first thread parked on `key` with kDefaultUnparkToken. No callback, so when no
// thread is queued in the bucket this takes no lock and makes no syscall (one atomic RMW).
inline UnparkResult unpark_one(const void* key) noexcept {
  if (!detail::may_have_waiters(key)) return UnparkResult{};
  return detail::unpark_one_slow(key, nullptr);
}

// Wakes every thread parked on `key` with `token`; returns how many. Lock-free when no thread
// is queued in the bucket. The woken threads become runnable together, with one wake syscall
// (a few more when some of them were requeued from keys of other buckets, and one more per
// thread beyond the 32 that can sleep on one bucket's shared wake word at a time).
inline std::size_t unpark_all(const void* key, UnparkToken token = kDefaultUnparkToken) noexcept {
  if (!detail::may_have_waiters(key)) return 0;
  return detail::unpark_all_slow(key, token);
}

// Walks the threads parked on `key` in FIFO order; filter(ParkToken) -> FilterOp (under the
// lock) chooses who wakes; then callback(UnparkResult) -> UnparkToken runs under the lock (always,
// even when nothing was woken) and its token goes to every woken thread. As with unpark_all, the
// woken threads are made runnable with one wake syscall.
template <class Filter, class Callback>
UnparkResult unpark_filter(const void* key, Filter&& filter, Callback&& callback) noexcept {
  static_assert(std::is_invocable_r_v<FilterOp, Filter&, ParkToken>, "filter: FilterOp(ParkToken)");
  static_assert(std::is_invocable_r_v<UnparkToken, Callback&, UnparkResult>,
                "callback: UnparkToken(UnparkResult)");
  return detail::unpark_filter_slow(key, detail::FilterRef(filter, "unpark_filter filter"),
                                    detail::UnparkCallbackRef(callback, "unpark_filter callback"));
}

// Locks the buckets of both keys; validate() -> RequeueOp decides (abort: nothing happens and the
// callback does not run); the first thread on key_from is woken and/or threads are moved to
// key_to as the op says; then callback(op, UnparkResult) -> UnparkToken runs under both locks
// and its token goes to the woken thread. Requeued threads keep sleeping and will be woken by an
// unpark on key_to. Throws std::invalid_argument when key_from == key_to.
template <class Validate, class Callback>
UnparkResult unpark_requeue(const void* key_from, const void* key_to, Validate&& validate,
                            Callback&& callback) {
  static_assert(std::is_invocable_r_v<RequeueOp, Validate&>, "validate: RequeueOp()");
  static_assert(std::is_invocable_r_v<UnparkToken, Callback&, RequeueOp, UnparkResult>,
                "callback: UnparkToken(RequeueOp, UnparkResult)");
  if (key_from == key_to) {
    throw std::invalid_argument("parkpool::parking_lot::unpark_requeue: key_from == key_to");
  }
  return detail::unpark_requeue_slow(
      key_from, key_to, detail::RequeueValidateRef(validate, "unpark_requeue validate"),
      detail::RequeueCallbackRef(callback, "unpark_requeue callback"));
}

// Deadline helpers: a relative timeout as a steady_clock deadline, saturating (a timeout too
// large to represent means "no deadline"; a negative one means "now").
Deadline deadline_after(std::chrono::nanoseconds timeout) noexcept;
template <class Rep, class Period>
Deadline deadline_after(const std::chrono::duration<Rep, Period>& timeout) noexcept {
  using std::chrono::nanoseconds;
  if (!(timeout > timeout.zero())) return Clock::now();  // also NaN: "now", not UB below
  // Compare in long double so that durations beyond the nanosecond range saturate instead of
  // overflowing.
  const long double ns = std::chrono::duration<long double, std::nano>(timeout).count();
  if (ns >= static_cast<long double>(nanoseconds::max().count())) return std::nullopt;
  return deadline_after(std::chrono::ceil<nanoseconds>(timeout));
}
// Any clock's time point as a steady_clock deadline (a non-steady clock is sampled once),
// saturating like deadline_after: a time point too far away to represent in nanoseconds (the
// max() of a coarse time_point such as sys_seconds::max()) means "no deadline", one too far in
// the past means "now". Neither tp nor tp - C::now() may be converted to integer nanoseconds
// first: that multiplication overflows (UB; in practice it wrapped to a time in the past, so a
// wait "forever" timed out at once). Both go through saturating_ns, which compares in long double.
template <class C, class D>
Deadline deadline_at(const std::chrono::time_point<C, D>& tp) noexcept {
  using std::chrono::nanoseconds;
  if constexpr (std::is_same_v<C, Clock>) {
    const std::int64_t ns = ::parkpool::detail::saturating_ns(tp.time_since_epoch());
    if (ns == ::parkpool::detail::kForeverNs) return std::nullopt;
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(nanoseconds(ns)));
  } else {
    // The difference in long double: exact for the int64 counts of real clocks where long double
    // has a 64-bit or wider mantissa (x86-64, aarch64), and wide enough for coarse max()/min().
    using LongNs = std::chrono::duration<long double, std::nano>;
    const LongNs remaining = LongNs(tp.time_since_epoch()) - LongNs(C::now().time_since_epoch());
    // kForeverNs (nanoseconds::max()) makes deadline_after return "no deadline"; -kForeverNs
    // makes it return "now".
    return deadline_after(nanoseconds(::parkpool::detail::saturating_ns(remaining)));
  }
}

// Exponential backoff for the spin phase of a primitive (parking_lot's SpinWait).
// spin(): returns false once the budget is used (the caller should park); the first 3 calls
// pause the CPU 2, 4 and 8 times, the next 7 yield the thread. spin_no_yield(): pauses only,
// never gives up: 2, 4, ... times, doubling up to 1024 per call (parking_lot_core's; it stopped
// at 8 until 2026-12-06). Both advance the same counter, as in parking_lot_core: each
// spin_no_yield() call uses one call of spin()'s budget (10 calls of either leave spin() none),
// and once the budget is used it keeps pausing 1024 times per call. reset(): starts over. The
// budget is counted in calls, not time, on purpose: it only bounds a short optimistic phase
// before parking (at most ~14 pause instructions, i.e. well under a microsecond, plus 7
// sched_yield calls, each returning immediately on an idle CPU); the long waits are never spent
// here.
class SpinWait {
 public:
  constexpr SpinWait() noexcept = default;
  void reset() noexcept { counter_ = 0; }
  bool spin() noexcept;
  void spin_no_yield() noexcept;

 private:
  std::uint32_t counter_ = 0;
};

// One CPU pause instruction (a spin-loop hint; a no-op on targets without one). The library's
// single definition, detail/cpu_relax.hpp.
using ::parkpool::detail::cpu_relax;

}  // namespace parkpool::parking_lot

// parkpool thread parking for executors: ParkThread, UnparkThread, Waker, CachedParkThread /
// parkpool::this_thread, and block_on for C++20 coroutines.
//
// What it is
//   An executor must not sleep on a token that other code on the same thread can consume or
//   provide (a library that parks the thread for its own purpose would steal or forge wakeups).
//   ParkThread is a parker owned by the executor: a parkpool::Parker plus a shutdown flag.
//   UnparkThread is its copyable wake handle; Waker is a type-erased, copyable wake handle (what
//   an awaitable stores to be resumed later). CachedParkThread / parkpool::this_thread give every
//   thread one lazily created ParkThread, and block_on(awaitable) runs a coroutine to completion
//   on the calling thread, parking between resumptions on a second lazily created ParkThread of
//   its own. The two never share tokens: a token left for a later this_thread::park() survives a
//   block_on, and block_on's wakes never make this_thread::park() return. The coroutines that
//   other threads (or the owner) queue on one block_on call run in the order they were queued.
//
// Size and cost
//   ParkThread: one pointer + one flag. UnparkThread: one pointer. Waker: two pointers (vtable +
//   data); copying a Waker made from an Unparker is one relaxed atomic increment, dropping it one
//   acq_rel decrement. block_on of a coroutine that never suspends makes no syscall, does not touch
//   the thread's parker and allocates nothing beyond the coroutine frame.
//
// Thread safety
//   ParkThread::park* may be called by one thread at a time (the Parker's contract: the thread
//   that owns it). unpark(), shutdown(), UnparkThread::unpark() and Waker::wake*() may be called
//   from any thread, concurrently. A Waker object itself is not synchronized (like shared_ptr):
//   give each thread its own copy.
//
// Memory ordering
//   Everything a thread wrote before unpark()/wake() happens-before everything after the park that
//   consumes that token (inherited from Parker). Everything written before shutdown() happens-
//   before the return of any park that returns because of the shutdown. In block_on, everything
//   the coroutine wrote happens-before block_on returns, whichever thread finished it.
//
// Spurious wakeups
//   ParkThread::park() returns only when it consumed a token or the ParkThread is shut down;
//   park_timeout() also when the timeout passed. block_on() re-checks completion and its ready
//   queue after every wakeup, so extra tokens (a stale wake_by_ref, a wake whose resumption it
//   already ran) cost one loop iteration, and a token consumed by a nested block_on on the same
//   thread (they share the thread's block_on parker) cannot lose a resumption of the outer one
//   (the queue is checked before every park, see BlockOnContext).
//
// Shutdown
//   shutdown() sets the flag and unparks: the thread parked on this ParkThread (there is at most
//   one) wakes, and every later park*/park_timeout returns at once (park_timeout reports
//   `unparked`). Executors shut down every worker by calling shutdown() on each worker's
//   ParkThread. Shutdown is permanent.
//
// Lifetime
//   The parker state lives as long as the ParkThread or any UnparkThread/Waker referring to it:
//   waking a thread that has exited (its cached parker destroyed) is a harmless no-op. A thread's
//   cached parkers are created on first use (this_thread's: park, current_unparker, waker;
//   block_on's: a block_on that has to wait, or a Resumption armed under one) and destroyed at
//   thread exit; using this_thread or block_on from a thread_local destructor that runs after
//   the parker it needs was destroyed terminates with a message.
//
// Errors
//   block_on of an empty (moved-from) Task throws std::invalid_argument; awaiting a Task twice
//   throws std::logic_error; park* on a moved-from ParkThread terminates with a message (Parker),
//   also when it had been shut down before the move (the shutdown moves with it), but not once
//   shutdown() was called on it after the move: it then returns at once, as on any shut-down one.
//   Waker::wake() on an empty Waker is a documented no-op. The first use of a thread's cached
//   parker allocates it and may throw std::bad_alloc (this_thread::*, or an awaitable arming a
//   Resumption); a block_on that must park and cannot allocate it terminates (see run()).
//
// Coroutines under block_on
//   Every coroutine that suspends through a Resumption (e.g. on an AsyncEvent) while a block_on
//   runs it must be resumed before that block_on returns: the resumption is queued on that call.
//   Task trees satisfy this by construction (the root finishes last); a detached coroutine started
//   under block_on must finish before the root does. (A resumption still queued when the root
//   finishes makes block_on abort with a message; one that arrives after block_on returned is
//   undefined behaviour and cannot be detected.)
//
// Nesting
//   block_on may be called on any thread, including from inside a coroutine driven by block_on on
//   another thread, and also nested on the same thread (the inner call runs to completion first;
//   resumptions meant for the outer call wait in its queue). A nested call on the same thread that
//   waits for the outer coroutine's progress deadlocks, as any synchronous wait would.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "parkpool/detail/test_hook.hpp"
#include "parkpool/parker.hpp"
#include "parkpool/task.hpp"

namespace parkpool {

// ---------------------------------------------------------------------------------------------
// Waker
// ---------------------------------------------------------------------------------------------

/// The operations behind a Waker. A custom waker provides one static table; every function must
/// be noexcept and thread-safe. `clone` returns a new data pointer owning one more reference;
/// `wake` consumes the reference; `wake_by_ref` does not; `drop` releases it.
struct WakerVTable {
  void* (*clone)(void* data) noexcept;
  void (*wake)(void* data) noexcept;
  void (*wake_by_ref)(void* data) noexcept;
  void (*drop)(void* data) noexcept;
};

namespace detail {
// The Waker vtable of an Unparker: data is Unparker::into_raw's pointer (one reference).
// Each function rebuilds a temporary Unparker from the raw pointer, and gives the reference back
// with into_raw when it must not be released.
inline void* unparker_waker_clone(void* data) noexcept {
  Unparker u = Unparker::from_raw(data);
  Unparker copy(u);  // the one atomic increment of a clone
  (void)Unparker::into_raw(std::move(u));
  return Unparker::into_raw(std::move(copy));
}
inline void unparker_waker_wake(void* data) noexcept {
  const Unparker u = Unparker::from_raw(data);  // released at scope exit: wake consumes
  u.unpark();
}
inline void unparker_waker_wake_by_ref(void* data) noexcept {
  Unparker u = Unparker::from_raw(data);
  u.unpark();
  (void)Unparker::into_raw(std::move(u));
}
inline void unparker_waker_drop(void* data) noexcept {
  const Unparker u = Unparker::from_raw(data);
}

inline constexpr WakerVTable kUnparkerWakerVTable{
    &unparker_waker_clone, &unparker_waker_wake, &unparker_waker_wake_by_ref, &unparker_waker_drop};
}  // namespace detail

/// A copyable, type-erased handle that wakes a task's executor. Two pointers; one reference
/// count (the one of the object it wakes). Any Unparker converts to a Waker.
class Waker {
 public:
  /// An empty Waker: wake() and wake_by_ref() do nothing.
  Waker() noexcept = default;
  /// A Waker that unparks `u`'s Parker (shares its state: one atomic increment).
  explicit Waker(const Unparker& u) noexcept : Waker(Unparker(u)) {}
  explicit Waker(Unparker&& u) noexcept
      : vtable_(&detail::kUnparkerWakerVTable), data_(Unparker::into_raw(std::move(u))) {
    if (data_ == nullptr) vtable_ = nullptr;  // a moved-from Unparker gives an empty Waker
  }
  /// Adopts `data` (owning one reference) with the operations of `vtable` (a static table).
  /// A null `vtable` gives an empty Waker (as Waker()): `data` is neither adopted nor touched,
  /// nor kept, so whatever reference it carries stays the caller's to release.
  static Waker from_raw(const WakerVTable* vtable, void* data) noexcept {
    Waker w;
    if (vtable == nullptr) return w;  // no drop to release data with: it stays the caller's
    w.vtable_ = vtable;
    w.data_ = data;
    return w;
  }

  Waker(const Waker& other) noexcept
      : vtable_(other.vtable_),
        data_(other.vtable_ ? other.vtable_->clone(other.data_) : nullptr) {}
  Waker(Waker&& other) noexcept : vtable_(other.vtable_), data_(other.data_) {
    other.vtable_ = nullptr;
    other.data_ = nullptr;
  }
  Waker& operator=(const Waker& other) noexcept {
    if (this != &other) {
      Waker copy(other);
      swap(copy);
    }
    return *this;
  }
  Waker& operator=(Waker&& other) noexcept {
    Waker moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~Waker() {
    if (vtable_ != nullptr) vtable_->drop(data_);
  }

  /// Wakes the target and releases this handle's reference: the Waker is empty afterwards.
  /// The Waker is emptied before the vtable's wake runs and is not touched after it, so that
  /// wake may destroy the object holding this Waker (a coroutine frame resumed inline, say).
  void wake() noexcept {
    const WakerVTable* vt = std::exchange(vtable_, nullptr);
    void* data = std::exchange(data_, nullptr);  // empty before the call: wake may free *this
    if (vt != nullptr) vt->wake(data);
  }
  /// Wakes the target and keeps the handle.
  void wake_by_ref() const noexcept {
    if (vtable_ != nullptr) vtable_->wake_by_ref(data_);
  }
  /// True if both wake the same target with the same operations.
  bool will_wake(const Waker& other) const noexcept {
    return vtable_ == other.vtable_ && data_ == other.data_;
  }
  explicit operator bool() const noexcept { return vtable_ != nullptr; }

  void swap(Waker& other) noexcept {
    std::swap(vtable_, other.vtable_);
    std::swap(data_, other.data_);
  }

 private:
  const WakerVTable* vtable_ = nullptr;
  void* data_ = nullptr;
};
static_assert(sizeof(Waker) == 2 * sizeof(void*), "Waker is two pointers");

// ---------------------------------------------------------------------------------------------
// ParkThread / UnparkThread
// ---------------------------------------------------------------------------------------------

/// Wakes the thread parked on a ParkThread. Copyable (one atomic increment), thread-safe.
class UnparkThread {
 public:
  explicit UnparkThread(Unparker u) noexcept : unparker_(std::move(u)) {}

  /// Makes the token available and wakes the owner if it sleeps. Release semantics.
  void unpark() const noexcept { unparker_.unpark(); }
  /// A Waker that unparks the same thread.
  Waker into_waker() const& noexcept { return Waker(unparker_); }
  Waker into_waker() && noexcept { return Waker(std::move(unparker_)); }
  const Unparker& unparker() const noexcept { return unparker_; }

  friend bool operator==(const UnparkThread& a, const UnparkThread& b) noexcept {
    return a.unparker_ == b.unparker_;
  }

 private:
  Unparker unparker_;
};
static_assert(sizeof(UnparkThread) == sizeof(void*), "UnparkThread is one pointer");

/// A parker owned by one executor thread, with a shutdown. Movable, not copyable.
class ParkThread {
 public:
  ParkThread() = default;  // allocates the Parker state (may throw std::bad_alloc)
  explicit ParkThread(ParkerOptions options) : parker_(options) {}
  /// Moving is for handing the ParkThread to its thread; it must not race with park/shutdown.
  /// The shutdown moves too: the moved-from ParkThread is empty and not shut down, so its park*
  /// terminates (Parker) instead of returning as a shut-down one would (until shutdown() is
  /// called on it: the flag is checked first).
  ParkThread(ParkThread&& other) noexcept
      : parker_(std::move(other.parker_)),
        // Relaxed: the move itself must not race with shutdown() (documented above).
        shutdown_(other.shutdown_.exchange(false, std::memory_order_relaxed)) {}
  ParkThread& operator=(ParkThread&& other) noexcept {
    if (this != &other) {
      parker_ = std::move(other.parker_);
      // Relaxed, as in the move constructor.
      shutdown_.store(other.shutdown_.exchange(false, std::memory_order_relaxed),
                      std::memory_order_relaxed);
    }
    return *this;
  }
  ParkThread(const ParkThread&) = delete;
  ParkThread& operator=(const ParkThread&) = delete;
  ~ParkThread() = default;

  /// Blocks until unparked or shut down. Owner thread only. No spurious returns.
  void park() noexcept {
    if (is_shutdown()) return;
    parker_.park();
  }
  /// Like park() for at most `timeout`; `unparked` also when it returns because of shutdown.
  /// Any duration: one beyond nanoseconds' range saturates (forever, or "now" if negative), as in
  /// Parker::park_timeout, instead of overflowing in an implicit conversion at the call site.
  UnparkReason park_timeout(std::chrono::nanoseconds timeout) noexcept {
    if (is_shutdown()) return UnparkReason::unparked;
    return parker_.park_timeout(timeout);
  }
  template <class Rep, class Period>
  UnparkReason park_timeout(std::chrono::duration<Rep, Period> timeout) noexcept {
    return park_timeout(std::chrono::nanoseconds(detail::saturating_ns(timeout)));
  }
  template <class Clock, class Duration>
  UnparkReason park_deadline(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
    if (is_shutdown()) return UnparkReason::unparked;
    return parker_.park_deadline(deadline);
  }

  /// A wake handle for this parker (one atomic increment).
  UnparkThread unpark() const noexcept { return UnparkThread(parker_.unparker()); }

  /// Wakes the thread parked here and makes every later park return at once. Any thread;
  /// idempotent. Does not touch the ParkThread after it sets the flag, so the owner may destroy
  /// it as soon as a park returns because of the shutdown (a worker that then exits).
  void shutdown() noexcept {
    // Taken before (S1): once the flag is visible the owner may destroy *this (parker_ too); the
    // copy's reference keeps the parker state alive for the unpark below.
    const Unparker unparker = parker_.unparker();
    // (S1) release, pairs with (S2): writes before shutdown() happen-before a park that returns
    // because it saw the flag. Then unpark: a park that read the flag before (S1) was visible is
    // about to sleep on (or already sleeps on) the parker, and the token wakes it. A park that
    // consumes this token synchronizes with the unpark (Parker (U)->(A)), which is sequenced after
    // (S1), so every park after it sees the flag: at most one park "uses" the shutdown token and
    // none can sleep after shutdown (argument written out in tests/model/thread_parker_model.cpp).
    shutdown_.store(true, std::memory_order_release);
    shutdown_flag_stored_hook_for_test(this);  // tests only (detail/test_hook.hpp): a cold path
    unparker.unpark();
  }
  bool is_shutdown() const noexcept {
    // (S2) acquire, pairs with (S1).
    return shutdown_.load(std::memory_order_acquire);
  }

  const Parker& parker() const noexcept { return parker_; }

  // Called by shutdown() between its flag store (S1) and its unpark, with `this`.
  static inline detail::TestHook<const void*> shutdown_flag_stored_hook_for_test;

 private:
  Parker parker_;
  // State table: false -> true (shutdown(), any thread, once; never back). See (S1)/(S2).
  std::atomic<bool> shutdown_{false};
  static_assert(std::atomic<bool>::is_always_lock_free);
};

// ---------------------------------------------------------------------------------------------
// CachedParkThread / this_thread
// ---------------------------------------------------------------------------------------------

namespace detail {
/// The calling thread's ParkThread, created on first use, destroyed at thread exit.
ParkThread& current_park_thread();
}  // namespace detail

namespace this_thread {
/// Parks the calling thread on its cached ParkThread until unparked (no spurious returns).
inline void park() { detail::current_park_thread().park(); }
/// Like park() for at most `timeout` (any duration; saturating, as ParkThread::park_timeout).
inline UnparkReason park_timeout(std::chrono::nanoseconds timeout) {
  return detail::current_park_thread().park_timeout(timeout);
}
template <class Rep, class Period>
UnparkReason park_timeout(std::chrono::duration<Rep, Period> timeout) {
  return park_timeout(std::chrono::nanoseconds(parkpool::detail::saturating_ns(timeout)));
}
/// A handle that unparks the calling thread's cached parker, from any thread.
inline UnparkThread current_unparker() { return detail::current_park_thread().unpark(); }
/// A Waker that unparks the calling thread's cached parker.
inline Waker waker() { return current_unparker().into_waker(); }
}  // namespace this_thread

template <class Awaitable>
decltype(auto) block_on(Awaitable&& awaitable);

/// Handle to the calling thread's cached ParkThread (empty object; all state is thread-local).
class CachedParkThread {
 public:
  void park() { this_thread::park(); }
  UnparkReason park_timeout(std::chrono::nanoseconds timeout) {
    return this_thread::park_timeout(timeout);
  }
  template <class Rep, class Period>
  UnparkReason park_timeout(std::chrono::duration<Rep, Period> timeout) {
    return this_thread::park_timeout(timeout);  // the saturating template
  }
  UnparkThread unpark() { return this_thread::current_unparker(); }
  UnparkThread current_unparker() { return this_thread::current_unparker(); }
  Waker waker() { return this_thread::waker(); }
  template <class Awaitable>
  decltype(auto) block_on(Awaitable&& awaitable) {
    return parkpool::block_on(std::forward<Awaitable>(awaitable));
  }
};

// ---------------------------------------------------------------------------------------------
// block_on
// ---------------------------------------------------------------------------------------------

namespace detail {

class BlockOnContext;
/// The innermost block_on running on this thread (nullptr outside block_on). Its address also
/// identifies the thread (see BlockOnContext::on_owner_thread).
inline constinit thread_local BlockOnContext* tl_block_on = nullptr;

/// A coroutine waiting in a block_on ready queue. Lives in the awaiter (in the coroutine frame).
struct ReadyNode {
  std::coroutine_handle<> handle;
  ReadyNode* next = nullptr;
};

/// The state of one block_on call: a ready queue of coroutines to resume on this thread, and a
/// completion word. Lives on the stack of block_on.
///
/// state_ (the completion word):
///   value     meaning                                        transitions
///   kRunning  root not done; the owner is not about to park  -> kSleeping (owner, before park)
///                                                            -> kDone (completer)
///   kSleeping root not done; the owner parks (or will)       -> kRunning (owner, after park)
///                                                            -> kDone (completer, then wakes)
///   kDone     root finished; block_on may return             final
///
/// INV-B1: the owner parks only after moving kRunning -> kSleeping, and a completer that
///   replaces kSleeping by kDone wakes the owner: a foreign completion is never lost.
/// INV-B2: a completer on another thread reads the context (waker_) only before its RMW that
///   publishes kDone; after it, block_on may return and the context is gone.
/// INV-B3: the owner checks the ready queue after every resumption and before every park, so a
///   node pushed while the owner runs needs no wake, and a consumed (stolen) token cannot strand
///   a node.
class BlockOnContext {
 public:
  BlockOnContext() noexcept : parent_(tl_block_on) { tl_block_on = this; }
  ~BlockOnContext() { tl_block_on = parent_; }
  BlockOnContext(const BlockOnContext&) = delete;
  BlockOnContext& operator=(const BlockOnContext&) = delete;

  static BlockOnContext* current() noexcept { return tl_block_on; }
  /// True on the thread that runs this block_on (even from a nested block_on on that thread).
  bool on_owner_thread() const noexcept { return owner_ == &tl_block_on; }

  /// Queues `node` to be resumed by this block_on. Any thread. The caller must not touch the
  /// node (nor the coroutine frame holding it) afterwards, and must then wake the owner unless
  /// on_owner_thread() (INV-B3).
  void push(ReadyNode& node) noexcept {
    // (Q1) relaxed: only a guess for the CAS below; n.next is fixed up on failure.
    ReadyNode* head = ready_.load(std::memory_order_relaxed);
    do {
      node.next = head;
      // (Q2) release, pairs with (Q3): publishes node.handle/next and everything the pusher
      // wrote before (the awaited result) to the owner. Failure relaxed: we only retry.
    } while (!ready_.compare_exchange_weak(head, &node, std::memory_order_release,
                                           std::memory_order_relaxed));
  }

  /// A Waker for the owner thread (one atomic increment once the thread's parker exists).
  /// Owner thread only.
  Waker owner_waker() {
    ensure_waker();
    return waker_;
  }

  /// Called once by the root coroutine when it finishes, on whatever thread finished it.
  void complete() noexcept {
    if (on_owner_thread()) {
      // The owner reads state_ later on this same thread: sequenced-before is enough, so
      // relaxed. No wake: the owner is running (it is us).
      state_.store(kDone, std::memory_order_relaxed);
      return;
    }
    complete_foreign();
  }

  /// Runs `root` (a suspended coroutine whose completion calls complete()) to completion.
  /// noexcept: a Task's resume never throws (its promise keeps the exception), and if the
  /// thread's parker cannot be allocated while a coroutine is suspended there is no way to wait
  /// for it and no safe way to unwind past it (its frame may run elsewhere): terminate.
  void run(std::coroutine_handle<> root) noexcept;

 private:
  static constexpr std::uint32_t kRunning = 0;
  static constexpr std::uint32_t kSleeping = 1;
  static constexpr std::uint32_t kDone = 2;

  void ensure_waker();
  void complete_foreign() noexcept;
  bool drain_ready() noexcept;

  std::atomic<ReadyNode*> ready_{nullptr};  // Treiber stack, MPSC: any thread pushes, owner pops
  std::atomic<std::uint32_t> state_{kRunning};
  BlockOnContext* parent_;
  const void* owner_ = &tl_block_on;
  // Written by the owner only, before its first kRunning -> kSleeping (the release of (B1)
  // publishes it to completers, which read it only after seeing kSleeping with acquire).
  Waker waker_;
  static_assert(std::atomic<ReadyNode*>::is_always_lock_free);
  static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
};

}  // namespace detail

/// Resumes a suspended coroutine on the block_on thread that was running it when it suspended
/// (or inline, on the resuming thread, when it was not under block_on). The building block for
/// awaitables that are completed from other threads: arm() in await_suspend, resume() once from
/// the completing thread. Not copyable or movable while armed (it is queued by address).
class Resumption {
 public:
  Resumption() noexcept = default;
  Resumption(const Resumption&) = delete;
  Resumption& operator=(const Resumption&) = delete;

  /// Captures `h`, the current block_on context and a waker for it. Call on the suspending
  /// thread (in await_suspend). May throw std::bad_alloc the first time a thread's parker is made;
  /// the Resumption is then not armed: do not resume() it (arm() again, or let the exception
  /// leave await_suspend, which resumes the coroutine with it).
  void arm(std::coroutine_handle<> h) {
    node_.handle = h;
    ctx_ = detail::BlockOnContext::current();
    if (ctx_ != nullptr) waker_ = ctx_->owner_waker();
  }
  /// Forgets an armed coroutine that will be resumed another way (await_suspend returned false).
  void disarm() noexcept {
    ctx_ = nullptr;
    waker_ = Waker();
  }
  /// Resumes the armed coroutine: queues it on its block_on thread and wakes that thread, or
  /// resumes it inline if it was not under block_on. Once, from any thread. noexcept: an
  /// exception that leaves the inline resumption (or, under block_on, the resumption of a
  /// coroutine that is not a parkpool::Task, whose exceptions its promise stores) calls
  /// std::terminate.
  void resume() noexcept {
    if (ctx_ == nullptr) {
      node_.handle.resume();
      return;
    }
    // INV-B2-like: after push the frame holding *this may be resumed and destroyed by the owner:
    // take what we need first.
    Waker w = std::move(waker_);
    detail::BlockOnContext* ctx = ctx_;
    const bool same_thread = ctx->on_owner_thread();
    ctx->push(node_);
    if (!same_thread) w.wake();  // INV-B3: on the owner thread the queue is checked before parking
  }

 private:
  detail::ReadyNode node_;
  detail::BlockOnContext* ctx_ = nullptr;
  Waker waker_;
};

namespace detail {

template <class T>
decltype(auto) block_on_task(Task<T>&& task) {
  auto h = TaskAccess::handle(task);
  if (!h) throw std::invalid_argument("parkpool::block_on: empty (moved-from) Task");
  if (TaskAccess::started(task)) {
    throw std::logic_error("parkpool::block_on: the Task was already started or awaited");
  }
  BlockOnContext ctx;
  TaskAccess::set_completion(
      task, [](void* c) noexcept { static_cast<BlockOnContext*>(c)->complete(); }, &ctx);
  ctx.run(h);
  return TaskAccess::take_result(task);
}

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {};

template <class A>
concept HasMemberCoAwait = requires(A&& a) {
  std::forward<A>(a).operator co_await();
};
template <class A>
concept HasFreeCoAwait = requires(A&& a) {
  operator co_await(std::forward<A>(a));
};

// The awaiter `co_await a` would use (only its type is needed).
template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (HasMemberCoAwait<A>) {
    return std::forward<A>(a).operator co_await();
  } else if constexpr (HasFreeCoAwait<A>) {
    return operator co_await(std::forward<A>(a));
  } else {
    return static_cast<A&&>(a);
  }
}

template <class A>
using AwaitableResult = std::remove_cvref_t<
    decltype(std::declval<decltype(get_awaiter(std::declval<A>()))>().await_resume())>;

// Wraps any awaitable in a Task (one coroutine frame). `a` outlives the Task: block_on waits.
template <class R, class A>
Task<R> wrap_awaitable(A&& a) {
  if constexpr (std::is_void_v<R>) {
    co_await std::forward<A>(a);
  } else {
    co_return co_await std::forward<A>(a);
  }
}

}  // namespace detail

/// Runs `awaitable` to completion on the calling thread and returns its result (or rethrows its
/// exception). A parkpool::Task is driven directly (no extra frame); any other awaitable is
/// wrapped in one Task, and its result is returned by value: an awaitable whose await_resume()
/// returns a reference gives an object copied (T&, const T&) or moved (T&&) from the referent,
/// not the reference (a Task holds no reference, see task.hpp). Between resumptions the thread
/// parks on its block_on parker (a thread-local ParkThread apart from this_thread's, see "What it
/// is"); the coroutine's resumptions queued by parkpool awaitables (Resumption) run on this thread.
/// Throws std::invalid_argument for an empty (moved-from) Task, and std::logic_error for a Task
/// that was already started (awaited, or run by an earlier block_on).
template <class Awaitable>
decltype(auto) block_on(Awaitable&& awaitable) {
  using A = std::remove_cvref_t<Awaitable>;
  if constexpr (detail::IsTask<A>::value) {
    static_assert(!std::is_lvalue_reference_v<Awaitable>,
                  "block_on consumes a Task: pass an rvalue (std::move(task))");
    return detail::block_on_task(std::move(awaitable));
  } else {
    using R = detail::AwaitableResult<Awaitable&&>;
    return detail::block_on_task(detail::wrap_awaitable<R>(std::forward<Awaitable>(awaitable)));
  }
}

}  // namespace parkpool

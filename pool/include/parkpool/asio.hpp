// parkpool::AsioContext and parkpool::BasicAsioExecutor: Boost.Asio executors that run handlers
// on a parkpool::ThreadPool. Header-only; it needs Boost.Asio (1.74 or later, header-only) and is
// compiled only where it is included. Nothing else in parkpool includes it.
//
// What it is
//   AsioContext wraps a ThreadPool the caller owns (it does not own or start threads): it is a
//   boost::asio::execution_context (so Asio services such as strands and timers can live in it)
//   that counts the work running on the pool through it. Its executors satisfy Asio's standard
//   executor requirements (boost::asio::execution::executor, and is convertible to
//   boost::asio::any_io_executor), so these work with the pool:
//     boost::asio::post(ex, f)      f runs on a worker, never inside post()
//     boost::asio::dispatch(ex, f)  f runs inside dispatch() when the caller is a worker of this
//                                   pool; otherwise as post
//     boost::asio::defer(ex, f)     as post (a worker's continuation goes to its own deque, LIFO)
//     co_spawn(ex, awaitable, token), bind_executor(ex, h), strand<AsioExecutor>,
//     make_work_guard(ex), use_future, and any_io_executor holding an AsioExecutor.
//
//   parkpool::ThreadPool pool;
//   parkpool::AsioContext ctx(pool);             // declare after the pool: destroyed before it
//   auto ex = ctx.get_executor();
//   boost::asio::post(ex, [] { /* on a worker */ });
//   boost::asio::co_spawn(ex, coroutine(), boost::asio::detached);
//   ctx.join();                                  // all of that work is done
//
// Properties (query / require / prefer; all queries are noexcept)
//   blocking          possibly (default) | never. possibly: execute(f) runs f at once, on the
//                     calling thread, when that thread is a worker of this pool; otherwise f is
//                     queued with ThreadPool::post. never: f is always queued. blocking.always
//                     is not offered: require() and prefer() of it do not compile (as in Asio,
//                     blocking.always is not preferable).
//                     An exception thrown by f run inline propagates out of execute() (so out
//                     of dispatch()) into the caller, with the rest of the caller's code
//                     skipped. Asio's own executors do not do that: io_context's and
//                     thread_pool's catch it and rethrow it from run() once the calling handler
//                     has returned. If the caller (a queued handler) does not catch it, it
//                     leaves that handler and goes to on_post_exception (below), like any other
//                     exception of a queued handler.
//   relationship      fork (default) | continuation. Recorded and reported by query; scheduling
//                     is the same for both (ThreadPool::post from a worker already pushes to that
//                     worker's own deque, which it pops LIFO: continuations run next, hot in
//                     cache; other workers steal the oldest).
//   outstanding_work  untracked (default) | tracked. A tracked executor counts as one unit of
//                     outstanding work of its AsioContext from construction (or copy) to
//                     destruction; AsioContext::join() waits for it. Asio takes tracked executors
//                     for the lifetime of an asynchronous operation (co_spawn, strands,
//                     composed operations), so join() waits for those. A moved-from tracked
//                     executor holds nothing; it may only be destroyed, assigned to, or copied (the
//                     copy holds nothing either).
//                     make_work_guard(ex) works too: for a standard executor (this one; it is
//                     not a Networking-TS executor, boost::asio::is_executor is false) Asio's
//                     executor_work_guard holds prefer(ex, outstanding_work.tracked), a tracked
//                     executor, until reset() or destruction.
//                     The pool's threads run whether or not there is tracked work: a ThreadPool
//                     has no run() that returns when work runs out, so this is only about join().
//   allocator         std::allocator<void> by default; require(allocator(a)) stores a and
//                     query(allocator) returns it. The pool allocates its task nodes with
//                     operator new regardless (ThreadPool::post), so this is a recorded hint.
//   context           the AsioContext (a boost::asio::execution_context&).
//   mapping           thread (static: handlers run on the pool's threads).
//   occupancy         pool().size().
//   Two executors compare equal when they have the same AsioContext and allocator; the other
//   properties are part of the type.
//
// Handlers that are queued (not run inline)
//   Each is counted as "in flight" by its AsioContext from execute() until it has run and been
//   destroyed (or has been destroyed without running). An exception thrown by a queued handler
//   goes to PoolOptions::on_post_exception of the pool (default: stderr and a counter); it does
//   not kill the worker and does not propagate anywhere else. (co_spawn catches a coroutine's
//   exception itself and passes it to the completion token: use_future, or a handler taking
//   std::exception_ptr, sees it; detached drops it, as in Asio.)
//   If the pool cannot queue f (ThreadPool::post throws std::bad_alloc, before or after taking
//   f), execute() destroys f without running it and rethrows; nothing is kept.
//
// After ThreadPool::shutdown() (documented behaviour: nothing is dropped silently)
//   Asio's rule for a stopped io_context or thread_pool applies: a handler given to execute()
//   (post / dispatch / defer / co_spawn / a bound completion handler) from a thread that is not a
//   worker of the pool, once the pool's shutdown() has begun, is accepted but never runs. The
//   pool refuses it (ThreadPool::post throws parkpool::pool_closed); execute() catches that,
//   keeps the handler object, and counts it in rejected_handlers(). Only that refusal keeps a
//   handler (any other failure destroys it, above). Kept handlers are destroyed, still without
//   running, by discard_rejected(), join() (they may hold tracked work: a co_spawn'ed
//   coroutine's frame holds work guards) or ~AsioContext(). execute() does not throw
//   pool_closed: Asio calls execute() from places that must not throw (co_spawn's entry point
//   dispatches its completion from inside the coroutine, where an exception would terminate the
//   process), and destroying the handler inside execute() could destroy a coroutine frame that
//   is still running. Keeping it takes one allocation; if that fails (or moving the handler
//   throws), std::terminate is called: the handler could be neither run nor destroyed safely.
//   Check rejected_handlers() (or the pool's state) to see that a refusal happened.
//   A handler queued from a worker while shutdown drains is still accepted and runs (the pool's
//   rule). Order things so nothing is rejected: finish the Asio work first (AsioContext::join(),
//   or stop the I/O), then shut the pool down.
//
// Thread safety
//   Executors are regular values: copy them and call them from any thread. AsioContext's members
//   may be called from any thread, except join() from a worker of the pool (std::logic_error).
//
// Memory ordering (user terms)
//   Everything the caller did before execute() (post, dispatch, defer) happens-before the handler
//   starts (ThreadPool::post's guarantee). A handler's effects, and those of everything counted
//   as outstanding work, happen-before join() returns, and before ~AsioContext() returns.
//
// Lifetime
//   The ThreadPool must outlive the AsioContext; executors and work guards must not outlive their
//   AsioContext (as with any Asio execution context). ~AsioContext() first waits until no queued
//   handler is in flight (handlers still queued in a running pool run; if the pool was shut
//   down, every handler has already run or been rejected), destroys the rejected handlers,
//   then shuts down the Asio services (strands, timers) of the context. Shutting a service down
//   destroys its pending operations, and Asio destroys a coroutine suspended in one (a timer
//   wait, say) through the coroutine's executor: it posts the destruction of the frame. So the
//   destructor then waits again for the queued handlers (they run on the pool) and destroys the
//   rejected ones (pool shut down), until neither is left, and only then destroys the services
//   (the frames' timers and strands still use them). It does not wait for tracked work.
//   A handler that keeps re-posting itself forever makes ~AsioContext() and join() wait forever.
//   Do not destroy an AsioContext on a worker of its pool while handlers are queued: the
//   destructor would wait on the thread they may need.
//
// Size and cost
//   An executor is one pointer: the allocator is an empty member ([[no_unique_address]]), so
//   with std::allocator<void> (or any empty allocator) it is 8 bytes on a 64-bit target; a
//   stateful allocator adds its own size. A queued handler costs one ThreadPool::post (one
//   allocation holding the handler), one relaxed RMW on the context's in-flight counter, and one
//   release CAS when it is destroyed (a locked decrement instead while a thread waits in join()
//   or ~AsioContext()); a tracked executor's copy the same, on the work counter.
//
// Spurious wakeups / fairness: none visible; no fairness beyond ThreadPool's (see its header).
#pragma once

// Boost 1.74's <boost/asio/awaitable.hpp> uses std::exchange without including <utility>;
// included first so that any file that includes this header before Asio compiles.
#include <utility>

#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "parkpool/thread_pool.hpp"

namespace parkpool {

class AsioContext;

namespace asio_detail {
// Property bits of BasicAsioExecutor (its template parameter).
inline constexpr unsigned kBlockingNever = 1;  // blocking.never (else blocking.possibly)
inline constexpr unsigned kContinuation = 2;   // relationship.continuation (else fork)
inline constexpr unsigned kTracked = 4;        // outstanding_work.tracked (else untracked)

struct ZeroWaitCounterTestAccess;  // tests/asio: holds m_ to force interleavings

// A counter that threads can wait to see at zero, safe to destroy as soon as a waiter has
// returned true (given that nothing else calls it any more).
// word_ (64 bits):
//   bits 0..62  the count (add: +1; count_down: -1; never below 0)
//   bit  63     kWaiterBit: set exactly while waiters_ > 0, i.e. while some thread is registered
//               (under m_) to wait for the count to reach 0. Changed only under m_: set by the
//               first waiter to register (CAS, only while count > 0); cleared by the decrement
//               that takes the count to 0 (it releases every registered waiter), or by the last
//               waiter that leaves because its stop() held (wait_zero_unless).
// count_down: while kWaiterBit is clear, one CAS outside m_, and nothing touched after it; when it
//   is set, the decrement is made under m_ and, if it takes the count to 0, it bumps generation_,
//   zeroes waiters_, clears the bit and notifies before unlocking.
// INV-Z1 (lifetime): a decrement made while a waiter is registered is made under m_, and a waiter
//   decides to return only under m_. So when a waiter returns, no count_down is left to touch
//   the object: each decrement it has seen either was made outside m_ (nothing touched after it)
//   or was made under m_, which has been unlocked. (A count_down still blocked on m_ has not
//   decremented: the count is not 0, and the waiter cannot return true because of it.)
// INV-Z2 (no lost wakeup): while a waiter is registered the bit is set, so the decrement that
//   takes the count to 0 is made under m_ and releases it.
// INV-Z3 (no early return): a waiter returns true only after reading the count at 0 under m_, or
//   when generation_ has changed since it registered (it read generation_ under m_ then), i.e.
//   after a decrement to 0 made after its registration. A zero reached and left again before it
//   registered cannot release it, however late that zero's count_down runs.
// Checked by the Relacy model tests/model/zero_wait_counter_model.cpp (handlers counting down on
// both paths, wait_zero_unless's stop path with interrupt(), INV-Z1 through a "destroyed"
// witness): it rejects Z1, Z2 or either order of the bit CAS relaxed (on success: after an add()
// the CAS can succeed on a decrement its Z2 load did not read), and breaks of INV-Z1, INV-Z2 and
// of kWaiterBit's rule. An acquire at Z3 instead of the CAS's on success would do as well.
class ZeroWaitCounter {
 public:
  void add() noexcept {
    // Relaxed: the counter orders nothing on the way up; the caller's later release operations
    // (ThreadPool::post's publication) order what the handler sees.
    word_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_down() noexcept {
    // Relaxed: a guess that the CAS checks.
    std::uint64_t cur = word_.load(std::memory_order_relaxed);
    while ((cur & kWaiterBit) == 0) {
      // (Z1) release on success: this work's effects happen-before a waiter that reads the count
      // at 0 with (Z2), and before the locked decrement (Z3) that releases a blocked waiter,
      // through the release sequence (every write of word_ is an RMW). Relaxed on failure: cur
      // is only retried.
      if (word_.compare_exchange_weak(cur, cur - 1, std::memory_order_release,
                                      std::memory_order_relaxed)) {
        return;  // INV-Z1: nothing is touched after the decrement
      }
    }
    count_down_locked();
  }
  std::uint64_t count() const noexcept {
    return word_.load(std::memory_order_relaxed) & kCountMask;  // relaxed: a snapshot
  }
  // Blocks until it has observed the count at zero, at or after the time of the call (INV-Z3).
  void wait_zero() {
    (void)wait_zero_unless([] { return false; });
  }
  // As wait_zero, but returns false, without having observed zero, as soon as stop() holds.
  // stop() is called under m_ (not concurrently with itself); whoever makes it true must then
  // call interrupt(). Returns true when it observed zero (then the count's users may destroy
  // the counter: INV-Z1).
  template <class Stop>
  bool wait_zero_unless(Stop stop) {
    std::unique_lock<std::mutex> lock(m_);
    std::uint64_t cur = word_.load(std::memory_order_acquire);  // (Z2) pairs with (Z1)
    if ((cur & kCountMask) == 0) return true;
    if (stop()) return false;
    if (waiters_++ == 0) {
      // The first waiter sets the bit (INV-Z2); it was clear (no waiter). acquire on failure:
      // the count may now read 0, see (Z2); acquire on success: the decrements made outside m_
      // up to this write (all of them: once the bit is set they take m_) reach the waiters here,
      // through (Z1)'s release sequences (every write of word_ is an RMW), not through (Z3).
      while (!word_.compare_exchange_weak(cur, cur | kWaiterBit, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
        if ((cur & kCountMask) == 0) {
          waiters_ = 0;
          return true;
        }
      }
    }
    const std::uint64_t gen = generation_;
    cv_.wait(lock, [&] { return generation_ != gen || stop(); });
    // (Z3) released: the decrement to zero was made under m_, which our relock acquires, after
    // acquiring every earlier decrement's effects.
    if (generation_ != gen) return true;
    // Leaving on stop(): the last registered waiter takes the bit back (count is > 0: else the
    // decrement to zero would have released us), so decrements go back to the lock-free path.
    // Relaxed: under m_; nothing is read through the bit.
    if (--waiters_ == 0) word_.fetch_and(~kWaiterBit, std::memory_order_relaxed);
    return false;
  }
  // True if the count is zero now; read under m_, so INV-Z1 holds as for a waiter.
  bool is_zero() {
    std::lock_guard<std::mutex> lock(m_);
    return (word_.load(std::memory_order_acquire) & kCountMask) == 0;  // (Z2) pairs with (Z1)
  }
  // Makes the registered waiters re-evaluate their stop() (see wait_zero_unless).
  void interrupt() noexcept {
    std::lock_guard<std::mutex> lock(m_);  // orders this after the waiters' last stop() call
    cv_.notify_all();
  }

 private:
  friend struct ZeroWaitCounterTestAccess;

  void count_down_locked() noexcept {
    std::lock_guard<std::mutex> lock(m_);
    // (Z3) Relaxed: the decrements made outside m_ reached every registered waiter through the
    // bit CAS's acquire (wait_zero_unless); this one's effects and the earlier locked ones reach
    // it through m_. No release: waiters read the count and generation_ under m_ only.
    const std::uint64_t old = word_.fetch_sub(1, std::memory_order_relaxed);
    // Not at zero, or the bit was cleared (no waiter) between our load and our lock: done.
    if (old != (kWaiterBit | 1)) return;
    ++generation_;
    waiters_ = 0;
    // Relaxed: under m_; a decrement that then takes the lock-free path needs nothing from us.
    word_.fetch_and(~kWaiterBit, std::memory_order_relaxed);
    cv_.notify_all();
  }

  static constexpr std::uint64_t kWaiterBit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kCountMask = kWaiterBit - 1;
  std::atomic<std::uint64_t> word_{0};
  std::mutex m_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;  // under m_: decrements to zero that released waiters
  std::uint64_t waiters_ = 0;     // under m_: registered waiters (kWaiterBit is set iff > 0)
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
};

// Counts one handler in flight until it is destroyed (the guard is declared before the function
// in its owners so that it is destroyed after it: INV, the handler object is gone before
// ~AsioContext can see the count at zero).
class InFlightGuard {
 public:
  InFlightGuard() noexcept = default;  // counts nothing
  explicit InFlightGuard(ZeroWaitCounter* c) noexcept : c_(c) { c_->add(); }
  InFlightGuard(InFlightGuard&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  InFlightGuard& operator=(InFlightGuard&& o) noexcept {
    if (this != &o) {
      if (c_ != nullptr) c_->count_down();
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;
  ~InFlightGuard() {
    if (c_ != nullptr) c_->count_down();
  }

 private:
  ZeroWaitCounter* c_ = nullptr;
};

// What the context keeps: a handler the pool refused after its shutdown (see the header). An
// intrusive list, so that keeping one allocates only its box.
struct RejectedHandler {
  virtual ~RejectedHandler() = default;
  RejectedHandler* next = nullptr;  // under AsioContext::rejected_mutex_
};
template <class F>
struct RejectedBox final : RejectedHandler {
  explicit RejectedBox(F&& g) : f(std::move(g)) {}
  F f;
};

// Where a CountedHandler that is destroyed without having run leaves its function object and its
// in-flight count: a local of execute(), which then knows why the pool gave it back (pool_closed:
// the context keeps it; anything else, e.g. std::bad_alloc: destroyed there, on the way out).
template <class F>
class UnrunHandler {
 public:
  UnrunHandler() = default;
  UnrunHandler(const UnrunHandler&) = delete;
  UnrunHandler& operator=(const UnrunHandler&) = delete;
  // Called from ~CountedHandler: a move of F that throws there terminates (a destructor).
  void take(InFlightGuard&& g, F&& f) noexcept {
    f_.emplace(std::move(f));
    guard_ = std::move(g);
  }
  std::optional<F>& function() noexcept { return f_; }

 private:
  InFlightGuard guard_;  // first member: destroyed last, after f_ (see InFlightGuard)
  std::optional<F> f_;
};

// The callable given to ThreadPool::post for a queued handler. The pool destroys it without
// running it only inside post() (it refused it, or failed to queue it: "a call that throws
// accepted nothing"), while the execute() that owns `unrun_` is still on the stack; then the
// handler goes to unrun_. Once it runs (or has been moved from) unrun_ is null.
template <class F>
class CountedHandler {
 public:
  template <class G>
  CountedHandler(ZeroWaitCounter* c, UnrunHandler<F>* unrun, G&& g)
      : guard_(c), unrun_(unrun), f_(std::forward<G>(g)) {}
  CountedHandler(CountedHandler&& o) noexcept(std::is_nothrow_move_constructible_v<F>)
      : guard_(std::move(o.guard_)),
        unrun_(std::exchange(o.unrun_, nullptr)),
        f_(std::move(o.f_)) {}
  CountedHandler(const CountedHandler&) = delete;
  CountedHandler& operator=(const CountedHandler&) = delete;
  CountedHandler& operator=(CountedHandler&&) = delete;
  ~CountedHandler() {
    if (unrun_ != nullptr) unrun_->take(std::move(guard_), std::move(f_));
  }

  void operator()() {
    unrun_ = nullptr;
    f_();
  }

 private:
  InFlightGuard guard_;     // first member: destroyed last, after f_ (see InFlightGuard)
  UnrunHandler<F>* unrun_;  // null once run or moved from
  F f_;
};
}  // namespace asio_detail

template <class Allocator, unsigned Bits>
class BasicAsioExecutor;

/// The default executor: blocking.possibly, relationship.fork, outstanding_work.untracked,
/// std::allocator<void>.
using AsioExecutor = BasicAsioExecutor<std::allocator<void>, 0>;

/// An Asio execution context over a ThreadPool owned elsewhere. Not copyable or movable.
class AsioContext : public boost::asio::execution_context {
 public:
  using executor_type = AsioExecutor;

  /// Does not start anything; the pool must outlive this object.
  explicit AsioContext(ThreadPool& pool) : pool_(&pool) {}
  AsioContext(const AsioContext&) = delete;
  AsioContext& operator=(const AsioContext&) = delete;

  /// Waits until no queued handler is in flight, destroys the rejected ones, shuts the context's
  /// Asio services down, waits for (and destroys the rejected of) the handlers that shutdown
  /// produced (destroyed coroutines), then destroys the services. See the header (Lifetime).
  ~AsioContext() {
    handlers_.wait_zero();
    discard_kept();
    shutdown();
    // Shutting the services down destroyed their pending operations; a coroutine's handler among
    // them posted the destruction of its frame to the executor (Asio's awaitable_thread): it
    // runs on the pool, or was kept (pool shut down). The frames still use the services (their
    // timers, strands), so both kinds must be gone before destroy(); destroying a kept one may
    // post again.
    do {
      handlers_.wait_zero();
    } while (discard_kept());
    destroy();
  }

  executor_type get_executor() noexcept;

  ThreadPool& pool() const noexcept { return *pool_; }

  /// True when the calling thread is a worker of this context's pool.
  bool running_in_this_thread() const noexcept { return pool_->running_in_this_thread(); }

  /// Blocks until it has observed no tracked work (tracked executors, work guards: Asio holds
  /// them for co_spawn'ed coroutines, strands and asynchronous operations in progress) and no
  /// queued handler in flight. Handlers the pool refused after its shutdown (rejected_handlers())
  /// can never run, and they may hold tracked work (a co_spawn'ed coroutine's frame holds work
  /// guards): join() destroys them, as discard_rejected() does, those kept before the call and
  /// those kept while it waits, so that it does not wait for their work forever. Throws
  /// std::logic_error when called on a worker of the pool (the work it waits for could need this
  /// very thread). Callable from several threads.
  void join() {
    if (running_in_this_thread()) {
      throw std::logic_error("parkpool::AsioContext::join called from a worker of its pool");
    }
    const auto kept = [this] { return has_kept(); };
    for (;;) {
      handlers_.wait_zero();
      discard_kept();  // nonempty only once the pool is closed: these never run
      // Woken early when a handler is kept meanwhile (keep_rejected): destroy it too.
      if (!work_.wait_zero_unless(kept)) continue;
      handlers_.wait_zero();
      // A handler may have created tracked work (a co_spawn, a strand) before it finished.
      if (work_.is_zero()) return;
    }
  }

  /// Snapshots (approximate while the pool runs): tracked work units, and handlers in flight.
  std::uint64_t outstanding_work() const noexcept { return work_.count(); }
  std::uint64_t handlers_in_flight() const noexcept { return handlers_.count(); }

  /// Handlers refused by the pool after its shutdown, since construction (see the header).
  std::uint64_t rejected_handlers() const noexcept {
    return rejected_count_.load(std::memory_order_relaxed);  // relaxed: a statistic
  }
  /// Destroys the rejected handlers kept so far (without running them), and any that
  /// destroying them rejects in turn. Do not call it while one of them may still be in use by
  /// the thread that gave it (e.g. from inside that handler's coroutine); join() and
  /// ~AsioContext() call it too.
  void discard_rejected() noexcept { discard_kept(); }

 private:
  template <class, unsigned>
  friend class BasicAsioExecutor;

  // Keeps a handler the pool refused (execute(), on pool_closed), moving it from f. If its box
  // cannot be allocated, or moving F throws, std::terminate is called (header: the handler can
  // be neither run nor safely destroyed here).
  template <class F>
  void keep_rejected(F& f) noexcept {
    asio_detail::RejectedHandler* box = nullptr;
    try {
      box = new asio_detail::RejectedBox<F>(std::move(f));
    } catch (...) {
      std::terminate();  // documented in the header (After ThreadPool::shutdown())
    }
    {
      std::lock_guard<std::mutex> lock(rejected_mutex_);
      if (kept_tail_ != nullptr) {
        kept_tail_->next = box;
      } else {
        kept_head_ = box;
      }
      kept_tail_ = box;
    }
    rejected_count_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    work_.interrupt();  // a join() waiting for tracked work destroys it (join's `kept`)
  }
  bool has_kept() {
    std::lock_guard<std::mutex> lock(rejected_mutex_);
    return kept_head_ != nullptr;
  }
  // Destroys the kept handlers, oldest first, until none is left (destroying one may keep
  // another: a coroutine's frame is destroyed through its executor). True if there were any.
  bool discard_kept() noexcept {
    bool any = false;
    for (;;) {
      asio_detail::RejectedHandler* batch = nullptr;
      {
        std::lock_guard<std::mutex> lock(rejected_mutex_);
        batch = std::exchange(kept_head_, nullptr);
        kept_tail_ = nullptr;
      }
      if (batch == nullptr) return any;
      any = true;
      // Outside the lock: a handler's destructor may keep another one.
      while (batch != nullptr) {
        delete std::exchange(batch, batch->next);
      }
    }
  }

  ThreadPool* pool_;
  asio_detail::ZeroWaitCounter work_;      // tracked executors and work guards
  asio_detail::ZeroWaitCounter handlers_;  // queued handlers not yet destroyed
  std::atomic<std::uint64_t> rejected_count_{0};
  std::mutex rejected_mutex_;  // taken under work_'s mutex (join's `kept`), never the reverse
  asio_detail::RejectedHandler* kept_head_ = nullptr;  // under rejected_mutex_; owning list
  asio_detail::RejectedHandler* kept_tail_ = nullptr;  // under rejected_mutex_
};

/// An executor of an AsioContext; see the header comment for its properties. Cheap to copy (one
/// pointer and the allocator; a tracked one also bumps the context's work count).
template <class Allocator, unsigned Bits>
class BasicAsioExecutor {
 public:
  using context_type = AsioContext;

  /// The executor of `ctx` with these properties.
  explicit BasicAsioExecutor(AsioContext& ctx, const Allocator& a = Allocator()) noexcept
      : ctx_(&ctx), alloc_(a) {
    work_started();
  }
  BasicAsioExecutor(const BasicAsioExecutor& o) noexcept : ctx_(o.ctx_), alloc_(o.alloc_) {
    work_started();
  }
  BasicAsioExecutor(BasicAsioExecutor&& o) noexcept : ctx_(o.ctx_), alloc_(std::move(o.alloc_)) {
    if constexpr ((Bits & asio_detail::kTracked) != 0) o.ctx_ = nullptr;  // the unit moves
  }
  BasicAsioExecutor& operator=(const BasicAsioExecutor& o) noexcept {
    if (this != &o) {
      BasicAsioExecutor copy(o);
      *this = std::move(copy);
    }
    return *this;
  }
  BasicAsioExecutor& operator=(BasicAsioExecutor&& o) noexcept {
    if (this != &o) {
      work_finished();
      ctx_ = o.ctx_;
      alloc_ = std::move(o.alloc_);
      if constexpr ((Bits & asio_detail::kTracked) != 0) o.ctx_ = nullptr;
    }
    return *this;
  }
  ~BasicAsioExecutor() { work_finished(); }

  // ---- require ----
  BasicAsioExecutor<Allocator, Bits & ~asio_detail::kBlockingNever> require(
      boost::asio::execution::blocking_t::possibly_t) const noexcept {
    return rebind<Bits & ~asio_detail::kBlockingNever>();
  }
  BasicAsioExecutor<Allocator, Bits | asio_detail::kBlockingNever> require(
      boost::asio::execution::blocking_t::never_t) const noexcept {
    return rebind<Bits | asio_detail::kBlockingNever>();
  }
  BasicAsioExecutor<Allocator, Bits & ~asio_detail::kContinuation> require(
      boost::asio::execution::relationship_t::fork_t) const noexcept {
    return rebind<Bits & ~asio_detail::kContinuation>();
  }
  BasicAsioExecutor<Allocator, Bits | asio_detail::kContinuation> require(
      boost::asio::execution::relationship_t::continuation_t) const noexcept {
    return rebind<Bits | asio_detail::kContinuation>();
  }
  BasicAsioExecutor<Allocator, Bits | asio_detail::kTracked> require(
      boost::asio::execution::outstanding_work_t::tracked_t) const noexcept {
    return rebind<Bits | asio_detail::kTracked>();
  }
  BasicAsioExecutor<Allocator, Bits & ~asio_detail::kTracked> require(
      boost::asio::execution::outstanding_work_t::untracked_t) const noexcept {
    return rebind<Bits & ~asio_detail::kTracked>();
  }
  template <class OtherAllocator>
  BasicAsioExecutor<OtherAllocator, Bits> require(
      boost::asio::execution::allocator_t<OtherAllocator> a) const noexcept {
    return BasicAsioExecutor<OtherAllocator, Bits>(*ctx_, a.value());
  }
  BasicAsioExecutor<std::allocator<void>, Bits> require(
      boost::asio::execution::allocator_t<void>) const noexcept {
    return BasicAsioExecutor<std::allocator<void>, Bits>(*ctx_);
  }

  // ---- query ----
  static constexpr boost::asio::execution::mapping_t query(
      boost::asio::execution::mapping_t) noexcept {
    return boost::asio::execution::mapping.thread;
  }
  AsioContext& query(boost::asio::execution::context_t) const noexcept { return *ctx_; }
  static constexpr boost::asio::execution::blocking_t query(
      boost::asio::execution::blocking_t) noexcept {
    return (Bits & asio_detail::kBlockingNever) != 0
               ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.never)
               : boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly);
  }
  static constexpr boost::asio::execution::relationship_t query(
      boost::asio::execution::relationship_t) noexcept {
    return (Bits & asio_detail::kContinuation) != 0
               ? boost::asio::execution::relationship_t(
                     boost::asio::execution::relationship.continuation)
               : boost::asio::execution::relationship_t(boost::asio::execution::relationship.fork);
  }
  static constexpr boost::asio::execution::outstanding_work_t query(
      boost::asio::execution::outstanding_work_t) noexcept {
    return (Bits & asio_detail::kTracked) != 0
               ? boost::asio::execution::outstanding_work_t(
                     boost::asio::execution::outstanding_work.tracked)
               : boost::asio::execution::outstanding_work_t(
                     boost::asio::execution::outstanding_work.untracked);
  }
  template <class OtherAllocator>
  Allocator query(boost::asio::execution::allocator_t<OtherAllocator>) const noexcept {
    return alloc_;
  }
  Allocator query(boost::asio::execution::allocator_t<void>) const noexcept { return alloc_; }
  std::size_t query(boost::asio::execution::occupancy_t) const noexcept {
    return ctx_->pool().size();
  }

  /// True when the calling thread is a worker of this executor's pool.
  bool running_in_this_thread() const noexcept { return ctx_->running_in_this_thread(); }

  friend bool operator==(const BasicAsioExecutor& a, const BasicAsioExecutor& b) noexcept {
    return a.ctx_ == b.ctx_ && a.alloc_ == b.alloc_;
  }
  friend bool operator!=(const BasicAsioExecutor& a, const BasicAsioExecutor& b) noexcept {
    return !(a == b);
  }

  /// Runs f() on a worker of the pool: at once on this thread if it is a worker and the executor
  /// is blocking.possibly, else queued with ThreadPool::post. After the pool's shutdown (from a
  /// non-worker thread) f is kept, never run, and counted in rejected_handlers() (header
  /// comment); never throws pool_closed. Throws std::bad_alloc when the pool cannot queue f
  /// (f is then destroyed, not run, not kept), or what constructing F from f throws; when f
  /// runs inline, whatever f throws.
  template <class Function>
  void execute(Function&& f) const {
    if constexpr ((Bits & asio_detail::kBlockingNever) == 0) {
      if (ctx_->running_in_this_thread()) {
        std::decay_t<Function> local(std::forward<Function>(f));
        local();
        return;
      }
    }
    using F = std::decay_t<Function>;
    // Declared before the handler: whatever the pool gives back unrun lands here (and any
    // exception but pool_closed destroys it here, on the way out of execute()).
    asio_detail::UnrunHandler<F> unrun;
    try {
      ctx_->pool().post(
          asio_detail::CountedHandler<F>(&ctx_->handlers_, &unrun, std::forward<Function>(f)));
    } catch (const pool_closed&) {
      // The pool is shut down and refused f: keep it (header comment). Its in-flight count is
      // held by `unrun` until it is kept: join() and ~AsioContext() wait for that.
      if (unrun.function().has_value()) ctx_->keep_rejected(*unrun.function());
    }
  }

  // Networking-TS style manual work counting; Asio 1.74 does not call these (is_executor is
  // false for this type: its make_work_guard(ex) holds prefer(ex, outstanding_work.tracked)
  // instead). Each on_work_started() must be matched by one on_work_finished(); join() waits for
  // the difference to be zero.
  void on_work_started() const noexcept { ctx_->work_.add(); }
  void on_work_finished() const noexcept { ctx_->work_.count_down(); }

 private:
  template <class, unsigned>
  friend class BasicAsioExecutor;

  template <unsigned NewBits>
  BasicAsioExecutor<Allocator, NewBits> rebind() const noexcept {
    return BasicAsioExecutor<Allocator, NewBits>(*ctx_, alloc_);
  }
  // A moved-from tracked executor (ctx_ null) copies into another empty one, as Asio's own
  // io_context executor does.
  void work_started() noexcept {
    if constexpr ((Bits & asio_detail::kTracked) != 0) {
      if (ctx_ != nullptr) ctx_->work_.add();
    }
  }
  void work_finished() noexcept {
    if constexpr ((Bits & asio_detail::kTracked) != 0) {
      if (ctx_ != nullptr) ctx_->work_.count_down();
    }
  }

  AsioContext* ctx_;
  // Empty for std::allocator<void>: takes no room (header comment, Size and cost).
  [[no_unique_address]] Allocator alloc_;
};

inline AsioContext::executor_type AsioContext::get_executor() noexcept {
  return executor_type(*this);
}

// The header comment's size: one pointer with an empty allocator.
static_assert(sizeof(AsioExecutor) == sizeof(void*));

}  // namespace parkpool

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
//                     calling thread, when that thread is a worker of this pool (exceptions from
//                     f then propagate to the caller, as with Asio's own executors); otherwise f
//                     is queued with ThreadPool::post. never: f is always queued. blocking.always
//                     is not offered: require() and prefer() of it do not compile (as in Asio,
//                     blocking.always is not preferable).
//   relationship      fork (default) | continuation. Recorded and reported by query; scheduling
//                     is the same for both (ThreadPool::post from a worker already pushes to that
//                     worker's own deque, which it pops LIFO: continuations run next, hot in
//                     cache; other workers steal the oldest).
//   outstanding_work  untracked (default) | tracked. A tracked executor counts as one unit of
//                     outstanding work of its AsioContext from construction (or copy) to
//                     destruction; AsioContext::join() waits for it. Asio takes tracked executors
//                     for the lifetime of an asynchronous operation (co_spawn, strands,
//                     composed operations), so join() waits for those. A moved-from tracked
//                     executor holds nothing; it may only be destroyed or assigned to.
//                     make_work_guard(ex) works too (through on_work_started/on_work_finished).
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
//
// After ThreadPool::shutdown() (documented behaviour: nothing is dropped silently)
//   Asio's rule for a stopped io_context or thread_pool applies: a handler given to execute()
//   (post / dispatch / defer / co_spawn / a bound completion handler) from a thread that is not a
//   worker of the pool, once the pool's shutdown() has begun, is accepted but never runs. The
//   pool refuses it (ThreadPool::post throws parkpool::pool_closed); execute() catches that,
//   keeps the handler object, and counts it in rejected_handlers(). Kept handlers are destroyed,
//   still without running, by discard_rejected() or ~AsioContext(). execute() does not throw
//   pool_closed: Asio calls execute() from places that must not throw (co_spawn's entry point
//   dispatches its completion from inside the coroutine, where an exception would terminate the
//   process), and destroying the handler inside execute() could destroy a coroutine frame that
//   is still running. Check rejected_handlers() (or the pool's state) to see that it happened.
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
//   then shuts down and destroys the Asio services (strands, timers) of the context. It does not
//   wait for tracked work.
//   A handler that keeps re-posting itself forever makes ~AsioContext() and join() wait forever.
//   Do not destroy an AsioContext on a worker of its pool while handlers are queued: the
//   destructor would wait on the thread they may need.
//
// Size and cost
//   An executor is a pointer plus its allocator (8 bytes with std::allocator<void>). A queued
//   handler costs one ThreadPool::post (one allocation holding the handler) and two relaxed or
//   acq_rel RMWs on the context's in-flight counter; a tracked executor's copy one RMW each way.
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
#include <memory>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "parkpool/thread_pool.hpp"

namespace parkpool {

class AsioContext;

namespace asio_detail {
// Property bits of BasicAsioExecutor (its template parameter).
inline constexpr unsigned kBlockingNever = 1;   // blocking.never (else blocking.possibly)
inline constexpr unsigned kContinuation = 2;    // relationship.continuation (else fork)
inline constexpr unsigned kTracked = 4;         // outstanding_work.tracked (else untracked)

// A counter that threads can wait to see at zero, safe to destroy as soon as a waiter returns.
// word_ (64 bits):
//   bits 0..62  the count (add: +1; count_down: -1; never below 0)
//   bit  63     kWaiterBit: some thread is blocked (under m_) waiting for the count to reach 0.
//               Set by a waiter (CAS, only while count > 0); cleared by the count_down that takes
//               the count to 0, under m_.
// INV-Z1: a count_down that does not read kWaiterBit|1 touches nothing after its RMW, so a
//   waiter that returns without blocking cannot race with it; a count_down that reads
//   kWaiterBit|1 wakes the waiters under m_, and they cannot return before it unlocks m_.
class ZeroWaitCounter {
 public:
  void add() noexcept {
    // Relaxed: the counter orders nothing on the way up; the caller's later release operations
    // (ThreadPool::post's publication) order what the handler sees.
    word_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_down() noexcept {
    // (Z1) release: this work's effects happen-before a waiter that reads the count at 0 with
    // (Z2), through the release sequence of the decrements. acquire: the decrement that wakes a
    // blocked waiter (Z3) must carry the effects of the earlier decrements too; it does so by
    // acquiring them here, before its unlock of m_ that the waiter acquires.
    const std::uint64_t old = word_.fetch_sub(1, std::memory_order_acq_rel);
    if (old == (kWaiterBit | 1)) wake();  // INV-Z1
  }
  std::uint64_t count() const noexcept {
    return word_.load(std::memory_order_relaxed) & kCountMask;  // relaxed: a snapshot
  }
  // Blocks until the count has been observed at zero.
  void wait_zero() {
    std::unique_lock<std::mutex> lock(m_);
    std::uint64_t cur = word_.load(std::memory_order_acquire);  // (Z2) pairs with (Z1)
    for (;;) {
      if ((cur & kCountMask) == 0) return;
      if ((cur & kWaiterBit) != 0) break;  // another waiter set it; the wake is for all
      // acquire on failure: see (Z2). Relaxed would do on success (m_ orders the rest).
      if (word_.compare_exchange_weak(cur, cur | kWaiterBit, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        break;
      }
    }
    const std::uint64_t gen = generation_;
    cv_.wait(lock, [&] { return generation_ != gen; });
    // (Z3) the waker's count_down (Z1) is ordered before its unlock of m_, which our relock
    // acquires: every counted piece of work's effects are visible here.
  }

 private:
  void wake() noexcept {
    std::lock_guard<std::mutex> lock(m_);
    // Clears the bit only if no new waiter round started (count still 0 and bit set); a racing
    // add() since our RMW leaves the bit for its own count_down to clear (it will read
    // kWaiterBit|1 again and wake; an extra wake is harmless).
    std::uint64_t expected = kWaiterBit;
    // Relaxed: everything the waiters need is ordered by m_ and (Z1).
    word_.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
    ++generation_;
    cv_.notify_all();
  }

  static constexpr std::uint64_t kWaiterBit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kCountMask = kWaiterBit - 1;
  std::atomic<std::uint64_t> word_{0};
  std::mutex m_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;  // under m_
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
};

// The callable the pool runs for a queued handler: counts it in flight until it is destroyed.
// The guard is declared before the function so that it is destroyed after it (INV: the handler
// object is gone before ~AsioContext can see the count at zero).
class InFlightGuard {
 public:
  explicit InFlightGuard(ZeroWaitCounter* c) noexcept : c_(c) { c_->add(); }
  InFlightGuard(InFlightGuard&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;
  InFlightGuard& operator=(InFlightGuard&&) = delete;
  ~InFlightGuard() {
    if (c_ != nullptr) c_->count_down();
  }

 private:
  ZeroWaitCounter* c_;
};

// What ~AsioContext destroys: a handler the pool refused after its shutdown (see the header).
struct RejectedHandler {
  virtual ~RejectedHandler() = default;
};
template <class F>
struct RejectedBox final : RejectedHandler {
  explicit RejectedBox(F&& g) : f(std::move(g)) {}
  F f;
};

// The callable given to ThreadPool::post for a queued handler. The pool destroys it without
// running it only when it refused it (pool_closed): then the handler is handed to the context.
template <class F>
class CountedHandler {
 public:
  template <class G>
  CountedHandler(AsioContext* ctx, ZeroWaitCounter* c, G&& g)
      : guard_(c), ctx_(ctx), f_(std::forward<G>(g)) {}
  CountedHandler(CountedHandler&& o) noexcept(std::is_nothrow_move_constructible_v<F>)
      : guard_(std::move(o.guard_)), ctx_(std::exchange(o.ctx_, nullptr)), f_(std::move(o.f_)) {}
  CountedHandler(const CountedHandler&) = delete;
  CountedHandler& operator=(const CountedHandler&) = delete;
  CountedHandler& operator=(CountedHandler&&) = delete;
  ~CountedHandler();  // defined after AsioContext

  void operator()() {
    ran_ = true;
    f_();
  }
  // Not refused, just failed to be queued: destroy normally (no keep_rejected).
  void disarm() noexcept { ran_ = true; }

 private:
  InFlightGuard guard_;  // first member: destroyed last, after f_ (see InFlightGuard)
  AsioContext* ctx_;     // null once moved from
  bool ran_ = false;
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

  /// Waits until no queued handler is in flight, then shuts down and destroys the context's
  /// Asio services. See the header comment (Lifetime).
  ~AsioContext() {
    handlers_.wait_zero();
    discard_rejected();
    shutdown();
    destroy();
  }

  executor_type get_executor() noexcept;

  ThreadPool& pool() const noexcept { return *pool_; }

  /// True when the calling thread is a worker of this context's pool.
  bool running_in_this_thread() const noexcept {
    return pool_->running_in_this_thread();
  }

  /// Blocks until it has observed no tracked work (tracked executors, work guards: Asio holds
  /// them for co_spawn'ed coroutines, strands and asynchronous operations in progress) and no
  /// queued handler in flight. Throws std::logic_error when called on a worker of the pool
  /// (the work it waits for could need this very thread). Callable from several threads.
  void join() {
    if (running_in_this_thread()) {
      throw std::logic_error("parkpool::AsioContext::join called from a worker of its pool");
    }
    do {
      work_.wait_zero();
      handlers_.wait_zero();
      // A handler may have created tracked work (a co_spawn, a strand) before it finished.
    } while (work_.count() != 0);
  }

  /// Snapshots (approximate while the pool runs): tracked work units, and handlers in flight.
  std::uint64_t outstanding_work() const noexcept { return work_.count(); }
  std::uint64_t handlers_in_flight() const noexcept { return handlers_.count(); }

  /// Handlers refused by the pool after its shutdown, since construction (see the header).
  std::uint64_t rejected_handlers() const noexcept {
    return rejected_count_.load(std::memory_order_relaxed);  // relaxed: a statistic
  }
  /// Destroys the rejected handlers kept so far (without running them). Do not call it while
  /// one of them may still be in use by the thread that gave it (e.g. from inside that handler's
  /// coroutine); ~AsioContext() calls it when nothing runs any more.
  void discard_rejected() noexcept {
    for (;;) {
      std::vector<std::unique_ptr<asio_detail::RejectedHandler>> batch;
      {
        std::lock_guard<std::mutex> lock(rejected_mutex_);
        batch.swap(rejected_);
      }
      if (batch.empty()) return;
      batch.clear();  // outside the lock: a handler's destructor may be rejected work's owner
    }
  }

 private:
  template <class, unsigned>
  friend class BasicAsioExecutor;
  template <class>
  friend class asio_detail::CountedHandler;

  // Called from ~CountedHandler of a refused handler. Allocation failure here cannot be
  // reported (a destructor): the process terminates, as for any allocation failure in noexcept.
  template <class F>
  void keep_rejected(F&& f) noexcept {
    auto box = std::make_unique<asio_detail::RejectedBox<F>>(std::move(f));
    rejected_count_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    std::lock_guard<std::mutex> lock(rejected_mutex_);
    rejected_.push_back(std::move(box));
  }

  ThreadPool* pool_;
  asio_detail::ZeroWaitCounter work_;      // tracked executors and work guards
  asio_detail::ZeroWaitCounter handlers_;  // queued handlers not yet destroyed
  std::atomic<std::uint64_t> rejected_count_{0};
  std::mutex rejected_mutex_;
  std::vector<std::unique_ptr<asio_detail::RejectedHandler>> rejected_;  // under rejected_mutex_
};

namespace asio_detail {
template <class F>
CountedHandler<F>::~CountedHandler() {
  // Destroyed without having run: the pool refused it (pool_closed). Keep it (header comment).
  if (ctx_ != nullptr && !ran_) ctx_->keep_rejected(std::move(f_));
}
}  // namespace asio_detail

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
  BasicAsioExecutor(BasicAsioExecutor&& o) noexcept
      : ctx_(o.ctx_), alloc_(std::move(o.alloc_)) {
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
  /// comment). Throws std::bad_alloc; when f runs inline, whatever f throws.
  template <class Function>
  void execute(Function&& f) const {
    if constexpr ((Bits & asio_detail::kBlockingNever) == 0) {
      if (ctx_->running_in_this_thread()) {
        std::decay_t<Function> local(std::forward<Function>(f));
        local();
        return;
      }
    }
    using Handler = asio_detail::CountedHandler<std::decay_t<Function>>;
    Handler h(ctx_, &ctx_->handlers_, std::forward<Function>(f));
    try {
      ctx_->pool().post(std::move(h));
    } catch (const pool_closed&) {
      // The pool destroyed its Handler without running it; that destructor gave the function
      // object to the context (keep_rejected) and its guard counted it down.
    } catch (...) {
      h.disarm();  // std::bad_alloc before h was moved: destroy it here, do not keep it
      throw;
    }
  }

  // Networking-TS style work counting, for boost::asio::make_work_guard(ex) (Asio 1.74's
  // executor_work_guard calls these). Each on_work_started() must be matched by one
  // on_work_finished(); join() waits for the difference to be zero.
  void on_work_started() const noexcept { ctx_->work_.add(); }
  void on_work_finished() const noexcept { ctx_->work_.count_down(); }

 private:
  template <class, unsigned>
  friend class BasicAsioExecutor;

  template <unsigned NewBits>
  BasicAsioExecutor<Allocator, NewBits> rebind() const noexcept {
    return BasicAsioExecutor<Allocator, NewBits>(*ctx_, alloc_);
  }
  void work_started() noexcept {
    if constexpr ((Bits & asio_detail::kTracked) != 0) ctx_->work_.add();
  }
  void work_finished() noexcept {
    if constexpr ((Bits & asio_detail::kTracked) != 0) {
      if (ctx_ != nullptr) ctx_->work_.count_down();
    }
  }

  AsioContext* ctx_;
  Allocator alloc_;
};

inline AsioContext::executor_type AsioContext::get_executor() noexcept {
  return executor_type(*this);
}

}  // namespace parkpool

// parkpool::ThreadPool: a work-stealing thread pool whose idle workers sleep (and wake) through
// parkpool::IdleCoordinator. Also TaskGroup, join and parallel_for on top of it.
//
// What it is
//   N worker threads. Each owns a Chase-Lev deque for the work it spawns (LIFO for itself, stolen
//   FIFO by others from a random victim; from a queue of 65 or more (64 left after the first
//   steal), half of it at a time, at most 32 tasks); work from other threads goes through one
//   MPMC injector queue (a two-lock queue over 4 KiB chunks: detail/injector.hpp). Idle workers
//   spin for a short adaptive time budget, then park; a submit wakes one sleeper only when no
//   worker is already searching (pool/SLEEP.md).
//
// Entry points and what they cost
//   post(f)          fire-and-forget. From outside the pool, a trivially copyable callable of at
//                    most 40 bytes (8-aligned) is stored inline in the injector's 56-byte slot:
//                    no allocation in steady state. Otherwise one task object (an 8-byte header and
//                    the decayed callable); up to 48 bytes it takes a 56-byte block from the
//                    calling worker's cache, returned there by whichever worker runs it (no malloc
//                    in steady state: detail/task_cache.hpp), else it is one allocation. On a
//                    worker of this pool: push to its deque (no lock); a backlog larger than its
//                    ring (256 at first) doubles the ring, and the deque keeps every ring it grew
//                    through (about 16 bytes per task of the largest backlog it held: a thief may
//                    still read an old ring) until the worker has stayed idle, its deque empty,
//                    for PoolOptions::deque_ring_hold (1 s; bursts that come back sooner keep
//                    the grown ring, for 10 holds at most): it then returns to a ring of 256
//                    and frees the others, after a process-wide barrier (membarrier) and a
//                    check that no thief is reading them (kept for the next idle if one is).
//                    Only where the pool's asymmetric barrier is available
//                    (IdleCoordinator::asymmetric(): not under TSAN or valgrind, nor where
//                    seccomp refuses membarrier); without it the rings are kept until the pool
//                    is destroyed. Elsewhere: the injector (its producer lock, uncontended
//                    with one submitting thread), whose emptied chunks go back to operator delete
//                    (one spare kept). A syscall only when a sleeper is woken.
//   submit(f, a...)  as post, plus a std::promise/future (its shared state is one more allocation).
//   TaskGroup        run(f) as post, counted by the group, except that on the owner worker a
//                    callable of at most 40 bytes goes into the group's own slot while that is
//                    free (fork-join code: no task block at all); wait() runs the pool's tasks
//                    while the group has pending tasks when called on a worker (never blocks a
//                    worker; the tasks it runs nest on the waiter's stack); on another thread it
//                    blocks.
//   join(pool, a, b) runs a here while b is offered to thieves; no heap allocation on a worker
//                    (b's job lives on this stack frame), except that a nest holding more b's
//                    than a worker's deque ring (256 at first) grows the ring, which is then kept
//                    as for post (PoolOptions::deque_ring_hold), or for the pool's lifetime
//                    without the asymmetric barrier (measured before rings were reclaimed: 18
//                    allocations for the first nest 10,000 deep, none for the next; a nest
//                    after such an idle grows the ring again; std::bad_alloc is
//                    possible from join then); results returned as a std::pair, void as
//                    std::monostate, by value. Below the 8 outermost joins on a worker, b is kept
//                    private (no fence, no atomic) while no worker is idle; the first join that
//                    sees an idle worker publishes every private b (oldest first) to thieves, so an
//                    idle worker waits at most until the owner's next join for that (small) work
//                    (detail/pool_core.hpp, WorkerContext::private_jobs). Hence a() must not
//                    block waiting for something b() does (a latch b counts down, a future b
//                    sets): a private b runs only on this thread, after a() returns (or at a join
//                    that a() makes once a worker is idle), so such an a() hangs, where rayon's
//                    b would be stolen. From a non-worker thread the whole join is injected as a
//                    stack job and the caller blocks until a worker has run it.
//   parallel_for     recursive halving with join down to `grain` indices per leaf.
//
// Thread safety
//   Every member function of ThreadPool may be called from any thread, including from tasks,
//   except: shutdown() from a task of the same pool, or from its on_thread_start or
//   on_thread_stop hook, throws std::logic_error instead of deadlocking (shutdown() is joining
//   that very thread), and so destroying the pool from one of its own tasks writes that message
//   to stderr and calls std::terminate (the destructor calls shutdown() and cannot throw). A
//   TaskGroup's run() may be called by its owner and by its own running tasks; wait() by one thread
//   at a time (two threads that both block in wait() at once abort the process: see wait()).
//
// Memory ordering (user terms)
//   Everything a thread did before post/submit/run/join-b happens-before the task starts. A task's
//   effects happen-before: future::get() returning, TaskGroup::wait() returning, join() returning.
//
// Exceptions
//   A throwing task never kills a worker. submit: the exception goes to the future. TaskGroup: the
//   first exception is rethrown by wait(); it also cancels the group's tasks that have not started.
//   join: if a throws, b may or may not run, join waits for it if it was stolen, then rethrows a's
//   exception (a's wins over b's). parallel_for: the first exception seen propagates.
//   post: PoolOptions::on_post_exception (default: stderr + stats().total.post_exceptions).
//
// Shutdown and lifetime (nothing accepted is lost)
//   shutdown(): stops accepting work from non-worker threads (they get parkpool::pool_closed; the
//   callable is destroyed, never run), runs every task already accepted, including tasks those
//   tasks spawn while draining (a worker of the pool may still post during shutdown), wakes every
//   parked worker and joins them. Idempotent; concurrent callers all return after the join.
//   Afterwards every submit/post/run/join/parallel_for throws pool_closed. ~ThreadPool() calls
//   shutdown().
//   During the final drain, workers that find nothing poll (a few yields, then sleeps doubling
//   up to 4 ms) until every worker is idle at once, so a drain behind one long task costs each
//   other worker ~250 wakeups per second while it runs, and shutdown returns up to 4 ms after
//   the last task.
//   The pool must outlive every TaskGroup, future-less post and join that uses it.
//   Each accepted task runs exactly once (or is discarded by TaskGroup::cancel()); a call that
//   throws accepted nothing.
//
// Spurious wakeups / fairness
//   None visible to users. The injector (tasks submitted from outside the pool) is FIFO; a
//   worker's own deque (tasks submitted from its tasks) is LIFO; stealing is random. There is no
//   priority. One guarantee: external work is not starved by local work. A worker runs tasks
//   from its own deque while it has any, but every 64th time it looks for a task it takes the
//   oldest external one first, so a task at the head of the injector starts after at most 64
//   tasks of each busy worker, even when every worker's deque never empties (a task that posts
//   its own continuation, e.g. an Asio coroutine yielding through post()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "parkpool/detail/pool_core.hpp"
#include "parkpool/idle.hpp"
#include "parkpool/pool_options.hpp"

namespace parkpool {

/// Counters of one worker. Snapshots: exact once the pool is quiescent, approximate while it runs.
struct WorkerStats {
  std::uint64_t tasks_run = 0;        // post/submit/TaskGroup tasks run by this worker
  std::uint64_t tasks_cancelled = 0;  // TaskGroup tasks discarded after cancel()
  std::uint64_t spawned = 0;          // tasks accepted from this worker (its deque)
  std::uint64_t steals = 0;           // items taken from other workers' deques (incl. join jobs)
  std::uint64_t injector_pops = 0;    // items taken from the injector
  std::uint64_t post_exceptions = 0;  // exceptions that escaped post() tasks
  std::uint64_t parks = 0;            // from the IdleCoordinator (see IdleWorkerStats)
  std::uint64_t unparks = 0;
  std::uint64_t timed_out_parks = 0;
  std::uint64_t spin_hits = 0;
  std::uint64_t spin_yields = 0;
  WorkerStats& operator+=(const WorkerStats& o) noexcept;
};

struct PoolStats {
  std::vector<WorkerStats> workers;
  WorkerStats total;                    // sum over workers
  std::uint64_t external_accepted = 0;  // tasks accepted from non-worker threads
  // external_accepted + total.spawned. When quiescent: == total.tasks_run + total.tasks_cancelled.
  // Quiescent: after shutdown(); or once every accepted task was a submit() whose future is
  // ready (a submitted task is counted before its future becomes ready; a post() task, after it
  // returned, with nothing the caller can wait for).
  std::uint64_t tasks_accepted = 0;
};

class TaskGroup;

namespace detail {
struct PoolAccess;

template <class F>
struct PostTask final : TaskBase {
  template <class G>
  explicit PostTask(G&& g) : TaskBase(&execute), f(std::forward<G>(g)) {}
  static void execute(TaskBase* self, bool run) noexcept {
    auto* t = static_cast<PostTask*>(self);
    if (run) {
      WorkerContext* w = tl_current_worker;  // tasks only run on workers
      try {
        t->f();
      } catch (...) {
        w->pool->report_post_exception(*w, std::current_exception());
      }
      w->tasks_run.bump();
    }
    delete_task(t);
  }
  F f;
};

template <class R, class F, class... Args>
struct SubmitTask final : TaskBase {
  template <class G, class... A>
  explicit SubmitTask(G&& g, A&&... a)
      : TaskBase(&execute), f(std::forward<G>(g)), args(std::forward<A>(a)...) {}
  static void execute(TaskBase* self, bool run) noexcept {
    auto* t = static_cast<SubmitTask*>(self);
    if (run) {
      // Counted before the future becomes ready, so that stats() read after get() returned
      // includes this task.
      auto& tasks_run = tl_current_worker->tasks_run;
      bool counted = false;
      try {
        if constexpr (std::is_void_v<R>) {
          std::apply(std::move(t->f), std::move(t->args));
          tasks_run.bump();
          counted = true;
          t->promise.set_value();
        } else {
          decltype(auto) r = std::apply(std::move(t->f), std::move(t->args));
          tasks_run.bump();
          counted = true;
          if constexpr (std::is_reference_v<R>) {
            t->promise.set_value(r);
          } else {
            t->promise.set_value(std::move(r));
          }
        }
      } catch (...) {
        if (!counted) tasks_run.bump();
        t->promise.set_exception(std::current_exception());
      }
    }
    delete_task(t);  // not run: the promise breaks (the submit that failed already threw)
  }
  F f;
  std::tuple<Args...> args;
  std::promise<R> promise;
};

// Accepts a heap task or, on failure, releases it without running and rethrows.
inline void schedule_or_release(PoolCore& core, TaskBase* t) {
  try {
    core.schedule(t);
  } catch (...) {
    t->fn(t, false);
    throw;
  }
}

template <class F>
using join_result_t = std::conditional_t<std::is_void_v<std::invoke_result_t<F&>>, std::monostate,
                                         std::decay_t<std::invoke_result_t<F&>>>;

template <class R, class F>
R call_for_result(F& f) {
  if constexpr (std::is_same_v<R, std::monostate> && std::is_void_v<std::invoke_result_t<F&>>) {
    f();
    return {};
  } else {
    return f();
  }
}

// The b half of a join: lives on the joining thread's stack; pushed by pointer.
template <class F>
struct StackJob final : TaskBase {
  using R = join_result_t<F>;
  StackJob(F& callable, PoolCore* p) noexcept : TaskBase(&execute), f(&callable), pool(p) {}
  static void execute(TaskBase* self, bool run) noexcept {
    auto* j = static_cast<StackJob*>(self);
    PoolCore* p = j->pool;  // read before count_down (INV-L1)
    if (run) {
      try {
        j->result.emplace(call_for_result<R>(*j->f));
      } catch (...) {
        j->error = std::current_exception();
      }
    }
    j->latch.count_down(p);  // (L2) release: result/error happen-before the waiter's done()
  }
  F* f;
  PoolCore* pool;
  std::optional<R> result;
  std::exception_ptr error;
  CountLatch latch{1};
};

// Pops the local deque until `job` comes back (then returns true: it was not stolen) or the deque
// is empty (false: a thief has it). Items above `job` are the joiner's own leftovers (posts or
// TaskGroup runs made by a()); they are run.
inline bool reclaim(WorkerContext& w, TaskBase* job) noexcept {
  while (TaskBase* t = w.deque.pop()) {
    if (t == job) return true;
    t->fn(t, true);
  }
  return false;
}

// Counts the joins in progress on a worker (WorkerContext::join_depth).
struct JoinDepthGuard {
  explicit JoinDepthGuard(WorkerContext& w) noexcept : w_(w) { ++w_.join_depth; }
  ~JoinDepthGuard() { --w_.join_depth; }
  JoinDepthGuard(const JoinDepthGuard&) = delete;
  JoinDepthGuard& operator=(const JoinDepthGuard&) = delete;
  WorkerContext& w_;
};

// True when b's job came back unrun: it was the newest private job, or (public) it was popped
// from the deque. False when it ran or runs elsewhere: a thief took it, or this thread ran it
// while waiting inside a() (then its latch is done; reclaim() is skipped because below a job that
// was private the deque holds older jobs of enclosing joins, INV-J1, which must not be run here).
template <class J>
[[gnu::always_inline]] inline bool take_back(WorkerContext& w, J& job) noexcept {
  return w.take_private(&job) || (!job.latch.done() && reclaim(w, &job));
}

template <class A, class B>
auto join_on_worker(WorkerContext& w, A& a, B& b) -> std::pair<join_result_t<A>, join_result_t<B>> {
  using RA = join_result_t<A>;
  StackJob<B> job(b, w.pool);
  JoinDepthGuard depth(w);
  if (w.join_depth > WorkerContext::kPublicJoinDepth &&
      w.private_count < WorkerContext::kPrivateCap && !w.pool->idle_capacity()) {
    w.private_jobs[w.private_count++] = &job;  // nobody would steal it now (see pool_core.hpp)
  } else {
    // Owner's exact view (thieves only shrink it). Notify sleepers only when the deque was empty
    // or private jobs become visible: otherwise thieves already had work from us and were
    // notified then. A missed wake here loses no work, only parallelism: this thread pops `job`
    // itself if nobody stole it (rayon's rule).
    bool notify = w.deque.empty_hint();
    if (w.private_count != 0) {
      w.publish_private();
      notify = true;
    }
    w.deque.push(&job);
    if (notify) {
      w.pool->idle().notify_work_local(w.index);  // we are working
    } else if (w.stale_backlog()) {
      w.pool->idle().notify_stalled();  // a counted searcher is not taking our work
    }
  }
  std::optional<RA> ra;
  try {
    ra.emplace(call_for_result<RA>(a));
  } catch (...) {
    if (!take_back(w, job)) w.wait_until(job.latch);  // b is on our stack: wait for it
    throw;
  }
  if (take_back(w, job)) {
    // Not stolen: run b inline. Its exception propagates directly.
    return {std::move(*ra), call_for_result<join_result_t<B>>(b)};
  }
  w.wait_until(job.latch);  // returns at once if b already ran
  if (job.error) std::rethrow_exception(job.error);
  return {std::move(*ra), std::move(*job.result)};
}

}  // namespace detail

class ThreadPool {
 public:
  /// Starts options.threads workers. Throws std::invalid_argument if options.threads == 0 or
  /// exceeds IdleCoordinator::kMaxWorkers (65535), if options.deque_ring_hold is negative, or if
  /// the IdleOptions are invalid (all checked before any thread starts); std::system_error if a
  /// thread cannot be started.
  explicit ThreadPool(PoolOptions options = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Runs f(args...) once on a worker; the result or exception goes to the future.
  /// Throws pool_closed after shutdown (from a non-worker thread), or std::bad_alloc.
  /// The task (its copy of f and args) is destroyed on the worker after the future becomes
  /// ready, as with a std::packaged_task run by a pool: destructors of what f captured may still
  /// be running when get() returns. Capture nothing whose destruction the caller waits for;
  /// TaskGroup::run destroys the callable before wait() can return.
  template <class F, class... Args>
  auto submit(F&& f, Args&&... args)
      -> std::future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    auto* t = detail::new_task<detail::SubmitTask<R, std::decay_t<F>, std::decay_t<Args>...>>(
        *core_, std::forward<F>(f), std::forward<Args>(args)...);
    std::future<R> fut = t->promise.get_future();
    detail::schedule_or_release(*core_, t);
    return fut;
  }

  /// Runs f() once on a worker; nothing to wait for. Throws pool_closed after shutdown (from a
  /// non-worker thread), or std::bad_alloc. Exceptions from f go to on_post_exception.
  template <class F>
  void post(F&& f) {
    using D = std::decay_t<F>;
    if constexpr (std::is_trivially_copyable_v<D> &&
                  sizeof(D) <= detail::InjectedItem::kInlineBytes &&
                  alignof(D) <= detail::InjectedItem::kInlineAlign) {
      if (core_->local_worker() == nullptr) {
        // From outside the pool, a small trivially copyable callable travels inside the
        // injector's slot itself: no allocation in steady state.
        detail::InjectedItem item{nullptr, &call_inline<D>, {}};
        ::new (static_cast<void*>(item.storage)) D(std::forward<F>(f));
        core_->inject_item(item);
        return;
      }
    }
    detail::schedule_or_release(*core_,
                                detail::new_task<detail::PostTask<D>>(*core_, std::forward<F>(f)));
  }

  /// See the header comment. Throws std::logic_error when called from a task of this pool or
  /// from its on_thread_start or on_thread_stop hook.
  void shutdown();
  std::size_t size() const noexcept;
  PoolStats stats() const;
  /// True when the calling thread is one of this pool's workers (a task of this pool is running
  /// on it): then post/submit/run go to its own deque, join and TaskGroup::wait help instead of
  /// blocking, and shutdown() throws. Cheap: one thread-local load and a compare.
  bool running_in_this_thread() const noexcept;
  /// True once shutdown() (or the destructor) has closed the pool to work from outside; never
  /// false again. A thread that read true gets pool_closed from every submit/post/
  /// TaskGroup::run/join/parallel_for it makes afterwards from outside the pool's workers. A
  /// snapshot: while another thread's shutdown() is starting, such a call may throw pool_closed
  /// although this still read false, so catch pool_closed rather than test first. Tasks that run
  /// in the final drain read true (and may still post: see above). One relaxed load.
  bool is_shutdown() const noexcept;

 private:
  template <class D>
  static void call_inline(unsigned char* storage) {
    // The bytes were copied (memcpy) from an object of the trivially copyable type D.
    (*std::launder(reinterpret_cast<D*>(storage)))();
  }

  friend struct detail::PoolAccess;
  std::unique_ptr<detail::PoolCore> core_;
};

namespace detail {
struct PoolAccess {
  static PoolCore& core(ThreadPool& p) noexcept { return *p.core_; }
};

// join from a thread that is not a worker of `pool`: run the whole join on a worker.
template <class A, class B>
auto join_cold(ThreadPool& pool, A& a, B& b) -> std::pair<join_result_t<A>, join_result_t<B>> {
  PoolCore& core = PoolAccess::core(pool);
  auto whole = [&] {
    WorkerContext* w = core.local_worker();
    return join_on_worker(*w, a, b);
  };
  StackJob<decltype(whole)> job(whole, &core);
  core.inject(&job, /*is_task=*/false);  // throws pool_closed: nothing accepted
  job.latch.wait_external();
  if (job.error) std::rethrow_exception(job.error);
  return std::move(*job.result);
}
}  // namespace detail

/// Runs a() on this thread and b() on this thread or a thief; returns {a(), b()} (void results
/// as std::monostate). a() must not block waiting for b() (see the header comment: b may be
/// private to this thread until a() returns). Does not allocate on a worker of `pool`; nests
/// arbitrarily (each level costs one stack frame on the worker's stack). See the header comment
/// for exceptions.
template <class A, class B>
auto join(ThreadPool& pool, A&& a, B&& b)
    -> std::pair<detail::join_result_t<A>, detail::join_result_t<B>> {
  detail::PoolCore& core = detail::PoolAccess::core(pool);
  if (detail::WorkerContext* w = core.local_worker()) return detail::join_on_worker(*w, a, b);
  return detail::join_cold(pool, a, b);
}

/// A set of tasks to wait for together. Not copyable or movable (tasks refer to it).
/// The destructor waits for pending tasks (without rethrowing their exception).
class TaskGroup {
 public:
  /// Constructed on a worker of `pool`, that worker owns the group: its own run()s and the
  /// group's tasks it runs are counted without atomic read-modify-writes. wait() may be called
  /// on any thread, but off the owner it polls (see wait()).
  explicit TaskGroup(ThreadPool& pool) noexcept
      : core_(&detail::PoolAccess::core(pool)), latch_(core_->local_worker()) {}
  ~TaskGroup() {
    if (!done_here()) wait_impl();
  }
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Schedules f() as part of the group. Throws pool_closed / std::bad_alloc (then f is not
  /// accepted and the group is unchanged).
  /// Storage: the owner worker's first run() after the group's construction or after its own
  /// last wait() (not counting a run() that threw, nor one made by the callable's copy or move
  /// inside that run()) stores a callable of at most kInlineCallableBytes (8-aligned; an
  /// over-aligned one if it fits with its padding) in the group itself, as the b half of a join
  /// lives on join's stack frame: no task block is taken or freed. Every other task is allocated
  /// as for post(). Fork-join code (run one task, do the other half here, wait) thus allocates
  /// no task (a deque ring that fills up still grows, as for join). Either way the callable is
  /// destroyed before wait() returns.
  template <class F>
  void run(F&& f) {
    // The task first: building it may throw (the callable's copy or move, std::bad_alloc), and
    // then nothing may have been counted. The count before the task is published: its
    // count_down (run, or released by schedule_or_release when the pool is closed) needs it.
    using D = std::decay_t<F>;
    if constexpr (sizeof(Task<D, true>) <= kSlotBytes && alignof(Task<D, true>) <= kSlotAlign) {
      // The slot is free when slot_state_ is Slot::free: only the owner fills it and only the
      // owner's wait() frees it, after every task of the group, the slot's included, finished
      // (its acquire of the count, L1, orders the slot task's end before the reuse). So no flag
      // is shared with the executor: a run() that polled one the executor clears would take a
      // cache miss per task when thieves run the group's tasks (InternalSpawn with TaskGroup,
      // 1M run()s then one wait(): 21% slower in 8 alternating process pairs).
      // on_owner() first: slot_state_ is the owner's alone, and other threads call run() too (the
      // group's tasks on thieves): reading it there would race with the owner's writes.
      if (on_owner() && slot_state_ == Slot::free) {
        run_in_slot<D>(std::forward<F>(f));
        return;
      }
    }
    auto* t = detail::new_task<Task<D, false>>(*core_, std::forward<F>(f), this);
    latch_.add(detail::tl_current_worker);
    detail::schedule_or_release(*core_, t);
  }

  /// The largest callable run() stores in the group itself (see run()).
  static constexpr std::size_t kInlineCallableBytes = 40;

  /// Waits until every task run() so far (and those they run()) has finished or been discarded.
  /// On a worker of the pool it runs other tasks meanwhile. Rethrows the group's first exception.
  /// Afterwards the group is reset (not cancelled, no exception) and may be reused.
  /// On the owner worker, or for a group constructed off the pool, the last task wakes the waiter.
  /// Elsewhere (a group constructed in a task and waited by another thread) the owner's plain
  /// counts cannot wake it: it polls, yielding and then sleeping from 1 us doubling to ~1 ms, so
  /// it returns within ~1 ms of the last task finishing.
  /// One thread at a time (a wait nested in a task that the waiting thread runs is the same
  /// thread). Two threads that both block in wait() of the same group at once are detected: the
  /// process writes "two threads wait for the same group at once" to stderr and aborts, because
  /// the group's last task could wake only one of them. Blocking here means the waiters that
  /// register for the last task's wake: the owner worker, and any thread for a group constructed
  /// off the pool. Overlapping waits that do not both block (a wait that returns without
  /// sleeping, or a foreign waiter, which polls) are not detected; each of them returns once every
  /// task has finished, and only one of them rethrows the exception. The program is still wrong:
  /// on another run the same waits may both block.
  void wait() {
    wait_impl();
    // Every task has finished: on the owner, the slot may take the next run()'s task. (A wait
    // on another thread leaves slot_state_ alone: the owner may be in run() meanwhile. So does
    // a wait made by a callable's copy while run() builds its task in the slot: building.)
    if (on_owner() && slot_state_ == Slot::taken) {  // on_owner() first: as in run()
      slot_state_ = Slot::free;
    }
    cancelled_.store(false, std::memory_order_relaxed);  // relaxed: no task of the group is left
    // The first exception goes to one waiter only: an overlapping wait that was not detected
    // (see above) finds failed_ false and leaves error_ alone, so the two never race on it.
    // Relaxed: wait_impl's acquire (L1) already ordered the failing task's record() before us.
    if (!failed_.load(std::memory_order_relaxed) ||
        !failed_.exchange(false, std::memory_order_relaxed)) {
      return;
    }
    std::exception_ptr e = std::move(error_);
    error_ = nullptr;
    std::rethrow_exception(e);
  }

  /// Tasks of the group that have not started yet will be discarded (destroyed without running).
  /// Running tasks finish. wait() still waits for all of them.
  void cancel() noexcept {
    cancelled_.store(true, std::memory_order_relaxed);  // relaxed: a best-effort flag
  }
  bool is_cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }

 private:
  // Inline: the task lives in slot_ (run()); else in a task block (new_task).
  template <class F, bool Inline>
  struct Task final : detail::TaskBase {
    template <class G>
    Task(G&& g, TaskGroup* grp) : TaskBase(&execute), f(std::forward<G>(g)), group(grp) {}
    static void execute(TaskBase* self, bool run) noexcept {
      auto* t = static_cast<Task*>(self);
      TaskGroup* g = t->group;
      detail::PoolCore* core = g->core_;  // read before count_down (INV-L1)
      detail::WorkerContext* w = detail::tl_current_worker;
      if (run && !g->is_cancelled()) {
        try {
          t->f();
        } catch (...) {
          g->record(std::current_exception());
        }
        w->tasks_run.bump();
      } else if (run) {
        w->tasks_cancelled.bump();
      }
      // The callable dies before wait() can return (and the group with it).
      if constexpr (Inline) {
        t->~Task();  // the owner's wait() frees the slot after our count_down
      } else {
        detail::delete_task(t);
      }
      g->latch_.count_down(w, core);
    }
    F f;
    TaskGroup* group;
  };

  // The calling thread is the group's owner worker (the one that constructed it on the pool).
  // GroupLatch::is_owner: owner_mine_, not owner_, which shares its line with the count thieves
  // RMW (reading owner_ here made InternalSpawn with TaskGroup, a run() per task with the slot
  // taken, 24% slower in 6 alternating process pairs).
  bool on_owner() const noexcept { return latch_.is_owner(detail::tl_current_worker); }

  // run()'s slot path, on the owner with the slot free. Building before the construction: the
  // callable's copy or move is user code, which may call run() (it must not take the slot being
  // built) or wait() (it must not free it) on this group. (Until 2026-12-08 the slot was marked
  // only after the construction: such a run() built its own task in the slot, the outer
  // construction overwrote it, and the deque held the slot twice.) Free again if anything throws:
  // the construction (nothing counted yet), or schedule() with std::bad_alloc (on the owner it
  // never throws pool_closed), which released the task (destroyed, counted down) unpublished,
  // having thrown before its push (publish_private) or in it (the deque unchanged): nothing refers
  // to the slot, and the group is unchanged. (Until 2026-12-08 the slot then stayed taken until
  // the owner's wait(), and every run() until then allocated.)
  template <class D, class F>
  void run_in_slot(F&& f) {
    slot_state_ = Slot::building;
    try {
      auto* t = ::new (static_cast<void*>(slot_)) Task<D, true>(std::forward<F>(f), this);
      slot_state_ = Slot::taken;
      latch_.add(detail::tl_current_worker);
      detail::schedule_or_release(*core_, t);
    } catch (...) {
      slot_state_ = Slot::free;
      throw;
    }
  }

  void record(std::exception_ptr e) noexcept {
    // relaxed exchange: error_ is published to wait() by the count_down release (L2).
    if (!failed_.exchange(true, std::memory_order_relaxed)) {
      error_ = std::move(e);
      cancel();
    }
  }
  // The exact check where it is exact (owner, or no owner), the snapshot elsewhere.
  bool done_here() const noexcept {
    if (latch_.owner() == nullptr || latch_.owner() == detail::tl_current_worker) {
      return latch_.done();
    }
    return latch_.done_snapshot();
  }
  void wait_impl() noexcept {
    detail::WorkerContext* w = core_->local_worker();
    if (latch_.owner() != nullptr && w != latch_.owner()) {
      core_->wait_foreign(latch_);  // foreign waiter: polls (see wait())
    } else if (latch_.owner() != nullptr) {
      // The owner: first what it has itself (WorkerContext::find_task_local: its private jobs
      // and own deque, newest first, where the group's last run() usually still is, and the
      // injector on its turn), without wait_until's idle bookkeeping: this worker is running a
      // task, so it is not counted as searching (found_work() would do nothing). The same tasks
      // in the same order as wait_until's loop. Then, if tasks of the group are still running
      // elsewhere, wait_until: steals, folds, sleeps. Fork-join fib(27) with TaskGroup, against
      // calling wait_until at once (8 alternating process pairs, AMD EPYC VM, 2026-12-08):
      // median per-pair time ratio 0.83 on 2 workers, 0.83 on 1.
      while (!latch_.done()) {
        detail::TaskBase* t = w->find_task_local();
        if (t == nullptr) break;
        t->fn(t, true);
      }
      if (!latch_.done()) w->wait_until(latch_);
    } else if (w != nullptr) {
      w->wait_until(latch_.shared());  // no owner: everything is in the shared CountLatch
    } else {
      latch_.shared().wait_external();
    }
  }

  // What a task of the group reads (core_, cancelled_) on one line, written only by the owner's
  // construction and wait() and by the first exception; then the latch's two lines (GroupLatch).
  detail::PoolCore* core_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  detail::GroupLatch latch_;
  // The owner's inline task (run()): the header, a callable of up to kInlineCallableBytes and the
  // group pointer, on a line of its own (the lines above are read by every task of the group),
  // and slot_state_ (owner only: building while a run() constructs its task there, then taken,
  // free again after the owner's wait()). Fork-join fib(27) with TaskGroup (a run() and a wait()
  // per call), 8 alternating process pairs on the 2-vCPU AMD EPYC VM (2026-12-08), median
  // per-pair time ratio against task blocks: 0.93 on 2 workers, 0.93 on 1; InternalSpawn with
  // TaskGroup 0.99.
  static constexpr std::size_t kSlotBytes = 56;
  static constexpr std::size_t kSlotAlign = 64;
  static_assert(kInlineCallableBytes + 2 * sizeof(void*) == kSlotBytes);
  alignas(kSlotAlign) unsigned char slot_[kSlotBytes];
  enum class Slot : unsigned char { free, building, taken };
  Slot slot_state_ = Slot::free;
};

/// Calls body(i) once for every i in [first, last), in parallel, with chunks of at most `grain`
/// indices (0: about 4 chunks per worker). Index must be an integral type other than bool
/// (checked at compile time), and first and last the same one
/// (`parallel_for(pool, std::size_t{0}, v.size(), body)`). Returns when all calls have returned;
/// rethrows the first exception (other chunks may then not run). A range of one chunk runs on the
/// calling thread. Throws pool_closed when called from a thread that is not a worker of the pool
/// after shutdown(), whatever the range (no call of body is made). `grain` may be of any integral
/// type other than bool; a negative one throws std::invalid_argument (before any call of body),
/// where a conversion to std::size_t would have made it one chunk on the caller.
template <class Index, class Body, class Grain = std::size_t>
void parallel_for(ThreadPool& pool, Index first, Index last, Body&& body, Grain grain_arg = 0) {
  // bool is integral but not an index type: std::make_unsigned below rejects it deep inside.
  static_assert(std::is_integral_v<Index> && !std::is_same_v<Index, bool>,
                "parallel_for: Index (the type of first and last) must be an integral type other "
                "than bool");
  static_assert(std::is_integral_v<Grain> && !std::is_same_v<Grain, bool>,
                "parallel_for: grain must be an integral type other than bool");
  if constexpr (std::is_signed_v<Grain>) {
    if (grain_arg < 0) throw std::invalid_argument("parkpool::parallel_for: negative grain");
  }
  std::size_t grain = static_cast<std::size_t>(grain_arg);
  // A range of one chunk runs on the caller without the pool (below): after shutdown() a caller
  // off the pool must still get pool_closed, as it does from join() for a larger range.
  if (detail::PoolAccess::core(pool).shut_down() && !pool.running_in_this_thread()) {
    throw pool_closed();
  }
  if (!(first < last)) return;
  using U = std::make_unsigned_t<Index>;
  const U n = static_cast<U>(static_cast<U>(last) - static_cast<U>(first));
  if (grain == 0) {
    const std::size_t chunks = 4 * pool.size();
    grain = static_cast<std::size_t>(n) / chunks;
    if (grain == 0) grain = 1;
  }
  const U g = static_cast<std::size_t>(n) < grain ? n : static_cast<U>(grain);
  auto& fn = body;
  auto rec = [&pool, &fn, g, first](auto& self, U lo, U hi) -> void {
    if (static_cast<U>(hi - lo) > g) {
      const U mid = static_cast<U>(lo + static_cast<U>(hi - lo) / 2);
      join(
          pool, [&] { self(self, lo, mid); }, [&] { self(self, mid, hi); });
      return;
    }
    for (U i = lo; i < hi; ++i) fn(static_cast<Index>(static_cast<U>(static_cast<U>(first) + i)));
  };
  rec(rec, U{0}, n);  // a single chunk runs here, without a pool round trip
}

}  // namespace parkpool

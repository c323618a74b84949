// parkpool::detail: the internals of ThreadPool that inline code (post, join, TaskGroup) must see.
// Users never name anything here.
//
// Pieces
//   TaskBase      one function pointer; every queued item (heap task or a join's stack job) is a
//                 TaskBase* in a deque or the injector.
//   CountLatch    a counter with at most one registered waiter, packed in one 64-bit word so that
//                 the last count_down() learns, in the same RMW, whom to wake (no store->load race;
//                 after that RMW the latch is touched only when the waiter is blocked on it:
//                 INV-L1).
//   GroupLatch    a TaskGroup's count: the owner worker counts its own spawns and completions
//                 with plain stores, everything else goes through a CountLatch.
//   WorkerContext one per worker thread: its Chase-Lev deque, RNG, single-writer counters.
//   PoolCore      workers, injector (also the external-submit gate), idle coordinator, shutdown.
#pragma once

#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "parkpool/detail/chase_lev_deque.hpp"
#include "parkpool/detail/injector.hpp"
#include "parkpool/detail/task_cache.hpp"
#include "parkpool/detail/test_hook.hpp"
#include "parkpool/idle.hpp"
#include "parkpool/pool_options.hpp"

namespace parkpool {

/// Thrown by ThreadPool::submit/post, TaskGroup::run, join and parallel_for when called from a
/// thread that is not a worker of the pool after ThreadPool::shutdown() has begun. The callable
/// was not accepted: it will never run (and has been destroyed).
class pool_closed : public std::runtime_error {
 public:
  pool_closed() : std::runtime_error("parkpool: the ThreadPool is shut down; task not accepted") {}
};

namespace detail {

// ---- Tasks ----
struct TaskBase {
  // run == true: run the task, then release it. run == false: release it without running
  // (a cancelled TaskGroup task, or a task whose submission failed). Never throws.
  using Fn = void (*)(TaskBase* self, bool run) noexcept;
  explicit TaskBase(Fn f) noexcept : fn(f) {}
  Fn fn;
};

// What the injector carries (by value, 56 bytes: 73 items fill a 4 KiB injector chunk): either a
// heap task (`call` == nullptr), or a small trivially copyable callable stored inline in
// `storage` and run by `call` (post() from outside the pool: no allocation at all in steady
// state, and no cross-thread malloc/free).
struct InjectedItem {
  static constexpr std::size_t kInlineBytes = 40;
  static constexpr std::size_t kInlineAlign = 8;
  TaskBase* task;
  void (*call)(unsigned char* storage);  // may throw; the runner catches
  alignas(kInlineAlign) unsigned char storage[kInlineBytes];
};
static_assert(sizeof(InjectedItem) == 56, "InjectedItem: 56 bytes (bench MemoryPerQueuedTask)");
static_assert(std::is_trivially_copyable_v<InjectedItem>);

// A counter written by one thread only; readable (approximately) from any thread.
struct Counter {
  std::atomic<std::uint64_t> v{0};
  // Relaxed load+store, not an RMW: there is a single writer, and nothing is published through it.
  void bump(std::uint64_t n = 1) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

class PoolCore;

// Blocking rendezvous for a waiter that is not a worker of the pool.
struct ExternalWaiter {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;  // under m
};

// ---- CountLatch ----
// word_ (64 bits):
//   bits  0..31  waiter tag: 0 none; w+1 worker w sleeps/helps; kExternalTag a blocked thread
//                whose ExternalWaiter is ext_. Set only by the single waiter, by a CAS that
//                requires count != 0; cleared by the waiter once count == 0. A second waiter
//                that finds another's tag set aborts the process (two_waiters()).
//   bits 32..63  count, signed: outstanding work. +n by add() (a holder of the latch: the owner,
//                or a task of the group that is itself counted); -1 by count_down(). A join's
//                latch never goes below 0. A TaskGroup's shared part (GroupLatch) may: a thief
//                counts down a task whose +1 its owner keeps in GroupLatch's owned counters, and
//                no waiter is registered until the owner folds those in (count >= 0 again).
//                Count changes add multiples of 2^32, so they never carry into the tag.
// INV-L1: the thread whose count_down() takes count 1 -> 0 is the only one that may touch the
//   latch after that RMW, and only when the tag it read is kExternalTag (then the waiter stays
//   blocked until that thread sets ext_->done under ext_->m).
class CountLatch {
 public:
  static constexpr std::uint64_t kTagMask = 0xFFFF'FFFFu;
  static constexpr std::uint64_t kExternalTag = 0xFFFF'FFFFu;
  static constexpr std::uint64_t kOne = std::uint64_t{1} << 32;

  explicit CountLatch(std::uint32_t initial) noexcept : word_(std::uint64_t{initial} << 32) {}
  CountLatch(const CountLatch&) = delete;
  CountLatch& operator=(const CountLatch&) = delete;

  // Relaxed: the caller holds a count or is the only thread that can reach the latch; the task
  // that will count down is published afterwards by a release (deque bottom_ / injector).
  // n < 0 only for GroupLatch's fold of a negative owned balance (see there).
  void add(std::int64_t n = 1) noexcept {
    word_.fetch_add(static_cast<std::uint64_t>(n) << 32, std::memory_order_relaxed);
  }

  // (L1) acquire: pairs with (L2), so a waiter that sees 0 sees every counted task's effects.
  bool done() const noexcept { return count() == 0; }
  std::int64_t count() const noexcept { return count_of(word_.load(std::memory_order_acquire)); }

  // Wakes the registered waiter on the last count. `pool` is read by the caller before (INV-L1).
  void count_down(PoolCore* pool) noexcept;

  // Registers `tag` as the waiter. False if the count is already 0 (nothing to wait for).
  bool register_waiter(std::uint64_t tag) noexcept {
    std::uint64_t cur = word_.load(std::memory_order_acquire);  // acquire: see (L1)
    for (;;) {
      if (count_of(cur) == 0) return false;
      assert(count_of(cur) > 0 && "CountLatch: a waiter registers while the count is negative");
      const std::uint64_t want = (cur & ~kTagMask) | tag;
      // The same worker again: a wait nested in a task it runs while it waits (one thread).
      if (cur == want && tag != kExternalTag) return true;
      // Another waiter's tag (two blocked external threads carry the same one): two threads wait
      // at once, which TaskGroup::wait() forbids. Only one of them could be woken; the other
      // would hang. Stop loudly instead. Off the hot path: only a waiter about to sleep gets here.
      if ((cur & kTagMask) != 0) two_waiters();
      // (L3) release: publishes ext_ to the count_down() that reads this tag (L2 acquires it).
      // acquire on failure: a count of 0 seen here must also show the tasks' effects (L1).
      if (word_.compare_exchange_weak(cur, want, std::memory_order_release,
                                      std::memory_order_acquire)) {
        return true;
      }
    }
  }
  // The waiter, once done(): drop the tag. Relaxed: count is 0, nobody else touches the latch.
  void clear_waiter() noexcept { word_.store(0, std::memory_order_relaxed); }

  // Blocks a non-worker thread until done().
  void wait_external() noexcept;

 private:
  static std::int64_t count_of(std::uint64_t w) noexcept {
    return static_cast<std::int64_t>(w) >> 32;  // arithmetic shift: the signed count
  }
  // Writes what happened to stderr and aborts (a second waiter registering, see above).
  [[noreturn, gnu::cold, gnu::noinline]] static void two_waiters() noexcept;
  std::atomic<std::uint64_t> word_;
  // Written (relaxed) by the waiter before (L3), read (relaxed) by the finisher after (L2): that
  // release/acquire pair orders it, so relaxed suffices. Atomic rather than a plain pointer because
  // two external threads that break the one-waiter rule both store here before the CAS that makes
  // the second one abort (two_waiters()); a plain pointer made that diagnostic path a data race.
  std::atomic<ExternalWaiter*> ext_{nullptr};
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
};

struct WorkerContext;

// ---- GroupLatch: a TaskGroup's pending tasks ----
// pending = (spawned_ - completed_) + shared_.count(), where
//   spawned_, completed_  the owner's part: tasks run() on the owner worker (the worker that
//                constructed the group, owner_) and tasks of the group completed on it, while the
//                owner is not folded. Each is written only by the owner (a store of its plain
//                owner-only copy's new value: no load, no RMW, no locked instruction), never
//                decreases, and is readable from any thread.
//   shared_      everything else: run() on any other thread, completions on any other thread, and
//                every event on the owner while folded_. Its count goes negative when a thief
//                completes a task whose +1 sits in spawned_.
// A fork-join task that the owner spawns and pops back itself (most of them in fib) therefore
// costs no atomic RMW at all for its counting; with one CountLatch it cost two (add, count_down).
// Who may wait, and how:
//   owner (exact)     done() reads its own counters and shared_ (acquire): exact. Before it sleeps,
//                     register_waiter() folds: shared_ += spawned_ - completed_, completed_ =
//                     spawned_, folded_ = true (every later event on the owner goes to shared_),
//                     then registers its tag on shared_, whose last count_down wakes it.
//                     clear_waiter() unfolds after the wait.
//   no owner          (a group constructed off the pool, or on another pool's worker): everything
//                     is in shared_, a plain CountLatch wait (worker or external).
//   anyone else       (a "foreign" waiter: the group was constructed on a worker and is waited
//                     elsewhere) cannot be woken by the owner's plain stores, so it polls
//                     done_snapshot() with a backoff (PoolCore::wait_foreign), helping with tasks
//                     if it is a worker.
// INV-G1 (done_snapshot never reports 0 early): it reads completed_ (acquire), then shared_
//   (acquire), then spawned_ (relaxed). Every completion it counts has its spawn counted: a
//   completion in completed_ happens after its spawn, so the later reads of shared_ / spawned_ see
//   the spawn; a completion in shared_ (release RMW) likewise precedes the read of spawned_. By the
//   same order a counted completion of a task T shows every run() that T made. So a snapshot of 0
//   means: every task run() before the wait (and every task those ran) has completed. A fold
//   adds to shared_ before it raises completed_ (release): a snapshot sees both or counts the
//   owned balance twice (too high, never too low). tests/model/group_latch_model.cpp checks the
//   read order, with variants that read spawned_ first or read relaxed and must fail.
class GroupLatch {
 public:
  explicit GroupLatch(WorkerContext* owner) noexcept : owner_(owner), owner_mine_(owner) {}
  GroupLatch(const GroupLatch&) = delete;
  GroupLatch& operator=(const GroupLatch&) = delete;

  // `self`: tl_current_worker of the calling thread (nullptr off the pool).
  bool owned_here(const WorkerContext* self) const noexcept { return owns(self, owner_); }
  // One task about to be published (before the release that publishes it). Mostly the owner's
  // run(): it reads owner_mine_, on the owner's own line (see the members).
  void add(const WorkerContext* self) noexcept {
    if (owns(self, owner_mine_)) {
      // Relaxed: ordered by the task's publication (INV-G1).
      spawned_.store(++spawned_mine_, std::memory_order_relaxed);
    } else {
      shared_.add(1);
    }
  }
  // One task of the group finished or was discarded. INV-L1 as for CountLatch.
  void count_down(const WorkerContext* self, PoolCore* pool) noexcept {
    if (owned_here(self)) {
      // release: INV-G1 (a snapshot that reads this sees the task's effects and its runs).
      completed_.store(++completed_mine_, std::memory_order_release);
    } else {
      shared_.count_down(pool);
    }
  }

  WorkerContext* owner() const noexcept { return owner_; }
  // `self` is the owner (not nullptr), read from owner_mine_, on the owner's own line: for the
  // owner's per-run() checks, which must not load the line thieves RMW (see the members).
  bool is_owner(const WorkerContext* self) const noexcept {
    return self == owner_mine_ && owner_mine_ != nullptr;
  }
  CountLatch& shared() noexcept { return shared_; }

  // Owner thread only (or any thread when owner() == nullptr): exact.
  bool done() const noexcept {
    // The owner's own counters, through its plain copies (written only by this thread).
    const std::uint64_t owned = spawned_mine_ - completed_mine_;
    return static_cast<std::int64_t>(owned) + shared_.count() == 0;  // shared_: acquire (L1)
  }
  // Any thread: true only if every task run() before this call has completed (INV-G1).
  bool done_snapshot() const noexcept {
    const std::uint64_t c = completed_.load(std::memory_order_acquire);  // INV-G1: first
    const std::int64_t sh = shared_.count();                             // acquire, second
    // Last; relaxed: spawned_ is only ever stored relaxed (add()'s store; no RMW), so an acquire
    // here would synchronize with nothing. What the snapshot needs of it is its place after the
    // two acquires above (INV-G1), which those give it. (Acquire until 2026-12-08.)
    const std::uint64_t s = spawned_.load(std::memory_order_relaxed);
    return static_cast<std::int64_t>(s - c) + sh == 0;
  }

  // The owner, before it sleeps: fold the owned balance into shared_ and register `tag` there.
  // False (and unfolded) if nothing is pending. WorkerContext::wait_until's latch interface.
  bool register_waiter(std::uint64_t tag) noexcept {
    if (!folded_ && owner_ != nullptr) {
      const std::uint64_t s = spawned_mine_;
      // The balance may be negative: the owner completed tasks that others ran() (shared_ +1).
      shared_.add(static_cast<std::int64_t>(s - completed_mine_));
      completed_mine_ = s;
      completed_.store(s, std::memory_order_release);  // after the add: INV-G1
      folded_ = true;
    }
    if (shared_.register_waiter(tag)) return true;
    folded_ = false;  // nothing pending: later events may be owned again
    return false;
  }
  // The waiter, once done(). With an owner, a registration is always folded (register_waiter
  // folds first), so unfolded means no tag of ours is left: a wait nested in a task the owner ran
  // while it waited (the same thread) already cleared it and unfolded. shared_ may then hold a
  // nonzero count that the owned counters balance (a thief completed a task the owner run() after
  // that nested wait), and CountLatch::clear_waiter(), which stores 0, would lose it: the group
  // would never be done again. (Until 2026-12-08 it did: a second wait() of the done group slept
  // for good; TaskGroup.AnOuterWaitThatEndsAfterANestedWaitLeavesTheGroupDone.)
  void clear_waiter() noexcept {
    if (folded_ || owner_ == nullptr) shared_.clear_waiter();
    folded_ = false;
  }

 private:
  // `owner`: owner_ or its copy owner_mine_ (the same pointer on another line, see the members).
  bool owns(const WorkerContext* self, const WorkerContext* owner) const noexcept {
    return self == owner && owner != nullptr && !folded_;
  }
  // Two cache lines, by who writes them (2026-12-02; before, one line held everything):
  //   - what every completion touches: owner_ (read by count_down's owned_here) and shared_
  //     (RMW'd by each completion on a thread other than the owner);
  //   - the owner's counters, stored once per run() and per task it completes, and a copy of
  //     owner_ for add(), so the owner's run() reads nothing a thief writes.
  // On one line, each of the owner's stores after a thief's count_down and each thief's
  // count_down after an owner's store moved the line between the two cores. InternalSpawn/
  // parkpool_taskgroup (1M run()s from a worker, 2 workers, AMD EPYC VM, 4 alternating process
  // pairs): 114, 117, 113, 107 ms per round with one line, 80, 82, 81, 73 ms with this layout
  // (and TaskGroup's own fields on a third line); Fib27/parkpool_taskgroup/2 5.05-5.40 ms against
  // 4.57-4.85 ms.
  WorkerContext* const owner_;
  CountLatch shared_{0};
  // == owner_, read by add() instead of owner_: the same test as owned_here(), but on this line.
  // Not derived state to drop: with add() reading owner_ (on the line thieves RMW), a round of
  // InternalSpawn/parkpool_taskgroup took 113-118 ms against 67-77 ms with this copy (5
  // alternating process pairs, same VM).
  alignas(64) WorkerContext* const owner_mine_;
  std::atomic<std::uint64_t> spawned_{0};
  std::atomic<std::uint64_t> completed_{0};
  // The owner's plain copies of spawned_ and completed_ (owner thread only): every store of
  // either atomic is the new value of its copy, so the owner never loads the atomics. A load of
  // an atomic just stored cannot be folded by the compiler: in fib(27) with TaskGroup, the first
  // run() of each group loaded spawned_ straight after the constructor's 16-byte store of both
  // counters, and perf put 15% of fib_group's samples on that load's use (1 worker, AMD EPYC VM,
  // 2026-12-08). With the copies: median per-pair time ratio 0.98 on 2 workers, 0.96 on 1 (8
  // alternating process pairs).
  std::uint64_t spawned_mine_ = 0;
  std::uint64_t completed_mine_ = 0;
  bool folded_ = false;  // owner thread only
};

// ---- Workers ----
struct alignas(64) WorkerContext {
  WorkerContext(PoolCore* p, std::size_t i, std::uint64_t seed) : pool(p), index(i), rng(seed) {}

  PoolCore* const pool;
  const std::size_t index;
  // The ring never shrinks below this (reclaim() returns to it), so it always holds at least this
  // many (steal_more relies on it).
  static constexpr std::size_t kDequeCapacity = 256;
  ChaseLevDeque<TaskBase> deque{kDequeCapacity};
  TaskCache cache;  // blocks for small heap tasks (task_cache.hpp)
  // This worker's hazard slot as a thief (chase_lev_deque.hpp, "Reclaiming rings"): the deque it
  // is reading a slot of, or nullptr. Stored only by this worker, in steal() (R1, R3), on a line
  // of its own words (rng and the counters below, which only it writes), so a steal adds two
  // plain stores to a line it owns. Read with acquire by any worker reclaiming its rings
  // (PoolCore::reclaim_rings, S3), which happens only after a growth, when that worker has stayed
  // idle for PoolOptions::deque_ring_hold.
  alignas(64) std::atomic<const void*> steal_hazard{nullptr};
  // Owner only: when an idle episode first found this deque's grown rings kept (epoch: none
  // kept, or not yet seen); PoolCore::worker_main frees them PoolCore::ring_keep_ later.
  std::chrono::steady_clock::time_point spare_rings_since{};
  std::uint64_t rng;  // xorshift64 state, owner only

  // Single-writer (this worker) statistics.
  Counter tasks_run, tasks_cancelled, spawned, steals, injector_pops, post_exceptions;

  // Set (owner only) once wait_for_work() returned false: the coordinator is shut down, and this
  // worker no longer calls into it. It only saves calls: after shutdown wait_for_work() returns
  // false at once and found_work() changes nothing that matters. (It was added as a workaround
  // for a coordinator bug, fixed at its cause on 2026-11-22 in src/idle.cpp; regression test
  // tests/regress/issue_5_idle_shutdown_test.cpp.)
  bool idle_closed = false;

  // Runs an inline injector item as a TaskBase. find_task() fills `item` and returns &inline_slot;
  // the caller runs it at once. execute() first copies the item to its own stack frame, because
  // the callable may wait (join, TaskGroup) and this worker then refills the slot.
  struct InlineSlot final : TaskBase {
    InlineSlot() noexcept : TaskBase(&execute) {}
    static void execute(TaskBase* self, bool run) noexcept;
    InjectedItem item{};
  } inline_slot;

  // ---- Private join jobs (thread_pool.hpp, join_on_worker) ----
  // The b half of a join nested more than kPublicJoinDepth joins deep on this worker is kept in
  // private_jobs instead of the deque while no other worker could run it sooner (no worker sleeps
  // while a CPU is free, none searches on a CPU of its own: PoolCore::idle_capacity; with no more
  // workers than CPUs, simply: no worker searches or sleeps): pushing and reclaiming it costs no
  // fence and no atomic (the deque's pop needs a seq_cst fence). Deep jobs are small (a
  // fork-join tree halves at each level), and the shallow ones stay stealable at once. When a
  // join sees idle capacity (PoolCore::idle_capacity) it publishes every private job, oldest
  // first, and notifies. So a worker that runs out of work waits at most until this worker's
  // next join for the private jobs (or until it reclaims them itself: they are never lost).
  // INV-J1: every private job is newer than every item in `deque`: a push to the deque (join,
  //   post, submit, TaskGroup::run on this worker) first publishes them all, oldest first; a
  //   private push is the newest by definition. Owner only; empty between tasks.
  static constexpr std::uint32_t kPublicJoinDepth = 8;
  static constexpr std::size_t kPrivateCap = 64;
  std::uint32_t join_depth = 0;  // joins in progress on this thread's stack
  std::size_t private_count = 0;
  TaskBase* private_jobs[kPrivateCap] = {};
  // Moves every private job to the deque, oldest first (INV-J1). The caller notifies. Throws
  // std::bad_alloc if the deque cannot grow; the jobs not yet moved then stay private, in order.
  void publish_private();
  // ---- A searcher that does not run (join_on_worker) ----
  // A join that pushes onto a non-empty deque does not notify (rayon's rule: the push that made
  // the deque non-empty did). If a worker was counted as searching then, that notify woke nobody
  // either: it trusted the searcher to steal. A searcher the OS does not run (preempted behind
  // this thread, or woken onto a busy CPU) then leaves this deque untouched while other workers
  // sleep and a CPU idles, until the scheduler moves it (a thread that ran in the last 0.5 ms
  // counts as cache-hot and stays): perf sched showed fib(27) with join on 8 workers on 2 CPUs
  // running 3 ms instead of 1 with one worker on CPU 0, the counted searcher runnable behind it,
  // CPU 1 idle. So every kStaleCheckPushes-th such push reads the deque's top (top_hint): if it
  // has not moved for kStaleAfter while the deque held work (an owner pop that empties the
  // deque also advances top), the join calls IdleCoordinator::notify_stalled(), which wakes a
  // sleeper if a worker is counted as searching; the OS places the woken one on an idle CPU.
  // kStaleAfter is above this VM's wake latency p99 (~60 us), so a worker just woken (counted,
  // not yet running) is not taken for a stuck one; 256 pushes amortise the clock read (~25 ns).
  // Owner only. A wrong answer costs one wake or some parallelism, never a job.
  // Deep private joins (private_jobs above) are not checked: doing so (publishing them when stale)
  // made fib(27) with join 21% slower on 8 workers and 4% on 2 (10 alternating process pairs,
  // 2026-12-03; pool/SLEEP.md).
  static constexpr std::uint32_t kStaleCheckPushes = 256;
  static constexpr std::chrono::microseconds kStaleAfter{100};
  static_assert((kStaleCheckPushes & (kStaleCheckPushes - 1)) == 0, "a power of two");
  std::uint32_t quiet_pushes = 0;
  std::int64_t quiet_top = -1;  // top_hint() when quiet_since was taken; -1: none
  std::chrono::steady_clock::time_point quiet_since{};
  // Called after a join's push that did not notify. True (and re-armed) when the deque's oldest
  // item has not been taken for kStaleAfter.
  bool stale_backlog() noexcept {
    if ((++quiet_pushes & (kStaleCheckPushes - 1)) != 0) return false;
    return stale_backlog_slow();
  }
  bool stale_backlog_slow() noexcept;

  // Removes `job` if it is the newest private job (then it was neither published nor run).
  bool take_private(TaskBase* job) noexcept {
    if (private_count == 0 || private_jobs[private_count - 1] != job) return false;
    --private_count;
    return true;
  }

  // Any task: own private jobs, then own deque (together newest first: INV-J1), then the
  // injector, then random victims (a successful steal takes a batch: steal_more).
  // Except that every kInjectorPollInterval-th call that gets past the private jobs looks at the
  // injector before the deque: a worker whose own deque never empties (a task that posts its own
  // continuation, e.g. an Asio coroutine yielding through post(); a long stream of local posts)
  // would otherwise never take a task submitted from outside the pool, and with every worker
  // doing so, external work starved for good (found by review: a handler posted from outside
  // never ran while one worker's coroutine kept yielding). Go's scheduler and tokio do the same
  // (every 61st and 31st tick). Private join jobs still come first: nobody else can run them.
  // The poll costs a counter increment per task and, every 64th task, the injector's lock-free
  // emptiness check (two relaxed loads) when it is empty.
  static constexpr std::uint32_t kInjectorPollInterval = 64;
  static_assert((kInjectorPollInterval & (kInjectorPollInterval - 1)) == 0, "a power of two");
  std::uint32_t local_finds = 0;  // owner only
  TaskBase* find_task() noexcept {
    if (TaskBase* t = find_task_local()) return t;
    return find_task_slow();
  }
  // find_task() without the slow path: own private jobs, the injector on its turn, own deque;
  // nullptr when those had nothing (other workers' deques and the injector may still have work).
  TaskBase* find_task_local() noexcept {
    if (private_count != 0) return private_jobs[--private_count];
    if ((++local_finds & (kInjectorPollInterval - 1)) == 0) [[unlikely]] {
      if (TaskBase* t = pop_injector()) return t;
    }
    if (TaskBase* t = deque.pop()) {
      // Fetch the next task's first line while this one runs: after a batch steal (steal_more)
      // every task here was written on another core, and each first touch was a miss.
      if (TaskBase* next = deque.next_pop_hint()) __builtin_prefetch(next);
      return t;
    }
    return nullptr;
  }
  TaskBase* find_task_slow() noexcept;
  // One task from the injector (an external post's item goes to inline_slot), or nullptr.
  TaskBase* pop_injector() noexcept;
  // After one successful steal from `victim`: if it still shows at least kBatchFrom items,
  // moves half of them (at most kStealBatch - 1) into this worker's own deque, one steal each,
  // and returns how many it moved. A thief facing a long queue of small tasks then steals in
  // back-to-back runs, which find the victim's bottom index and slots still in cache, instead of
  // one steal per task between two task runs and a trip through the injector (InternalSpawn,
  // bench/pool_bench.cpp).
  //
  // With these values fib(27) with join (2 and 8 workers) did not change and InternalSpawn took
  // 17-19% less time (medians of 10 alternating processes each, 2026-12-01). The idle protocol
  // (pool/SLEEP.md) is unaffected: moving published items between deques wakes nobody and
  // strands nothing.
  static constexpr std::size_t kStealBatch = 32;
  static constexpr std::size_t kBatchFrom = 2 * kStealBatch;
  static_assert(kStealBatch - 1 <= kDequeCapacity, "a batch must fit an empty own deque");
  std::size_t steal_more(ChaseLevDeque<TaskBase>& victim) noexcept;
  // True if any queue looks non-empty (relaxed snapshots; the idle handshake orders them).
  bool any_work() const noexcept;
  // wait_for_work's on_wake: starts loading the lines this worker reads between its wake and
  // its task (find_task: its own deque, private jobs, inline slot and counters, the injector's
  // consumer side; found_work's any_work(): the first kWakePrefetchDeques workers' deques, in
  // any_work's order), so that they overlap instead of missing one after another. pool/SLEEP.md,
  // "Tuning", has the measurement.
  static constexpr std::size_t kWakePrefetchDeques = 8;
  void prefetch_after_wake() const noexcept;
  // Runs tasks until latch.done(), sleeping on the coordinator when there are none; the latch's
  // last count_down wakes it (register_waiter). CountLatch, or GroupLatch on its owner.
  template <class Latch>
  void wait_until(Latch& latch) noexcept;
  std::uint64_t next_random() noexcept {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
};

// The worker running on this thread, or nullptr for any other thread. Constant-initialized, so
// access is a TLS load without a wrapper call.
inline thread_local WorkerContext* tl_current_worker = nullptr;

// ---- PoolCore ----
class PoolCore {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // The calling thread's worker if it is a worker of this pool.
  WorkerContext* local_worker() noexcept {
    WorkerContext* w = tl_current_worker;
    return (w != nullptr && w->pool == this) ? w : nullptr;
  }

  // True once shutdown() has set draining_ (after closing the injector): for a call that would
  // otherwise finish without the pool (parallel_for's single chunk off a worker), so that it
  // throws pool_closed like every other call from outside after shutdown(), and for
  // ThreadPool::is_shutdown(). Relaxed: a flag read, nothing is read through it; a caller
  // ordered after shutdown() sees it by coherence. A reader that sees true and then pushes
  // finds the injector closed, without an acquire: had its push's tail lock come before
  // close()'s, this load (sequenced before that lock) would happen-before the store of true
  // (through the lock, then close() before G4) and could not read it (read-write coherence).
  bool shut_down() const noexcept { return draining_.load(std::memory_order_relaxed); }

  // Tests only: how many workers count themselves idle in the final drain (a snapshot), and a
  // hook a drain calls right after it took a task, before running it (nullptr: none). The hook
  // lets a test hold a worker at the point where it holds a task it took during the drain.
  std::size_t drain_idle_for_test() const noexcept {
    return drain_idle_.load(std::memory_order_relaxed);
  }
  static inline TestHook<> drain_took_task_hook_for_test;  // detail/test_hook.hpp

  // Accepts a task or throws (pool_closed; std::bad_alloc). On a worker of this pool: local deque
  // (accepted even while shutdown drains, so accepted work can finish); elsewhere: the injector.
  void schedule(TaskBase* t) {
    if (WorkerContext* w = local_worker()) {
      if (w->private_count != 0) w->publish_private();  // INV-J1; the notify below covers them
      w->deque.push(t);
      w->spawned.bump();
      // Publish (release store of bottom_) then the submitter half of the idle handshake: this
      // worker is working (found_work() ran for its task), so the local form applies (a load,
      // no fence, with the asymmetric barrier; see pool/SLEEP.md).
      idle_.notify_work_local(w->index);
    } else {
      inject(t);
    }
  }
  // External path: the injector (its tail lock is the gate), notify_work. Throws pool_closed
  // after shutdown.
  // `is_task`: counted in stats as an accepted task (false for a join's stack job).
  void inject(TaskBase* t, bool is_task = true) {
    inject_item(InjectedItem{t, nullptr, {}}, is_task);
  }
  void inject_item(const InjectedItem& item, bool is_task = true);
  // True if some item injected before the one numbered `mine` (its 1-based injector position)
  // has not been popped yet: the searchers are not keeping up. A relaxed snapshot of the
  // injector's pop count.
  bool injector_backlog(std::uint64_t mine) const noexcept;

  // Throws std::logic_error when called on one of this pool's own threads (a worker, or one
  // running its on_thread_stop hook): it would wait for itself.
  void shutdown();
  // For ~ThreadPool(), which cannot throw: on one of this pool's own threads, writes
  // shutdown()'s message to stderr and calls std::terminate; otherwise shutdown().
  void shutdown_or_terminate() noexcept;
  // True on one of this pool's workers, or on a thread running its on_thread_stop hook.
  bool on_own_thread() noexcept;
  // Waits until latch.done_snapshot(): a TaskGroup waited on a thread other than its owner worker
  // (GroupLatch). Polls with a backoff (yields, then sleeps from 1 us doubling to ~1 ms); on a
  // worker of this pool it runs tasks meanwhile.
  void wait_foreign(GroupLatch& latch) noexcept;
  IdleCoordinator& idle() noexcept { return idle_; }
  // True if a job published now could run sooner on another worker: a worker sleeps while a CPU
  // is free, or one searches on a CPU of its own (IdleCoordinator::idle_capacity).
  bool idle_capacity() const noexcept { return idle_.idle_capacity(idle_slack_); }
  std::size_t size() const noexcept { return workers_.size(); }
  const std::vector<std::unique_ptr<WorkerContext>>& workers() const noexcept { return workers_; }
  // Snapshots (relaxed): the injector counts every accepted item; join's stack jobs are not tasks.
  std::uint64_t external_accepted() const noexcept;
  bool injector_empty() const noexcept;
  bool injector_pop(InjectedItem& out) noexcept;
  // An exception that escaped a post() task or a hook run on worker w: counted in w's stats (w's
  // own counter: called on w's thread), then on_post_exception or stderr.
  void report_post_exception(WorkerContext& w, std::exception_ptr e) noexcept;

 private:
  friend struct WorkerContext;
  void worker_main(std::size_t index) noexcept;
  // Worker w idle for PoolOptions::deque_ring_hold (IdleCoordinator::wait_for_work's long-idle
  // hook: w is announced asleep), its deque grown (has_spare_rings()), the asymmetric barrier in
  // use: ChaseLevDeque::reclaim() with IdleCoordinator::heavy_barrier() and a scan of every
  // worker's steal_hazard. w's thread only.
  [[gnu::noinline]] void reclaim_rings(WorkerContext& w) noexcept;

 public:
  // PoolOptions::deque_ring_hold's multiple after which grown rings are freed at any idle
  // episode, however short (worker_main; pool_options.hpp). 10: a workload that repeats its
  // bursts regrows its rings once per 10 holds (10 s by default), a regrowth costing a few ms
  // per 1M-task ring.
  static constexpr int kRingKeepHolds = 10;

 private:
  PoolOptions options_;
  // options_.deque_ring_hold in steady_clock's unit, or nanoseconds::max() for "never" (a hold
  // the unit cannot count: milliseconds::max() among them). Constant.
  std::chrono::nanoseconds ring_hold_;
  // ring_hold_ * kRingKeepHolds (saturated): rings kept through shorter idle episodes are freed
  // at the first idle episode this long after the first one that found them (worker_main).
  std::chrono::nanoseconds ring_keep_;
  // threads - min(threads, available_cpus()) at construction: the workers beyond the CPUs.
  std::uint32_t idle_slack_;
  IdleCoordinator idle_;
  std::vector<std::unique_ptr<WorkerContext>> workers_;
  // Work from threads that are not workers. Its tail lock is also the external-submit gate:
  // inject() pushes under it unless shutdown() closed the injector (G3). INV-G1: once close()
  // returned, every accepted external task is in the injector and visible to the closing thread,
  // and no external task is accepted any more.
  Injector<InjectedItem> injector_;
  // Stack jobs of join() called from outside the pool (rare: one relaxed RMW each); subtracted
  // from the injector's pushed count for stats().external_accepted.
  std::atomic<std::uint64_t> external_jobs_{0};
  // Set (release) by shutdown once the injector is closed (G3), before idle_.shutdown();
  // a worker that saw the idle shutdown waits for it (acquire) before its final drain, so it sees
  // every injected task (INV-G1).
  alignas(64) std::atomic<bool> draining_{false};
  // Workers idle during the final drain; a worker exits when it reads workers_.size() here.
  // Workers whose thread did not start are counted once by the constructor (see its catch).
  std::atomic<std::size_t> drain_idle_{0};
  std::mutex shutdown_mutex_;
  bool joined_ = false;  // under shutdown_mutex_
  std::vector<std::thread> threads_;
};

// ---- Heap tasks ----
// A task that fits a TaskCache block is allocated from the calling worker's cache (a worker of
// `core`), or as a homeless block elsewhere; bigger ones with new. delete_task() is the matching
// release, on any thread (the block goes back to its home worker; task_cache.hpp).
template <class T, class... A>
T* new_task(PoolCore& core, A&&... args) {
  if constexpr (TaskCache::fits<T>) {
    WorkerContext* w = core.local_worker();
    void* p = w != nullptr ? w->cache.allocate() : TaskCache::allocate_uncached();
    try {
      return ::new (p) T(std::forward<A>(args)...);
    } catch (...) {
      TaskCache::deallocate(p, w != nullptr ? &w->cache : nullptr);
      throw;
    }
  } else {
    return new T(std::forward<A>(args)...);
  }
}

template <class T>
void delete_task(T* t) noexcept {
  if constexpr (TaskCache::fits<T>) {
    t->~T();
    WorkerContext* w = tl_current_worker;  // any pool's worker: the block may change pools' hands
    TaskCache::deallocate(t, w != nullptr ? &w->cache : nullptr);
  } else {
    delete t;
  }
}

}  // namespace detail
}  // namespace parkpool

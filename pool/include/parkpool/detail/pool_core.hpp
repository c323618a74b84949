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
//   WorkerContext one per worker thread: its Chase-Lev deque, RNG, single-writer counters.
//   PoolCore      workers, injector (also the external-submit gate), idle coordinator, shutdown.
#pragma once

#include <atomic>
#include <cassert>
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
//   bits  0..31  count: outstanding work. +n by add() (a holder of the latch: the owner, or a
//                task of the group that is itself counted); -1 by count_down().
//   bits 32..63  waiter tag: 0 none; w+1 worker w sleeps/helps; kExternalTag a blocked thread
//                whose ExternalWaiter is ext_. Set only by the single waiter, by a CAS that
//                requires count > 0; cleared by the waiter once count == 0.
// INV-L1: the thread whose count_down() takes count 1 -> 0 is the only one that may touch the
//   latch after that RMW, and only when the tag it read is kExternalTag (then the waiter stays
//   blocked until that thread sets ext_->done under ext_->m).
class CountLatch {
 public:
  static constexpr std::uint64_t kCountMask = 0xFFFF'FFFFu;
  static constexpr std::uint64_t kExternalTag = 0xFFFF'FFFFu;

  explicit CountLatch(std::uint32_t initial) noexcept : word_(initial) {}
  CountLatch(const CountLatch&) = delete;
  CountLatch& operator=(const CountLatch&) = delete;

  // Relaxed: the caller holds a count or is the only thread that can reach the latch; the task
  // that will count down is published afterwards by a release (deque bottom_ / injector).
  void add(std::uint32_t n = 1) noexcept { word_.fetch_add(n, std::memory_order_relaxed); }

  // (L1) acquire: pairs with (L2), so a waiter that sees 0 sees every counted task's effects.
  bool done() const noexcept { return (word_.load(std::memory_order_acquire) & kCountMask) == 0; }

  // Wakes the registered waiter on the last count. `pool` is read by the caller before (INV-L1).
  void count_down(PoolCore* pool) noexcept;

  // Registers `tag` as the waiter. False if the count is already 0 (nothing to wait for).
  bool register_waiter(std::uint64_t tag) noexcept {
    std::uint64_t cur = word_.load(std::memory_order_acquire);  // acquire: see (L1)
    for (;;) {
      if ((cur & kCountMask) == 0) return false;
      const std::uint64_t want = (cur & kCountMask) | (tag << 32);
      if (cur == want) return true;
      assert((cur >> 32) == 0 && "CountLatch: two threads wait at once (TaskGroup::wait contract)");
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
  std::atomic<std::uint64_t> word_;
  ExternalWaiter* ext_ = nullptr;  // written by the waiter before (L3); read after (L2)
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
};

// ---- Workers ----
struct alignas(64) WorkerContext {
  WorkerContext(PoolCore* p, std::size_t i, std::uint64_t seed) : pool(p), index(i), rng(seed) {}

  PoolCore* const pool;
  const std::size_t index;
  // The ring never shrinks, so it always holds at least this many (steal_more relies on it).
  static constexpr std::size_t kDequeCapacity = 256;
  ChaseLevDeque<TaskBase> deque{kDequeCapacity};
  TaskCache cache;    // blocks for small heap tasks (task_cache.hpp)
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
  // Removes `job` if it is the newest private job (then it was neither published nor run).
  bool take_private(TaskBase* job) noexcept {
    if (private_count == 0 || private_jobs[private_count - 1] != job) return false;
    --private_count;
    return true;
  }

  // Any task: own private jobs, then own deque (together newest first: INV-J1), then the
  // injector, then random victims (a successful steal takes a batch: steal_more).
  TaskBase* find_task() noexcept {
    if (private_count != 0) return private_jobs[--private_count];
    if (TaskBase* t = deque.pop()) {
      // Fetch the next task's first line while this one runs: after a batch steal (steal_more)
      // every task here was written on another core, and each first touch was a miss.
      if (TaskBase* next = deque.next_pop_hint()) __builtin_prefetch(next);
      return t;
    }
    return find_task_slow();
  }
  TaskBase* find_task_slow() noexcept;
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
  // Runs tasks (and sleeps when there are none) until the latch is done.
  void wait_until(CountLatch& latch) noexcept;
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

  // Accepts a task or throws (pool_closed; std::bad_alloc). On a worker of this pool: local deque
  // (accepted even while shutdown drains, so accepted work can finish); elsewhere: the injector.
  void schedule(TaskBase* t) {
    if (WorkerContext* w = local_worker()) {
      if (w->private_count != 0) w->publish_private();  // INV-J1; the notify below covers them
      w->deque.push(t);
      w->spawned.bump();
      // Publish (release store of bottom_) then notify_work (its seq_cst fence + load: the
      // submitter half of the idle handshake, see pool/SLEEP.md).
      idle_.notify_work();
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

  void shutdown();
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
  void report_post_exception(std::exception_ptr e) noexcept;

 private:
  friend struct WorkerContext;
  void worker_main(std::size_t index) noexcept;

  PoolOptions options_;
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

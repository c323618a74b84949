// parkpool::ThreadPool: workers, the external-submit path, shutdown, latches, CPU count.
// [[gnu::hot]] marks the functions on the wake path from idle (the submitter up to FUTEX_WAKE,
// the woken worker up to its task): GCC places them together in .text.hot, so that path touches
// fewer code pages, each a TLB miss on its first touch after an idle period (not after a
// syscall as such: pool/SLEEP.md, "Tuning", 2026-12-07).
// pool/SLEEP.md, "Tuning", has the measurement.
#include "parkpool/thread_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

namespace parkpool {

// ---------------------------------------------------------------------------------------------
// CPU count

namespace {

std::size_t affinity_cpus() noexcept {
  constexpr int kMaxCpus = 8192;
  cpu_set_t* set = CPU_ALLOC(kMaxCpus);
  if (set == nullptr) return 0;
  const std::size_t bytes = CPU_ALLOC_SIZE(kMaxCpus);
  std::size_t n = 0;
  if (sched_getaffinity(0, bytes, set) == 0) n = static_cast<std::size_t>(CPU_COUNT_S(bytes, set));
  CPU_FREE(set);
  return n;
}

// ceil(quota / period), or 0 when unlimited / unreadable.
std::size_t quota_cpus(double quota, double period) noexcept {
  if (quota <= 0 || period <= 0) return 0;
  const double c = quota / period;
  const auto whole = static_cast<std::size_t>(c);
  return static_cast<double>(whole) < c ? whole + 1 : std::max<std::size_t>(whole, 1);
}

// The controllers field of a /proc/self/cgroup line ("4:cpu,cpuacct:/a/b") names `ctl`.
bool names_controller(std::string_view controllers, std::string_view ctl) noexcept {
  for (std::size_t pos = 0;;) {
    const std::size_t comma = controllers.find(',', pos);
    if (controllers.substr(pos, comma - pos) == ctl) return true;
    if (comma == std::string_view::npos) return false;
    pos = comma + 1;
  }
}

// Calls read(dir) for `rel` ("/a/b") and each of its ancestors up to the root ("/a", "").
template <class Read>
void for_each_ancestor(std::string rel, Read&& read) {
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  for (;;) {
    read(rel);
    if (rel.empty()) return;
    rel.resize(rel.rfind('/') == std::string::npos ? 0 : rel.rfind('/'));
  }
}

}  // namespace

namespace detail {

std::size_t cgroup_cpu_limit(const std::string& proc_self_cgroup, const std::string& cgroup_root) {
  // /proc/self/cgroup: one "id:controllers:path" line per hierarchy. cgroup v2 is the line
  // "0::path"; a v1 hierarchy lists its controllers ("4:cpu,cpuacct:/path").
  std::string v2_rel, v1_rel;
  bool v2 = false, v1 = false;
  {
    std::ifstream f(proc_self_cgroup);
    std::string line;
    while (std::getline(f, line)) {
      const std::size_t a = line.find(':');
      const std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b == std::string::npos) continue;  // not a cgroup line
      const std::string_view controllers = std::string_view(line).substr(a + 1, b - a - 1);
      if (line.compare(0, a, "0") == 0 && controllers.empty()) {
        v2 = true;
        v2_rel = line.substr(b + 1);
      } else if (names_controller(controllers, "cpu")) {
        v1 = true;
        v1_rel = line.substr(b + 1);
      }
    }
  }
  std::size_t best = 0;
  auto consider = [&best](std::size_t n) {
    if (n != 0 && (best == 0 || n < best)) best = n;
  };
  // cgroup v2: cpu.max is "max <period>" or "<quota> <period>" in the process's cgroup and each
  // ancestor (the tightest one limits). A cgroup namespace shows the path from its own root, which
  // is also the mount's root: the walk then starts at the right place too.
  if (v2) {
    for_each_ancestor(v2_rel, [&](const std::string& dir) {
      std::ifstream f(cgroup_root + dir + "/cpu.max");
      std::string q;
      double period = 0;
      if (f >> q >> period && q != "max")
        consider(quota_cpus(std::strtod(q.c_str(), nullptr), period));
    });
  }
  // cgroup v1: cpu.cfs_quota_us (-1: unlimited) / cpu.cfs_period_us in the cpu hierarchy, mounted
  // as <root>/cpu (usually a link to cpu,cpuacct) or under the combined name.
  if (v1) {
    for (const char* mount : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
      const std::string base = cgroup_root + mount;
      std::ifstream probe(base + "/cpu.cfs_period_us");
      if (!probe) continue;  // not this mount's name
      for_each_ancestor(v1_rel, [&](const std::string& dir) {
        std::ifstream fq(base + dir + "/cpu.cfs_quota_us");
        std::ifstream fp(base + dir + "/cpu.cfs_period_us");
        double quota = 0, period = 0;
        if (fq >> quota && fp >> period) consider(quota_cpus(quota, period));
      });
      break;
    }
  }
  return best;
}

std::size_t available_cpus_from(const char* proc_self_cgroup, const char* cgroup_root) noexcept {
  std::size_t n = affinity_cpus();
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  try {  // the paths become std::strings in here: their allocation may throw too
    const std::size_t q = cgroup_cpu_limit(proc_self_cgroup, cgroup_root);
    if (q != 0 && q < n) n = q;
  } catch (...) {  // I/O trouble or std::bad_alloc: the affinity count stands
  }
  return n;
}

}  // namespace detail

std::size_t available_cpus() noexcept {
  return detail::available_cpus_from("/proc/self/cgroup", "/sys/fs/cgroup");
}

WorkerStats& WorkerStats::operator+=(const WorkerStats& o) noexcept {
  tasks_run += o.tasks_run;
  tasks_cancelled += o.tasks_cancelled;
  spawned += o.spawned;
  steals += o.steals;
  injector_pops += o.injector_pops;
  post_exceptions += o.post_exceptions;
  parks += o.parks;
  unparks += o.unparks;
  timed_out_parks += o.timed_out_parks;
  spin_hits += o.spin_hits;
  spin_yields += o.spin_yields;
  return *this;
}

namespace detail {

// ---------------------------------------------------------------------------------------------
// CountLatch

void CountLatch::count_down(PoolCore* pool) noexcept {
  // (L2) acq_rel: release publishes the counted task's effects (results, exceptions) to the
  // waiter's done() (L1); acquire makes the waiter's ext_ (written before its tag CAS, L3) visible.
  const std::uint64_t old = word_.fetch_sub(kOne, std::memory_order_acq_rel);
  // A count of 0 or below here is legal only in a GroupLatch's shared part (see pool_core.hpp);
  // nobody is registered then, and the tag below is 0.
  if (count_of(old) != 1) return;
  const std::uint64_t tag = old & kTagMask;
  if (tag == 0) return;  // nobody registered: the waiter will see count 0 by itself
  if (tag == kExternalTag) {
    // INV-L1: the waiter stays blocked until `done` is set, so ext_ and *ext_ are alive.
    ExternalWaiter* e = ext_.load(std::memory_order_relaxed);  // ordered by (L3) -> (L2)
    std::lock_guard<std::mutex> lk(e->m);
    e->done = true;
    e->cv.notify_one();  // under the lock: the waiter cannot destroy cv before we are done
    return;
  }
  // A worker: a foreign unpark makes its wait_for_work() return (idle.hpp contract). The pool
  // outlives every task, and we no longer touch the latch.
  pool->idle().unparker(static_cast<std::size_t>(tag - 1)).unpark();
}

void CountLatch::two_waiters() noexcept {
  std::fputs(
      "parkpool: TaskGroup::wait(): two threads wait for the same group at once (wait() is for "
      "one thread at a time); aborting instead of leaving one of them asleep forever\n",
      stderr);
  std::fflush(stderr);
  std::abort();
}

void CountLatch::wait_external() noexcept {
  if (done()) return;
  ExternalWaiter w;
  ext_.store(&w, std::memory_order_relaxed);  // published by the tag CAS (L3)
  if (register_waiter(kExternalTag)) {
    std::unique_lock<std::mutex> lk(w.m);
    w.cv.wait(lk, [&] { return w.done; });
    // The finisher's count_down (L2) precedes its critical section, which precedes ours.
  }
  clear_waiter();
  ext_.store(nullptr, std::memory_order_relaxed);  // only this thread touches the latch now
}

// ---------------------------------------------------------------------------------------------
// Workers

// Waiting during shutdown (the idle coordinator no longer parks anyone): a few yields, then sleeps
// doubling from 1 us to 4 ms. A worker that waits for a long task of another worker (or for a
// latch whose task another worker runs) then costs ~250 short wakeups per second instead of a
// core spinning on sched_yield for the whole task; it notices new work or the end of the drain
// within 4 ms. Shutdown is the only user: the normal idle path parks on the coordinator.
// (The cap was 1 ms until 2026-12-01: ~1000 wakeups per second per waiting worker, about 25 us
// of CPU each on the 2-vCPU VM under load, put two waiters at 10.5 ms of CPU per 200 ms, just
// over tests/thread_pool_test.cpp's 5% bound, in a CI run with other tests beside it.)
namespace {
// max_shift 12: 2^12 us ~ 4 ms (drain_backoff); 10: ~1 ms (foreign_backoff).
void backoff_round(unsigned& round, unsigned max_shift) noexcept {
  constexpr unsigned kYields = 16;
  if (round < kYields) {
    std::this_thread::yield();
  } else {
    const unsigned shift = std::min(round - kYields, max_shift);
    std::this_thread::sleep_for(std::chrono::microseconds(1u << shift));
  }
  if (round < kYields + max_shift) ++round;
}
void drain_backoff(unsigned& round) noexcept { backoff_round(round, 12); }
// A foreign TaskGroup waiter (PoolCore::wait_foreign) polls: 16 yields, then sleeps doubling from
// 1 us to ~1 ms. It returns within ~1 ms of the group's last task finishing.
void foreign_backoff(unsigned& round) noexcept { backoff_round(round, 10); }
}  // namespace

[[gnu::hot]] void WorkerContext::InlineSlot::execute(TaskBase* self, bool run) noexcept {
  // Copy first: the callable may wait (join, TaskGroup) and this worker then reuses the slot.
  InjectedItem item = static_cast<InlineSlot*>(self)->item;
  if (!run) return;  // trivially destructible: nothing to release
  WorkerContext* w = tl_current_worker;
  try {
    item.call(item.storage);
  } catch (...) {
    w->pool->report_post_exception(*w, std::current_exception());
  }
  w->tasks_run.bump();
}

[[gnu::hot]] TaskBase* WorkerContext::pop_injector() noexcept {
  InjectedItem item;
  if (!pool->injector_pop(item)) return nullptr;
  injector_pops.bump();
  if (item.call == nullptr) return item.task;
  // The slot is free: InlineSlot::execute copies the item out before it runs it.
  inline_slot.item = item;
  return &inline_slot;
}

[[gnu::hot]] TaskBase* WorkerContext::find_task_slow() noexcept {
  if (TaskBase* t = pop_injector()) return t;
  const std::size_t n = pool->workers_.size();
  if (n < 2) return nullptr;
  const std::size_t start = static_cast<std::size_t>(next_random() % n);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t v = (start + k) % n;
    if (v == index) continue;
    ChaseLevDeque<TaskBase>& victim = pool->workers_[v]->deque;
    // A lost CAS means another thread took an item (global progress); retry this victim a few
    // times, then move on. Returning nullptr with work left is harmless: the idle re-check sees it.
    for (int attempt = 0; attempt < 4; ++attempt) {
      TaskBase* t = nullptr;
      const StealResult r = victim.steal(&t, &steal_hazard);  // R1/R3 (chase_lev_deque.hpp)
      if (r == StealResult::success) {
        steals.bump(1 + steal_more(victim));
        return t;
      }
      if (r == StealResult::empty) break;
    }
  }
  return nullptr;
}

std::size_t WorkerContext::steal_more(ChaseLevDeque<TaskBase>& victim) noexcept {
  // Only from a long queue (kBatchFrom items still visible): a fork-join deque stays short (a
  // few join jobs per level, the largest oldest), and there the one oldest job is the right
  // steal; taking the next ones too would take the victim's own upcoming joins.
  // Then half of what the victim still shows, at most kStealBatch - 1 more. A snapshot: the
  // owner may pop meanwhile, and each steal() below re-checks (one item per CAS: a single CAS
  // over several items is unsound against the owner's CAS-free pops; crossbeam-deque's LIFO
  // steal_batch steals one at a time for the same reason).
  const std::size_t left = victim.size_hint();
  if (left < kBatchFrom) return 0;
  const std::size_t want = std::min(left / 2, kStealBatch - 1);
  // Our own deque is empty (find_task popped nothing and only this thread pushes to it), and
  // its ring holds at least kDequeCapacity >= kStealBatch - 1 (static_assert in pool_core.hpp),
  // so every push_if_room below succeeds; checked anyway.
  std::size_t moved = 0;
  while (moved < want) {
    TaskBase* t = nullptr;
    if (victim.steal(&t, &steal_hazard) != StealResult::success) break;  // R1/R3, as above
    // Oldest first, as in the victim: we pop the newest first, thieves take the oldest.
    if (!deque.push_if_room(t)) {
      // Unreachable (see above). Never drop a task: run it now, on this thread; the caller's
      // task then runs after it, which only changes the order.
      assert(false && "steal_more: own deque full");
      t->fn(t, true);
      break;
    }
    ++moved;
  }
  // No notify_work(): the moved items were already published (in the victim's deque), and this
  // worker runs them itself unless another worker steals them first.
  // A thread that returns from find_task() calls found_work(), which, if this worker was the
  // last searcher and a worker sleeps, wakes the next sleeper when work remains (any_work() sees
  // these items); a worker that was not searching wakes nobody here: the moved items then cost
  // at most parallelism, as a join's push without a notify does (pool/SLEEP.md, "Where the pool
  // skips notify_work()").
  return moved;
}

void WorkerContext::publish_private() {
  std::size_t i = 0;
  try {
    for (; i < private_count; ++i) deque.push(private_jobs[i]);
  } catch (...) {
    // Keep the jobs not moved, still oldest first (INV-J1: the moved ones are older).
    std::copy(private_jobs + i, private_jobs + private_count, private_jobs);
    private_count -= i;
    throw;
  }
  private_count = 0;
}

bool WorkerContext::stale_backlog_slow() noexcept {
  const std::int64_t top = deque.top_hint();
  const auto now = std::chrono::steady_clock::now();
  if (top != quiet_top || deque.empty_hint()) {
    // Taken from, or nothing to take: a new interval starts here.
    quiet_top = top;
    quiet_since = now;
    return false;
  }
  if (now - quiet_since < kStaleAfter) return false;
  quiet_top = -1;  // the wake this answer causes starts a new interval at the next check
  return true;
}

[[gnu::hot]] bool WorkerContext::any_work() const noexcept {
  if (!pool->injector_empty()) return true;
  for (const auto& w : pool->workers_) {
    if (!w->deque.empty_hint()) return true;
  }
  return false;
}

[[gnu::hot]] void WorkerContext::prefetch_after_wake() const noexcept {
  __builtin_prefetch(this);
  __builtin_prefetch(&private_count);
  __builtin_prefetch(&inline_slot);
  __builtin_prefetch(&tasks_run);
  pool->injector_.prefetch_consumer();
  std::size_t n = 0;
  for (const auto& w : pool->workers_) {
    w->deque.prefetch();  // includes our own
    if (++n == kWakePrefetchDeques) break;
  }
  if (index >= kWakePrefetchDeques) deque.prefetch();
}

template <class Latch>
void WorkerContext::wait_until(Latch& latch) noexcept {
  IdleCoordinator& idle = pool->idle_;
  bool registered = false;  // registered at least once: drop the registration at the end
  bool armed = false;       // our registration is known to be in place
  bool slept = false;
  unsigned backoff = 0;
  while (!latch.done()) {
    if (TaskBase* t = find_task()) {
      backoff = 0;
      if (!idle_closed) idle.found_work(index, [this] { return any_work(); });
      slept = false;
      t->fn(t, true);
      // The task may have waited on this same latch (a TaskGroup's wait() nested in a task its
      // owner runs while it waits: same thread, same tag), and that wait dropped the registration
      // when it returned (clear_waiter; for a GroupLatch also the fold). Register again before
      // the next sleep. Until 2026-12-08 this wait slept on as if registered, and the count_down
      // of a task run() after the nested wait woke nobody: the test
      // TaskGroup.AnOuterWaitIsWokenAfterAWaitNestedInItsTaskDroppedTheRegistration hung. Costs
      // one load of the latch's word when the registration is still in place (register_waiter:
      // the same tag again).
      armed = false;
      continue;
    }
    if (!armed) {
      // Register before sleeping so the last count_down wakes us (one RMW, no store->load race).
      if (!latch.register_waiter(index + 1)) break;
      registered = armed = true;
      continue;  // re-check the latch and the queues once more
    }
    slept = true;
    cache.trim();  // going idle: bound the cached task blocks (task_cache.hpp)
    if (idle_closed || !idle.wait_for_work(index, [&] { return latch.done() || any_work(); })) {
      // Shutdown: the coordinator no longer parks us. The latch's job is accepted work that some
      // worker is running; keep helping and yield until it is done.
      idle_closed = true;
      drain_backoff(backoff);
    }
  }
  if (registered) latch.clear_waiter();
  // wait_for_work() may have left us counted as a searcher; we return to user code now, so stop
  // searching (and hand the search over to a sleeper if we were the last searcher).
  if (slept && !idle_closed) idle.found_work(index, [this] { return any_work(); });
}
template void WorkerContext::wait_until<CountLatch>(CountLatch&) noexcept;
template void WorkerContext::wait_until<GroupLatch>(GroupLatch&) noexcept;

void PoolCore::wait_foreign(GroupLatch& latch) noexcept {
  unsigned backoff = 0;
  WorkerContext* w = local_worker();
  while (!latch.done_snapshot()) {
    if (w != nullptr) {
      if (TaskBase* t = w->find_task()) {
        if (!w->idle_closed) idle_.found_work(w->index, [w] { return w->any_work(); });
        t->fn(t, true);
        backoff = 0;
        continue;
      }
      w->cache.trim();  // going idle: bound the cached task blocks (task_cache.hpp)
    }
    foreign_backoff(backoff);
  }
}

// ---------------------------------------------------------------------------------------------
// PoolCore

namespace {
PoolOptions validated(PoolOptions o) {
  if (o.threads == 0) throw std::invalid_argument("parkpool::ThreadPool: threads must be >= 1");
  if (o.deque_ring_hold.count() < 0) {
    throw std::invalid_argument("parkpool::ThreadPool: deque_ring_hold must be >= 0");
  }
  return o;
}
// PoolOptions::deque_ring_hold in nanoseconds, saturated to nanoseconds::max() ("never") where
// the conversion would overflow.
std::chrono::nanoseconds ring_hold_ns(std::chrono::milliseconds hold) noexcept {
  constexpr auto kMaxMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds::max());
  return hold >= kMaxMs ? std::chrono::nanoseconds::max() : std::chrono::nanoseconds(hold);
}
// kRingKeepHolds holds, saturated: how long a worker keeps its grown rings through idle episodes
// shorter than the hold (worker_main).
std::chrono::nanoseconds ring_keep_ns(std::chrono::nanoseconds hold) noexcept {
  constexpr auto kMax = std::chrono::nanoseconds::max();
  return hold >= kMax / PoolCore::kRingKeepHolds ? kMax : hold * PoolCore::kRingKeepHolds;
}
}  // namespace

PoolCore::PoolCore(PoolOptions options)
    : options_(validated(std::move(options))),
      ring_hold_(ring_hold_ns(options_.deque_ring_hold)),
      ring_keep_(ring_keep_ns(ring_hold_)),
      idle_slack_(static_cast<std::uint32_t>(
          options_.threads -
          std::min(options_.threads, std::max<std::size_t>(1, available_cpus())))),
      idle_(options_.threads, options_.idle) {
  workers_.reserve(options_.threads);
  for (std::size_t i = 0; i < options_.threads; ++i) {
    workers_.push_back(
        std::make_unique<WorkerContext>(this, i, 0x9E3779B97F4A7C15ull * (i + 1) | 1));
  }
  threads_.reserve(options_.threads);
  try {
    for (std::size_t i = 0; i < options_.threads; ++i) {
      threads_.emplace_back([this, i] { worker_main(i); });
    }
  } catch (...) {
    // A worker leaves the drain only when drain_idle_ counts every context in workers_ (see
    // worker_main), but those whose thread did not start never count themselves: count them here,
    // once, as idle (they hold no task and never will). Before shutdown()'s draining_ store
    // (G4), which the started workers acquire (G5) before they read drain_idle_; seq_cst like
    // every RMW on it.
    drain_idle_.fetch_add(workers_.size() - threads_.size(), std::memory_order_seq_cst);
    shutdown();  // joins the threads that did start
    throw;
  }
}

PoolCore::~PoolCore() { assert(joined_ && "PoolCore destroyed before shutdown()"); }

[[gnu::hot]] bool PoolCore::injector_empty() const noexcept { return injector_.empty_hint(); }
[[gnu::hot]] bool PoolCore::injector_pop(InjectedItem& out) noexcept { return injector_.pop(out); }

std::uint64_t PoolCore::external_accepted() const noexcept {
  return injector_.pushed() - external_jobs_.load(std::memory_order_relaxed);  // snapshots
}

bool PoolCore::injector_backlog(std::uint64_t mine) const noexcept {
  return injector_.popped() < mine - 1;  // a snapshot (relaxed); may be stale, either way
}

[[gnu::hot]] void PoolCore::inject_item(const InjectedItem& item, bool is_task) {
  // The injector's tail lock is the external-submit gate: after shutdown's close() no push is
  // accepted, and every accepted one is complete and visible to shutdown (INV-G1). Throws
  // std::bad_alloc with nothing accepted.
  const std::uint64_t mine = injector_.push(item);
  if (mine == 0) throw pool_closed();
  // Relaxed: a statistic; rare (join() from outside the pool).
  if (!is_task) external_jobs_.fetch_add(1, std::memory_order_relaxed);
  // Submitter half of the idle handshake: seq_cst fence + load inside (pool/SLEEP.md). While a
  // worker is counted as searching, a sleeper is woken anyway if items injected before this one
  // are still queued: a searcher the OS has not run yet (a woken worker placed behind a busy
  // thread) otherwise holds every task back for up to a scheduler slice (sparse-load p99 1-2 ms
  // on the 2-vCPU VM). backlog() runs only when a worker searches and one sleeps.
  idle_.notify_work([this, mine] { return injector_backlog(mine); });
}

namespace {
// The pool whose on_thread_stop hook runs on this thread (its worker has stopped being one).
thread_local const PoolCore* tl_stopping_pool = nullptr;

constexpr const char* kShutdownFromOwnThread =
    "parkpool::ThreadPool::shutdown() called from a task of the same pool: it would wait for "
    "itself";
}  // namespace

bool PoolCore::on_own_thread() noexcept {
  // From on_thread_stop the thread is no longer a worker, but shutdown() is joining it: waiting
  // for the join there would deadlock on shutdown_mutex_.
  return local_worker() != nullptr || tl_stopping_pool == this;
}

void PoolCore::shutdown_or_terminate() noexcept {
  if (on_own_thread()) {
    // Stated here rather than left to an exception escaping the noexcept destructor: how
    // std::terminate's handler reports that depends on the compiler (with clang++ the message
    // was "terminate called without an active exception").
    std::fprintf(stderr, "parkpool: ~ThreadPool(): %s; terminating\n", kShutdownFromOwnThread);
    std::terminate();
  }
  shutdown();
}

void PoolCore::shutdown() {
  if (on_own_thread()) throw std::logic_error(kShutdownFromOwnThread);
  std::lock_guard<std::mutex> lk(shutdown_mutex_);
  if (joined_) return;
  // (G3) Close the gate: from here on no external push is accepted, and every accepted one is
  // complete and visible to this thread (the injector's tail lock orders them: INV-G1).
  injector_.close();
  // (G4) release: pairs with (G5) in worker_main: a worker that sees draining_ sees every
  // accepted external item (through G3, transitively).
  draining_.store(true, std::memory_order_release);
  idle_.shutdown();
  for (std::thread& th : threads_) {
    if (th.joinable()) th.join();
  }
  joined_ = true;
  assert(injector_.empty_hint() && "ThreadPool: tasks left in the injector after shutdown");
}

void PoolCore::report_post_exception(WorkerContext& w, std::exception_ptr e) noexcept {
  w.post_exceptions.bump();
  if (options_.on_post_exception) {
    try {
      options_.on_post_exception(std::move(e));
    } catch (...) {  // documented: ignored
    }
    return;
  }
  try {
    std::rethrow_exception(std::move(e));
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "parkpool: exception escaped a post() task: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "parkpool: non-std exception escaped a post() task\n");
  }
}

void PoolCore::reclaim_rings(WorkerContext& w) noexcept {
  // Every steal() on a worker's deque is a worker's, with its own steal_hazard (find_task_slow,
  // steal_more), so the scan below covers every thief reclaim() must know of.
  // No exception escapes: reclaim() catches std::bad_alloc of its fresh ring, and freeing cannot
  // throw.
  // A slot that names the deque is looked at again, a few times, yielding in between: a thief
  // holds its slot for a few instructions (one slot read) unless it is preempted there, and
  // otherwise the rings would wait for this worker's next idle, which may be far off. No second
  // barrier is needed: a thief's R1 after its barrier point B is followed by a ring_ load that
  // sees S1's ring (chase_lev_deque.hpp, "Reclaiming rings"), and a later read of the slot that
  // finds another value reads R3 of the dangerous steal or a later store of that thief (coherence
  // with the first read), which orders its slot read before the free as the first scan would.
  constexpr int kHazardLooks = 64;
  w.deque.reclaim([this] { idle_.heavy_barrier(); },  // (S2): asymmetric() was checked
                  [this](const void* deque) noexcept {
                    for (int look = 0; look < kHazardLooks; ++look) {
                      bool named = false;
                      for (const auto& other : workers_) {
                        // (S3) acquire: pairs with the thief's release stores R1 and R3, so a
                        // slot read before R3 (or before a later R1) happens before the free.
                        if (other->steal_hazard.load(std::memory_order_acquire) == deque) {
                          named = true;
                          break;
                        }
                      }
                      if (!named) return false;
                      std::this_thread::yield();
                    }
                    return true;  // still named: keep the rings for the next idle
                  });
  if (!w.deque.has_spare_rings()) w.spare_rings_since = {};  // freed: the next growth starts anew
}

[[gnu::hot]] void PoolCore::worker_main(std::size_t i) noexcept {
  WorkerContext& w = *workers_[i];
  tl_current_worker = &w;
  if (!options_.thread_name_prefix.empty()) {
    std::string name = options_.thread_name_prefix + std::to_string(i);
    if (name.size() > 15) name.resize(15);
    pthread_setname_np(pthread_self(), name.c_str());
  }
  if (options_.on_thread_start) {
    try {
      options_.on_thread_start(i);
    } catch (...) {
      report_post_exception(w, std::current_exception());
    }
  }

  for (;;) {
    if (TaskBase* t = w.find_task()) {
      // The last searcher to find work wakes the next sleeper only if more work is queued: the
      // plain found_work(i) would wake one on every task after an idle period (a wasted wake,
      // spin and park per task under sparse load, and a FUTEX_WAKE before the task starts).
      if (!w.idle_closed) idle_.found_work(i, [&w] { return w.any_work(); });
      t->fn(t, true);
      assert(w.private_count == 0 && w.join_depth == 0 && "a join left a private job behind");
      continue;
    }
    w.cache.trim();  // going idle: bound the cached task blocks (task_cache.hpp)
    // Going idle after a backlog grew the deque: the long-idle form of wait_for_work(), whose
    // hook returns the deque to its initial ring and frees the retired ones (reclaim_rings) once
    // the worker has stayed idle for options_.deque_ring_hold; a burst that comes back sooner
    // finds its ring grown. A pool whose deques never grew pays has_spare_rings(): two loads of
    // this worker's own words and one of its ring's mask, and a branch. Only with the asymmetric
    // barrier: reclaim() needs a process-wide barrier (membarrier); without it (TSAN, no
    // membarrier, valgrind, IdleOptions::asymmetric_barrier false) the rings are kept until the
    // pool is destroyed, as before.
    // A hold of nanoseconds::max() is "never": the plain form below.
    if (w.deque.has_spare_rings() && idle_.asymmetric() &&
        ring_hold_ != std::chrono::nanoseconds::max()) [[unlikely]] {
      // Kept too long: a worker that, after a backlog, runs light work whose idle episodes never
      // last the hold would keep its rings for good. So once ring_keep_ (kRingKeepHolds holds)
      // has passed since the first idle episode that found them, they are freed at this one,
      // however short (a workload that repeats its bursts then regrows its ring once per
      // ring_keep_). One clock read per idle episode, only while the rings are kept.
      const auto now = std::chrono::steady_clock::now();
      if (w.spare_rings_since == std::chrono::steady_clock::time_point{}) {
        w.spare_rings_since = now;
      } else if (now - w.spare_rings_since >= ring_keep_) {
        reclaim_rings(w);  // resets spare_rings_since if it freed them
      }
      // Still kept (not yet too long, or a thief's hazard slot named the deque): the hold.
      if (w.deque.has_spare_rings()) {
        if (w.idle_closed ||
            !idle_.wait_for_work(
                i, [&w] { return w.any_work(); }, [&w]() noexcept { w.prefetch_after_wake(); },
                ring_hold_, [this, &w]() noexcept { reclaim_rings(w); })) {
          break;
        }
        continue;
      }
    }
    if (w.idle_closed ||
        !idle_.wait_for_work(
            i, [&w] { return w.any_work(); }, [&w]() noexcept { w.prefetch_after_wake(); })) {
      break;
    }
  }
  w.idle_closed = true;

  // Drain (INV-G1: every accepted external task is in the injector once draining_ is set).
  for (unsigned b = 0; !draining_.load(std::memory_order_acquire);) drain_backoff(b);  // (G5)
  // A worker leaves only when every worker is counted idle at once (a worker that merely exited
  // when *it* found nothing could strand a task that a still running task pushed and then blocks
  // on). A counted worker holds no task: it leaves the count *before* it looks for one, and
  // re-enters it when it found none. So when the count reaches workers_.size(), no worker runs
  // or holds a task, each emptied its own deque before it counted itself (only its owner fills a
  // deque), and the closed injector was empty: nothing can be pushed any more. (Until
  // 2026-12-06 a worker left the count only after find_task() succeeded, so it could hold a task
  // it had just stolen while still counted; the others could then leave, and that task ran
  // alone: one that blocked on a task it posted hung shutdown().)
  bool counted = false;
  unsigned backoff = 0;
  for (;;) {
    if (counted) {
      // Why a worker that reads "all idle" here leaves no task behind. Suppose C reads
      // workers_.size() (load L) while worker B, after its decrement Rb (the fetch_sub below),
      // takes a task T that C's last find_task() missed before C counted itself (Rc, the
      // fetch_add below). Where can T be?
      //   - Not in B's own deque: only its owner fills a deque, and a counted worker emptied its
      //     own and runs nothing.
      //   - Not in the injector: B counted itself only after its own find_task() found the
      //     closed injector empty, which in the drain is exact (G3 to G5 make tail_'s last value
      //     visible to every worker, so "head_ == tail_" there reads the final tail_) and final
      //     (nothing is pushed any more), so a worker with a decrement to make never takes an
      //     injector task.
      //   - In a deque, then, taken by B's steal: B's steal runs the seq_cst fence D6 after Rb,
      //     and C missed T because a read of C saw that steal (its own pop reading top_, or its
      //     steal attempts, each with D6, before Rc). The deques' own seq_cst operations then
      //     order Rb before Rc in S ([atomics.order] p4.2/p4.4; the argument in full is in the
      //     header of tests/model/drain_model.cpp), whatever the count's own orders.
      // So L reads Rb or a later value, and "all idle" includes B's next increment, after T.
      // The RMWs and this load are seq_cst anyway, at the cost of the drain's few RMWs: the
      // argument above leans on the deques' fences, and this keeps the count's own part of it
      // trivial (p4.1). No fence of its own is needed here (774c03b added two for the injector
      // path, and the model's extension below showed that path does not arise: removed again).
      // Model-checked by tests/model/drain_model.cpp (2 and 3 workers, the deques with their own
      // orders, the closed injector with its pre-check and head lock, a running task that
      // pushes): it rejects the drain before 2026-12-06 (b1, b2, b11), a leave without the count
      // (b3, b12), the fetch_sub below deleted (b5), the deques' D3 or D6 removed (b4, b6),
      // find_task_slow() without pop_injector() (b7) and three one-line mutations of the
      // injector's pop() (b8 to b10); an assertion planted there (not kept) that no worker takes
      // an injector task after a decrement held in every schedule. It cannot decide the count's
      // orders: Relacy passes the drain with the two RMWs and this load relaxed (relaxed_*, run
      // by hand), because the outcome they exclude is load buffering, which it never produces.
      if (drain_idle_.load(std::memory_order_seq_cst) == workers_.size()) break;
      if (!w.any_work()) {
        drain_backoff(backoff);
        continue;
      }
      drain_idle_.fetch_sub(1, std::memory_order_seq_cst);  // Rb (above)
      counted = false;
    }
    if (TaskBase* t = w.find_task()) {
      backoff = 0;
      drain_took_task_hook_for_test();  // tests only: once per task of the final drain
      t->fn(t, true);
      continue;
    }
    drain_idle_.fetch_add(1, std::memory_order_seq_cst);  // Rc (above)
    counted = true;
  }

  // This worker runs no more tasks: give the blocks of other workers' caches it still holds back
  // now, while every cache of the pool is alive (task_cache.hpp, thread safety).
  w.cache.flush_remote();

  // From here on this thread runs no task of the pool, so it stops being one of its workers: a
  // post() or submit() from on_thread_stop then goes to the closed injector and throws
  // pool_closed, where it would otherwise land in this worker's deque after its last drain and
  // never run.
  tl_current_worker = nullptr;
  if (options_.on_thread_stop) {
    tl_stopping_pool = this;
    try {
      options_.on_thread_stop(i);
    } catch (...) {
      report_post_exception(w, std::current_exception());
    }
    tl_stopping_pool = nullptr;
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// ThreadPool

ThreadPool::ThreadPool(PoolOptions options)
    : core_(std::make_unique<detail::PoolCore>(std::move(options))) {}

ThreadPool::~ThreadPool() {
  if (core_) core_->shutdown_or_terminate();
}

void ThreadPool::shutdown() { core_->shutdown(); }

std::size_t ThreadPool::size() const noexcept { return core_->size(); }

bool ThreadPool::running_in_this_thread() const noexcept {
  return core_->local_worker() != nullptr;
}

bool ThreadPool::is_shutdown() const noexcept { return core_->shut_down(); }

PoolStats ThreadPool::stats() const {
  PoolStats s;
  const auto& ws = core_->workers();
  s.workers.reserve(ws.size());
  for (std::size_t i = 0; i < ws.size(); ++i) {
    const detail::WorkerContext& w = *ws[i];
    WorkerStats x;
    x.tasks_run = w.tasks_run.get();
    x.tasks_cancelled = w.tasks_cancelled.get();
    x.spawned = w.spawned.get();
    x.steals = w.steals.get();
    x.injector_pops = w.injector_pops.get();
    x.post_exceptions = w.post_exceptions.get();
    const IdleWorkerStats is = core_->idle().stats(i);
    x.parks = is.parks;
    x.unparks = is.unparks;
    x.timed_out_parks = is.timed_out_parks;
    x.spin_hits = is.spin_hits;
    x.spin_yields = is.spin_yields;
    s.total += x;
    s.workers.push_back(x);
  }
  s.external_accepted = core_->external_accepted();
  s.tasks_accepted = s.external_accepted + s.total.spawned;
  return s;
}

}  // namespace parkpool

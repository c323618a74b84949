// ThreadPool benchmarks against oneTBB and a std::mutex + std::condition_variable pool, in the
// same binary (issue 5's workloads). Figures are Google Benchmark counters:
//   external_post    1M empty post()s from a non-worker thread         items_per_second
//   internal_spawn   1M tasks posted from a worker / via TaskGroup::run items_per_second
//   fib27            fork-join fib(27), a spawn at every call           time (ms)
//   wake_latency     pool idle 5 ms, one task, time until it starts     p50_us / p99_us
//   idle_burn        CPU the pool uses in the 200 ms after a burst of   pool_cpu_ms
//                    100k tasks (every thread but the benchmark's own)
//   sparse_load      one ~2 us task every 20 us for 0.5 s               cpu_us_per_task (the
//                    pool's threads plus the submitter's CPU in post()), p50_us, p99_us
//   memory           resident bytes per queued small task, 1M queued    bytes_per_task
//                    from outside (parkpool: the injector) and, for
//                    parkpool_worker, from a worker (its deque); each
//                    measured in a child process (see workload 7)
//   injector_queue   the external-submit queue alone: 1M 56-byte items  items_per_second
//                    from one thread to another (see workload 8)
// Two workers unless the name says otherwise. Run with --benchmark_filter to pick one.
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_stats.hpp"
#include "parkpool/detail/injector.hpp"
#include "parkpool/detail/parker_backend.hpp"
#include "parkpool/thread_pool.hpp"

#if __has_include(<boost/lockfree/queue.hpp>)
#include <boost/lockfree/queue.hpp>
#define PARKPOOL_BENCH_HAVE_BOOST_LOCKFREE 1
#endif

#if defined(PARKPOOL_HAVE_TBB)
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kWorkers = 2;

// ---- The std baseline: one mutex, one condition variable, one deque of std::function. ----
class StdPool {
 public:
  explicit StdPool(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~StdPool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  template <class F>
  void post(F&& f) {
    {
      std::lock_guard<std::mutex> lk(m_);
      q_.emplace_back(std::forward<F>(f));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;
        f = std::move(q_.front());
        q_.pop_front();
      }
      f();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

parkpool::PoolOptions pp_options(std::size_t n) {
  parkpool::PoolOptions o;
  o.threads = n;
  return o;
}

void wait_count(const std::atomic<std::size_t>& c, std::size_t n) {
  while (c.load(std::memory_order_acquire) < n) {
    // spin: the submitter's own waiting must not add a wakeup to the measurement
  }
}
// This thread's CPU time (s).
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
#if defined(PARKPOOL_HAVE_TBB)
// Runs one task in `arena` and waits for it: oneTBB starts its workers on the first enqueue, which
// the parkpool and std pools do in their constructors, outside the measured region too.
void warm_up(tbb::task_arena& arena) {
  std::atomic<std::size_t> ran{0};
  arena.enqueue([&ran] { ran.store(1, std::memory_order_release); });  // pairs with wait_count
  wait_count(ran, 1);
}
#endif

using parkpool::bench::percentile;
using parkpool::bench::percentile_supported;
using parkpool::bench::put_percentile;
// Per-thread CPU time of the other threads of this process, for IdleBurn and the sparse loads. Each
// thread's own CPU clock, named by its tid as glibc's pthread_getcpuclockid does (Linux ABI:
// ((~tid) << 3) | CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_SCHED). The kernel brings a running thread's
// clock up to date when it is read, so the value is exact at the read. CLOCK_PROCESS_CPUTIME_ID is
// not: it adds the other threads' runtime as of their last tick or context switch, so a worker
// still spinning at the window's start had up to a tick of earlier spin counted inside the window
// (on the dev VM, process clock minus this thread's clock read 0.13-3.4 ms after a oneTBB burst
// where the workers' own clocks read 0.02-0.12 ms, and once -0.03 ms for parkpool; /tmp experiment,
// 2026-12-01).
std::vector<long> other_tids() {
  const long self = static_cast<long>(syscall(SYS_gettid));
  std::vector<long> tids;
  if (DIR* d = opendir("/proc/self/task")) {
    while (const dirent* e = readdir(d)) {
      const long tid = std::atol(e->d_name);  // 0 for "." and ".."
      if (tid > 0 && tid != self) tids.push_back(tid);
    }
    closedir(d);
  }
  std::sort(tids.begin(), tids.end());
  return tids;
}
double thread_cpu_s(long tid) {
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6u);
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) return 0;  // the thread has exited
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
// The other threads' CPU (s) between `before` (their clocks, in `tids` order, read at the start)
// and now. A thread that appeared since counts whole (it was created inside the window); one
// that exited is missing (none of the pools here starts or stops threads while idle).
double other_threads_cpu_since(const std::vector<long>& tids, const std::vector<double>& before) {
  double total = 0;
  for (long tid : other_tids()) {
    const auto it = std::lower_bound(tids.begin(), tids.end(), tid);
    const bool known = it != tids.end() && *it == tid;
    total += thread_cpu_s(tid) - (known ? before[static_cast<std::size_t>(it - tids.begin())] : 0);
  }
  return total;
}
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

constexpr std::size_t kTasks = 1'000'000;

// The pool's idle diagnostics per 1,000 of the `tasks` this run posted to `pool` (all of the run's
// iterations; each repetition is a run with its own pool): unparks, parks, spin hits, and worker
// 0's share of the tasks run.
void idle_counters(benchmark::State& state, const parkpool::ThreadPool& pool, double tasks) {
  const parkpool::PoolStats st = pool.stats();
  const double k = tasks / 1000.0;
  state.counters["unparks_per_1k"] = static_cast<double>(st.total.unparks) / k;
  state.counters["parks_per_1k"] = static_cast<double>(st.total.parks) / k;
  state.counters["spin_hits_per_1k"] = static_cast<double>(st.total.spin_hits) / k;
  state.counters["w0_share"] = static_cast<double>(st.workers[0].tasks_run) / tasks;
}

// Counts a workload's tasks without a shared line: each thread bumps its own cache line, and the
// benchmark thread polls the sum. The workloads 1 and 2 post empty tasks; until
// 2026-12-02 (internal spawn) and 2026-12-06 (external submit) every task did a fetch_add on one
// shared counter instead: a contended RMW per task, moving one line between the two workers, that
// the pools do not do and that the TaskGroup rows (parkpool's and oneTBB's) do not add on top of
// their own group count. perf put 66% of the internal task body's samples on it (2026-12-02, AMD
// EPYC VM), and 25% of all of ExternalPost/parkpool's samples (2026-12-06, Intel Xeon VM).
class ShardedCount {
 public:
  // Any thread. Relaxed: a count; the benchmark thread only compares the sum with a target.
  void bump() noexcept {
    thread_local const ShardedCount* owner = nullptr;
    thread_local Shard* shard = nullptr;
    if (owner != this) {
      owner = this;
      // relaxed: hands out indices; threads beyond kShards share a shard (still an exact count).
      shard = &shards_[next_.fetch_add(1, std::memory_order_relaxed) % kShards];
    }
    shard->n.fetch_add(1, std::memory_order_relaxed);  // uncontended: this thread's own line
  }
  // Relaxed: a snapshot; counts only grow, so reaching a target is final.
  std::uint64_t sum() const noexcept {
    std::uint64_t s = 0;
    for (const Shard& sh : shards_) s += sh.n.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static constexpr std::size_t kShards = 8;
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> n{0};
  };
  Shard shards_[kShards];
  std::atomic<std::size_t> next_{0};
};

// ---- 1. external submit ----
// parkpool's row also reports, per 1,000 tasks, the workers' parks, unparks and spin hits, and
// worker 0's share of the tasks: diagnostics, not figures. The submitter pays one FUTEX_WAKE per
// unpark, so they explain this workload's per-process bimodality on the 2-vCPU dev VM
// (2026-12-01: processes at ~5.5M tasks/s had 8-12 unparks per 1k tasks; one at 2.8M had 18).
// `done` counts every round's tasks (round r ends when the sum reaches r * kTasks); the caller
// declares it before its pool, so it outlives the workers.
template <class Post>
void external_post(benchmark::State& state, ShardedCount& done, Post&& post) {
  std::uint64_t target = 0;
  for (auto _ : state) {
    target += kTasks;
    for (std::size_t i = 0; i < kTasks; ++i) post([&done] { done.bump(); });
    while (done.sum() < target) {
      // spin: the submitter's own waiting must not add a wakeup to the measurement
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kTasks));
}
void BM_ExternalPost_Parkpool(benchmark::State& state) {
  ShardedCount done;
  parkpool::ThreadPool pool(pp_options(kWorkers));
  external_post(state, done, [&](auto&& f) { pool.post(f); });
  idle_counters(state, pool, static_cast<double>(state.iterations()) * static_cast<double>(kTasks));
}
void BM_ExternalPost_Std(benchmark::State& state) {
  ShardedCount done;
  StdPool pool(kWorkers);
  external_post(state, done, [&](auto&& f) { pool.post(f); });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_ExternalPost_TBB(benchmark::State& state) {
  ShardedCount done;
  tbb::task_arena arena(static_cast<int>(kWorkers), 0);  // 0 slots reserved for the submitter
  warm_up(arena);
  external_post(state, done, [&](auto&& f) { arena.enqueue(f); });
}
#endif

// ---- 2. internal spawn ----
// This thread blocks while the pool works, as in the TaskGroup rows (future::get) and oneTBB's
// (whose arena.execute makes this thread one of its 2 threads). Until 2026-12-01 it spun in
// wait_count: a third busy thread on the dev VM's 2 vCPUs, against the two workers.

void BM_InternalPost_Parkpool(benchmark::State& state) {
  // Declared before the pool, so it outlives the workers. Counts every round's tasks; round r
  // ends when the sum reaches r * kTasks.
  ShardedCount done;
  parkpool::ThreadPool pool(pp_options(kWorkers));
  std::uint64_t target = 0;
  for (auto _ : state) {
    target += kTasks;
    pool.post([&] {
      for (std::size_t i = 0; i < kTasks; ++i) pool.post([&done] { done.bump(); });
    });
    // Polls every 500 us: adds at most 0.5 ms to a round (40-160 ms on the 2-vCPU VM; the delay
    // counts against parkpool), and 80-320 wakeups of this thread, each a few us of a worker's CPU.
    while (done.sum() < target) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kTasks));
}
void BM_InternalTaskGroup_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  for (auto _ : state) {
    pool.submit([&] {
          parkpool::TaskGroup g(pool);
          for (std::size_t i = 0; i < kTasks; ++i) g.run([] {});
          g.wait();
        })
        .get();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kTasks));
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_InternalTaskGroup_TBB(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(kWorkers), 1);
  for (auto _ : state) {
    arena.execute([&] {
      tbb::task_group g;
      for (std::size_t i = 0; i < kTasks; ++i) g.run([] {});
      g.wait();
    });
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kTasks));
}
#endif

// ---- 3. fork-join fib(27) ----
long fib_join(parkpool::ThreadPool& pool, int n) {
  if (n < 2) return n;
  auto [a, b] = parkpool::join(
      pool, [&] { return fib_join(pool, n - 1); }, [&] { return fib_join(pool, n - 2); });
  return a + b;
}
long fib_group(parkpool::ThreadPool& pool, int n) {
  if (n < 2) return n;
  long a = 0, b = 0;
  parkpool::TaskGroup g(pool);
  g.run([&] { a = fib_group(pool, n - 1); });
  b = fib_group(pool, n - 2);
  g.wait();
  return a + b;
}
// Every implementation's result is checked: a wrong fib(27) fails the case instead of timing it.
constexpr long kFib27 = 196'418;
bool fib_ok(benchmark::State& state, long r) {
  if (r == kFib27) return true;
  state.SkipWithError("fib(27) computed a wrong result");
  return false;
}
void BM_Fib27Join_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(static_cast<std::size_t>(state.range(0))));
  for (auto _ : state) {
    if (!fib_ok(state, pool.submit([&] { return fib_join(pool, 27); }).get())) break;
  }
}
void BM_Fib27TaskGroup_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(static_cast<std::size_t>(state.range(0))));
  for (auto _ : state) {
    if (!fib_ok(state, pool.submit([&] { return fib_group(pool, 27); }).get())) break;
  }
}
#if defined(PARKPOOL_HAVE_TBB)
long fib_tbb(int n) {
  if (n < 2) return n;
  long a = 0, b = 0;
  tbb::task_group g;
  g.run([&] { a = fib_tbb(n - 1); });
  b = fib_tbb(n - 2);
  g.wait();
  return a + b;
}
void BM_Fib27TaskGroup_TBB(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(state.range(0)), 1);
  for (auto _ : state) {
    long r = 0;
    arena.execute([&] { r = fib_tbb(27); });
    if (!fib_ok(state, r)) break;
  }
}
#endif

// ---- 4. wake latency from idle ----
// same_cpu_pct: how often the woken thread started on the CPU the submitter ran on just before
// the submit. On this 2-vCPU VM a wake onto the submitter's CPU is a hand-off at its next yield
// (a few us), while a wake onto the other, halted vCPU costs an inter-processor interrupt into
// the guest (~15-20 us): compare p50s only between rows with similar placement.
// submit_call_p50_us: the median time the submit call itself took (for the bare futex thread,
// one FUTEX_WAKE: ~10.6 us here after 5 ms idle, 2026-12-01), a diagnostic of how much of the
// latency the submitter's path costs before the woken thread can run at all.
// The samples (us) of one repetition; same_cpu counts the tasks that started on the CPU the
// submitter ran on just before the submit; submit_us: each submit call's duration.
struct WakeSamples {
  std::vector<double> us, submit_us;
  std::size_t same_cpu = 0;
  double same_cpu_pct() const {
    return 100.0 * static_cast<double>(same_cpu) /
           static_cast<double>(std::max<std::size_t>(1, us.size()));
  }
};
// One sample: sleep 5 ms, submit one task, wait (yielding) until it has started.
template <class Submit>
void wake_latency_once(WakeSamples& w, Submit&& submit) {
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let the workers fall asleep
  // (W1) the task's release store pairs with the acquire load below: t1 and task_cpu are the
  // task's.
  std::atomic<std::int64_t> started{0};
  std::atomic<int> task_cpu{-1};
  const int submit_cpu = sched_getcpu();
  const std::int64_t t0 = now_ns();
  submit([&started, &task_cpu] {
    const std::int64_t t = now_ns();
    task_cpu.store(sched_getcpu(), std::memory_order_relaxed);  // published by (W1)
    started.store(t, std::memory_order_release);                // (W1)
  });
  w.submit_us.push_back(static_cast<double>(now_ns() - t0) * 1e-3);
  std::int64_t t1 = 0;
  // Yield while waiting: on 2 cores a pure spin here can sit on the CPU the woken worker is
  // placed on and delay it by a scheduler slice (~1.7 ms measured), which times the scheduler.
  while ((t1 = started.load(std::memory_order_acquire)) == 0) std::this_thread::yield();  // (W1)
  w.us.push_back(static_cast<double>(t1 - t0) * 1e-3);
  if (task_cpu.load(std::memory_order_relaxed) == submit_cpu) ++w.same_cpu;
}
template <class Submit>
WakeSamples wake_latency_samples(benchmark::State& state, Submit&& submit) {
  WakeSamples w;
  for (auto _ : state) wake_latency_once(w, submit);
  return w;
}
template <class Submit>
void wake_latency(benchmark::State& state, Submit&& submit) {
  const WakeSamples w = wake_latency_samples(state, submit);
  put_percentile(state.counters, "p50_us", w.us, 0.5);
  put_percentile(state.counters, "p99_us", w.us, 0.99);
  state.counters["same_cpu_pct"] = w.same_cpu_pct();
  put_percentile(state.counters, "submit_call_p50_us", w.submit_us, 0.5);
}

// One thread blocked in FUTEX_WAIT runs each posted task: the floor of a wake from idle.
// post() must not be called again before the previous task has run (wake_latency waits).
class FutexThread {
 public:
  FutexThread() : thread_([this] { loop(); }) {}
  ~FutexThread() {
    stop_.store(true, std::memory_order_relaxed);  // published by post()'s release store (F1)
    post([] {});
    thread_.join();
  }
  FutexThread(const FutexThread&) = delete;
  FutexThread& operator=(const FutexThread&) = delete;
  template <class F>
  void post(F&& f) {
    task_ = std::forward<F>(f);
    // (F1) release: the task (and stop_) are visible to the thread that sees word_ == 1.
    word_.store(1, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word_), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
  }

 private:
  void loop() {
    for (;;) {
      while (word_.load(std::memory_order_acquire) == 0) {  // (F1)
        // FUTEX_WAIT sleeps only while the word is still 0: a post() in between is not lost.
        syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word_), FUTEX_WAIT_PRIVATE, 0, nullptr,
                nullptr, 0);
      }
      // Relaxed: only this thread writes 0, and the next post() happens after the task ran.
      word_.store(0, std::memory_order_relaxed);
      if (stop_.load(std::memory_order_relaxed)) return;  // ordered by (F1)
      task_();
    }
  }
  std::atomic<std::uint32_t> word_{0};
  std::atomic<bool> stop_{false};
  std::function<void()> task_;
  std::thread thread_;
};
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
              std::atomic<std::uint32_t>::is_always_lock_free);

void BM_WakeLatency_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  wake_latency(state, [&](auto&& f) { pool.post(f); });
}
void BM_WakeLatency_ParkpoolEfficiency(benchmark::State& state) {
  auto o = pp_options(kWorkers);
  o.idle = parkpool::IdleOptions::efficiency();
  parkpool::ThreadPool pool(o);
  wake_latency(state, [&](auto&& f) { pool.post(f); });
}
void BM_WakeLatency_Std(benchmark::State& state) {
  StdPool pool(kWorkers);
  wake_latency(state, [&](auto&& f) { pool.post(f); });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_WakeLatency_TBB(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(kWorkers), 0);
  warm_up(arena);
  wake_latency(state, [&](auto&& f) { arena.enqueue(f); });
}
#endif
// A bare thread blocked in FUTEX_WAIT, woken by FUTEX_WAKE: the floor.
void BM_WakeLatency_BareFutex(benchmark::State& state) {
  FutexThread t;
  wake_latency(state, [&](auto&& f) { t.post(f); });
}

// WakeLatencyPaired: WakeLatency's pool and its bare futex thread in one process, one wake of
// each per iteration (the order alternating), so that both see the same state of the machine.
// On the 2-vCPU VM a process's wakes are all fast (bare futex p50 ~6-9 us) or all slow (~15-22
// us), and WakeLatency's separate processes land in either: its ratio of medians then swung
// from 0.48x to 1.15x over three full runs, and to 3.0x in one short run, with no change in the
// pool (issue 5's note, 2026-12-02). ratio_p50 / ratio_p99: the
// pool's percentile over the bare thread's, from the same process; p50_us / p99_us the pool's,
// bare_p50_us / bare_p99_us the thread's. A diagnostic of the pool's own wake path; issue 5's
// target is stated on WakeLatency.
void wake_latency_paired(benchmark::State& state, parkpool::ThreadPool& pool) {
  FutexThread bare;
  WakeSamples w, b;
  bool pool_first = true;
  for (auto _ : state) {
    if (pool_first) {
      wake_latency_once(w, [&](auto&& f) { pool.post(f); });
      wake_latency_once(b, [&](auto&& f) { bare.post(f); });
    } else {
      wake_latency_once(b, [&](auto&& f) { bare.post(f); });
      wake_latency_once(w, [&](auto&& f) { pool.post(f); });
    }
    pool_first = !pool_first;
  }
  // w and b hold one sample per iteration each: a percentile the count does not support is left
  // out of its three figures, the pool's, the bare thread's and their ratio (bench_stats.hpp,
  // percentile_supported).
  for (const auto& [q, name] : {std::pair{0.5, "p50"}, std::pair{0.99, "p99"}}) {
    if (!percentile_supported(w.us.size(), q) || !percentile_supported(b.us.size(), q)) continue;
    const double pool_p = percentile(w.us, q), bare_p = percentile(b.us, q);
    state.counters[std::string(name) + "_us"] = pool_p;
    state.counters["bare_" + std::string(name) + "_us"] = bare_p;
    state.counters["ratio_" + std::string(name)] = bare_p > 0 ? pool_p / bare_p : 0;
  }
}
void BM_WakeLatencyPaired_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  wake_latency_paired(state, pool);
}
void BM_WakeLatencyPaired_ParkpoolEfficiency(benchmark::State& state) {
  auto o = pp_options(kWorkers);
  o.idle = parkpool::IdleOptions::efficiency();
  parkpool::ThreadPool pool(o);
  wake_latency_paired(state, pool);
}

// ---- 5. idle burn ----
// pool_cpu_ms: the CPU of every thread but this one (the pool's threads) in the 200 ms after the
// burst, from their own CPU clocks (other_threads_cpu_since). Until 2026-12-01 it was the process
// clock's difference, which had two errors: it included this thread's own sleep_for(200 ms) (on
// the 2-vCPU dev VM a program that only sleeps 200 ms is charged 55-75 us of CPU for it, most
// of the 0.1 ms target, while parkpool's two workers used 0-8 us in the same window), and it
// counted other threads' runtime only as of their last tick (see other_tids). Not "cpu_ms":
// parkpool-bench names Google Benchmark's own CPU time cpu_<unit> and refuses a counter of that
// name (until 2026-12-06 the counter was cpu_ms, which only this case's wall timing kept apart).
template <class Post>
void idle_burn(benchmark::State& state, Post&& post) {
  double cpu = 0;
  for (auto _ : state) {
    std::atomic<std::size_t> done{0};
    for (std::size_t i = 0; i < 100'000; ++i)
      post([&done] { done.fetch_add(1, std::memory_order_relaxed); });
    // The pool's threads exist by now; list them before the burst ends, so that the window
    // starts with nothing but their clock reads (listing /proc takes ~50 us).
    const std::vector<long> tids = other_tids();
    std::vector<double> c0(tids.size());
    wait_count(done, 100'000);
    for (std::size_t i = 0; i < tids.size(); ++i) c0[i] = thread_cpu_s(tids[i]);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cpu += other_threads_cpu_since(tids, c0);
  }
  state.counters["pool_cpu_ms"] = cpu * 1e3 / static_cast<double>(state.iterations());
}
void BM_IdleBurn_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  idle_burn(state, [&](auto&& f) { pool.post(f); });
}
void BM_IdleBurn_Std(benchmark::State& state) {
  StdPool pool(kWorkers);
  idle_burn(state, [&](auto&& f) { pool.post(f); });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_IdleBurn_TBB(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(kWorkers), 0);
  warm_up(arena);
  idle_burn(state, [&](auto&& f) { arena.enqueue(f); });
}
#endif

// ---- 6. sparse load ----
void spin_for_ns(std::int64_t ns) {
  const std::int64_t end = now_ns() + ns;
  while (now_ns() < end) {
  }
}
// One ~2 us task every gap_ns, n tasks per repetition, from this (non-worker) thread.
// p50_us / p99_us: start latency, from the task's due time to its start. Split in two:
//   late_p99_us           how late this thread itself got to the post() call (its last clock read
//                         in the wait loop, minus the due time): its CPU taken by another thread,
//                         or the VM's vCPU stalled. No pool can remove it; the floor_no_pool row
//                         (no pool, each task run inline) shows this machine's share of it.
//   post_to_start_p99_us  from that clock read to the task's start: the pool's own part.
// (2026-12-02, AMD EPYC 2-vCPU VM: with no pool at all, late_p99_us was 48-50 us, and the p99
// from due 48-50 us too; parkpool's and oneTBB's rows showed the same 45-70 us of lateness.)
// cpu_us_per_task: the CPU the pool costs per task: its threads' CPU (every thread but this one)
// plus this thread's CPU inside post(), where a pool that wakes a sleeper pays the wake
// (FUTEX_WAKE, the interrupt to the other CPU). Until 2026-12-06 it left post() out (this thread
// spins between posts, so its CPU over the window cannot tell the two apart); a review measured
// 1.3-4.6 us of wall time per post() for the sleeping designs against 0.1 us for oneTBB's enqueue.
// post() is timed with this thread's CPU clock, not the wall clock, which would also count a
// post() blocked on a lock (the std pool's mutex) or preempted as CPU. A read of that clock
// costs ~0.24 us here (a syscall), which would delay each post it brackets: only every
// kPostCpuEvery-th post is bracketed (their mean, less the cost of an empty bracket, is the
// estimate), and those tasks are left out of the latency percentiles. Both parts are reported:
// worker_cpu_us_per_task and post_cpu_us_per_task.
constexpr std::size_t kPostCpuEvery = 16;
// The cost of one bracket with nothing in it: the least of a few back-to-back clock reads.
double empty_cpu_bracket_s() {
  double least = 1;
  for (int k = 0; k < 64; ++k) {
    const double a = thread_cpu_s(), b = thread_cpu_s();
    least = std::min(least, b - a);
  }
  return least;
}
template <class Post>
void sparse_load_run(benchmark::State& state, std::int64_t gap_ns, std::size_t n, Post&& post) {
  std::vector<double> lat, late, to_start;
  double cpu = 0, post_cpu = 0;
  std::size_t tasks = 0, post_samples = 0;
  const double bracket = empty_cpu_bracket_s();
  for (auto _ : state) {
    std::vector<std::int64_t> start(n, 0), late_ns(n, 0);
    // (S1) each task's release increment pairs with wait_count's acquire: start[] is complete.
    std::atomic<std::size_t> done{0};
    // The other threads' own clocks (other_threads_cpu_since: exact at the read, and a thread
    // the pool starts during the window counts whole), not the process clock minus this thread's
    // (until 2026-12-06), which lags by up to a tick per running thread.
    const std::vector<long> tids = other_tids();
    std::vector<double> c0(tids.size());
    for (std::size_t k = 0; k < tids.size(); ++k) c0[k] = thread_cpu_s(tids[k]);
    const std::int64_t base = now_ns();
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t due = base + static_cast<std::int64_t>(i) * gap_ns;
      std::int64_t t = 0;
      while ((t = now_ns()) < due) {
      }
      late_ns[i] = t - due;
      const bool sampled = i % kPostCpuEvery == kPostCpuEvery - 1;
      const double c_before = sampled ? thread_cpu_s() : 0;
      post([&start, &done, i, due] {
        start[i] = now_ns() - due;
        spin_for_ns(2'000);
        done.fetch_add(1, std::memory_order_release);  // (S1)
      });
      if (sampled) {
        post_cpu += std::max(0.0, thread_cpu_s() - c_before - bracket);
        ++post_samples;
      }
    }
    wait_count(done, n);  // (S1)
    // CPU of everything but the submitting thread, which spins between its posts.
    cpu += other_threads_cpu_since(tids, c0);
    tasks += n;
    for (std::size_t i = 0; i < n; ++i) {
      if (i % kPostCpuEvery == kPostCpuEvery - 1) continue;  // delayed by the clock reads
      lat.push_back(static_cast<double>(start[i]) * 1e-3);
      late.push_back(static_cast<double>(late_ns[i]) * 1e-3);
      to_start.push_back(static_cast<double>(start[i] - late_ns[i]) * 1e-3);
    }
  }
  const double worker_us = cpu * 1e6 / static_cast<double>(tasks);
  const double post_us = post_samples == 0 ? 0 : post_cpu * 1e6 / static_cast<double>(post_samples);
  state.counters["cpu_us_per_task"] = worker_us + post_us;
  state.counters["worker_cpu_us_per_task"] = worker_us;
  state.counters["post_cpu_us_per_task"] = post_us;
  put_percentile(state.counters, "p50_us", lat, 0.5);
  put_percentile(state.counters, "p99_us", lat, 0.99);
  put_percentile(state.counters, "late_p99_us", late, 0.99);
  put_percentile(state.counters, "post_to_start_p99_us", to_start, 0.99);
}
// Issue 5's workload 6: a task every 20 us for 0.5 s. parkpool's row adds the idle diagnostics
// (idle_counters): a task that found its worker parked paid a kernel wake.
constexpr std::size_t kSparseTasks = 25'000;
template <class Post>
void sparse_load(benchmark::State& state, Post&& post) {
  sparse_load_run(state, 20'000, kSparseTasks, post);
}
void BM_SparseLoad_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  sparse_load(state, [&](auto&& f) { pool.post(f); });
  idle_counters(state, pool,
                static_cast<double>(state.iterations()) * static_cast<double>(kSparseTasks));
}
// A reference point, not a baseline: no pool, this thread runs each task at its due time. Its
// latency is this thread's own lateness alone, the part of every row's p99 no pool can remove.
void BM_SparseLoad_FloorNoPool(benchmark::State& state) {
  sparse_load(state, [](auto&& f) { f(); });
}
// Reference points: one bare thread fed through a ring by the one submitting thread.
//   BareQueue::Idle::futex  (floor_bare_futex) the thread sleeps in FUTEX_WAIT whenever its queue
//     is empty, and post() always issues FUTEX_WAKE: the cost of waking a sleeping thread in this
//     workload, where the submitter keeps its own CPU busy, so the woken thread runs on the other
//     one (WakeLatency's bare_futex thread mostly runs on the waker's CPU: its same_cpu_pct). The
//     reference for the sleeping presets (parkpool_efficiency, the std pool). 2026-12-02, AMD
//     EPYC 2-vCPU VM, a throwaway copy of this loop: p50 10.6-11.2 us, as parkpool_efficiency's
//     10.7-11.1 us in the same processes, while WakeLatency's bare_futex p50 was 6.9-7.2 us in
//     two of the day's three full runs.
//   BareQueue::Idle::spin   (floor_bare_spin) the thread never sleeps: it polls its queue with a
//     pause between reads, and post() makes no syscall: what a design that spins forever (and
//     burns a core, as oneTBB does here) gets. The reference for the default preset's p99, which
//     spins on a bounded budget and then parks. 2026-12-05, AMD EPYC 2-vCPU VM, four processes
//     of 9 repetitions each: its p99 medians were 121, 209, 1,604 and 3,913 us, against
//     parkpool's 30-93 us and oneTBB's 95-359 us in the same processes: spinning forever does
//     not buy a shorter tail on this machine, so a longer spin budget is not the way to a lower
//     p99.
// A queue, unlike FutexThread, because a late submitter posts several tasks back to back.
class BareQueue {
 public:
  enum class Idle { futex, spin };
  explicit BareQueue(Idle idle) : idle_(idle), thread_([this] { loop(); }) {}
  ~BareQueue() {
    post(std::function<void()>{});  // the empty task: stop after everything posted before it
    thread_.join();
  }
  BareQueue(const BareQueue&) = delete;
  BareQueue& operator=(const BareQueue&) = delete;
  // The one submitting thread only. Throws std::length_error if kCapacity tasks are queued.
  template <class F>
  void post(F&& f) {
    const std::uint32_t s = posted_.load(std::memory_order_relaxed);  // relaxed: our own word
    // acquire: pairs with (Q2); the slot's previous task has finished with it.
    if (s - taken_.load(std::memory_order_acquire) >= kCapacity) {
      throw std::length_error("BareQueue: full");
    }
    ring_[s % kCapacity] = std::forward<F>(f);
    // (Q1) release: the slot is visible to the thread that reads this count.
    posted_.store(s + 1, std::memory_order_release);
    if (idle_ == Idle::futex) {
      syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&posted_), FUTEX_WAKE_PRIVATE, 1, nullptr,
              nullptr, 0);
    }
  }

 private:
  static constexpr std::uint32_t kCapacity = 1u << 12;
  void loop() {
    std::uint32_t taken = 0;
    for (;;) {
      const std::uint32_t s = posted_.load(std::memory_order_acquire);  // (Q1)
      if (s == taken) {
        if (idle_ == Idle::spin) {
          parkpool::detail::cpu_relax();
        } else {
          // FUTEX_WAIT sleeps only while the count is still s: a post() in between is not lost.
          syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&posted_), FUTEX_WAIT_PRIVATE, s,
                  nullptr, nullptr, 0);
        }
        continue;
      }
      std::function<void()>& slot = ring_[taken % kCapacity];
      if (!slot) return;  // the destructor's stop marker
      slot();
      slot = nullptr;
      ++taken;
      taken_.store(taken, std::memory_order_release);  // (Q2)
    }
  }
  const Idle idle_;
  std::atomic<std::uint32_t> posted_{0};
  std::atomic<std::uint32_t> taken_{0};
  std::vector<std::function<void()>> ring_ = std::vector<std::function<void()>>(kCapacity);
  std::thread thread_;  // last: started after every member above is initialised
};
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
              std::atomic<std::uint32_t>::is_always_lock_free);
void BM_SparseLoad_FloorBareFutex(benchmark::State& state) {
  BareQueue q(BareQueue::Idle::futex);
  sparse_load(state, [&](auto&& f) { q.post(f); });
}
void BM_SparseLoad_FloorBareSpin(benchmark::State& state) {
  BareQueue q(BareQueue::Idle::spin);
  sparse_load(state, [&](auto&& f) { q.post(f); });
}
void BM_SparseLoad_ParkpoolEfficiency(benchmark::State& state) {
  auto o = pp_options(kWorkers);
  o.idle = parkpool::IdleOptions::efficiency();
  parkpool::ThreadPool pool(o);
  sparse_load(state, [&](auto&& f) { pool.post(f); });
}
void BM_SparseLoad_Std(benchmark::State& state) {
  StdPool pool(kWorkers);
  sparse_load(state, [&](auto&& f) { pool.post(f); });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_SparseLoad_TBB(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(kWorkers), 0);
  warm_up(arena);
  sparse_load(state, [&](auto&& f) { arena.enqueue(f); });
}
#endif

// ---- 7. memory per queued small task ----
// Resident bytes that 1M queued small tasks (an 8-byte trivially copyable capture) add, with every
// worker blocked so that nothing is consumed while they are queued.
//
// Each figure is taken in a fresh process: this binary re-executed with only that benchmark
// (--benchmark_filter) and PARKPOOL_BENCH_MEMORY_CHILD set; the child writes the figure to fd 3.
// RSS only shows pages touched for the first time, and in a process that already ran other
// benchmarks the queues find memory left behind resident: malloc keeps freed chunks (and, until
// 2026-12-01, the injector kept a node slab for the process lifetime). Measured in-process after
// the other workloads, parkpool's figure read 0 (2026-11-22) and 43.8 (2026-11-30) instead of
// the ~64 its nodes needed then.
constexpr const char* kMemoryChildEnv = "PARKPOOL_BENCH_MEMORY_CHILD";
constexpr int kMemoryChildFd = 3;

long rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * sysconf(_SC_PAGESIZE);
}

// Parent side: runs `filter` in a child process and returns the bytes per task it reports, or a
// negative value (with the reason in `error`) if the child failed.
double memory_in_child(const std::string& filter, std::string& error) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    error = "pipe2 failed";
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], kMemoryChildFd);  // dup2 clears FD_CLOEXEC
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  // Quiet: the child's own report (context on stderr, table on stdout) would interleave with ours.
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string exe = "/proc/self/exe";
  std::string filter_arg = "--benchmark_filter=" + filter;
  char* argv[] = {exe.data(), filter_arg.data(), nullptr};
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
  env_store.push_back(std::string(kMemoryChildEnv) + "=1");
  std::vector<char*> envp;
  for (std::string& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    error = "posix_spawn failed";
    return -1;
  }
  std::string out;
  char buf[128];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) {
    error = "the measuring child failed (run it alone: " + std::string(kMemoryChildEnv) + "=1 " +
            filter_arg + ")";
    return -1;
  }
  return std::strtod(out.c_str(), nullptr);
}

// In the child (PARKPOOL_BENCH_MEMORY_CHILD set): runs `measure` and reports its figure on fd 3.
// In the parent: runs the child with `filter` and reports the child's figure.
template <class Measure>
void memory_per_task(benchmark::State& state, const char* filter, Measure&& measure) {
  if (std::getenv(kMemoryChildEnv) != nullptr) {
    double per = 0;
    for (auto _ : state) per = measure();
    state.counters["bytes_per_task"] = per;
    dprintf(kMemoryChildFd, "%.6f\n", per);
    return;
  }
  double per = 0;
  for (auto _ : state) {
    std::string error;
    per = memory_in_child(filter, error);
    if (per < 0) {
      state.SkipWithError(error.c_str());
      return;
    }
  }
  state.counters["bytes_per_task"] = per;
}

// Blocks `workers` workers with tasks posted through `post`, queues kTasks small tasks from this
// thread and returns the RSS growth over those posts per task; then releases the workers and
// waits until every task ran.
template <class Post>
double queue_blocked(std::size_t workers, Post&& post) {
  std::latch gate(1);
  std::latch blocked(static_cast<std::ptrdiff_t>(workers));
  for (std::size_t i = 0; i < workers; ++i) {
    post([&gate, &blocked] {
      blocked.count_down();
      gate.wait();
    });
  }
  blocked.wait();
  std::atomic<std::size_t> done{0};
  const long r0 = rss_bytes();
  for (std::size_t i = 0; i < kTasks; ++i)
    post([&done] { done.fetch_add(1, std::memory_order_relaxed); });
  const long r1 = rss_bytes();
  gate.count_down();
  wait_count(done, kTasks);
  return static_cast<double>(r1 - r0) / static_cast<double>(kTasks);
}

void BM_MemoryPerQueuedTask_Parkpool(benchmark::State& state) {
  memory_per_task(state, "^MemoryPerQueuedTask/parkpool/", [] {
    parkpool::ThreadPool pool(pp_options(kWorkers));
    return queue_blocked(kWorkers, [&](auto&& f) { pool.post(f); });
  });
}
// The same, posted from a worker: kWorkers - 1 workers blocked as above, then one task on the
// remaining worker queues kTasks small tasks with post() (its own deque; each task in a block of
// its TaskCache) and reports the RSS growth over those posts. The other path of a queued task:
// MemoryPerQueuedTask/parkpool covers posts from outside (the injector's inline slots).
void BM_MemoryPerQueuedTask_ParkpoolWorker(benchmark::State& state) {
  memory_per_task(state, "^MemoryPerQueuedTask/parkpool_worker/", [] {
    parkpool::ThreadPool pool(pp_options(kWorkers));
    std::latch gate(1);
    std::latch blocked(static_cast<std::ptrdiff_t>(kWorkers - 1));
    for (std::size_t i = 0; i + 1 < kWorkers; ++i) {
      pool.post([&gate, &blocked] {
        blocked.count_down();
        gate.wait();
      });
    }
    blocked.wait();
    std::atomic<std::size_t> done{0};
    const double per = pool.submit([&pool, &done] {
                             const long r0 = rss_bytes();
                             for (std::size_t i = 0; i < kTasks; ++i)
                               pool.post([&done] { done.fetch_add(1, std::memory_order_relaxed); });
                             const long r1 = rss_bytes();
                             return static_cast<double>(r1 - r0) / static_cast<double>(kTasks);
                           })
                           .get();
    gate.count_down();
    wait_count(done, kTasks);
    return per;
  });
}
void BM_MemoryPerQueuedTask_Std(benchmark::State& state) {
  memory_per_task(state, "^MemoryPerQueuedTask/std_pool/", [] {
    StdPool pool(kWorkers);
    return queue_blocked(kWorkers, [&](auto&& f) { pool.post(f); });
  });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_MemoryPerQueuedTask_TBB(benchmark::State& state) {
  memory_per_task(state, "^MemoryPerQueuedTask/onetbb/", [] {
    tbb::task_arena arena(static_cast<int>(kWorkers), 0);
    warm_up(arena);
    return queue_blocked(kWorkers, [&](auto&& f) { arena.enqueue(f); });
  });
}
#endif

// ---- 8. the injector queue alone ----
// One producer (this thread) pushes 1M items of 56 bytes (the pool's InjectedItem) and one
// consumer thread pops them, retrying at once when the queue looks empty: the queue's own cost per
// item, without the pool's scheduling around it. parkpool: detail::Injector, the pool's injector
// (a two-lock queue over chunks); boost_lockfree: boost::lockfree::queue, the pool's injector
// until 2026-12-01 (why it was replaced: detail/injector.hpp); std_mutex_deque: a std::deque
// under one std::mutex. The consumer checks the sum of what it took (nothing lost or repeated).
struct Item56 {
  std::uint64_t w[7];
};
static_assert(sizeof(Item56) == sizeof(parkpool::detail::InjectedItem));

template <class Push, class Pop>
void queue_transfer(benchmark::State& state, Push&& push, Pop&& pop) {
  for (auto _ : state) {
    std::uint64_t sum = 0;
    std::thread consumer([&] {
      Item56 it{};
      for (std::size_t n = 0; n < kTasks;) {
        if (pop(it)) {
          sum += it.w[0];
          ++n;
        }
      }
    });
    for (std::size_t i = 0; i < kTasks; ++i) push(Item56{{i, i, i, i, i, i, i}});
    consumer.join();
    if (sum != kTasks * (kTasks - 1) / 2) state.SkipWithError("items lost or repeated");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kTasks));
}
void BM_InjectorQueue_Parkpool(benchmark::State& state) {
  parkpool::detail::Injector<Item56> q;
  queue_transfer(
      state, [&](const Item56& x) { q.push(x); }, [&](Item56& x) { return q.pop(x); });
}
void BM_InjectorQueue_Std(benchmark::State& state) {
  std::mutex m;
  std::deque<Item56> q;
  queue_transfer(
      state,
      [&](const Item56& x) {
        std::lock_guard<std::mutex> lk(m);
        q.push_back(x);
      },
      [&](Item56& x) {
        std::lock_guard<std::mutex> lk(m);
        if (q.empty()) return false;
        x = q.front();
        q.pop_front();
        return true;
      });
}
#if defined(PARKPOOL_BENCH_HAVE_BOOST_LOCKFREE)
void BM_InjectorQueue_Boost(benchmark::State& state) {
  boost::lockfree::queue<Item56> q(1024);
  queue_transfer(
      state, [&](const Item56& x) { q.push(x); }, [&](Item56& x) { return q.pop(x); });
}
#endif

}  // namespace

BENCHMARK(BM_InjectorQueue_Parkpool)
    ->Name("InjectorQueue/parkpool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_InjectorQueue_Std)
    ->Name("InjectorQueue/std_mutex_deque")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
#if defined(PARKPOOL_BENCH_HAVE_BOOST_LOCKFREE)
BENCHMARK(BM_InjectorQueue_Boost)
    ->Name("InjectorQueue/boost_lockfree")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
#endif
BENCHMARK(BM_ExternalPost_Parkpool)
    ->Name("ExternalPost/parkpool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_ExternalPost_Std)
    ->Name("ExternalPost/std_pool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_InternalPost_Parkpool)
    ->Name("InternalSpawn/parkpool_post")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_InternalTaskGroup_Parkpool)
    ->Name("InternalSpawn/parkpool_taskgroup")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_Fib27Join_Parkpool)
    ->Name("Fib27/parkpool_join")
    ->Arg(2)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10)
    ->UseRealTime();
BENCHMARK(BM_Fib27TaskGroup_Parkpool)
    ->Name("Fib27/parkpool_taskgroup")
    ->Arg(2)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10)
    ->UseRealTime();
BENCHMARK(BM_WakeLatency_BareFutex)->Name("WakeLatency/bare_futex")->Iterations(200)->UseRealTime();
BENCHMARK(BM_WakeLatency_Parkpool)->Name("WakeLatency/parkpool")->Iterations(200)->UseRealTime();
BENCHMARK(BM_WakeLatency_ParkpoolEfficiency)
    ->Name("WakeLatency/parkpool_efficiency")
    ->Iterations(200)
    ->UseRealTime();
BENCHMARK(BM_WakeLatency_Std)->Name("WakeLatency/std_pool")->Iterations(200)->UseRealTime();
BENCHMARK(BM_WakeLatencyPaired_Parkpool)
    ->Name("WakeLatencyPaired/parkpool")
    ->Iterations(200)
    ->UseRealTime();
BENCHMARK(BM_WakeLatencyPaired_ParkpoolEfficiency)
    ->Name("WakeLatencyPaired/parkpool_efficiency")
    ->Iterations(200)
    ->UseRealTime();
BENCHMARK(BM_IdleBurn_Parkpool)
    ->Name("IdleBurn/parkpool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK(BM_IdleBurn_Std)
    ->Name("IdleBurn/std_pool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_Parkpool)
    ->Name("SparseLoad/parkpool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_FloorNoPool)
    ->Name("SparseLoad/floor_no_pool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_FloorBareFutex)
    ->Name("SparseLoad/floor_bare_futex")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_FloorBareSpin)
    ->Name("SparseLoad/floor_bare_spin")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_ParkpoolEfficiency)
    ->Name("SparseLoad/parkpool_efficiency")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_Std)
    ->Name("SparseLoad/std_pool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_MemoryPerQueuedTask_Parkpool)
    ->Name("MemoryPerQueuedTask/parkpool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_MemoryPerQueuedTask_ParkpoolWorker)
    ->Name("MemoryPerQueuedTask/parkpool_worker")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_MemoryPerQueuedTask_Std)
    ->Name("MemoryPerQueuedTask/std_pool")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
#if defined(PARKPOOL_HAVE_TBB)
BENCHMARK(BM_MemoryPerQueuedTask_TBB)
    ->Name("MemoryPerQueuedTask/onetbb")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
#endif
#if defined(PARKPOOL_HAVE_TBB)
BENCHMARK(BM_ExternalPost_TBB)
    ->Name("ExternalPost/onetbb")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_InternalTaskGroup_TBB)
    ->Name("InternalSpawn/onetbb_task_group")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_Fib27TaskGroup_TBB)
    ->Name("Fib27/onetbb_task_group")
    ->Arg(2)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10)
    ->UseRealTime();
BENCHMARK(BM_WakeLatency_TBB)->Name("WakeLatency/onetbb")->Iterations(200)->UseRealTime();
BENCHMARK(BM_IdleBurn_TBB)
    ->Name("IdleBurn/onetbb")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK(BM_SparseLoad_TBB)
    ->Name("SparseLoad/onetbb")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
#endif

int main(int argc, char** argv) {
#if defined(PARKPOOL_HAVE_TBB)
  // oneTBB caps its workers at hardware_concurrency - 1 by default; the 8-worker fib and the
  // 2-worker arenas with no slot reserved for the submitter need more.
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, 9);
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// ================================================================================================
// Figure families for parkpool-bench's three pictures (issue 6). They sit apart from issue 5's
// families above and reuse their pieces (StdPool, pp_options, the wake-latency samples and
// FutexThread, sparse_load_run, the fib benchmarks).
//   WakeLatencyDist/<impl>        the pool idle 5 ms, one task, time until it starts (as
//                                 WakeLatency), as a distribution: p01_us p05_us p10_us p25_us
//                                 p50_us p75_us p90_us p95_us p99_us p999_us (percentile of the
//                                 samples of one repetition; only those the sample count supports,
//                                 see bench_stats.hpp). impl: parkpool, parkpool_efficiency,
//                                 onetbb, std_pool, bare_futex (a thread in FUTEX_WAIT: the floor)
//   SparseSweep/<impl>/<gap_us>   one ~2 us task every gap_us (5, 10, 20, 50, 100, 200) from a
//                                 non-worker thread, as SparseLoad: cpu_us_per_task (CPU of every
//                                 thread but the submitter, plus the submitter's CPU in post(),
//                                 per task), p50_us, p99_us (start
//                                 latency from the task's due time). impl: parkpool,
//                                 parkpool_efficiency, onetbb, std_pool
//   Fib27Workers/<impl>/<n>       fork-join fib(27) on n workers, whatever the core count:
//                                 time (ms). impl: parkpool_join, parkpool_taskgroup,
//                                 onetbb_task_group
// Sizes come from PARKPOOL_BENCH_SIZE (parkpool-bench sets it from --quick / --full), and the
// worker counts of Fib27Workers from PARKPOOL_BENCH_WORKERS="1,2,4" (parkpool-bench --workers):
//   full (also when unset)  1000 wake samples, 1 s per sweep point, workers 1..8, 5 fib runs
//   quick                   100 wake samples, 0.1 s per sweep point, workers 1 2 4 8, 3 fib runs
//   tiny (smoke test)       10 wake samples, 10 ms per sweep point, workers 1 2, 1 fib run
namespace {

struct FigureSizes {
  int wake_samples;
  double sweep_seconds;
  std::vector<int> workers;
  int fib_runs;
};
FigureSizes figure_sizes() {
  const char* s = std::getenv("PARKPOOL_BENCH_SIZE");
  const std::string size = s == nullptr ? "full" : s;
  FigureSizes f{1000, 1.0, {1, 2, 3, 4, 5, 6, 7, 8}, 5};
  if (size == "tiny") {
    f = {10, 0.01, {1, 2}, 1};
  } else if (size == "quick") {
    f = {100, 0.1, {1, 2, 4, 8}, 3};
  } else if (size != "full") {
    std::fprintf(stderr, "pool_bench: PARKPOOL_BENCH_SIZE=%s is not tiny, quick or full: full\n",
                 size.c_str());
  }
  // PARKPOOL_BENCH_WORKERS="1,2,4": the worker counts of Fib27Workers (parkpool-bench --workers).
  if (const char* w = std::getenv("PARKPOOL_BENCH_WORKERS"); w != nullptr && *w != '\0') {
    std::vector<int> workers;
    for (const char* p = w; *p != '\0';) {
      char* end = nullptr;
      const long n = std::strtol(p, &end, 10);
      if (end == p || n < 1 || n > 256) {
        workers.clear();
        break;
      }
      workers.push_back(static_cast<int>(n));
      p = *end == ',' ? end + 1 : end;
      if (*end != ',' && *end != '\0') {
        workers.clear();
        break;
      }
    }
    if (workers.empty()) {
      std::fprintf(stderr, "pool_bench: PARKPOOL_BENCH_WORKERS=%s is not a list like 1,2,4\n", w);
    } else {
      f.workers = workers;
    }
  }
  return f;
}

// The wake-from-idle distribution: wake_latency's samples, reported as percentiles.
template <class Submit>
void wake_latency_dist(benchmark::State& state, Submit&& submit) {
  const WakeSamples w = wake_latency_samples(state, submit);
  static constexpr struct {
    const char* name;
    double p;
  } kPercentiles[] = {{"p01_us", 0.01}, {"p05_us", 0.05},  {"p10_us", 0.10}, {"p25_us", 0.25},
                      {"p50_us", 0.50}, {"p75_us", 0.75},  {"p90_us", 0.90}, {"p95_us", 0.95},
                      {"p99_us", 0.99}, {"p999_us", 0.999}};
  // Only the percentiles the sample count supports (bench_stats.hpp, percentile_supported): at
  // tiny's 10 samples p10 to p90, at quick's 100 p01 to p99, at full's 1000 all of them.
  for (const auto& q : kPercentiles) put_percentile(state.counters, q.name, w.us, q.p);
  state.counters["same_cpu_pct"] = w.same_cpu_pct();
}

void BM_WakeLatencyDist_Parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  wake_latency_dist(state, [&](auto&& f) { pool.post(f); });
}
void BM_WakeLatencyDist_ParkpoolEfficiency(benchmark::State& state) {
  auto o = pp_options(kWorkers);
  o.idle = parkpool::IdleOptions::efficiency();
  parkpool::ThreadPool pool(o);
  wake_latency_dist(state, [&](auto&& f) { pool.post(f); });
}
void BM_WakeLatencyDist_Std(benchmark::State& state) {
  StdPool pool(kWorkers);
  wake_latency_dist(state, [&](auto&& f) { pool.post(f); });
}
void BM_WakeLatencyDist_BareFutex(benchmark::State& state) {
  FutexThread t;
  wake_latency_dist(state, [&](auto&& f) { t.post(f); });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_WakeLatencyDist_TBB(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(kWorkers), 0);
  warm_up(arena);
  wake_latency_dist(state, [&](auto&& f) { arena.enqueue(f); });
}
#endif

// The sparse-load sweep: sparse_load_run with the gap (state.range(0), us) and the length as
// parameters.
template <class Post>
void sparse_sweep(benchmark::State& state, double seconds, Post&& post) {
  const std::int64_t gap_ns = state.range(0) * 1000;
  const auto n =
      static_cast<std::size_t>(std::max<double>(10, seconds * 1e9 / static_cast<double>(gap_ns)));
  sparse_load_run(state, gap_ns, n, post);
}
void BM_SparseSweep_Parkpool(benchmark::State& state, double seconds) {
  parkpool::ThreadPool pool(pp_options(kWorkers));
  sparse_sweep(state, seconds, [&](auto&& f) { pool.post(f); });
}
void BM_SparseSweep_ParkpoolEfficiency(benchmark::State& state, double seconds) {
  auto o = pp_options(kWorkers);
  o.idle = parkpool::IdleOptions::efficiency();
  parkpool::ThreadPool pool(o);
  sparse_sweep(state, seconds, [&](auto&& f) { pool.post(f); });
}
void BM_SparseSweep_Std(benchmark::State& state, double seconds) {
  StdPool pool(kWorkers);
  sparse_sweep(state, seconds, [&](auto&& f) { pool.post(f); });
}
#if defined(PARKPOOL_HAVE_TBB)
void BM_SparseSweep_TBB(benchmark::State& state, double seconds) {
  tbb::task_arena arena(static_cast<int>(kWorkers), 0);
  warm_up(arena);
  sparse_sweep(state, seconds, [&](auto&& f) { arena.enqueue(f); });
}
#endif

bool register_figure_families() {
  const FigureSizes size = figure_sizes();
  auto wake = [&](const char* name, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, fn)->Iterations(size.wake_samples)->UseRealTime();
  };
  wake("WakeLatencyDist/bare_futex", BM_WakeLatencyDist_BareFutex);
  wake("WakeLatencyDist/parkpool", BM_WakeLatencyDist_Parkpool);
  wake("WakeLatencyDist/parkpool_efficiency", BM_WakeLatencyDist_ParkpoolEfficiency);
  wake("WakeLatencyDist/std_pool", BM_WakeLatencyDist_Std);
#if defined(PARKPOOL_HAVE_TBB)
  wake("WakeLatencyDist/onetbb", BM_WakeLatencyDist_TBB);
#endif

  auto sweep = [&](const char* name, void (*fn)(benchmark::State&, double)) {
    auto* b = benchmark::RegisterBenchmark(name, fn, size.sweep_seconds);
    for (int gap_us : {5, 10, 20, 50, 100, 200}) b->Arg(gap_us);
    b->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
  };
  sweep("SparseSweep/parkpool", BM_SparseSweep_Parkpool);
  sweep("SparseSweep/parkpool_efficiency", BM_SparseSweep_ParkpoolEfficiency);
  sweep("SparseSweep/std_pool", BM_SparseSweep_Std);
#if defined(PARKPOOL_HAVE_TBB)
  sweep("SparseSweep/onetbb", BM_SparseSweep_TBB);
#endif

  auto workers = [&](const char* name, void (*fn)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark(name, fn);
    for (int n : size.workers) b->Arg(n);
    b->Unit(benchmark::kMillisecond)->Iterations(size.fib_runs)->UseRealTime();
  };
  workers("Fib27Workers/parkpool_join", BM_Fib27Join_Parkpool);
  workers("Fib27Workers/parkpool_taskgroup", BM_Fib27TaskGroup_Parkpool);
#if defined(PARKPOOL_HAVE_TBB)
  workers("Fib27Workers/onetbb_task_group", BM_Fib27TaskGroup_TBB);
#endif
  return true;
}
// Registered during static initialisation, like the BENCHMARK() families above, so main() is
// shared with them unchanged.
[[maybe_unused]] const bool kFigureFamiliesRegistered = register_figure_families();

}  // namespace

// Micro benchmarks of <parkpool/idle.hpp>, each with a std baseline in the same binary:
//   notify fast path (nobody sleeps / a worker searches)  vs  std::condition_variable::notify_one
//   wake round trip to a worker blocked in the kernel     vs  mutex + condition_variable
//   the waking call after the caller slept (cold caches)   vs  a bare FUTEX_WAKE
//   sparse load (one short task every 20 us): CPU per task and start latency p50/p99, per preset,
//                                                           vs  mutex + condition_variable pool
// Figures are noisy on the shared 2-core VM; run with --benchmark_repetitions for spreads.
// Names are "Workload/impl" (NotifyNoWaiter, IdleWakeRoundTrip, WakeCallAfterIdle, IdleSparse20us)
// for parkpool-bench.
#include <parkpool/idle.hpp>

#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_stats.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void BM_NotifyWorkNobodySleeps(benchmark::State& state) {
  parkpool::IdleCoordinator idle(2);
  for (auto _ : state) idle.notify_work();
}
BENCHMARK(BM_NotifyWorkNobodySleeps)->Name("NotifyNoWaiter/parkpool_nobody_sleeps");

void BM_NotifyWorkWhileSearching(benchmark::State& state) {
  parkpool::IdleCoordinator idle(2);
  idle.try_start_searching(0);
  for (auto _ : state) idle.notify_work();
  idle.found_work(0);
}
BENCHMARK(BM_NotifyWorkWhileSearching)->Name("NotifyNoWaiter/parkpool_while_searching");

void BM_StdCondvarNotifyOneNoWaiter(benchmark::State& state) {
  std::condition_variable cv;
  for (auto _ : state) cv.notify_one();
}
BENCHMARK(BM_StdCondvarNotifyOneNoWaiter)->Name("NotifyNoWaiter/std_condvar");

// ------------------------------------------------------------------------- wake round trip

// The calling thread's kernel id.
long this_tid() { return static_cast<long>(syscall(SYS_gettid)); }
// The scheduler state letter of thread `tid` of this process ('S': blocked in the kernel, here
// always a FUTEX_WAIT), or '?' if it cannot be read. The letter follows the last ')' of
// /proc/self/task/<tid>/stat (the thread name in parentheses may itself contain one).
char thread_state(long tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return '?';
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}
// Yields until pred() holds (the other thread's state, never a timing assumption).
template <class Pred>
void await(Pred&& pred) {
  while (!pred()) std::this_thread::yield();
}

// Worker 0 of `idle`, on its own thread: takes each posted item (a count) and publishes it as
// done, sleeping through the coordinator in between. post() then wait until done() == n.
class CountingWorker {
 public:
  explicit CountingWorker(parkpool::IdleCoordinator& idle)
      : idle_(idle), thread_([this] { run(); }) {
    await([this] { return tid_.load(std::memory_order_relaxed) != 0; });
  }
  long tid() const { return tid_.load(std::memory_order_relaxed); }  // set before the first park
  ~CountingWorker() {
    idle_.shutdown();
    thread_.join();
  }
  CountingWorker(const CountingWorker&) = delete;
  CountingWorker& operator=(const CountingWorker&) = delete;
  // Publishes item n (release: pairs with the worker's acquire) and notifies the coordinator.
  void post(std::uint64_t n) {
    posted_.store(n, std::memory_order_release);
    idle_.notify_work();
  }
  std::uint64_t done() const { return done_.load(std::memory_order_acquire); }  // pairs below

 private:
  void run() {
    tid_.store(this_tid(), std::memory_order_relaxed);  // an id only: nothing published with it
    std::uint64_t taken = 0;
    for (;;) {
      if (posted_.load(std::memory_order_acquire) > taken) {
        idle_.found_work(0);
        done_.store(++taken, std::memory_order_release);
        continue;
      }
      if (!idle_.wait_for_work(0,
                               [&] { return posted_.load(std::memory_order_acquire) > taken; })) {
        return;
      }
    }
  }
  parkpool::IdleCoordinator& idle_;
  std::atomic<std::uint64_t> posted_{0}, done_{0};
  std::atomic<long> tid_{0};
  std::thread thread_;  // last: starts after the counters exist
};

// IdleWakeRoundTrip: one worker, blocked in FUTEX_WAIT; each iteration times the post, its wake
// and the worker's acknowledgement, seen by the poster spinning (manual time: from just before
// the post to the acknowledgement). Before the clock starts, the poster waits (untimed) until the
// worker is asleep by its protocol's own flag AND blocked in the kernel ('S' in /proc): until
// 2026-12-03 both sides posted as soon as the flag was up, and a post that caught the worker still
// on its way into the kernel needed no wake at all. The figure then mixed both kinds in varying
// shares: 0.6-23 us for parkpool, 0.8-5.5 us for the std pair, medians of repetitions on the
// 2-vCPU VM. p50_us / p99_us: over the iterations of a repetition.
void report_round_trips(benchmark::State& state, const std::vector<double>& us) {
  parkpool::bench::put_percentile(state.counters, "p50_us", us, 0.5);
  parkpool::bench::put_percentile(state.counters, "p99_us", us, 0.99);
}
void BM_IdleWakeRoundTrip(benchmark::State& state) {
  parkpool::IdleOptions o;  // parks at once: no spin, no timed park
  o.spin_min = o.spin_max = 0ns;
  o.timed_park = 0ns;
  parkpool::IdleCoordinator idle(1, o);
  std::vector<double> us;
  {
    CountingWorker worker(idle);
    std::uint64_t n = 0;
    for (auto _ : state) {
      // Announced (sleeping() == 1), then its only blocking call is the Parker's FUTEX_WAIT.
      await([&] { return idle.sleeping() == 1 && thread_state(worker.tid()) == 'S'; });
      const auto t0 = Clock::now();
      worker.post(++n);
      while (worker.done() != n) {
      }
      const std::chrono::duration<double> d = Clock::now() - t0;
      state.SetIterationTime(d.count());
      us.push_back(d.count() * 1e6);
    }
  }
  report_round_trips(state, us);
}
BENCHMARK(BM_IdleWakeRoundTrip)->Name("IdleWakeRoundTrip/parkpool")->UseManualTime();

void BM_StdCondvarWakeRoundTrip(benchmark::State& state) {
  std::mutex m;
  std::condition_variable cv;
  std::uint64_t posted = 0;
  bool stop = false, waiting = false;
  std::atomic<std::uint64_t> done{0};
  std::atomic<long> tid{0};
  std::thread worker([&] {
    tid.store(this_tid(), std::memory_order_relaxed);  // an id only: nothing published with it
    std::uint64_t taken = 0;
    std::unique_lock<std::mutex> l(m);
    for (;;) {
      waiting = true;
      cv.wait(l, [&] { return stop || posted > taken; });
      waiting = false;
      if (stop) return;
      done.store(++taken, std::memory_order_release);
    }
  });
  await([&] { return tid.load(std::memory_order_relaxed) != 0; });
  std::vector<double> us;
  std::uint64_t n = 0;
  for (auto _ : state) {
    // waiting is set under m before cv.wait() releases m, and no notify is due: once it reads
    // true here, the worker's only blocking call left is the condition variable's FUTEX_WAIT.
    await([&] {
      bool w;
      {
        std::lock_guard<std::mutex> l(m);
        w = waiting;
      }
      return w && thread_state(tid.load(std::memory_order_relaxed)) == 'S';
    });
    const auto t0 = Clock::now();
    {
      std::lock_guard<std::mutex> l(m);
      posted = ++n;
    }
    cv.notify_one();
    while (done.load(std::memory_order_acquire) != n) {
    }
    const std::chrono::duration<double> d = Clock::now() - t0;
    state.SetIterationTime(d.count());
    us.push_back(d.count() * 1e6);
  }
  {
    std::lock_guard<std::mutex> l(m);
    stop = true;
  }
  cv.notify_one();
  worker.join();
  report_round_trips(state, us);
}
BENCHMARK(BM_StdCondvarWakeRoundTrip)->Name("IdleWakeRoundTrip/std_condvar")->UseManualTime();

// ------------------------------------------------------------------------- waking call after idle

// How long the call that wakes a parked thread takes when the caller has itself just slept 5 ms
// (cold caches and TLB, like a server thread back from epoll_wait): notify_work() claiming the one
// parked worker (with spinning on, so the claim stamps its time for the adaptive spin), against a
// bare FUTEX_WAKE of a thread blocked in FUTEX_WAIT. Both are timed with clock_gettime *system
// calls*: a vDSO clock read would warm the very page a clock read inside the call needs. Until
// 2026-12-02 the claim read steady_clock, and that cold vDSO read cost 3.8-4.5 us on the 2-vCPU
// dev VM; pool_bench's WakeLatency cannot show it, because its own t0 clock read, just before the
// submit, warms that page. Each figure includes one system call's entry and exit.
std::int64_t syscall_now_ns() {
  timespec ts{};
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
void report_call(benchmark::State& state, const std::vector<double>& us) {
  parkpool::bench::put_percentile(state.counters, "call_p50_us", us, 0.5);
  parkpool::bench::put_percentile(state.counters, "call_p99_us", us, 0.99);
}

void BM_WakeCallAfterIdleParkpool(benchmark::State& state) {
  // Spinning enabled (so the claim stamps its time for the adaptive budget) but at most 1 us: a
  // woken worker that ran on this CPU inside the FUTEX_WAKE would otherwise spin its default
  // 25 us budget there before parking, and this figure would time that spin.
  parkpool::IdleOptions o;
  o.spin_min = 0ns;
  o.spin_max = 1us;
  parkpool::IdleCoordinator idle(1, o);
  std::vector<double> us;
  {
    CountingWorker worker(idle);
    std::uint64_t n = 0;
    for (auto _ : state) {
      await([&] { return idle.sleeping() == 1; });
      std::this_thread::sleep_for(5ms);  // the idle period is what this measures after
      const std::int64_t t0 = syscall_now_ns();
      worker.post(++n);
      us.push_back(static_cast<double>(syscall_now_ns() - t0) * 1e-3);
      await([&] { return worker.done() == n; });
    }
  }
  report_call(state, us);
}
BENCHMARK(BM_WakeCallAfterIdleParkpool)
    ->Name("WakeCallAfterIdle/parkpool")
    ->Iterations(200)
    ->UseRealTime();

void BM_WakeCallAfterIdleBareFutex(benchmark::State& state) {
  // word: 0 asleep or about to be, 1 posted, 2 stop. (F) release/acquire: the post's effects.
  std::atomic<std::uint32_t> word{0}, waiting{0};
  std::atomic<std::uint64_t> done{0};
  static_assert(sizeof(std::atomic<std::uint32_t>) == 4);
  std::thread worker([&] {
    for (std::uint64_t taken = 0;;) {
      std::uint32_t w;
      while ((w = word.load(std::memory_order_acquire)) == 0) {  // (F)
        waiting.store(1, std::memory_order_relaxed);  // a hint for the poster's await only
        syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, 0, nullptr,
                nullptr, 0);
      }
      if (w == 2) return;
      waiting.store(0, std::memory_order_relaxed);
      word.store(0, std::memory_order_relaxed);  // only this thread resets; next post follows done
      done.store(++taken, std::memory_order_release);
    }
  });
  std::vector<double> us;
  std::uint64_t n = 0;
  for (auto _ : state) {
    await([&] { return waiting.load(std::memory_order_relaxed) == 1; });
    std::this_thread::sleep_for(5ms);  // in FUTEX_WAIT by now, or the wake finds the word set
    const std::int64_t t0 = syscall_now_ns();
    word.store(1, std::memory_order_release);  // (F)
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
    us.push_back(static_cast<double>(syscall_now_ns() - t0) * 1e-3);
    ++n;
    await([&] { return done.load(std::memory_order_acquire) == n; });
  }
  word.store(2, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
  worker.join();
  report_call(state, us);
}
BENCHMARK(BM_WakeCallAfterIdleBareFutex)
    ->Name("WakeCallAfterIdle/bare_futex")
    ->Iterations(200)
    ->UseRealTime();

// ------------------------------------------------------------------------- sparse load

double cpu_us(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

void busy_for(std::chrono::nanoseconds d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

// A 2-worker ticket pool on the coordinator; tasks record their start time.
// cpu_per_task_us: the workers' CPU per task (worker_cpu_per_task_us) plus the submitter's CPU
// inside post() (post_cpu_per_task_us), where a design that wakes a sleeper pays the wake
// (FUTEX_WAKE, the interrupt to the other CPU) and one whose workers spin pays next to nothing.
// Until 2026-12-08 only the workers' part was reported, which left the sleeping designs' wakes
// out (as pool_bench's sparse_load_run did until 2026-12-06). post() is timed with this thread's
// CPU clock (a syscall, ~0.24 us here) every kPostCpuEvery-th task only, less the cost of an
// empty bracket; the clock reads come before the task's post time and after its publication,
// so they do not enter its latency.
constexpr int kPostCpuEvery = 16;
template <class Pool>
void run_sparse(benchmark::State& state, Pool& pool) {
  constexpr int kTasks = 2000;
  std::vector<std::int64_t> lat;
  lat.reserve(kTasks);
  double cpu = 0, post_cpu = 0;
  int post_samples = 0;
  double bracket = 1e9;  // the least of a few back-to-back clock reads (us)
  for (int k = 0; k < 64; ++k) {
    const double a = cpu_us(CLOCK_THREAD_CPUTIME_ID), b = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    bracket = std::min(bracket, b - a);
  }
  for (auto _ : state) {
    lat.clear();
    const double c0 = cpu_us(CLOCK_PROCESS_CPUTIME_ID);
    const double t0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);  // the submitter (this thread)
    auto next = Clock::now();
    for (int i = 0; i < kTasks; ++i) {
      next += 20us;
      while (Clock::now() < next) {
        std::this_thread::yield();  // pacing; this thread's CPU is subtracted below
      }
      const bool sampled = i % kPostCpuEvery == kPostCpuEvery - 1;
      const double p0 = sampled ? cpu_us(CLOCK_THREAD_CPUTIME_ID) : 0;
      const std::uint64_t want = pool.post();
      if (sampled) {
        post_cpu += std::max(0.0, cpu_us(CLOCK_THREAD_CPUTIME_ID) - p0 - bracket);
        ++post_samples;
      }
      lat.push_back(pool.wait_start(want));
    }
    // The workers' CPU: the submitting thread's (pacing, waiting, and its posts) is subtracted;
    // its posts are added back below from their own samples.
    cpu = (cpu_us(CLOCK_PROCESS_CPUTIME_ID) - c0) - (cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0);
  }
  std::sort(lat.begin(), lat.end());
  state.counters["p50_us"] = static_cast<double>(lat[lat.size() / 2]) / 1e3;
  state.counters["p99_us"] = static_cast<double>(lat[lat.size() * 99 / 100]) / 1e3;
  const double post_us = post_samples == 0 ? 0 : post_cpu / static_cast<double>(post_samples);
  state.counters["worker_cpu_per_task_us"] = cpu / kTasks;
  state.counters["post_cpu_per_task_us"] = post_us;
  state.counters["cpu_per_task_us"] = cpu / kTasks + post_us;
}

class IdleSparsePool {
 public:
  explicit IdleSparsePool(parkpool::IdleOptions o) : idle_(2, o) {
    for (std::size_t i = 0; i < 2; ++i) threads_.emplace_back([this, i] { run(i); });
  }
  ~IdleSparsePool() {
    idle_.shutdown();
    for (auto& t : threads_) t.join();
  }
  // Posts one 2 us task (publication and notify_work: what a submitter pays per task); returns
  // the ticket to pass to wait_start().
  std::uint64_t post() {
    const auto t0 = Clock::now();
    post_time_ns_.store(t0.time_since_epoch().count(), std::memory_order_relaxed);
    const std::uint64_t want = posted_.fetch_add(1, std::memory_order_release) + 1;
    idle_.notify_work();
    return want;
  }
  // Waits (spinning) until the task `want` started; returns its start latency in ns.
  std::int64_t wait_start(std::uint64_t want) {
    while (started_.load(std::memory_order_acquire) < want) {
    }
    return latency_ns_.load(std::memory_order_relaxed);
  }

 private:
  bool has_work() const {
    return claimed_.load(std::memory_order_relaxed) < posted_.load(std::memory_order_acquire);
  }
  bool try_take() {
    std::uint64_t c = claimed_.load(std::memory_order_relaxed);
    while (c < posted_.load(std::memory_order_acquire)) {
      if (claimed_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) return true;
    }
    return false;
  }
  void run(std::size_t w) {
    for (;;) {
      if (try_take()) {
        idle_.found_work(w, [this] { return has_work(); });
        const auto now = Clock::now().time_since_epoch().count();
        latency_ns_.store(now - post_time_ns_.load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
        started_.fetch_add(1, std::memory_order_release);
        busy_for(2us);
        continue;
      }
      if (!idle_.wait_for_work(w, [this] { return has_work(); })) return;
    }
  }
  parkpool::IdleCoordinator idle_;
  std::atomic<std::uint64_t> posted_{0}, claimed_{0}, started_{0};
  std::atomic<std::int64_t> post_time_ns_{0}, latency_ns_{0};
  std::vector<std::thread> threads_;
};

class StdSparsePool {
 public:
  StdSparsePool() {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { run(); });
  }
  ~StdSparsePool() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  std::uint64_t post() {
    const auto t0 = Clock::now();
    post_time_ns_.store(t0.time_since_epoch().count(), std::memory_order_relaxed);
    std::uint64_t want;
    {
      std::lock_guard<std::mutex> l(m_);
      want = ++posted_;
    }
    cv_.notify_one();
    return want;
  }
  std::int64_t wait_start(std::uint64_t want) {
    while (started_.load(std::memory_order_acquire) < want) {
    }
    return latency_ns_.load(std::memory_order_relaxed);
  }

 private:
  void run() {
    std::unique_lock<std::mutex> l(m_);
    for (;;) {
      cv_.wait(l, [this] { return stop_ || claimed_ < posted_; });
      if (stop_) return;
      ++claimed_;
      l.unlock();
      const auto now = Clock::now().time_since_epoch().count();
      latency_ns_.store(now - post_time_ns_.load(std::memory_order_relaxed),
                        std::memory_order_relaxed);
      started_.fetch_add(1, std::memory_order_release);
      busy_for(2us);
      l.lock();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::uint64_t posted_ = 0, claimed_ = 0;
  bool stop_ = false;
  std::atomic<std::uint64_t> started_{0};
  std::atomic<std::int64_t> post_time_ns_{0}, latency_ns_{0};
  std::vector<std::thread> threads_;
};

void BM_SparseIdleDefault(benchmark::State& state) {
  IdleSparsePool p(parkpool::IdleOptions{});
  run_sparse(state, p);
}
void BM_SparseIdleEfficiency(benchmark::State& state) {
  IdleSparsePool p(parkpool::IdleOptions::efficiency());
  run_sparse(state, p);
}
void BM_SparseIdleLatency(benchmark::State& state) {
  IdleSparsePool p(parkpool::IdleOptions::latency());
  run_sparse(state, p);
}
void BM_SparseStdCondvar(benchmark::State& state) {
  StdSparsePool p;
  run_sparse(state, p);
}
BENCHMARK(BM_SparseIdleDefault)
    ->Name("IdleSparse20us/parkpool")
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SparseIdleEfficiency)
    ->Name("IdleSparse20us/parkpool_efficiency")
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SparseIdleLatency)
    ->Name("IdleSparse20us/parkpool_latency")
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SparseStdCondvar)
    ->Name("IdleSparse20us/std_condvar")
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

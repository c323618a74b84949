// Parker benchmarks, every figure against its baselines in the same binary (issue 2):
//   raw futex parker (the floor), a std::mutex + std::condition_variable parker (the design of
//   shared/seeds/002), C++20 std::atomic<int>::wait/notify_one, std::binary_semaphore.
// Workloads: two-thread ping-pong (wall and CPU ns per round trip, with and without spin; the
//   counter process_cpu_ns is the whole process's CPU per round trip, both threads);
//   unpark+park with the token present; unpark with the token already present;
//   park_timeout(0); park_timeout(50 us) oversleep p50/p99.
// After the run it prints a table of medians and the ratio of parkpool to the floor and to the
// best baseline. Default is a short run (--benchmark_min_time=0.05, 3 repetitions).
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <parkpool/parker.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- baselines
// The floor: the same three-state futex protocol, inline, no shared block, no deadlines.
class RawFutexParker {
 public:
  void unpark() noexcept {
    if (s_.exchange(2, std::memory_order_release) == 1) futex(FUTEX_WAKE_PRIVATE, 1, nullptr);
  }
  void park() noexcept {
    if (s_.exchange(0, std::memory_order_acquire) == 2) return;
    std::uint32_t e = 0;
    if (!s_.compare_exchange_strong(e, 1, std::memory_order_relaxed)) {
      s_.exchange(0, std::memory_order_acquire);
      return;
    }
    for (;;) {
      futex(FUTEX_WAIT_PRIVATE, 1, nullptr);
      e = 2;
      if (s_.compare_exchange_strong(e, 0, std::memory_order_acquire, std::memory_order_relaxed))
        return;
    }
  }
  bool park_timeout(std::chrono::nanoseconds t) noexcept {
    if (s_.exchange(0, std::memory_order_acquire) == 2) return true;
    if (t <= 0ns) return false;
    std::uint32_t e = 0;
    if (!s_.compare_exchange_strong(e, 1, std::memory_order_relaxed)) {
      s_.exchange(0, std::memory_order_acquire);
      return true;
    }
    timespec ts{static_cast<time_t>(t.count() / 1'000'000'000),
                static_cast<long>(t.count() % 1'000'000'000)};
    futex(FUTEX_WAIT_PRIVATE, 1, &ts);  // relative; good enough for a floor
    return s_.exchange(0, std::memory_order_acquire) == 2;
  }

 private:
  long futex(int op, std::uint32_t val, const timespec* ts) noexcept {
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&s_), op, val, ts, nullptr, 0);
  }
  std::atomic<std::uint32_t> s_{0};
};

class MutexCondvarParker {  // shared/seeds/002: Mutex<bool> + Condvar
 public:
  void unpark() {
    {
      std::lock_guard<std::mutex> l(m_);
      ready_ = true;
    }
    cv_.notify_one();
  }
  void park() {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return ready_; });
    ready_ = false;
  }
  bool park_timeout(std::chrono::nanoseconds t) {
    std::unique_lock<std::mutex> l(m_);
    const bool r = cv_.wait_for(l, t, [&] { return ready_; });
    ready_ = false;
    return r;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool ready_ = false;
};

class AtomicWaitParker {  // C++20 std::atomic<int>::wait / notify_one
 public:
  void unpark() noexcept {
    flag_.store(1, std::memory_order_release);
    flag_.notify_one();
  }
  void park() noexcept {
    while (flag_.exchange(0, std::memory_order_acquire) == 0)
      flag_.wait(0, std::memory_order_relaxed);
  }
  bool park_timeout(std::chrono::nanoseconds) noexcept {  // no timed wait in std::atomic
    return flag_.exchange(0, std::memory_order_acquire) == 1;
  }

 private:
  std::atomic<int> flag_{0};
};

class SemaphoreParker {  // std::binary_semaphore; release() beyond 1 is UB, so no "token present"
                         // unpark
 public:
  void unpark() noexcept { sem_.release(); }
  void park() noexcept { sem_.acquire(); }
  bool park_timeout(std::chrono::nanoseconds t) noexcept { return sem_.try_acquire_for(t); }

 private:
  std::binary_semaphore sem_{0};
};

struct ParkpoolParker {
  parkpool::Parker p;
  parkpool::Unparker u = p.unparker();
  void unpark() noexcept { u.unpark(); }
  void park() noexcept { p.park(); }
  bool park_timeout(std::chrono::nanoseconds t) noexcept {
    return p.park_timeout(t) == parkpool::UnparkReason::unparked;
  }
};

struct ParkpoolSpinParker : ParkpoolParker {
  ParkpoolSpinParker() { p.set_spin(25us); }
};

double process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// ---------------------------------------------------------------- workloads
template <class P>
void PingPong(benchmark::State& state) {
  P a, b;
  std::atomic<bool> stop{false};
  std::thread partner([&] {
    for (;;) {
      b.park();
      if (stop.load(std::memory_order_relaxed)) return;
      a.unpark();
    }
  });
  const double cpu0 = process_cpu_ns();
  for (auto _ : state) {
    b.unpark();
    a.park();
  }
  const double cpu1 = process_cpu_ns();
  stop.store(true, std::memory_order_relaxed);
  b.unpark();
  partner.join();
  // process_cpu_ns: both threads' CPU per round trip. Not "cpu_ns": that is the name
  // parkpool-bench gives Google Benchmark's own CPU time (this thread's alone) of the cases timed
  // by CPU, and it refuses a counter of that name; until 2026-12-06 this counter was cpu_ns, and
  // parkpool-bench took both quantities as samples of one figure.
  state.counters["process_cpu_ns"] =
      benchmark::Counter((cpu1 - cpu0) / static_cast<double>(state.iterations()));
}

template <class P>
void UnparkThenPark(benchmark::State& state) {
  P p;
  for (auto _ : state) {
    p.unpark();
    p.park();
  }
}

template <class P>
void UnparkTokenPresent(benchmark::State& state) {
  P p;
  p.unpark();
  for (auto _ : state) p.unpark();
  p.park();
}

template <class P>
void ParkTimeoutZero(benchmark::State& state) {
  P p;
  for (auto _ : state) benchmark::DoNotOptimize(p.park_timeout(0ns));
}

template <class P>
void Oversleep50us(benchmark::State& state) {
  P p;
  std::vector<double> over;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(p.park_timeout(50us));
    over.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0 - 50us)
            .count());
  }
  std::sort(over.begin(), over.end());
  if (!over.empty()) {
    state.counters["p50_ns"] = over[over.size() / 2];
    state.counters["p99_ns"] = over[std::min(over.size() - 1, over.size() * 99 / 100)];
  }
}

#define PARKPOOL_PARKER_BENCH(workload)                                               \
  BENCHMARK_TEMPLATE(workload, ParkpoolParker)->Name(#workload "/parkpool");          \
  BENCHMARK_TEMPLATE(workload, RawFutexParker)->Name(#workload "/raw_futex");         \
  BENCHMARK_TEMPLATE(workload, MutexCondvarParker)->Name(#workload "/mutex_condvar"); \
  BENCHMARK_TEMPLATE(workload, AtomicWaitParker)->Name(#workload "/atomic_wait");

PARKPOOL_PARKER_BENCH(UnparkThenPark)
BENCHMARK_TEMPLATE(UnparkThenPark, SemaphoreParker)->Name("UnparkThenPark/semaphore");
PARKPOOL_PARKER_BENCH(UnparkTokenPresent)
PARKPOOL_PARKER_BENCH(ParkTimeoutZero)
BENCHMARK_TEMPLATE(ParkTimeoutZero, SemaphoreParker)->Name("ParkTimeoutZero/semaphore");
PARKPOOL_PARKER_BENCH(PingPong)
BENCHMARK_TEMPLATE(PingPong, SemaphoreParker)->Name("PingPong/semaphore")->UseRealTime();
BENCHMARK_TEMPLATE(PingPong, ParkpoolSpinParker)->Name("PingPong/parkpool_spin25us")->UseRealTime();
BENCHMARK_TEMPLATE(Oversleep50us, ParkpoolParker)->Name("Oversleep50us/parkpool")->Iterations(400);
BENCHMARK_TEMPLATE(Oversleep50us, RawFutexParker)->Name("Oversleep50us/raw_futex")->Iterations(400);
BENCHMARK_TEMPLATE(Oversleep50us, MutexCondvarParker)
    ->Name("Oversleep50us/mutex_condvar")
    ->Iterations(400);
BENCHMARK_TEMPLATE(Oversleep50us, SemaphoreParker)
    ->Name("Oversleep50us/semaphore")
    ->Iterations(400);

// ---------------------------------------------------------------- the ratio table
// Collects the median of every run (or the single run without repetitions), then prints one row
// per workload: parkpool, each baseline, and parkpool / raw futex and parkpool / best baseline.
// Google Benchmark's own per-run lines go to stderr as progress; stdout gets only the table.
class TableReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      const std::string name = r.run_name.str();
      std::fprintf(stderr, "  measured %s\n", name.c_str());
      const auto slash = name.find('/');
      if (slash == std::string::npos) continue;
      std::string workload = name.substr(0, slash);
      std::string impl = name.substr(slash + 1);
      impl = impl.substr(0, impl.find('/'));
      auto put = [&](const std::string& w, double v) { figures_[w][impl] = v; };
      if (workload.rfind("PingPong", 0) == 0) {
        put(workload + " wall ns/rt", r.GetAdjustedRealTime());
        auto it = r.counters.find("process_cpu_ns");
        if (it != r.counters.end()) put(workload + " cpu ns/rt", it->second.value);
      } else if (workload == "Oversleep50us") {
        for (const char* c : {"p50_ns", "p99_ns"}) {
          auto it = r.counters.find(c);
          if (it != r.counters.end()) put(workload + " " + c, it->second.value);
        }
      } else {
        put(workload + " ns", r.GetAdjustedCPUTime());
      }
    }
  }
  void Finalize() override {
    static const char* kImpls[] = {"raw_futex", "mutex_condvar", "atomic_wait", "semaphore"};
    std::printf("\nparkpool Parker vs baselines (medians; ratio < 1 means parkpool is faster)\n");
    std::printf("%-30s %10s %10s %10s %10s %10s %9s %9s\n", "figure", "parkpool", "raw_futex",
                "mutex_cv", "atom_wait", "semaphore", "/floor", "/best");
    for (const auto& [fig, impls] : figures_) {
      // One row per parkpool variant ("parkpool", "parkpool_spin25us"), against the same baselines.
      for (const auto& [impl, value] : impls) {
        if (impl.rfind("parkpool", 0) != 0) continue;
        const std::string label = impl == "parkpool" ? fig : fig + " [" + impl.substr(9) + "]";
        std::printf("%-30s %10.1f", label.c_str(), value);
        double best = 0;
        for (const char* b : kImpls) {
          auto it = impls.find(b);
          if (it == impls.end()) {
            std::printf(" %10s", "-");
          } else {
            std::printf(" %10.1f", it->second);
            if (best == 0 || it->second < best) best = it->second;
          }
        }
        auto floor = impls.find("raw_futex");
        if (floor != impls.end())
          std::printf(" %8.2fx", value / floor->second);
        else
          std::printf(" %9s", "-");
        if (best > 0)
          std::printf(" %8.2fx\n", value / best);
        else
          std::printf(" %9s\n", "-");
      }
    }
    std::printf("(machine: %u CPUs; a VM: compare ratios, not absolute figures)\n",
                std::thread::hardware_concurrency());
  }

 private:
  std::map<std::string, std::map<std::string, double>> figures_;
};

}  // namespace

int main(int argc, char** argv) {
  // Short by default (the README demo); any --benchmark_* flag given by the user wins.
  std::vector<char*> args(argv, argv + argc);
  std::string min_time = "--benchmark_min_time=0.05";
  std::string reps = "--benchmark_repetitions=3";
  std::string agg = "--benchmark_report_aggregates_only=true";
  bool user_time = false, user_reps = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--benchmark_min_time", 0) == 0) user_time = true;
    if (a.rfind("--benchmark_repetitions", 0) == 0) user_reps = true;
  }
  if (!user_time) args.push_back(min_time.data());
  if (!user_reps) {
    args.push_back(reps.data());
    args.push_back(agg.data());
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
  TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

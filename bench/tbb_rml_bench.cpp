// An UNMODIFIED oneTBB program with oneTBB's private RML server ("<Workload>/tbb") and with
// libparkpool_tbb, parkpool's external RML server ("<Workload>/parkpool_rml": its default idle
// preset, efficiency; "<Workload>/parkpool_rml_spin": PARKPOOL_TBB_IDLE=default, an adaptive spin
// of up to 25 us before a worker oneTBB released sleeps), plus the examples/tbb_migration
// application before and after its migration to parkpool.
//
//   RmlWakeLatency    oneTBB idle 5 ms, one task_arena::enqueue, time until it starts:
//                     p50_us, p99_us
//   RmlIdleBurn       CPU used in the 200 ms after a burst of 100k enqueued tasks: process_cpu_ms
//   RmlSparseLoad     one ~2 us task every 20 us for 0.5 s: cpu_us_per_task, p50_us, p99_us
//   RmlSparseLoad100us  the same with one task every 100 us: oneTBB's own spinning (inside
//                     libtbb) covers a 20 us gap, so only at longer gaps does oneTBB release
//                     its worker to the RML server between tasks, where the server can matter
//   RmlFib27          fib(27) with tbb::task_group: time (ms)
//   TbbMigration      examples/tbb_migration's application: /tbb (oneTBB), /parkpool_rml
//                     (the same oneTBB code on the parkpool RML server), /parkpool (migrated):
//                     time per run, process_cpu_ms (CPU of all threads per run)
// oneTBB runs with its defaults (the global arena and default concurrency), as an application
// that was not written for this benchmark would.
//
// One process, one server: oneTBB binds to an RML server once, when it initialises, so the
// parkpool_rml cases need libparkpool_tbb loaded before that (LD_PRELOAD). This suite does it
// itself: when --benchmark_filter mentions "parkpool_rml" and the server is not loaded, it
// re-executes itself with LD_PRELOAD set to libparkpool_tbb.so (and PARKPOOL_TBB_IDLE=default for
// "parkpool_rml_spin"), found via $PARKPOOL_TBB_RML_LIB,
// or next to this executable in the build tree (../src/tbb_rml/) or an install (../lib/, ./).
// parkpool-bench runs one case per process with such a filter, so every case gets the right
// process. A process that holds the wrong server (e.g. no filter at all: the parkpool_rml cases;
// or a filter selecting both kinds: the tbb cases) reports those cases as errors instead of
// measuring the wrong thing.
#include <benchmark/benchmark.h>

#if defined(PARKPOOL_HAVE_TBB)

#include <dlfcn.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include "../examples/tbb_migration/app_parkpool.hpp"
#include "../examples/tbb_migration/app_tbb.hpp"
#include "bench_stats.hpp"

namespace {

using Counter = unsigned long long (*)();

Counter rml_counter(const char* name) {
  return reinterpret_cast<Counter>(dlsym(RTLD_DEFAULT, name));
}
bool server_loaded() { return rml_counter("parkpool_tbb_rml_connections") != nullptr; }

enum class Mode { tbb, rml, rml_spin };
const char* mode_suffix(Mode m) {
  return m == Mode::tbb ? "/tbb" : m == Mode::rml ? "/parkpool_rml" : "/parkpool_rml_spin";
}
bool spin_preset() {
  const char* v = std::getenv("PARKPOOL_TBB_IDLE");
  return v != nullptr && std::strcmp(v, "default") == 0;
}

// Each case first checks that this process holds the RML server (and preset) it is about.
bool right_process(benchmark::State& state, Mode mode) {
  if (mode != Mode::tbb && !server_loaded()) {
    state.SkipWithError(
        "libparkpool_tbb is not loaded: run this case alone "
        "(--benchmark_filter=<...>/parkpool_rml) "
        "so the suite re-executes itself with LD_PRELOAD, or set PARKPOOL_TBB_RML_LIB");
    return false;
  }
  if (mode == Mode::tbb && server_loaded()) {
    state.SkipWithError(
        "the parkpool RML server is loaded in this process; run the tbb case alone");
    return false;
  }
  if (mode != Mode::tbb && spin_preset() != (mode == Mode::rml_spin)) {
    state.SkipWithError("wrong PARKPOOL_TBB_IDLE preset for this case; run it alone");
    return false;
  }
  return true;
}
// After a parkpool_rml case: oneTBB must really have connected to the server.
void check_connected(benchmark::State& state, Mode mode) {
  if (mode != Mode::tbb && rml_counter("parkpool_tbb_rml_connections")() == 0) {
    state.SkipWithError("oneTBB did not connect to the parkpool RML server");
  }
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
double cpu_s(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
using parkpool::bench::put_percentile;
void wait_count(const std::atomic<std::size_t>& c, std::size_t n) {
  // Yield: on 2 cores a pure spin can hold the CPU a woken worker needs.
  while (c.load(std::memory_order_acquire) < n) std::this_thread::yield();
}
void spin_for_ns(std::int64_t ns) {
  const std::int64_t end = now_ns() + ns;
  while (now_ns() < end) {
  }
}

// ---- wake latency from idle ----
void wake_latency(benchmark::State& state, Mode server) {
  if (!right_process(state, server)) return;
  tbb::task_arena arena;  // default concurrency
  std::vector<double> us;
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let oneTBB's workers go idle
    std::atomic<std::int64_t> started{0};
    const std::int64_t t0 = now_ns();
    arena.enqueue([&started] { started.store(now_ns(), std::memory_order_release); });
    std::int64_t t1 = 0;
    while ((t1 = started.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
    us.push_back(static_cast<double>(t1 - t0) * 1e-3);
  }
  put_percentile(state.counters, "p50_us", us, 0.5);
  put_percentile(state.counters, "p99_us", us, 0.99);
  check_connected(state, server);
}

// ---- idle burn ----
void idle_burn(benchmark::State& state, Mode server) {
  if (!right_process(state, server)) return;
  tbb::task_arena arena;
  double cpu = 0;
  for (auto _ : state) {
    std::atomic<std::size_t> done{0};
    for (std::size_t i = 0; i < 100'000; ++i) {
      arena.enqueue([&done] { done.fetch_add(1, std::memory_order_release); });
    }
    wait_count(done, 100'000);
    const double c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the idle period measured
    cpu += cpu_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  }
  // process_cpu_ms, not cpu_ms: parkpool-bench reserves cpu_<unit> for Google Benchmark's own
  // CPU time.
  state.counters["process_cpu_ms"] = cpu * 1e3 / static_cast<double>(state.iterations());
  check_connected(state, server);
}

// ---- sparse load ----
void sparse_load(benchmark::State& state, Mode server, std::int64_t gap_ns) {
  if (!right_process(state, server)) return;
  tbb::task_arena arena;
  std::vector<double> lat;
  double cpu = 0;
  std::size_t tasks = 0;
  for (auto _ : state) {
    const auto n = static_cast<std::size_t>(500'000'000 / gap_ns);  // 0.5 s
    std::vector<std::int64_t> start(n, 0);
    std::atomic<std::size_t> done{0};
    const double p0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID), m0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    const std::int64_t base = now_ns();
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t due = base + static_cast<std::int64_t>(i) * gap_ns;
      while (now_ns() < due) {
      }
      arena.enqueue([&start, &done, i, due] {
        start[i] = now_ns() - due;
        spin_for_ns(2'000);
        done.fetch_add(1, std::memory_order_release);
      });
    }
    wait_count(done, n);
    // CPU of everything but the submitting thread, which spins between its submissions.
    cpu += (cpu_s(CLOCK_PROCESS_CPUTIME_ID) - p0) - (cpu_s(CLOCK_THREAD_CPUTIME_ID) - m0);
    tasks += n;
    for (std::int64_t s : start) lat.push_back(static_cast<double>(s) * 1e-3);
  }
  state.counters["cpu_us_per_task"] = cpu * 1e6 / static_cast<double>(tasks);
  put_percentile(state.counters, "p50_us", lat, 0.5);
  put_percentile(state.counters, "p99_us", lat, 0.99);
  check_connected(state, server);
}

// ---- fib(27) with task_group ----
long fib(int n) {
  if (n < 2) return n;
  long a = 0, b = 0;
  tbb::task_group g;
  g.run([&] { a = fib(n - 1); });
  b = fib(n - 2);
  g.wait();
  return a + b;
}
void fib27(benchmark::State& state, Mode server) {
  if (!right_process(state, server)) return;
  for (auto _ : state) benchmark::DoNotOptimize(fib(27));
  check_connected(state, server);
}

// ---- examples/tbb_migration ----
const migration::Input& migration_input() {
  static const migration::Input in = migration::make_input();
  return in;
}
void migration_tbb(benchmark::State& state, Mode server) {
  if (!right_process(state, server)) return;
  tbb::task_arena arena(static_cast<int>(parkpool::available_cpus()));
  const migration::Input& in = migration_input();
  const double c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  for (auto _ : state)
    benchmark::DoNotOptimize(migration::tbb_version::run(arena, in).blur_checksum);
  // Every thread's CPU (the workers' spinning included), per run: gbench's own CPU column
  // counts the main thread only.
  state.counters["process_cpu_ms"] =
      (cpu_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3 / static_cast<double>(state.iterations());
  check_connected(state, server);
}
void migration_parkpool(benchmark::State& state) {
  parkpool::ThreadPool pool;  // one worker per CPU, like the oneTBB version's arena
  const migration::Input& in = migration_input();
  const double c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  for (auto _ : state)
    benchmark::DoNotOptimize(migration::parkpool_version::run(pool, in).blur_checksum);
  state.counters["process_cpu_ms"] =
      (cpu_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3 / static_cast<double>(state.iterations());
}

void register_all() {
  for (Mode m : {Mode::tbb, Mode::rml, Mode::rml_spin}) {
    const std::string impl = mode_suffix(m);
    benchmark::RegisterBenchmark(("RmlWakeLatency" + impl).c_str(), wake_latency, m)
        ->Iterations(200)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("RmlIdleBurn" + impl).c_str(), idle_burn, m)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("RmlSparseLoad" + impl).c_str(), sparse_load, m,
                                 std::int64_t{20'000})
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("RmlSparseLoad100us" + impl).c_str(), sparse_load, m,
                                 std::int64_t{100'000})
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("RmlFib27" + impl).c_str(), fib27, m)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(10)
        ->UseRealTime();
    if (m != Mode::rml_spin) {
      benchmark::RegisterBenchmark(("TbbMigration" + impl).c_str(), migration_tbb, m)
          ->Unit(benchmark::kMillisecond)
          ->Iterations(10)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark("TbbMigration/parkpool", migration_parkpool)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(10)
      ->UseRealTime();
}

std::string find_server_library() {
  auto usable = [](const std::string& p) { return !p.empty() && access(p.c_str(), R_OK) == 0; };
  if (const char* env = std::getenv("PARKPOOL_TBB_RML_LIB"); env != nullptr && usable(env))
    return env;
  char exe[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) return {};
  std::string dir(exe, static_cast<std::size_t>(len));
  dir = dir.substr(0, dir.rfind('/'));
  for (const char* rel : {"/../src/tbb_rml/libparkpool_tbb.so", "/../lib/libparkpool_tbb.so",
                          "/libparkpool_tbb.so"}) {
    if (usable(dir + rel)) return dir + rel;
  }
  return {};
}

// Re-executes this program with the server preloaded when the filter asks for parkpool_rml cases.
void maybe_reexec_with_server(char** argv) {
  bool wants_server = false, wants_spin = false;
  for (char** a = argv + 1; *a != nullptr; ++a) {
    if (std::strncmp(*a, "--benchmark_list_tests", 22) == 0) return;
    if (std::strncmp(*a, "--benchmark_filter=", 19) == 0 &&
        std::strstr(*a, "parkpool_rml") != nullptr) {
      wants_server = true;
      wants_spin = std::strstr(*a, "parkpool_rml_spin") != nullptr;
    }
  }
  if (!wants_server || server_loaded() || std::getenv("PARKPOOL_TBB_RML_BENCH_REEXEC") != nullptr)
    return;
  const std::string lib = find_server_library();
  if (lib.empty()) return;  // the cases report the missing server
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old != nullptr && *old != '\0') {
    // append(), not `":" + std::string(old)`: GCC 12 warns about that concatenation in release
    // builds (a -Wrestrict false positive inside char_traits).
    preload.append(":").append(old);
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  if (wants_spin) setenv("PARKPOOL_TBB_IDLE", "default", 1);
  setenv("PARKPOOL_TBB_RML_BENCH_REEXEC", "1", 1);  // never loop
  execv("/proc/self/exe", argv);                    // returns only on failure
}

}  // namespace

int main(int argc, char** argv) {
  maybe_reexec_with_server(argv);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

#else  // !PARKPOOL_HAVE_TBB: nothing to compare against

BENCHMARK_MAIN();

#endif

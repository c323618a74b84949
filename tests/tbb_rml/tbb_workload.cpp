// An ordinary oneTBB program, run by ctest with and without libparkpool_tbb (LD_PRELOAD, linked
// in, linked in but disabled). Every phase checks its result against a serial computation, so
// all variants produce the same output or fail; the last lines check which RML server ran and
// that it shut down cleanly.
//
//   tbb_rml_workload --expect=server|private|refused [--finalize]
//
// --expect=server: libparkpool_tbb must be loaded and oneTBB must have connected to it and
//   started workers through it. --expect=private: it must not be in use (absent, or disabled).
//   --expect=refused: it must be loaded and never connected (it refused the version oneTBB asked
//   for, see version_shim.cpp), so oneTBB ran on its private server.
// --finalize: ends with oneTBB's blocking tbb::finalize(), which closes the RML connection and
//   waits for the workers; with the server, every thread it started must then have exited.
//   Without it, the program exits with the workers asleep (the common case).
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%-58s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

using Counter = unsigned long long (*)();

// The server's statistics, if libparkpool_tbb is loaded (LD_PRELOAD or linked).
Counter counter(const char* name) { return reinterpret_cast<Counter>(dlsym(RTLD_DEFAULT, name)); }

long long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

long long fib_tasks(int n) {
  if (n < 16) return fib_serial(n);
  long long a = 0, b = 0;
  tbb::task_group g;
  g.run([&] { a = fib_tasks(n - 1); });
  b = fib_tasks(n - 2);
  g.wait();
  return a + b;
}

// Distinct threads that ran the body of a parallel_for of n iterations (each ~20 us of work).
std::size_t threads_used(int n) {
  std::mutex m;
  std::set<std::thread::id> ids;
  tbb::parallel_for(0, n, [&](int) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
    while (std::chrono::steady_clock::now() < end) {
    }
    std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
  });
  return ids.size();
}

void phase_parallel_for() {
  std::vector<long long> v(200000);
  tbb::parallel_for(std::size_t{0}, v.size(),
                    [&](std::size_t i) { v[i] = static_cast<long long>(i) * 3 + 1; });
  long long expect = 0;
  for (std::size_t i = 0; i < v.size(); ++i) expect += static_cast<long long>(i) * 3 + 1;
  const long long sum = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, v.size()), 0LL,
      [&](const tbb::blocked_range<std::size_t>& r, long long acc) {
        for (std::size_t i = r.begin(); i != r.end(); ++i) acc += v[i];
        return acc;
      },
      [](long long a, long long b) { return a + b; });
  std::printf("parallel_for/reduce sum = %lld\n", sum);
  check(sum == expect, "parallel_for + parallel_reduce equal the serial sum");
}

void phase_task_group() {
  const long long f = fib_tasks(25);
  std::printf("task_group fib(25) = %lld\n", f);
  check(f == 75025, "task_group fib(25) == 75025");
}

void phase_enqueue() {
  tbb::task_arena arena(2);
  std::atomic<int> done{0};
  std::atomic<long long> sum{0};
  constexpr int kTasks = 500;
  for (int i = 0; i < kTasks; ++i) {
    arena.enqueue([&, i] {
      sum.fetch_add(i, std::memory_order_relaxed);
      done.fetch_add(1, std::memory_order_release);  // pairs with the acquire load below
    });
  }
  // Fire-and-forget tasks run on oneTBB's workers (at least one even when the machine has one
  // CPU: oneTBB's mandatory concurrency for enqueue): wait for them to finish.
  while (done.load(std::memory_order_acquire) < kTasks) std::this_thread::yield();
  std::printf("task_arena::enqueue sum = %lld\n", sum.load());
  check(sum.load() == static_cast<long long>(kTasks) * (kTasks - 1) / 2,
        "task_arena::enqueue ran every task once");
}

void phase_nested_arenas() {
  tbb::task_arena outer(2), inner(1);
  long long total = 0;
  outer.execute([&] {
    std::atomic<long long> acc{0};
    tbb::parallel_for(0, 8, [&](int i) {
      long long local = 0;
      inner.execute([&] {  // an arena nested inside another arena's task
        local = tbb::parallel_reduce(
            tbb::blocked_range<int>(0, 1000), 0LL,
            [&](const tbb::blocked_range<int>& r, long long a) {
              for (int k = r.begin(); k != r.end(); ++k) a += k * (i + 1);
              return a;
            },
            [](long long a, long long b) { return a + b; });
      });
      acc.fetch_add(local, std::memory_order_relaxed);
    });
    total = acc.load(std::memory_order_relaxed);
  });
  std::printf("nested arenas total = %lld\n", total);
  check(total == 499500LL * 36, "nested task_arena::execute results");
}

void phase_global_control() {
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    const std::size_t n = threads_used(400);
    std::printf("max_allowed_parallelism=1 threads = %zu\n", n);
    check(n == 1, "max_allowed_parallelism=1 runs on one thread");
  }
  {
    tbb::global_control two(tbb::global_control::max_allowed_parallelism, 2);
    const std::size_t n = threads_used(2000);
    std::printf("max_allowed_parallelism=2 threads <= 2: %s\n", n <= 2 ? "yes" : "no");
    check(n >= 1 && n <= 2, "max_allowed_parallelism=2 uses at most two threads");
  }
  {
    // Above the CPU count: oneTBB asks the RML for 3 workers even on a small machine.
    tbb::global_control four(tbb::global_control::max_allowed_parallelism, 4);
    const std::size_t n = threads_used(4000);
    std::printf("max_allowed_parallelism=4 threads <= 4: %s\n", n <= 4 ? "yes" : "no");
    check(n >= 1 && n <= 4, "max_allowed_parallelism=4 uses at most four threads");
  }
}

void phase_bursts() {
  // Idle -> wake cycles: the pauses are the point (oneTBB releases its workers to the RML server
  // while idle, and the next burst must bring them back).
  long long total = 0;
  for (int burst = 0; burst < 5; ++burst) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    total += tbb::parallel_reduce(
        tbb::blocked_range<int>(0, 100000), 0LL,
        [](const tbb::blocked_range<int>& r, long long a) {
          for (int k = r.begin(); k != r.end(); ++k) a += k;
          return a;
        },
        [](long long a, long long b) { return a + b; });
  }
  std::printf("bursts total = %lld\n", total);
  check(total == 5LL * 4999950000LL, "five bursts after idle pauses");
}

}  // namespace

int main(int argc, char** argv) {
  bool expect_server = false, expect_private = false, expect_refused = false, finalize = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect=server") == 0) {
      expect_server = true;
    } else if (std::strcmp(argv[i], "--expect=private") == 0) {
      expect_private = true;
    } else if (std::strcmp(argv[i], "--expect=refused") == 0) {
      expect_refused = true;
    } else if (std::strcmp(argv[i], "--finalize") == 0) {
      finalize = true;
    } else {
      std::fprintf(stderr, "usage: %s --expect=server|private|refused [--finalize]\n", argv[0]);
      return 2;
    }
  }
  if (int{expect_server} + int{expect_private} + int{expect_refused} != 1) {
    std::fprintf(stderr,
                 "give exactly one of --expect=server, --expect=private, --expect=refused\n");
    return 2;
  }

  // The handle must exist before oneTBB starts, to be able to finalize it (blocking).
  tbb::task_scheduler_handle handle;
  if (finalize) handle = tbb::task_scheduler_handle{tbb::attach{}};

  phase_parallel_for();
  phase_task_group();
  phase_enqueue();
  phase_nested_arenas();
  phase_global_control();
  phase_bursts();

  const Counter connections = counter("parkpool_tbb_rml_connections");
  const Counter started = counter("parkpool_tbb_rml_threads_started");
  const Counter exited = counter("parkpool_tbb_rml_threads_exited");
  const Counter closed = counter("parkpool_tbb_rml_closed_connections");
  const unsigned long long conns = connections != nullptr ? connections() : 0;
  if (expect_server) {
    check(connections != nullptr, "libparkpool_tbb is loaded");
    check(conns >= 1, "oneTBB connected to the parkpool RML server");
    check(started != nullptr && started() >= 1, "the server started oneTBB's workers");
  } else {
    if (expect_refused) check(connections != nullptr, "libparkpool_tbb is loaded");
    check(conns == 0, "oneTBB uses its private RML server");
  }

  if (finalize) {
    const bool ok = tbb::finalize(handle, std::nothrow);
    check(ok, "tbb::finalize (blocking) succeeded");
    if (expect_server) {
      check(closed != nullptr && closed() == conns, "every connection was closed");
      check(exited != nullptr && started != nullptr && exited() == started(),
            "every worker thread exited before finalize returned");
    }
  }
  std::printf("%s\n", failures == 0 ? "PASSED" : "FAILED");
  return failures == 0 ? 0 : 1;
}

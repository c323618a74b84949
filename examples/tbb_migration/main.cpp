// tbb_migration: one application written against oneTBB (app_tbb.hpp) and the same application
// on parkpool (app_parkpool.hpp), run on the same input. Prints both results, checks that they
// are identical, and prints each version's run time (median of --repeat runs).
//
//   example_tbb_migration [--backend=both|tbb|parkpool] [--threads=N] [--repeat=R]
//
// Exit code 0 when every run of every selected backend produced the reference result.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "app_parkpool.hpp"
#include "app_tbb.hpp"

namespace {

void print(const char* name, const migration::Result& r) {
  std::printf("%-9s blur=%llu sorted=%s sort=%llu requests=%llu hist=[", name,
              static_cast<unsigned long long>(r.blur_checksum), r.sorted ? "yes" : "NO",
              static_cast<unsigned long long>(r.sorted_checksum),
              static_cast<unsigned long long>(r.requests_checksum));
  for (std::size_t i = 0; i < r.histogram.size(); ++i) {
    std::printf("%s%llu", i ? "," : "", static_cast<unsigned long long>(r.histogram[i]));
  }
  std::printf("]\n");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

template <class Run>
bool measure(const char* name, int repeat, const migration::Result* reference, Run run,
             migration::Result& first, double& median_ms) {
  std::vector<double> ms;
  bool ok = true;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    migration::Result r = run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (i == 0) first = r;
    if (!(r == first) || !r.sorted || (reference != nullptr && !(r == *reference))) ok = false;
  }
  median_ms = median(ms);
  print(name, first);
  std::printf("%-9s median %.2f ms over %d runs%s\n", name, median_ms, repeat, ok ? "" : "  RESULT MISMATCH");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "both";
  std::size_t threads = parkpool::available_cpus();
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--backend=", 10) == 0) {
      backend = argv[i] + 10;
    } else if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::strtoul(argv[i] + 10, nullptr, 10);
    } else if (std::strncmp(argv[i], "--repeat=", 9) == 0) {
      repeat = std::atoi(argv[i] + 9);
    } else {
      std::fprintf(stderr, "usage: %s [--backend=both|tbb|parkpool] [--threads=N] [--repeat=R]\n", argv[0]);
      return 2;
    }
  }
  if ((backend != "both" && backend != "tbb" && backend != "parkpool") || threads == 0 || repeat < 1) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }

  const migration::Input in = migration::make_input();
  std::printf("input: %zux%zu image, %zu keys, %zu requests; %zu threads\n", in.width, in.height,
              in.keys.size(), in.requests, threads);

  bool ok = true;
  migration::Result tbb_result, pp_result;
  double tbb_ms = 0, pp_ms = 0;
  if (backend != "parkpool") {
    tbb::task_arena arena(static_cast<int>(threads));
    ok &= measure("oneTBB", repeat, nullptr, [&] { return migration::tbb_version::run(arena, in); },
                  tbb_result, tbb_ms);
  }
  if (backend != "tbb") {
    parkpool::PoolOptions options;
    options.threads = threads;
    parkpool::ThreadPool pool(options);
    ok &= measure("parkpool", repeat, backend == "both" ? &tbb_result : nullptr,
                  [&] { return migration::parkpool_version::run(pool, in); }, pp_result, pp_ms);
  }
  if (backend == "both") {
    std::printf("same results: %s; parkpool/oneTBB time ratio %.2f\n", ok ? "yes" : "NO",
                tbb_ms > 0 ? pp_ms / tbb_ms : 0.0);
  }
  return ok ? 0 : 1;
}

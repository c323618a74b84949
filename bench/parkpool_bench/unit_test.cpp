// Unit checks of the pieces of parkpool-bench that are plain functions: the percentile rule of the
// suites (bench_stats.hpp), the counter names the driver reserves, its machine-load accounting
// and issue 5's target verdicts (support.hpp). The smoke test (smoke_test.cmake) checks the driver
// end to end.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_stats.hpp"
#include "support.hpp"

namespace {

using parkpool::bench::percentile;
using parkpool::bench::percentile_supported;
using parkpool::bench::put_percentile;

std::vector<double> one_to(int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(PercentileRule, NeedsOneSampleExpectedBeyondTheQuantile) {
  // n * min(q, 1 - q) >= 1.
  for (double q : {0.1, 0.25, 0.5, 0.75, 0.9}) EXPECT_TRUE(percentile_supported(10, q)) << q;
  for (double q : {0.01, 0.05, 0.95, 0.99, 0.999}) EXPECT_FALSE(percentile_supported(10, q)) << q;
  EXPECT_TRUE(percentile_supported(100, 0.01));
  EXPECT_TRUE(percentile_supported(100, 0.99));
  EXPECT_FALSE(percentile_supported(99, 0.99));
  EXPECT_FALSE(percentile_supported(100, 0.999));
  EXPECT_FALSE(percentile_supported(999, 0.999));
  EXPECT_TRUE(percentile_supported(1000, 0.999));
  EXPECT_FALSE(percentile_supported(1, 0.5));
  EXPECT_TRUE(percentile_supported(2, 0.5));
  EXPECT_FALSE(percentile_supported(0, 0.5));
}

TEST(PercentileRule, PutPercentileLeavesOutWhatTheCountDoesNotSupport) {
  std::map<std::string, double> c;
  const std::vector<double> ten = one_to(10);
  for (const auto& [name, q] :
       {std::pair{"p10", 0.1}, std::pair{"p50", 0.5}, std::pair{"p90", 0.9}, std::pair{"p95", 0.95},
        std::pair{"p99", 0.99}, std::pair{"p999", 0.999}}) {
    put_percentile(c, name, ten, q);
  }
  // Before the rule, p90, p95, p99 and p999 of 10 samples were all the 9th smallest.
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.at("p10"), 1);
  EXPECT_EQ(c.at("p50"), 5);
  EXPECT_EQ(c.at("p90"), 9);
  EXPECT_EQ(c.count("p95") + c.count("p99") + c.count("p999"), 0u);

  c.clear();
  const std::vector<double> hundred = one_to(100);
  put_percentile(c, "p99", hundred, 0.99);
  put_percentile(c, "p999", hundred, 0.999);  // would repeat p99: both index 98
  EXPECT_EQ(c.at("p99"), 99);
  EXPECT_EQ(c.count("p999"), 0u);

  c.clear();
  const std::vector<double> thousand = one_to(1000);
  put_percentile(c, "p99", thousand, 0.99);
  put_percentile(c, "p999", thousand, 0.999);
  EXPECT_EQ(c.at("p99"), 990);
  EXPECT_EQ(c.at("p999"), 999);
  EXPECT_EQ(percentile(thousand, 0.999), 999);  // percentile itself still answers
}

TEST(ReservedFigureNames, GoogleBenchmarksOwnTimesInEveryUnit) {
  for (const char* name :
       {"real_ns", "real_us", "real_ms", "real_s", "cpu_ns", "cpu_us", "cpu_ms", "cpu_s"}) {
    EXPECT_TRUE(parkpool_bench::is_reserved_figure_name(name)) << name;
  }
  for (const char* name : {"process_cpu_ns", "pool_cpu_ms", "process_cpu_ms", "cpu_us_per_task",
                           "p99_us", "items_per_second", "cpu_ns2", "real"}) {
    EXPECT_FALSE(parkpool_bench::is_reserved_figure_name(name)) << name;
  }
}

TEST(ProcStat, ReadsTheMachineLine) {
  std::istringstream in("cpu  100 2 30 400 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1 1 1\n");
  const auto t = parkpool_bench::parse_proc_stat(in);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->user, 100);
  EXPECT_EQ(t->nice, 2);
  EXPECT_EQ(t->system, 30);
  EXPECT_EQ(t->idle, 400);
  EXPECT_EQ(t->iowait, 5);
  EXPECT_EQ(t->irq, 6);
  EXPECT_EQ(t->softirq, 7);
  EXPECT_EQ(t->steal, 8);
  EXPECT_EQ(t->total(), 558);  // guest and guest_nice are in user and nice already
  EXPECT_EQ(t->process_time(), 132);

  std::istringstream per_cpu("cpu0 1 2 3 4 5 6 7 8\n");
  EXPECT_FALSE(parkpool_bench::parse_proc_stat(per_cpu).has_value());
  std::istringstream short_line("cpu 1 2 3\n");
  EXPECT_FALSE(parkpool_bench::parse_proc_stat(short_line).has_value());
}

TEST(RunLoad, OtherProcessesLeaveOutStealAndInterrupts) {
  // 10 s of CPU time (1000 ticks at 100 per second): 2 s of processes, all of them this run's
  // (own_s), 1.5 s stolen, 1 s of interrupts, 5.5 s idle or waiting for I/O. Nothing ran for other
  // processes; until 2026-12-06 the figure was total - idle - iowait - own = 2.5 s, 25%.
  parkpool_bench::CpuTicks before, after;
  after.user = 150;
  after.system = 50;
  after.idle = 500;
  after.iowait = 50;
  after.irq = 60;
  after.softirq = 40;
  after.steal = 150;
  const parkpool_bench::RunLoad all_own = parkpool_bench::run_load(before, after, 100, 2.0);
  EXPECT_DOUBLE_EQ(all_own.steal_fraction, 0.15);
  EXPECT_DOUBLE_EQ(all_own.other_processes_fraction, 0);

  // Half of the processes' time was this run's: the other 1 s is 10% of the period.
  const parkpool_bench::RunLoad half = parkpool_bench::run_load(before, after, 100, 1.0);
  EXPECT_DOUBLE_EQ(half.other_processes_fraction, 0.1);

  // Differences, not absolute counts: the same period later in the machine's life.
  parkpool_bench::CpuTicks b2 = before, a2 = after;
  for (parkpool_bench::CpuTicks* t : {&b2, &a2}) {
    t->user += 7000;
    t->steal += 3000;
    t->idle += 50000;
  }
  EXPECT_DOUBLE_EQ(parkpool_bench::run_load(b2, a2, 100, 1.0).other_processes_fraction, 0.1);

  // getrusage counts finer than the ticks: more own CPU than the ticks show is 0, not negative.
  EXPECT_DOUBLE_EQ(parkpool_bench::run_load(before, after, 100, 3.0).other_processes_fraction, 0);
  // No time passed: nothing to divide by.
  EXPECT_DOUBLE_EQ(parkpool_bench::run_load(after, after, 100, 0).other_processes_fraction, 0);
}

// A median table for evaluate_target: figure -> impl -> (median, n).
parkpool_bench::MedianLookup lookup_in(
    const std::map<std::string, std::map<std::string, double>>& table) {
  return [table](const std::string& fig,
                 const std::string& impl) -> std::optional<parkpool_bench::Median> {
    const auto f = table.find(fig);
    if (f == table.end()) return std::nullopt;
    const auto i = f->second.find(impl);
    if (i == f->second.end()) return std::nullopt;
    return parkpool_bench::Median{i->second, 5};
  };
}

TEST(Targets, RatioAgainstTheNamedBaselineInEitherDirection) {
  const parkpool_bench::Target lower{"lower",  {"F p50_us"}, "parkpool", {"F p50_us"},
                                     "onetbb", 1.2,          false};
  const parkpool_bench::Target higher{
      "higher", {"E items_per_second"}, "parkpool", {"E items_per_second"}, "onetbb", 2.5, true};
  // std_pool is the best baseline of F, but the target names oneTBB.
  const auto table = lookup_in({{"F p50_us", {{"parkpool", 6}, {"onetbb", 5}, {"std_pool", 1}}},
                                {"E items_per_second", {{"parkpool", 10}, {"onetbb", 4}}}});
  const auto a = parkpool_bench::evaluate_target(lower, table);
  ASSERT_TRUE(a.present);
  EXPECT_DOUBLE_EQ(a.ratio, 1.2);
  EXPECT_TRUE(a.met) << "<= is inclusive";
  EXPECT_EQ(a.base_value, 5);
  const auto b = parkpool_bench::evaluate_target(higher, table);
  EXPECT_DOUBLE_EQ(b.ratio, 2.5);
  EXPECT_TRUE(b.met);
  const auto c = parkpool_bench::evaluate_target(
      higher, lookup_in({{"E items_per_second", {{"parkpool", 9.9}, {"onetbb", 4}}}}));
  EXPECT_FALSE(c.met);
  const auto d = parkpool_bench::evaluate_target(
      lower, lookup_in({{"F p50_us", {{"parkpool", 6.1}, {"onetbb", 5}}}}));
  EXPECT_FALSE(d.met);
}

TEST(Targets, TheFirstCandidatePairWithBothMediansIsUsed) {
  const parkpool_bench::Target t{"eff p50",
                                 {"SparseLoad p50_us", "SparseSweep/20 p50_us"},
                                 "parkpool_efficiency",
                                 {"WakeLatency p50_us", "WakeLatencyDist p50_us"},
                                 "bare_futex",
                                 1.1,
                                 false};
  // The --full pair is incomplete (no WakeLatency): the quick pair is used, never a mix.
  const auto r = parkpool_bench::evaluate_target(
      t, lookup_in({{"SparseLoad p50_us", {{"parkpool_efficiency", 100}}},
                    {"SparseSweep/20 p50_us", {{"parkpool_efficiency", 10}}},
                    {"WakeLatencyDist p50_us", {{"bare_futex", 10}}}}));
  ASSERT_TRUE(r.present);
  EXPECT_EQ(r.figure, "SparseSweep/20 p50_us");
  EXPECT_EQ(r.base_figure, "WakeLatencyDist p50_us");
  EXPECT_DOUBLE_EQ(r.ratio, 1.0);
  EXPECT_TRUE(r.met);
  // Neither pair complete: not run, not met.
  const auto none = parkpool_bench::evaluate_target(
      t, lookup_in({{"SparseLoad p50_us", {{"parkpool_efficiency", 1}}}}));
  EXPECT_FALSE(none.present);
  EXPECT_FALSE(none.met);
  // A baseline median of 0 gives no ratio.
  const auto zero = parkpool_bench::evaluate_target(
      t, lookup_in({{"SparseLoad p50_us", {{"parkpool_efficiency", 1}}},
                    {"WakeLatency p50_us", {{"bare_futex", 0}}}}));
  EXPECT_FALSE(zero.present);
}

TEST(Targets, AbsoluteTargetsBoundTheValue) {
  const parkpool_bench::Target t{"memory", {"M bytes_per_task"}, "parkpool", {}, "", 96, false};
  const auto ok =
      parkpool_bench::evaluate_target(t, lookup_in({{"M bytes_per_task", {{"parkpool", 56}}}}));
  ASSERT_TRUE(ok.present);
  EXPECT_DOUBLE_EQ(ok.ratio, 56);
  EXPECT_TRUE(ok.met);
  EXPECT_FALSE(
      parkpool_bench::evaluate_target(t, lookup_in({{"M bytes_per_task", {{"parkpool", 97}}}}))
          .met);
}

TEST(Targets, Issue5ListsEveryTargetWithAlignedCandidates) {
  const auto& targets = parkpool_bench::issue5_targets();
  EXPECT_EQ(targets.size(), 19u);
  for (const auto& t : targets) {
    EXPECT_FALSE(t.figures.empty()) << t.label;
    if (!t.base_figures.empty()) {
      EXPECT_EQ(t.figures.size(), t.base_figures.size()) << t.label;
    }
    EXPECT_GT(t.threshold, 0) << t.label;
  }
}

}  // namespace

// Pieces of parkpool-bench (main.cpp) that need neither CLI11, fmt nor JSON: the names it reserves
// for Google Benchmark's own figures, the machine-load accounting of its machine record, and
// issue 5's targets with their verdicts. Apart from main.cpp so that parkpool_bench_unit_test
// checks them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <vector>

namespace parkpool_bench {

// The figure names parkpool-bench derives from Google Benchmark's own fields: real_<unit> from
// real_time and cpu_<unit> from cpu_time, <unit> being the case's time unit (every unit Google
// Benchmark has: ns, us, ms, s). A user counter of such a name would put a second quantity into
// the same figure: beside Google Benchmark's own time in the same case, or in place of it in an
// implementation timed otherwise (cpu_<unit> is left out for a case timed by the wall clock), and
// the median and the ratio would then mix the two. parkpool-bench refuses such a counter, for any
// unit (another implementation of the workload may have the unit this one lacks).
inline bool is_reserved_figure_name(const std::string& counter) {
  for (const char* prefix : {"real_", "cpu_"}) {
    for (const char* unit : {"ns", "us", "ms", "s"}) {
      if (counter == std::string(prefix) + unit) return true;
    }
  }
  return false;
}

// The first line of /proc/stat: CPU time of the whole machine, summed over all CPUs, in clock
// ticks (proc(5)): "cpu user nice system idle iowait irq softirq steal guest guest_nice". guest and
// guest_nice are already counted in user and nice, so they are not read.
struct CpuTicks {
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  // Every tick of the period, whatever the CPUs did.
  double total() const { return user + nice + system + idle + iowait + irq + softirq + steal; }
  // Time the CPUs ran processes, in user mode (user, nice) or in the kernel on their behalf
  // (system). Not idle or iowait (no process ran), not irq or softirq (interrupt handling, which
  // the kernel charges to no process: getrusage does not count it), not steal (the hypervisor ran
  // something else: no process of this machine ran).
  double process_time() const { return user + nice + system; }
};

// Reads the "cpu" line of /proc/stat (the machine's total, not a "cpuN" line); nothing if `in`
// does not start with one.
inline std::optional<CpuTicks> parse_proc_stat(std::istream& in) {
  std::string label;
  CpuTicks t;
  if (!(in >> label) || label != "cpu") return std::nullopt;
  for (double* f : {&t.user, &t.nice, &t.system, &t.idle, &t.iowait, &t.irq, &t.softirq, &t.steal})
    if (!(in >> *f)) return std::nullopt;
  return t;
}

// How busy the machine was between two snapshots, as shares of the CPU time of that period (all
// CPUs; total() ticks):
//   steal_fraction            steal: time the hypervisor gave the vCPUs to someone else;
//   other_processes_fraction  process_time() (user + nice + system) less `own_s`, the CPU seconds
//                             this run's own processes used (parkpool-bench and its waited-for
//                             children, from getrusage); 0 if that is negative (the tick counts
//                             are coarser than getrusage). Neither steal, irq nor softirq is in it:
//                             until 2026-12-06 it was total - idle - iowait - own, which counted
//                             steal a second time and interrupt handling as other processes'.
struct RunLoad {
  double steal_fraction = 0, other_processes_fraction = 0;
};
inline RunLoad run_load(const CpuTicks& before, const CpuTicks& after, double ticks_per_second,
                        double own_s) {
  RunLoad r;
  const double capacity = after.total() - before.total();
  if (capacity <= 0 || ticks_per_second <= 0) return r;
  r.steal_fraction = (after.steal - before.steal) / capacity;
  const double others_s = (after.process_time() - before.process_time()) / ticks_per_second - own_s;
  r.other_processes_fraction = std::max(0.0, others_s) * ticks_per_second / capacity;
  return r;
}

// Issue 5's performance targets, each as the issue states it: a parkpool figure against one named
// baseline (the ratio of medians in this run), or against an absolute threshold. The main table
// divides by the best baseline of each figure, which is not always the one a target names (the
// sparse-load CPU target is against oneTBB, not the std pool) and has no row for targets made of
// two figures (the efficiency preset's latency against the bare futex wake of WakeLatency; 8
// workers against 2): this table gives each target its verdict.
//   figures / base_figures: the candidates, index-aligned: the first pair that both have a median
//   is used (the --full workload first, then the sweep point --quick runs instead).
//   base_figures empty: `threshold` bounds the value itself (absolute).
struct Target {
  std::string label;
  std::vector<std::string> figures;
  std::string impl;
  std::vector<std::string> base_figures;
  std::string base_impl;
  double threshold = 0;
  bool at_least = false;  // met when the ratio (or value) >= threshold; else when <=
};

struct TargetResult {
  const Target* target = nullptr;
  bool present = false;  // both medians found
  std::string figure, base_figure;
  double value = 0, base_value = 0;
  std::size_t n = 0, base_n = 0;
  double ratio = 0;  // value / base_value, or value when absolute
  bool met = false;
};

// A figure's median and sample count for an implementation, or nothing.
struct Median {
  double value = 0;
  std::size_t n = 0;
};
using MedianLookup =
    std::function<std::optional<Median>(const std::string& figure, const std::string& impl)>;

inline TargetResult evaluate_target(const Target& t, const MedianLookup& lookup) {
  TargetResult r;
  r.target = &t;
  for (std::size_t i = 0; i < t.figures.size(); ++i) {
    const std::optional<Median> v = lookup(t.figures[i], t.impl);
    if (!v) continue;
    if (t.base_figures.empty()) {
      r.present = true;
      r.figure = t.figures[i];
      r.value = v->value;
      r.n = v->n;
      r.ratio = v->value;
      break;
    }
    if (i >= t.base_figures.size()) break;
    const std::optional<Median> b = lookup(t.base_figures[i], t.base_impl);
    if (!b || !(b->value > 0)) continue;
    r.present = true;
    r.figure = t.figures[i];
    r.base_figure = t.base_figures[i];
    r.value = v->value;
    r.n = v->n;
    r.base_value = b->value;
    r.base_n = b->n;
    r.ratio = v->value / b->value;
    break;
  }
  r.met = r.present && (t.at_least ? r.ratio >= t.threshold : r.ratio <= t.threshold);
  return r;
}

// Issue 5's targets ("Performance"), 2 workers unless stated.
inline const std::vector<Target>& issue5_targets() {
  static const std::vector<Target> targets = [] {
    const std::vector<std::string> wake50 = {"WakeLatency p50_us", "WakeLatencyDist p50_us"};
    const std::vector<std::string> wake99 = {"WakeLatency p99_us", "WakeLatencyDist p99_us"};
    const std::vector<std::string> cpu = {"SparseLoad cpu_us_per_task",
                                          "SparseSweep/20 cpu_us_per_task"};
    const std::vector<std::string> p50 = {"SparseLoad p50_us", "SparseSweep/20 p50_us"};
    const std::vector<std::string> p99 = {"SparseLoad p99_us", "SparseSweep/20 p99_us"};
    const std::vector<std::string> fib2 = {"Fib27/2 real_ms", "Fib27Workers/2 real_ms"};
    const std::vector<std::string> fib8 = {"Fib27/8 real_ms", "Fib27Workers/8 real_ms"};
    const std::vector<std::string> ext = {"ExternalPost items_per_second"};
    const std::vector<std::string> spawn = {"InternalSpawn items_per_second"};
    return std::vector<Target>{
        {"(1) external submit >= 2.5x oneTBB", ext, "parkpool", ext, "onetbb", 2.5, true},
        {"(1) external submit >= 1.5x std pool", ext, "parkpool", ext, "std_pool", 1.5, true},
        {"(2) internal spawn, post >= 3x oneTBB", spawn, "parkpool_post", spawn,
         "onetbb_task_group", 3, true},
        {"(2) internal spawn, TaskGroup >= 3x oneTBB", spawn, "parkpool_taskgroup", spawn,
         "onetbb_task_group", 3, true},
        {"(3) fib(27) join <= 0.1x oneTBB task_group", fib2, "parkpool_join", fib2,
         "onetbb_task_group", 0.1, false},
        {"(3) fib(27) TaskGroup <= 0.3x oneTBB task_group", fib2, "parkpool_taskgroup", fib2,
         "onetbb_task_group", 0.3, false},
        {"(3) fib(27) join, 8 workers <= 1.2x 2 workers", fib8, "parkpool_join", fib2,
         "parkpool_join", 1.2, false},
        {"(3) fib(27) TaskGroup, 8 workers <= 1.2x 2 workers", fib8, "parkpool_taskgroup", fib2,
         "parkpool_taskgroup", 1.2, false},
        {"(4) wake p50 <= 1.1x bare futex", wake50, "parkpool", wake50, "bare_futex", 1.1, false},
        {"(4) wake p99 <= 1.5x bare futex", wake99, "parkpool", wake99, "bare_futex", 1.5, false},
        {"(5) idle burn <= 0.1 ms per 200 ms",
         {"IdleBurn pool_cpu_ms"},
         "parkpool",
         {},
         "",
         0.1,
         false},
        {"(6) sparse, default: CPU/task <= oneTBB", cpu, "parkpool", cpu, "onetbb", 1, false},
        {"(6) sparse, default: p50 <= 1.2x oneTBB", p50, "parkpool", p50, "onetbb", 1.2, false},
        {"(6) sparse, default: p99 <= 0.2x oneTBB", p99, "parkpool", p99, "onetbb", 0.2, false},
        {"(6) sparse, efficiency: CPU/task <= std pool", cpu, "parkpool_efficiency", cpu,
         "std_pool", 1, false},
        {"(6) sparse, efficiency: p50 <= 1.1x bare futex wake p50", p50, "parkpool_efficiency",
         wake50, "bare_futex", 1.1, false},
        {"(6) sparse, efficiency: p99 <= 3x bare futex wake p99", p99, "parkpool_efficiency",
         wake99, "bare_futex", 3, false},
        {"(7) memory <= 96 bytes per queued task",
         {"MemoryPerQueuedTask bytes_per_task"},
         "parkpool",
         {},
         "",
         96,
         false},
        // The same target for a task posted from a worker (its deque and a TaskCache block),
        // where the row above is posted from outside (the injector).
        {"(7) memory <= 96 bytes per task queued from a worker",
         {"MemoryPerQueuedTask bytes_per_task"},
         "parkpool_worker",
         {},
         "",
         96,
         false},
    };
  }();
  return targets;
}

}  // namespace parkpool_bench

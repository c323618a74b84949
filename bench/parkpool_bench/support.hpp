// Pieces of parkpool-bench (main.cpp) that need neither CLI11, fmt nor JSON: the names it reserves
// for Google Benchmark's own figures and the machine-load accounting of its machine record. Apart
// from main.cpp so that parkpool_bench_unit_test checks them.
#pragma once

#include <algorithm>
#include <istream>
#include <optional>
#include <string>

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

}  // namespace parkpool_bench

// parkpool-bench: one comparison run of parkpool against its baselines (oneTBB, the std pools and
// primitives, a bare futex), as a table, JSON, CSV, Markdown and pictures. `parkpool-bench --help`
// for use; CMakeLists.txt beside this file for the build.
//
// What it runs: every "Workload/impl" case of the Google Benchmark suites in bench/ (parker_bench,
// thread_parker_bench, pool_bench, idle_bench, parking_lot_bench, http_bench, tbb_rml_bench), one
// fresh process per (workload, impl) and repetition, so one implementation's threads, caches and
// oneTBB's global state never disturb the next (repetitions run in rounds; see the run loop).
// Conventions it relies on (every suite follows them):
//   - benchmark names are "Workload/impl[/args]"; parkpool's implementations are named "parkpool"
//     or "parkpool_<variant>" (parkpool_rml: oneTBB on parkpool's RML server), everything else
//     (tbb, onetbb, std_pool, raw_futex, ...) is a baseline, except "floor_<name>": a reference
//     point (a bound no pool can beat on some figure), in the JSON and CSV, never the baseline;
//   - each suite accepts Google Benchmark's flags (--benchmark_filter, --benchmark_out, ...).
//
// Sizes: --quick (the default) is under 2 minutes on 2 cores; --full runs every case at its full
// size. Children learn the size from PARKPOOL_BENCH_SIZE (tiny | quick | full; pool_bench's figure
// families read it; --workers sets PARKPOOL_BENCH_WORKERS), PARKPOOL_HTTP_BENCH_SECONDS and
// PARKPOOL_HTTP_IDLE_SECONDS (http_bench; an explicit setting in the environment wins). --quick
// leaves out the workloads of kFullOnly (naming one in --workloads runs it anyway) and runs those
// of kQuickOnce once instead of --repetitions times; --list marks both.
//
// Figures: every case gives real_<unit> (the suite's time unit: ns, us or ms) and its user
// counters; cpu_<unit> only when the case is timed by CPU time (for a case timed by the wall
// clock it is the main thread's CPU alone, not comparable between a pool and oneTBB's arena).
// real_<unit> and cpu_<unit> are reserved: a suite's counter of such a name is an error (exit 2;
// support.hpp, is_reserved_figure_name). Counters named *_per_second are "higher is better";
// everything else "lower is better". A figure's value is the median of its samples, one per
// process, i.e. per repetition (min and max kept); the ratio is parkpool's median over the best
// baseline's. The table shows n, the samples behind each median: fewer than the repetitions for
// the cases run once, for a failed repetition, or for a percentile some repetitions left out
// (bench_stats.hpp, percentile_supported). A figure an implementation never gave is not shown for
// it: no row for a parkpool implementation, "-" in the baseline columns.
//
// Pictures (--plots DIR; PNG and SVG through gnuplot):
//   wake_latency_distribution  WakeLatencyDist: the wake-from-idle latency distribution of each
//                              implementation (percentile against latency, log scale)
//   sparse_load_tradeoff       SparseSweep: one ~2 us task every 5..200 us; CPU per task against
//                              start latency p50 (left) and p99 (right), a curve per implementation
//   fork_join_workers          Fib27Workers: fork-join fib(27) time against worker count
//   figures/<figure>           one bar chart per figure (median, min-max)
// Without gnuplot the table, JSON and CSV still come out, with one line saying why there are no
// pictures.
//
// Machine record (JSON "machine", and the lines under the table): CPU model, cores, kernel,
// compiler, library versions, load average at the start, and how busy the machine was during the
// run: the share of CPU time stolen by the hypervisor (steal_fraction_during_run) and the share
// used by processes other than this run's (other_processes_cpu_fraction_during_run: the user,
// nice and system time of /proc/stat less the CPU of parkpool-bench and its cases, from
// getrusage; interrupts and steal are not in it; support.hpp, run_load), both over all CPUs'
// time between the two stall probes; and a stall probe before the first
// case and after the last (JSON machine.stall_probe.start / .end): one thread per usable CPU spins
// on the clock for 0.05 s (tiny), 0.2 s (quick) or 0.5 s (full) and records every gap over 20 us
// between two of its reads, i.e. time it did not run: their share of the threads' time, the longest
// gap, the gaps over 1 ms, and the threads' involuntary context switches. Gaps with (almost) no
// context switches were not this kernel's scheduling but the vCPU not running (or a long
// interrupt). Why: some hypervisors (Firecracker here) report no steal at all, so /proc/stat said
// 0.0% while a spinning thread lost ~4% of its time, in gaps up to 4 ms (2026-12-05, 2-vCPU VM);
// a p99 over 25k tasks in 0.5 s moves with a single gap of a few ms.
// The gaps come with the load: in 5 s probes (2026-12-05, same VM) one spinning thread had 0-10
// gaps over 200 us (0-7 ms in all), one thread per vCPU 43-63 between them (37-81 ms of their
// 10 s, up to 9.6 ms each), with no regular period (not a CPU quota's throttling). A workload
// that keeps both vCPUs busy (SparseLoad's default preset: the submitter and a spinning worker)
// meets more of them.
//
// Output: --json is written first, then --csv and --markdown, then the pictures; a path that
// cannot be written is reported before the run when it can be seen then (a missing or unwritable
// directory; --plots DIR is created then), otherwise after it, and every other output is still
// written.
//
// Exit status (kExitStatus, also in --help): 0; 1 if a case failed (the others are still
// reported); 2 for an error: bad options, unknown workloads or implementations, no suites found,
// an output that could not be written, or a suite's counter named like one of Google Benchmark's
// own figures (real_<unit>, cpu_<unit>).
#include <fmt/core.h>
#include <fmt/ostream.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

#if defined(PARKPOOL_HAVE_TBB)
#include <oneapi/tbb/version.h>
#endif
#if defined(PARKPOOL_HAVE_BOOST)
#include <boost/version.hpp>
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The suites, in the order they run.
const std::vector<std::string> kSuites = {"parker_bench", "thread_parker_bench", "pool_bench",
                                          "idle_bench",   "parking_lot_bench",   "http_bench",
                                          "tbb_rml_bench"};

// Workloads --quick (and tiny) leave out unless --workloads names them: the first three give the
// same figures as a point of a sweep family that quick runs (WakeLatency: WakeLatencyDist's p50
// and p99; SparseLoad: SparseSweep/20; Fib27: Fib27Workers/2 and /8); the others take seconds
// per case (HttpIdle: quick's idle-CPU figure is pool_bench's IdleBurn); WakeTree8 has only
// reference points (floor_*: an experiment on raw futexes behind issue 3's notify_all figure);
// WakeLatencyPaired is a diagnostic (WakeLatency's pool and bare futex thread alternating in one
// process, 2 s per case).
const std::set<std::string> kFullOnly = {
    "WakeLatency", "WakeLatencyPaired", "SparseLoad",  "Fib27",    "HttpLoadMax",
    "HttpIdle",    "RmlSparseLoad",     "RmlIdleBurn", "RmlFib27", "WakeTree8"};

// Workloads that measure many iterations (or one long window) inside each repetition: --quick
// (and tiny) runs them once, unless --repetitions is given. The table shows it (n = 1) rather
// than running them --repetitions times, which would break --quick's budget (under 2 minutes on
// 2 cores; it is scripts/demo.sh's default run): on the 2-vCPU dev VM (2026-12-06) a --quick run
// took 83 s, 22 s of it these workloads once each, so three repetitions would make it ~127 s.
const std::set<std::string> kQuickOnce = {"ExternalPost",       "InjectorQueue",  "InternalSpawn",
                                          "IdleBurn",           "RmlWakeLatency", "TbbMigration",
                                          "RmlSparseLoad100us", "HttpLoad1k",     "HttpLoad10k"};

// The exit status, as --help prints it (the header comment says the same).
constexpr const char* kExitStatus =
    "Exit status: 0; 1 if a case failed (the others are still reported); 2 for an error: bad "
    "options, unknown workloads or implementations, no suites found, an output (--json, --csv, "
    "--markdown, --plots) that could not be written (the others are still written), or a "
    "suite's counter named like a figure made of Google Benchmark's own times (real_<unit>, "
    "cpu_<unit>).";
constexpr int kExitError = 2;

// A suite broke a convention the driver relies on (a reserved counter name): the run stops.
struct ConventionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string size = "quick";
  std::vector<std::string> workloads;
  std::vector<std::string> impls;
  std::vector<int> workers;
  int repetitions = 0;
  double min_time = 0;
  std::string json_file, csv_file, markdown_file, plots_dir, bench_dir;
  bool list = false;
};

struct Case {  // one (suite, workload, impl): one child process
  std::string suite, workload, impl;
};

// figure -> impl -> samples (one per repetition)
using Samples = std::map<std::string, std::map<std::string, std::vector<double>>>;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs argv, stdout to `out_path` (or /dev/null), stderr inherited unless `quiet`. Returns the
// exit status (-1 if it could not run).
int run(const std::vector<std::string>& argv, const std::string& out_path, bool quiet) {
  // Flush first: the child would otherwise write our buffered output again when it reopens stdout.
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    std::FILE* out = std::freopen(out_path.empty() ? "/dev/null" : out_path.c_str(), "w", stdout);
    if (out == nullptr) _exit(127);
    if (quiet && std::freopen("/dev/null", "w", stderr) == nullptr) _exit(127);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// gnuplot on the PATH (or /usr/bin/gnuplot), or nothing.
std::optional<fs::path> find_gnuplot() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string d; std::getline(ss, d, ':');) dirs.push_back(d.empty() ? "." : d);
  } else {
    dirs.push_back("/usr/bin");
  }
  for (const auto& d : dirs) {
    const fs::path p = fs::path(d) / "gnuplot";
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

bool is_parkpool(const std::string& impl) { return impl.rfind("parkpool", 0) == 0; }
// A reference point, not a competitor (e.g. http_bench's floor_inline: the server with no pool):
// kept in the JSON and CSV, never chosen as the best baseline.
bool is_reference(const std::string& impl) { return impl.rfind("floor_", 0) == 0; }
bool higher_is_better(const std::string& figure) {
  return figure.find("per_second") != std::string::npos;
}

std::vector<Case> list_cases(const fs::path& dir) {
  std::vector<Case> cases;
  std::set<std::pair<std::string, std::string>> seen;
  const fs::path tmp = fs::temp_directory_path() / fmt::format("parkpool-bench-list-{}", getpid());
  for (const auto& s : kSuites) {
    const fs::path exe = dir / s;
    if (!fs::exists(exe)) continue;
    if (run({exe.string(), "--benchmark_list_tests=true"}, tmp.string(), true) != 0) continue;
    std::istringstream in(read_file(tmp));
    for (std::string line; std::getline(in, line);) {
      const auto a = line.find('/');
      if (a == std::string::npos) continue;  // not "Workload/impl": not part of the comparison
      const auto b = line.find('/', a + 1);
      std::string workload = line.substr(0, a);
      std::string impl = line.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
      if (seen.insert({workload, impl}).second) cases.push_back({s, workload, impl});
    }
  }
  fs::remove(tmp);
  return cases;
}

// "Workload/impl/5/iterations:1/real_time" -> "/5": the arguments, without Google Benchmark's
// settings (iterations:, repeats:, min_time:, real_time, manual_time, process_time).
std::string figure_args(const std::string& name) {
  std::string rest;
  std::size_t pos = name.find('/');
  if (pos == std::string::npos) return rest;
  pos = name.find('/', pos + 1);
  while (pos != std::string::npos) {
    const std::size_t next = name.find('/', pos + 1);
    const std::string part =
        name.substr(pos + 1, next == std::string::npos ? next : next - pos - 1);
    const bool setting = part == "real_time" || part == "manual_time" || part == "process_time" ||
                         part.rfind("iterations:", 0) == 0 || part.rfind("repeats:", 0) == 0 ||
                         part.rfind("min_time:", 0) == 0 || part.rfind("min_warmup_time:", 0) == 0;
    if (!setting) rest += "/" + part;
    pos = next;
  }
  return rest;
}

// Google Benchmark writes NaN and Inf as bare words (e.g. the coefficient of variation of a counter
// that is 0 in every repetition), which JSON does not allow: they become null (and are skipped).
std::string json_numbers(const std::string& text) {
  static const std::regex kNonFinite(R"(:\s*-?(nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)\b)");
  return std::regex_replace(text, kNonFinite, ": null");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// CPU time of the whole machine (/proc/stat) and of this run's own processes, for the "was the
// machine busy" record (support.hpp, run_load, says what it makes of them).
struct CpuSnapshot {
  parkpool_bench::CpuTicks machine;  // clock ticks, summed over all CPUs
  double own_s = 0;  // CPU seconds of parkpool-bench and of its waited-for children (the cases)
};
CpuSnapshot cpu_snapshot() {
  CpuSnapshot s;
  std::ifstream in("/proc/stat");
  s.machine = parkpool_bench::parse_proc_stat(in).value_or(parkpool_bench::CpuTicks{});
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage ru{};
    if (getrusage(who, &ru) == 0) {
      s.own_s += static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    }
  }
  return s;
}

// The stall probe (see the header comment). Each thread keeps its own gaps: no sharing while it
// spins. The threads start together (a spin barrier) so that the probe covers every CPU at once.
json stall_probe(double seconds) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  const auto n = static_cast<std::size_t>(std::max(1, cpus));
  constexpr std::int64_t kGapNs = 20'000;
  struct PerThread {
    std::int64_t lost_ns = 0, elapsed_ns = 0, longest_ns = 0, over_1ms = 0, gaps = 0;
    long involuntary = 0;
  };
  std::vector<PerThread> r(n);
  std::atomic<std::size_t> ready{0};  // relaxed: a start line, no data passes through it
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  auto body = [&](PerThread& me) {
    ready.fetch_add(1, std::memory_order_relaxed);
    while (ready.load(std::memory_order_relaxed) < n) {
    }
    rusage u0{}, u1{};
    getrusage(RUSAGE_THREAD, &u0);
    std::int64_t last = now_ns();
    const std::int64_t first = last;
    const std::int64_t end = last + static_cast<std::int64_t>(seconds * 1e9);
    while (last < end) {
      const std::int64_t t = now_ns();
      if (t - last > kGapNs) {
        me.lost_ns += t - last;
        me.longest_ns = std::max(me.longest_ns, t - last);
        me.over_1ms += t - last > 1'000'000 ? 1 : 0;
        ++me.gaps;
      }
      last = t;
    }
    getrusage(RUSAGE_THREAD, &u1);
    me.involuntary = u1.ru_nivcsw - u0.ru_nivcsw;
    me.elapsed_ns = last - first;  // >= lost_ns: the share below is at most 1, however late
  };
  {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i) threads.emplace_back(body, std::ref(r[i]));
    for (std::thread& t : threads) t.join();
  }
  PerThread sum;
  for (const PerThread& p : r) {
    sum.lost_ns += p.lost_ns;
    sum.elapsed_ns += p.elapsed_ns;
    sum.longest_ns = std::max(sum.longest_ns, p.longest_ns);
    sum.over_1ms += p.over_1ms;
    sum.gaps += p.gaps;
    sum.involuntary += p.involuntary;
  }
  return {{"threads", n},
          {"seconds", seconds},
          {"lost_fraction", sum.elapsed_ns > 0 ? static_cast<double>(sum.lost_ns) /
                                                     static_cast<double>(sum.elapsed_ns)
                                               : 0.0},
          {"gaps_over_20us", sum.gaps},
          {"longest_gap_ms", static_cast<double>(sum.longest_ns) * 1e-6},
          {"gaps_over_1ms", sum.over_1ms},
          {"involuntary_switches", sum.involuntary}};
}

json machine_info() {
  json m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      m["cpu"] = line.substr(line.find(':') + 2);
      break;
    }
  }
  m["cores"] = std::thread::hardware_concurrency();
  utsname u{};
  if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release;
  m["compiler"] = PARKPOOL_CXX_COMPILER;
  json lib;
  lib["parkpool"] = PARKPOOL_VERSION_STRING;
#if defined(PARKPOOL_HAVE_TBB)
  lib["onetbb"] = TBB_VERSION_STRING;
#endif
#if defined(PARKPOOL_HAVE_BOOST)
  lib["boost"] = BOOST_LIB_VERSION;
#endif
  lib["google_benchmark"] = PARKPOOL_BENCHMARK_VERSION;
  lib["fmt"] =
      fmt::format("{}.{}.{}", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  lib["cli11"] = CLI11_VERSION;
  lib["nlohmann_json"] = fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR,
                                     NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH);
  m["libraries"] = lib;
  double load[3] = {};
  if (getloadavg(load, 3) > 0) m["loadavg_1min_at_start"] = load[0];
  return m;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// The progress bar on stderr: which case runs, how many are done, the time so far. One line per
// case when stderr is not a terminal (a log, ctest), where carriage returns would pile up.
void progress(std::size_t done, std::size_t total, const Case& c, double elapsed_s) {
  static const bool tty = isatty(STDERR_FILENO) != 0;
  if (!tty) {
    fmt::print(stderr, "parkpool-bench: {}/{} {:.0f}s {}/{} ({})\n", done + 1, total, elapsed_s,
               c.workload, c.impl, c.suite);
    return;
  }
  const int width = 30;
  const int filled = total == 0 ? width : static_cast<int>(done * width / total);
  fmt::print(stderr, "\r[{:<{}}] {}/{} {:>4.0f}s  {}/{} ({}){:20}",
             std::string(static_cast<std::size_t>(filled), '#'), width, done, total, elapsed_s,
             c.workload, c.impl, c.suite, "");
}

// ---- pictures ----

std::string file_stem(const std::string& figure) {
  std::string stem = figure;
  std::replace_if(
      stem.begin(), stem.end(),
      [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return stem;
}

// Writes `body` (plot commands that use the terminal set before them) once per format.
void gnuplot_both(std::ostream& gp, const fs::path& stem, const std::string& size,
                  const std::string& body) {
  for (const char* ext : {"png", "svg"}) {
    const std::string term = std::string(ext) == "png" ? "pngcairo" : "svg";
    gp << "set terminal " << term << " noenhanced size " << size << " font 'sans,10'\n"
       << "set output '" << stem.string() << "." << ext << "'\n"
       << body << "unset output\nreset\n";
  }
}

// The data files of the pictures (path, contents), written after the script is made.
using PlotFiles = std::vector<std::pair<fs::path, std::string>>;

std::string impl_color(const std::string& impl, std::size_t i) {
  // parkpool in blues, baselines in warm greys and oranges: the eye finds parkpool first.
  static const char* kParkpool[] = {"#1f5fbf", "#4aa3df", "#0b3d91", "#7fb2e5"};
  static const char* kOther[] = {"#d95f02", "#7f7f7f", "#a6761d", "#e7298a", "#1b9e77"};
  return is_parkpool(impl) ? kParkpool[i % 4] : kOther[i % 5];
}

struct Stat {
  double med, lo, hi;
};
std::optional<Stat> stat_of(const Samples& s, const std::string& figure, const std::string& impl) {
  const auto f = s.find(figure);
  if (f == s.end()) return std::nullopt;
  const auto i = f->second.find(impl);
  if (i == f->second.end() || i->second.empty()) return std::nullopt;
  const auto& v = i->second;
  return Stat{median(v), *std::min_element(v.begin(), v.end()),
              *std::max_element(v.begin(), v.end())};
}

// The implementations that have figures of `workload`, parkpool's first.
std::vector<std::string> impls_of(const Samples& s, const std::string& workload) {
  std::set<std::string> found;
  for (const auto& [fig, impls] : s) {
    if (fig.rfind(workload + " ", 0) == 0 || fig.rfind(workload + "/", 0) == 0) {
      for (const auto& [impl, v] : impls) found.insert(impl);
    }
  }
  std::vector<std::string> out(found.begin(), found.end());
  std::stable_partition(out.begin(), out.end(), is_parkpool);
  return out;
}

// The arguments N of the "<workload>/N <counter>..." figures whose counter starts with
// `counter_prefix`, sorted, once each (the sweep's gaps, the fork-join worker counts).
std::vector<int> int_args_of(const Samples& s, const std::string& workload,
                             const std::string& counter_prefix) {
  std::set<int> found;
  const std::string head = workload + "/";
  for (const auto& [fig, v] : s) {
    if (fig.rfind(head, 0) != 0) continue;
    std::size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(fig.substr(head.size()), &used);
    } catch (const std::exception&) {
      continue;  // not a numeric argument
    }
    const std::size_t after = head.size() + used;
    if (fig.compare(after, 1, " ") == 0 &&
        fig.compare(after + 1, counter_prefix.size(), counter_prefix) == 0) {
      found.insert(n);
    }
  }
  return {found.begin(), found.end()};
}

// WakeLatencyDist: percentile (y) against latency (x, log), one line per implementation.
bool plot_wake_distribution(const Samples& s, const fs::path& dir, std::ostream& gp,
                            PlotFiles& files) {
  static const std::pair<const char*, double> kPct[] = {
      {"p01_us", 1},  {"p05_us", 5},  {"p10_us", 10}, {"p25_us", 25}, {"p50_us", 50},
      {"p75_us", 75}, {"p90_us", 90}, {"p95_us", 95}, {"p99_us", 99}, {"p999_us", 99.9}};
  const auto impls = impls_of(s, "WakeLatencyDist");
  if (impls.empty()) return false;
  const fs::path dat = dir / "wake_latency_distribution.dat";
  std::ostringstream out;
  std::string plot = "plot ";
  std::size_t block = 0;
  for (const auto& impl : impls) {
    out << "# " << impl << "\n";
    for (const auto& [name, pct] : kPct) {
      if (auto st = stat_of(s, std::string("WakeLatencyDist ") + name, impl)) {
        out << st->med << ' ' << pct << '\n';
      }
    }
    out << "\n\n";
    plot += fmt::format(
        "{}'{}' index {} using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '{}' "
        "title '{}'",
        block == 0 ? "" : ", ", dat.string(), block, impl_color(impl, block), impl);
    ++block;
  }
  const std::string body =
      "set title 'Wake from idle: time from post() to the task starting (pool idle 5 ms, 2 "
      "workers)'\n"
      "set xlabel 'wake latency (us, log scale)'\nset ylabel 'percentile of wakeups (%)'\n"
      "set logscale x\nset yrange [0:100]\nset ytics 10\nset grid\n"
      "set key bottom right opaque box\n" +
      plot + "\n";
  files.emplace_back(dat, out.str());
  gnuplot_both(gp, dir / "wake_latency_distribution", "900,540", body);
  return true;
}

// SparseSweep: CPU per task (y) against start latency p50 (left) and p99 (right), x log.
bool plot_sparse_tradeoff(const Samples& s, const fs::path& dir, std::ostream& gp,
                          PlotFiles& files) {
  const auto impls = impls_of(s, "SparseSweep");
  if (impls.empty()) return false;
  const std::vector<int> gaps = int_args_of(s, "SparseSweep", "cpu_us_per_task");
  const fs::path dat = dir / "sparse_load_tradeoff.dat";
  std::ostringstream out;
  out << "# gap_us cpu_us_per_task p50_us p99_us\n";
  for (const auto& impl : impls) {
    out << "# " << impl << "\n";
    for (int gap : gaps) {
      const std::string f = fmt::format("SparseSweep/{} ", gap);
      auto cpu = stat_of(s, f + "cpu_us_per_task", impl);
      auto p50 = stat_of(s, f + "p50_us", impl);
      auto p99 = stat_of(s, f + "p99_us", impl);
      if (cpu && p50 && p99)
        out << gap << ' ' << cpu->med << ' ' << p50->med << ' ' << p99->med << '\n';
    }
    out << "\n\n";
  }
  auto panel = [&](int col, const char* what) {
    std::string p = fmt::format(
        "set title 'start latency {} vs CPU per task'\nset xlabel 'start latency {} (us, log "
        "scale)'\nset ylabel 'CPU per task (us, all threads but the submitter)'\n",
        what, what);
    p += "plot ";
    for (std::size_t i = 0; i < impls.size(); ++i) {
      p += fmt::format(
          "{}'{}' index {} using {}:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '{}' title '{}', "
          "'' index {} using {}:2:(sprintf('%d', $1)) with labels offset 0.6,0.6 font ',8' "
          "tc rgb '{}' notitle",
          i == 0 ? "" : ", ", dat.string(), i, col, impl_color(impls[i], i), impls[i], i, col,
          impl_color(impls[i], i));
    }
    return p + "\n";
  };
  const std::string body =
      "set multiplot layout 1,2 title 'Sparse load: one ~2 us task every N us (labels: N), 2 "
      "workers. Lower left is better.'\n"
      "set logscale x\nset grid\nset key below\nset yrange [0:*]\n" +
      panel(3, "p50") + panel(4, "p99") + "unset multiplot\n";
  files.emplace_back(dat, out.str());
  gnuplot_both(gp, dir / "sparse_load_tradeoff", "1200,620", body);
  return true;
}

// Fib27Workers: time (y) against worker count (x), a line per implementation, min-max bars.
bool plot_fork_join(const Samples& s, const fs::path& dir, std::ostream& gp, PlotFiles& files) {
  const auto impls = impls_of(s, "Fib27Workers");
  if (impls.empty()) return false;
  const std::vector<int> workers = int_args_of(s, "Fib27Workers", "real_");
  if (workers.empty()) return false;
  // The time unit of the suite ("real_ms"): from the first worker count's figure.
  std::string unit;
  const std::string first = fmt::format("Fib27Workers/{} real_", workers.front());
  for (const auto& [fig, v] : s) {
    if (fig.rfind(first, 0) == 0) unit = fig.substr(first.size());
  }
  const fs::path dat = dir / "fork_join_workers.dat";
  std::ostringstream out;
  out << "# workers median min max\n";
  for (const auto& impl : impls) {
    out << "# " << impl << "\n";
    for (int n : workers) {
      if (auto st = stat_of(s, fmt::format("Fib27Workers/{} real_{}", n, unit), impl)) {
        out << n << ' ' << st->med << ' ' << st->lo << ' ' << st->hi << '\n';
      }
    }
    out << "\n\n";
  }
  std::string plot = "plot ";
  for (std::size_t i = 0; i < impls.size(); ++i) {
    // The bars first, so the line and its points are drawn over them.
    plot += fmt::format(
        "{}'{}' index {} using 1:2:3:4 with yerrorbars lc rgb '{}' pt 0 notitle, "
        "'{}' index {} using 1:2 with linespoints lw 2 pt 7 lc rgb '{}' title '{}'",
        i == 0 ? "" : ", ", dat.string(), i, impl_color(impls[i], i), dat.string(), i,
        impl_color(impls[i], i), impls[i]);
  }
  const std::string body =
      fmt::format(
          "set title 'Fork-join fib(27), a spawn at every call, on {} cores (median, "
          "min-max)'\nset xlabel 'workers'\nset ylabel 'time ({})'\nset xtics 1\n"
          "set yrange [0:*]\nset grid\nset key outside right top\n",
          std::thread::hardware_concurrency(), unit) +
      plot + "\n";
  files.emplace_back(dat, out.str());
  gnuplot_both(gp, dir / "fork_join_workers", "900,540", body);
  return true;
}

// One bar chart per figure (median, min-max), into dir/figures.
void plot_figures(const Samples& samples, const fs::path& dir, std::ostream& gp, PlotFiles& files) {
  const fs::path figdir = dir / "figures";
  for (const auto& [figure, impls] : samples) {
    const std::string stem = file_stem(figure);
    const fs::path dat = figdir / (stem + ".dat");
    {
      std::ostringstream out;
      int i = 0;
      for (const auto& [impl, v] : impls) {
        out << i++ << ' ' << '"' << impl << '"' << ' ' << median(v) << ' '
            << *std::min_element(v.begin(), v.end()) << ' ' << *std::max_element(v.begin(), v.end())
            << ' ' << (is_parkpool(impl) ? 0x1f5fbf : 0x999999) << '\n';  // parkpool in blue
      }
      files.emplace_back(dat, out.str());
    }
    const std::string body =
        "set title '" + figure +
        " (median, min-max)'\nset style fill solid 0.6\nset boxwidth 0.6\nset yrange [0:*]\n"
        "set xtics rotate by -30\nunset key\nset ylabel '" +
        figure.substr(figure.rfind(' ') + 1) + "'\nplot '" + dat.string() +
        "' using 1:3:6:xtic(2) with boxes lc rgb variable, '' using 1:3:4:5 with yerrorbars lc "
        "rgb 'black' pt 0\n";
    gnuplot_both(gp, figdir / stem, "800,480", body);
  }
}

// The output files: each is written whole and checked after it is closed; what could not be
// written is kept in `errors` (the run then exits with kExitError), and the others are still
// written.
struct Outputs {
  std::vector<std::string> errors;

  void fail(const std::string& what, const fs::path& path, int err) {
    errors.push_back(fmt::format("could not write {} {}: {}", what, path.string(),
                                 err != 0 ? std::strerror(err) : "write error"));
  }
  bool write(const std::string& what, const fs::path& path, const std::string& text) {
    errno = 0;
    std::ofstream f(path, std::ios::binary);
    if (f) f << text;
    if (f.is_open()) f.close();  // flushes: a full disk shows here
    if (f.fail()) {
      fail(what, path, errno);
      return false;
    }
    return true;
  }
  bool make_directory(const std::string& what, const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!ec && !fs::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
    if (ec) {
      errors.push_back(fmt::format("could not create {} {}: {}", what, dir.string(), ec.message()));
      return false;
    }
    return true;
  }
};

// The pictures, made in memory first (so that the JSON, written before them, can list them):
// one gnuplot script and its data files.
struct Plots {
  fs::path dir, script;
  std::string script_text;
  PlotFiles files;
  std::vector<std::string> written, missing;  // the main pictures drawn / not (no workload)
};
Plots make_plots(const Samples& samples, const fs::path& dir) {
  Plots p;
  p.dir = dir;
  p.script = dir / "plots.gp";
  std::ostringstream gp;
  (plot_wake_distribution(samples, dir, gp, p.files) ? p.written : p.missing)
      .push_back("wake_latency_distribution");
  (plot_sparse_tradeoff(samples, dir, gp, p.files) ? p.written : p.missing)
      .push_back("sparse_load_tradeoff");
  (plot_fork_join(samples, dir, gp, p.files) ? p.written : p.missing)
      .push_back("fork_join_workers");
  plot_figures(samples, dir, gp, p.files);
  p.script_text = gp.str();
  return p;
}

// Writes the script and data files and runs gnuplot on them once. gnuplot failing is an output
// error too: some pictures are then missing.
void write_plots(const Plots& p, const fs::path& gnuplot, Outputs& outputs) {
  bool ok = outputs.make_directory("the --plots directory", p.dir) &&
            outputs.make_directory("the --plots directory", p.dir / "figures");
  if (ok) {
    for (const auto& [path, text] : p.files)
      ok = outputs.write("the picture data", path, text) && ok;
    ok = outputs.write("the gnuplot script", p.script, p.script_text) && ok;
  }
  if (!ok) return;  // gnuplot would only stumble over what is missing
  // Quiet: gnuplot warns about every all-zero figure (e.g. errors = 0) on stderr.
  if (const int rc = run({gnuplot.string(), p.script.string()}, "", true); rc != 0) {
    outputs.errors.push_back(
        fmt::format("gnuplot exited with {} on {}: some pictures are missing (run it again to "
                    "see why)",
                    rc, p.script.string()));
  }
  for (const auto& m : p.missing) {
    fmt::print("no {} picture: its workload was not run\n", m);
  }
}

// Adds the repetitions of one case (Google Benchmark's JSON output) to `samples`; a repetition that
// reports an error counts as a failure. Throws json::exception on malformed output, and
// ConventionError for a counter with a name reserved for Google Benchmark's own times (support.hpp,
// is_reserved_figure_name): it would share a figure with them.
void read_results(const json& j, const Case& c, Samples& samples, int& failures) {
  static const std::set<std::string> kStd = {"name",
                                             "family_index",
                                             "per_family_instance_index",
                                             "run_name",
                                             "run_type",
                                             "repetitions",
                                             "repetition_index",
                                             "threads",
                                             "iterations",
                                             "real_time",
                                             "cpu_time",
                                             "time_unit",
                                             "aggregate_name",
                                             "aggregate_unit",
                                             "label",
                                             "error_occurred",
                                             "error_message"};
  for (const auto& b : j.at("benchmarks")) {
    if (b.value("run_type", "") != "iteration") continue;  // our own medians, not its aggregates
    if (b.value("error_occurred", false)) {
      fmt::print(stderr, "\nparkpool-bench: {} {}: {}\n", c.suite, b.value("name", ""),
                 b.value("error_message", "error"));
      ++failures;
      continue;
    }
    const std::string name = b.value("run_name", b.value("name", ""));
    const std::string fig = c.workload + figure_args(name);
    const std::string unit = b.value("time_unit", "ns");
    // Timed by the wall clock (UseRealTime, UseManualTime): cpu_time is then the CPU of the
    // benchmark's main thread alone, which waits while other threads work; it would compare
    // oneTBB's arena.execute (the main thread works) with a pool's submit (it sleeps). Left out.
    const bool wall_timed = name.find("/real_time") != std::string::npos ||
                            name.find("/manual_time") != std::string::npos;
    for (const auto& [k, v] : b.items()) {
      if (!kStd.count(k) && parkpool_bench::is_reserved_figure_name(k)) {
        throw ConventionError(fmt::format(
            "{} benchmark {} has a counter named '{}', the name parkpool-bench gives Google "
            "Benchmark's own {} time (real_<unit> and cpu_<unit> are reserved): its figure "
            "would mix two quantities; rename the counter",
            c.suite, name, k, k.rfind("cpu_", 0) == 0 ? "CPU" : "wall-clock"));
      }
      if (!v.is_number() || (wall_timed && k == "cpu_time")) continue;
      if (k == "real_time" || k == "cpu_time") {
        samples[fig + " " + k.substr(0, k.find('_')) + "_" + unit][c.impl].push_back(
            v.get<double>());
      } else if (!kStd.count(k)) {
        samples[fig + " " + k][c.impl].push_back(v.get<double>());
      }
    }
  }
}

// Why `path` cannot be written as an output file, as far as can be seen before the run: it is a
// directory, or its directory is missing or not writable. Nothing if it looks writable; writing
// may still fail (a full disk), which Outputs reports after the run.
std::optional<std::string> output_file_problem(const fs::path& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::is_directory(st)) return "it is a directory";
  if (fs::exists(st)) {
    if (access(path.c_str(), W_OK) != 0) return std::strerror(errno);
    return std::nullopt;
  }
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const fs::file_status dst = fs::status(dir, ec);
  if (!fs::exists(dst)) return fmt::format("there is no directory {}", dir.string());
  if (!fs::is_directory(dst)) return fmt::format("{} is not a directory", dir.string());
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return fmt::format("{}: {}", dir.string(), std::strerror(errno));
  }
  return std::nullopt;
}

int bench_main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "parkpool-bench: parkpool against oneTBB and the std baselines, on this machine.\n"
      "Runs every workload of bench/'s suites, one fresh process per workload,\n"
      "implementation and repetition, and prints the median of each figure with\n"
      "the ratio of parkpool to the best baseline (ratio < 1: parkpool is better;\n"
      "for *_per_second figures, > 1). Pictures: wake-from-idle latency\n"
      "distribution, sparse-load CPU/latency trade-off, fork-join time against\n"
      "workers, and a bar chart per figure."};
  app.footer(kExitStatus);
  bool quick = false, full = false;
  auto* quick_opt =
      app.add_flag("--quick", quick,
                   "short run, the default: under 2 minutes on 2 cores; leaves out the slow "
                   "workloads and those a sweep already covers (see --list)");
  auto* full_opt = app.add_flag("--full", full,
                                "every workload at full size: all sweep points, workers 1..8, "
                                "more repetitions (several minutes)");
  auto* size_opt = app.add_option("--size", o.size,
                                  "tiny | quick | full (--quick and --full set it; tiny is for "
                                  "the smoke test)")
                       ->check(CLI::IsMember({"tiny", "quick", "full"}));
  quick_opt->excludes(full_opt)->excludes(size_opt);
  full_opt->excludes(size_opt);
  app.add_option("--workloads", o.workloads, "workloads to run, comma-separated (default: all)")
      ->delimiter(',');
  app.add_option("--impls", o.impls, "implementations to run, comma-separated (default: all)")
      ->delimiter(',');
  app.add_option("--workers", o.workers,
                 "worker counts of the fork-join sweep Fib27Workers, comma-separated (default: "
                 "1,2,4,8; --full 1..8)")
      ->delimiter(',')
      ->check(CLI::Range(1, 8));
  app.add_option(
         "--repetitions", o.repetitions,
         "repetitions per case (default 3, --full 5; --quick runs the long cases that --list marks "
         "once)")
      ->check(CLI::Range(1, 100));
  app.add_option("--min-time", o.min_time,
                 "seconds per measurement of the micro benchmarks (default 0.05, --full 0.5)")
      ->check(CLI::Range(0.0001, 60.0));
  app.add_option("--json", o.json_file,
                 "write the machine, the settings and every figure (median, min, max, samples) "
                 "as JSON");
  app.add_option("--csv", o.csv_file, "write the table (every implementation) as CSV");
  app.add_option("--markdown", o.markdown_file, "write the table as Markdown (for the README)");
  app.add_option("--plots", o.plots_dir,
                 "write the pictures (PNG and SVG, gnuplot) into this directory; one bar chart "
                 "per figure into DIR/figures");
  app.add_option("--bench-dir", o.bench_dir, "where the benchmark suites are")
      ->default_val(PARKPOOL_BENCH_DIR);
  app.add_flag("--list", o.list, "list the workloads and implementations, then exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "parkpool-bench: {}\nRun with --help for the options.\n", e.what());
    return 2;
  }
  if (full) o.size = "full";
  if (quick) o.size = "quick";
  const bool is_full = o.size == "full";
  const bool repetitions_given = o.repetitions != 0;
  if (o.repetitions == 0) o.repetitions = is_full ? 5 : 3;
  if (o.min_time == 0) o.min_time = is_full ? 0.5 : 0.05;

  // The size hints the suites read (an explicit setting in the environment wins).
  setenv("PARKPOOL_BENCH_SIZE", o.size.c_str(), 1);
  if (!o.workers.empty()) {
    std::string w;
    for (int n : o.workers) w += (w.empty() ? "" : ",") + std::to_string(n);
    setenv("PARKPOOL_BENCH_WORKERS", w.c_str(), 1);
  }
  const char* http_s = o.size == "tiny" ? "0.05" : o.size == "quick" ? "0.3" : "1";
  const char* idle_s = o.size == "tiny" ? "0.1" : o.size == "quick" ? "0.5" : "10";
  setenv("PARKPOOL_HTTP_BENCH_SECONDS", http_s, 0);
  setenv("PARKPOOL_HTTP_IDLE_SECONDS", idle_s, 0);

  std::vector<Case> cases = list_cases(o.bench_dir);
  if (cases.empty()) {
    fmt::print(stderr, "parkpool-bench: no benchmark suites found in {}\n", o.bench_dir);
    return 2;
  }
  std::set<std::string> known_w, known_i;
  for (const auto& c : cases) {
    known_w.insert(c.workload);
    known_i.insert(c.impl);
  }
  if (o.list) {
    for (const auto& c : cases) {
      fmt::print("{:24} {:26} {:20}{}\n", c.workload, c.impl, "(" + c.suite + ")",
                 kFullOnly.count(c.workload)    ? " --full only"
                 : kQuickOnce.count(c.workload) ? " once in --quick"
                                                : "");
    }
    return 0;
  }
  for (const auto& w : o.workloads) {
    if (!known_w.count(w)) {
      fmt::print(stderr, "parkpool-bench: unknown workload '{}' (--list shows them)\n", w);
      return 2;
    }
  }
  for (const auto& i : o.impls) {
    if (!known_i.count(i)) {
      fmt::print(stderr, "parkpool-bench: unknown implementation '{}' (--list shows them)\n", i);
      return 2;
    }
  }
  auto named = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::erase_if(cases, [&](const Case& c) {
    if (!o.workloads.empty()) {
      if (!named(o.workloads, c.workload)) return true;
    } else if (!is_full && kFullOnly.count(c.workload)) {
      return true;
    }
    return !o.impls.empty() && !named(o.impls, c.impl);
  });
  if (cases.empty()) {
    fmt::print(stderr, "parkpool-bench: no case matches these workloads and implementations\n");
    return 2;
  }
  // The outputs, before the run (which takes minutes): a path that cannot be written is an error
  // now, not after it. --plots DIR is created now.
  {
    std::vector<std::string> problems;
    for (const auto& [option, path] :
         {std::pair{"--json", &o.json_file}, std::pair{"--csv", &o.csv_file},
          std::pair{"--markdown", &o.markdown_file}}) {
      if (path->empty()) continue;
      if (const auto why = output_file_problem(*path)) {
        problems.push_back(fmt::format("cannot write {} {}: {}", option, *path, *why));
      }
    }
    if (!o.plots_dir.empty()) {
      Outputs plots_dir;
      if (!plots_dir.make_directory("the --plots directory", o.plots_dir)) {
        problems.insert(problems.end(), plots_dir.errors.begin(), plots_dir.errors.end());
      } else if (access(o.plots_dir.c_str(), W_OK | X_OK) != 0) {
        problems.push_back(
            fmt::format("cannot write into --plots {}: {}", o.plots_dir, std::strerror(errno)));
      }
    }
    for (const auto& p : problems) fmt::print(stderr, "parkpool-bench: {}\n", p);
    if (!problems.empty()) {
      fmt::print(stderr, "parkpool-bench: nothing was run\n");
      return kExitError;
    }
  }

  json results = json::object();
  results["date"] = utc_now();
  results["machine"] = machine_info();
  results["settings"] = {
      {"size", o.size},
      {"repetitions", o.repetitions},
      {"min_time_s", o.min_time},
      {"PARKPOOL_HTTP_BENCH_SECONDS", std::getenv("PARKPOOL_HTTP_BENCH_SECONDS")},
      {"PARKPOOL_HTTP_IDLE_SECONDS", std::getenv("PARKPOOL_HTTP_IDLE_SECONDS")}};
  const double probe_s = o.size == "tiny" ? 0.05 : o.size == "quick" ? 0.2 : 0.5;
  results["machine"]["stall_probe"]["start"] = stall_probe(probe_s);
  const CpuSnapshot cpu0 = cpu_snapshot();
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  Samples samples;
  json case_log = json::array();
  const fs::path out = fs::temp_directory_path() / fmt::format("parkpool-bench-{}.json", getpid());
  // Repetitions: one fresh process each (--benchmark_repetitions=1), in rounds: round r runs
  // repetition r of every case before any case's repetition r + 1. Why:
  //   - on this kind of machine a process's timings are often bimodal (its threads land well or
  //     badly on the vCPUs for its whole life), so repetitions inside one process are not
  //     independent samples; fresh processes are;
  //   - rounds spread slow drift of the machine over every implementation alike, so the ratio of
  //     medians compares like with like;
  //   - Google Benchmark 1.7.1 (Debian 12) crashes in its statistics when the first of several
  //     in-process repetitions ends with SkipWithError (google/benchmark#1406); one repetition per
  //     process never computes those statistics, so a failed repetition is reported as a failure
  //     instead of a segfault.
  auto reps_of = [&](const Case& c) {
    return !is_full && !repetitions_given && kQuickOnce.count(c.workload) ? 1 : o.repetitions;
  };
  std::size_t total = 0;
  int rounds = 0;
  for (const auto& c : cases) {
    total += static_cast<std::size_t>(reps_of(c));
    rounds = std::max(rounds, reps_of(c));
  }
  std::size_t done = 0;
  int failures = 0;
  for (int round = 0; round < rounds; ++round) {
    for (const auto& c : cases) {
      if (round >= reps_of(c)) continue;
      progress(done, total, c, elapsed());
      const double c0 = elapsed();
      // A fresh process per case and repetition: one implementation's threads and caches never
      // disturb the next. tbb_rml_bench sees "parkpool_rml" in this filter and re-executes itself
      // on parkpool's RML server; the other suites run as they are.
      const std::vector<std::string> argv_child = {
          (fs::path(o.bench_dir) / c.suite).string(),
          "--benchmark_filter=^" + c.workload + "/" + c.impl + "(/|$)",
          fmt::format("--benchmark_min_time={}", o.min_time),
          "--benchmark_repetitions=1",
          "--benchmark_out=" + out.string(),
          "--benchmark_out_format=json"};
      fs::remove(out);
      const int rc = run(argv_child, "", true);
      ++done;
      case_log.push_back({{"suite", c.suite},
                          {"workload", c.workload},
                          {"impl", c.impl},
                          {"repetition", round},
                          {"exit", rc},
                          {"seconds", elapsed() - c0}});
      if (rc != 0) {
        fmt::print(stderr, "\nparkpool-bench: {} {}/{} (repetition {}) exited with {}\n", c.suite,
                   c.workload, c.impl, round + 1, rc);
        ++failures;
        continue;
      }
      try {
        read_results(json::parse(json_numbers(read_file(out))), c, samples, failures);
      } catch (const ConventionError& e) {
        std::error_code ec;
        fs::remove(out, ec);
        if (isatty(STDERR_FILENO) != 0) fmt::print(stderr, "\n");
        fmt::print(stderr, "parkpool-bench: {}; the run stops here, nothing is written\n",
                   e.what());
        return kExitError;
      } catch (const json::exception& e) {
        fmt::print(stderr, "\nparkpool-bench: bad JSON from {}: {}\n", c.suite, e.what());
        ++failures;
      }
    }
  }
  {
    std::error_code ec;
    fs::remove(out, ec);
  }
  if (isatty(STDERR_FILENO) != 0) fmt::print(stderr, "\r{:120}\r", "");

  const CpuSnapshot cpu1 = cpu_snapshot();
  const double wall = elapsed();
  results["machine"]["stall_probe"]["end"] = stall_probe(probe_s);
  const parkpool_bench::RunLoad load =
      parkpool_bench::run_load(cpu0.machine, cpu1.machine,
                               static_cast<double>(sysconf(_SC_CLK_TCK)), cpu1.own_s - cpu0.own_s);
  const double steal = load.steal_fraction;
  const double others = load.other_processes_fraction;
  results["machine"]["steal_fraction_during_run"] = steal;
  results["machine"]["other_processes_cpu_fraction_during_run"] = others;
  results["seconds"] = wall;
  results["cases"] = case_log;

  // The table: every parkpool implementation of every figure against the best baseline, with n,
  // the samples behind each median (one per process: see kQuickOnce for the cases run once).
  // Printed now; the CSV and Markdown are made in memory and written after the JSON.
  // md_targets: issue 5's targets, which the Markdown file puts first (the README shows them
  // unfolded, above the table of every figure).
  std::ostringstream csv, md, md_targets;
  csv << "figure,impl,median,min,max,ratio_to_best_baseline,best_baseline,samples\n";
  md << "| figure | parkpool impl | parkpool | n | best baseline | baseline | n | ratio |\n"
     << "|---|---|---:|---:|---|---:|---:|---:|\n";
  fmt::print("{:<44} {:<22} {:>12} {:>3} {:>22} {:>12} {:>3} {:>9}\n", "figure", "parkpool impl",
             "parkpool", "n", "best baseline", "baseline", "n", "ratio");
  json figures = json::object();
  for (const auto& [fig, impls] : samples) {
    std::string best_name;
    double best = 0;
    std::size_t best_n = 0;
    const bool hib = higher_is_better(fig);
    for (const auto& [impl, v] : impls) {
      const double m = median(v);
      figures[fig][impl] = {{"median", m},
                            {"min", *std::min_element(v.begin(), v.end())},
                            {"max", *std::max_element(v.begin(), v.end())},
                            {"samples", v}};
      if (!is_parkpool(impl) && !is_reference(impl) &&
          (best_name.empty() || (hib ? m > best : m < best))) {
        best = m;
        best_name = impl;
        best_n = v.size();
      }
    }
    for (const auto& [impl, v] : impls) {
      const double m = median(v);
      const bool has_ratio = !best_name.empty() && best > 0;
      const double ratio = has_ratio ? m / best : 0;
      csv << '"' << fig << "\"," << impl << ',' << m << ',' << *std::min_element(v.begin(), v.end())
          << ',' << *std::max_element(v.begin(), v.end()) << ','
          << (has_ratio ? fmt::format("{:.4g}", ratio) : "") << ',' << best_name << ',' << v.size()
          << '\n';
      if (!is_parkpool(impl)) continue;
      if (!has_ratio) {
        // No baseline has this figure ("-"), or the best one's median is 0 (no ratio).
        const std::string base = best_name.empty() ? "-" : best_name;
        const std::string base_m = best_name.empty() ? "-" : "0";
        const std::string base_n = best_name.empty() ? "-" : std::to_string(best_n);
        fmt::print("{:<44} {:<22} {:>12.4g} {:>3} {:>22} {:>12} {:>3} {:>9}\n", fig, impl, m,
                   v.size(), base, base_m, base_n, "-");
        md << fmt::format("| {} | {} | {:.4g} | {} | {} | {} | {} | - |\n", fig, impl, m, v.size(),
                          base, base_m, base_n);
      } else {
        fmt::print("{:<44} {:<22} {:>12.4g} {:>3} {:>22} {:>12.4g} {:>3} {:>8.2f}x\n", fig, impl, m,
                   v.size(), best_name, best, best_n, ratio);
        md << fmt::format("| {} | {} | {:.4g} | {} | {} | {:.4g} | {} | {:.2f}x |\n", fig, impl, m,
                          v.size(), best_name, best, best_n, ratio);
      }
    }
  }
  // Issue 5's targets, each against the baseline it names (support.hpp: issue5_targets).
  {
    const parkpool_bench::MedianLookup lookup =
        [&samples](const std::string& fig,
                   const std::string& impl) -> std::optional<parkpool_bench::Median> {
      const auto f = samples.find(fig);
      if (f == samples.end()) return std::nullopt;
      const auto i = f->second.find(impl);
      if (i == f->second.end() || i->second.empty()) return std::nullopt;
      return parkpool_bench::Median{median(i->second), i->second.size()};
    };
    json targets = json::array();
    std::size_t met = 0, evaluated = 0;
    fmt::print("\nissue 5 targets (ratio of medians in this run; absolute targets: the value)\n");
    fmt::print("{:<56} {:>10} {:>3} {:>10} {:>3} {:>8} {:>8}  {}\n", "target", "parkpool", "n",
               "baseline", "n", "ratio", "target", "verdict");
    md_targets << "| issue 5 target | figure | parkpool | n | baseline | n | ratio | verdict |\n"
               << "|---|---|---:|---:|---:|---:|---:|---|\n";
    for (const parkpool_bench::Target& t : parkpool_bench::issue5_targets()) {
      const parkpool_bench::TargetResult r = parkpool_bench::evaluate_target(t, lookup);
      const bool absolute = t.base_figures.empty();
      const std::string bound = fmt::format("{}{:g}", t.at_least ? ">=" : "<=", t.threshold);
      if (!r.present) {
        fmt::print("{:<56} {:>10} {:>3} {:>10} {:>3} {:>8} {:>8}  {}\n", t.label, "-", "-", "-",
                   "-", "-", bound, "not run");
        md_targets << fmt::format("| {} | - | - | - | - | - | - | not run |\n", t.label);
        targets.push_back({{"target", t.label}, {"verdict", "not run"}});
        continue;
      }
      ++evaluated;
      if (r.met) ++met;
      const std::string verdict = r.met ? "met" : "MISSED";
      const std::string base = absolute ? "-" : fmt::format("{:.4g}", r.base_value);
      const std::string base_n = absolute ? "-" : std::to_string(r.base_n);
      const std::string ratio = absolute ? "-" : fmt::format("{:.3f}", r.ratio);
      fmt::print("{:<56} {:>10.4g} {:>3} {:>10} {:>3} {:>8} {:>8}  {}\n", t.label, r.value, r.n,
                 base, base_n, ratio, bound, verdict);
      const std::string figs =
          absolute ? fmt::format("{} ({})", r.figure, t.impl)
                   : fmt::format("{} ({}) / {} ({})", r.figure, t.impl, r.base_figure, t.base_impl);
      md_targets << fmt::format("| {} | {} | {:.4g} | {} | {} | {} | {} | {} |\n", t.label, figs,
                                r.value, r.n, base, base_n, ratio, verdict);
      json j = {{"target", t.label},      {"figure", r.figure}, {"impl", t.impl},
                {"value", r.value},       {"n", r.n},           {"threshold", t.threshold},
                {"at_least", t.at_least}, {"verdict", verdict}};
      if (!absolute) {
        j["base_figure"] = r.base_figure;
        j["base_impl"] = t.base_impl;
        j["base_value"] = r.base_value;
        j["base_n"] = r.base_n;
        j["ratio"] = r.ratio;
      }
      targets.push_back(std::move(j));
    }
    fmt::print(
        "{} of {} targets run were met ('not run': a workload the target needs was not run)\n", met,
        evaluated);
    md_targets << fmt::format("\n{} of {} targets run were met.\n", met, evaluated);
    results["targets"] = std::move(targets);
  }

  const json& mi = results["machine"];
  const json& probe_start = mi["stall_probe"]["start"];
  const json& probe_end = mi["stall_probe"]["end"];
  const std::string machine_line = fmt::format(
      "machine: {}, {} cores, {}; {}; oneTBB {}; size {}, {} repetitions, {:.0f} s; load average "
      "{:.1f} at the start; during the run {:.1f}% of the CPU time was reported stolen by the "
      "hypervisor and {:.1f}% used by other processes; a thread spinning on each CPU lost "
      "{:.1f}% | {:.1f}% of its time to gaps over 20 us (before | after the run; longest {:.2f} | "
      "{:.2f} ms, {} | {} involuntary context switches)",
      mi.value("cpu", "?"), mi.value("cores", 0u), mi.value("kernel", "?"),
      mi.value("compiler", "?"), mi["libraries"].value("onetbb", "-"), o.size, o.repetitions, wall,
      mi.value("loadavg_1min_at_start", 0.0), 100 * steal, 100 * others,
      100 * probe_start.value("lost_fraction", 0.0), 100 * probe_end.value("lost_fraction", 0.0),
      probe_start.value("longest_gap_ms", 0.0), probe_end.value("longest_gap_ms", 0.0),
      probe_start.value("involuntary_switches", 0L), probe_end.value("involuntary_switches", 0L));
  const std::string ratio_line =
      "ratio = parkpool / best baseline (lower is better, except *_per_second figures); each "
      "value is the median of n samples, one per process and repetition (n = 1: a single run, "
      "e.g. a case --quick runs once); real_/cpu_ figures are in the suite's time unit.";
  fmt::print("\n{}\n{}\n", ratio_line, machine_line);
  md << "\n"
     << ratio_line << "\n"
     << results["date"].get<std::string>() << ", " << machine_line << ".\n";
  results["figures"] = figures;

  // The outputs: the JSON first (it holds everything), then the tables, then the pictures, whose
  // names the JSON lists. An output that cannot be written does not keep the others from being
  // written; the run then exits with kExitError.
  const std::optional<fs::path> gnuplot = o.plots_dir.empty() ? std::nullopt : find_gnuplot();
  std::optional<Plots> plots;
  if (gnuplot) {
    plots = make_plots(samples, o.plots_dir);
    results["pictures"] = plots->written;
  } else if (!o.plots_dir.empty()) {
    fmt::print("no pictures: gnuplot is not installed (apt-get install gnuplot-nox)\n");
  }
  Outputs outputs;
  if (!o.json_file.empty()) outputs.write("--json", o.json_file, results.dump(2) + '\n');
  if (!o.csv_file.empty()) outputs.write("--csv", o.csv_file, csv.str());
  if (!o.markdown_file.empty())
    outputs.write("--markdown", o.markdown_file, md_targets.str() + "\n" + md.str());
  if (plots) write_plots(*plots, *gnuplot, outputs);
  if (!outputs.errors.empty()) {
    for (const auto& e : outputs.errors) fmt::print(stderr, "parkpool-bench: {}\n", e);
    return kExitError;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // An error nothing above expects (e.g. a filesystem error on the temporary files) ends the run
  // with a message and kExitError, not std::terminate.
  try {
    return bench_main(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "\nparkpool-bench: {}\n", e.what());
    return kExitError;
  }
}

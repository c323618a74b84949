// parkpool-bench: one comparison run of parkpool against its baselines, as a table, JSON, CSV and
// pictures. See CMakeLists.txt beside this file for the design; `parkpool-bench --help` for use.
//
// Conventions it relies on (every bench/*_bench.cpp follows them):
//   - benchmark names are "Workload/impl[/args]"; parkpool's implementations are named
//     "parkpool" or "parkpool_<variant>", everything else is a baseline;
//   - each suite accepts Google Benchmark's flags (--benchmark_filter, --benchmark_out, ...).
// Figures: real_time and cpu_time (ns) and every user counter. Counters named *_per_second or
// items_per_second are "higher is better"; everything else "lower is better".
#include <fmt/core.h>
#include <fmt/ostream.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(PARKPOOL_HAVE_TBB)
#include <oneapi/tbb/version.h>
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Options {
  bool full = false;
  std::vector<std::string> workloads;
  std::vector<std::string> impls;
  int repetitions = 0;
  double min_time = 0;
  std::string json_file, csv_file, plots_dir, bench_dir;
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

bool is_parkpool(const std::string& impl) { return impl.rfind("parkpool", 0) == 0; }
bool higher_is_better(const std::string& figure) {
  return figure.find("per_second") != std::string::npos;
}

std::vector<Case> list_cases(const fs::path& dir, const std::vector<std::string>& suites) {
  std::vector<Case> cases;
  std::set<std::pair<std::string, std::string>> seen;
  const fs::path tmp = fs::temp_directory_path() / fmt::format("parkpool-bench-list-{}", getpid());
  for (const auto& s : suites) {
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// CPU time stolen by the hypervisor and used by other processes, for the "busy machine" note.
struct CpuSnapshot {
  double steal = 0, total = 0;
};
CpuSnapshot cpu_snapshot() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[10] = {};
  in >> cpu;
  for (double& x : v) in >> x;
  CpuSnapshot s;
  for (double x : v) s.total += x;
  s.steal = v[7];
  return s;
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
#if defined(PARKPOOL_HAVE_TBB)
  m["onetbb"] = TBB_VERSION_STRING;
#endif
  double load[3] = {};
  if (getloadavg(load, 3) > 0) m["loadavg_1min_at_start"] = load[0];
  return m;
}

void progress(std::size_t done, std::size_t total, const Case& c) {
  const int width = 30;
  const int filled = total == 0 ? width : static_cast<int>(done * width / total);
  fmt::print(stderr, "\r[{:<{}}] {}/{} {}/{}{:20}",
             std::string(static_cast<std::size_t>(filled), '#'), width, done, total, c.workload,
             c.impl, "");
}

void write_plots(const Samples& samples, const fs::path& dir) {
  fs::create_directories(dir);
  // One picture per figure: the median of each implementation, with min-max error bars.
  for (const auto& [figure, impls] : samples) {
    std::string stem = figure;
    std::replace_if(
        stem.begin(), stem.end(),
        [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
    const fs::path dat = dir / (stem + ".dat");
    {
      std::ofstream out(dat);
      int i = 0;
      for (const auto& [impl, v] : impls) {
        out << i++ << ' ' << '"' << impl << '"' << ' ' << median(v) << ' '
            << *std::min_element(v.begin(), v.end()) << ' ' << *std::max_element(v.begin(), v.end())
            << ' ' << (is_parkpool(impl) ? 0x2a7fd4 : 0x999999) << '\n';  // parkpool in blue
      }
    }
    for (const char* term : {"pngcairo size 800,480", "svg size 800,480"}) {
      const bool png = std::string(term).rfind("png", 0) == 0;
      const fs::path img = dir / (stem + (png ? ".png" : ".svg"));
      const fs::path gp = dir / (stem + ".gp");
      {
        std::ofstream out(gp);
        out << "set terminal " << term << "\nset termoption noenhanced\nset output '"
            << img.string() << "'\n"
            << "set title '" << figure << " (median, min-max)'\nset style fill solid 0.6\n"
            << "set boxwidth 0.6\nset yrange [0:*]\nset xtics rotate by -30\nunset key\n"
            << "set ylabel '" << figure.substr(figure.rfind(' ') + 1) << "'\n"
            << "plot '" << dat.string() << "' using 1:3:6:xtic(2) with boxes lc rgb variable, "
            << "'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0\n";
      }
      run({"/usr/bin/gnuplot", gp.string()}, "", true);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"parkpool-bench: parkpool against oneTBB and the std baselines, on this machine"};
  bool quick = true;
  app.add_flag("--quick", quick, "short run (the default): under 2 minutes on 2 cores");
  app.add_flag("--full", o.full, "longer, steadier run");
  app.add_option("--workloads", o.workloads, "workloads to run (default: all)")->delimiter(',');
  app.add_option("--impls", o.impls, "implementations to run (default: all)")->delimiter(',');
  app.add_option("--repetitions", o.repetitions, "repetitions per case (default 3, --full 5)")
      ->check(CLI::Range(1, 100));
  app.add_option("--min-time", o.min_time, "seconds per measurement (default 0.05, --full 0.5)")
      ->check(CLI::Range(0.0001, 60.0));
  app.add_option("--json", o.json_file, "write all results and the machine description as JSON");
  app.add_option("--csv", o.csv_file, "write the table as CSV");
  app.add_option("--plots", o.plots_dir, "write PNG and SVG pictures into this directory");
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
  (void)quick;  // the default; --full overrides it
  if (o.repetitions == 0) o.repetitions = o.full ? 5 : 3;
  if (o.min_time == 0) o.min_time = o.full ? 0.5 : 0.05;

  const std::vector<std::string> suites = {"parker_bench", "thread_parker_bench", "pool_bench",
                                           "idle_bench", "parking_lot_bench"};
  std::vector<Case> cases = list_cases(o.bench_dir, suites);
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
    for (const auto& c : cases) fmt::print("{:24} {:24} ({})\n", c.workload, c.impl, c.suite);
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
  std::erase_if(cases, [&](const Case& c) {
    return (!o.workloads.empty() &&
            std::find(o.workloads.begin(), o.workloads.end(), c.workload) == o.workloads.end()) ||
           (!o.impls.empty() && std::find(o.impls.begin(), o.impls.end(), c.impl) == o.impls.end());
  });

  json results = json::object();
  results["machine"] = machine_info();
  results["settings"] = {{"repetitions", o.repetitions}, {"min_time_s", o.min_time}};
  const CpuSnapshot cpu0 = cpu_snapshot();
  const auto t0 = std::chrono::steady_clock::now();

  Samples samples;
  const fs::path out = fs::temp_directory_path() / fmt::format("parkpool-bench-{}.json", getpid());
  std::size_t done = 0;
  int failures = 0;
  for (const auto& c : cases) {
    progress(done, cases.size(), c);
    // A fresh process per case: one implementation's threads and caches never disturb the next.
    const std::vector<std::string> argv_child = {
        (fs::path(o.bench_dir) / c.suite).string(),
        "--benchmark_filter=^" + c.workload + "/" + c.impl + "(/|$)",
        fmt::format("--benchmark_min_time={}", o.min_time),
        fmt::format("--benchmark_repetitions={}", o.repetitions),
        "--benchmark_report_aggregates_only=false",
        "--benchmark_out=" + out.string(),
        "--benchmark_out_format=json"};
    const int rc = run(argv_child, "", true);
    ++done;
    if (rc != 0) {
      fmt::print(stderr, "\nparkpool-bench: {} {}/{} exited with {}\n", c.suite, c.workload, c.impl,
                 rc);
      ++failures;
      continue;
    }
    json j;
    try {
      j = json::parse(read_file(out));
    } catch (const json::exception& e) {
      fmt::print(stderr, "\nparkpool-bench: bad JSON from {}: {}\n", c.suite, e.what());
      ++failures;
      continue;
    }
    for (const auto& b : j["benchmarks"]) {
      if (b.value("run_type", "") != "iteration") continue;
      std::string name = b.value("run_name", b.value("name", ""));
      // Args beyond workload/impl become part of the figure name.
      std::string rest;
      const auto a = name.find('/');
      const auto s2 = name.find('/', a + 1);
      if (s2 != std::string::npos) rest = name.substr(s2);
      const std::string fig = c.workload + rest;
      samples[fig + " real_ns"][c.impl].push_back(b.value("real_time", 0.0));
      samples[fig + " cpu_ns"][c.impl].push_back(b.value("cpu_time", 0.0));
      for (const auto& [k, v] : b.items()) {
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
        if (kStd.count(k) || !v.is_number()) continue;
        samples[fig + " " + k][c.impl].push_back(v.get<double>());
      }
    }
  }
  fs::remove(out);
  fmt::print(stderr, "\r{:100}\r", "");

  const CpuSnapshot cpu1 = cpu_snapshot();
  const double busy_steal =
      cpu1.total > cpu0.total ? (cpu1.steal - cpu0.steal) / (cpu1.total - cpu0.total) : 0;
  results["machine"]["steal_fraction_during_run"] = busy_steal;
  results["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The table.
  std::ofstream csv;
  if (!o.csv_file.empty()) {
    csv.open(o.csv_file);
    csv << "figure,impl,median,min,max,ratio_to_best_baseline\n";
  }
  fmt::print("{:<44} {:<22} {:>12} {:>22} {:>12} {:>9}\n", "figure", "parkpool impl", "parkpool",
             "best baseline", "baseline", "ratio");
  json figures = json::object();
  for (const auto& [fig, impls] : samples) {
    std::string best_name;
    double best = 0;
    const bool hib = higher_is_better(fig);
    for (const auto& [impl, v] : impls) {
      const double m = median(v);
      figures[fig][impl] = {{"median", m},
                            {"min", *std::min_element(v.begin(), v.end())},
                            {"max", *std::max_element(v.begin(), v.end())},
                            {"samples", v}};
      if (!is_parkpool(impl) && (best_name.empty() || (hib ? m > best : m < best))) {
        best = m;
        best_name = impl;
      }
    }
    for (const auto& [impl, v] : impls) {
      const double m = median(v);
      const double ratio = best > 0 ? m / best : 0;
      if (csv.is_open()) {
        csv << '"' << fig << "\"," << impl << ',' << m << ','
            << *std::min_element(v.begin(), v.end()) << ',' << *std::max_element(v.begin(), v.end())
            << ',' << ratio << '\n';
      }
      if (!is_parkpool(impl)) continue;
      if (best_name.empty()) {
        fmt::print("{:<44} {:<22} {:>12.1f} {:>22} {:>12} {:>9}\n", fig, impl, m, "-", "-", "-");
      } else {
        fmt::print("{:<44} {:<22} {:>12.1f} {:>22} {:>12.1f} {:>8.2f}x\n", fig, impl, m, best_name,
                   best, ratio);
      }
    }
  }
  const json& mi = results["machine"];
  fmt::print(
      "\nratio = parkpool / best baseline (for *_per_second figures higher is better, "
      "otherwise lower).\nmachine: {}, {} cores, {}; {}; steal {:.1f}% during the run\n",
      mi.value("cpu", "?"), mi.value("cores", 0u), mi.value("kernel", "?"),
      mi.value("compiler", "?"), 100 * busy_steal);
  results["figures"] = figures;

  if (!o.json_file.empty()) {
    std::ofstream(o.json_file) << results.dump(2) << '\n';
  }
  if (!o.plots_dir.empty()) {
    if (access("/usr/bin/gnuplot", X_OK) != 0) {
      fmt::print("no pictures: gnuplot is not installed (apt-get install gnuplot-nox)\n");
    } else {
      write_plots(samples, o.plots_dir);
    }
  }
  return failures == 0 ? 0 : 1;
}

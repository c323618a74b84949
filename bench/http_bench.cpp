// http_bench: the HTTP server of examples/http_server under an open-loop load, on each backend
// (parkpool, oneTBB, the std mutex pool), as a Google Benchmark suite for parkpool-bench.
//
// Cases (impl = parkpool | parkpool_efficiency | tbb | std_pool | floor_inline; tbb only when
// built with oneTBB; parkpool_efficiency is the parkpool server with IdleOptions::efficiency();
// floor_inline is the server with no pool, each handler run on the I/O thread: the lowest CPU
// per request this server's own work allows, a reference point that parkpool-bench never takes
// as the baseline)
//   HttpLoad1k/<impl>    1,000 requests/s
//   HttpLoad10k/<impl>   10,000 requests/s
//   HttpLoadMax/<impl>   the highest rate this machine sustains with that backend: rates from
//                        2k/s up by x1.5 (2k, 3k, 4.5k, 6.75k, 10.1k, ...) while the server keeps
//                        up (>= 95% of the schedule answered within the window + 1 s, p99 under 10
//                        ms); reports the figures of the last rate it sustained, and that rate
//                        (rate_per_second). Each backend then reports at its own highest rate,
//                        which makes their p99 and CPU incomparable: to compare them at one rate
//                        (the "highest rate the machine sustains"), set
//                        PARKPOOL_HTTP_MAX_RATE to the lowest rate_per_second the search found over
//                        the backends; the case then measures every backend at exactly that rate,
//                        no search.
//   HttpIdle/<impl>      no requests: the server's CPU use over PARKPOOL_HTTP_IDLE_SECONDS (default
//                        2 s here to keep the suite short; the figure is over 10 s: set
//                        PARKPOOL_HTTP_IDLE_SECONDS=10), after a short load (250 requests at
//                        1k/s on 8 connections, which then close: the pool has run and gone idle)
//                        and 0.5 s to settle.
//
// How it measures
//   - The server runs in a child process (fork, before this process starts any thread), on the
//     loopback interface, with its defaults: 1 I/O thread, available_cpus() pool workers,
//     64 hash rounds over a 64-byte body per request (a few microseconds of CPU).
//   - The load generator is open-loop: request j is due at t0 + j/rate whatever the responses
//     do, spread round-robin over keep-alive connections (8 at 1k/s, 32 at 10k/s, 64 beyond),
//     and its latency is measured from its due time, not from when it was sent: a stalled server
//     makes the requests queued behind it late and that lateness is counted (no coordinated
//     omission). One generator thread (Asio), 0.2 s of warm-up, then PARKPOOL_HTTP_BENCH_SECONDS
//     (default 1) measured.
//   - Server CPU: the child's process CPU clock (clock_getcpuclockid: user + system time of all
//     its threads, ns) over the measured window (until the last measured response; 1 s of grace
//     at most), divided by the responses: cpu_per_request_us.
//     The generator runs on the same 2-core machine: it competes with the server for CPU alike
//     for every backend.
//     A measured request still unanswered when the run ends (window + 1 s of grace) enters the
//     percentiles with the time it had waited by then (a lower bound) and is counted in
//     `unanswered`: a server that falls behind cannot drop its worst requests from the p99.
// Counters: p50_us, p99_us, p999_us, cpu_per_request_us, errors, unanswered (lower is better);
// rate_per_second, achieved_per_second (higher is better); idle_cpu_percent (of one core).
// The manual time of each case is its measured window.
//
// Built by bench/CMakeLists.txt like every suite; bench/http_bench_server/CMakeLists.txt links it
// with the server and defines PARKPOOL_HTTP_BENCH_HAVE_SERVER. Without Boost.Beast the suite has
// no cases (and says so on stderr).
#include <benchmark/benchmark.h>

#include <cstdio>

#if !defined(PARKPOOL_HTTP_BENCH_HAVE_SERVER)
int main(int argc, char** argv) {
  std::fputs("http_bench: built without the HTTP server (Boost.Beast not found): no cases\n",
             stderr);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
#else
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_server.hpp"
#include "parkpool/asio.hpp"  // first Asio include: <utility> for Boost 1.74's awaitable.hpp

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "bench_stats.hpp"

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using parkpool_http::Backend;

namespace {

// A positive number from the environment (seconds, or requests/s), else `fallback`.
double env_positive(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  const double d = std::strtod(v, nullptr);
  return d > 0 ? d : fallback;
}

// ---- the server in a child process ----

class ServerProcess {
 public:
  explicit ServerProcess(Backend b, parkpool_http::IdlePreset idle) {
    int fds[2];
    if (pipe(fds) != 0) return;
    std::fflush(stdout);
    std::fflush(stderr);
    pid_ = fork();
    if (pid_ == 0) {
      close(fds[0]);
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before the server's threads start
      int code = 0;
      try {
        parkpool_http::ServerOptions o;
        o.backend = b;
        o.idle = idle;
        parkpool_http::Server server(o);
        const std::uint16_t port = server.port();
        if (write(fds[1], &port, sizeof port) != static_cast<ssize_t>(sizeof port)) _exit(3);
        int sig = 0;
        sigwait(&stop, &sig);
        server.stop();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "http_bench server: %s\n", e.what());
        code = 2;
      }
      _exit(code);
    }
    close(fds[1]);
    if (pid_ > 0 && read(fds[0], &port_, sizeof port_) != static_cast<ssize_t>(sizeof port_)) {
      port_ = 0;
    }
    close(fds[0]);
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  std::uint16_t port() const noexcept { return port_; }

  // CPU time (user + system) of the whole server process so far, ns: its process CPU clock
  // (clock_getcpuclockid), which counts every thread, including exited ones.
  std::uint64_t cpu_ns() const {
    clockid_t clock;
    timespec ts{};
    if (clock_getcpuclockid(pid_, &clock) != 0 || clock_gettime(clock, &ts) != 0) return 0;
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
  }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// ---- the open-loop generator ----

struct LoadResult {
  // One entry per measured request: answered ones with their latency from their due time;
  // unanswered ones (not answered by the end of the run) with the time they had waited by then,
  // a lower bound, so that requests a server leaves behind still weigh on the percentiles.
  std::vector<double> latency_us;
  std::uint64_t scheduled = 0;   // measured requests due in the window
  std::uint64_t answered = 0;    // measured requests answered with 200
  std::uint64_t unanswered = 0;  // measured requests with no answer by the end of the run
  std::uint64_t errors = 0;      // non-200 answers and broken connections
  double window_s = 0;           // from the first due time to the last measured answer
  std::uint64_t cpu_ns = 0;      // server CPU over that window
};

const std::string kBody(64, 'b');
const std::string kRequest =
    "POST /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(kBody.size()) +
    "\r\n\r\n" + kBody;

struct Generator {
  tcp::endpoint server;
  double rate = 1000;
  Clock::time_point t0;
  std::uint64_t warmup = 0, total = 0;  // requests [0, warmup) are not measured
  std::size_t conns = 8;
  std::vector<std::uint64_t> next;  // per connection: its first request not answered yet
  LoadResult result;
  Clock::time_point last_answer;
  std::size_t open = 0;
  // Last: destroyed first, with the connection coroutines it still holds (they use the above).
  asio::io_context io{1};

  Clock::time_point due(std::uint64_t j) const {
    return t0 +
           std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(j) * 1e9 / rate));
  }

  asio::awaitable<void> connection(std::size_t i) {
    ++open;
    struct Done {
      std::size_t& n;
      ~Done() { --n; }
    } done{open};
    tcp::socket s(io);
    boost::system::error_code ec;
    co_await s.async_connect(server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      ++result.errors;
      co_return;
    }
    s.set_option(tcp::no_delay(true), ec);
    asio::steady_timer timer(io);
    std::string buf;
    for (std::uint64_t j = i; j < total; j += conns) {
      const Clock::time_point when = due(j);
      timer.expires_at(when);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      co_await asio::async_write(s, asio::buffer(kRequest),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      const std::size_t head = co_await asio::async_read_until(
          s, asio::dynamic_buffer(buf), "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      std::size_t length = 0;
      const std::size_t cl = buf.find("Content-Length: ");
      if (cl != std::string::npos && cl < head) {
        length = static_cast<std::size_t>(std::strtoull(buf.c_str() + cl + 16, nullptr, 10));
      }
      if (buf.size() < head + length) {
        co_await asio::async_read(s, asio::dynamic_buffer(buf),
                                  asio::transfer_exactly(head + length - buf.size()),
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      const bool ok = buf.compare(0, 12, "HTTP/1.1 200") == 0;
      buf.erase(0, head + length);
      const Clock::time_point now = Clock::now();
      if (j >= warmup) {
        if (!ok) {
          ++result.errors;
        } else {
          ++result.answered;
          result.latency_us.push_back(
              std::chrono::duration<double, std::micro>(now - when).count());
        }
        last_answer = now;
      }
      next[i] = j + conns;
    }
    if (ec) ++result.errors;
  }
};

LoadResult run_load(const ServerProcess& server, double rate, double seconds) {
  Generator g;
  g.server = tcp::endpoint(asio::ip::address_v4::loopback(), server.port());
  g.rate = rate;
  g.conns = rate <= 1000 ? 8 : rate <= 10000 ? 32 : 64;
  g.warmup = static_cast<std::uint64_t>(rate * 0.2);
  g.total = g.warmup + static_cast<std::uint64_t>(rate * seconds);
  g.result.scheduled = g.total - g.warmup;
  g.result.latency_us.reserve(g.result.scheduled);
  g.next.resize(g.conns);
  g.t0 = Clock::now() + std::chrono::milliseconds(50);  // connections are made meanwhile
  for (std::size_t i = 0; i < g.conns; ++i) {
    g.next[i] = i;
    asio::co_spawn(g.io, g.connection(i), asio::detached);
  }
  // Run the warm-up, then read the CPU at the first measured due time.
  const Clock::time_point measure_from = g.due(g.warmup);
  g.io.run_until(measure_from);
  const std::uint64_t cpu0 = server.cpu_ns();
  g.last_answer = measure_from;
  // The window plus 1 s of grace for late answers; whatever is still missing then counts as
  // not answered (the rate is not sustained).
  g.io.run_until(g.due(g.total) + std::chrono::seconds(1));
  g.result.cpu_ns = server.cpu_ns() - cpu0;
  g.result.window_s = std::chrono::duration<double>(g.last_answer - measure_from).count();
  // No coordinated omission at the end either: a measured request still unanswered (its
  // connection waits for an earlier answer, or broke) enters the percentiles with the time it
  // has waited so far.
  const Clock::time_point end = Clock::now();
  for (std::size_t i = 0; i < g.conns; ++i) {
    for (std::uint64_t j = g.next[i]; j < g.total; j += g.conns) {
      if (j < g.warmup) continue;
      ++g.result.unanswered;
      const auto waited = std::chrono::duration<double, std::micro>(end - g.due(j)).count();
      g.result.latency_us.push_back(std::max(waited, 0.0));
    }
  }
  g.io.stop();
  return std::move(g.result);
}

using parkpool::bench::percentile;
using parkpool::bench::put_percentile;

void report(benchmark::State& state, LoadResult& r) {
  const auto answered = static_cast<double>(r.answered);
  // Only the percentiles the request count supports (bench_stats.hpp): p999_us needs 1000.
  put_percentile(state.counters, "p50_us", r.latency_us, 0.50);
  put_percentile(state.counters, "p99_us", r.latency_us, 0.99);
  put_percentile(state.counters, "p999_us", r.latency_us, 0.999);
  state.counters["cpu_per_request_us"] =
      answered > 0 ? static_cast<double>(r.cpu_ns) / 1e3 / answered : 0;
  state.counters["errors"] = static_cast<double>(r.errors);
  state.counters["unanswered"] = static_cast<double>(r.unanswered);
  state.counters["achieved_per_second"] = r.window_s > 0 ? answered / r.window_s : 0;
}

bool sustained(const LoadResult& r) {
  return r.errors == 0 &&
         static_cast<double>(r.answered) >= 0.95 * static_cast<double>(r.scheduled) &&
         percentile(r.latency_us, 0.99) < 10'000;
}

void BM_Load(benchmark::State& state, Backend b, parkpool_http::IdlePreset idle, double rate) {
  const double seconds = env_positive("PARKPOOL_HTTP_BENCH_SECONDS", 1.0);
  for (auto _ : state) {
    ServerProcess server(b, idle);
    if (server.port() == 0) {
      state.SkipWithError("the server did not start");
      return;
    }
    LoadResult r = run_load(server, rate, seconds);
    state.SetIterationTime(seconds);
    if (r.answered == 0) {
      state.SkipWithError("no request was answered");
      return;
    }
    report(state, r);
    state.counters["rate_per_second"] = rate;
  }
}

void BM_LoadMax(benchmark::State& state, Backend b, parkpool_http::IdlePreset idle) {
  const double seconds = env_positive("PARKPOOL_HTTP_BENCH_SECONDS", 1.0) / 2;
  for (auto _ : state) {
    ServerProcess server(b, idle);
    if (server.port() == 0) {
      state.SkipWithError("the server did not start");
      return;
    }
    double best_rate = 0;
    LoadResult best;
    const double fixed = env_positive("PARKPOOL_HTTP_MAX_RATE", 0);  // requests/s; 0: search
    if (fixed > 0) {
      LoadResult r = run_load(server, fixed, seconds * 2);
      state.SetIterationTime(seconds * 2);
      if (r.answered == 0) {
        state.SkipWithError("no request was answered");
        return;
      }
      report(state, r);
      state.counters["rate_per_second"] = fixed;
      state.counters["sustained"] = sustained(r) ? 1 : 0;
      continue;
    }
    // From 2k/s: a loaded or small machine that cannot sustain 10k/s still gets its figure.
    for (double rate = 2'000; rate <= 200'000; rate *= 1.5) {
      LoadResult r = run_load(server, rate, seconds);
      if (!sustained(r)) break;
      best_rate = rate;
      best = std::move(r);
    }
    state.SetIterationTime(seconds);
    if (best_rate == 0) {
      state.SkipWithError("2k requests/s not sustained");
      return;
    }
    report(state, best);
    state.counters["rate_per_second"] = best_rate;
  }
}

void BM_Idle(benchmark::State& state, Backend b, parkpool_http::IdlePreset idle) {
  const double seconds = env_positive("PARKPOOL_HTTP_IDLE_SECONDS", 2.0);
  for (auto _ : state) {
    ServerProcess server(b, idle);
    if (server.port() == 0) {
      state.SkipWithError("the server did not start");
      return;
    }
    // A short load first (250 requests at 1k/s; its connections close when it ends), so the
    // pool has run and gone idle (not merely never woken).
    LoadResult warm = run_load(server, 1000, 0.05);
    (void)warm;
    usleep(500'000);  // this case is about time: let the idle backoff reach its steady state
    const std::uint64_t cpu0 = server.cpu_ns();
    const Clock::time_point w0 = Clock::now();
    usleep(static_cast<useconds_t>(seconds * 1e6));  // the measurement window
    const std::uint64_t cpu = server.cpu_ns() - cpu0;
    const double wall = std::chrono::duration<double>(Clock::now() - w0).count();
    state.SetIterationTime(wall);
    state.counters["idle_cpu_percent"] = static_cast<double>(cpu) / 1e9 / wall * 100.0;
  }
}

void register_all() {
  using parkpool_http::IdlePreset;
  struct Impl {
    Backend backend;
    IdlePreset idle;
    const char* name;
  };
  const Impl impls[] = {{Backend::parkpool, IdlePreset::standard, "parkpool"},
                        {Backend::parkpool, IdlePreset::efficiency, "parkpool_efficiency"},
                        {Backend::tbb, IdlePreset::standard, "tbb"},
                        {Backend::std_pool, IdlePreset::standard, "std_pool"},
                        {Backend::inline_io, IdlePreset::standard, "floor_inline"}};
  for (const Impl& impl : impls) {
    if (!parkpool_http::backend_available(impl.backend)) continue;
    const std::string n = impl.name;
    const Backend b = impl.backend;
    const IdlePreset idle = impl.idle;
    auto common = [](benchmark::internal::Benchmark* x) {
      x->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
    };
    common(benchmark::RegisterBenchmark(("HttpLoad1k/" + n).c_str(), BM_Load, b, idle, 1000.0));
    common(benchmark::RegisterBenchmark(("HttpLoad10k/" + n).c_str(), BM_Load, b, idle, 10000.0));
    common(benchmark::RegisterBenchmark(("HttpLoadMax/" + n).c_str(), BM_LoadMax, b, idle));
    common(benchmark::RegisterBenchmark(("HttpIdle/" + n).c_str(), BM_Idle, b, idle));
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

#endif  // PARKPOOL_HTTP_BENCH_HAVE_SERVER

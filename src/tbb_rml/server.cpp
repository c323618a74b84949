// libparkpool_tbb: an external RML server for oneTBB 2021.x on parkpool's idle coordination.
// The interface and its contract: rml_abi.hpp; the user-facing description: parkpool/tbb_rml.h.
//
// How the server works
// --------------------
// oneTBB tells the server how many workers it could use through adjust_job_count_estimate(delta).
// The server keeps one 64-bit word:
//   high 32 bits  slack: workers requested minus workers active (signed). Positive: units of
//                 work no worker has taken yet. Negative: too many workers run.
//   low 32 bits   idle:  workers that gave their unit back and wait in the IdleCoordinator.
// A worker is "active" from the moment a unit is claimed for it until it gives the unit back.
//   - An active worker calls client.process(job) again and again while slack >= 0 (oneTBB's own
//     loop returns when no arena needs it; the market yields in between).
//   - When slack < 0 it gives its unit back: one CAS slack+1, idle+1 (only while slack < 0), then
//     waits in IdleCoordinator::wait_for_work() with has_work = "slack > 0".
//   - An idle worker that is woken (or sees slack > 0 while spinning) claims a unit: one CAS
//     slack-1, idle-1 (only while slack > 0). If the CAS loses, it waits again.
//   - adjust(+d) adds d to slack, then notify_work() (an idle worker takes it; INV-NOLOST of
//     pool/SLEEP.md: the slack RMW is the publication, has_work() reads it atomically), then
//     maybe_launch(): when slack > 0 and no worker is idle, nobody can take the unit, so the
//     caller claims it (slack-1) and starts a new thread for it, at most two per call; every new
//     thread does the same when it starts (a chain reaction, like oneTBB's private server's), and
//     so does a woken worker that claimed the last idle slot while units remain.
// Because "go idle" needs slack < 0 and "launch" needs slack > 0 with idle == 0, read in one word,
// a unit is never left with neither an idle worker to take it nor a launcher (up to the client's
// max_job_count threads).
// Every worker is started with the process's CPU mask (read when oneTBB connects), not the mask
// of whichever thread launched it. A thread that cannot be started (pthread_create fails, or no
// memory for its start) aborts the process with a message on stderr, as oneTBB's private server
// does: its unit would otherwise wait forever when no other worker exists.
//
// Lifetime: the server object counts one reference for the connection and one per started
// thread. Each thread drops its reference after oneTBB's cleanup(job) ran on it; the connection's
// goes in request_close_connection(). The last one calls acknowledge_close_connection() (oneTBB
// frees its market) and deletes the server. request_close_connection() sets quit, shuts the
// coordinator down (waking every sleeper) and joins the threads when it runs on a thread that is
// not one of them (so a blocking oneTBB finalize returns with the workers gone), or detaches them
// (called from a worker, or with exiting == true).
// Program exit without closing: workers park forever and die with the process; this library has
// no static object with a destructor that a worker still running could touch.

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <vector>

#include "parkpool/idle.hpp"
#include "parkpool/tbb_rml.h"
#include "rml_abi.hpp"

// ThreadSanitizer cannot see oneTBB's own synchronization (libtbb is not instrumented); see
// Server::tsan_client_calls_.
#if defined(__SANITIZE_THREAD__)
#define PARKPOOL_TBB_RML_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PARKPOOL_TBB_RML_TSAN 1
#endif
#endif
#ifndef PARKPOOL_TBB_RML_TSAN
#define PARKPOOL_TBB_RML_TSAN 0
#endif

namespace parkpool::tbb_rml {
namespace {

constexpr abi::version_type kClientInterfaceVersion = PARKPOOL_TBB_RML_CLIENT_VERSION;
constexpr abi::version_type kClientObjectVersion = 0;  // oneTBB 2021.x market::version()
static_assert(PARKPOOL_TBB_RML_ST_SUCCESS == abi::st_success);
static_assert(PARKPOOL_TBB_RML_ST_INCOMPATIBLE == abi::st_incompatible);

// Process-wide statistics for tests and users (parkpool/tbb_rml.h). Statistics only: relaxed
// increments, nothing is published through them. Trivially destructible, constant-initialised.
struct Counters {
  std::atomic<unsigned long long> connections{0}, closed{0}, started{0}, exited{0}, wakeups{0};
  std::atomic<long long> idle{0};  // a gauge: workers idle right now, over all connections
};
constinit Counters g_counters;

void bump(std::atomic<unsigned long long>& c) noexcept {
  c.fetch_add(1, std::memory_order_relaxed);
}

bool env_flag(const char* name) noexcept {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

struct IdlePreset {
  IdleOptions options;
  const char* name;
};

IdlePreset idle_preset_from_env() noexcept {
  const char* v = std::getenv("PARKPOOL_TBB_IDLE");
  if (v != nullptr && std::strcmp(v, "default") == 0) return {IdleOptions{}, "default"};
  if (v != nullptr && std::strcmp(v, "latency") == 0) return {IdleOptions::latency(), "latency"};
  return {IdleOptions::efficiency(), "efficiency"};  // unset or anything else
}

// The process's CPU mask, read as oneTBB reads it (sched_getaffinity of the process id, that is
// of the main thread), or nullopt when it cannot be read (more than CPU_SETSIZE CPUs, or a
// seccomp filter): workers then inherit the mask of the thread that starts them.
std::optional<cpu_set_t> process_cpu_mask() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(getpid(), sizeof(set), &set) != 0 || CPU_COUNT(&set) == 0) {
    return std::nullopt;
  }
  return set;
}

unsigned usable_cpus(const std::optional<cpu_set_t>& mask) noexcept {
  return mask ? static_cast<unsigned>(CPU_COUNT(&*mask)) : 1u;
}

// A worker thread that cannot be started is fatal, as it is with oneTBB's private server (its
// pthread_create failure escapes as an exception and terminates): the work oneTBB asked a worker
// for would otherwise wait forever when no other worker exists (task_arena::enqueue).
[[noreturn]] void fail_launch(const char* what, int error) noexcept {
  std::fprintf(stderr, "parkpool_tbb: cannot start a oneTBB worker thread: %s: %s; aborting\n",
               what, std::strerror(error));
  std::abort();
}

// The word's two fields (see the file comment).
constexpr std::uint64_t kIdleOne = 1;
constexpr std::uint64_t kIdleMask = 0xFFFF'FFFFu;
constexpr std::uint64_t kSlackOne = std::uint64_t{1} << 32;
constexpr std::int32_t slack_of(std::uint64_t w) noexcept {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(w >> 32));
}
constexpr std::uint32_t idle_of(std::uint64_t w) noexcept {
  return static_cast<std::uint32_t>(w & kIdleMask);
}
constexpr std::uint64_t slack_units(std::int64_t n) noexcept {  // 0 < n <= 2^31 (any |int|)
  return static_cast<std::uint64_t>(n) << 32;
}

// Tells oneTBB that every job was cleaned up; oneTBB then frees its market and, when that was its
// last reference, finalises itself (ITT, TLS key, dlclose). Not inlined, so that sanitizer reports
// from inside oneTBB's own shutdown name this frame (see tests/tbb_rml/tsan_libtbb.supp).
[[gnu::noinline]] void acknowledge_close_in_onetbb(abi::TbbClient& client) {
  client.acknowledge_close_connection();
}

class Server;
thread_local Server* t_current_server = nullptr;  // set on this server's worker threads

class Server final : public abi::TbbServer {
 public:
  Server(abi::TbbClient& client, unsigned max_workers, std::size_t stack_size,
         std::optional<cpu_set_t> cpu_mask, IdleOptions options)
      : client_(client),
        max_workers_(max_workers),
        stack_size_(stack_size),
        cpu_mask_(cpu_mask),
        idle_(max_workers, options),
        threads_(max_workers) {}

  abi::version_type version() const override { return kClientInterfaceVersion; }

  void request_close_connection(bool exiting) override {
#if PARKPOOL_TBB_RML_TSAN
    // Acquire: pairs with the release RMW at the end of every adjust_job_count_estimate().
    (void)tsan_client_calls_.load(std::memory_order_acquire);
#endif
    bump(g_counters.closed);
    std::vector<pthread_t> handles;
    {
      std::lock_guard<std::mutex> lock(launch_mutex_);
      closing_ = true;  // no thread starts after this
      handles.assign(threads_.begin(), threads_.begin() + static_cast<std::ptrdiff_t>(launched_));
    }
    // Release: pairs with the acquire load in run(); the client's state written before it asked to
    // close (oneTBB: the market's shutdown flags) is visible to the cleanup() each worker then
    // runs.
    quit_.store(true, std::memory_order_release);
    idle_.shutdown();  // wakes every sleeper; wait_for_work() returns false from now on
    const bool join = !exiting && t_current_server != this;
    for (pthread_t h : handles) {
      if (join) {
        pthread_join(h, nullptr);
      } else {
        pthread_detach(h);
      }
    }
    release_ref();  // may delete *this
  }

  void yield() override { sched_yield(); }

  void independent_thread_number_changed(int) override {}  // a hint this server does not need

  // The server never runs fewer workers than the client asks for, up to max_job_count().
  unsigned default_concurrency() const override { return max_workers_; }

  void adjust_job_count_estimate(int delta) override {
    adjust(delta);
#if PARKPOOL_TBB_RML_TSAN
    tsan_client_calls_.fetch_add(1, std::memory_order_release);  // see tsan_client_calls_
#endif
  }

 private:
  void adjust(int delta) noexcept {
    if (delta < 0) {
      // Relaxed: fewer workers wanted publishes nothing; active workers see it on their next
      // look and give their units back.
      word_.fetch_sub(slack_units(-static_cast<std::int64_t>(delta)), std::memory_order_relaxed);
      return;
    }
    if (delta == 0) return;
    // Release: the client's state that made it ask for workers (oneTBB: the arena's new tasks)
    // becomes visible to whichever worker claims one of these units (acquire CAS in claim() and
    // maybe_launch()). It is also the publication notify_work() covers.
    const std::uint64_t before = word_.fetch_add(slack_units(delta), std::memory_order_release);
    if (idle_of(before) != 0) idle_.notify_work();
    maybe_launch();
  }

  static void* thread_main(void* arg) noexcept {
    auto* start = static_cast<StartArgs*>(arg);
    Server* self = start->server;
    const std::size_t index = start->index;
    delete start;
    self->run(index);
    return nullptr;
  }

  struct StartArgs {
    Server* server;
    std::size_t index;
  };

  // has_work() of the idle handshake. Relaxed: the coordinator's fences order it (pool/SLEEP.md,
  // INV-NOLOST); the client's state is acquired by the CAS in claim().
  bool has_units() const noexcept { return slack_of(word_.load(std::memory_order_relaxed)) > 0; }

  void run(std::size_t w) noexcept {
    t_current_server = this;
    abi::Job* job = client_.create_one_job();
    maybe_launch();  // the chain reaction: more units than idle workers -> start the next thread
    for (;;) {
      // Acquire: pairs with the release store in request_close_connection().
      if (quit_.load(std::memory_order_acquire)) break;
      // Relaxed: only decides whether to keep running; the claim that made this worker active
      // (or the thread start) already ordered the client's state.
      const std::uint64_t s = word_.load(std::memory_order_relaxed);
      if (slack_of(s) >= 0) {
        client_.process(*job);
        continue;
      }
      if (!give_back(s)) continue;  // slack went back to >= 0 meanwhile: keep running
      if (!sleep_until_claimed(w)) {
        g_counters.idle.fetch_sub(1, std::memory_order_relaxed);  // left idle by the close
        // The coordinator's shutdown bit, which ended the wait, is read relaxed: it orders
        // nothing. quit_ was stored before it, so this loop ends at once or nearly, and its
        // acquire (pairs with the release store in request_close_connection()) orders the
        // client's state before the cleanup() below.
        while (!quit_.load(std::memory_order_acquire)) sched_yield();
        break;
      }
    }
    client_.cleanup(*job);
    t_current_server = nullptr;
    bump(g_counters.exited);
    release_ref();  // may delete *this
  }

  // slack < 0: gives this worker's unit back and becomes idle. Relaxed: publishes nothing; the
  // coordinator's announce (A1 with its seq_cst fence) carries the sleep handshake.
  bool give_back(std::uint64_t s) noexcept {
    while (slack_of(s) < 0) {
      if (word_.compare_exchange_weak(s, s + kSlackOne + kIdleOne, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        g_counters.idle.fetch_add(1, std::memory_order_relaxed);  // statistic only
        return true;
      }
    }
    return false;
  }

  // Claims a unit for an idle worker. Acquire: pairs with adjust's release fetch_add.
  bool claim() noexcept {
    std::uint64_t s = word_.load(std::memory_order_relaxed);  // relaxed: seeds the CAS
    while (slack_of(s) > 0) {
      if (word_.compare_exchange_weak(s, s - kSlackOne - kIdleOne, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Idle until a unit is claimed (true) or the connection closes (false).
  bool sleep_until_claimed(std::size_t w) noexcept {
    auto units = [this]() noexcept { return has_units(); };
    for (;;) {
      if (!idle_.wait_for_work(w, units)) return false;
      if (claim()) {
        g_counters.idle.fetch_sub(1, std::memory_order_relaxed);  // statistic only
        bump(g_counters.wakeups);
        idle_.found_work(w, units);  // last searcher and units remain: wake the next sleeper
        maybe_launch();              // units remain and nobody is idle: start a thread
        return true;
      }
      // Lost the unit to another idle worker (or a stale wake): look again.
    }
  }

  // While slack > 0 and no worker is idle, claims a unit and starts a thread for it; at most
  // two per call (the new threads continue the chain).
  void maybe_launch() noexcept {
    for (int started = 0; started < 2; ++started) {
      std::uint64_t s = word_.load(std::memory_order_relaxed);  // relaxed: seeds the CAS
      do {
        if (slack_of(s) <= 0 || idle_of(s) != 0) return;
        // Acquire: pairs with adjust's release; the new thread inherits it (pthread_create).
      } while (!word_.compare_exchange_weak(s, s - kSlackOne, std::memory_order_acquire,
                                            std::memory_order_relaxed));
      if (!launch_one()) {
        // No capacity (max_job_count threads, or closing): give the unit back. Relaxed, like
        // give_back()'s: this thread publishes nothing, and the client's state that the unit
        // stands for stays published to its next claimer by adjust()'s release fetch_add: every
        // write to word_ is an RMW, so this one continues that release sequence, and a claim()
        // or the CAS above that reads it still synchronizes with adjust() ([intro.races]). A
        // worker may have gone idle meanwhile: notify_work() (its own seq_cst fence, N1) keeps
        // the no-lost-wakeup handshake for it, with this RMW as the publication. (Release until
        // 2026-12-08: stronger than needed.)
        word_.fetch_add(kSlackOne, std::memory_order_relaxed);
        idle_.notify_work();
        return;
      }
    }
  }

  // Starts a thread for a claimed unit; false when there is no capacity (max_job_count threads
  // started, or the connection is closing). A thread that cannot be started ends the process
  // (fail_launch).
  bool launch_one() noexcept {
    std::lock_guard<std::mutex> lock(launch_mutex_);
    if (closing_ || launched_ >= max_workers_) return false;
    auto* args = new (std::nothrow) StartArgs{this, launched_};
    if (args == nullptr) fail_launch("out of memory", ENOMEM);
    pthread_attr_t attr;
    if (const int rc = pthread_attr_init(&attr); rc != 0) fail_launch("pthread_attr_init", rc);
    if (stack_size_ > 0) {
      // Below PTHREAD_STACK_MIN or misaligned sizes are rounded up; a refused size keeps the
      // default (oneTBB asks for 4 MiB by default, which is always accepted).
      const std::size_t page = 4096;
      std::size_t size =
          std::max<std::size_t>(stack_size_, static_cast<std::size_t>(PTHREAD_STACK_MIN));
      size = (size + page - 1) / page * page;
      (void)pthread_attr_setstacksize(&attr, size);
    }
    // Every worker runs on the process's CPUs, whichever thread starts it: the client's thread
    // that raised the demand may be pinned to one CPU, and a worker it started would otherwise
    // inherit that (and pass it on to the workers it starts). oneTBB's private server does the
    // same. A mask the kernel refuses keeps the inherited one.
    if (cpu_mask_) (void)pthread_attr_setaffinity_np(&attr, sizeof(cpu_set_t), &*cpu_mask_);
    // Relaxed: the reference is taken before the thread exists; the thread's release of it is
    // ordered by the acq_rel decrement in release_ref().
    refs_.fetch_add(1, std::memory_order_relaxed);
    const int rc = pthread_create(&threads_[launched_], &attr, &Server::thread_main, args);
    pthread_attr_destroy(&attr);
    if (rc != 0) fail_launch("pthread_create", rc);
    ++launched_;
    bump(g_counters.started);
    return true;
  }

  void release_ref() noexcept {
    // acq_rel: the last one to drop its reference sees every other thread's work (their cleanup()
    // calls) before acknowledging, and nobody touches *this after their decrement.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    acknowledge_close_in_onetbb(client_);
    delete this;
  }

  abi::TbbClient& client_;
  const unsigned max_workers_;
  const std::size_t stack_size_;
  const std::optional<cpu_set_t> cpu_mask_;         // every worker's CPUs (nullopt: inherited)
  alignas(64) std::atomic<std::uint64_t> word_{0};  // slack | idle, its own cache line
  // false -> true once, in request_close_connection() (release); run() reads it (acquire).
  std::atomic<bool> quit_{false};
  std::atomic<std::size_t> refs_{1};  // the connection
#if PARKPOOL_TBB_RML_TSAN
  // oneTBB guarantees that every adjust_job_count_estimate() call returned before it calls
  // request_close_connection() (its market's reference count orders them, inside libtbb). TSAN
  // cannot see that ordering, and reported the last worker's `delete this` as racing with reads
  // an earlier adjust made on another thread. Under TSAN only, each adjust ends with a release
  // RMW here and the close begins with an acquire load: the same ordering, made visible. (The
  // production build relies on oneTBB's guarantee, as oneTBB's private server does.)
  std::atomic<std::uint64_t> tsan_client_calls_{0};
#endif
  IdleCoordinator idle_;

  std::mutex launch_mutex_;
  bool closing_ = false;            // under launch_mutex_
  std::size_t launched_ = 0;        // under launch_mutex_
  std::vector<pthread_t> threads_;  // [0, launched_) valid, under launch_mutex_
};

}  // namespace
}  // namespace parkpool::tbb_rml

namespace rml = parkpool::tbb_rml::abi;  // not "abi": <cxxabi.h> owns that name
using parkpool::tbb_rml::g_counters;

extern "C" {

PARKPOOL_TBB_RML_EXPORT rml::Status __RML_open_factory(rml::Factory& factory,
                                                       rml::version_type& server_version,
                                                       rml::version_type client_version) {
  server_version = parkpool::tbb_rml::kClientInterfaceVersion;
  if (client_version != parkpool::tbb_rml::kClientInterfaceVersion) return rml::st_incompatible;
  if (parkpool::tbb_rml::env_flag("PARKPOOL_TBB_DISABLE")) return rml::st_incompatible;
  // Found through the weak symbols, oneTBB has no handle for us: mark "never unload", which also
  // makes it call __RML_close_factory at shutdown. A real handle (found as libirml.so.1) stays.
  if (factory.library_handle == nullptr) {
    factory.library_handle = reinterpret_cast<void*>(rml::kDontUnload);
  }
  return rml::st_success;
}

PARKPOOL_TBB_RML_EXPORT rml::Status __RML_close_factory(rml::Factory&) {
  // Nothing to wait for: each connection cleans up in request_close_connection().
  return rml::st_success;
}

PARKPOOL_TBB_RML_EXPORT rml::Status __TBB_make_rml_server(rml::Factory&, rml::TbbServer*& server,
                                                          rml::TbbClient& client) {
  using namespace parkpool::tbb_rml;
  if (env_flag("PARKPOOL_TBB_DISABLE")) return rml::st_incompatible;
  if (client.version() != kClientObjectVersion) return rml::st_incompatible;
  const unsigned requested = client.max_job_count();
  const auto max_workers = static_cast<unsigned>(
      std::clamp<std::size_t>(requested, 1, parkpool::IdleCoordinator::kMaxWorkers));
  const std::size_t stack = client.min_stack_size();
  IdlePreset preset = idle_preset_from_env();
  const std::optional<cpu_set_t> mask = process_cpu_mask();
  // At most half the CPUs search (spin) at once, not half of max_job_count (256 for oneTBB).
  preset.options.max_searching = std::max(1u, usable_cpus(mask) / 2);
  try {
    server = new Server(client, max_workers, stack, mask, preset.options);
  } catch (...) {
    return rml::st_incompatible;  // out of memory: oneTBB falls back to its private server
  }
  bump(g_counters.connections);
  if (env_flag("PARKPOOL_TBB_VERBOSE")) {
    std::fprintf(stderr,
                 "parkpool_tbb: oneTBB connected to the parkpool RML server (max_job_count %u, "
                 "stack %zu, idle preset %s)\n",
                 requested, stack, preset.name);
  }
  return rml::st_success;
}

PARKPOOL_TBB_RML_EXPORT void __TBB_call_with_my_server_info(rml::ServerInfoCallback callback,
                                                            void* arg) {
  if (callback != nullptr) {
    callback(arg, "parkpool_tbb: parkpool RML server (Parker + IdleCoordinator), interface 2");
  }
}

PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_connections(void) {
  return g_counters.connections.load(std::memory_order_relaxed);
}
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_closed_connections(void) {
  return g_counters.closed.load(std::memory_order_relaxed);
}
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_threads_started(void) {
  return g_counters.started.load(std::memory_order_relaxed);
}
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_threads_exited(void) {
  return g_counters.exited.load(std::memory_order_relaxed);
}
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_wakeups(void) {
  return g_counters.wakeups.load(std::memory_order_relaxed);
}
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_idle_workers(void) {
  const long long n = g_counters.idle.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<unsigned long long>(n) : 0;  // a racing snapshot is never negative
}

}  // extern "C"

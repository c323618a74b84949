// White-box tests of libparkpool_tbb through the binary interface oneTBB uses, without oneTBB:
// the version handshake (refusal codes), and a fake client (same virtual layout as oneTBB's
// market, src/tbb_rml/rml_abi.hpp) that checks the server's contract: workers are created on
// demand, up to max_job_count, with the requested stack; they run process() while wanted, go idle
// when the demand drops, come back when it rises; closing runs cleanup() on each worker's own
// thread, then acknowledge_close_connection() once. Fully instrumented under TSAN and ASAN.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "parkpool/tbb_rml.h"
#include "parkpool_test.hpp"
#include "rml_abi.hpp"

namespace rml = parkpool::tbb_rml::abi;

namespace {

// Polls cond until it holds or the deadline passes (the server reaches these states on its own
// threads; there is nothing to wait on). Returns the final value.
template <class Cond>
bool eventually(Cond cond, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= end) return cond();
    std::this_thread::yield();
  }
  return true;
}

class FakeJob {
 public:
  explicit FakeJob(pthread_t owner) : owner_(owner) {}
  pthread_t owner() const { return owner_; }
  std::size_t stack_size = 0;
  int cpu_count = -1;  // CPUs the job's thread may run on when it was created (-1: unknown)

 private:
  pthread_t owner_;
};

// Mimics oneTBB's market through the same virtual layout.
class FakeClient final : public rml::TbbClient {
 public:
  FakeClient(unsigned max_jobs, std::size_t stack, rml::version_type version = 0)
      : max_jobs_(max_jobs), stack_(stack), version_(version) {}

  rml::version_type version() const override { return version_; }
  unsigned max_job_count() const override { return max_jobs_; }
  std::size_t min_stack_size() const override { return stack_; }

  rml::Job* create_one_job() override {
    auto* job = new FakeJob(pthread_self());
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (pthread_getaffinity_np(pthread_self(), sizeof(cpus), &cpus) == 0) {
      job->cpu_count = CPU_COUNT(&cpus);
    }
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstacksize(&attr, &job->stack_size);
      pthread_attr_destroy(&attr);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(job);
    created_.fetch_add(1, std::memory_order_relaxed);
    return reinterpret_cast<rml::Job*>(job);
  }

  void acknowledge_close_connection() override {
    acknowledged_.fetch_add(1, std::memory_order_acq_rel);
  }

  void cleanup(rml::Job& j) override {
    auto* job = reinterpret_cast<FakeJob*>(&j);
    // oneTBB requires cleanup on the job's own thread (it clears that thread's TLS).
    if (!pthread_equal(job->owner(), pthread_self())) wrong_thread_cleanups_.fetch_add(1);
    // A plain read of state the closing thread wrote before request_close_connection(), as
    // oneTBB's cleanup reads its market's shutdown state: the server must order the two (a data
    // race under TSAN otherwise).
    if (state_before_close != kClosing) cleanups_missing_close_state_.fetch_add(1);
    cleaned_.fetch_add(1, std::memory_order_acq_rel);
  }

  void process(rml::Job& j) override {
    auto* job = reinterpret_cast<FakeJob*>(&j);
    if (!pthread_equal(job->owner(), pthread_self())) wrong_thread_process_.fetch_add(1);
    processed_.fetch_add(1, std::memory_order_relaxed);
    // Closing from one of the server's own workers, as oneTBB does when a worker drops the last
    // reference to its market: the server then detaches its threads instead of joining them.
    // Acquire: pairs with the test's release store; server_for_close is set.
    if (close_from_worker.load(std::memory_order_acquire) &&
        !closed_by_worker_.exchange(true, std::memory_order_relaxed)) {
      close(*server_for_close);
    }
    std::this_thread::yield();  // like oneTBB's market, which yields when no arena needs it
  }

  // What a client does to close: write its own shutdown state, then close the connection.
  void close(rml::TbbServer& server) {
    state_before_close = kClosing;
    server.request_close_connection(false);
  }

  ~FakeClient() override {
    for (FakeJob* j : jobs_) delete j;
  }

  std::vector<int> worker_cpu_counts() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int> v;
    for (FakeJob* j : jobs_) v.push_back(j->cpu_count);
    return v;
  }

  std::vector<std::size_t> stack_sizes() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::size_t> v;
    for (FakeJob* j : jobs_) v.push_back(j->stack_size);
    return v;
  }

  static constexpr int kClosing = 1;
  int state_before_close = 0;  // plain: written by the closing thread only, read by cleanup()
  std::atomic<bool> close_from_worker{false};
  rml::TbbServer* server_for_close = nullptr;  // set before close_from_worker

  std::atomic<int> created_{0}, cleaned_{0}, acknowledged_{0};
  std::atomic<int> wrong_thread_cleanups_{0}, wrong_thread_process_{0};
  std::atomic<int> cleanups_missing_close_state_{0};
  std::atomic<long> processed_{0};
  std::atomic<bool> closed_by_worker_{false};

 private:
  unsigned max_jobs_;
  std::size_t stack_;
  rml::version_type version_;
  std::mutex mutex_;
  std::vector<FakeJob*> jobs_;
};

rml::Factory open_factory_or_fail() {
  rml::Factory f{};
  rml::version_type server_version = 0;
  EXPECT_EQ(__RML_open_factory(f, server_version, PARKPOOL_TBB_RML_CLIENT_VERSION),
            rml::st_success);
  return f;
}

}  // namespace

TEST(TbbRmlHandshake, RefusesOtherClientVersions) {
  for (rml::version_type v : {0u, 1u, 3u, 100u}) {
    rml::Factory f{};
    rml::version_type server_version = 0;
    EXPECT_EQ(__RML_open_factory(f, server_version, v), PARKPOOL_TBB_RML_ST_INCOMPATIBLE) << v;
    EXPECT_EQ(f.library_handle, nullptr) << "a refused factory must stay untouched";
    EXPECT_EQ(server_version, PARKPOOL_TBB_RML_CLIENT_VERSION);
  }
}

TEST(TbbRmlHandshake, AcceptsVersionTwoAndPinsTheLibrary) {
  rml::Factory f{};
  rml::version_type server_version = 0;
  ASSERT_EQ(__RML_open_factory(f, server_version, 2), PARKPOOL_TBB_RML_ST_SUCCESS);
  EXPECT_EQ(server_version, 2u);
  EXPECT_EQ(f.library_handle, reinterpret_cast<void*>(rml::kDontUnload));
  EXPECT_EQ(__RML_close_factory(f), rml::st_success);
}

TEST(TbbRmlHandshake, RefusesAClientObjectOfAnotherVersion) {
  rml::Factory f = open_factory_or_fail();
  FakeClient client(4, 0, /*version=*/1);
  rml::TbbServer* server = nullptr;
  const auto before = parkpool_tbb_rml_connections();
  EXPECT_EQ(__TBB_make_rml_server(f, server, client), PARKPOOL_TBB_RML_ST_INCOMPATIBLE);
  EXPECT_EQ(server, nullptr);
  EXPECT_EQ(parkpool_tbb_rml_connections(), before);
}

TEST(TbbRmlHandshake, ServerInfoNamesParkpool) {
  std::string info;
  __TBB_call_with_my_server_info(
      [](void* arg, const char* text) { *static_cast<std::string*>(arg) = text; }, &info);
  EXPECT_NE(info.find("parkpool"), std::string::npos);
}

TEST(TbbRmlServer, WorkersFollowTheDemandAndCloseCleanly) {
  rml::Factory f = open_factory_or_fail();
  FakeClient client(/*max_jobs=*/8, /*stack=*/0);
  rml::TbbServer* server = nullptr;
  const auto connections = parkpool_tbb_rml_connections();
  const auto started = parkpool_tbb_rml_threads_started();
  const auto exited = parkpool_tbb_rml_threads_exited();
  ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(parkpool_tbb_rml_connections(), connections + 1);
  EXPECT_EQ(client.created_.load(), 0) << "threads start on demand, not at connection";

  server->adjust_job_count_estimate(2);
  ASSERT_TRUE(eventually([&] { return client.created_.load() == 2; }));
  ASSERT_TRUE(eventually([&] { return client.processed_.load() >= 2; }));

  // Demand drops to zero: both workers go idle (they stop calling process()).
  server->adjust_job_count_estimate(-2);
  ASSERT_TRUE(eventually([&] { return parkpool_tbb_rml_idle_workers() == 2; }));
  const long processed = client.processed_.load();
  const auto wakeups = parkpool_tbb_rml_wakeups();

  // Demand rises by one: exactly one idle worker comes back; no new thread.
  server->adjust_job_count_estimate(1);
  ASSERT_TRUE(eventually([&] { return parkpool_tbb_rml_wakeups() == wakeups + 1; }));
  ASSERT_TRUE(eventually([&] { return client.processed_.load() > processed; }));
  EXPECT_EQ(parkpool_tbb_rml_idle_workers(), 1u);
  EXPECT_EQ(client.created_.load(), 2);
  server->adjust_job_count_estimate(-1);

  // Closing from a non-worker thread joins the workers: everything is done when it returns.
  client.close(*server);
  EXPECT_EQ(client.cleaned_.load(), 2);
  EXPECT_EQ(client.cleanups_missing_close_state_.load(), 0);
  EXPECT_EQ(client.acknowledged_.load(), 1);
  EXPECT_EQ(client.wrong_thread_cleanups_.load(), 0);
  EXPECT_EQ(client.wrong_thread_process_.load(), 0);
  EXPECT_EQ(parkpool_tbb_rml_threads_started(), started + 2);
  EXPECT_EQ(parkpool_tbb_rml_threads_exited(), exited + 2);
  EXPECT_EQ(parkpool_tbb_rml_idle_workers(), 0u);
}

TEST(TbbRmlServer, NeverExceedsMaxJobCountAndHonoursTheStackSize) {
  rml::Factory f = open_factory_or_fail();
  constexpr std::size_t kStack = std::size_t{8} << 20;
  FakeClient client(/*max_jobs=*/3, kStack);
  rml::TbbServer* server = nullptr;
  ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
  server->adjust_job_count_estimate(10);  // more than max_job_count
  ASSERT_TRUE(eventually([&] { return client.created_.load() == 3; }));
  ASSERT_TRUE(eventually([&] { return client.processed_.load() >= 3; }));
  EXPECT_EQ(client.created_.load(), 3);
  for (std::size_t s : client.stack_sizes()) EXPECT_GE(s, kStack);
  server->adjust_job_count_estimate(-10);
  server->request_close_connection(false);
  EXPECT_EQ(client.cleaned_.load(), 3);
  EXPECT_EQ(client.acknowledged_.load(), 1);
}

TEST(TbbRmlServer, CloseWithoutAnyWorkerAcknowledgesAtOnce) {
  rml::Factory f = open_factory_or_fail();
  FakeClient client(4, 0);
  rml::TbbServer* server = nullptr;
  ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
  EXPECT_EQ(server->version(), PARKPOOL_TBB_RML_CLIENT_VERSION);
  EXPECT_EQ(server->default_concurrency(), 4u);
  server->independent_thread_number_changed(1);  // a hint: accepted, no effect
  server->yield();
  server->request_close_connection(false);
  EXPECT_EQ(client.acknowledged_.load(), 1);
  EXPECT_EQ(client.created_.load(), 0);
}

TEST(TbbRmlServer, ManyDemandSwingsLoseNoWorkerAndNoUnit) {
  rml::Factory f = open_factory_or_fail();
  FakeClient client(/*max_jobs=*/4, 0);
  rml::TbbServer* server = nullptr;
  const auto started_before = parkpool_tbb_rml_threads_started();
  ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
  // Two client threads raise and drop the demand concurrently, as oneTBB's arenas do.
  const int rounds = static_cast<int>(parkpool::test::scaled(2000, 10));
  auto swing = [&] {
    for (int i = 0; i < rounds; ++i) {
      server->adjust_job_count_estimate(2);
      server->adjust_job_count_estimate(-2);
    }
  };
  std::thread a(swing), b(swing);
  a.join();
  b.join();
  // Net demand 0: every worker ends up idle. Then net 2: exactly two of them come back (each
  // unit is taken by an idle or a new worker, none is lost or taken twice).
  auto idle = [] { return static_cast<int>(parkpool_tbb_rml_idle_workers()); };
  // A thread counts in created_ only once it runs: every started thread must have, or one still
  // starting (with the unit a swing claimed for it) would count neither as idle nor as created.
  auto started = [&] {
    return static_cast<int>(parkpool_tbb_rml_threads_started() - started_before);
  };
  ASSERT_TRUE(eventually([&] {
    const int c = client.created_.load();
    return c == started() && idle() == c;
  }));
  // Idle workers take the new units before any thread is started: one more only if there was
  // a single worker.
  const int created = std::max(client.created_.load(), 2);
  server->adjust_job_count_estimate(2);
  ASSERT_TRUE(eventually([&] { return idle() + 2 == client.created_.load(); }));
  EXPECT_EQ(client.created_.load(), created);
  const long before = client.processed_.load();
  ASSERT_TRUE(eventually([&] { return client.processed_.load() > before; }));
  server->adjust_job_count_estimate(-2);
  ASSERT_TRUE(eventually([&] { return idle() == client.created_.load(); }));
  server->request_close_connection(false);
  EXPECT_EQ(client.cleaned_.load(), client.created_.load());
  EXPECT_LE(client.created_.load(), 4);
  EXPECT_EQ(client.acknowledged_.load(), 1);
}

// Sets an environment variable for one scope (the server reads PARKPOOL_TBB_IDLE when it is made).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_.empty()) {
      unsetenv(name_);
    } else {
      setenv(name_, old_.c_str(), 1);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
};

// The close must happen before every worker's cleanup(), including a worker that leaves from its
// idle wait. A spinning idle worker (the latency preset spins) sees the coordinator's shutdown
// without any synchronisation, so the server has to order the close for it: without that, TSAN
// reports the client's plain read in cleanup() as a race with the closing thread's write (found
// by review: 7 of 7 runs with the latency preset). Elsewhere the value read is checked.
TEST(TbbRmlServer, CleanupOfAnIdleWorkerSeesTheClientsStateFromBeforeTheClose) {
  ScopedEnv preset("PARKPOOL_TBB_IDLE", "latency");
  const int rounds = static_cast<int>(parkpool::test::scaled(20, 4));
  for (int r = 0; r < rounds; ++r) {
    rml::Factory f = open_factory_or_fail();
    FakeClient client(/*max_jobs=*/2, 0);
    rml::TbbServer* server = nullptr;
    ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
    server->adjust_job_count_estimate(2);
    ASSERT_TRUE(eventually([&] { return client.created_.load() == 2; }));
    server->adjust_job_count_estimate(-2);
    ASSERT_TRUE(eventually([&] { return parkpool_tbb_rml_idle_workers() == 2; }));
    client.close(*server);
    EXPECT_EQ(client.cleaned_.load(), 2);
    EXPECT_EQ(client.cleanups_missing_close_state_.load(), 0) << "round " << r;
    EXPECT_EQ(client.acknowledged_.load(), 1);
  }
}

// oneTBB closes the connection from one of the server's workers when that worker drops the last
// reference to its market: the server detaches the threads instead of joining (a thread cannot
// join itself), and every worker still runs cleanup() on its own thread, then the last one
// acknowledges.
TEST(TbbRmlServer, CloseFromAWorkerDetachesAndStillCleansUpEveryWorker) {
  const int rounds = static_cast<int>(parkpool::test::scaled(50, 10));
  for (int r = 0; r < rounds; ++r) {
    const auto started = parkpool_tbb_rml_threads_started();
    const auto exited = parkpool_tbb_rml_threads_exited();
    rml::Factory f = open_factory_or_fail();
    FakeClient client(/*max_jobs=*/3, 0);
    rml::TbbServer* server = nullptr;
    ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
    server->adjust_job_count_estimate(3);
    ASSERT_TRUE(eventually([&] { return client.created_.load() == 3; }));
    client.server_for_close = server;
    client.close_from_worker.store(true, std::memory_order_release);  // server_for_close is set
    // acknowledge_close_connection() is the server's last touch of the client.
    ASSERT_TRUE(eventually([&] { return client.acknowledged_.load() == 1; })) << "round " << r;
    EXPECT_EQ(client.cleaned_.load(), 3);
    EXPECT_EQ(client.cleanups_missing_close_state_.load(), 0);
    EXPECT_EQ(client.wrong_thread_cleanups_.load(), 0);
    EXPECT_EQ(parkpool_tbb_rml_threads_started(), started + 3);
    EXPECT_EQ(parkpool_tbb_rml_threads_exited(), exited + 3);
  }
}

// Workers run on the process's CPUs, not on those of the thread whose demand started them: a
// client thread pinned to one CPU (an application's pinned I/O thread that runs the first
// parallel algorithm) must not pin every worker (found by review: each worker inherited the
// pinned mask through pthread_create, and passed it on to the workers it started).
TEST(TbbRmlServer, WorkersRunOnTheProcessCpusWhicheverThreadStartedThem) {
  cpu_set_t process;
  CPU_ZERO(&process);
  ASSERT_EQ(sched_getaffinity(getpid(), sizeof(process), &process), 0);
  const int cpus = CPU_COUNT(&process);
  if (cpus < 2) GTEST_SKIP() << "needs two usable CPUs to pin a thread to fewer; has " << cpus;
  std::size_t first = 0;
  while (!CPU_ISSET(first, &process)) ++first;

  rml::Factory f = open_factory_or_fail();
  FakeClient client(/*max_jobs=*/4, 0);
  rml::TbbServer* server = nullptr;
  ASSERT_EQ(__TBB_make_rml_server(f, server, client), rml::st_success);
  std::thread pinned([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
    server->adjust_job_count_estimate(4);  // starts up to two threads here, they start the rest
  });
  pinned.join();
  ASSERT_TRUE(eventually([&] { return client.created_.load() == 4; }));
  for (int n : client.worker_cpu_counts()) EXPECT_EQ(n, cpus);
  server->adjust_job_count_estimate(-4);
  client.close(*server);
  EXPECT_EQ(client.cleaned_.load(), 4);
}

// A worker thread that cannot be started ends the process with a message, as it does with
// oneTBB's private server, instead of leaving the unit of work it was for with nobody to run it
// (found by review: the unit went back unseen, and a task_arena::enqueue never ran). A stack size
// no system can map makes pthread_create fail.
TEST(TbbRmlServerDeathTest, AThreadThatCannotStartAbortsWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rml::Factory f = open_factory_or_fail();
        FakeClient client(/*max_jobs=*/2, /*stack=*/std::size_t{1} << 44);  // 16 TiB
        rml::TbbServer* server = nullptr;
        if (__TBB_make_rml_server(f, server, client) != rml::st_success) std::exit(0);
        server->adjust_job_count_estimate(1);  // starts the thread on this one
        std::exit(0);                          // not reached
      },
      "parkpool_tbb: cannot start a oneTBB worker thread: pthread_create: ");
}

// The hang watchdog of every test executable (tests/support/test_main.cpp): a test that does not
// finish is reported (which test, its threads, their futex words) and ends the process with exit
// status 124 before ctest's TIMEOUT; a test that finishes is not reported. Each case runs the probe
// executable (tests/support/watchdog_probe.cpp) as a child with one --gtest_filter and its own
// environment, and checks its exit status and output.
#include <gtest/gtest.h>

#if defined(__linux__)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>

#ifndef PARKPOOL_WATCHDOG_PROBE
#error "PARKPOOL_WATCHDOG_PROBE (the probe executable's path) is set by tests/CMakeLists.txt"
#endif

namespace {

struct ProbeRun {
  bool killed = false;  // still running at the limit: this test killed it
  int exit_status = -1;
  std::string output;  // stdout and stderr
};

constexpr std::chrono::seconds kProbeLimit{30};

// The probe's watchdog settings: PARKPOOL_TEST_HANG_S and PARKPOOL_TEST_TIMEOUT_S (nullptr:
// unset), and whether it may run gdb (PARKPOOL_TEST_HANG_GDB).
struct ProbeEnv {
  const char* hang_s;
  const char* timeout_s;
  bool gdb = false;
};

// Runs the probe with `filter` and `env`; kills it if it still runs after `limit`.
ProbeRun run_probe(const std::string& filter, const ProbeEnv& env,
                   std::chrono::milliseconds limit = kProbeLimit) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  const std::string filter_arg = "--gtest_filter=" + filter;
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    const std::pair<const char*, const char*> vars[] = {
        {"PARKPOOL_TEST_HANG_S", env.hang_s},
        {"PARKPOOL_TEST_TIMEOUT_S", env.timeout_s},
        {"PARKPOOL_TEST_HANG_GDB", env.gdb ? nullptr : "0"}};
    for (const auto& [name, value] : vars) {
      if (value == nullptr) {
        ::unsetenv(name);
      } else {
        ::setenv(name, value, 1);
      }
    }
    ::execl(PARKPOOL_WATCHDOG_PROBE, PARKPOOL_WATCHDOG_PROBE, filter_arg.c_str(),
            "--gtest_color=no", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  ProbeRun run;
  if (child < 0) {
    ::close(fds[0]);
    return run;
  }
  const auto give_up = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(child, SIGKILL);
      run.killed = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;  // timeout or EINTR
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF: the probe (and any gdb it started) closed its output
    run.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!run.killed && WIFEXITED(status)) run.exit_status = WEXITSTATUS(status);
  return run;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(TestWatchdog, AHangingTestIsReportedWithItsThreadsAndEndsTheProcess) {
  const auto start = std::chrono::steady_clock::now();
  const ProbeRun r = run_probe("Probe.HangsInAFutexWait", {"1", nullptr});
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(r.killed) << "the watchdog did not end a test hung for " << kProbeLimit.count()
                         << " s under a 1 s limit; output:\n"
                         << r.output;
  EXPECT_EQ(r.exit_status, 124) << r.output;
  EXPECT_TRUE(contains(r.output, "Probe.HangsInAFutexWait did not finish within 1 s")) << r.output;
  // The hung thread, by name, in the futex wait it never leaves.
  EXPECT_TRUE(contains(r.output, "\"hang-probe\" state S, in futex(0x")) << r.output;
  EXPECT_TRUE(contains(r.output, "(the watchdog)")) << r.output;
  EXPECT_TRUE(contains(r.output, "ending the process (exit status 124)")) << r.output;
  EXPECT_FALSE(contains(r.output, "backtraces (gdb)")) << "PARKPOOL_TEST_HANG_GDB=0\n" << r.output;
  EXPECT_GE(took, 1.0) << "reported before its 1 s limit";
}

TEST(TestWatchdog, TheReportComesBeforeTheCtestTimeoutWhateverTheTestsOwnLimit) {
  // TIMEOUT 11 s: the report is due 10 s before it, 1 s after the probe starts, long before the
  // test's own limit of 60 s.
  const ProbeRun r = run_probe("Probe.HangsInAFutexWait", {"60", "11"});
  ASSERT_FALSE(r.killed) << "no report within " << kProbeLimit.count()
                         << " s with a ctest TIMEOUT of 11 s; output:\n"
                         << r.output;
  EXPECT_EQ(r.exit_status, 124) << r.output;
  EXPECT_TRUE(contains(r.output, "Probe.HangsInAFutexWait has run for")) << r.output;
  EXPECT_TRUE(contains(r.output, "is 10 s from its ctest TIMEOUT of 11 s")) << r.output;
}

TEST(TestWatchdog, TestsThatEachFinishWithinTheLimitAreNotReported) {
  // 3 x 0.4 s under a 1 s limit: the limit counts from each test's start.
  const ProbeRun r = run_probe("Probe.FinishesIn400ms*", {"1", nullptr});
  ASSERT_FALSE(r.killed) << r.output;
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "[  PASSED  ] 3 tests")) << r.output;
  EXPECT_FALSE(contains(r.output, "watchdog")) << r.output;
}

TEST(TestWatchdog, ZeroTurnsItOff) {
  // Off: the hung probe is still running when this test kills it, 3 s in (3x the 1 s above).
  const ProbeRun r = run_probe("Probe.HangsInAFutexWait", {"0", "11"}, std::chrono::seconds(3));
  EXPECT_TRUE(r.killed) << "PARKPOOL_TEST_HANG_S=0 did not turn the watchdog off; output:\n"
                        << r.output;
  EXPECT_FALSE(contains(r.output, "watchdog")) << r.output;
}

TEST(TestWatchdog, TheReportHasEveryThreadsBacktraceWhenGdbIsInstalled) {
  if (std::system("command -v gdb >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "gdb is not installed (the report then has the /proc part only, as checked "
                    "above)";
  }
  const ProbeRun r = run_probe("Probe.HangsInAFutexWait", {"1", nullptr, true});
  ASSERT_FALSE(r.killed) << r.output;
  if (contains(r.output, "ptrace: Operation not permitted")) {
    GTEST_SKIP() << "gdb may not attach here (no ptrace permission): " << r.output;
  }
  EXPECT_EQ(r.exit_status, 124) << r.output;
  EXPECT_TRUE(contains(r.output, "backtraces (gdb):")) << r.output;
  // The hung thread's frames, by function name.
  EXPECT_TRUE(contains(r.output, "hang_probe_thread")) << r.output;
  EXPECT_FALSE(contains(r.output, "gdb did not finish in time")) << r.output;
}

}  // namespace
#endif  // __linux__

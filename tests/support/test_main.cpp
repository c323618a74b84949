// The main() of every parkpool GoogleTest executable: GoogleTest's own main plus a hang watchdog.
//
// Why
//   A lost wakeup or a deadlock in the code under test shows up as a test that never finishes.
//   Without the watchdog, ctest kills the whole executable at its TIMEOUT and shows nothing but
//   the last "[ RUN ]" line. With it, the process ends itself first, with a report on stderr:
//   the test that hung and for how long, then every thread of the process with its name, its
//   scheduler state and the system call it is blocked in (for a futex wait, the address of the
//   word it sleeps on), then, where gdb is installed, every thread's backtrace. The exit status
//   is 124 (timeout(1)'s), so the test fails at once instead of at ctest's TIMEOUT.
//
// Limits, from the environment (read at the start of each test)
//   PARKPOOL_TEST_HANG_S     a test still running after this many seconds is reported (default
//                            45: the slowest test took 7.3 s in CI, and the tests' own bounded
//                            waits, which name what was lost, end by 30 s and so report first).
//                            0 turns the watchdog off, e.g. to sit in a debugger.
//   PARKPOOL_TEST_TIMEOUT_S  the ctest TIMEOUT of this executable, set by tests/CMakeLists.txt:
//                            a test is reported 10 s before it at the latest, so that the report
//                            comes before ctest's kill even if earlier tests used up most of it.
//   PARKPOOL_TEST_HANG_GDB   0: no gdb backtraces (the report then has the /proc part only).
//
// Costs nothing a test can see: one thread, created before the first test starts and blocked on
// a std::condition_variable while tests run (no CPU, no allocation after its start). It uses only
// std:: synchronisation, never parkpool's own, which is what the tests may have broken.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHangExitStatus = 124;
constexpr long kDefaultHangSeconds = 45;
constexpr long kTimeoutMarginSeconds = 10;

// A non-negative integer from the environment, or `fallback` if unset or malformed.
long env_seconds(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n >= 0) ? n : fallback;
}

// Output without stdio: a thread that hung may hold stdout's or stderr's FILE lock.
void say(const char* text) {
#if defined(__linux__)
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
#else
  std::fputs(text, stderr);
#endif
}

#if defined(__linux__)
// The first line of a /proc file, without its newline ("" if unreadable).
void read_line(const char* path, char* buf, std::size_t size) {
  buf[0] = '\0';
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = ::read(fd, buf, size - 1);
  ::close(fd);
  buf[n > 0 ? n : 0] = '\0';
  if (char* nl = std::strchr(buf, '\n')) *nl = '\0';
}

const char* syscall_name(long nr) {
#if defined(__x86_64__)
  switch (nr) {
    case 202:
      return "futex";
    case 24:
      return "sched_yield";
    case 35:
      return "nanosleep";
    case 230:
      return "clock_nanosleep";
    case 7:
      return "poll";
    case 271:
      return "ppoll";
    case 232:
      return "epoll_wait";
    case 281:
      return "epoll_pwait";
    case 61:
      return "wait4";
    case 0:
      return "read";
    case 1:
      return "write";
    default:
      break;
  }
#endif
  (void)nr;
  return nullptr;
}

// One line per thread: tid, name, state, and the system call it is in (with its first two
// arguments: for a futex, the word's address and the operation).
void report_threads() {
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) {
    say("  (cannot read /proc/self/task)\n");
    return;
  }
  const long self = static_cast<long>(::gettid());
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[320], comm[64], stat[512], sys[256], line[640];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    read_line(path, comm, sizeof comm);
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    read_line(path, stat, sizeof stat);
    const char* close = std::strrchr(stat, ')');  // the name may contain spaces and ')'
    const char state = (close != nullptr && close[1] == ' ') ? close[2] : '?';
    std::snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
    read_line(path, sys, sizeof sys);
    // "nr arg1 arg2 ... sp pc", "running", or "-1 sp pc" (not in a system call).
    char call[160] = "";
    char* end = nullptr;
    const long nr = std::strtol(sys, &end, 10);
    if (end != sys && nr >= 0) {
      unsigned long long a1 = 0, a2 = 0;
      std::sscanf(end, " %llx %llx", &a1, &a2);
      const char* name = syscall_name(nr);
      if (name != nullptr) {
        std::snprintf(call, sizeof call, "in %s(0x%llx, 0x%llx, ...)", name, a1, a2);
      } else {
        std::snprintf(call, sizeof call, "in system call %ld(0x%llx, 0x%llx, ...)", nr, a1, a2);
      }
    } else if (std::strncmp(sys, "running", 7) == 0) {
      std::snprintf(call, sizeof call, "running");
    } else {
      std::snprintf(call, sizeof call, "in user code");
    }
    std::snprintf(line, sizeof line, "  thread %s \"%s\" state %c, %s%s\n", e->d_name, comm, state,
                  call, std::strtol(e->d_name, nullptr, 10) == self ? " (the watchdog)" : "");
    say(line);
  }
  ::closedir(dir);
}

// The path of an executable gdb on PATH, in `out`; false if there is none.
bool find_gdb(char* out, std::size_t size) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) path = "/usr/bin:/bin";
  while (*path != '\0') {
    const char* colon = std::strchr(path, ':');
    const std::size_t len =
        colon != nullptr ? static_cast<std::size_t>(colon - path) : std::strlen(path);
    if (len > 0 && len + 5 < size) {
      std::memcpy(out, path, len);
      std::memcpy(out + len, "/gdb", 5);
      if (::access(out, X_OK) == 0) return true;
    }
    if (colon == nullptr) break;
    path = colon + 1;
  }
  return false;
}

// Every thread's backtrace from `gdb -batch -p <this process>`, on stderr; bounded by `give_up`.
void report_backtraces(Clock::time_point give_up) {
  if (env_seconds("PARKPOOL_TEST_HANG_GDB", 1) == 0) return;
  char gdb[512];
  if (!find_gdb(gdb, sizeof gdb)) {
    say("(gdb is not installed: no backtraces)\n");
    return;
  }
  char pid[32];
  std::snprintf(pid, sizeof pid, "%ld", static_cast<long>(::getpid()));
  // Yama's ptrace_scope 1 lets a process trace only its descendants unless the tracee allows it.
  ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  say("backtraces (gdb):\n");
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execl(gdb, gdb, "-batch", "-nx", "-p", pid, "-ex", "thread apply all bt", nullptr);
    ::_exit(127);
  }
  if (child < 0) {
    say("(fork failed: no backtraces)\n");
    return;
  }
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (Clock::now() >= give_up) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      say("(gdb did not finish in time)\n");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child, not a race
  }
}
#endif  // __linux__

class HangWatchdog final : public ::testing::EmptyTestEventListener {
 public:
  HangWatchdog()
      : timeout_s_(env_seconds("PARKPOOL_TEST_TIMEOUT_S", 0)),
        budget_end_(Clock::now() +
                    std::chrono::seconds(std::max(0L, timeout_s_ - kTimeoutMarginSeconds))) {}
  ~HangWatchdog() override { stop(); }

  void OnTestStart(const ::testing::TestInfo& info) override {
    const long hang_s = env_seconds("PARKPOOL_TEST_HANG_S", kDefaultHangSeconds);
    if (hang_s == 0) return;  // off for this test
    const Clock::time_point start = Clock::now();
    Clock::time_point deadline = start + std::chrono::seconds(hang_s);
    bool by_timeout = false;
    if (timeout_s_ > 0 && budget_end_ < deadline) {
      deadline = budget_end_;
      by_timeout = true;
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      suite_ = info.test_suite_name();  // TestInfo outlives the run: no copy, no allocation
      name_ = info.name();
      start_ = start;
      deadline_ = deadline;
      hang_s_ = hang_s;
      by_timeout_ = by_timeout;
      running_ = true;
      ++generation_;
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { watch(); });
    cv_.notify_one();
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    {
      std::lock_guard<std::mutex> lock(m_);
      running_ = false;
      ++generation_;
    }
    cv_.notify_one();
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override { stop(); }

 private:
  void stop() {
    {
      std::lock_guard<std::mutex> lock(m_);
      quit_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  void watch() {
#if defined(__linux__)
    ::prctl(PR_SET_NAME, "test-watchdog", 0, 0, 0);
#endif
    std::unique_lock<std::mutex> lock(m_);
    while (!quit_) {
      if (!running_) {
        cv_.wait(lock, [this] { return quit_ || running_; });
        continue;
      }
      const unsigned long generation = generation_;
      if (cv_.wait_until(lock, deadline_, [&] { return quit_ || generation_ != generation; })) {
        continue;  // the test ended (or another started): re-arm
      }
      report();  // does not return
    }
  }

  // Called with m_ held; ends the process.
  [[noreturn]] void report() {
    const double ran = std::chrono::duration<double>(Clock::now() - start_).count();
    char head[1024];
    if (by_timeout_) {
      std::snprintf(head, sizeof head,
                    "\n*** parkpool test watchdog: %s.%s has run for %.1f s and this executable "
                    "is %ld s from its ctest TIMEOUT of %ld s (PARKPOOL_TEST_TIMEOUT_S). The test "
                    "did not finish: a lost wakeup or a deadlock is the likely cause. Threads: "
                    "***\n",
                    suite_, name_, ran, kTimeoutMarginSeconds, timeout_s_);
    } else {
      std::snprintf(head, sizeof head,
                    "\n*** parkpool test watchdog: %s.%s did not finish within %ld s "
                    "(PARKPOOL_TEST_HANG_S; it has run for %.1f s): a lost wakeup or a deadlock is "
                    "the likely cause. Threads: ***\n",
                    suite_, name_, hang_s_, ran);
    }
    say(head);
#if defined(__linux__)
    report_threads();
    // gdb gets 8 s: with the /proc part, the report ends before ctest's TIMEOUT (10 s away at
    // the latest).
    report_backtraces(Clock::now() + std::chrono::seconds(kTimeoutMarginSeconds - 2));
#endif
    say("*** parkpool test watchdog: ending the process (exit status 124) ***\n");
    std::_Exit(kHangExitStatus);
  }

  const long timeout_s_;
  const Clock::time_point budget_end_;
  std::mutex m_;
  std::condition_variable cv_;
  // Guarded by m_:
  const char* suite_ = "";
  const char* name_ = "";
  Clock::time_point start_{};
  Clock::time_point deadline_{};
  long hang_s_ = 0;
  bool by_timeout_ = false;
  bool running_ = false;
  bool quit_ = false;
  unsigned long generation_ = 0;
  std::thread thread_;  // started by the first OnTestStart, joined by OnTestProgramEnd
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // The listener list owns (and deletes) the watchdog after RUN_ALL_TESTS.
  ::testing::UnitTest::GetInstance()->listeners().Append(new HangWatchdog);
  return RUN_ALL_TESTS();
}

// A thread's scheduler state, read from /proc (Linux only), for tests that must act only once
// another thread of the process is blocked in the kernel (a futex wait, a park): "wake it only
// after it sleeps". Such a test must stay correct if the state is seen early or never (another
// reason to block, a slow machine): waiting only makes the interleaving it checks likely, and
// the wait is bounded.
#pragma once

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace parkpool::test {

/// The calling thread's kernel thread id.
inline pid_t current_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

/// The scheduler state letter of thread `tid` of this process ('S': sleeping), or '?'.
inline char thread_state(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(f, line);
  const auto close = line.rfind(')');  // the command name may contain spaces
  return close == std::string::npos || close + 2 >= line.size() ? '?' : line[close + 2];
}

/// Yields until thread `tid` is sleeping in the kernel or `limit` has passed; true if it was seen
/// sleeping.
inline bool wait_until_sleeping(pid_t tid, std::chrono::milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (thread_state(tid) != 'S') {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace parkpool::test
#endif  // __linux__

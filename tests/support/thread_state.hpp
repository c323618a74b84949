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
#include <cstdint>
#include <fstream>
#include <optional>
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

/// A futex(2) call thread `tid` of this process is blocked in, as the kernel shows it in
/// /proc/self/task/<tid>/syscall (the number and raw arguments of the system call a blocked thread
/// is in): the word's address, the operation, the expected value and the bitset (val3).
struct FutexCall {
  std::uintptr_t addr = 0;
  unsigned long op = 0;
  std::uint32_t val = 0;
  std::uint32_t bitset = 0;
};

/// The futex call thread `tid` is blocked in now, or nullopt when it is running or in another
/// system call (or the kernel does not show it). What it tells: which word a parked thread sleeps
/// on, and with which FUTEX_WAIT_BITSET mask, without any seam in the library.
inline std::optional<FutexCall> blocked_futex_call(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/syscall");
  std::string nr;
  if (!(f >> nr) || nr != std::to_string(SYS_futex)) return std::nullopt;  // also "running"
  unsigned long args[6] = {};
  for (unsigned long& a : args) {
    std::string hex;
    if (!(f >> hex)) return std::nullopt;
    a = std::stoul(hex, nullptr, 16);  // "0x..."
  }
  return FutexCall{static_cast<std::uintptr_t>(args[0]), args[1],
                   static_cast<std::uint32_t>(args[2]), static_cast<std::uint32_t>(args[5])};
}

/// Yields until `seen(*blocked_futex_call(tid))` holds or `limit` has passed; the call seen, or
/// nullopt.
template <class Pred>
std::optional<FutexCall> wait_until_in_futex(pid_t tid, std::chrono::milliseconds limit,
                                             Pred seen) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (const std::optional<FutexCall> c = blocked_futex_call(tid); c && seen(*c)) return c;
    if (std::chrono::steady_clock::now() >= give_up) return std::nullopt;
    std::this_thread::yield();
  }
}

}  // namespace parkpool::test
#endif  // __linux__

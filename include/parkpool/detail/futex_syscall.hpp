// Internal (Linux only; users never name it): the futex(2) system call, issued inline. Used by
// the Parker's futex backend (src/backend_futex.cpp) and the parking lot (src/parking_lot.cpp).
//
// Why not libc's syscall(): it is reached through the PLT and the GOT and runs in libc's text, so
// a FUTEX_WAKE or FUTEX_WAIT through it touches three more pages than the caller's own code. On
// the wake path from idle the first touch of every page is a TLB miss besides a cache miss (the
// idle period, not the syscall, leaves them cold: pool/SLEEP.md, "Tuning"), and the woken
// thread returns from the kernel into syscall() before it gets back to its own code. pool/SLEEP.md
// ("Tuning") has the measurement. Elsewhere than x86-64 this is syscall(), with the same return
// convention.
#pragma once

#if !defined(__linux__)
#error "parkpool/detail/futex_syscall.hpp is Linux only"
#endif

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

namespace parkpool::detail {

// futex(addr, op, val, timeout, addr2, val3). Returns what the kernel returns: >= 0 on success,
// -errno on failure (errno itself is not touched). Never fails for a valid address; the callers
// treat every error but ETIMEDOUT as a (possibly spurious) return and re-check their word.
[[gnu::always_inline]] inline long futex_syscall(std::uint32_t* addr, int op, std::uint32_t val,
                                                 const timespec* timeout, std::uint32_t* addr2,
                                                 std::uint32_t val3) noexcept {
#if defined(__x86_64__)
  // The x86-64 Linux convention: number in rax, arguments in rdi, rsi, rdx, r10, r8, r9; the
  // result in rax; the instruction clobbers rcx and r11. "memory": the kernel reads *addr (and,
  // for FUTEX_WAIT, the caller's stores before the call must not be moved past it).
  // r10, r8 and r9 have no constraint letter: the asm itself moves the last three arguments
  // there (and declares them clobbered). Not with local register variables: GCC keeps one in its
  // register only if nothing runs between its assignment and the asm, and once this is inlined
  // the compiler may put a call of its own there. It did (until 2026-12-07): in the parking
  // lot's wait_idle, the __tls_get_addr call that finds a thread_local futex word (-fPIC) came
  // after the assignments, and the kernel got a garbage timeout pointer, returned EFAULT at once,
  // and the thread spun instead of sleeping (tests/parking_lot_test.cpp,
  // ParkedThreadsUseNoCpuAlsoBeyondThe32WakeBits).
  long rc = SYS_futex;
  asm volatile(
      "mov %4, %%r10\n\t"
      "mov %5, %%r8\n\t"
      "mov %6, %%r9\n\t"
      "syscall"
      : "+a"(rc)
      : "D"(addr), "S"(static_cast<long>(op)), "d"(static_cast<long>(val)),
        "r"(reinterpret_cast<long>(timeout)), "r"(reinterpret_cast<long>(addr2)),
        "r"(static_cast<long>(val3))
      : "rcx", "r8", "r9", "r10", "r11", "memory");
  return rc;
#else
  const long rc = syscall(SYS_futex, addr, op, val, timeout, addr2, val3);
  return rc == -1 ? -errno : rc;
#endif
}

}  // namespace parkpool::detail

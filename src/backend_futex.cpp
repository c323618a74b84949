// The futex backend of the Parker (see detail/parker_backend.hpp).
// [[gnu::hot]] marks the functions on the wake path from idle (the submitter up to FUTEX_WAKE,
// the woken worker up to its task): GCC places them together in .text.hot, so that path touches
// fewer code pages, each a TLB miss on its first touch after an idle period (not after a
// syscall as such: pool/SLEEP.md, "Tuning", 2026-12-07).
// The system call itself is issued inline (futex_syscall.hpp), not through libc. pool/SLEEP.md,
// "Tuning", has the measurements.
#include <linux/futex.h>

#include <cerrno>
#include <ctime>

#include "parkpool/detail/futex_syscall.hpp"
#include "parkpool/detail/parker_backend.hpp"

namespace parkpool::detail {
namespace {

std::uint32_t* futex_address(ParkerWord& word) noexcept {
  // std::atomic<std::uint32_t> has the size and representation of std::uint32_t (asserted in the
  // header); the kernel reads the word, it never writes it.
  return reinterpret_cast<std::uint32_t*>(&word);
}

}  // namespace

[[gnu::hot]] WaitStatus FutexBackend::wait(Word& word, std::uint32_t expected,
                                           const Deadline& deadline) noexcept {
  long rc = 0;
  if (deadline.is_forever()) {
    rc = futex_syscall(futex_address(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
  } else {
    const std::int64_t ns = deadline.ns < 0 ? 0 : deadline.ns;
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    int op = FUTEX_WAIT_BITSET_PRIVATE;
    if (deadline.clock == Deadline::Clock::realtime) op |= FUTEX_CLOCK_REALTIME;
    rc = futex_syscall(futex_address(word), op, expected, &ts, nullptr, FUTEX_BITSET_MATCH_ANY);
  }
  // rc is >= 0 or -errno. 0: woken (perhaps spuriously); EAGAIN: the word already differed; EINTR:
  // a signal. All three send the protocol back to re-check the word with the same absolute
  // deadline.
  if (rc == -ETIMEDOUT) return WaitStatus::timed_out;
  return WaitStatus::woken;
}

[[gnu::hot]] void FutexBackend::wake_one(Word& word) noexcept {
  futex_syscall(futex_address(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace parkpool::detail

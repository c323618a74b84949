// Internal: the spin-loop hint shared by every spin in the library (the Parker's pre-sleep spin,
// the idle coordinator's spin phase, parking_lot::SpinWait). One definition, so that a port to a
// new architecture changes one place.
#pragma once

namespace parkpool::detail {

// One pause instruction: tells the CPU this is a spin-wait loop (x86 PAUSE: saves power, frees
// the sibling hyperthread, avoids the memory-order mis-speculation penalty on loop exit;
// AArch64 YIELD). A no-op elsewhere. Never a syscall: a spin that should give up the CPU calls
// std::this_thread::yield() itself.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace parkpool::detail

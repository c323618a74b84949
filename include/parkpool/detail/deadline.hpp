// Internal: absolute deadlines and overflow-free conversion of std::chrono values.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace parkpool::detail {

// An absolute point on one of the two clocks the kernel can wait on. `forever` means no deadline.
// ns counts nanoseconds since that clock's epoch (CLOCK_MONOTONIC for steady_clock, CLOCK_REALTIME
// for system_clock, as libstdc++ and libc++ define them on Linux).
struct Deadline {
  enum class Clock : std::uint8_t { forever, monotonic, realtime };
  Clock clock = Clock::forever;
  std::int64_t ns = 0;

  static constexpr Deadline forever() noexcept { return {}; }
  static constexpr Deadline monotonic(std::int64_t n) noexcept { return {Clock::monotonic, n}; }
  static constexpr Deadline realtime(std::int64_t n) noexcept { return {Clock::realtime, n}; }
  constexpr bool is_forever() const noexcept { return clock == Clock::forever; }
};

inline constexpr std::int64_t kForeverNs = std::numeric_limits<std::int64_t>::max();

// Converts any duration to int64 nanoseconds, saturating instead of overflowing: hours::max()
// becomes kForeverNs, not a negative number. The comparison is done in long double, whose 64-bit
// mantissa holds every int64 exactly enough for this purpose (the bounds are ~292 years away).
template <class Rep, class Period>
constexpr std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using LongNs = std::chrono::duration<long double, std::nano>;
  const long double v = std::chrono::duration_cast<LongNs>(d).count();
  if (v != v) return 0;  // NaN (a floating-point Rep): "now"; casting it to int64 would be UB
  constexpr long double kMax = 9.0e18L;  // ~285 years: anything above is "forever"
  if (v >= kMax) return kForeverNs;
  if (v <= -kMax) return -kForeverNs;
  return static_cast<std::int64_t>(v);
}

// Adds a relative timeout to an absolute time without overflow; kForeverNs means "no deadline".
constexpr std::int64_t saturating_add(std::int64_t now_ns, std::int64_t timeout_ns) noexcept {
  if (timeout_ns >= kForeverNs - now_ns) return kForeverNs;
  return now_ns + timeout_ns;
}

}  // namespace parkpool::detail

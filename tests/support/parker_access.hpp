// White-box view of a Parker's state word, for tests that must wait until the owner sleeps.
#pragma once

#include <parkpool/parker.hpp>

#include <atomic>
#include <chrono>
#include <thread>

namespace parkpool::detail {
struct ParkerTestAccess {
  static std::uint32_t state(const Parker& p) noexcept {
    return p.block()->state.load(std::memory_order_acquire);
  }
  static std::uint32_t handles(const Parker& p) noexcept {
    return p.block()->refs.load(std::memory_order_acquire);
  }
};
}  // namespace parkpool::detail

namespace parkpool::test {
// Waits (yielding) until the Parker's owner has announced PARKED, i.e. it is asleep or about to
// sleep in the kernel. Returns false if that did not happen within `limit` (a test failure).
inline bool wait_until_parked(const Parker& p,
                              std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (detail::ParkerTestAccess::state(p) != detail::kParked) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}
}  // namespace parkpool::test

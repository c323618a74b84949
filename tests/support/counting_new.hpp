// Counts heap allocations while enabled: replaces the global operator new (plain and aligned)
// for the test executable that includes this header. Include it from exactly ONE translation
// unit of a test executable (replacement functions must be defined once per program). Enabled
// only around the measured region. Not compiled under sanitizers, which bring their own
// allocator hooks (PARKPOOL_UNDER_SANITIZER): tests that use it skip there.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace parkpool::test {
inline std::atomic<bool> g_counting{false};
inline std::atomic<long> g_allocations{0};
}  // namespace parkpool::test

#if !defined(PARKPOOL_UNDER_SANITIZER)
#if defined(__GNUC__) && !defined(__clang__)
// GCC pairs the inlined replacement delete with the library new and warns; the pair is ours.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  if (parkpool::test::g_counting.load(std::memory_order_relaxed)) {
    parkpool::test::g_allocations.fetch_add(1);
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (parkpool::test::g_counting.load(std::memory_order_relaxed)) {
    parkpool::test::g_allocations.fetch_add(1);
  }
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif

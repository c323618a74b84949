// Counts heap allocations while enabled. Include it from exactly ONE translation unit of a test
// executable: without a sanitizer it replaces the global operator new (plain and aligned), and
// replacement functions must be defined once per program.
// - Plain builds: the replaced operator new counts.
// - AddressSanitizer / ThreadSanitizer builds: their runtime owns operator new and malloc, so
//   instead a malloc hook is installed at start-up (__sanitizer_install_malloc_and_free_hooks,
//   exported by libasan and libtsan); it sees every allocation, operator new included.
// count_allocations(f) runs f with counting on and returns the number of allocations made
// meanwhile, by any thread (the tests keep the other threads blocked or parked).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

namespace parkpool::test {
inline std::atomic<bool> g_counting{false};
inline std::atomic<long> g_allocations{0};

// Relaxed: the flag and the counter are only read after the counting thread stops counting
// (program order on that thread; other threads' allocations are the ones the tests rule out).
inline void note_allocation() noexcept {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
}

template <class F>
long count_allocations(F&& f) {
  g_allocations.store(0, std::memory_order_relaxed);
  g_counting.store(true, std::memory_order_relaxed);
  std::forward<F>(f)();
  g_counting.store(false, std::memory_order_relaxed);
  return g_allocations.load(std::memory_order_relaxed);
}
}  // namespace parkpool::test

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PARKPOOL_TEST_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PARKPOOL_TEST_SANITIZER_ALLOCATOR 1
#endif
#endif

#if defined(PARKPOOL_TEST_SANITIZER_ALLOCATOR)
// Declared here: GCC 12 ships no <sanitizer/allocator_interface.h>. Returns 0 on failure.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             std::size_t),
                                                         void (*free_hook)(const volatile void*));

namespace parkpool::test::detail {
inline void malloc_hook(const volatile void*, std::size_t) { note_allocation(); }
inline void free_hook(const volatile void*) {}
// Installed during static initialization, before main(). A failed install would make every
// count 0 and the tests vacuous, so it aborts instead.
inline const bool g_hooks_installed = [] {
  if (__sanitizer_install_malloc_and_free_hooks(&malloc_hook, &free_hook) == 0) std::abort();
  return true;
}();
}  // namespace parkpool::test::detail
#else
#if defined(__GNUC__) && !defined(__clang__)
// GCC pairs the inlined replacement delete with the library new and warns; the pair is ours.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  parkpool::test::note_allocation();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  parkpool::test::note_allocation();
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif

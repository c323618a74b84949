// Replaces the global operator new and delete (plain and aligned) so that a test can make
// allocations fail on demand, in every build (plain, TSAN, ASAN: the replacements allocate with
// malloc / aligned_alloc, which the sanitizers intercept). For a test executable of its own:
// include this header in exactly one of its translation units (it defines the replacement
// functions), and define there
//   bool parkpool::test::refuse_allocation(std::size_t n) noexcept
// which every allocation calls first with its size: true makes that allocation throw
// std::bad_alloc. It runs on the allocating thread, so a thread_local policy fails one thread's
// allocations only. Used by thread_parker_badalloc_test, asio_badalloc_test and
// task_group_badalloc_test.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace parkpool::test {
bool refuse_allocation(std::size_t n) noexcept;

namespace failing_new_detail {
inline void* allocate(std::size_t n, std::size_t align) {
  if (refuse_allocation(n)) throw std::bad_alloc();
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n == 0 ? 1 : n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace failing_new_detail
}  // namespace parkpool::test

#if defined(__GNUC__) && !defined(__clang__)
// GCC pairs the inlined replacement delete with the library new and warns; the pair is ours.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  return parkpool::test::failing_new_detail::allocate(n, alignof(std::max_align_t));
}
void* operator new(std::size_t n, std::align_val_t a) {
  return parkpool::test::failing_new_detail::allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

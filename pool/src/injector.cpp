// parkpool::detail::NodeSlab: 64-byte blocks for the injector's nodes; and the ThreadSanitizer
// suppression for boost::lockfree (this object is linked into every program that uses the
// injector, because the injector's allocator calls NodeSlab).
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "parkpool/detail/injector.hpp"

#if defined(__SANITIZE_THREAD__)
#define PARKPOOL_INJECTOR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PARKPOOL_INJECTOR_TSAN 1
#endif
#endif

#if defined(PARKPOOL_INJECTOR_TSAN)
// boost::lockfree's free list reads and writes the link of a node that another thread may be
// recycling (the tagged pointer's ABA counter makes the stale value harmless, but the accesses
// are plain, so TSAN reports them). Suppressed only for frames inside boost::lockfree; our own
// accesses, and the release/acquire edges boost's std::atomic operations create, stay checked.
extern "C" const char* __tsan_default_suppressions() { return "race:boost::lockfree::\n"; }
#endif

namespace parkpool::detail {

namespace {

constexpr std::size_t kSlabBytes = 64 * 1024;  // 1024 nodes per block

struct SlabState {
  std::mutex m;
  void* free_list = nullptr;  // intrusive: first word of a free block points to the next
  char* bump = nullptr;       // next uncarved block in the current slab
  char* end = nullptr;
};

SlabState& state() {
  // Intentionally never destroyed: queues in static objects may die after it would. The slabs
  // stay reachable from here (no leak report) and are returned to the OS at exit.
  static SlabState* s = new SlabState;
  return *s;
}

}  // namespace

void* NodeSlab::allocate() {
  SlabState& s = state();
  std::lock_guard<std::mutex> lk(s.m);
  if (s.free_list != nullptr) {
    void* p = s.free_list;
    s.free_list = *static_cast<void**>(p);
    return p;
  }
  if (s.bump == s.end) {
    auto* slab = static_cast<char*>(::operator new (kSlabBytes, std::align_val_t{kBlock}));
    // Keep every slab reachable for leak checkers (blocks in use point into them anyway).
    static std::vector<void*>* slabs = new std::vector<void*>;
    slabs->push_back(slab);
    s.bump = slab;
    s.end = slab + kSlabBytes;
  }
  void* p = s.bump;
  s.bump += kBlock;
  return p;
}

void NodeSlab::deallocate(void* p) noexcept {
  SlabState& s = state();
  std::lock_guard<std::mutex> lk(s.m);
  *static_cast<void**>(p) = s.free_list;
  s.free_list = p;
}

}  // namespace parkpool::detail

// parkpool::detail::Injector<T>: the pool's MPMC queue for work that comes from threads that are
// not workers of the pool.
//
// What it is
//   A thin wrapper over boost::lockfree::queue<T> (Michael-Scott queue with tagged pointers and
//   a node free list). Any number of producers and consumers; FIFO per producer; lock-free.
//   Included only by the pool's .cpp and white-box tests, so <parkpool/thread_pool.hpp> does not
//   expose Boost.
//
// Cost and memory
//   push() reuses a node from boost's free list (no allocation in steady state) or takes one
//   64-byte cache-line aligned node from a process-wide slab (NodeSlab: 64 KiB blocks carved into
//   nodes under a mutex, only on growth). With std::allocator each aligned node cost ~128 bytes of
//   RSS (posix_memalign padding): 179 bytes per queued small task in bench/pool_bench.cpp
//   (2026-11-22) instead of 64 + 32. Nodes go back to boost's free list, and to the slab's free
//   list when the queue dies; slab blocks are kept for the process lifetime (reused by later
//   queues): memory is bounded by the peak number of items queued at once.
//
// Memory ordering
//   Everything a producer wrote before push(v) happens-before everything after the pop() that
//   returns v (boost: release CAS on the tail link, acquire load when popping).
//   Each pushed value is popped exactly once.
#pragma once

#include <boost/lockfree/queue.hpp>
#include <cstddef>
#include <memory>
#include <new>

namespace parkpool::detail {

// Process-wide pool of 64-byte, 64-aligned blocks for injector nodes. Thread-safe (a mutex: it is
// used only when a queue grows or dies, never in steady state).
struct NodeSlab {
  static constexpr std::size_t kBlock = 64;
  static void* allocate();                   // throws std::bad_alloc
  static void deallocate(void* p) noexcept;  // p from allocate()
};

// Stateless allocator: boost::lockfree::queue default-constructs its node allocator.
template <class T>
struct SlabAllocator {
  using value_type = T;
  SlabAllocator() noexcept = default;
  template <class U>
  SlabAllocator(const SlabAllocator<U>&) noexcept {}  // NOLINT: rebinding must be implicit
  T* allocate(std::size_t n) {
    if (n == 1 && sizeof(T) <= NodeSlab::kBlock && alignof(T) <= NodeSlab::kBlock) {
      return static_cast<T*>(NodeSlab::allocate());
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1 && sizeof(T) <= NodeSlab::kBlock && alignof(T) <= NodeSlab::kBlock) {
      NodeSlab::deallocate(p);
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }
  template <class U>
  bool operator==(const SlabAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const SlabAllocator<U>&) const noexcept {
    return false;
  }
};

// T: the stored value, trivially copyable and trivially destructible (boost's requirement);
// pointers, or the pool's InjectedItem (a task pointer or a small callable stored inline).
template <class T>
class Injector {
 public:
  explicit Injector(std::size_t reserve_nodes = 1024) : queue_(reserve_nodes) {}
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  // Throws std::bad_alloc if a node cannot be allocated; the queue is then unchanged.
  void push(const T& item) {
    if (!queue_.push(item)) throw std::bad_alloc();
  }
  // False when the queue was empty at some point during the call.
  bool pop(T& out) noexcept { return queue_.pop(out); }
  // A snapshot (head == tail), safe to call concurrently; may be stale at once.
  bool empty_hint() const noexcept { return queue_.empty(); }

 private:
  boost::lockfree::queue<T, boost::lockfree::allocator<SlabAllocator<void>>> queue_;
};

}  // namespace parkpool::detail

// parkpool::detail::ChaseLevDeque<T>: the per-worker work-stealing deque of pointers.
//
// What it is
//   A growable single-owner / multi-thief deque of T* (Chase & Lev, SPAA 2005) with the C11
//   orderings proved correct by Le, Pop, Cohen and Zappa Nardelli ("Correct and Efficient
//   Work-Stealing for Weak Memory Models", PPoPP 2013, figure 1). The owner pushes and pops at the
//   bottom (LIFO); any thread steals at the top (FIFO). Null is never stored.
//
// Thread safety
//   push(), push_if_room() and pop() only from the owning thread (one at a time). steal(),
//   size_hint() and empty_hint() from any thread.
//
// Memory ordering (user terms)
//   Everything the owner wrote before push(p) happens-before everything a thief does after a
//   steal() that returns p. pop() returns the owner's own pushes, so it needs no ordering.
//   Each pushed pointer is returned exactly once, by pop() or by one steal() (INV-1).
//   Checked by the Relacy model tests/model/chase_lev_model.cpp (the non-TSAN path, the same
//   orders; push(), push_if_room() as WorkerContext::steal_more() uses it, pop(), steal(), growth,
//   and empty_hint() in the pool's idle re-check): it rejects the removal of each fence (D2 in
//   push() and in push_if_room(), D3, D6), of the ring's release (G1), of the last-item CAS (D4),
//   a relaxed D1 (through a witness variable: see the model's header), an off-by-one room check
//   in push_if_room(), and an idle handshake that relies on D2 instead of the submitter's seq_cst
//   fence.
//
// Growth and lifetime
//   The ring starts at `initial_capacity` (rounded up to a power of two) and doubles when full.
//   Old rings are kept until the deque dies (a thief may still be reading one), so memory is at
//   most twice the peak ring. Indices are 64-bit signed and never wrap in practice (2^63 pushes);
//   the ring position wraps (index & mask). Destroying the deque does not touch the pointees.
//
// TSAN
//   ThreadSanitizer does not model free-standing fences. Under __SANITIZE_THREAD__ (or clang's
//   thread_sanitizer feature) the two seq_cst fences are replaced by seq_cst accesses on the
//   words they order (bottom_ store / top_ load in pop, top_ load / bottom_ load in steal). Those
//   give at least the same guarantees in the C++ model (all four accesses join the single total
//   order S), so the TSAN build checks the same algorithm, just with stronger orders.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define PARKPOOL_DEQUE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PARKPOOL_DEQUE_TSAN 1
#endif
#endif
#ifndef PARKPOOL_DEQUE_TSAN
#define PARKPOOL_DEQUE_TSAN 0
#endif

namespace parkpool::detail {

enum class StealResult { success, empty, retry };

template <class T>
class ChaseLevDeque {
 public:
  explicit ChaseLevDeque(std::size_t initial_capacity = 256) {
    std::size_t cap = 2;
    while (cap < initial_capacity) cap <<= 1;
    rings_.push_back(std::make_unique<Ring>(cap));
    ring_.store(rings_.back().get(), std::memory_order_relaxed);  // relaxed: before sharing
  }
  ChaseLevDeque(const ChaseLevDeque&) = delete;
  ChaseLevDeque& operator=(const ChaseLevDeque&) = delete;

  // Owner only. Never fails (grows; may throw std::bad_alloc while growing, deque unchanged).
  void push(T* item) { push_impl<true>(item); }

  // Owner only. push() without growth: false (and nothing pushed) if the ring is full. Used where
  // an exception cannot be thrown (a batch steal moving items into the thief's own deque).
  [[nodiscard]] bool push_if_room(T* item) noexcept { return push_impl<false>(item); }

  // Owner only. Returns the most recently pushed item not yet taken, or nullptr.
  T* pop() noexcept {
    // Empty fast path (crossbeam's Worker::pop does the same): skip the bottom_ store and the
    // fence (D3) when the deque is visibly empty. Relaxed suffices: only the owner (this thread)
    // changes bottom_, and top_ only grows, so a top_ value read here is <= the current one; if it
    // is already >= bottom_, the deque is empty now and stays empty until this thread pushes. A
    // stale top_ only sends us down the full path below. Every worker whose own deque is empty
    // pays this on each task it looks for (external posts, the wake from idle).
    if (bottom_.load(std::memory_order_relaxed) <= top_.load(std::memory_order_relaxed)) {
      return nullptr;
    }
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;  // relaxed: owner's word
    Ring* r = ring_.load(std::memory_order_relaxed);                     // relaxed: owner's word
#if PARKPOOL_DEQUE_TSAN
    // TSAN: seq_cst accesses stand in for the fence (D3) (see "TSAN" above).
    bottom_.store(b, std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_seq_cst);
#else
    bottom_.store(b, std::memory_order_relaxed);  // relaxed: ordered by the fence (D3)
    // (D3) store->load: the bottom_ store above must be visible before top_ is read, against a
    // thief's top_ read / bottom_ read (D6 fence). Without it both could take the last item.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_relaxed);
#endif
    T* item = nullptr;
    if (t <= b) {
      item = r->get(b);
      if (t == b) {
        // Last item: race thieves for it on top_. (D4) seq_cst: the total order on top_ decides.
        if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
          item = nullptr;  // a thief won
        }
        bottom_.store(b + 1, std::memory_order_relaxed);  // relaxed: deque now empty, t+1 == b+1
      }
    } else {
      bottom_.store(b + 1, std::memory_order_relaxed);  // relaxed: was empty; restore
    }
    return item;
  }

  // Any thread. On success stores the item in *out.
  StealResult steal(T** out) noexcept {
#if PARKPOOL_DEQUE_TSAN
    // TSAN: (D1'), (D6) and (D5) as seq_cst accesses, paired with pop()'s (see "TSAN" above).
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    const std::int64_t b = bottom_.load(std::memory_order_seq_cst);
#else
    // (D1') acquire: pairs with the CAS on top_ (D4) by other thieves / the owner.
    std::int64_t t = top_.load(std::memory_order_acquire);
    // (D6) pairs with (D3): see pop().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // (D5) acquire: pairs with (D2) so the slot and the item's contents are visible.
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
#endif
    if (t >= b) return StealResult::empty;
    // acquire: pairs with the release store of ring_ in grow() (G1), so the copied slots are seen.
    Ring* r = ring_.load(std::memory_order_acquire);
    T* item = r->get(t);
    // (D4) seq_cst CAS: claims index t; at most one of the owner and the thieves succeeds.
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      return StealResult::retry;
    }
    *out = item;
    return StealResult::success;
  }

  // Owner only: the item the next pop() would return if no thief takes it first. nullptr when
  // the deque looks empty by the owner's possibly stale view of top_ (it loads no line the
  // thieves write); with that stale view it may also name an item already taken. A hint for
  // prefetching only: never dereference it.
  T* next_pop_hint() const noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);  // relaxed: owner's word
    if (b <= top_seen_) return nullptr;
    return ring_.load(std::memory_order_relaxed)->get(b - 1);  // relaxed: owner's word; a hint
  }

  // Any thread; a snapshot that may be stale at once. Exact when called by the owner with no
  // concurrent thieves. Relaxed, and enough for the one use that correctness depends on: the idle
  // re-check any_work() (empty_hint()) runs after a seq_cst fence, and the submitter's side after
  // its push is a seq_cst fence too (N1, or the asymmetric path's membarrier; pool/SLEEP.md,
  // INV-NOLOST), so it reads that push's bottom_ or a later value; a stale top_ only makes the
  // deque look fuller (the model's suite hint, variant b9).
  std::size_t size_hint() const noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);  // relaxed: see above
    const std::int64_t t = top_.load(std::memory_order_relaxed);     // relaxed: see above
    return b > t ? static_cast<std::size_t>(b - t) : 0;
  }
  bool empty_hint() const noexcept { return size_hint() == 0; }
  // Any thread; a snapshot. The index of the oldest item: it grows by one each time an item is
  // taken at the top (a steal, or the owner's pop of the last item) and never otherwise, so an
  // unchanged value between two reads means nothing was taken at the top meanwhile.
  std::int64_t top_hint() const noexcept {
    return top_.load(std::memory_order_relaxed);  // relaxed: a hint only
  }
  std::size_t capacity() const noexcept {
    return ring_.load(std::memory_order_relaxed)->mask + 1;  // relaxed: owner/test use only
  }
  // Any thread: starts loading the lines of top_ and bottom_ (and ring_), which pop, steal and
  // the hints read. No effect on the deque's state.
  void prefetch() const noexcept {
    __builtin_prefetch(&top_);
    __builtin_prefetch(&bottom_);
  }

 private:
  struct Ring {
    explicit Ring(std::size_t cap) : mask(cap - 1), slots(new std::atomic<T*>[cap]) {
      // Relaxed: before the ring is shared (the constructor, or grow()'s release (G1)).
      for (std::size_t i = 0; i < cap; ++i) slots[i].store(nullptr, std::memory_order_relaxed);
    }
    // Slots are atomics because a thief reads one while the owner may overwrite it after the
    // thief's CAS will fail anyway; relaxed: ordering comes from bottom_/top_/ring_.
    T* get(std::int64_t i) const noexcept {
      return slots[static_cast<std::size_t>(i) & mask].load(std::memory_order_relaxed);
    }
    void put(std::int64_t i, T* v) noexcept {
      slots[static_cast<std::size_t>(i) & mask].store(v, std::memory_order_relaxed);
    }
    std::size_t mask;
    std::unique_ptr<std::atomic<T*>[]> slots;
  };

  // push() (kGrow) and push_if_room(): false only without kGrow, when the ring is really full.
  template <bool kGrow>
  bool push_impl(T* item) noexcept(!kGrow) {
    assert(item != nullptr && "ChaseLevDeque: null is reserved for 'nothing'");
    // relaxed: only the owner writes bottom_.
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    Ring* r = ring_.load(std::memory_order_relaxed);  // relaxed: only the owner stores ring_
    // top_seen_ <= top_ (top_ only grows), so b - top_seen_ bounds the size from above: while it
    // leaves room, the slot we write held index b - capacity < top_seen_, which a thief finished
    // reading before the CAS that (D1) made visible. Only a full-looking ring reads top_ again.
    if (b - top_seen_ > static_cast<std::int64_t>(r->mask)) [[unlikely]] {
      r = make_room<kGrow>(r, b);
      if (r == nullptr) return false;
    }
    r->put(b, item);
    // (D2) release: publishes the slot (and everything the owner wrote before push) to a thief
    // that reads bottom_ with acquire (D5). A thief may read a value of bottom_ written by a
    // later relaxed store in pop(), which heads no release sequence (C++20 [intro.races]: only
    // RMWs continue one); the paper's release *fence* covers every later store of the owner, a
    // release store only itself. So: the paper's fence + relaxed store. (TSAN does not model
    // fences: its build keeps the release store, which TSAN checks as before.)
#if PARKPOOL_DEQUE_TSAN
    bottom_.store(b + 1, std::memory_order_release);
#else
    std::atomic_thread_fence(std::memory_order_release);
    bottom_.store(b + 1, std::memory_order_relaxed);
#endif
    return true;
  }

  // Owner only, from push_impl(): refreshes top_seen_; if the ring is really full, grows it
  // (kGrow) or returns nullptr.
  template <bool kGrow>
  [[gnu::noinline]] Ring* make_room(Ring* r, std::int64_t b) noexcept(!kGrow) {
    // (D1) acquire: pairs with the seq_cst CAS on top_ (D4) by thieves and pop(), so that a slot
    // a thief vacated (read before its CAS) is not overwritten while it still reads it. Every
    // CAS on top_ is an RMW, so reading any later value synchronizes with all earlier CASes.
    top_seen_ = top_.load(std::memory_order_acquire);
    if (b - top_seen_ > static_cast<std::int64_t>(r->mask)) {
      if constexpr (kGrow) {
        r = grow(r, b, top_seen_);
      } else {
        return nullptr;
      }
    }
    return r;
  }

  Ring* grow(Ring* old, std::int64_t b, std::int64_t t) {
    rings_.reserve(rings_.size() + 1);  // may throw: nothing changed yet
    auto bigger = std::make_unique<Ring>((old->mask + 1) * 2);
    for (std::int64_t i = t; i < b; ++i) bigger->put(i, old->get(i));
    Ring* r = bigger.get();
    rings_.push_back(std::move(bigger));  // cannot throw: reserved
    // (G1) release: pairs with the acquire load of ring_ in steal(). The old ring stays alive in
    // rings_ (INV-2: a ring is freed only with the deque), so a thief that read it may finish.
    ring_.store(r, std::memory_order_release);
    return r;
  }

  // Owner-written bottom and thief-contended top on separate cache lines.
  // top_: index of the oldest item. Only increases, only by a CAS (thieves, owner on last item).
  alignas(64) std::atomic<std::int64_t> top_{0};
  // bottom_: one past the newest item. Written only by the owner: +1 on push; -1 then maybe +1
  // on pop. Items live at [top_, bottom_).
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  // ring_: the current ring. Stored only by the owner (release on growth, G1); thieves load it
  // with acquire in steal(), the owner relaxed.
  std::atomic<Ring*> ring_{nullptr};
  // Owner only: a value of top_ read with acquire by make_room() (D1); <= top_ at all times.
  std::int64_t top_seen_ = 0;
  std::vector<std::unique_ptr<Ring>> rings_;  // owner only; INV-2: every ring ever used
  static_assert(std::atomic<std::int64_t>::is_always_lock_free);
  static_assert(std::atomic<T*>::is_always_lock_free);
};

}  // namespace parkpool::detail

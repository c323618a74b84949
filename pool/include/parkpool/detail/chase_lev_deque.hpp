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
//   A ring replaced by a bigger one is retired, not freed: a thief that loaded the old ring_ may
//   still read a slot of it. Retired rings are freed only by reclaim() (below) or with the deque
//   (INV-2), so memory is at most twice the peak ring until then. Indices are 64-bit signed and
//   never wrap in practice (2^63 pushes); the ring position wraps (index & mask). Destroying the
//   deque does not touch the pointees.
//
// Reclaiming rings (reclaim(), owner only; the pool calls it when a worker has stayed idle for
// PoolOptions::deque_ring_hold, from IdleCoordinator::wait_for_work's long-idle hook)
//   INV-2: a ring is freed only (a) with the deque, or (b) by reclaim(), after a process-wide
//   barrier, when no thief's hazard slot names this deque. A thief that passes a hazard slot to
//   steal() stores the deque's address into it (R1, release) before it loads ring_ (R2, a
//   compiler barrier between them) and stores nullptr (R3, release) after its slot read, before
//   its CAS; only on the path where the deque looked non-empty, so a searcher scanning empty
//   deques pays nothing. reclaim(), on an empty deque (exact: top_ read with acquire ==
//   bottom_): (S1) replaces a grown ring by a fresh one of the initial capacity (release store of
//   ring_, as G1) and retires the grown one; (S2) calls `barrier`, which must make every running
//   thread of the process execute a full memory barrier at some point B during the call (a
//   thread not running passed one when it was switched out): membarrier(2),
//   IdleCoordinator::heavy_barrier(); (S3) reads every thief's hazard slot with acquire
//   (`named_by_hazard`); if none names this deque it frees every retired ring, else it keeps them
//   for the next call. Why no thief reads a freed ring, for a thief T whose ring_ load L is a
//   retired ring, that is a value stored before S1's store (ring_ is stored only by the owner):
//   - T's barrier point B after its R1 (in T's program order): the barrier makes R1 visible to
//     S3, which reads R1 (keeps the rings) or a later store of T's slot: R3 of this steal, or R1
//     of a later steal, both release and sequenced after T's slot read, so that read
//     happens-before the free.
//   - B before R1: S1's store precedes the barrier call, and T's L follows B, so L reads S1's
//     ring or a later one, never a retired one (contradiction).
//   R2 keeps the compiler from moving L above R1 (a release store and a later acquire load may
//   be swapped); the CPU may still do so, which the barrier covers: B is a full barrier wherever
//   it lands. A thief whose CAS succeeds needs none of this: the deque stays empty during
//   reclaim() (only the owner pushes), so its CAS precedes in top_'s order the value S0 reads
//   with acquire, and its slot read happens-before the free. The hazard is for the thieves whose
//   CAS will fail, which still read a slot.
//   A thief with stale t/b after S1 cannot take a wrong item: the deque was empty at S0 with
//   top_ == bottom_ == n, so a t < n fails its CAS (top_ only grows), and a thief that read a
//   bottom_ > n written by a push after reclaim() synchronizes with that push's D2 and so loads
//   S1's ring or a later one. A bottom_ > n stored before S0 cannot be read with t == n: the
//   last pop that lowered bottom_ from n + 1 to n read top_ < n after its D3 (had it read n, its
//   last-item CAS would have made top_ n + 1), T's top_ read of n is later in top_'s order, so
//   D3 precedes T's D6 and T's bottom_ read returns that pop's store or a later one (the D3/D6
//   argument of pop()). A thief that passes no hazard slot (nullptr) is not covered: reclaim()
//   may only be used where every thief passes one (the pool: every steal() is a worker's, with
//   its own slot).
//   Checked by the Relacy model tests/model/chase_lev_model.cpp, suite reclaim (the owner
//   grows, drains, shrinks and reclaims while a thief steals; membarrier modelled by its
//   guarantee, as in idle_model): it rejects R3 before the slot read (b11), S2 omitted (b12),
//   S3 omitted (b13) and R1 after the ring_ load (b14).
//   The pool uses reclaim() only with IdleCoordinator::asymmetric(): under TSAN (no membarrier
//   path) rings are kept until the deque dies, so TSAN never checks this protocol; the asan
//   stress test tests/stress/chase_lev_reclaim_stress_test.cpp runs it with the real barrier.
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
    initial_capacity_ = cap;
    capacity_.store(cap, std::memory_order_relaxed);  // relaxed: before sharing
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

  // Any thread. On success stores the item in *out. `hazard`: the calling thief's hazard slot
  // (see "Reclaiming rings"), or nullptr where reclaim() is never used on this deque.
  StealResult steal(T** out, std::atomic<const void*>* hazard = nullptr) noexcept {
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
    if (hazard != nullptr) {
      // (R1) release: pairs with reclaim()'s acquire scan (S3). Not for this store's own sake
      // (the barrier S2 makes it visible, or S1's ring_ store visible to R2's load) but so that
      // an owner that reads a later value of this slot, R1 of a later steal, also sees this
      // steal's slot read (R3 below) ordered before its free. A plain store on this thread's own
      // line: no RMW, no fence.
      hazard->store(this, std::memory_order_release);
      // (R2) compiler barrier only: keeps the ring_ load below after R1 in the program text. The
      // store->load order on the CPU comes from the owner's process-wide barrier (S2).
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    // acquire: pairs with the release store of ring_ in grow() (G1) and reclaim() (S1), so the
    // copied (or initial) slots are seen.
    Ring* r = ring_.load(std::memory_order_acquire);
    T* item = r->get(t);
    if (hazard != nullptr) {
      // (R3) release: orders the slot read above (and ring_'s mask) before an owner's free that
      // reads this nullptr (or a later R1) with acquire in its scan (S3).
      hazard->store(nullptr, std::memory_order_release);
    }
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
  // Any thread; snapshots for tests: the current ring's capacity, and how many retired rings
  // the deque still keeps. Copies the owner stores, not reads through ring_: a ring may be
  // freed under a reader that is not a thief with a hazard slot.
  std::size_t capacity() const noexcept {
    return capacity_.load(std::memory_order_relaxed);  // relaxed: a statistic, nothing read via it
  }
  std::size_t retired_rings() const noexcept {
    return retired_.load(std::memory_order_relaxed);  // relaxed: a statistic, nothing read via it
  }
  std::size_t initial_capacity() const noexcept { return initial_capacity_; }

  // Owner only: true if reclaim() may have something to return: a retired ring, or a current
  // ring bigger than the initial one. One load of an owner-only field and one of ring_.
  bool has_spare_rings() const noexcept {
    return rings_.size() > 1 ||
           ring_.load(std::memory_order_relaxed)->mask + 1 != initial_capacity_;  // relaxed: own
  }

  // Owner only (INV-2 (b), "Reclaiming rings" above). If the deque is empty: (S1) returns to a
  // ring of the initial capacity (if std::bad_alloc, keeps the current ring), then, if rings are
  // retired, (S2) barrier(), (S3) named_by_hazard(const void* deque): true if some thief's
  // hazard slot, read with acquire, holds that address; if false, frees every retired ring.
  // A deque that is not empty is left as it is. Returns true if no ring is retired afterwards.
  // Every thread that may call steal() on this deque must pass a hazard slot that
  // named_by_hazard reads, and barrier must be a real process-wide barrier (see above).
  template <class Barrier, class NamedByHazard>
  bool reclaim(Barrier&& barrier, NamedByHazard&& named_by_hazard) {
    // (S0) acquire: pairs with the CAS (D4) of every thief that took an item, so their slot
    // reads happen before the free below. Owner's exact view: only the owner changes bottom_,
    // and a top_ equal to bottom_ cannot grow further (a CAS needs t < b).
    const std::int64_t t = top_.load(std::memory_order_acquire);
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);  // relaxed: owner's word
    if (t != b) return rings_.size() == 1;
    top_seen_ = t;                                      // an acquire read of top_, as D1's
    Ring* cur = ring_.load(std::memory_order_relaxed);  // relaxed: only the owner stores ring_
    if (cur->mask + 1 != initial_capacity_) {
      try {
        rings_.reserve(rings_.size() + 1);
        rings_.push_back(std::make_unique<Ring>(initial_capacity_));
        // (S1) release: pairs with steal()'s acquire load of ring_ (as G1), so a thief sees the
        // fresh ring's null slots and mask. Nothing to copy: the deque is empty. A thief with
        // stale t/b cannot take a wrong item from it (header, "Reclaiming rings").
        ring_.store(rings_.back().get(), std::memory_order_release);
        capacity_.store(initial_capacity_, std::memory_order_relaxed);  // relaxed: a statistic
        retired_.store(rings_.size() - 1, std::memory_order_relaxed);   // relaxed: a statistic
      } catch (const std::bad_alloc&) {
        // Keep the grown ring (nothing changed: push_back cannot throw after reserve; a failed
        // make_unique leaves rings_ as it was); the retired ones may still be freed below.
      }
    }
    if (rings_.size() == 1) return true;
    barrier();  // (S2): see "Reclaiming rings"
    if (named_by_hazard(static_cast<const void*>(this))) return false;  // (S3): next time
    // No thief can still read a retired ring (INV-2 (b)): free all but the current one.
    std::unique_ptr<Ring> current = std::move(rings_.back());
    rings_.clear();
    rings_.push_back(std::move(current));
    retired_.store(0, std::memory_order_relaxed);  // relaxed: a statistic
    return true;
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
    // rings_, retired (INV-2: freed only by reclaim() or with the deque), so a thief that read it
    // may finish.
    ring_.store(r, std::memory_order_release);
    capacity_.store(r->mask + 1, std::memory_order_relaxed);       // relaxed: a statistic
    retired_.store(rings_.size() - 1, std::memory_order_relaxed);  // relaxed: a statistic
    return r;
  }

  // Owner-written bottom and thief-contended top on separate cache lines.
  // top_: index of the oldest item. Only increases, only by a CAS (thieves, owner on last item).
  alignas(64) std::atomic<std::int64_t> top_{0};
  // bottom_: one past the newest item. Written only by the owner: +1 on push; -1 then maybe +1
  // on pop. Items live at [top_, bottom_).
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  // ring_: the current ring. Stored only by the owner (release on growth, G1, and on the shrink,
  // S1); thieves load it with acquire in steal(), the owner relaxed.
  std::atomic<Ring*> ring_{nullptr};
  // Owner only: a value of top_ read with acquire by make_room() (D1) or reclaim() (S0); <= top_
  // at all times.
  std::int64_t top_seen_ = 0;
  // Owner only: the current ring (last) and the retired ones not yet freed (INV-2).
  std::vector<std::unique_ptr<Ring>> rings_;
  std::size_t initial_capacity_ = 0;  // the constructor's, rounded up to a power of two
  // The current ring's capacity and rings_.size() - 1, for capacity() and retired_rings().
  // Written only by the owner.
  std::atomic<std::size_t> capacity_{0};
  std::atomic<std::size_t> retired_{0};
  static_assert(std::atomic<std::int64_t>::is_always_lock_free);
  static_assert(std::atomic<T*>::is_always_lock_free);
};

}  // namespace parkpool::detail

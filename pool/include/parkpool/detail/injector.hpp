// parkpool::detail::Injector<T>: the pool's MPMC FIFO for work that comes from threads that are
// not workers of the pool.
//
// What it is
//   A two-lock queue (Michael & Scott's blocking variant, PODC 1996) over a list of fixed-size
//   chunks: producers serialize on the tail lock, consumers on the head lock, and the two sides
//   share only the tail position (one word) and, once per chunk, a spare chunk. Items are stored
//   by value, contiguously (73 of the pool's 56-byte items per 4 KiB chunk). Any number of
//   producers and consumers; FIFO in the order of the tail lock (so FIFO per producer).
//   A member of PoolCore (detail/pool_core.hpp); users never name it.
//
// Why not boost::lockfree::queue (the injector until 2026-12-01)
//   A Michael-Scott lock-free queue costs a chain of dependent cache misses per item on both
//   sides: the producer pops a node from the free list that a consumer pushed it onto (a miss on
//   the list head, then on the node's link, then a CAS), links it at the tail; the consumer CASes
//   the shared head and pushes the node back. On the 2-vCPU dev VM of 2026-12-01, where a cache
//   line takes ~235 ns to move between the two vCPUs (a ping-pong round trip is ~470 ns), that
//   capped external post() at ~2M tasks/s, below a std::mutex + std::deque pool (3.6M/s), and
//   perf put 44% of all samples on the submitter's free-list pop. Here the producer writes into
//   lines it owns (its chunk) and publishes with one release store, and consumers touch the
//   producer's side only to read that store (bench/pool_bench.cpp's InjectorQueue workload compares
//   them).
//   The locks are parkpool::Mutex (1 byte; spins briefly, then parks on the parking lot); a
//   critical section is a copy of one item and two index updates.
//
// State (the atomic words and what guards the rest)
//   tail_  items ever pushed. Written only under tail_mutex_ (release, after the item is in its
//          slot); read by consumers (acquire) and by empty_hint()/pushed() (relaxed).
//   closed_ (under tail_mutex_): set once by close(); push() then accepts nothing. The pool uses
//          it as its external-submit gate: shutdown closes the queue, then drains it.
//   head_  items ever popped. Written only under head_mutex_; read by empty_hint() (relaxed).
//          head_ <= tail_ always (a pop checks tail_ under the head lock first).
//   seen_  the consumers' copy of the last tail_ value a pop acquired: items below it are
//          published and visible to any consumer under head_mutex_ (the acquiring pop held the
//          lock), so pops read tail_ only once head_ catches up with it. Written only under
//          head_mutex_ (relaxed); pop()'s lock-free pre-check reads it as a hint.
//          head_ <= seen_ <= tail_.
//   tail_chunk_/tail_index_: under tail_mutex_. head_chunk_/head_index_: under head_mutex_.
//   Chunk::next: written under tail_mutex_ before the release store of tail_ that publishes the
//          first item of the next chunk; read by a consumer only after it acquired a tail_ value
//          beyond the chunk's end, so that store happens-before the read.
//   spare_ at most one emptied chunk, handed from a consumer (exchange, acq_rel) to the producer
//          (exchange, acquire): the consumer's last reads of the chunk happen-before the
//          producer's writes into it.
//   INV-C: a consumer leaves (and recycles) its chunk only when an item beyond it is published,
//          so the producer's tail chunk is always a later one: the two sides never share a chunk
//          that is being recycled.
//
// Cost and memory
//   push: one lock, one item copy, one release store (no load of a line the consumers read); a
//   chunk from spare_ or operator new once per kPerChunk items. pop: a relaxed emptiness check
//   without the lock; then one lock and one item copy, and an acquire load of tail_ only when the
//   items known to be published (seen_) are used up. Memory: the chunks holding queued items
//   (sizeof(T) per item plus one pointer per chunk), one partly used chunk at each end, and at most
//   one spare. Chunks of an emptied burst go back to operator delete (the consumer frees them,
//   outside the lock).
//
// Memory ordering (the contract the pool relies on)
//   Everything a producer wrote before push(v) happens-before everything after the pop() that
//   returns v (tail_ release / acquire). Each pushed value is popped exactly once (head lock).
//   empty_hint() reads tail_ and head_ relaxed: a snapshot. The pool's idle handshake orders it
//   with seq_cst fences (pool/SLEEP.md): a reader whose fence follows a pusher's fence sees that
//   push's tail_ store, so it cannot report empty while that item is still queued (head_ never
//   passes an item that was not popped).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <type_traits>

#include "parkpool/mutex.hpp"

namespace parkpool::detail {

// T: trivially copyable and trivially destructible (pointers, or the pool's InjectedItem).
// ChunkBytes: the size of one chunk (the tests use small chunks to cross chunk ends often).
template <class T, std::size_t ChunkBytes = 4096>
class Injector {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "Injector stores values by copy and never destroys them");

  struct Chunk;

 public:
  // Items per chunk: the chunk is a link followed by the items.
  static constexpr std::size_t kPerChunk = (ChunkBytes - sizeof(Chunk*)) / sizeof(T);
  static_assert(kPerChunk >= 1, "ChunkBytes too small for one item");

  // Allocates the first chunk; throws std::bad_alloc.
  Injector() : tail_chunk_(new Chunk), head_chunk_(tail_chunk_) {}
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;
  // Not thread-safe: no other call may be running or follow. Queued items are dropped (they are
  // trivially destructible; the pool drains the injector before it dies).
  ~Injector() {
    Chunk* c = head_chunk_;
    while (c != nullptr) {
      Chunk* next = c->next;
      delete c;
      c = next;
    }
    delete spare_.load(std::memory_order_relaxed);  // relaxed: no other thread is left
  }

  // Appends `item` unless close() was called. Returns the item's position (1-based: the number of
  // items ever pushed, this one included), or 0 if the queue is closed (the item was not
  // queued). Throws std::bad_alloc if a new chunk is needed and cannot be allocated; the queue is
  // then unchanged.
  std::uint64_t push(const T& item) {
    std::lock_guard<Mutex> lock(tail_mutex_);
    if (closed_) return 0;
    if (tail_index_ == kPerChunk) {
      Chunk* c = take_spare();
      if (c == nullptr) {
        c = new Chunk;  // may throw: nothing was changed yet
        ++chunks_allocated_;
      }
      c->next = nullptr;
      tail_chunk_->next = c;  // published by the release store of tail_ below (see Chunk::next)
      tail_chunk_ = c;
      tail_index_ = 0;
    }
    tail_chunk_->items[tail_index_++] = item;
    // Release: pairs with the acquire load in pop(): the item (and the link to its chunk) are
    // visible to the consumer that pops it. pushed_ is the producers' own copy of tail_ (under
    // the lock), so that this store needs no load of a line the consumers keep reading.
    tail_.store(++pushed_, std::memory_order_release);
    return pushed_;
  }

  // From now on push() accepts nothing. When close() returns, every push() that accepted its
  // item has completed, and its item is visible to the caller (the tail lock orders them): with
  // nobody popping, the caller can drain the queue and find every accepted item. Idempotent.
  void close() noexcept {
    std::lock_guard<Mutex> lock(tail_mutex_);
    closed_ = true;
  }

  // Takes the oldest item. False if the queue was empty at the moment of the check.
  bool pop(T& out) noexcept {
    // Lock-free pre-check (relaxed snapshots): an idle worker's poll costs no lock. While items
    // are known to be published (head_ < seen_), it does not touch the producers' line at all.
    {
      const std::uint64_t h = head_.load(std::memory_order_relaxed);
      if (h == seen_.load(std::memory_order_relaxed) &&
          h == tail_.load(std::memory_order_relaxed)) {
        return false;
      }
    }
    Chunk* retired = nullptr;
    {
      std::lock_guard<Mutex> lock(head_mutex_);
      const std::uint64_t h = head_.load(std::memory_order_relaxed);  // only written under lock
      if (seen_.load(std::memory_order_relaxed) == h) {               // under the lock: exact
        // Acquire: pairs with push()'s release store; makes the items up to the value read
        // visible, to us and (through head_mutex_) to every later consumer that trusts seen_.
        const std::uint64_t t = tail_.load(std::memory_order_acquire);
        if (t == h) return false;
        seen_.store(t, std::memory_order_relaxed);  // read under the lock, or as a hint
      }
      if (head_index_ == kPerChunk) {
        // INV-C: position h is published and lies beyond this chunk, so next is set.
        retired = head_chunk_;
        head_chunk_ = head_chunk_->next;
        head_index_ = 0;
      }
      out = head_chunk_->items[head_index_++];
      // Relaxed: read under the lock by the next pop, and as a snapshot by empty_hint().
      head_.store(h + 1, std::memory_order_relaxed);
    }
    if (retired != nullptr) recycle(retired);
    return true;
  }

  // Any thread: starts loading the consumer's lines (tail_, and head_mutex_ with the head
  // state), which pop() and empty_hint() read. No effect on the queue's state.
  void prefetch_consumer() const noexcept {
    __builtin_prefetch(&tail_);
    __builtin_prefetch(&head_mutex_);
  }

  // A snapshot (nothing queued), safe to call concurrently; may be stale at once. See the header
  // comment for how the pool's handshake orders it.
  bool empty_hint() const noexcept {
    // Relaxed: hints only. head_ is read first: a later tail_ can only be larger, so the
    // snapshot errs towards "not empty", never towards "empty" for an item still queued.
    const std::uint64_t h = head_.load(std::memory_order_relaxed);
    return tail_.load(std::memory_order_relaxed) == h;
  }

  // Items ever pushed / popped: relaxed snapshots (pushed() >= popped() when read in that order).
  std::uint64_t pushed() const noexcept { return tail_.load(std::memory_order_relaxed); }
  std::uint64_t popped() const noexcept { return head_.load(std::memory_order_relaxed); }

  // Chunks taken from operator new so far (a statistic for tests; producers' side).
  std::uint64_t chunks_allocated() const noexcept {
    std::lock_guard<Mutex> lock(tail_mutex_);
    return chunks_allocated_;
  }

 private:
  struct Chunk {
    Chunk* next = nullptr;
    T items[kPerChunk];
  };

  // Producer side, under tail_mutex_.
  Chunk* take_spare() noexcept {
    if (spare_.load(std::memory_order_relaxed) == nullptr) return nullptr;  // relaxed: a hint
    // Acquire: pairs with recycle()'s exchange; the consumer's reads of the chunk happen-before
    // our writes into it.
    return spare_.exchange(nullptr, std::memory_order_acquire);
  }
  // Consumer side, outside head_mutex_: keep `c` as the spare; free the one it replaces.
  void recycle(Chunk* c) noexcept {
    // acq_rel: release publishes our last reads of `c` to the producer that takes it (acquire
    // in take_spare); acquire orders the previous spare's hand-over before we delete it.
    delete spare_.exchange(c, std::memory_order_acq_rel);
  }

  // Producer side (one line): the lock and what it guards.
  alignas(64) mutable Mutex tail_mutex_;
  Chunk* tail_chunk_;
  std::size_t tail_index_ = 0;
  std::uint64_t pushed_ = 0;  // == tail_; the producers' copy
  bool closed_ = false;
  std::uint64_t chunks_allocated_ = 1;  // the first chunk, from the constructor
  // Its own line: consumers read it on every poll, and the producer's lock word should not move
  // with it.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  // Consumer side (one line).
  alignas(64) Mutex head_mutex_;
  Chunk* head_chunk_;
  std::size_t head_index_ = 0;
  std::atomic<std::uint64_t> head_{0};
  std::atomic<std::uint64_t> seen_{0};  // consumers' copy of tail_ (see State)
  alignas(64) std::atomic<Chunk*> spare_{nullptr};
};

}  // namespace parkpool::detail

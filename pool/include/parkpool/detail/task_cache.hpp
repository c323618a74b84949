// parkpool::detail::TaskCache: the per-worker cache of memory blocks for small heap tasks.
//
// What it is
//   post(), submit() and TaskGroup::run() allocate one task object per call, and a worker that
//   runs (or steals) it frees it. Through malloc that was 30-40% of a spawn's cost
//   (bench/pool_bench.cpp InternalSpawn and Fib27 TaskGroup, perf, 2026-12-01): glibc's per-thread
//   cache holds 7 chunks per size, so a fork-join tree 27 levels deep, or a producer whose tasks
//   are freed by a thief, goes to the arena under its lock. A task of at most kPayloadBytes (and
//   alignment <= kPayloadAlign) instead lives in a 64-byte block taken from the allocating worker's
//   cache. Blocks come from plain operator new (16-byte aligned): a cache-line-aligned new took
//   glibc's memalign path, which made a burst of a million fresh blocks (InternalSpawn) slower than
//   plain malloc had been.
//
// Blocks and homes
//   A block is a 16-byte header (the home cache, a free-list link) and the payload. The worker
//   that allocates a block becomes its home. The thread that frees a block:
//     - is its home: the block goes to the home's local list (no atomic; at most kLocalCap blocks,
//       beyond that it is returned to operator delete);
//     - is not (a thief ran the task, or a submission failed on another thread): the block goes
//       to the home's remote list. A worker collects such blocks of one home in a batch and pushes
//       the batch with one CAS when it holds kRemoteBatch blocks, when it frees a block of another
//       home, and when it goes idle (trim) or stops (flush_remote); a thread without a cache pushes
//       each block with one CAS. The home takes the whole remote list with one exchange when its
//       local and spare lists are empty, so a producer whose tasks are all run by a thief
//       recycles its own blocks instead of calling malloc. (One CAS per block on the home's line
//       was the thief's hottest instruction in InternalSpawn, perf, 2026-12-01.)
//   A block allocated outside any worker (allocate_uncached) has no home and is adopted by the
//   freeing worker's local list, or deleted.
//
// Look-ahead links
//   The remote blocks were last written by other workers, so each one the home reuses is a cache
//   miss, and a free list is a chain of them: the home cannot find block i+1 before block i has
//   arrived. That dependent miss was 44-74% of the spawning loop's samples in InternalSpawn (perf,
//   AMD EPYC VM, 2026-12-02). So the freeing worker, which holds the pointers of the whole batch
//   it builds, also writes into each free block's payload (unused while the block is free) a link
//   to the block kAhead places further down the chain, and allocate() prefetches that block for
//   writing when it hands out this one: kAhead allocations before it is needed. The first kAhead
//   blocks of each batch have no block pointing at them (they are fetched one ahead, as before).
//
// Thread safety
//   allocate(), trim(), flush_remote() and the destructor: the owning worker only (the destructor
//   after it stopped). deallocate(): any thread, with `current` = the calling thread's own cache
//   or nullptr. A block's home must be alive when the block is freed and, for a block held in a
//   worker's batch, until that worker flushes it (trim, flush_remote or its destructor). In the
//   pool, blocks homed in a pool's caches are freed only by that pool's workers (a heap task runs
//   on a worker of its pool; a task allocated on any other thread gets a homeless block), and each
//   worker flushes before it stops, while every cache of the pool is still alive.
//
// Memory bound
//   Per worker: at most kLocalCap cached blocks (64 KiB) once trim() has run; trim() runs each time
//   the worker goes idle. Between two trims the spare and remote lists hold blocks that were in use
//   (tasks outstanding) since the last trim, and each worker's batch holds fewer than
//   kRemoteBatch blocks of other homes, so memory never exceeds the task peak plus kLocalCap +
//   kRemoteBatch blocks per worker.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

namespace parkpool::detail {

class TaskCache {
 public:
  static constexpr std::size_t kBlockBytes = 64;
  static constexpr std::size_t kHeaderBytes = 16;
  static constexpr std::size_t kPayloadBytes = kBlockBytes - kHeaderBytes;  // 48
  static constexpr std::size_t kPayloadAlign = 16;
  static constexpr std::uint32_t kLocalCap = 1024;
  // Blocks of another home a worker collects before it pushes them home with one CAS.
  static constexpr std::uint32_t kRemoteBatch = 32;
  // How far down the chain a remote batch's look-ahead links reach (see the header comment).
  static constexpr std::uint32_t kAhead = 8;

  // True if a T can live in a block.
  template <class T>
  static constexpr bool fits = sizeof(T) <= kPayloadBytes && alignof(T) <= kPayloadAlign;

  TaskCache() noexcept = default;
  TaskCache(const TaskCache&) = delete;
  TaskCache& operator=(const TaskCache&) = delete;
  ~TaskCache() {
    flush_remote();
    release_all();
  }

  // Owner only. A payload of kPayloadBytes bytes, aligned to kPayloadAlign. Throws std::bad_alloc.
  void* allocate() {
    Block* b = local_;
    if (b != nullptr) {
      local_ = b->next;
      --local_count_;
    } else if ((b = spare_) != nullptr) {
      take_spare(b);
    } else if (remote_.load(std::memory_order_relaxed) !=
                   nullptr &&  // relaxed: a hint
                               // (R2) acquire: pairs with (R1); the freeing threads' last use of
                               // each block and their `next` links happen-before we reuse them.
               (b = remote_.exchange(nullptr, std::memory_order_acquire)) != nullptr) {
      take_spare(b);
    } else {
      b = new_block();
    }
    b->home = this;
    return payload(b);
  }

  // Any thread without a cache of the pool (a non-worker). The block has no home.
  static void* allocate_uncached() {
    Block* b = new_block();
    b->home = nullptr;
    return payload(b);
  }

  // Any thread; `current` is the calling thread's own cache, or nullptr. The object in the
  // payload must already be destroyed.
  static void deallocate(void* p, TaskCache* current) noexcept {
    Block* b = block_of(p);
    TaskCache* home = b->home;
    if (home == nullptr) {
      if (current != nullptr) {
        current->keep(b);  // adopted: any block may live in any cache
      } else {
        delete_block(b);
      }
    } else if (home == current) {
      current->keep(b);
    } else if (current != nullptr) {
      current->batch_remote(home, b);
    } else {
      set_ahead(b, nullptr);
      home->push_remote(b, b);
    }
  }

  // Owner only: pushes the batch of other homes' blocks home now (one CAS). Cheap when empty.
  void flush_remote() noexcept {
    if (batch_count_ == 0) return;
    batch_home_->push_remote(batch_head_, batch_tail_);
    batch_home_ = nullptr;
    batch_head_ = batch_tail_ = nullptr;
    batch_count_ = 0;
  }

  // Owner only: moves spare and remote blocks into the local list up to kLocalCap and returns
  // the rest to operator delete. Cheap (two loads) when there is nothing to do.
  void trim() noexcept {
    flush_remote();  // blocks of other homes go back before this worker sleeps
    if (spare_ != nullptr) {
      Block* l = spare_;
      spare_ = nullptr;
      absorb(l);
    }
    if (remote_.load(std::memory_order_relaxed) != nullptr) {        // relaxed: a hint
      absorb(remote_.exchange(nullptr, std::memory_order_acquire));  // (R2), as in allocate()
    }
  }

  // Owner only (tests and stats): blocks in the local list.
  std::uint32_t local_count() const noexcept { return local_count_; }
  // Tests: the payload that p's look-ahead link named while p's block was free in a remote chain
  // (nullptr if none). Meaningful only right after allocate() returned p, before p is written.
  static void* lookahead_hint(void* p) noexcept {
    Block* a = ahead_of(block_of(p));
    return a == nullptr ? nullptr : payload(a);
  }
  // Owner only (tests): blocks in the spare list plus the remote list right now.
  std::size_t pending_count() const noexcept {
    std::size_t n = 0;
    for (Block* b = spare_; b != nullptr; b = b->next) ++n;
    // acquire: as (R2), the links we follow were written before (R1).
    for (Block* b = remote_.load(std::memory_order_acquire); b != nullptr; b = b->next) ++n;
    return n;
  }

 private:
  struct Block {
    TaskCache* home;  // written by the allocating thread before the task is published
    Block* next;      // free-list link; meaningful only while the block is free
  };
  static_assert(sizeof(Block) <= kHeaderBytes);
  // The look-ahead link lives in the payload's first bytes, only while the block is free in a
  // remote chain (the task object there is already destroyed; the next one overwrites it).
  static_assert(sizeof(Block*) <= kPayloadBytes);
  // Copied as bytes: no object is created in the payload (the next task is constructed there).
  static void set_ahead(Block* b, Block* a) noexcept { std::memcpy(payload(b), &a, sizeof a); }
  static Block* ahead_of(Block* b) noexcept {
    Block* a;
    std::memcpy(&a, payload(b), sizeof a);
    return a;
  }

  // Owner only: hands out b, the head of the spare chain (or of the remote chain just taken).
  // Those blocks were last written by other workers: each is a miss. Prefetch for writing (the
  // next task's header and body go there) the next block, and the one kAhead places ahead when
  // the freeing worker linked it, so the walk does not wait on one miss per allocation.
  void take_spare(Block* b) noexcept {
    spare_ = b->next;
    if (spare_ != nullptr) __builtin_prefetch(spare_, 1);
    if (Block* a = ahead_of(b); a != nullptr) __builtin_prefetch(a, 1);
  }

  static Block* new_block() { return ::new (::operator new(kBlockBytes)) Block{nullptr, nullptr}; }
  // Unsized: clang (the portable preset) declares sized deallocation only with
  // -fsized-deallocation.
  static void delete_block(Block* b) noexcept { ::operator delete(static_cast<void*>(b)); }
  static void* payload(Block* b) noexcept {
    return reinterpret_cast<unsigned char*>(b) + kHeaderBytes;
  }
  static Block* block_of(void* p) noexcept {
    return std::launder(reinterpret_cast<Block*>(static_cast<unsigned char*>(p) - kHeaderBytes));
  }

  void keep(Block* b) noexcept {
    if (local_count_ < kLocalCap) {
      b->next = local_;
      local_ = b;
      ++local_count_;
    } else {
      delete_block(b);
    }
  }
  void absorb(Block* l) noexcept {
    while (l != nullptr) {
      Block* n = l->next;
      keep(l);
      l = n;
    }
  }
  // Freeing worker: adds b (of `home`) to the batch; pushes the batch when it is full or when b
  // belongs to another home than the batch.
  void batch_remote(TaskCache* home, Block* b) noexcept {
    if (batch_home_ != home) {
      flush_remote();
      batch_home_ = home;
      batch_tail_ = b;
    }
    b->next = batch_head_;
    batch_head_ = b;
    // The home walks the chain from the head, newest first: the block kAhead places after b is
    // the one added kAhead additions before it, which batch_recent_ still holds.
    Block*& slot = batch_recent_[batch_count_ % kAhead];
    set_ahead(b, batch_count_ >= kAhead ? slot : nullptr);
    slot = b;
    if (++batch_count_ == kRemoteBatch) flush_remote();
  }
  // Pushes the chain first..last (linked through next, look-ahead links set or null) onto this
  // cache's remote list.
  void push_remote(Block* first, Block* last) noexcept {
    Block* head = remote_.load(std::memory_order_relaxed);  // relaxed: the CAS re-checks it
    do {
      last->next = head;
      // (R1) release: pairs with (R2); publishes the chain's links and orders the freeing
      // thread's last use of each block in it before the home reuses them. Relaxed on failure: we
      // only retry. A Treiber push needs no ABA protection when the only pop takes the whole list.
    } while (!remote_.compare_exchange_weak(head, first, std::memory_order_release,
                                            std::memory_order_relaxed));
  }
  void release_all() noexcept {
    // acquire, as (R2): pairs with the remote frees' release CAS (R1), whose links we follow.
    for (Block* l : {local_, spare_, remote_.exchange(nullptr, std::memory_order_acquire)}) {
      while (l != nullptr) {
        Block* n = l->next;
        delete_block(l);
        l = n;
      }
    }
    local_ = spare_ = nullptr;
    local_count_ = 0;
  }

  Block* local_ = nullptr;  // owner only: blocks this worker freed, most recent first (warm)
  Block* spare_ = nullptr;  // owner only: the last remote list taken, not yet used
  std::uint32_t local_count_ = 0;
  // Owner only: blocks of batch_home_ this worker freed, linked through next, not yet pushed.
  TaskCache* batch_home_ = nullptr;
  Block* batch_head_ = nullptr;
  Block* batch_tail_ = nullptr;
  std::uint32_t batch_count_ = 0;
  // Owner only: the batch's last kAhead blocks, by batch_count_ % kAhead (look-ahead links).
  Block* batch_recent_[kAhead] = {};
  // Blocks of this cache freed by other threads: a Treiber stack. Pushed by any thread (R1);
  // emptied only by the owner, whole, with one exchange (R2). Own line: freeing threads write it.
  alignas(64) std::atomic<Block*> remote_{nullptr};
  static_assert(std::atomic<Block*>::is_always_lock_free);
};

}  // namespace parkpool::detail

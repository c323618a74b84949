// parkpool::detail::TaskCache: the per-worker cache of memory blocks for small heap tasks.
//
// What it is
//   post(), submit() and TaskGroup::run() allocate one task object per call, and a worker that
//   runs (or steals) it frees it. Through malloc that was 30-40% of a spawn's cost
//   (bench/pool_bench.cpp InternalSpawn and Fib27 TaskGroup, perf, 2026-12-01): glibc's per-thread
//   cache holds 7 chunks per size, so a fork-join tree 27 levels deep, or a producer whose tasks
//   are freed by a thief, goes to the arena under its lock. A task of at most kPayloadBytes (and
//   alignment <= kPayloadAlign) instead lives in a 56-byte block taken from the allocating worker's
//   cache. Blocks come from plain operator new (16-byte aligned): a cache-line-aligned new took
//   glibc's memalign path, which made a burst of a million fresh blocks (InternalSpawn) slower than
//   plain malloc had been.
//
// Block layout: [payload, kPayloadBytes = 48][home, 8 bytes] = 56 bytes, which glibc serves from
//   a 64-byte chunk (its size word plus the 56 bytes; the next chunk's prev_size field is ours
//   while the chunk is in use). The payload starts the block, so it keeps operator new's 16-byte
//   alignment. While a block is free its payload is unused and holds the free-list link (bytes
//   0-7) and the look-ahead link (bytes 8-15, below). Until 2026-12-07 the home and the free-list
//   link were a 16-byte header in front of the payload: a 64-byte block in an 80-byte chunk.
//   That was 96.8 resident bytes per small task queued from a worker (the chunk, the deque's slot
//   and its retired rings; bench/pool_bench.cpp MemoryPerQueuedTask/parkpool_worker), over the
//   issue's 96; it is 80.8 with this layout.
//
// Blocks and homes
//   A block is the payload and its home cache (the layout above). The worker that allocates a
//   block becomes its home. The thread that frees a block:
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
//   Per worker: at most kLocalCap cached blocks (64 KiB of malloc chunks) once trim() has run;
//   trim() runs each time the worker goes idle. Between two trims the spare and remote lists hold
//   blocks that were in use (tasks outstanding) since the last trim, and each worker's batch holds
//   fewer than kRemoteBatch blocks of other homes, so memory never exceeds the task peak plus
//   kLocalCap + kRemoteBatch blocks per worker.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

namespace parkpool::detail {

class TaskCache {
 public:
  static constexpr std::size_t kPayloadBytes = 48;
  static constexpr std::size_t kBlockBytes = kPayloadBytes + sizeof(void*);  // + the home: 56
  // operator new's alignment: the payload is the block's start (the layout above).
  static constexpr std::size_t kPayloadAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
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
  // allocate() and deallocate() are forced inline with their common case only (a block from, or
  // back to, the caller's own local list), the rest out of line: GCC had kept both whole and out
  // of line, a call per task each way. Fork-join fib(27) with TaskGroup, 2 workers, alternating
  // process pairs on the 2-vCPU VM (2026-12-08), per-pair median time ratio in five series of 8
  // to 16 pairs: 0.919, 0.952, 0.914, 1.014, 0.970 (the last two with the final code, in the
  // machine's fast mode, fib at ~4.2 ms); 1 worker 0.954, 0.932, 0.997, 0.987. A small gain,
  // not always out of the spread; InternalSpawn moved within its spread (0.95-1.10).
  [[gnu::always_inline]] void* allocate() {
    Block* b = local_;
    if (b == nullptr) [[unlikely]]
      return allocate_slow();
    local_ = next_of(b);
    --local_count_;
    set_home(b, this);
    return payload(b);
  }

  // Any thread without a cache of the pool (a non-worker). The block has no home.
  static void* allocate_uncached() {
    Block* b = new_block();
    set_home(b, nullptr);
    return payload(b);
  }

  // Any thread; `current` is the calling thread's own cache, or nullptr. The object in the
  // payload must already be destroyed.
  [[gnu::always_inline]] static void deallocate(void* p, TaskCache* current) noexcept {
    Block* b = block_of(p);
    TaskCache* home = home_of(b);
    if (home == current && home != nullptr) [[likely]] {
      current->keep(b);  // freed by the worker that allocated it: the common case
      return;
    }
    deallocate_slow(b, home, current);
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
    for (Block* b = spare_; b != nullptr; b = next_of(b)) ++n;
    // acquire: as (R2), the links we follow were written before (R1).
    for (Block* b = remote_.load(std::memory_order_acquire); b != nullptr; b = next_of(b)) ++n;
    return n;
  }

 private:
  // A block is raw storage of kBlockBytes from operator new (the layout in the header comment);
  // Block* only names it. Its fields are copied in and out as bytes: no object lives there but
  // the task constructed in the payload, and the links share the payload's bytes with it.
  struct Block;
  static constexpr std::size_t kHomeOffset = kPayloadBytes;    // the home: any block, any time
  static constexpr std::size_t kNextOffset = 0;                // free-list link: free blocks only
  static constexpr std::size_t kAheadOffset = sizeof(Block*);  // look-ahead link: free, remote
  static_assert(kHomeOffset % alignof(TaskCache*) == 0);
  static_assert(kAheadOffset + sizeof(Block*) <= kPayloadBytes);
  static_assert(kPayloadAlign >= alignof(TaskCache*) && kPayloadAlign % alignof(Block*) == 0);

  static unsigned char* bytes(Block* b) noexcept { return reinterpret_cast<unsigned char*>(b); }
  template <class P>
  static P load_at(Block* b, std::size_t offset) noexcept {
    P v;
    std::memcpy(&v, bytes(b) + offset, sizeof v);
    return v;
  }
  template <class P>
  static void store_at(Block* b, std::size_t offset, P v) noexcept {
    std::memcpy(bytes(b) + offset, &v, sizeof v);
  }
  // Written by the allocating thread before the task is published (the publication orders it
  // for the freeing thread, as it orders the task's own fields).
  static TaskCache* home_of(Block* b) noexcept { return load_at<TaskCache*>(b, kHomeOffset); }
  static void set_home(Block* b, TaskCache* h) noexcept { store_at(b, kHomeOffset, h); }
  // Meaningful only while the block is free (the task object there is already destroyed; the
  // next one overwrites it).
  static Block* next_of(Block* b) noexcept { return load_at<Block*>(b, kNextOffset); }
  static void set_next(Block* b, Block* n) noexcept { store_at(b, kNextOffset, n); }
  // Only while the block is free in a remote chain.
  static void set_ahead(Block* b, Block* a) noexcept { store_at(b, kAheadOffset, a); }
  static Block* ahead_of(Block* b) noexcept { return load_at<Block*>(b, kAheadOffset); }

  // Owner only: hands out b, the head of the spare chain (or of the remote chain just taken).
  // Those blocks were last written by other workers: each is a miss. Prefetch for writing (the
  // next task and its home go there) the next block, and the one kAhead places ahead when
  // the freeing worker linked it, so the walk does not wait on one miss per allocation.
  void take_spare(Block* b) noexcept {
    spare_ = next_of(b);
    if (spare_ != nullptr) __builtin_prefetch(spare_, 1);
    if (Block* a = ahead_of(b); a != nullptr) __builtin_prefetch(a, 1);
  }

  static Block* new_block() { return static_cast<Block*>(::operator new(kBlockBytes)); }
  // Unsized: clang (the portable preset) declares sized deallocation only with
  // -fsized-deallocation.
  static void delete_block(Block* b) noexcept { ::operator delete(static_cast<void*>(b)); }
  static void* payload(Block* b) noexcept { return b; }
  static Block* block_of(void* p) noexcept { return static_cast<Block*>(p); }

  // allocate() with an empty local list: the spare list, then the remote list, then a new block.
  [[gnu::noinline]] void* allocate_slow() {
    Block* b = spare_;
    if (b != nullptr) {
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
    set_home(b, this);
    return payload(b);
  }
  // deallocate() of a block freed off its home worker, or of a homeless one.
  [[gnu::noinline]] static void deallocate_slow(Block* b, TaskCache* home,
                                                TaskCache* current) noexcept {
    if (home == nullptr) {
      if (current != nullptr) {
        current->keep(b);  // adopted: any block may live in any cache
      } else {
        delete_block(b);
      }
    } else if (current != nullptr) {
      current->batch_remote(home, b);
    } else {
      set_ahead(b, nullptr);
      home->push_remote(b, b);
    }
  }
  void keep(Block* b) noexcept {
    if (local_count_ < kLocalCap) {
      set_next(b, local_);
      local_ = b;
      ++local_count_;
    } else {
      delete_block(b);
    }
  }
  void absorb(Block* l) noexcept {
    while (l != nullptr) {
      Block* n = next_of(l);
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
    set_next(b, batch_head_);
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
      set_next(last, head);
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
        Block* n = next_of(l);
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

// White-box tests of TaskCache (pool/include/parkpool/detail/task_cache.hpp): block reuse, the
// return of blocks freed by other threads to their home (batched per freeing worker), homeless
// blocks, the local cap, trim(), and exactly-once hand-out while other threads free
// concurrently. Leaks are caught by the ASAN build (LeakSanitizer).
#include "parkpool/detail/task_cache.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include "parkpool_test.hpp"

namespace {

using parkpool::detail::TaskCache;

struct alignas(32) OverAligned {
  char c;
};

TEST(TaskCache, FitsOnlySmallAndModestlyAlignedTypes) {
  static_assert(TaskCache::fits<char[TaskCache::kPayloadBytes]>);
  static_assert(!TaskCache::fits<char[TaskCache::kPayloadBytes + 1]>);
  static_assert(TaskCache::fits<long double>);
  static_assert(!TaskCache::fits<OverAligned>);
  TaskCache c;
  void* p = c.allocate();
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % TaskCache::kPayloadAlign, 0u);
  // The whole payload is usable, and writing all of it leaves the block's home intact: the block
  // still goes back to this cache (a home overlapping the payload would send it elsewhere).
  auto* bytes = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < TaskCache::kPayloadBytes; ++i)
    bytes[i] = static_cast<unsigned char>(0xA5 ^ i);
  TaskCache::deallocate(p, &c);
  EXPECT_EQ(c.local_count(), 1u);
  EXPECT_EQ(c.allocate(), p);
  TaskCache::deallocate(p, &c);
}

TEST(TaskCache, OwnerFreeIsReusedFirst) {
  TaskCache c;
  void* a = c.allocate();
  void* b = c.allocate();
  EXPECT_NE(a, b);
  EXPECT_EQ(c.local_count(), 0u);
  TaskCache::deallocate(a, &c);
  TaskCache::deallocate(b, &c);
  EXPECT_EQ(c.local_count(), 2u);
  EXPECT_EQ(c.allocate(), b);  // LIFO: the warmest block first
  EXPECT_EQ(c.allocate(), a);
  EXPECT_EQ(c.local_count(), 0u);
  TaskCache::deallocate(a, &c);
  TaskCache::deallocate(b, &c);
}

TEST(TaskCache, BlocksFreedElsewhereGoHome) {
  TaskCache home;
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(home.allocate());
  std::thread other([&] {
    TaskCache mine;  // the freeing thread's own cache must not keep them
    for (void* p : blocks) TaskCache::deallocate(p, &mine);
    EXPECT_EQ(mine.local_count(), 0u);
  });
  other.join();
  EXPECT_EQ(home.local_count(), 0u);
  EXPECT_EQ(home.pending_count(), 100u);
  // Allocation now reuses them (no new block) until they are used up.
  const std::set<void*> freed(blocks.begin(), blocks.end());
  std::vector<void*> again;
  for (int i = 0; i < 100; ++i) {
    again.push_back(home.allocate());
    EXPECT_TRUE(freed.count(again.back()) == 1) << "allocation " << i << " did not reuse a block";
  }
  EXPECT_EQ(home.pending_count(), 0u);
  for (void* p : again) TaskCache::deallocate(p, &home);
}

// A worker that frees blocks of another home collects them and pushes them home with one CAS:
// when kRemoteBatch are collected, when it frees a block of a third home, when it trims (goes
// idle), flushes (stops) or dies. Single-threaded: the caches' roles need no second thread.
TEST(TaskCache, RemoteFreesAreBatchedUntilFullTrimOrAnotherHome) {
  constexpr std::uint32_t kBatch = TaskCache::kRemoteBatch;
  TaskCache home, other_home;
  std::vector<void*> blocks;
  for (std::uint32_t i = 0; i < 2 * kBatch; ++i) blocks.push_back(home.allocate());
  void* foreign = other_home.allocate();
  {
    TaskCache freer;
    for (std::uint32_t i = 0; i < kBatch - 1; ++i) TaskCache::deallocate(blocks[i], &freer);
    EXPECT_EQ(home.pending_count(), 0u) << "held in the freeing worker's batch";
    EXPECT_EQ(freer.local_count(), 0u) << "never kept by the freeing worker";
    TaskCache::deallocate(blocks[kBatch - 1], &freer);  // the batch is full: pushed
    EXPECT_EQ(home.pending_count(), kBatch);
    for (std::uint32_t i = kBatch; i < kBatch + 3; ++i) TaskCache::deallocate(blocks[i], &freer);
    EXPECT_EQ(home.pending_count(), kBatch);
    TaskCache::deallocate(foreign, &freer);  // another home: the batch so far is pushed first
    EXPECT_EQ(home.pending_count(), kBatch + 3);
    EXPECT_EQ(other_home.pending_count(), 0u);
    freer.trim();  // going idle: everything held goes home
    EXPECT_EQ(other_home.pending_count(), 1u);
    for (std::uint32_t i = kBatch + 3; i < kBatch + 5; ++i)
      TaskCache::deallocate(blocks[i], &freer);
    freer.flush_remote();  // a stopping worker
    EXPECT_EQ(home.pending_count(), kBatch + 5);
    for (std::uint32_t i = kBatch + 5; i < 2 * kBatch; ++i)
      TaskCache::deallocate(blocks[i], &freer);
  }  // the freeing cache dies: its batch goes home
  EXPECT_EQ(home.pending_count(), 2 * kBatch);
  // Every block comes back from the remote list, none twice.
  const std::set<void*> freed(blocks.begin(), blocks.end());
  std::set<void*> again;
  for (std::uint32_t i = 0; i < 2 * kBatch; ++i) {
    void* p = home.allocate();
    EXPECT_EQ(freed.count(p), 1u) << "allocation " << i << " did not reuse a freed block";
    again.insert(p);
  }
  EXPECT_EQ(again.size(), 2u * kBatch);
  for (void* p : again) TaskCache::deallocate(p, &home);
  EXPECT_EQ(other_home.allocate(), foreign);
  TaskCache::deallocate(foreign, &other_home);
}

// The home walks a remote chain newest-first; each block of a freeing worker's batch links the
// block kAhead places further down that walk, so allocate() can prefetch it (the last kAhead
// blocks of a batch, and blocks pushed one at a time, link nothing).
TEST(TaskCache, RemoteBatchesLinkEachBlockToTheOneKAheadInTheHomesWalk) {
  constexpr std::uint32_t kBatch = TaskCache::kRemoteBatch;
  constexpr std::uint32_t kAhead = TaskCache::kAhead;
  static_assert(kAhead < kBatch);
  TaskCache home;
  std::vector<void*> blocks;
  for (std::uint32_t i = 0; i < 2 * kBatch + 1; ++i) blocks.push_back(home.allocate());
  {
    TaskCache freer;
    for (std::uint32_t i = 0; i < 2 * kBatch; ++i) TaskCache::deallocate(blocks[i], &freer);
  }
  TaskCache::deallocate(blocks[2 * kBatch], nullptr);  // no cache: pushed alone, links nothing
  ASSERT_EQ(home.pending_count(), 2 * kBatch + 1);
  std::vector<void*> order, hints;
  for (std::uint32_t i = 0; i < 2 * kBatch + 1; ++i) {
    order.push_back(home.allocate());
    hints.push_back(TaskCache::lookahead_hint(order.back()));
  }
  // The walk: the lone block (pushed last), then the second batch, then the first.
  EXPECT_EQ(order[0], blocks[2 * kBatch]);
  EXPECT_EQ(hints[0], nullptr);
  for (std::uint32_t batch = 0; batch < 2; ++batch) {
    const std::uint32_t first = 1 + batch * kBatch;
    for (std::uint32_t j = 0; j < kBatch; ++j) {
      if (j + kAhead < kBatch) {
        EXPECT_EQ(hints[first + j], order[first + j + kAhead]) << "batch " << batch << " pos " << j;
      } else {
        EXPECT_EQ(hints[first + j], nullptr) << "batch " << batch << " pos " << j;
      }
    }
  }
  for (void* p : order) TaskCache::deallocate(p, &home);
}

TEST(TaskCache, FreeWithoutACacheAlsoGoesHome) {
  TaskCache home;
  void* p = home.allocate();
  std::thread([p] { TaskCache::deallocate(p, nullptr); }).join();
  EXPECT_EQ(home.pending_count(), 1u);
  EXPECT_EQ(home.allocate(), p);
  TaskCache::deallocate(p, &home);
}

TEST(TaskCache, HomelessBlocksAreAdoptedOrDeleted) {
  TaskCache c;
  void* p = TaskCache::allocate_uncached();
  TaskCache::deallocate(p, &c);
  EXPECT_EQ(c.local_count(), 1u);
  EXPECT_EQ(c.allocate(), p);
  TaskCache::deallocate(p, &c);
  void* q = TaskCache::allocate_uncached();
  TaskCache::deallocate(q, nullptr);  // deleted (LeakSanitizer checks it is not lost)
  EXPECT_EQ(c.local_count(), 1u);
}

TEST(TaskCache, LocalListIsCapped) {
  TaskCache c;
  std::vector<void*> blocks;
  for (std::uint32_t i = 0; i < TaskCache::kLocalCap + 10; ++i) blocks.push_back(c.allocate());
  for (void* p : blocks) TaskCache::deallocate(p, &c);
  EXPECT_EQ(c.local_count(), TaskCache::kLocalCap);
}

TEST(TaskCache, TrimBoundsRemoteBlocks) {
  TaskCache home;
  constexpr std::uint32_t kN = TaskCache::kLocalCap * 2 + 5;
  std::vector<void*> blocks;
  for (std::uint32_t i = 0; i < kN; ++i) blocks.push_back(home.allocate());
  std::thread([&] {
    for (void* p : blocks) TaskCache::deallocate(p, nullptr);
  }).join();
  EXPECT_EQ(home.pending_count(), kN);
  void* in_use = home.allocate();  // takes the remote list as the spare list
  EXPECT_EQ(home.pending_count(), kN - 1);
  home.trim();
  EXPECT_EQ(home.pending_count(), 0u);
  EXPECT_EQ(home.local_count(), TaskCache::kLocalCap);
  home.trim();  // nothing to do
  EXPECT_EQ(home.local_count(), TaskCache::kLocalCap);
  TaskCache::deallocate(in_use, &home);  // the list is full: returned to operator delete
  EXPECT_EQ(home.local_count(), TaskCache::kLocalCap);
}

// The owner allocates and hands blocks to freeing threads through a queue of slots, while those
// threads free them back concurrently. A block is never handed out while it is still in use:
// each payload carries a "live" mark that the owner checks on allocation.
TEST(TaskCache, ConcurrentRemoteFreesNeverHandOutALiveBlock) {
  constexpr std::size_t kThieves = 3;
  const std::size_t total = parkpool::test::scaled(200000);
  constexpr std::size_t kSlots = 64;
  TaskCache home;
  std::vector<std::atomic<void*>> slots(kSlots * kThieves);
  for (auto& s : slots) s.store(nullptr, std::memory_order_relaxed);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> freed{0};
  std::vector<std::thread> thieves;
  for (std::size_t t = 0; t < kThieves; ++t) {
    thieves.emplace_back([&, t] {
      TaskCache mine;
      while (!stop.load(std::memory_order_acquire)) {
        for (std::size_t i = 0; i < kSlots; ++i) {
          // acquire: pairs with the owner's release store; the payload's mark is visible.
          void* p = slots[t * kSlots + i].exchange(nullptr, std::memory_order_acquire);
          if (p == nullptr) continue;
          auto* mark = static_cast<std::uint64_t*>(p);
          EXPECT_EQ(*mark, 0xA11CEu);
          *mark = 0;  // dead from here on
          TaskCache::deallocate(p, &mine);
          freed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  std::size_t handed = 0;
  std::size_t next = 0;
  std::unordered_set<void*> seen;
  while (handed < total) {
    void* p = home.allocate();
    auto* mark = static_cast<std::uint64_t*>(p);
    // A block handed out before and still in use would carry the live mark (its thief has not
    // cleared it yet). A fresh block's bytes are indeterminate: only reused blocks are checked.
    if (!seen.insert(p).second) {
      ASSERT_NE(*mark, 0xA11CEu) << "a live block was handed out again";
    }
    *mark = 0xA11CEu;
    for (;;) {
      void* expected = nullptr;
      // release: publishes the mark to the thief's acquire exchange.
      if (slots[next].compare_exchange_strong(expected, p, std::memory_order_release,
                                              std::memory_order_relaxed)) {
        break;
      }
      next = (next + 1) % slots.size();
    }
    next = (next + 1) % slots.size();
    ++handed;
  }
  while (freed.load(std::memory_order_relaxed) < total) std::this_thread::yield();
  stop.store(true, std::memory_order_release);
  for (auto& th : thieves) th.join();
  EXPECT_EQ(freed.load(), total);
  home.trim();
  EXPECT_LE(home.local_count(), TaskCache::kLocalCap);
  EXPECT_EQ(home.pending_count(), 0u);
}

}  // namespace

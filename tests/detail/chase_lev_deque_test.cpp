// White-box tests of the Chase-Lev deque: owner LIFO, thief FIFO, wrap-around of the ring, growth
// under thieves, and push/pop/steal races where every item must be taken exactly once.
#include "parkpool/detail/chase_lev_deque.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

namespace {

using parkpool::detail::ChaseLevDeque;
using parkpool::detail::StealResult;

TEST(ChaseLevDeque, EmptyPopAndStealReturnNothing) {
  ChaseLevDeque<int> d(4);
  int* out = nullptr;
  EXPECT_EQ(d.pop(), nullptr);
  EXPECT_EQ(d.steal(&out), StealResult::empty);
  EXPECT_TRUE(d.empty_hint());
}

TEST(ChaseLevDeque, OwnerIsLifoThiefIsFifo) {
  ChaseLevDeque<int> d(4);
  int v[3] = {0, 1, 2};
  for (int& x : v) d.push(&x);
  int* out = nullptr;
  ASSERT_EQ(d.steal(&out), StealResult::success);
  EXPECT_EQ(out, &v[0]);
  EXPECT_EQ(d.pop(), &v[2]);
  EXPECT_EQ(d.pop(), &v[1]);
  EXPECT_EQ(d.pop(), nullptr);
  EXPECT_EQ(d.size_hint(), 0u);
}

// next_pop_hint() (a prefetch hint for the owner) names the item the next pop() returns.
TEST(ChaseLevDeque, NextPopHintNamesTheItemTheNextPopReturns) {
  ChaseLevDeque<int> d(4);
  EXPECT_EQ(d.next_pop_hint(), nullptr) << "nothing was ever pushed";
  int v[3] = {0, 1, 2};
  for (int& x : v) {
    d.push(&x);
    EXPECT_EQ(d.next_pop_hint(), &x);
  }
  for (int i = 2; i >= 0; --i) {
    ASSERT_EQ(d.next_pop_hint(), &v[i]);
    ASSERT_EQ(d.pop(), &v[i]);
  }
}

TEST(ChaseLevDeque, RingPositionsWrapAroundWithoutGrowing) {
  ChaseLevDeque<int> d(4);
  std::vector<int> v(4);
  const std::size_t cap = d.capacity();
  // Indices run far past the ring size; every push/pop pair reuses slots modulo capacity.
  for (int round = 0; round < 1000; ++round) {
    d.push(&v[0]);
    d.push(&v[1]);
    int* out = nullptr;
    ASSERT_EQ(d.steal(&out), StealResult::success);
    ASSERT_EQ(out, &v[0]);
    ASSERT_EQ(d.pop(), &v[1]);
  }
  EXPECT_EQ(d.capacity(), cap);
}

TEST(ChaseLevDeque, GrowsAndKeepsOrder) {
  ChaseLevDeque<int> d(2);
  std::vector<int> v(1000);
  for (int& x : v) d.push(&x);
  EXPECT_GE(d.capacity(), 1000u);
  EXPECT_EQ(d.size_hint(), 1000u);
  int* out = nullptr;
  for (std::size_t i = 0; i < 10; ++i) {
    ASSERT_EQ(d.steal(&out), StealResult::success);
    EXPECT_EQ(out, &v[i]);
  }
  for (std::size_t i = 999; i >= 10; --i) ASSERT_EQ(d.pop(), &v[i]);
  EXPECT_EQ(d.pop(), nullptr);
}

TEST(ChaseLevDeque, PushIfRoomFailsWhenFullAndNeverGrows) {
  ChaseLevDeque<int> d(4);
  std::vector<int> v(5);
  const std::size_t cap = d.capacity();
  ASSERT_EQ(cap, 4u);
  for (std::size_t i = 0; i < cap; ++i) ASSERT_TRUE(d.push_if_room(&v[i])) << i;
  EXPECT_FALSE(d.push_if_room(&v[4]));  // full: refused, not grown
  EXPECT_EQ(d.capacity(), cap);
  EXPECT_EQ(d.size_hint(), cap);
  int* out = nullptr;
  ASSERT_EQ(d.steal(&out), StealResult::success);  // frees the oldest slot
  EXPECT_EQ(out, &v[0]);
  EXPECT_TRUE(d.push_if_room(&v[4]));  // the refreshed top shows the room
  for (int i = 4; i >= 1; --i) ASSERT_EQ(d.pop(), &v[static_cast<std::size_t>(i)]);
  EXPECT_EQ(d.pop(), nullptr);
}

// The owner pushes and pops while thieves steal; each item must be taken exactly once.
// Small initial ring so growth happens under concurrent steals.
void race(std::size_t thieves, std::size_t items, int pop_every) {
  ChaseLevDeque<std::uint32_t> d(2);
  std::vector<std::uint32_t> v(items);
  std::vector<std::atomic<std::uint32_t>> taken(items);
  for (std::size_t i = 0; i < items; ++i) v[i] = static_cast<std::uint32_t>(i);
  std::atomic<bool> done{false};
  std::atomic<std::size_t> count{0};
  std::barrier start(static_cast<std::ptrdiff_t>(thieves + 1));
  auto take = [&](std::uint32_t* p) {
    taken[*p].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::thread> ts;
  for (std::size_t k = 0; k < thieves; ++k) {
    ts.emplace_back([&] {
      start.arrive_and_wait();
      while (!done.load(std::memory_order_acquire) || !d.empty_hint()) {
        std::uint32_t* out = nullptr;
        if (d.steal(&out) == StealResult::success) take(out);
      }
    });
  }
  start.arrive_and_wait();
  for (std::size_t i = 0; i < items; ++i) {
    d.push(&v[i]);
    if (pop_every > 0 && i % static_cast<std::size_t>(pop_every) == 0) {
      if (std::uint32_t* p = d.pop()) take(p);
    }
  }
  while (std::uint32_t* p = d.pop()) take(p);
  done.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  ASSERT_EQ(count.load(), items);
  for (std::size_t i = 0; i < items; ++i) ASSERT_EQ(taken[i].load(), 1u) << "item " << i;
}

TEST(ChaseLevDeque, StealOnlyRaceTakesEveryItemOnce) { race(2, parkpool::test::scaled(200000), 0); }
TEST(ChaseLevDeque, PushPopStealRaceTakesEveryItemOnce) {
  race(3, parkpool::test::scaled(200000), 2);
}
TEST(ChaseLevDeque, BatchStealIntoOwnDequeTakesEveryItemOnce) {
  // The pool's steal_more() pattern: a thief steals a run of items back to back and pushes them
  // into its own deque (push_if_room), which it pops and a second thief steals from, while the
  // owner pushes and pops. Every item is taken exactly once.
  const std::size_t items = parkpool::test::scaled(200000);
  ChaseLevDeque<std::uint32_t> d(2);
  ChaseLevDeque<std::uint32_t> mine(64);  // the batching thief's own deque
  std::vector<std::uint32_t> v(items);
  std::vector<std::atomic<std::uint32_t>> taken(items);
  for (std::size_t i = 0; i < items; ++i) v[i] = static_cast<std::uint32_t>(i);
  std::atomic<std::size_t> count{0};
  auto take = [&](std::uint32_t* p) {
    taken[*p].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
  };
  auto finished = [&] { return count.load(std::memory_order_relaxed) == items; };
  std::thread batcher([&] {
    while (!finished()) {
      if (std::uint32_t* p = mine.pop()) {
        take(p);
        continue;
      }
      std::uint32_t* first = nullptr;
      if (d.steal(&first) != StealResult::success) continue;
      std::size_t want = std::min<std::size_t>(d.size_hint() / 2, 31);
      for (std::size_t k = 0; k < want; ++k) {
        std::uint32_t* p = nullptr;
        if (d.steal(&p) != StealResult::success) break;
        // Own deque emptied above; 64 >= 31. Non-fatal, and a rejected item is taken here: a
        // fatal ASSERT would return with it (and `first`) untaken, so `count` would never reach
        // `items` and `second` would spin until the ctest TIMEOUT, with no message.
        if (!mine.push_if_room(p)) {
          ADD_FAILURE() << "push_if_room refused item " << *p << " (pushed " << k << " of " << want
                        << ")";
          take(p);
        }
      }
      take(first);
    }
  });
  std::thread second([&] {  // steals from the batcher's deque
    while (!finished()) {
      std::uint32_t* p = nullptr;
      if (mine.steal(&p) == StealResult::success) take(p);
    }
  });
  for (std::size_t i = 0; i < items; ++i) {
    d.push(&v[i]);
    if (i % 3 == 0) {
      if (std::uint32_t* p = d.pop()) take(p);
    }
  }
  while (std::uint32_t* p = d.pop()) take(p);
  batcher.join();
  second.join();
  ASSERT_EQ(count.load(), items);
  for (std::size_t i = 0; i < items; ++i) ASSERT_EQ(taken[i].load(), 1u) << "item " << i;
}

TEST(ChaseLevDeque, LastItemRaceBetweenPopAndSteal) {
  // One item at a time: every pop races the thief for the last element (the CAS on top).
  ChaseLevDeque<std::uint32_t> d(2);
  const std::size_t n = parkpool::test::scaled(100000);
  std::vector<std::uint32_t> v(n);
  std::vector<std::atomic<std::uint32_t>> taken(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint32_t>(i);
  std::atomic<bool> done{false};
  std::thread thief([&] {
    while (!done.load(std::memory_order_acquire)) {
      std::uint32_t* out = nullptr;
      if (d.steal(&out) == StealResult::success) taken[*out].fetch_add(1);
    }
  });
  for (std::size_t i = 0; i < n; ++i) {
    d.push(&v[i]);
    if (std::uint32_t* p = d.pop()) taken[*p].fetch_add(1);
  }
  done.store(true, std::memory_order_release);
  thief.join();
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(taken[i].load(), 1u) << "item " << i;
}

}  // namespace

// ---- reclaim() (INV-2 (b), the header's "Reclaiming rings"), single-threaded ----

// A barrier and a scan that count their calls; `named` is the scan's answer.
struct ReclaimProbe {
  int barriers = 0;
  int scans = 0;
  bool named = false;
  bool reclaim(ChaseLevDeque<int>& d) {
    return d.reclaim([this] { ++barriers; },
                     [this, &d](const void* deque) {
                       EXPECT_EQ(deque, static_cast<const void*>(&d));
                       ++scans;
                       return named;
                     });
  }
};

TEST(ChaseLevDeque, ReclaimReturnsAnEmptyGrownDequeToItsInitialRing) {
  ChaseLevDeque<int> d(4);
  EXPECT_FALSE(d.has_spare_rings());
  std::vector<int> v(100);
  for (int& x : v) d.push(&x);
  ASSERT_EQ(d.capacity(), 128u);     // 4 -> 8 -> ... -> 128
  ASSERT_EQ(d.retired_rings(), 5u);  // 4, 8, 16, 32, 64
  EXPECT_TRUE(d.has_spare_rings());

  ReclaimProbe probe;
  // Not empty: left as it is, no barrier.
  EXPECT_FALSE(probe.reclaim(d));
  EXPECT_EQ(d.capacity(), 128u);
  EXPECT_EQ(d.retired_rings(), 5u);
  EXPECT_EQ(probe.barriers, 0);
  // One item left (taken by a steal at the top): still not empty.
  for (std::size_t i = 99; i >= 2; --i) ASSERT_EQ(d.pop(), &v[i]);
  int* out = nullptr;
  ASSERT_EQ(d.steal(&out), StealResult::success);
  EXPECT_EQ(out, &v[0]);
  EXPECT_FALSE(probe.reclaim(d));
  EXPECT_EQ(d.capacity(), 128u);
  EXPECT_EQ(probe.barriers, 0);
  ASSERT_EQ(d.pop(), &v[1]);

  // Empty: a fresh ring of the initial capacity, one barrier, one scan, every retired ring freed.
  EXPECT_TRUE(probe.reclaim(d));
  EXPECT_EQ(d.capacity(), 4u);
  EXPECT_EQ(d.retired_rings(), 0u);
  EXPECT_EQ(probe.barriers, 1);
  EXPECT_EQ(probe.scans, 1);
  EXPECT_FALSE(d.has_spare_rings());
  // Nothing left to do: no barrier.
  EXPECT_TRUE(probe.reclaim(d));
  EXPECT_EQ(probe.barriers, 1);

  // The deque works on from the fresh ring: order kept, growth again.
  for (int& x : v) d.push(&x);
  EXPECT_EQ(d.capacity(), 128u);
  ASSERT_EQ(d.steal(&out), StealResult::success);
  EXPECT_EQ(out, &v[0]);
  for (std::size_t i = 99; i >= 1; --i) ASSERT_EQ(d.pop(), &v[i]);
  EXPECT_EQ(d.pop(), nullptr);
}

TEST(ChaseLevDeque, ReclaimKeepsRetiredRingsWhileAHazardSlotNamesTheDeque) {
  ChaseLevDeque<int> d(4);
  std::vector<int> v(10);
  for (int& x : v) d.push(&x);  // 4 -> 8 -> 16
  while (d.pop() != nullptr) {
  }
  ReclaimProbe probe;
  probe.named = true;
  EXPECT_FALSE(probe.reclaim(d));
  EXPECT_EQ(d.capacity(), 4u) << "the shrink does not wait for the scan";
  EXPECT_EQ(d.retired_rings(), 3u) << "4, 8 and the 16 it replaced: kept";
  EXPECT_EQ(probe.barriers, 1);
  probe.named = false;
  EXPECT_TRUE(probe.reclaim(d));
  EXPECT_EQ(d.retired_rings(), 0u);
  EXPECT_EQ(probe.barriers, 2);
}

// A steal with a hazard slot leaves it null whatever the outcome (R3 runs before the CAS).
TEST(ChaseLevDeque, StealWithAHazardSlotClearsIt) {
  ChaseLevDeque<int> d(4);
  std::atomic<const void*> hazard{nullptr};
  int* out = nullptr;
  EXPECT_EQ(d.steal(&out, &hazard), StealResult::empty);
  EXPECT_EQ(hazard.load(), nullptr);
  int x = 1;
  d.push(&x);
  ASSERT_EQ(d.steal(&out, &hazard), StealResult::success);
  EXPECT_EQ(out, &x);
  EXPECT_EQ(hazard.load(), nullptr);
}

// White-box tests of the injector (detail/injector.hpp: a two-lock queue over chunks): FIFO order
// across chunk ends, chunk recycling, the closed gate, positions, and exactly-once delivery with
// several producers and consumers. Small ChunkBytes make the tests cross chunk ends often.
#include "parkpool/detail/injector.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

namespace {

using parkpool::detail::Injector;

// 64-byte chunks: a link and 7 pointers.
using SmallInjector = Injector<int*, 64>;
static_assert(SmallInjector::kPerChunk == 7);

TEST(Injector, EmptyPopReturnsFalse) {
  Injector<int*> q;
  int* out = nullptr;
  EXPECT_FALSE(q.pop(out));
  EXPECT_TRUE(q.empty_hint());
  EXPECT_EQ(q.pushed(), 0u);
  EXPECT_EQ(q.popped(), 0u);
}

TEST(Injector, SingleProducerIsFifoAcrossChunks) {
  SmallInjector q;
  std::vector<int> v(100);  // 15 chunks
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(q.push(&v[i]), i + 1) << "1-based position";
  EXPECT_FALSE(q.empty_hint());
  int* out = nullptr;
  for (int& x : v) {
    ASSERT_TRUE(q.pop(out));
    ASSERT_EQ(out, &x);
  }
  EXPECT_FALSE(q.pop(out));
  EXPECT_TRUE(q.empty_hint());
  EXPECT_EQ(q.pushed(), 100u);
  EXPECT_EQ(q.popped(), 100u);
}

// A queue emptied exactly at a chunk's end moves on to the next chunk only when an item is there
// (INV-C), and an emptied chunk is reused through the spare: one item in, one out, for many
// chunks, allocates two chunks in all.
TEST(Injector, ReusesEmptiedChunksWhenDrainedAtChunkEnds) {
  SmallInjector q;
  std::vector<int> v(10 * SmallInjector::kPerChunk + 3);
  int* out = nullptr;
  for (std::size_t i = 0; i < v.size(); ++i) {
    q.push(&v[i]);
    ASSERT_TRUE(q.pop(out)) << "item " << i;
    ASSERT_EQ(out, &v[i]);
    ASSERT_FALSE(q.pop(out));
  }
  EXPECT_EQ(q.chunks_allocated(), 2u) << "a steady trickle must not allocate per chunk";
  // A full chunk drained to its end, then one more item.
  for (std::size_t i = 0; i < SmallInjector::kPerChunk; ++i) q.push(&v[i]);
  for (std::size_t i = 0; i < SmallInjector::kPerChunk; ++i) ASSERT_TRUE(q.pop(out));
  EXPECT_FALSE(q.pop(out));
  q.push(&v[0]);
  ASSERT_TRUE(q.pop(out));
  EXPECT_EQ(out, &v[0]);
}

TEST(Injector, CloseRejectsLaterPushesAndKeepsEarlierItems) {
  SmallInjector q;
  std::vector<int> v(10);
  for (int& x : v) ASSERT_NE(q.push(&x), 0u);
  q.close();
  EXPECT_EQ(q.push(&v[0]), 0u) << "closed: not accepted";
  q.close();  // idempotent
  EXPECT_EQ(q.push(&v[0]), 0u);
  EXPECT_EQ(q.pushed(), 10u);
  int* out = nullptr;
  for (int& x : v) {
    ASSERT_TRUE(q.pop(out)) << "items accepted before close() stay";
    ASSERT_EQ(out, &x);
  }
  EXPECT_FALSE(q.pop(out));
}

// The pool's gate (INV-G1): when close() returns, every push that returned a position has its
// item in the queue, visible to the closing thread. Producers race close(); afterwards the closer
// alone must pop exactly the accepted items.
TEST(Injector, CloseSeesEveryAcceptedPush) {
  constexpr std::size_t kProducers = 3;
  const int rounds = static_cast<int>(parkpool::test::scaled(200));
  for (int round = 0; round < rounds; ++round) {
    Injector<std::uint32_t, 128> q;
    std::atomic<std::uint64_t> accepted{0};
    std::barrier start(kProducers + 1);
    std::vector<std::thread> ts;
    for (std::size_t p = 0; p < kProducers; ++p) {
      ts.emplace_back([&, p] {
        start.arrive_and_wait();
        for (;;) {
          if (q.push(static_cast<std::uint32_t>(p)) == 0) break;
          accepted.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    start.arrive_and_wait();
    // Let the producers fill a few chunks (bounded: they never stop by themselves).
    while (q.pushed() < 100) std::this_thread::yield();
    q.close();
    std::uint64_t popped = 0;
    std::uint32_t x = 0;
    while (q.pop(x)) ++popped;
    for (auto& t : ts) t.join();
    ASSERT_EQ(popped, accepted.load()) << "round " << round;
    ASSERT_EQ(q.pushed(), popped);
    ASSERT_FALSE(q.pop(x));
  }
}

TEST(Injector, ManyProducersManyConsumersDeliverEachItemOnce) {
  constexpr std::size_t kProducers = 3, kConsumers = 3;
  const std::size_t per = parkpool::test::scaled(100000);
  Injector<std::uint32_t*, 256> q;
  std::vector<std::uint32_t> v(per * kProducers);
  std::vector<std::atomic<std::uint32_t>> seen(v.size());
  std::vector<std::atomic<std::uint32_t>> position_used(v.size() + 1);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint32_t>(i);
  std::atomic<std::size_t> consumed{0};
  std::barrier start(kProducers + kConsumers);
  std::vector<std::thread> ts;
  for (std::size_t p = 0; p < kProducers; ++p) {
    ts.emplace_back([&, p] {
      start.arrive_and_wait();
      bool reported = false;
      for (std::size_t i = 0; i < per; ++i) {
        const std::uint64_t pos = q.push(&v[p * per + i]);
        if (pos == 0 || pos > v.size()) {
          // Reported (once per producer), then the pushes go on: returning here would leave the
          // consumers waiting for items never pushed until the ctest TIMEOUT, with no message.
          if (!reported) ADD_FAILURE() << "item " << p * per + i << " got position " << pos;
          reported = true;
          continue;
        }
        position_used[pos].fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::size_t c = 0; c < kConsumers; ++c) {
    ts.emplace_back([&] {
      start.arrive_and_wait();
      std::uint32_t last_of[kProducers] = {0, 0, 0};
      bool any_of[kProducers] = {false, false, false};
      while (consumed.load(std::memory_order_relaxed) < v.size()) {
        std::uint32_t* x = nullptr;
        if (q.pop(x)) {
          seen[*x].fetch_add(1, std::memory_order_relaxed);
          // FIFO per producer, as seen by one consumer: its items from one producer ascend.
          const std::size_t p = *x / per;
          if (any_of[p] && *x <= last_of[p]) ADD_FAILURE() << "out of order: " << *x;
          any_of[p] = true;
          last_of[p] = *x;
          consumed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(seen[i].load(), 1u) << "item " << i;
  for (std::size_t i = 1; i <= v.size(); ++i)
    ASSERT_EQ(position_used[i].load(), 1u) << "position " << i;
  std::uint32_t* out = nullptr;
  EXPECT_FALSE(q.pop(out));
  EXPECT_EQ(q.pushed(), v.size());
  EXPECT_EQ(q.popped(), v.size());
}

// The pool's 56-byte items, by value: 73 per 4 KiB chunk.
struct Wide {
  std::uint64_t words[7];
};
TEST(Injector, CarriesTriviallyCopyableValuesInline) {
  static_assert(Injector<Wide>::kPerChunk == 73);
  Injector<Wide> q;
  for (std::uint64_t i = 0; i < 200; ++i)
    q.push(Wide{{i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6}});
  Wide w{};
  for (std::uint64_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(q.pop(w));
    ASSERT_EQ(w.words[0], i);
    ASSERT_EQ(w.words[6], i + 6);
  }
  EXPECT_FALSE(q.pop(w));
}

}  // namespace

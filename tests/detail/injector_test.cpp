// White-box tests of the injector (boost::lockfree::queue wrapper): FIFO from one producer and
// exactly-once delivery with several producers and consumers.
#include "parkpool/detail/injector.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

namespace {

using parkpool::detail::Injector;

TEST(Injector, EmptyPopReturnsNull) {
  Injector<int*> q(4);
  int* out = nullptr;
  EXPECT_FALSE(q.pop(out));
  EXPECT_TRUE(q.empty_hint());
}

TEST(Injector, SingleProducerIsFifo) {
  Injector<int*> q(2);  // fewer reserved nodes than items: the queue allocates more
  std::vector<int> v(100);
  for (int& x : v) q.push(&x);
  int* out = nullptr;
  for (int& x : v) {
    ASSERT_TRUE(q.pop(out));
    ASSERT_EQ(out, &x);
  }
  EXPECT_FALSE(q.pop(out));
}

TEST(Injector, ManyProducersManyConsumersDeliverEachItemOnce) {
  constexpr std::size_t kProducers = 3, kConsumers = 3;
  const std::size_t per = parkpool::test::scaled(100000);
  Injector<std::uint32_t*> q(16);
  std::vector<std::uint32_t> v(per * kProducers);
  std::vector<std::atomic<std::uint32_t>> seen(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint32_t>(i);
  std::atomic<std::size_t> consumed{0};
  std::barrier start(kProducers + kConsumers);
  std::vector<std::thread> ts;
  for (std::size_t p = 0; p < kProducers; ++p) {
    ts.emplace_back([&, p] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < per; ++i) q.push(&v[p * per + i]);
    });
  }
  for (std::size_t c = 0; c < kConsumers; ++c) {
    ts.emplace_back([&] {
      start.arrive_and_wait();
      while (consumed.load(std::memory_order_relaxed) < v.size()) {
        std::uint32_t* x = nullptr;
        if (q.pop(x)) {
          seen[*x].fetch_add(1, std::memory_order_relaxed);
          consumed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(seen[i].load(), 1u) << "item " << i;
  std::uint32_t* out = nullptr;
  EXPECT_FALSE(q.pop(out));
}

// A 56-byte trivially copyable value: with boost's 8-byte link it fills one 64-byte node.
struct Wide {
  std::uint64_t words[7];
};
TEST(Injector, CarriesTriviallyCopyableValuesInline) {
  Injector<Wide> q(4);
  for (std::uint64_t i = 0; i < 100; ++i)
    q.push(Wide{{i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6}});
  Wide w{};
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(q.pop(w));
    ASSERT_EQ(w.words[0], i);
    ASSERT_EQ(w.words[6], i + 6);
  }
  EXPECT_FALSE(q.pop(w));
}

}  // namespace

// The same application on parkpool, translated line by line with docs/migrating-from-tbb.md:
//   task_arena(n)          -> parkpool::ThreadPool with PoolOptions::threads = n
//   arena.enqueue(f)       -> pool.post(f)
//   arena.execute(f)       -> f() on the calling thread (it only spawns into the pool)
//   tbb::task_group        -> parkpool::TaskGroup(pool)
//   tbb::parallel_invoke   -> parkpool::join(pool, a, b)
//   tbb::parallel_for      -> parkpool::parallel_for(pool, lo, hi, body(i))
#pragma once

#include <atomic>
#include <thread>

#include "app_common.hpp"
#include "parkpool/thread_pool.hpp"

namespace migration::parkpool_version {

inline void sort(parkpool::ThreadPool& pool, std::uint32_t* first, std::uint32_t* last,
                 std::vector<std::uint32_t>& tmp, std::size_t offset) {
  const auto n = static_cast<std::size_t>(last - first);
  if (n <= kSortCutoff) {
    std::sort(first, last);
    return;
  }
  std::uint32_t* mid = first + n / 2;
  parkpool::TaskGroup g(pool);
  g.run([&] { sort(pool, first, mid, tmp, offset); });
  sort(pool, mid, last, tmp, offset + n / 2);
  g.wait();
  std::merge(first, mid, mid, last, tmp.begin() + static_cast<std::ptrdiff_t>(offset));
  std::copy(tmp.begin() + static_cast<std::ptrdiff_t>(offset),
            tmp.begin() + static_cast<std::ptrdiff_t>(offset + n), first);
}

inline Histogram histogram(parkpool::ThreadPool& pool, const std::vector<std::uint16_t>& img,
                           std::size_t lo, std::size_t hi) {
  if (hi - lo <= 65536) return histogram_of(img, lo, hi);
  const std::size_t mid = lo + (hi - lo) / 2;
  auto [a, b] = parkpool::join(
      pool, [&] { return histogram(pool, img, lo, mid); }, [&] { return histogram(pool, img, mid, hi); });
  return merge(a, b);
}

inline Result run(parkpool::ThreadPool& pool, const Input& in) {
  Result r;
  std::vector<std::uint16_t> blurred(in.pixels.size());
  std::vector<std::uint32_t> keys = in.keys;
  std::vector<std::uint32_t> tmp(keys.size());
  std::vector<std::uint64_t> answers(in.requests, 0);
  std::atomic<std::size_t> answered{0};

  for (std::size_t id = 0; id < in.requests; ++id) {
    pool.post([&answers, &answered, id] {
      answers[id] = answer_request(id);
      answered.fetch_add(1, std::memory_order_release);  // pairs with the acquire load below
    });
  }
  parkpool::parallel_for(pool, std::size_t{0}, in.height, [&](std::size_t y) { blur_row(in, blurred, y); });
  r.histogram = histogram(pool, blurred, 0, blurred.size());
  sort(pool, keys.data(), keys.data() + keys.size(), tmp, 0);
  while (answered.load(std::memory_order_acquire) < in.requests) std::this_thread::yield();
  for (std::uint64_t a : answers) r.requests_checksum += a;
  finish(blurred, keys, r);
  return r;
}

}  // namespace migration::parkpool_version

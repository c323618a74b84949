// The application written against oneTBB (before the migration).
#pragma once

#include <atomic>
#include <thread>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_invoke.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include "app_common.hpp"

namespace migration::tbb_version {

inline void sort(std::uint32_t* first, std::uint32_t* last, std::vector<std::uint32_t>& tmp,
                 std::size_t offset) {
  const auto n = static_cast<std::size_t>(last - first);
  if (n <= kSortCutoff) {
    std::sort(first, last);
    return;
  }
  std::uint32_t* mid = first + n / 2;
  tbb::task_group g;  // fork: sort the halves in parallel
  g.run([&] { sort(first, mid, tmp, offset); });
  sort(mid, last, tmp, offset + n / 2);
  g.wait();
  std::merge(first, mid, mid, last, tmp.begin() + static_cast<std::ptrdiff_t>(offset));
  std::copy(tmp.begin() + static_cast<std::ptrdiff_t>(offset),
            tmp.begin() + static_cast<std::ptrdiff_t>(offset + n), first);
}

inline Histogram histogram(const std::vector<std::uint16_t>& img, std::size_t lo, std::size_t hi) {
  if (hi - lo <= 65536) return histogram_of(img, lo, hi);
  const std::size_t mid = lo + (hi - lo) / 2;
  Histogram a, b;
  tbb::parallel_invoke([&] { a = histogram(img, lo, mid); }, [&] { b = histogram(img, mid, hi); });
  return merge(a, b);
}

// `arena` plays the application's thread pool (task_arena(n)).
inline Result run(tbb::task_arena& arena, const Input& in) {
  Result r;
  std::vector<std::uint16_t> blurred(in.pixels.size());
  std::vector<std::uint32_t> keys = in.keys;
  std::vector<std::uint32_t> tmp(keys.size());
  std::vector<std::uint64_t> answers(in.requests, 0);
  std::atomic<std::size_t> answered{0};

  // Fire-and-forget requests first, so they overlap with the rest.
  for (std::size_t id = 0; id < in.requests; ++id) {
    arena.enqueue([&answers, &answered, id] {
      answers[id] = answer_request(id);
      answered.fetch_add(1, std::memory_order_release);  // pairs with the acquire load below
    });
  }
  arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, in.height), [&](const auto& rows) {
      for (std::size_t y = rows.begin(); y != rows.end(); ++y) blur_row(in, blurred, y);
    });
    r.histogram = histogram(blurred, 0, blurred.size());
    sort(keys.data(), keys.data() + keys.size(), tmp, 0);
  });
  while (answered.load(std::memory_order_acquire) < in.requests) std::this_thread::yield();
  for (std::uint64_t a : answers) r.requests_checksum += a;
  finish(blurred, keys, r);
  return r;
}

}  // namespace migration::tbb_version

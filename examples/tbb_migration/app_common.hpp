// The "application" of the tbb_migration example: its input, its result, and the serial helpers
// both versions share. The parallel code lives in app_tbb.hpp (written against oneTBB) and
// app_parkpool.hpp (the same program after following docs/migrating-from-tbb.md).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace migration {

// A grayscale image and a list of keys, generated deterministically.
struct Input {
  std::size_t width = 0, height = 0;
  std::vector<std::uint16_t> pixels;  // width * height, values 0..4095
  std::vector<std::uint32_t> keys;    // to sort
  std::size_t requests = 0;           // independent small jobs (fire-and-forget)
};

// Everything the application computes. Integer arithmetic only, and every parallel step writes
// disjoint outputs or merges associatively: the result is the same for any schedule.
struct Result {
  std::uint64_t blur_checksum = 0;           // sum of the 3x3-blurred image
  std::array<std::uint64_t, 16> histogram{};  // of the blurred image, 16 bins
  std::uint64_t sorted_checksum = 0;         // sum of key[i] * (i + 1) after sorting
  bool sorted = false;
  std::uint64_t requests_checksum = 0;       // sum of every request's answer
  bool operator==(const Result&) const = default;
};

inline Input make_input(std::size_t width = 1024, std::size_t height = 768,
                        std::size_t keys = 400'000, std::size_t requests = 2'000) {
  Input in;
  in.width = width;
  in.height = height;
  in.requests = requests;
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&x] {  // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
  };
  in.pixels.resize(width * height);
  for (auto& p : in.pixels) p = static_cast<std::uint16_t>(next() % 4096);
  in.keys.resize(keys);
  for (auto& k : in.keys) k = static_cast<std::uint32_t>(next());
  return in;
}

// One output row of the 3x3 box blur (edges clamp).
inline void blur_row(const Input& in, std::vector<std::uint16_t>& out, std::size_t y) {
  const std::size_t w = in.width, h = in.height;
  for (std::size_t xx = 0; xx < w; ++xx) {
    std::uint32_t sum = 0;
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        const auto yy = static_cast<std::size_t>(
            std::clamp<long long>(static_cast<long long>(y) + dy, 0, static_cast<long long>(h) - 1));
        const auto xc = static_cast<std::size_t>(
            std::clamp<long long>(static_cast<long long>(xx) + dx, 0, static_cast<long long>(w) - 1));
        sum += in.pixels[yy * w + xc];
      }
    }
    out[y * w + xx] = static_cast<std::uint16_t>(sum / 9);
  }
}

using Histogram = std::array<std::uint64_t, 16>;
inline Histogram histogram_of(const std::vector<std::uint16_t>& img, std::size_t lo, std::size_t hi) {
  Histogram h{};
  for (std::size_t i = lo; i < hi; ++i) ++h[img[i] >> 8];
  return h;
}
inline Histogram merge(const Histogram& a, const Histogram& b) {
  Histogram r{};
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = a[i] + b[i];
  return r;
}

// A small independent job: a few hundred iterations of integer hashing.
inline std::uint64_t answer_request(std::size_t id) {
  std::uint64_t v = id * 0x9E3779B97F4A7C15ull + 1;
  for (int i = 0; i < 300; ++i) v = (v ^ (v >> 31)) * 0xBF58476D1CE4E5B9ull;
  return v >> 40;
}

inline void finish(const std::vector<std::uint16_t>& blurred, const std::vector<std::uint32_t>& keys,
                   Result& r) {
  for (std::uint16_t p : blurred) r.blur_checksum += p;
  r.sorted = std::is_sorted(keys.begin(), keys.end());
  for (std::size_t i = 0; i < keys.size(); ++i) r.sorted_checksum += std::uint64_t{keys[i]} * (i + 1);
}

constexpr std::size_t kSortCutoff = 4096;  // below this, std::sort serially

}  // namespace migration

// Statistics shared by the bench/ suites.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace parkpool::bench {

// The q-quantile (0 <= q <= 1) of the samples: the element at index floor(q * (n - 1)) in sorted
// order, no interpolation; 0 for no samples. Takes a copy, so the caller's order is kept.
inline double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace parkpool::bench

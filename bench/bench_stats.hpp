// Statistics shared by the bench/ suites.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace parkpool::bench {

// The q-quantile (0 <= q <= 1) of the samples: the element at index floor(q * (n - 1)) in sorted
// order, no interpolation; 0 for no samples. Takes a copy, so the caller's order is kept. Says
// nothing about whether n samples can tell that quantile apart from its neighbours: a figure a
// suite reports goes through put_percentile, which asks percentile_supported first.
inline double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// Whether n samples support the q-quantile as a figure. The rule: n * min(q, 1 - q) >= 1, i.e.
// at least one sample is expected beyond the quantile on its far side; for the upper tail that is
// n >= 1 / (1 - q). So the median needs 2 samples, p10 and p90 need 10, p05 and p95 20, p01 and p99
// 100, p999 1000. Below that the index floor(q * (n - 1)) lands on the same element as a coarser
// quantile's (10 samples: p90, p95, p99 and p999 are all the 9th smallest; 100 samples: p99 and
// p999 are both the 99th), and a figure named p999 would only repeat p99. The 1e-9 absorbs the
// rounding of 1 - q (1 - 0.9 is 0.0999...98 in binary floating point).
inline bool percentile_supported(std::size_t n, double q) {
  return static_cast<double>(n) * std::min(q, 1 - q) >= 1 - 1e-9;
}

// Sets counters[name] to the q-quantile of `samples` when their count supports it
// (percentile_supported); otherwise leaves the counter out, so the figure is missing
// (parkpool-bench shows no row for it, or "-" for its baseline, and its pictures skip the point)
// rather than a copy of a neighbour. Counters: benchmark::State::counters, or any map from name to
// a number.
template <class Counters>
void put_percentile(Counters& counters, const std::string& name, const std::vector<double>& samples,
                    double q) {
  if (percentile_supported(samples.size(), q)) counters[name] = percentile(samples, q);
}

}  // namespace parkpool::bench

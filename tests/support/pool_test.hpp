// Helpers shared by the ThreadPool tests.
#pragma once

#include <cstddef>

#include "parkpool/pool_options.hpp"

namespace parkpool::test {

// Default options with `n` workers.
inline PoolOptions with_threads(std::size_t n) {
  PoolOptions o;
  o.threads = n;
  return o;
}

}  // namespace parkpool::test

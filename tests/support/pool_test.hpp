// Helpers shared by the ThreadPool tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <thread>

#include "parkpool/pool_options.hpp"

namespace parkpool::test {

// Default options with `n` workers.
inline PoolOptions with_threads(std::size_t n) {
  PoolOptions o;
  o.threads = n;
  return o;
}

// Polls `pred` (yielding) until it holds or `patience` passes; false on timeout. Waits for a
// state another thread sets; never orders a race.
template <class Pred>
bool wait_for(Pred pred, std::chrono::seconds patience = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + patience;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace parkpool::test

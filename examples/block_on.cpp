// Running C++20 coroutines with parkpool::block_on.
//
// A coroutine returning parkpool::Task<T> waits for work done on another thread through a
// parkpool::AsyncEvent; block_on runs it on the calling thread and parks that thread (no CPU
// burnt) until the event is set. Exceptions thrown by the coroutine come out of block_on.
#include <parkpool/async_event.hpp>
#include <parkpool/task.hpp>
#include <parkpool/thread_parker.hpp>

#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

// Sums a vector on a helper thread; the coroutine suspends until the helper is done.
parkpool::Task<long> sum_in_background(const std::vector<int>& data) {
  parkpool::AsyncEvent done;
  long result = 0;
  std::thread helper([&] {
    result = std::accumulate(data.begin(), data.end(), 0L);
    done.set();  // publishes `result`; the coroutine resumes on the block_on thread
  });
  co_await done;
  helper.join();
  co_return result;
}

parkpool::Task<long> average(const std::vector<int>& data) {
  if (data.empty()) throw std::invalid_argument("average of nothing");
  const long sum = co_await sum_in_background(data);
  co_return sum / static_cast<long>(data.size());
}

}  // namespace

int main() {
  std::vector<int> data(1000);
  std::iota(data.begin(), data.end(), 1);

  const long avg = parkpool::block_on(average(data));
  std::printf("average of 1..1000 = %ld\n", avg);
  if (avg != 500) return 1;

  try {
    parkpool::block_on(average({}));
    return 1;
  } catch (const std::invalid_argument& e) {
    std::printf("error from the coroutine: %s\n", e.what());
  }

  // A Waker: the type-erased handle an awaitable keeps to wake its executor later.
  parkpool::Waker waker = parkpool::this_thread::waker();
  std::thread other([w = waker]() mutable { w.wake(); });
  parkpool::this_thread::park();  // returns once `other` has woken us
  other.join();
  std::printf("woken by a Waker\n");
  return 0;
}

// A consumer of the installed package: uses the public API and checks the result.
#include <parkpool/parker.hpp>
#include <parkpool/thread_pool.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main() {
  parkpool::Parker parker;
  parkpool::Unparker unparker = parker.unparker();
  std::thread t([unparker] { unparker.unpark(); });
  parker.park();  // returns only once the token from the other thread is consumed
  t.join();
  if (parker.park_timeout(std::chrono::milliseconds(1)) != parkpool::UnparkReason::timed_out) {
    std::puts("consumer: expected timed_out");
    return 1;
  }
  // The pool target (it depends on the sync target only), found through the package config.
  parkpool::ThreadPool pool(parkpool::PoolOptions{.threads = 2});
  if (pool.submit([](int a, int b) { return a * b; }, 6, 7).get() != 42) {
    std::puts("consumer: ThreadPool::submit returned a wrong value");
    return 1;
  }
  std::puts("consumer: ok");
  return 0;
}

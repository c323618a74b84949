// Regression (issue 5): when a worker thread failed to start, the ThreadPool constructor's cleanup
// (shutdown()) waited forever instead of throwing the std::system_error that thread_pool.hpp
// documents. A worker leaves shutdown's drain only when every worker context counts itself idle,
// and a context whose thread never started never did, so the started workers waited for it and
// the constructor waited for them. Without the fix this test hangs (the ctest TIMEOUT fails it).
//
// pthread_create is interposed in this executable (a test binary of its own, so no other test
// sees it): the wrapper fails the call chosen by g_fail_at and forwards every other call to the
// next definition: libc's, or in the tsan and asan builds (g++, shared sanitizer runtimes) the
// sanitizer's interceptor. std::thread reaches it through libstdc++'s call to pthread_create.
#include <dlfcn.h>
#include <pthread.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>
#include <system_error>

#include "parkpool/thread_pool.hpp"

namespace {

std::atomic<int> g_calls{0};
std::atomic<int> g_fail_at{-1};  // which pthread_create call fails, counted from 0; -1: none

using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

}  // namespace

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                              void* arg) noexcept {
  static const auto next = reinterpret_cast<CreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
  if (next == nullptr) return ENOSYS;
  // Relaxed: the test thread sets g_fail_at and creates the threads itself.
  if (g_calls.fetch_add(1, std::memory_order_relaxed) ==
      g_fail_at.load(std::memory_order_relaxed)) {
    return EAGAIN;
  }
  return next(thread, attr, start, arg);
}

namespace {

struct Hooks {
  std::mutex m;
  std::multiset<std::size_t> started, stopped;
};

parkpool::PoolOptions options(std::size_t threads, Hooks& h) {
  parkpool::PoolOptions o;
  o.threads = threads;
  o.on_thread_start = [&h](std::size_t i) {
    std::lock_guard<std::mutex> lk(h.m);
    h.started.insert(i);
  };
  o.on_thread_stop = [&h](std::size_t i) {
    std::lock_guard<std::mutex> lk(h.m);
    h.stopped.insert(i);
  };
  return o;
}

// Constructs a pool of `threads` workers whose thread number `fail` (from 0) cannot be created;
// expects the constructor to throw EAGAIN's std::system_error after the started workers ran their
// hooks and were joined.
void expect_start_failure(std::size_t threads, int fail) {
  Hooks h;
  const parkpool::PoolOptions o = options(threads, h);
  g_calls.store(0, std::memory_order_relaxed);
  g_fail_at.store(fail, std::memory_order_relaxed);
  try {
    parkpool::ThreadPool pool(o);
    ADD_FAILURE() << "the constructor did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again) << e.what();
  }
  g_fail_at.store(-1, std::memory_order_relaxed);
  std::multiset<std::size_t> expected;
  for (std::size_t i = 0; i < static_cast<std::size_t>(fail); ++i) expected.insert(i);
  // The constructor joined the started threads before it threw: every hook has returned.
  EXPECT_EQ(h.started, expected);
  EXPECT_EQ(h.stopped, expected);
}

TEST(Issue5ThreadStartFailure, AMiddleThreadFails) { expect_start_failure(4, 2); }

TEST(Issue5ThreadStartFailure, TheLastThreadFails) { expect_start_failure(4, 3); }

TEST(Issue5ThreadStartFailure, TheFirstThreadFails) { expect_start_failure(3, 0); }

TEST(Issue5ThreadStartFailure, APoolStartsNormallyAfterwards) {
  expect_start_failure(2, 1);
  Hooks h;
  parkpool::ThreadPool pool(options(2, h));
  EXPECT_EQ(pool.submit([] { return 5; }).get(), 5);
  pool.shutdown();
  EXPECT_EQ(h.stopped, (std::multiset<std::size_t>{0, 1}));
}

}  // namespace

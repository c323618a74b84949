// Tests of <parkpool/asio.hpp> when the pool cannot take a handler: ThreadPool::post throws
// std::bad_alloc (before or after it took the handler), and keeping a handler the shut-down
// pool refused cannot allocate. Its own executable: it replaces the global operator new
// (support/failing_new.hpp), to make large allocations of one thread fail on demand (the
// injector's 4 KiB chunk, a big task).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <future>
#include <memory>
#include <new>

#include <boost/asio/post.hpp>

#include "failing_new.hpp"
#include "parkpool/asio.hpp"

namespace {
// Allocations of at least kBig bytes by a thread whose t_big_left is >= 0: that many succeed,
// then each one throws std::bad_alloc. -1 (the default): no failure.
constexpr std::size_t kBig = 2048;
thread_local int t_big_left = -1;

// Sets this thread's failure budget for its lifetime.
class FailBigAllocations {
 public:
  explicit FailBigAllocations(int succeed_first = 0) { t_big_left = succeed_first; }
  FailBigAllocations(const FailBigAllocations&) = delete;
  FailBigAllocations& operator=(const FailBigAllocations&) = delete;
  ~FailBigAllocations() { t_big_left = -1; }
};
}  // namespace

bool parkpool::test::refuse_allocation(std::size_t n) noexcept {
  if (n < kBig || t_big_left < 0) return false;
  if (t_big_left == 0) return true;
  --t_big_left;
  return false;
}

namespace {
namespace asio = boost::asio;
using parkpool::AsioContext;
using parkpool::PoolOptions;
using parkpool::ThreadPool;

PoolOptions one_thread() {
  PoolOptions o;
  o.threads = 1;
  return o;
}

// The pool took the handler (its task was allocated), then could not queue it: the injector
// needed a new chunk. The handler is destroyed, not run and not kept as "rejected" (the pool
// is running), and execute() rethrows.
TEST(AsioBadAlloc, AfterThePoolTookTheHandlerItIsDestroyedNotKept) {
  ThreadPool pool(one_thread());
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  asio::post(ex, [&started, gate] {  // holds the only worker: the injector fills up
    started.set_value();
    gate.wait();
  });
  started.get_future().wait();
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  int accepted = 0;
  bool threw = false;
  {
    FailBigAllocations fail;  // the handlers' tasks are small; a new injector chunk is not
    for (int i = 0; i < 100000 && !threw; ++i) {
      try {
        asio::post(ex, [token, &ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        ++accepted;
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
  }
  ASSERT_TRUE(threw) << "the injector never needed a new chunk";
  EXPECT_EQ(ctx.rejected_handlers(), 0u) << "a handler was kept as rejected by a running pool";
  EXPECT_EQ(token.use_count(), 1 + accepted) << "the failed handler was not destroyed";
  EXPECT_EQ(ctx.handlers_in_flight(), static_cast<std::uint64_t>(accepted) + 1);
  release.set_value();
  ctx.join();
  EXPECT_EQ(ran.load(std::memory_order_relaxed), accepted);  // relaxed: join() orders it
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(ctx.rejected_handlers(), 0u);
}

// The pool could not allocate the handler's task: the handler was never taken; destroyed here.
TEST(AsioBadAlloc, BeforeThePoolTookTheHandlerItIsDestroyed) {
  ThreadPool pool(one_thread());
  AsioContext ctx(pool);
  auto token = std::make_shared<int>(0);
  std::array<char, 3000> big{};
  {
    FailBigAllocations fail;
    EXPECT_THROW(asio::post(ctx.get_executor(), [token, big] { (void)big; }), std::bad_alloc);
  }
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(ctx.rejected_handlers(), 0u);
  EXPECT_EQ(ctx.handlers_in_flight(), 0u);
  ctx.join();
}

// The header: keeping a handler the shut-down pool refused takes one allocation; if it fails,
// std::terminate (the handler can be neither run nor destroyed safely inside execute()).
void post_big_handler_to_a_closed_pool_without_memory_to_keep_it() {
  ThreadPool pool(one_thread());
  AsioContext ctx(pool);
  pool.shutdown();
  std::array<char, 3000> big{};
  FailBigAllocations fail(1);  // the task is allocated, then the pool refuses it
  asio::post(ctx.get_executor(), [big] { (void)big; });
}

TEST(AsioBadAllocDeathTest, KeepingARejectedHandlerWithoutMemoryTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(post_big_handler_to_a_closed_pool_without_memory_to_keep_it(), "bad_alloc");
}

}  // namespace

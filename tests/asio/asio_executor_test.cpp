// Tests of <parkpool/asio.hpp>: the Asio executor over parkpool::ThreadPool.
#include "parkpool/asio.hpp"

#include <gtest/gtest.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"

namespace asio = boost::asio;
namespace exec = boost::asio::execution;
using parkpool::AsioContext;
using parkpool::AsioExecutor;
using parkpool::PoolOptions;
using parkpool::ThreadPool;

namespace {

PoolOptions threads(std::size_t n) {
  PoolOptions o;
  o.threads = n;
  return o;
}

static_assert(exec::is_executor<AsioExecutor>::value);
static_assert(std::is_nothrow_copy_constructible_v<AsioExecutor>);
static_assert(std::is_convertible_v<AsioExecutor, asio::any_io_executor>);
static_assert(AsioExecutor::query(exec::blocking) == exec::blocking.possibly);
static_assert(AsioExecutor::query(exec::mapping) == exec::mapping.thread);

TEST(AsioExecutor, PropertiesRequireAndPrefer) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  const AsioExecutor ex = ctx.get_executor();
  EXPECT_EQ(asio::query(ex, exec::blocking), exec::blocking.possibly);
  EXPECT_EQ(asio::query(ex, exec::relationship), exec::relationship.fork);
  EXPECT_EQ(asio::query(ex, exec::outstanding_work), exec::outstanding_work.untracked);
  EXPECT_EQ(&asio::query(ex, exec::context), &ctx);
  EXPECT_EQ(asio::query(ex, exec::occupancy), 2u);

  auto never = asio::require(ex, exec::blocking.never);
  EXPECT_EQ(asio::query(never, exec::blocking), exec::blocking.never);
  EXPECT_EQ(asio::query(asio::require(never, exec::blocking.possibly), exec::blocking),
            exec::blocking.possibly);
  auto cont = asio::prefer(ex, exec::relationship.continuation);
  EXPECT_EQ(asio::query(cont, exec::relationship), exec::relationship.continuation);
  // Preferring a property the executor does not change (mapping.thread is fixed) is the identity.
  auto same = asio::prefer(ex, exec::mapping.thread);
  EXPECT_TRUE(same == ex);

  // Equality: same context and allocator.
  ThreadPool other_pool(threads(1));
  AsioContext other(other_pool);
  EXPECT_TRUE(ex == ctx.get_executor());
  EXPECT_FALSE(ex == other.get_executor());
  EXPECT_TRUE(asio::require(ex, exec::allocator(std::allocator<int>())) ==
              asio::require(ctx.get_executor(), exec::allocator(std::allocator<int>())));
  EXPECT_EQ(asio::query(asio::require(ex, exec::allocator(std::allocator<int>())),
                        exec::allocator),
            std::allocator<int>());
}

TEST(AsioExecutor, TrackedExecutorsCountAsOutstandingWork) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  {
    auto tracked = asio::require(ctx.get_executor(), exec::outstanding_work.tracked);
    EXPECT_EQ(asio::query(tracked, exec::outstanding_work), exec::outstanding_work.tracked);
    EXPECT_EQ(ctx.outstanding_work(), 1u);
    auto copy = tracked;
    EXPECT_EQ(ctx.outstanding_work(), 2u);
    auto moved = std::move(copy);  // the unit moves with it
    EXPECT_EQ(ctx.outstanding_work(), 2u);
    auto untracked = asio::require(moved, exec::outstanding_work.untracked);
    EXPECT_EQ(ctx.outstanding_work(), 2u);
  }
  EXPECT_EQ(ctx.outstanding_work(), 0u);
  ctx.join();  // nothing outstanding: returns at once
}

TEST(AsioExecutor, WorkGuardHoldsJoinUntilReset) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto guard = asio::make_work_guard(ctx.get_executor());
  EXPECT_EQ(ctx.outstanding_work(), 1u);
  std::atomic<bool> released{false};
  std::thread joiner([&] {
    ctx.join();
    // acquire: pairs with the release store below; join must not return before the reset.
    EXPECT_TRUE(released.load(std::memory_order_acquire));
  });
  released.store(true, std::memory_order_release);
  guard.reset();
  joiner.join();
  EXPECT_EQ(ctx.outstanding_work(), 0u);
}

TEST(AsioExecutor, PostRunsOnAWorkerNeverInside) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::promise<bool> outer;
  asio::post(ex, [&] {
    // One worker: a handler posted from it can only run after this one returns.
    bool ran = false;
    asio::post(ex, [&ctx, &ran, &outer] {
      ran = true;
      outer.set_value(ctx.running_in_this_thread());
    });
    EXPECT_FALSE(ran);
  });
  EXPECT_TRUE(outer.get_future().get());
  ctx.join();
}

TEST(AsioExecutor, DispatchRunsInlineOnAWorker) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::promise<void> done;
  asio::post(ex, [&] {
    const auto me = std::this_thread::get_id();
    bool ran = false;
    std::thread::id where;
    asio::dispatch(ex, [&] {
      ran = true;
      where = std::this_thread::get_id();
    });
    EXPECT_TRUE(ran);  // inside dispatch, on this thread
    EXPECT_EQ(where, me);
    done.set_value();
  });
  done.get_future().get();
  ctx.join();
}

TEST(AsioExecutor, DispatchFromOutsideIsQueuedToAWorker) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  std::promise<std::thread::id> where;
  std::promise<bool> on_worker;
  asio::dispatch(ctx.get_executor(), [&] {
    where.set_value(std::this_thread::get_id());
    on_worker.set_value(ctx.running_in_this_thread());
  });
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
  EXPECT_TRUE(on_worker.get_future().get());
  EXPECT_FALSE(ctx.running_in_this_thread());
  ctx.join();
}

TEST(AsioExecutor, DeferQueuesEvenOnAWorker) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::promise<std::vector<int>> order;
  asio::post(ex, [&] {
    auto seen = std::make_shared<std::vector<int>>();
    asio::defer(ex, [&order, seen] {
      seen->push_back(2);
      order.set_value(*seen);
    });
    seen->push_back(1);  // one worker: the deferred handler runs after this handler
  });
  EXPECT_EQ(order.get_future().get(), (std::vector<int>{1, 2}));
  ctx.join();
}

TEST(AsioExecutor, BindExecutorRunsIoCompletionsOnThePool) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  asio::io_context io;
  asio::steady_timer timer(io, std::chrono::steady_clock::now());  // already expired
  std::atomic<int> on_worker{0};
  std::atomic<int> calls{0};
  auto check = [&] {
    // relaxed: ctx.join() below orders these before the reads.
    calls.fetch_add(1, std::memory_order_relaxed);
    if (ctx.running_in_this_thread()) on_worker.fetch_add(1, std::memory_order_relaxed);
  };
  timer.async_wait(asio::bind_executor(ctx.get_executor(), [&](boost::system::error_code ec) {
    EXPECT_FALSE(ec);
    check();
  }));
  asio::post(io, asio::bind_executor(ctx.get_executor(), check));
  io.run();  // runs the I/O side here; the bound handlers hop to the pool (tracked work)
  ctx.join();
  EXPECT_EQ(calls.load(std::memory_order_relaxed), 2);
  EXPECT_EQ(on_worker.load(std::memory_order_relaxed), 2);
}

TEST(AsioExecutor, UseFutureCarriesResultsAndExceptions) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::future<int> value = asio::post(ex, asio::use_future([] { return 42; }));
  std::future<int> error =
      asio::post(ex, asio::use_future([]() -> int { throw std::runtime_error("boom"); }));
  EXPECT_EQ(value.get(), 42);
  EXPECT_THROW(error.get(), std::runtime_error);
  ctx.join();
}

TEST(AsioExecutor, ExceptionsFromPostedHandlersGoToOnPostException) {
  std::promise<std::string> seen;
  PoolOptions o = threads(1);
  o.on_post_exception = [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      seen.set_value(x.what());
    }
  };
  ThreadPool pool(o);
  AsioContext ctx(pool);
  asio::post(ctx.get_executor(), [] { throw std::runtime_error("handler failed"); });
  EXPECT_EQ(seen.get_future().get(), "handler failed");
  ctx.join();
  EXPECT_EQ(ctx.handlers_in_flight(), 0u);
}

// ---- C++20 coroutines ----

asio::awaitable<int> add_on_pool(AsioContext& ctx, int a, int b) {
  auto ex = co_await asio::this_coro::executor;
  co_await asio::post(ex, asio::use_awaitable);  // a hop through the pool's queue
  if (!ctx.running_in_this_thread()) throw std::logic_error("resumed off the pool");
  co_return a + b;
}

asio::awaitable<int> coroutine_body(AsioContext& ctx, asio::io_context& io, int id) {
  if (!ctx.running_in_this_thread()) throw std::logic_error("started off the pool");
  int sum = 0;
  for (int i = 0; i < 5; ++i) sum += co_await add_on_pool(ctx, id, i);
  // An I/O-side wait: the timer completes on the io_context's thread, the coroutine resumes on
  // its own executor (the pool).
  asio::steady_timer timer(io, std::chrono::steady_clock::now());
  co_await timer.async_wait(asio::use_awaitable);
  if (!ctx.running_in_this_thread()) throw std::logic_error("resumed off the pool after I/O");
  co_return sum;
}

TEST(AsioExecutor, CoSpawnedCoroutinesRunAndResumeOnPoolWorkers) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  asio::io_context io;
  auto io_work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  const int n = static_cast<int>(parkpool::test::scaled(200, 4));
  std::vector<std::future<int>> results;
  for (int id = 0; id < n; ++id) {
    results.push_back(asio::co_spawn(ctx.get_executor(), coroutine_body(ctx, io, id),
                                     asio::use_future));
  }
  for (int id = 0; id < n; ++id) {
    EXPECT_EQ(results[static_cast<std::size_t>(id)].get(), 5 * id + (0 + 1 + 2 + 3 + 4));
  }
  // Detached ones: join() waits for them (co_spawn holds tracked work while they run).
  std::atomic<int> detached_done{0};
  for (int id = 0; id < n; ++id) {
    asio::co_spawn(
        ctx.get_executor(),
        [&ctx, &io, &detached_done, id]() -> asio::awaitable<void> {
          co_await coroutine_body(ctx, io, id);
          detached_done.fetch_add(1, std::memory_order_relaxed);  // join() orders the read
        },
        asio::detached);
  }
  ctx.join();
  EXPECT_EQ(detached_done.load(std::memory_order_relaxed), n);
  io_work.reset();
  io_thread.join();
}

TEST(AsioExecutor, CoroutineExceptionReachesTheCompletionToken) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto f = asio::co_spawn(
      ctx.get_executor(),
      []() -> asio::awaitable<int> {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        throw std::runtime_error("coroutine failed");
      },
      asio::use_future);
  EXPECT_THROW(f.get(), std::runtime_error);
  ctx.join();
}

// ---- strands ----

TEST(AsioExecutor, StrandOverThePoolSerializesInOrder) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto strand = asio::make_strand(ctx.get_executor());
  const int n = static_cast<int>(parkpool::test::scaled(20000, 10));
  std::vector<int> order;  // guarded by the strand
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0}, off_pool{0};
  for (int i = 0; i < n; ++i) {
    asio::post(strand, [&, i] {
      // relaxed: counts only; the strand orders `order`, join() orders the final reads.
      if (inside.fetch_add(1, std::memory_order_relaxed) != 0) {
        overlaps.fetch_add(1, std::memory_order_relaxed);
      }
      if (!ctx.running_in_this_thread()) off_pool.fetch_add(1, std::memory_order_relaxed);
      order.push_back(i);
      inside.fetch_sub(1, std::memory_order_relaxed);
    });
  }
  ctx.join();
  EXPECT_EQ(overlaps.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(off_pool.load(std::memory_order_relaxed), 0);
  ASSERT_EQ(order.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(order[static_cast<std::size_t>(i)], i);
}

// ---- lifetime and shutdown ----

TEST(AsioExecutor, AfterShutdownHandlersAreKeptNeverRunAndDestroyedWithTheContext) {
  ThreadPool pool(threads(2));
  auto ctx = std::make_unique<AsioContext>(pool);
  auto ex = ctx->get_executor();
  pool.shutdown();
  auto token = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  auto h = [token, &ran] { ran.store(true, std::memory_order_relaxed); };
  const long base = token.use_count();  // token and h
  EXPECT_NO_THROW(asio::post(ex, h));
  EXPECT_NO_THROW(asio::dispatch(ex, h));
  EXPECT_NO_THROW(asio::defer(ex, h));
  // co_spawn's entry point hops to the executor first: that hop is refused, so the coroutine
  // never starts; its frame is kept with the rejected handler.
  EXPECT_NO_THROW(asio::co_spawn(
      ex,
      [token, &ran]() -> asio::awaitable<void> {
        ran.store(true, std::memory_order_relaxed);
        co_return;
      },
      asio::detached));
  // An I/O completion bound to the closed pool: run() returns normally, the handler is kept.
  asio::io_context io;
  asio::post(io, asio::bind_executor(ex, h));
  EXPECT_NO_THROW(io.run());

  EXPECT_EQ(ctx->rejected_handlers(), 5u);
  EXPECT_EQ(ctx->handlers_in_flight(), 0u);
  EXPECT_GT(token.use_count(), base);  // kept, not destroyed yet
  ctx->discard_rejected();
  EXPECT_EQ(token.use_count(), base);  // every copy destroyed, none run
  EXPECT_FALSE(ran.load(std::memory_order_relaxed));
  ctx->join();

  // ~AsioContext destroys what is still kept.
  asio::post(ex, h);
  EXPECT_GT(token.use_count(), base);
  ctx.reset();
  EXPECT_EQ(token.use_count(), base);
  EXPECT_FALSE(ran.load(std::memory_order_relaxed));
}

TEST(AsioExecutor, ContextDestructorWaitsForQueuedHandlers) {
  ThreadPool pool(threads(2));
  auto ctx = std::make_unique<AsioContext>(pool);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> finished{false};
  {
    // A strand lives in a service of the context; the strand object itself must not outlive
    // the context (the header's Lifetime rule), its queued handler may.
    auto strand = asio::make_strand(ctx->get_executor());
    asio::post(strand, [gate, &finished] {
      gate.wait();
      finished.store(true, std::memory_order_release);  // pairs with the acquire load below
    });
  }
  std::thread destroyer([&] {
    ctx.reset();  // waits for the handler, then destroys the strand service
    EXPECT_TRUE(finished.load(std::memory_order_acquire));
  });
  release.set_value();
  destroyer.join();
}

TEST(AsioExecutor, JoinFromAWorkerThrowsLogicError) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto f = asio::post(ctx.get_executor(), asio::use_future([&] { ctx.join(); }));
  EXPECT_THROW(f.get(), std::logic_error);
  ctx.join();
}

}  // namespace

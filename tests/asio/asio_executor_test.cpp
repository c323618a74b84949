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
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"
#include "thread_state.hpp"

namespace parkpool::asio_detail {
// The counter's test hook (declared in asio.hpp): its mutex, to hold a count_down back.
struct ZeroWaitCounterTestAccess {
  static std::mutex& mutex(ZeroWaitCounter& c) { return c.m_; }
};
}  // namespace parkpool::asio_detail

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

// Yields until thread `tid` sleeps in the kernel (it is blocked) or `done` is set, for at most
// 10 s. True if it was seen sleeping first. The tests that use it stay correct when the state is
// seen early or never; waiting only makes the interleaving they check the one that happens.
bool wait_blocked_unless(pid_t tid, const std::atomic<bool>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (done.load(std::memory_order_acquire)) return false;  // acquire: pairs with its store
    if (parkpool::test::thread_state(tid) == 'S') return true;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::yield();
  }
}

// The kernel thread id of a thread that publishes it with store(release).
pid_t published_tid(const std::atomic<pid_t>& tid) {
  pid_t t = 0;
  while ((t = tid.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
  return t;
}

static_assert(exec::is_executor<AsioExecutor>::value);
static_assert(std::is_nothrow_copy_constructible_v<AsioExecutor>);
static_assert(std::is_convertible_v<AsioExecutor, asio::any_io_executor>);
static_assert(AsioExecutor::query(exec::blocking) == exec::blocking.possibly);
static_assert(AsioExecutor::query(exec::mapping) == exec::mapping.thread);
// The header's "Size and cost": one pointer (the std::allocator<void> member takes no room).
static_assert(sizeof(AsioExecutor) == sizeof(void*));
// The header's outstanding_work text: not a Networking-TS executor, so Asio's make_work_guard
// holds prefer(ex, outstanding_work.tracked), which is the tracked executor type.
static_assert(!asio::is_executor<AsioExecutor>::value);
// blocking.always is not offered (header: blocking): require() of it does not compile, and
// neither does prefer() (Asio makes blocking.always not preferable).
static_assert(!asio::can_require<AsioExecutor, exec::blocking_t::always_t>::value);
static_assert(!asio::can_prefer<AsioExecutor, exec::blocking_t::always_t>::value);
using PreferredTracked =
    decltype(asio::prefer(std::declval<AsioExecutor>(), exec::outstanding_work.tracked));
static_assert(PreferredTracked::query(exec::outstanding_work) == exec::outstanding_work.tracked);

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
  EXPECT_EQ(asio::query(asio::require(ex, exec::allocator(std::allocator<int>())), exec::allocator),
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
    // A moved-from tracked executor copies into another empty one (it used to dereference null).
    auto copy_of_moved_from = copy;  // NOLINT(bugprone-use-after-move): the case under test
    EXPECT_EQ(ctx.outstanding_work(), 2u);
    copy_of_moved_from = moved;  // assigning to it takes a unit
    EXPECT_EQ(ctx.outstanding_work(), 3u);
  }
  EXPECT_EQ(ctx.outstanding_work(), 0u);
  ctx.join();  // nothing outstanding: returns at once
}

TEST(AsioExecutor, WorkGuardHoldsJoinUntilReset) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto guard = asio::make_work_guard(ctx.get_executor());
  EXPECT_EQ(ctx.outstanding_work(), 1u);
  std::atomic<pid_t> joiner_tid{0};
  std::atomic<bool> released{false};
  std::atomic<bool> returned{false};
  std::atomic<bool> returned_before_release{false};
  std::thread joiner([&] {
    joiner_tid.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.join();
    // acquire: pairs with the release store below; join must not return before the reset.
    returned_before_release.store(!released.load(std::memory_order_acquire),
                                  std::memory_order_relaxed);  // read after joiner.join()
    returned.store(true, std::memory_order_release);
  });
  // Reset only once the joiner is blocked in join() (or has wrongly returned already).
  wait_blocked_unless(published_tid(joiner_tid), returned);
  released.store(true, std::memory_order_release);
  guard.reset();
  joiner.join();
  EXPECT_FALSE(returned_before_release.load(std::memory_order_relaxed))
      << "join() returned while a work guard was held";
  EXPECT_EQ(ctx.outstanding_work(), 0u);
}

TEST(AsioExecutor, PostRunsOnAWorkerNeverInside) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::promise<bool> outer;
  asio::post(ex, [&] {
    // One worker: a handler posted from it can only run after this one returns. The flag is
    // shared, not a local of this handler: the inner one runs after this frame is gone.
    auto ran = std::make_shared<bool>(false);
    asio::post(ex, [&ctx, ran, &outer] {
      *ran = true;
      outer.set_value(ctx.running_in_this_thread());
    });
    EXPECT_FALSE(*ran);
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
    results.push_back(
        asio::co_spawn(ctx.get_executor(), coroutine_body(ctx, io, id), asio::use_future));
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
  std::promise<void> started;
  std::atomic<bool> finished{false};
  {
    // A strand lives in a service of the context; the strand object itself must not outlive
    // the context (the header's Lifetime rule), its queued handler may.
    auto strand = asio::make_strand(ctx->get_executor());
    asio::post(strand, [gate, &started, &finished] {
      started.set_value();
      gate.wait();
      finished.store(true, std::memory_order_release);  // pairs with the acquire load below
    });
  }
  started.get_future().wait();  // the handler runs (and blocks): destroy the context meanwhile
  std::atomic<pid_t> destroyer_tid{0};
  std::atomic<bool> destroyed{false};
  std::atomic<bool> destroyed_before_release{false};
  std::thread destroyer([&] {
    destroyer_tid.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.reset();  // waits for the handler, then destroys the strand service
    destroyed_before_release.store(!finished.load(std::memory_order_acquire),
                                   std::memory_order_relaxed);  // read after destroyer.join()
    destroyed.store(true, std::memory_order_release);
  });
  // Open the gate only once the destroyer is blocked in ~AsioContext (or has wrongly returned).
  wait_blocked_unless(published_tid(destroyer_tid), destroyed);
  release.set_value();
  destroyer.join();
  EXPECT_FALSE(destroyed_before_release.load(std::memory_order_relaxed))
      << "~AsioContext returned while a queued handler was still running";
}

// ~AsioContext with a co_spawn'ed coroutine suspended on a timer of the context. Shutting the
// timer's service down destroys the pending wait, and Asio posts the destruction of the coroutine
// frame (its timer included) to the coroutine's executor: that must be done before the services
// are destroyed (the timer's destructor calls its service), whether it runs on the pool (still
// running) or is rejected and kept (pool shut down). Under AddressSanitizer a late destruction
// is also a heap-use-after-free.

// An Asio service that records its shutdown and its destruction.
template <int N>
class ServiceProbe final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  ServiceProbe(asio::execution_context& c, std::atomic<bool>* shut, std::atomic<bool>* destroyed)
      : service(c), shut_(shut), destroyed_(destroyed) {}
  ~ServiceProbe() override { destroyed_->store(true, std::memory_order_release); }

 private:
  void shutdown() override { shut_->store(true, std::memory_order_release); }
  std::atomic<bool>* shut_;
  std::atomic<bool>* destroyed_;
};

struct TeardownLog {
  std::atomic<bool> suspended{false};        // the coroutine is about to wait on its timer
  std::atomic<bool> all_shut{false};         // ServiceProbe<0>, made first: shut down last
  std::atomic<bool> destroying{false};       // ServiceProbe<1>, made last: destroyed first
  std::atomic<bool> unused[2] = {};          // the probes' other event
  std::atomic<pid_t> destroyer{0};           // the thread running ~AsioContext
  std::atomic<bool> frame_destroyed{false};  // the coroutine's frame
  std::atomic<bool> services_gone_at_frame_destruction{false};
};

// In the coroutine's frame, destroyed before its timer.
class FrameSentinel {
 public:
  explicit FrameSentinel(TeardownLog& log) : log_(log) {}
  FrameSentinel(const FrameSentinel&) = delete;
  FrameSentinel& operator=(const FrameSentinel&) = delete;
  ~FrameSentinel() {
    const pid_t destroyer = log_.destroyer.load(std::memory_order_acquire);
    if (destroyer != 0 && destroyer != parkpool::test::current_tid()) {
      // On a worker: go on only once ~AsioContext has either finished shutting the services
      // down and blocked (waiting for this handler: correct), or begun destroying them (wrong).
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!log_.destroying.load(std::memory_order_acquire) &&
             !(log_.all_shut.load(std::memory_order_acquire) &&
               parkpool::test::thread_state(destroyer) == 'S') &&
             std::chrono::steady_clock::now() < give_up) {
        std::this_thread::yield();
      }
    }
    log_.services_gone_at_frame_destruction.store(log_.destroying.load(std::memory_order_acquire),
                                                  std::memory_order_relaxed);
    log_.frame_destroyed.store(true, std::memory_order_release);
  }

 private:
  TeardownLog& log_;
};

asio::awaitable<void> wait_on_a_long_timer(TeardownLog& log) {
  asio::steady_timer timer(co_await asio::this_coro::executor);  // a timer of the AsioContext
  FrameSentinel sentinel(log);
  timer.expires_after(std::chrono::hours(1));
  log.suspended.store(true, std::memory_order_release);
  co_await timer.async_wait(asio::use_awaitable);
}

// Spawns the coroutine and returns once it waits on its timer; the probes bracket the services.
void spawn_timer_waiter(AsioContext& ctx, TeardownLog& log) {
  asio::make_service<ServiceProbe<0>>(ctx, &log.all_shut, &log.unused[0]);
  asio::co_spawn(ctx.get_executor(), wait_on_a_long_timer(log), asio::detached);
  // suspended (acquire) is set inside the handler that runs the coroutine, and that handler
  // is counted until it returns, after the coroutine suspended in async_wait.
  while (!log.suspended.load(std::memory_order_acquire) || ctx.handlers_in_flight() != 0) {
    std::this_thread::yield();
  }
  asio::make_service<ServiceProbe<1>>(ctx, &log.unused[1], &log.destroying);
}

TEST(AsioExecutor, ContextDestructorDestroysASuspendedCoroutineBeforeTheServicesPoolRunning) {
  ThreadPool pool(threads(2));
  auto ctx = std::make_unique<AsioContext>(pool);
  TeardownLog log;
  spawn_timer_waiter(*ctx, log);
  bool frame_gone_at_return = false;
  std::thread destroyer([&] {
    log.destroyer.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.reset();  // the frame's destruction is posted to the pool, during shutdown()
    frame_gone_at_return = log.frame_destroyed.load(std::memory_order_acquire);
  });
  destroyer.join();
  EXPECT_TRUE(frame_gone_at_return) << "~AsioContext returned before the frame was destroyed";
  EXPECT_FALSE(log.services_gone_at_frame_destruction.load(std::memory_order_relaxed))
      << "the coroutine frame was destroyed after the Asio services";
}

TEST(AsioExecutor, ContextDestructorDestroysASuspendedCoroutineBeforeTheServicesPoolShutDown) {
  ThreadPool pool(threads(2));
  auto ctx = std::make_unique<AsioContext>(pool);
  TeardownLog log;
  spawn_timer_waiter(*ctx, log);
  pool.shutdown();
  log.destroyer.store(parkpool::test::current_tid(), std::memory_order_release);
  ctx.reset();  // the frame's destruction is posted during shutdown(): rejected, then kept
  EXPECT_TRUE(log.frame_destroyed.load(std::memory_order_acquire));
  EXPECT_FALSE(log.services_gone_at_frame_destruction.load(std::memory_order_relaxed))
      << "the coroutine frame was destroyed after the Asio services";
}

// ---- join() and the pool's shutdown ----

// After the pool's shutdown, a co_spawn from outside is rejected and its frame kept; the frame
// holds tracked work (co_spawn's work guards), which can only go away with the frame.
TEST(AsioExecutor, JoinAfterShutdownDestroysRejectedHandlersAndTheirWork) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  pool.shutdown();
  auto token = std::make_shared<int>(0);
  asio::co_spawn(
      ctx.get_executor(), [token]() -> asio::awaitable<void> { co_return; }, asio::detached);
  EXPECT_EQ(ctx.rejected_handlers(), 1u);
  EXPECT_GT(ctx.outstanding_work(), 0u);
  EXPECT_GT(token.use_count(), 1);
  std::atomic<pid_t> joiner_tid{0};
  std::atomic<bool> returned{false};
  std::thread joiner([&] {
    joiner_tid.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.join();
    returned.store(true, std::memory_order_release);
  });
  // Nothing else can make join() return: it returns by itself, or is blocked for good.
  wait_blocked_unless(published_tid(joiner_tid), returned);
  EXPECT_TRUE(returned.load(std::memory_order_acquire))
      << "join() blocked on the tracked work of a rejected handler";
  if (!returned.load(std::memory_order_acquire)) ctx.discard_rejected();  // let it return
  joiner.join();
  EXPECT_EQ(ctx.outstanding_work(), 0u);
  EXPECT_EQ(token.use_count(), 1);  // the frame is gone, never run
}

// The same, with the rejection made while join() already waits (for a work guard).
TEST(AsioExecutor, JoinDestroysHandlersRejectedWhileItWaits) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  auto guard = asio::make_work_guard(ctx.get_executor());
  pool.shutdown();
  std::atomic<pid_t> joiner_tid{0};
  std::atomic<bool> returned{false};
  std::thread joiner([&] {
    joiner_tid.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.join();
    returned.store(true, std::memory_order_release);
  });
  const pid_t tid = published_tid(joiner_tid);
  wait_blocked_unless(tid, returned);  // waiting for the guard
  EXPECT_FALSE(returned.load(std::memory_order_acquire));
  auto token = std::make_shared<int>(0);
  asio::co_spawn(
      ctx.get_executor(), [token]() -> asio::awaitable<void> { co_return; }, asio::detached);
  // At least that one (the joiner may already have destroyed it: the frame's destruction is
  // posted, and rejected, too).
  EXPECT_GE(ctx.rejected_handlers(), 1u);
  guard.reset();  // what is left is the kept frame's work
  wait_blocked_unless(tid, returned);
  EXPECT_TRUE(returned.load(std::memory_order_acquire))
      << "join() blocked on the tracked work of a handler rejected while it waited";
  if (!returned.load(std::memory_order_acquire)) ctx.discard_rejected();  // let it return
  joiner.join();
  EXPECT_EQ(ctx.outstanding_work(), 0u);
  EXPECT_EQ(token.use_count(), 1);
}

// Two joins: a join() that comes after a zero of the count (whose count_down has not yet woken
// the first join) must not be released by that zero's wake while a later handler is in flight.
// The count_down is held back on the counter's mutex; the second waiter (this thread) takes the
// mutex as it is released, ahead of the count_down most of the time. A finisher ends the second
// handler once the held-back count_down has returned and both waiters are blocked (or the first
// has returned: its zero came after it registered); a wrongly released second waiter has
// returned by then. Before the fix this returned early in most rounds.
TEST(ZeroWaitCounter, AWaiterIsNotReleasedByAZeroReachedBeforeItCame) {
  using parkpool::asio_detail::ZeroWaitCounter;
  using Access = parkpool::asio_detail::ZeroWaitCounterTestAccess;
  using parkpool::test::thread_state;
  const int rounds = static_cast<int>(parkpool::test::scaled(200, 4, 50));
  int early = 0;
  for (int round = 0; round < rounds; ++round) {
    ZeroWaitCounter c;
    c.add();  // the first handler
    std::atomic<pid_t> first_tid{0};
    std::atomic<bool> first_returned{false};
    std::thread first_waiter([&] {
      first_tid.store(parkpool::test::current_tid(), std::memory_order_release);
      c.wait_zero();
      first_returned.store(true, std::memory_order_release);
    });
    const pid_t first = published_tid(first_tid);
    parkpool::test::wait_until_sleeping(first, std::chrono::seconds(10));
    std::unique_lock<std::mutex> hold(Access::mutex(c));
    std::atomic<pid_t> down_tid{0};
    std::promise<void> down_returned;
    std::thread first_done([&] {
      down_tid.store(parkpool::test::current_tid(), std::memory_order_release);
      c.count_down();  // takes the count to zero, and needs the mutex to wake the first waiter
      down_returned.set_value();
    });
    parkpool::test::wait_until_sleeping(published_tid(down_tid), std::chrono::seconds(10));
    c.add();  // the second handler
    const pid_t me = parkpool::test::current_tid();
    std::atomic<bool> second_done{false};
    std::atomic<bool> me_returned{false};
    std::thread finisher([&, down = down_returned.get_future()] {
      // Blocked, not spinning, meanwhile: the CPU stays free for the count_down, so it does not
      // preempt this thread on its way to the mutex.
      down.wait_for(std::chrono::seconds(10));
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      // Once the count_down has returned, a waiter it released can be asleep only on the mutex,
      // held by the other released one: never both at once, and never this thread once the
      // first waiter has returned (read first).
      while (!me_returned.load(std::memory_order_acquire) &&
             std::chrono::steady_clock::now() < give_up) {
        const bool first_gone = first_returned.load(std::memory_order_acquire);
        if (thread_state(me) == 'S' && (first_gone || thread_state(first) == 'S')) break;
        std::this_thread::yield();
      }
      second_done.store(true, std::memory_order_release);  // pairs with the acquire below
      c.count_down();
    });
    hold.unlock();
    c.wait_zero();  // the second waiter: the second handler is in flight
    if (!second_done.load(std::memory_order_acquire)) ++early;
    me_returned.store(true, std::memory_order_release);
    finisher.join();
    first_done.join();
    first_waiter.join();
  }
  EXPECT_EQ(early, 0) << "wait_zero() returned while the count was not zero, in " << early << " of "
                      << rounds << " rounds";
}

// ---- what the header says ----

// blocking.possibly on a worker: an exception of the inline handler leaves dispatch() into the
// caller (Asio's io_context would catch it and rethrow it from run()).
TEST(AsioExecutor, InlineHandlerExceptionPropagatesOutOfDispatch) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto ex = ctx.get_executor();
  std::future<bool> caught =
      asio::post(ex, asio::use_future([&] {
                   try {
                     asio::dispatch(ex, [] { throw std::runtime_error("inline handler failed"); });
                   } catch (const std::runtime_error&) {
                     return true;
                   }
                   return false;
                 }));
  EXPECT_TRUE(caught.get());
  ctx.join();
}

TEST(AsioExecutor, JoinFromAWorkerThrowsLogicError) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto f = asio::post(ctx.get_executor(), asio::use_future([&] { ctx.join(); }));
  EXPECT_THROW(f.get(), std::logic_error);
  ctx.join();
}

// ---- the audit's additions: promises of the header no test above checked ----

// An allocator with state, so that the executor's copy of it can be told apart from a default
// one (std::allocator compares equal to every other std::allocator, so a test with it cannot see
// an allocator dropped or replaced).
template <class T>
struct TaggedAllocator {
  using value_type = T;
  int tag = 0;
  TaggedAllocator() = default;
  explicit TaggedAllocator(int t) noexcept : tag(t) {}
  template <class U>
  TaggedAllocator(const TaggedAllocator<U>& o) noexcept : tag(o.tag) {}  // NOLINT: rebinding
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  friend bool operator==(const TaggedAllocator& a, const TaggedAllocator& b) noexcept {
    return a.tag == b.tag;
  }
};

// The header: require(allocator(a)) stores a, query(allocator) returns it, the other require()s
// keep it, and two executors compare equal only with the same context and allocator (!= is the
// negation).
TEST(AsioExecutor, AStatefulAllocatorIsStoredReturnedAndCompared) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  const auto one = asio::require(ctx.get_executor(), exec::allocator(TaggedAllocator<void>(1)));
  const auto two = asio::require(ctx.get_executor(), exec::allocator(TaggedAllocator<void>(2)));
  EXPECT_EQ(asio::query(one, exec::allocator).tag, 1);
  EXPECT_EQ(asio::query(two, exec::allocator).tag, 2);
  // The other query overload (allocator_t<U>, U not void) returns it too.
  EXPECT_EQ(one.query(exec::allocator(std::allocator<int>())).tag, 1);
  // Changing another property keeps the allocator.
  EXPECT_EQ(asio::query(asio::require(one, exec::blocking.never), exec::allocator).tag, 1);
  EXPECT_EQ(asio::query(asio::require(one, exec::outstanding_work.tracked), exec::allocator).tag,
            1);
  EXPECT_TRUE(one == asio::require(ctx.get_executor(), exec::allocator(TaggedAllocator<void>(1))));
  EXPECT_FALSE(one != asio::require(ctx.get_executor(), exec::allocator(TaggedAllocator<void>(1))));
  EXPECT_FALSE(one == two) << "executors with unequal allocators compared equal";
  EXPECT_TRUE(one != two);
  // require(allocator) (allocator_t<void>) goes back to std::allocator<void>.
  static_assert(std::is_same_v<decltype(asio::require(one, exec::allocator)), AsioExecutor>);
  EXPECT_TRUE(asio::require(one, exec::allocator) == ctx.get_executor());
}

// operator!= on the default executor: false for the same context, true for another one.
TEST(AsioExecutor, InequalityIsTheNegationOfEquality) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  ThreadPool other_pool(threads(1));
  AsioContext other(other_pool);
  EXPECT_FALSE(ctx.get_executor() != ctx.get_executor());
  EXPECT_TRUE(ctx.get_executor() != other.get_executor());
}

// require(relationship.fork) on a continuation executor gives fork back (the property is
// recorded and reported, header: relationship).
TEST(AsioExecutor, RequireForkUndoesContinuation) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  const auto cont = asio::require(ctx.get_executor(), exec::relationship.continuation);
  EXPECT_EQ(asio::query(cont, exec::relationship), exec::relationship.continuation);
  EXPECT_EQ(asio::query(asio::require(cont, exec::relationship.fork), exec::relationship),
            exec::relationship.fork);
  static_assert(
      std::is_same_v<decltype(asio::require(cont, exec::relationship.fork)), AsioExecutor>);
}

// The executor's own running_in_this_thread(): false off the pool, true on one of its workers,
// false on a worker of another pool.
TEST(AsioExecutor, ExecutorRunningInThisThreadIsTrueOnlyOnItsPoolsWorkers) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  ThreadPool other_pool(threads(1));
  AsioContext other(other_pool);
  const AsioExecutor ex = ctx.get_executor();
  EXPECT_FALSE(ex.running_in_this_thread());
  std::future<bool> on_own =
      asio::post(ex, asio::use_future([ex] { return ex.running_in_this_thread(); }));
  std::future<bool> on_other = asio::post(
      other.get_executor(), asio::use_future([ex] { return ex.running_in_this_thread(); }));
  EXPECT_TRUE(on_own.get());
  EXPECT_FALSE(on_other.get()) << "true on a worker of another pool";
  ctx.join();
  other.join();
}

// Assigning to a tracked executor that holds a unit of work gives that unit back (it holds the
// assigned one instead): the count does not grow with assignments.
TEST(AsioExecutor, AssigningToATrackedExecutorReleasesItsUnit) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  auto a = asio::require(ctx.get_executor(), exec::outstanding_work.tracked);
  auto b = a;
  auto c = a;
  EXPECT_EQ(ctx.outstanding_work(), 3u);
  a = std::move(b);  // a's unit is released, b's moves to a
  EXPECT_EQ(ctx.outstanding_work(), 2u);
  a = c;  // a's unit is released, a takes a new one from c
  EXPECT_EQ(ctx.outstanding_work(), 2u);
  const auto& same = a;
  a = same;  // self-assignment keeps the unit
  EXPECT_EQ(ctx.outstanding_work(), 2u);
}

// The Networking-TS style counting: on_work_started() adds a unit, on_work_finished() removes
// it; join() waits for the difference (here zero again: it returns).
TEST(AsioExecutor, OnWorkStartedAndFinishedCountOutstandingWork) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  const AsioExecutor ex = ctx.get_executor();
  ex.on_work_started();
  ex.on_work_started();
  EXPECT_EQ(ctx.outstanding_work(), 2u);
  ex.on_work_finished();
  EXPECT_EQ(ctx.outstanding_work(), 1u);
  ex.on_work_finished();
  ASSERT_EQ(ctx.outstanding_work(), 0u);  // else join() would wait forever
  ctx.join();
}

// A handler whose destruction posts another handler to the same executor (as a coroutine frame's
// destruction does through its executor). Moved-from copies post nothing.
class PostsWhenDestroyed {
 public:
  PostsWhenDestroyed(AsioExecutor ex, std::shared_ptr<int> token)
      : ex_(ex), token_(std::move(token)) {}
  PostsWhenDestroyed(PostsWhenDestroyed&& o) noexcept
      : ex_(o.ex_), token_(std::move(o.token_)), armed_(std::exchange(o.armed_, false)) {}
  PostsWhenDestroyed(const PostsWhenDestroyed&) = delete;
  PostsWhenDestroyed& operator=(const PostsWhenDestroyed&) = delete;
  PostsWhenDestroyed& operator=(PostsWhenDestroyed&&) = delete;
  ~PostsWhenDestroyed() {
    if (armed_) asio::post(ex_, [token = token_] { (void)token; });
  }
  void operator()() {}

 private:
  AsioExecutor ex_;
  std::shared_ptr<int> token_;
  bool armed_ = true;
};

// The header (discard_rejected): it destroys the kept handlers "and any that destroying them
// rejects in turn". After the pool's shutdown the handler is kept; destroying it posts another,
// which the closed pool refuses too: discard_rejected() must destroy that one as well, not leave
// it kept.
TEST(AsioExecutor, DiscardRejectedAlsoDestroysWhatTheDestructionRejected) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  pool.shutdown();
  auto token = std::make_shared<int>(0);
  asio::post(ctx.get_executor(), PostsWhenDestroyed(ctx.get_executor(), token));
  EXPECT_EQ(ctx.rejected_handlers(), 1u);
  EXPECT_EQ(token.use_count(), 2);  // held by the kept handler
  ctx.discard_rejected();
  EXPECT_EQ(ctx.rejected_handlers(), 2u);  // its destruction posted one more, refused too
  EXPECT_EQ(token.use_count(), 1) << "a handler rejected during discard_rejected() is still kept";
}

// ~AsioContext waits for the queued handlers before it shuts the Asio services down (header:
// Lifetime): a handler that is still running may use a service (a strand's, a timer's), and a
// service's shutdown destroys its pending operations. A probe service records its shutdown; the
// handler, held on a gate until ~AsioContext blocks, reads it when it is let go.
TEST(AsioExecutor, ContextDestructorShutsServicesDownOnlyAfterQueuedHandlers) {
  ThreadPool pool(threads(2));
  auto ctx = std::make_unique<AsioContext>(pool);
  std::atomic<bool> shut{false};
  std::atomic<bool> probe_destroyed{false};
  asio::make_service<ServiceProbe<2>>(*ctx, &shut, &probe_destroyed);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  std::atomic<bool> shut_while_running{false};
  asio::post(ctx->get_executor(), [gate, &started, &shut, &shut_while_running] {
    started.set_value();
    gate.wait();
    // acquire: pairs with the probe's release store; relaxed store: read after destroyer.join().
    shut_while_running.store(shut.load(std::memory_order_acquire), std::memory_order_relaxed);
  });
  started.get_future().wait();
  std::atomic<pid_t> destroyer_tid{0};
  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    destroyer_tid.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.reset();
    destroyed.store(true, std::memory_order_release);
  });
  // Let the handler go only once the destroyer is blocked in ~AsioContext: by then a wrong
  // destructor has shut the services down already.
  wait_blocked_unless(published_tid(destroyer_tid), destroyed);
  release.set_value();
  destroyer.join();
  EXPECT_FALSE(shut_while_running.load(std::memory_order_relaxed))
      << "~AsioContext shut the services down while a queued handler was running";
  EXPECT_TRUE(shut.load(std::memory_order_acquire));
  EXPECT_TRUE(probe_destroyed.load(std::memory_order_acquire));
}

// join() returns only once it has seen no tracked work and no handler in flight together. Here
// the tracked work (a guard) goes away while a handler is in flight, and that handler creates
// tracked work (another guard) before it finishes: join() must wait for the handler, then for
// the new guard. The joiner records what is left when join() returns; nothing else adds work or
// handlers meanwhile, so both must read 0.
TEST(AsioExecutor, JoinWaitsForAHandlerInFlightAndTheWorkItCreates) {
  ThreadPool pool(threads(2));
  AsioContext ctx(pool);
  using Guard = decltype(asio::make_work_guard(std::declval<AsioExecutor>()));
  std::optional<Guard> first(asio::make_work_guard(ctx.get_executor()));
  std::optional<Guard> second;  // made by the handler
  std::atomic<bool> second_made{false};
  std::atomic<pid_t> joiner_tid{0};
  std::atomic<bool> returned{false};
  std::atomic<std::uint64_t> work_at_return{0};
  std::atomic<std::uint64_t> handlers_at_return{0};
  std::thread joiner([&] {
    joiner_tid.store(parkpool::test::current_tid(), std::memory_order_release);
    ctx.join();
    // relaxed: read after joiner.join().
    work_at_return.store(ctx.outstanding_work(), std::memory_order_relaxed);
    handlers_at_return.store(ctx.handlers_in_flight(), std::memory_order_relaxed);
    returned.store(true, std::memory_order_release);
  });
  const pid_t tid = published_tid(joiner_tid);
  wait_blocked_unless(tid, returned);  // waiting for `first`
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  asio::post(ctx.get_executor(), [gate, &ctx, &second, &second_made] {
    gate.wait();
    second.emplace(asio::make_work_guard(ctx.get_executor()));
    second_made.store(true, std::memory_order_release);  // pairs with the acquire below
  });
  // The work count goes to 0 with the handler in flight.
  first->reset();
  wait_blocked_unless(tid, returned);  // waiting for the handler
  release.set_value();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((!second_made.load(std::memory_order_acquire) || ctx.handlers_in_flight() != 0) &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  wait_blocked_unless(tid, returned);  // waiting for `second` (or returned too early)
  if (second_made.load(std::memory_order_acquire)) second->reset();
  joiner.join();
  EXPECT_EQ(handlers_at_return.load(std::memory_order_relaxed), 0u)
      << "join() returned while a handler was in flight";
  EXPECT_EQ(work_at_return.load(std::memory_order_relaxed), 0u)
      << "join() returned while tracked work made by a handler was held";
}

// A handler that records, each time it is moved, how many handlers its context counts in flight.
class RecordsInFlightWhenMoved {
 public:
  RecordsInFlightWhenMoved(AsioContext& ctx, std::shared_ptr<std::uint64_t> seen)
      : ctx_(&ctx), seen_(std::move(seen)) {}
  RecordsInFlightWhenMoved(RecordsInFlightWhenMoved&& o) noexcept
      : ctx_(o.ctx_), seen_(std::move(o.seen_)) {
    if (seen_ != nullptr) *seen_ = ctx_->handlers_in_flight();  // a moved-from one has none
  }
  RecordsInFlightWhenMoved(const RecordsInFlightWhenMoved&) = delete;
  RecordsInFlightWhenMoved& operator=(const RecordsInFlightWhenMoved&) = delete;
  RecordsInFlightWhenMoved& operator=(RecordsInFlightWhenMoved&&) = delete;
  ~RecordsInFlightWhenMoved() = default;
  void operator()() {}

 private:
  AsioContext* ctx_;
  std::shared_ptr<std::uint64_t> seen_;
};

// The header: a queued handler is counted in flight from execute() until it has run and been
// destroyed, or destroyed without running, or (pool shut down) kept. A handler the closed pool
// refused is moved into the context's keep as execute()'s last step; the count must still hold
// it then (join() and ~AsioContext() rely on it), and drop only after it is kept.
TEST(AsioExecutor, ARejectedHandlerIsCountedInFlightUntilItIsKept) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  pool.shutdown();
  auto seen = std::make_shared<std::uint64_t>(99);
  asio::post(ctx.get_executor(), RecordsInFlightWhenMoved(ctx, seen));
  EXPECT_EQ(ctx.rejected_handlers(), 1u);
  // The last move is the one into the keep (nothing moves a kept handler).
  EXPECT_EQ(*seen, 1u) << "the rejected handler was not counted in flight while it was kept";
  EXPECT_EQ(ctx.handlers_in_flight(), 0u);
  ctx.discard_rejected();
}

// ---- worker posts during the pool's shutdown; execute() and a throwing F ----

// The header (After ThreadPool::shutdown()): "A handler queued from a worker while shutdown
// drains is still accepted and runs (the pool's rule)", the pool's rule being (thread_pool.hpp,
// Shutdown and lifetime) that shutdown() "runs every task already accepted, including tasks those
// tasks spawn while draining (a worker of the pool may still post during shutdown)". The first
// handler holds the only worker until it sees that shutdown() has begun: PoolCore::shut_down(),
// set after the injector was closed to non-workers (ThreadPool itself exposes no such query).
// shutdown() cannot return meanwhile (it drains, and this handler is an accepted task), so the
// posts below are made during the drain, whatever the timing; no sleep orders anything. Each
// handler queued then (post, and defer: both queue on a worker) must run, on a worker, before
// shutdown() returns, and none may be rejected (kept unrun as after a non-worker's post).
TEST(AsioExecutor, AHandlerQueuedFromAWorkerWhileShutdownDrainsRuns) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  const AsioExecutor ex = ctx.get_executor();
  const parkpool::detail::PoolCore& core = parkpool::detail::PoolAccess::core(pool);
  // Relaxed: shutdown() returns after joining the worker, which orders every write below before
  // this thread's reads.
  std::atomic<int> ran{0};
  std::atomic<int> ran_on_a_worker{0};
  std::atomic<bool> posted_during_shutdown{false};
  auto second = [&] {
    ran.fetch_add(1, std::memory_order_relaxed);
    if (ctx.running_in_this_thread()) ran_on_a_worker.fetch_add(1, std::memory_order_relaxed);
  };
  asio::post(ex, [&] {
    while (!core.shut_down()) std::this_thread::yield();  // this thread's pool.shutdown() below
    asio::post(ex, second);
    asio::defer(ex, second);
    posted_during_shutdown.store(true, std::memory_order_relaxed);
  });
  pool.shutdown();  // accepted the first handler before: it runs in the drain
  ASSERT_TRUE(posted_during_shutdown.load(std::memory_order_relaxed));
  EXPECT_EQ(ctx.rejected_handlers(), 0u) << "a handler queued from a worker during the drain was "
                                            "rejected";
  EXPECT_EQ(ran.load(std::memory_order_relaxed), 2)
      << "a handler queued from a worker during the drain had not run when shutdown() returned";
  EXPECT_EQ(ran_on_a_worker.load(std::memory_order_relaxed), 2);
  EXPECT_EQ(ctx.handlers_in_flight(), 0u);
  ctx.join();
}

// What a throwing copy or move of a handler throws (a type and a message to check).
class HandlerConstructionFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A handler whose copy constructor, or move constructor, throws HandlerConstructionFailed when
// told to; each call of it counts in `runs`.
class ThrowingHandler {
 public:
  ThrowingHandler(std::shared_ptr<std::atomic<int>> runs, bool copy_throws, bool move_throws)
      : runs_(std::move(runs)), copy_throws_(copy_throws), move_throws_(move_throws) {}
  ThrowingHandler(const ThrowingHandler& o)
      : runs_(o.runs_), copy_throws_(o.copy_throws_), move_throws_(o.move_throws_) {
    if (copy_throws_) throw HandlerConstructionFailed("handler copy failed");
  }
  ThrowingHandler(ThrowingHandler&& o)  // NOLINT(performance-noexcept-move-constructor): tested
      : runs_(o.runs_), copy_throws_(o.copy_throws_), move_throws_(o.move_throws_) {
    // runs_ copied, not moved: `o` stays usable after a move that threw.
    if (move_throws_) throw HandlerConstructionFailed("handler move failed");
  }
  ThrowingHandler& operator=(const ThrowingHandler&) = delete;
  ThrowingHandler& operator=(ThrowingHandler&&) = delete;
  ~ThrowingHandler() = default;
  void operator()() const { runs_->fetch_add(1, std::memory_order_relaxed); }

 private:
  std::shared_ptr<std::atomic<int>> runs_;
  bool copy_throws_;
  bool move_throws_;
};

// Calls ex.execute(f) (an lvalue: F is copied from it) or ex.execute(std::move(f)) (moved), and
// returns what() of the HandlerConstructionFailed it threw, or "" if it threw nothing (any other
// exception fails the test where it escapes).
template <class Executor>
std::string execute_and_catch(const Executor& ex, ThrowingHandler& f, bool move) {
  try {
    if (move) {
      ex.execute(std::move(f));
    } else {
      ex.execute(f);
    }
  } catch (const HandlerConstructionFailed& e) {
    return e.what();
  }
  return "";
}

// The header (execute()): it "Throws ... what constructing F from f throws". That exception must
// leave execute() (not be swallowed, nor turned into a rejection), and execute() must leave the
// context as it found it: no handler counted in flight (join() and ~AsioContext() wait for that
// count to be zero, so a leaked unit would make both wait forever), no tracked work added or
// dropped, nothing kept as rejected, nothing run. Checked on each path of execute(): queued (off
// the pool, either blocking property), inline (blocking.possibly on a worker), and queued to a
// pool already shut down; for the handler's copy (an lvalue given) and its move (an rvalue
// given); and a copy that succeeds followed by a move into the pool's task that throws.
TEST(AsioExecutor, ExecuteRethrowsWhatConstructingTheHandlerThrowsAndCountsNothing) {
  ThreadPool pool(threads(1));
  auto ctx = std::make_unique<AsioContext>(pool);
  auto runs = std::make_shared<std::atomic<int>>(0);
  ThrowingHandler copy_throws(runs, true, false);
  ThrowingHandler move_throws(runs, false, true);  // an lvalue of it is copied fine, then moved
  const AsioExecutor possibly = ctx->get_executor();
  // A tracked executor holds one unit of work: execute() must neither add nor drop one.
  auto tracked_never = [&] {
    return asio::require(possibly, exec::blocking.never, exec::outstanding_work.tracked);
  };
  // False (and the context leaked, so that ~AsioContext() does not wait forever for the count
  // and the binary's other tests run) if a handler is counted in flight.
  auto no_handler_left = [&](const char* where) {
    if (ctx->handlers_in_flight() == 0) return true;
    ADD_FAILURE() << where << ": execute() left a handler counted in flight";
    (void)ctx.release();  // leaked on purpose
    return false;
  };
  auto expect_unchanged = [&](const char* where, std::uint64_t work) {
    EXPECT_EQ(ctx->outstanding_work(), work) << where;
    EXPECT_EQ(ctx->rejected_handlers(), 0u) << where;
    return no_handler_left(where);
  };

  {  // Queued, from this thread (not a worker).
    const auto never = tracked_never();
    EXPECT_EQ(execute_and_catch(possibly, copy_throws, false), "handler copy failed");
    if (!expect_unchanged("blocking.possibly off the pool, copy", 1)) return;
    EXPECT_EQ(execute_and_catch(possibly, move_throws, true), "handler move failed");
    if (!expect_unchanged("blocking.possibly off the pool, move", 1)) return;
    EXPECT_EQ(execute_and_catch(never, copy_throws, false), "handler copy failed");
    if (!expect_unchanged("blocking.never, copy", 1)) return;
    EXPECT_EQ(execute_and_catch(never, move_throws, true), "handler move failed");
    if (!expect_unchanged("blocking.never, move", 1)) return;
    EXPECT_EQ(execute_and_catch(never, move_throws, false), "handler move failed");
    if (!expect_unchanged("blocking.never, copied, then the move into the pool's task", 1)) return;
  }

  // Inline: blocking.possibly on a worker constructs F from f there, then would run it. The
  // handler that calls it is the one counted in flight meanwhile.
  struct InlineResult {
    std::string copy_what, move_what;
    std::uint64_t in_flight_before = 0, in_flight_after = 0;
  };
  auto on_a_worker = [&] {
    InlineResult r;
    r.in_flight_before = ctx->handlers_in_flight();
    r.copy_what = execute_and_catch(possibly, copy_throws, false);
    r.move_what = execute_and_catch(possibly, move_throws, true);
    r.in_flight_after = ctx->handlers_in_flight();
    return r;
  };
  std::future<InlineResult> inline_result = asio::post(possibly, asio::use_future(on_a_worker));
  const InlineResult r = inline_result.get();
  EXPECT_EQ(r.copy_what, "handler copy failed");
  EXPECT_EQ(r.move_what, "handler move failed");
  EXPECT_EQ(r.in_flight_before, 1u);
  if (r.in_flight_after != r.in_flight_before) {
    EXPECT_EQ(r.in_flight_after, r.in_flight_before) << "inline: the in-flight count changed";
    (void)ctx.release();  // ~AsioContext() and join() could wait forever: leaked on purpose
    return;
  }
  ctx->join();  // the posting handler is done and destroyed
  if (!expect_unchanged("inline on a worker", 0)) return;

  // Queued to the pool after its shutdown: F is constructed before the pool can refuse it, so
  // execute() throws what that throws, and there is no handler to keep.
  pool.shutdown();
  {
    const auto never = tracked_never();
    EXPECT_EQ(execute_and_catch(never, copy_throws, false), "handler copy failed");
    if (!expect_unchanged("blocking.never, pool shut down, copy", 1)) return;
    EXPECT_EQ(execute_and_catch(possibly, move_throws, true), "handler move failed");
    if (!expect_unchanged("blocking.possibly, pool shut down, move", 1)) return;
  }

  EXPECT_EQ(runs->load(std::memory_order_relaxed), 0) << "a handler that failed to construct ran";
  ctx->join();  // no work, no handler: returns at once
  ctx.reset();  // the same for ~AsioContext()
}

// A handler whose moves are numbered (1, 2, ... over the process): the move numbered
// g_throw_at_move throws HandlerConstructionFailed; 0 (the default): none throws.
std::atomic<int> g_handler_moves{0};  // relaxed: one thread moves, then reads it
std::atomic<int> g_throw_at_move{0};  // relaxed: set by the same thread before the moves
class NumberedMoveHandler {
 public:
  explicit NumberedMoveHandler(std::shared_ptr<std::atomic<int>> runs) : runs_(std::move(runs)) {}
  NumberedMoveHandler(const NumberedMoveHandler&) = delete;
  NumberedMoveHandler(NumberedMoveHandler&& o)  // NOLINT(performance-noexcept-move-constructor)
      : runs_(o.runs_) {
    const int n = g_handler_moves.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n == g_throw_at_move.load(std::memory_order_relaxed)) {
      throw HandlerConstructionFailed("handler move refused after the pool refused it");
    }
  }
  NumberedMoveHandler& operator=(const NumberedMoveHandler&) = delete;
  NumberedMoveHandler& operator=(NumberedMoveHandler&&) = delete;
  ~NumberedMoveHandler() = default;
  void operator()() const { runs_->fetch_add(1, std::memory_order_relaxed); }

 private:
  std::shared_ptr<std::atomic<int>> runs_;
};

// Gives a NumberedMoveHandler to execute() of a context whose pool is shut down, from this
// thread (not a worker), with the move numbered throw_at throwing (0: none). Returns how many
// moves execute() made; the handler is kept as rejected, never run.
int execute_refused_handler(int throw_at) {
  ThreadPool pool(threads(1));
  AsioContext ctx(pool);
  pool.shutdown();
  auto runs = std::make_shared<std::atomic<int>>(0);
  NumberedMoveHandler h(runs);
  g_handler_moves.store(0, std::memory_order_relaxed);
  g_throw_at_move.store(throw_at, std::memory_order_relaxed);
  ctx.get_executor().execute(std::move(h));
  const int moves = g_handler_moves.load(std::memory_order_relaxed);
  g_throw_at_move.store(0, std::memory_order_relaxed);
  EXPECT_EQ(ctx.rejected_handlers(), 1u);
  EXPECT_EQ(runs->load(std::memory_order_relaxed), 0) << "a refused handler ran";
  return moves;
}

// The header (After ThreadPool::shutdown()): execute() keeps the handler the shut-down pool
// refused; "if ... moving the handler throws, std::terminate is called: the handler could be
// neither run nor destroyed safely". After the refusal the handler is moved twice: out of the
// pool's refused task into execute()'s local (~CountedHandler, a destructor) and into the kept
// box (keep_rejected). A throw at either must terminate, not escape execute() (Asio calls it
// from places that must not throw) nor drop the handler silently. The moves before the refusal
// (constructing F) are the rethrown case, ExecuteRethrowsWhatConstructingTheHandlerThrows...
TEST(AsioExecutorDeathTest, MovingARefusedHandlerThatThrowsTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int moves = execute_refused_handler(0);  // how many moves a refusal takes, none throwing
  ASSERT_GE(moves, 3) << "construction, then the two moves after the refusal";
  EXPECT_DEATH(execute_refused_handler(moves), "handler move refused after the pool refused it")
      << "the move into the kept box (keep_rejected) threw";
  // That move runs in a destructor (noexcept) while pool_closed leaves ThreadPool::post. Which
  // exception the terminate message names depends on the compiler: with g++ 12 the one being
  // unwound (pool_closed), with clang 14 the one the move threw. Either is the documented end.
  EXPECT_DEATH(execute_refused_handler(moves - 1),
               "terminate called after throwing an instance of "
               "'(parkpool::pool_closed|.*HandlerConstructionFailed)'")
      << "the move out of the refused task (~CountedHandler) threw";
}

}  // namespace

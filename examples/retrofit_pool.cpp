// Retrofitting an existing pool with parkpool::IdleCoordinator: the drop-in story.
//
// RetrofitPool below is the classic mutex + deque + condition_variable pool with its condition
// variable replaced by the coordinator. The changed lines carry `// [idle]` and say what they
// replaced; everything else is the pool as it was. What the pool gains: idle workers spin for a
// short adaptive time budget before sleeping (a task arriving right after a burst starts in
// microseconds, not a futex round trip), at most half the workers spin, a post wakes one worker
// only when nobody is already looking (no thundering herd, no wake per post during a burst), the
// woken worker is one that slept on the waker's CPU, else the most recently parked one, and no
// wakeup is lost (pool/SLEEP.md).
//
// The program then checks the pool: every task posted from several threads runs exactly once,
// a ping-pong where every round needs a wake never stalls, shutdown wakes idle workers and runs
// everything accepted. It exits non-zero on any failure; ctest runs it.
#include <parkpool/idle.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

class RetrofitPool {
 public:
  explicit RetrofitPool(std::size_t threads, parkpool::IdleOptions options = {})
      : idle_(threads, options) {  // [idle] was: (nothing; cv_ was default-constructed)
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this, i] { run(i); });
  }
  RetrofitPool(const RetrofitPool&) = delete;
  RetrofitPool& operator=(const RetrofitPool&) = delete;
  ~RetrofitPool() { stop(); }

  void post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) throw std::runtime_error("RetrofitPool: post after stop");
      queue_.push_back(std::move(task));
    }
    idle_.notify_work();  // [idle] was: cv_.notify_one();
  }

  // Stops taking work, runs everything accepted, joins.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    idle_.shutdown();  // [idle] was: cv_.notify_all();
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

  parkpool::IdleWorkerStats idle_stats() const { return idle_.total_stats(); }

 private:
  bool try_pop(std::function<void()>& task) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) return false;
    task = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }
  bool has_work() {  // [idle] new: the re-check the coordinator runs before parking
    std::lock_guard<std::mutex> lock(mutex_);
    return !queue_.empty();
  }
  void run(std::size_t index) {
    std::function<void()> task;
    for (;;) {
      if (try_pop(task)) {
        // [idle] new: ends a search; if it was the last searcher and work is left, wakes one more
        idle_.found_work(index, [this] { return has_work(); });
        task();
        continue;
      }
      // [idle] was: std::unique_lock l(mutex_); cv_.wait(l, [&] { return stopping_ ||
      // !queue_.empty(); });
      if (!idle_.wait_for_work(index, [this] { return has_work(); })) {
        while (try_pop(task)) task();  // shutdown: run what was accepted, then leave
        return;
      }
    }
  }

  parkpool::IdleCoordinator idle_;  // [idle] was: std::condition_variable cv_;
  std::mutex mutex_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// ------------------------------------------------------------------------------ the checks

namespace {

int g_failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++g_failures;
}

// Waits (yielding) until `pred` holds; false after 10 s, which here means a lost wakeup.
template <class Pred>
bool within_10s(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

int main() {
  using namespace std::chrono_literals;

  {  // Several producers: every task runs exactly once.
    RetrofitPool pool(2);
    constexpr int kProducers = 4, kPerProducer = 20000;
    std::atomic<int> ran{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&] {
        for (int i = 0; i < kPerProducer; ++i) {
          pool.post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        }
      });
    }
    for (auto& t : producers) t.join();
    check(within_10s([&] { return ran.load() == kProducers * kPerProducer; }),
          "80,000 tasks from 4 producers all ran");
    pool.stop();
    check(ran.load() == kProducers * kPerProducer, "... and each ran exactly once");
  }

  {  // Ping-pong: every round needs the sleeping worker to be woken (no spin, no timed park).
    parkpool::IdleOptions no_spin;
    no_spin.spin_min = no_spin.spin_max = 0ns;
    no_spin.timed_park = 0ns;
    RetrofitPool pool(2, no_spin);
    std::atomic<int> done{0};
    bool ok = true;
    for (int r = 0; r < 2000 && ok; ++r) {
      pool.post([&done] { done.fetch_add(1, std::memory_order_release); });
      ok = within_10s([&] { return done.load(std::memory_order_acquire) == r + 1; });
    }
    check(ok, "2,000 ping-pong rounds through a parked worker, no wakeup lost");
    const parkpool::IdleWorkerStats s = pool.idle_stats();
    std::printf("      idle stats: %llu parks, %llu unparks, %llu spin hits\n",
                static_cast<unsigned long long>(s.parks),
                static_cast<unsigned long long>(s.unparks),
                static_cast<unsigned long long>(s.spin_hits));
    check(s.unparks > 0, "workers really parked and were woken");
  }

  {  // Shutdown of an idle pool wakes and joins every worker; accepted tasks all run.
    RetrofitPool pool(3, parkpool::IdleOptions::efficiency());
    std::atomic<int> ran{0};
    for (int i = 0; i < 1000; ++i) pool.post([&ran] { ran.fetch_add(1); });
    pool.stop();  // hangs (ctest TIMEOUT) if a parked worker missed the shutdown
    check(ran.load() == 1000, "stop() ran all 1,000 accepted tasks and joined every worker");
    bool threw = false;
    try {
      pool.post([] {});
    } catch (const std::runtime_error&) {
      threw = true;
    }
    check(threw, "post after stop throws");
  }

  if (g_failures != 0) {
    std::printf("%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}

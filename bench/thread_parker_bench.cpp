// Micro benchmarks of <parkpool/thread_parker.hpp>, each with its baseline in this binary
// (reported as "Workload/impl" for parkpool-bench: BlockOnReady/{parkpool,eager_coroutine},
// WakeToResume/{parkpool_block_on,parkpool_parker,raw_futex},
// WakerCloneDrop/{parkpool,shared_ptr}):
//   BlockOnReady           block_on of a coroutine that never suspends   vs  EagerCoroutine (the
//                          bare cost of creating, running and destroying a coroutine frame)
//   BlockOnPingPong        wake-to-resume round trip between two block_on threads through
//                          AsyncEvents  vs  RawFutexPingPong (two futex words, FUTEX_WAIT/WAKE)
//                          and ParkerPingPong (parkpool::Parker alone)
//   WakerCloneDrop         copy + destroy of a Waker  vs  SharedPtrCopyDrop (std::shared_ptr)
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "parkpool/async_event.hpp"
#include "parkpool/task.hpp"
#include "parkpool/thread_parker.hpp"

namespace {

// ---- block_on of a ready coroutine ------------------------------------------------------------

parkpool::Task<int> ready(int x) { co_return x + 1; }

void BlockOnReady(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) {
    x = parkpool::block_on(ready(x));
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BlockOnReady)->Name("BlockOnReady/parkpool");

// Baseline: an eager coroutine that stores its result in the promise, run and destroyed by hand.
struct Eager {
  struct promise_type {
    int value = 0;
    Eager get_return_object() noexcept {
      return Eager{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_value(int v) noexcept { value = v; }
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};
Eager eager(int x) { co_return x + 1; }

void EagerCoroutine(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) {
    Eager e = eager(x);
    x = e.h.promise().value;
    e.h.destroy();
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(EagerCoroutine)->Name("BlockOnReady/eager_coroutine");

// ---- wake-to-resume latency ---------------------------------------------------------------------

constexpr std::int64_t kRounds = 20'000;

void BlockOnPingPong(benchmark::State& state) {
  std::vector<parkpool::AsyncEvent> ping(static_cast<std::size_t>(kRounds));
  std::vector<parkpool::AsyncEvent> pong(static_cast<std::size_t>(kRounds));
  std::thread peer([&] {
    auto echo = [&]() -> parkpool::Task<void> {
      for (std::size_t r = 0; r < ping.size(); ++r) {
        co_await ping[r];
        pong[r].set();
      }
    };
    parkpool::block_on(echo());
  });
  auto driver = [&]() -> parkpool::Task<void> {
    std::size_t r = 0;
    for (auto _ : state) {
      ping[r].set();
      co_await pong[r];
      ++r;
    }
    // Release the peer if the loop stopped early.
    for (; r < ping.size(); ++r) ping[r].set();
  };
  parkpool::block_on(driver());
  peer.join();
  state.SetLabel("round trip = 2 wake-to-resume");
}
BENCHMARK(BlockOnPingPong)
    ->Name("WakeToResume/parkpool_block_on")
    ->Iterations(kRounds)
    ->UseRealTime();

long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, nullptr, nullptr, 0);
}
// Waits until *w == want (release/acquire on the word carries the data).
void futex_wait_for(std::atomic<std::uint32_t>& w, std::uint32_t want) {
  for (;;) {
    const std::uint32_t v = w.load(std::memory_order_acquire);
    if (v == want) return;
    futex(&w, FUTEX_WAIT_PRIVATE, v);
  }
}
void futex_set(std::atomic<std::uint32_t>& w, std::uint32_t v) {
  w.store(v, std::memory_order_release);
  futex(&w, FUTEX_WAKE_PRIVATE, 1);  // always: a baseline, not an optimized protocol
}

void RawFutexPingPong(benchmark::State& state) {
  std::atomic<std::uint32_t> ping{0};
  std::atomic<std::uint32_t> pong{0};
  std::thread peer([&] {
    for (std::uint32_t r = 1; r <= static_cast<std::uint32_t>(kRounds); ++r) {
      futex_wait_for(ping, r);
      futex_set(pong, r);
    }
  });
  std::uint32_t r = 0;
  for (auto _ : state) {
    ++r;
    futex_set(ping, r);
    futex_wait_for(pong, r);
  }
  peer.join();
}
BENCHMARK(RawFutexPingPong)->Name("WakeToResume/raw_futex")->Iterations(kRounds)->UseRealTime();

void ParkerPingPong(benchmark::State& state) {
  parkpool::Parker main_parker;
  std::atomic<std::int64_t> ping{0};
  std::atomic<std::int64_t> pong{0};
  std::atomic<parkpool::Unparker*> peer_unparker{nullptr};
  parkpool::Unparker main_unparker = main_parker.unparker();
  std::thread peer([&] {
    parkpool::Parker p;
    parkpool::Unparker u = p.unparker();
    peer_unparker.store(&u, std::memory_order_release);
    for (std::int64_t r = 1; r <= kRounds; ++r) {
      while (ping.load(std::memory_order_acquire) < r) p.park();
      pong.store(r, std::memory_order_release);
      main_unparker.unpark();
    }
  });
  parkpool::Unparker* peer_u = nullptr;
  while ((peer_u = peer_unparker.load(std::memory_order_acquire)) == nullptr) {
    std::this_thread::yield();
  }
  std::int64_t r = 0;
  for (auto _ : state) {
    ++r;
    ping.store(r, std::memory_order_release);
    peer_u->unpark();
    while (pong.load(std::memory_order_acquire) < r) main_parker.park();
  }
  peer.join();
}
BENCHMARK(ParkerPingPong)->Name("WakeToResume/parkpool_parker")->Iterations(kRounds)->UseRealTime();

// ---- Waker clone + drop vs std::shared_ptr copy -------------------------------------------------

void WakerCloneDrop(benchmark::State& state) {
  parkpool::Waker w = parkpool::this_thread::waker();
  for (auto _ : state) {
    parkpool::Waker c = w;
    benchmark::DoNotOptimize(&c);
  }
}
BENCHMARK(WakerCloneDrop)->Name("WakerCloneDrop/parkpool");

void SharedPtrCopyDrop(benchmark::State& state) {
  auto sp = std::make_shared<int>(1);
  for (auto _ : state) {
    std::shared_ptr<int> c = sp;
    benchmark::DoNotOptimize(&c);
  }
}
BENCHMARK(SharedPtrCopyDrop)->Name("WakerCloneDrop/shared_ptr");

}  // namespace

// Not BENCHMARK_MAIN: until a process starts its second thread, glibc reports it single-threaded
// and libstdc++ then updates shared_ptr's count without atomics, which would make the baseline of
// WakerCloneDrop a non-atomic increment. Start (and join) one thread first so every figure is
// measured as in the multi-threaded programs the library is for.
int main(int argc, char** argv) {
  std::thread([] {}).join();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

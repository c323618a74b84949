// ArcMutex<T>: a shared-ownership handle to a T guarded by a mutex, where the reference count
// and the two mutex bits share ONE atomic word. It shows how little a primitive needs when the
// parking lot does the queueing: the waiters live in parkpool::parking_lot, keyed by the block's
// address.
//
// Word layout (std::atomic<std::size_t>):
//   bit 0      kLocked   held by some handle                set by CAS (acquire), cleared by
//                                                           unlock (release) or kept on hand-off
//   bit 1      kParked   threads are (about to be) parked   set by CAS before parking; cleared
//                                                           only under the bucket lock
//   bits 2..   refs      number of ArcMutex handles         +1 on copy (relaxed), -1 on drop
//                                                           (acq_rel; the last one deletes)
// Every change of the mutex bits is a CAS or a fetch_and/fetch_or, never a store, because the
// reference count changes concurrently in the same word.
//
// Why "the last release while others are parked" cannot happen: a thread can only park inside
// lock(), which it calls through a handle it owns, so every parked thread holds a reference and
// refs >= 1 + (number of parked threads) at all times. The count can only reach zero when no
// handle exists, hence no thread is parked on (or can later unpark) the block's key, and the
// block can be freed without asking the parking lot anything.
//
// The program runs self-checks and exits non-zero if one fails (ctest runs it).
#include <parkpool/parking_lot.hpp>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>
#include <vector>

namespace example {

namespace pl = parkpool::parking_lot;

template <class T>
class ArcMutex {
  static constexpr std::size_t kLocked = 1;
  static constexpr std::size_t kParked = 2;
  static constexpr std::size_t kOneRef = 4;
  static constexpr pl::UnparkToken kTokenNormal{0};
  static constexpr pl::UnparkToken kTokenHandoff{1};

  struct Block {
    template <class... Args>
    explicit Block(Args&&... args) : value(std::forward<Args>(args)...) {}
    std::atomic<std::size_t> word{kOneRef};
    T value;
  };

 public:
  template <class... Args>
  static ArcMutex make(Args&&... args) {
    return ArcMutex(new Block(std::forward<Args>(args)...));
  }

  ArcMutex(const ArcMutex& other) noexcept : block_(other.block_) {
    // Relaxed: the caller already owns a reference, so the block cannot die meanwhile (the same
    // argument as std::shared_ptr's increment).
    block_->word.fetch_add(kOneRef, std::memory_order_relaxed);
  }
  ArcMutex(ArcMutex&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  ArcMutex& operator=(ArcMutex other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~ArcMutex() {
    if (block_ == nullptr) return;
    // acq_rel: release publishes this handle's uses; the last dropper's acquire sees all others'
    // before deleting.
    const std::size_t prev = block_->word.fetch_sub(kOneRef, std::memory_order_acq_rel);
    if (prev / kOneRef == 1) {
      if ((prev & (kLocked | kParked)) != 0) {
        std::fputs("ArcMutex: last reference dropped while locked\n", stderr);
        std::abort();
      }
      delete block_;
    }
  }

  std::size_t use_count() const noexcept {
    return block_->word.load(std::memory_order_relaxed) / kOneRef;
  }

  class Guard {
   public:
    explicit Guard(const ArcMutex& m) : m_(m) { m_.lock(); }
    ~Guard() { m_.unlock(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    T& operator*() const noexcept { return m_.block_->value; }
    T* operator->() const noexcept { return &m_.block_->value; }

   private:
    const ArcMutex& m_;
  };
  Guard lock_guard() const { return Guard(*this); }

  void lock() const noexcept {
    std::atomic<std::size_t>& w = block_->word;
    std::size_t s = w.load(std::memory_order_relaxed);
    // acquire: pairs with the release in unlock(); fast path when nobody holds it.
    if ((s & kLocked) == 0 && w.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                                      std::memory_order_relaxed)) {
      return;
    }
    lock_slow();
  }

  void unlock() const noexcept {
    std::atomic<std::size_t>& w = block_->word;
    std::size_t s = w.load(std::memory_order_relaxed);
    while ((s & kParked) == 0) {
      // release: pairs with the acquire in lock(). Retries only when the count moved.
      if (w.compare_exchange_weak(s, s & ~kLocked, std::memory_order_release,
                                  std::memory_order_relaxed)) {
        return;
      }
    }
    unlock_slow();
  }

 private:
  explicit ArcMutex(Block* b) noexcept : block_(b) {}

  void lock_slow() const noexcept {
    std::atomic<std::size_t>& w = block_->word;
    pl::SpinWait spin;
    std::size_t s = w.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & kLocked) == 0) {
        if (w.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if ((s & kParked) == 0 && spin.spin()) {
        s = w.load(std::memory_order_relaxed);
        continue;
      }
      if ((s & kParked) == 0 && !w.compare_exchange_weak(s, s | kParked, std::memory_order_relaxed,
                                                         std::memory_order_relaxed)) {
        continue;
      }
      // Callbacks run under the bucket lock: no throw, no park, short.
      const pl::ParkResult r = pl::park(
          block_,
          [&w] {
            const std::size_t st = w.load(std::memory_order_relaxed);
            return (st & (kLocked | kParked)) == (kLocked | kParked);
          },
          [] {},
          [&w](const void*, bool was_last) {
            if (was_last) w.fetch_and(~kParked, std::memory_order_relaxed);
          });
      if (r.is_unparked() && r.token() == kTokenHandoff) return;
      spin.reset();
      s = w.load(std::memory_order_relaxed);
    }
  }

  void unlock_slow() const noexcept {
    std::atomic<std::size_t>& w = block_->word;
    // Callback under the bucket lock: RMWs only (the count moves concurrently).
    pl::unpark_one(block_, [&w](pl::UnparkResult r) {
      if (r.unparked_threads != 0 && r.be_fair) {
        if (!r.have_more_threads) w.fetch_and(~kParked, std::memory_order_relaxed);
        return kTokenHandoff;  // kLocked stays set for the woken thread
      }
      const std::size_t clear = r.have_more_threads ? kLocked : (kLocked | kParked);
      w.fetch_and(~clear, std::memory_order_release);  // pairs with lock()'s acquire
      return kTokenNormal;
    });
  }

  Block* block_;
};

}  // namespace example

namespace {

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

std::atomic<int> live_counters{0};
struct Counter {
  Counter() { live_counters.fetch_add(1); }
  ~Counter() { live_counters.fetch_sub(1); }
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;
  long value = 0;
};

}  // namespace

int main() {
  using example::ArcMutex;
  constexpr int kThreads = 6;
  constexpr int kIters = 20000;
  {
    auto shared = ArcMutex<Counter>::make();
    check(shared.use_count() == 1, "fresh handle has one reference");
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      // Each thread gets its own handle; copies are made and dropped while others hold the lock
      // and park, so the count and the mutex bits race in the same word.
      ts.emplace_back([h = shared] {
        for (int i = 0; i < kIters; ++i) {
          ArcMutex<Counter> extra = h;  // +1 / -1 racing lock and unlock
          auto g = extra.lock_guard();
          ++g->value;
        }
      });
    }
    for (auto& t : ts) t.join();
    check(shared.use_count() == 1, "every copy released its reference");
    {
      auto g = shared.lock_guard();
      check(g->value == static_cast<long>(kThreads) * kIters, "no lost increment");
    }
    check(live_counters.load() == 1, "the value is alive while a handle exists");

    // The last handle may be dropped by a thread other than the creator, right after a
    // contended section.
    std::thread last([h = std::move(shared)]() mutable {
      auto g = h.lock_guard();
      ++g->value;
    });
    last.join();
  }
  check(live_counters.load() == 0, "the value was destroyed exactly once with the last handle");
  if (failures == 0) std::puts("arc_mutex: all checks passed");
  return failures == 0 ? 0 : 1;
}

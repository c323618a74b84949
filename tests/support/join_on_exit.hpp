// Keeps a fatal assertion from ending the whole test binary. A failing ASSERT_* returns from the
// test body; a std::thread that is still joinable then calls std::terminate in its destructor,
// right after gtest printed the failure, and the binary's remaining tests never run. JoinOnExit,
// declared after the threads it guards, joins on that early return instead:
//
//   std::atomic<bool> go{false};
//   std::thread t([&] { park_while_false(&key, &go); });
//   parkpool::test::JoinOnExit join(
//       [&] {
//         go.store(true, std::memory_order_relaxed);
//         pl::unpark_all(&key);
//       },
//       t);
//   ASSERT_TRUE(wait_until_queued(&key, 1));  // on failure: released, joined, next test
//   ...
//   t.join();                                 // the normal path joins as before
//
// On destruction, if every guarded thread was joined (the normal path) it does nothing. Otherwise
// it joins the joinable ones on a helper thread and, until they are all joined, calls `release`
// again and again from the test's thread, so that a thread that only starts waiting after the
// first call is let go too: `release` must be safe to call repeatedly (set a flag and unpark or
// notify everything the threads can wait on); an action that must happen once (an unlock, a
// latch's count_down) is wrapped in once(). If the threads are not all joined within 10 s, the
// release does not reach them: that is reported and the binary aborts, since they may still use
// the test's locals.
//
// A vector of threads is guarded as a whole, the threads it holds at destruction (threads added
// after the guard count). A thread object assigned later (std::thread t; ... t = std::thread(...))
// is guarded once declared before the guard.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace parkpool::test {

// The last step of a failed test whose threads a lost wake stranded: calls `release` (yielding
// between calls) until `returned()` holds. If that has not happened kReleaseBound after the first
// call, the release does not reach them: reports `stranded` and aborts the binary rather than
// hang it. Shared by JoinOnExit and WakeWithin.
template <class Returned>
void release_until(Returned returned, const std::function<void()>& release,
                   const std::string& stranded) {
  constexpr std::chrono::seconds kReleaseBound(10);
  const auto end = std::chrono::steady_clock::now() + kReleaseBound;
  while (!returned()) {
    if (std::chrono::steady_clock::now() >= end) {
      ADD_FAILURE() << stranded << " did not return " << kReleaseBound.count()
                    << " s after the release: aborting";
      std::fflush(stdout);
      std::abort();
    }
    release();
    std::this_thread::yield();
  }
}

class JoinOnExit {
 public:
  template <class... Threads>
  explicit JoinOnExit(std::function<void()> release, Threads&... threads)
      : release_(std::move(release)) {
    (add(threads), ...);
  }
  JoinOnExit(const JoinOnExit&) = delete;
  JoinOnExit& operator=(const JoinOnExit&) = delete;

  ~JoinOnExit() {
    std::vector<std::thread*> left;
    for (std::thread* t : single_) {
      if (t->joinable()) left.push_back(t);
    }
    for (std::vector<std::thread>* ts : groups_) {
      for (std::thread& t : *ts) {
        if (t.joinable()) left.push_back(&t);
      }
    }
    if (left.empty()) return;
    if (!testing::Test::HasFatalFailure()) {
      ADD_FAILURE() << left.size() << " thread(s) still joinable when the test returned";
    }
    // Relaxed: it carries only its own value; joiner.join() below orders everything else.
    std::atomic<bool> joined{false};
    std::thread joiner([&] {
      for (std::thread* t : left) t->join();
      joined.store(true, std::memory_order_relaxed);
    });
    release_until([&joined] { return joined.load(std::memory_order_relaxed); }, release_,
                  std::to_string(left.size()) + " thread(s) left running by a failed test");
    joiner.join();
  }

 private:
  void add(std::thread& t) { single_.push_back(&t); }
  void add(std::vector<std::thread>& ts) { groups_.push_back(&ts); }

  std::function<void()> release_;
  std::vector<std::thread*> single_;
  std::vector<std::vector<std::thread>*> groups_;
};

// A release action for JoinOnExit that runs `f` on its first call only (JoinOnExit calls its
// action repeatedly, always from the test's thread).
template <class F>
std::function<void()> once(F f) {
  return [f = std::move(f), done = false]() mutable {
    if (done) return;
    done = true;
    f();
  };
}

// For a release action: unlocks `m` if `held` says the test's thread still holds it, and clears
// `held` (the test body clears it too where it unlocks), so that no path unlocks twice.
template <class Lockable>
void unlock_if_held(bool& held, Lockable& m) {
  if (!held) return;
  held = false;
  m.unlock();
}

// Succeeds once `n` reaches `count`; after `bound`, fails with "lost wakeup: only <n> of <count>
// <counted> within <bound> s (<what>)". For counts a test keeps itself where Finished cannot
// count thread bodies (each of a thread's many parks, a park in a thread_local destructor), and
// the loop of Finished::within. Acquire loads: pair with the counter's release (or stronger)
// increments, so what the counted code wrote is visible once this returns.
[[nodiscard]] inline testing::AssertionResult reaches_within(const std::atomic<int>& n, int count,
                                                             const char* what,
                                                             std::chrono::seconds bound,
                                                             const char* counted) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (n.load(std::memory_order_acquire) < count) {
    if (std::chrono::steady_clock::now() >= end) {
      return testing::AssertionFailure()
             << "lost wakeup: only " << n.load(std::memory_order_acquire) << " of " << count << ' '
             << counted << " within " << bound.count() << " s (" << what << ")";
    }
    std::this_thread::yield();
  }
  return testing::AssertionSuccess();
}

// Counts the guarded threads that finished their body, so that the test's thread waits for them
// with a bound instead of in an unbounded join() (a waiter that a lost wakeup stranded would
// block that join, and the binary, forever). Declared before the threads; each body is wrapped:
//
//   Finished finished;
//   std::vector<std::thread> ts;
//   for (...) ts.emplace_back(finished([&] { ... cv.wait(lk, pred); ... }));
//   JoinOnExit join(release, ts);
//   ...
//   ASSERT_TRUE(finished.within(kWaiters, "the waiters notify_all() must wake"));
//   for (auto& t : ts) t.join();  // they all finished: these joins return
//
// within() fails, with a message naming `what`, when fewer than `count` bodies finished after
// kFinishBound; the ASSERT returns, and the JoinOnExit releases and joins the stranded threads.
class Finished {
 public:
  // Far above any legitimate wake or hand-off (microseconds): only a lost one reaches it.
  static constexpr std::chrono::seconds kFinishBound{20};

  template <class F>
  auto operator()(F f) {
    return [this, f = std::move(f)]() mutable {
      f();
      // release: pairs with within()'s acquire loads, so a test that reads what the bodies wrote
      // right after within() (before its joins) sees it.
      count_.fetch_add(1, std::memory_order_release);
    };
  }

  [[nodiscard]] testing::AssertionResult within(int count, const char* what,
                                                std::chrono::seconds bound = kFinishBound) const {
    return reaches_within(count_, count, what, bound, "thread(s) finished");
  }

  int count() const { return count_.load(std::memory_order_acquire); }

 private:
  std::atomic<int> count_{0};
};

// Bounds a wait of the test's own thread (a park, a block_on) that only a wake from the library
// ends: there no guarded thread can be counted by Finished, since the thread that blocks is the
// test's. Declared right before the blocking call, in a scope that ends right after it:
//
//   {
//     WakeWithin wake("the owner's park, which the other thread's unpark() must wake",
//                     [u = p.unparker()] { u.unpark(); });
//     p.park();
//   }
//
// A watcher thread waits for the scope to end. After `bound` it records a failure naming `what`
// (from the watcher: gtest's assertions are thread-safe) and calls `release` again and again,
// so that the blocked call returns and the test goes on (`release` must be safe to call
// repeatedly and from another thread; [] {} when nothing but the lost wake can end the call).
// If the call has not returned 10 s after that, the release does not reach it: reported, and the
// binary aborts, as JoinOnExit does.
//
// A loop of many such waits gets one watcher, not one per wait: given a count of rounds that
// the loop advances, the scope is the whole loop and the bound runs from the last advance, so a
// failure names the round whose wake was lost. The loop stops once lost() is true (its release
// keeps calling `release` until the scope ends):
//
//   std::atomic<std::size_t> done{0};
//   {
//     WakeWithin wake("each round's block_on, which the setter's set() must wake", done, release);
//     for (...) {
//       ... block_on(...) ...;
//       done.fetch_add(1, std::memory_order_relaxed);
//       if (wake.lost()) break;
//     }
//   }
class WakeWithin {
 public:
  WakeWithin(const char* what, std::function<void()> release,
             std::chrono::seconds bound = Finished::kFinishBound)
      : WakeWithin(what, nullptr, std::move(release), bound) {}
  WakeWithin(const char* what, const std::atomic<std::size_t>& rounds,
             std::function<void()> release, std::chrono::seconds bound = Finished::kFinishBound)
      : WakeWithin(what, &rounds, std::move(release), bound) {}
  WakeWithin(const WakeWithin&) = delete;
  WakeWithin& operator=(const WakeWithin&) = delete;

  ~WakeWithin() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      returned_ = true;
    }
    cv_.notify_one();
    watcher_.join();
  }

  // True once the failure is recorded (the release has begun): a loop stops there.
  bool lost() const { return lost_.load(std::memory_order_relaxed); }

 private:
  WakeWithin(const char* what, const std::atomic<std::size_t>* rounds,
             std::function<void()> release, std::chrono::seconds bound)
      : rounds_(rounds), watcher_([this, what, release = std::move(release), bound] {
          watch(what, release, bound);
        }) {}

  void watch(const char* what, const std::function<void()>& release, std::chrono::seconds bound) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto returned = [this] { return returned_; };
    std::size_t round = 0;
    if (rounds_ == nullptr) {
      if (cv_.wait_for(lock, bound, returned)) return;
    } else {
      // Looked at every second; the bound runs from the last time the count moved. Relaxed:
      // only its value is used (a count, not a publication).
      constexpr std::chrono::seconds kLook(1);
      round = rounds_->load(std::memory_order_relaxed);
      auto moved = std::chrono::steady_clock::now();
      for (;;) {
        if (cv_.wait_for(lock, kLook, returned)) return;
        const std::size_t now_round = rounds_->load(std::memory_order_relaxed);
        const auto now = std::chrono::steady_clock::now();
        if (now_round != round) {
          round = now_round;
          moved = now;
        } else if (now - moved >= bound) {
          break;
        }
      }
    }
    lock.unlock();
    // Relaxed: the flag only ends the loop; the failure itself is recorded by gtest.
    lost_.store(true, std::memory_order_relaxed);
    if (rounds_ == nullptr) {
      ADD_FAILURE() << "lost wakeup: the test's thread was still blocked after " << bound.count()
                    << " s (" << what << ")";
    } else {
      ADD_FAILURE() << "lost wakeup: round " << round << " did not end within " << bound.count()
                    << " s (" << what << ")";
    }
    release_until(
        [this] {
          const std::lock_guard<std::mutex> guard(mutex_);
          return returned_;
        },
        release, "the test's thread");
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool returned_ = false;                             // guarded by mutex_
  const std::atomic<std::size_t>* rounds_ = nullptr;  // the loop's count of rounds, or none
  std::atomic<bool> lost_{false};
  std::thread watcher_;  // last: it starts once the members it uses exist
};

}  // namespace parkpool::test

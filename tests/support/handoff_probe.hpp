// Tells a hand-off from a plain wakeup, for locks whose unlock may hand the lock directly to a
// parked thread (eventual fairness, unlock_fair). A hand-off keeps the lock held for the woken
// thread: it is never free in between, so nobody else can take it. A plain wakeup frees it first,
// and a running thread that tries at once usually takes it before the woken thread has run (a
// futex wake away). Usually, not always: the unlocking thread itself loses when the scheduler
// runs the woken thread on its CPU at once, and a second thread spinning on try_lock loses when
// it shares that CPU. Both try, over many rounds, and a round counts when either took the lock.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <thread>

#include "join_on_exit.hpp"
#include "parking_lot_probe.hpp"

namespace parkpool::test {

// Runs `rounds` rounds of: this thread holds `lock` (exclusively) while a waiter thread queues
// on it (seen in the parking lot under `lock`'s address) and a barger thread spins on
// `try_take(lock)` (which, on success, releases it again); `hold()` runs, `unlock(lock)` releases
// the lock, this thread calls try_take too, and the barger stops once the waiter holds the lock.
// `barged` counts the rounds in which this thread or the barger took it: 0 means every unlock
// handed the lock to the waiter. The threads persist across rounds, so that a round takes tens
// of microseconds plus `hold()` (a round that starts a thread can take long enough for the
// parking lot's fair timer to be due every time).
// A lost wakeup fails instead of hanging: this thread waits for the waiter to get the lock after
// each unlock with a bound (kAcquireBound, far above a wake), and returns a failure naming the
// round; the JoinOnExit release then also calls unpark_all on the lock's address (where the
// waiter parks; a woken waiter retries), independently of the unlock under test.
template <class Lock, class Hold, class Unlock, class TryTake>
[[nodiscard]] testing::AssertionResult barge_after_unlock(Lock& lock, int rounds, Hold hold,
                                                          Unlock unlock, TryTake try_take,
                                                          int& barged) {
  barged = 0;
  auto wait_at_least = [](std::atomic<int>& a, int n) {
    for (int v = a.load(); v < n; v = a.load()) a.wait(v);
  };
  // Far above any legitimate wake or hand-off (microseconds): only a lost one reaches it.
  constexpr std::chrono::seconds kAcquireBound(20);
  auto acquired_within = [&](std::atomic<int>& a, int n) {
    const auto end = std::chrono::steady_clock::now() + kAcquireBound;
    while (a.load() < n) {
      if (std::chrono::steady_clock::now() >= end) return false;
      std::this_thread::yield();
    }
    return true;
  };
  auto set = [](std::atomic<int>& a, int v) {
    a.store(v);
    a.notify_all();
  };
  // Round i: `armed` 2i+1 while the barger may try, 2i+2 once it must stop; `phase` 2i+1 once
  // the barger has stopped (the waiter may unlock), 2i+2 once this thread holds the lock again
  // (the waiter may queue for the next round).
  std::atomic<int> armed{0};
  std::atomic<int> spinning{0};   // rounds in which the barger has started trying
  std::atomic<int> stopped{0};    // rounds in which the barger has stopped trying
  std::atomic<int> hit_round{0};  // the last round in which the barger took the lock
  std::atomic<int> phase{0};
  std::atomic<int> acquired{0};  // rounds in which the waiter got the lock
  lock.lock();
  bool held = true;  // by this thread; used only on this thread (the release runs here too)
  std::thread waiter([&] {
    for (int i = 0; i < rounds; ++i) {
      lock.lock();
      set(acquired, i + 1);
      wait_at_least(phase, 2 * i + 1);  // keep the lock until the barger has stopped
      lock.unlock();
      wait_at_least(phase, 2 * i + 2);
    }
  });
  std::thread barger([&] {
    for (int i = 0; i < rounds; ++i) {
      wait_at_least(armed, 2 * i + 1);
      set(spinning, i + 1);
      bool hit = false;
      while (armed.load() == 2 * i + 1) {
        if (!hit && try_take(lock)) hit = true;
        // Lets the woken waiter run on this CPU: otherwise it may wait out the rest of this
        // thread's time slice (milliseconds), long enough for the fair timer to be due again.
        std::this_thread::yield();
      }
      if (hit) hit_round.store(i + 1);
      set(stopped, i + 1);
    }
  });
  JoinOnExit join(
      [&] {
        if (held) {
          held = false;
          lock.unlock();
        }
        set(armed, INT_MAX);
        set(phase, INT_MAX);
        parkpool::parking_lot::unpark_all(&lock);  // a waiter a lost wakeup stranded retries
      },
      waiter, barger);
  for (int i = 0; i < rounds; ++i) {
    if (auto queued = wait_until_queued(&lock, 1); !queued) return queued;
    set(armed, 2 * i + 1);
    wait_at_least(spinning, i + 1);
    hold();
    held = false;
    unlock(lock);
    const bool took = try_take(lock);
    // After a barge the waiter may still be asleep: the barger's release wakes it. Bounded: an
    // unlock (or release) that wakes nobody fails here instead of hanging the binary.
    if (!acquired_within(acquired, i + 1)) {
      return testing::AssertionFailure()
             << "lost wakeup: the parked waiter did not get the lock within "
             << kAcquireBound.count() << " s after round " << i << "'s unlock";
    }
    set(armed, 2 * i + 2);
    wait_at_least(stopped, i + 1);
    if (took || hit_round.load() == i + 1) ++barged;
    set(phase, 2 * i + 1);
    lock.lock();
    held = true;
    set(phase, 2 * i + 2);
  }
  held = false;
  lock.unlock();
  waiter.join();
  barger.join();
  return testing::AssertionSuccess();
}

}  // namespace parkpool::test

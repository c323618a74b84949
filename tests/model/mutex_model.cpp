// Relacy model of parkpool::Mutex's LOCKED/PARKED hand-off protocol on the parking lot.
// Three threads each lock, increment a plain counter (rl::var: Relacy reports a race if the
// lock fails to order the critical sections), and unlock; after all, the counter must be 3.
// A lost wakeup shows as a Relacy deadlock (a thread parked forever). own_word gives the mutex's
// home word one bit (INV-B), so the second parked thread sleeps on its own word.
// The timed suite (variants timed*) has one thread lock with try_lock_until, whose deadline may
// pass wherever the parking lot reads the clock: its timed-out path must neither strand a lock
// handed off to it nor leave the others' PARKED bit cleared (a lost wakeup of the threads still
// queued), and the counter must count exactly the successful locks. Both branches of that path
// run (the thread still queued, and already dequeued by an unlock), each in thousands of the
// 200,000 schedules (counted once with a throwaway counter, 2026-12-06).
// Both suites run on a lot given the variant's Bugs, so the lot's own mutations reach them. The
// untimed suite checks those on the paths a mutex's wait and unlock take (park, unpark_one of
// one thread): home_word_no_bump, wake_before_idle, seq_load_relaxed, and with one bit per home
// word own_word_no_wake, own_word_wake_before_idle (a lock waiter sleeps forever: a Relacy
// deadlock within the first 100 schedules); the timed suite checks timeout_ignores_unpark and
// timeout_stays_queued. The others cannot happen here: the mutex has one key, never requeues
// and never calls unpark_filter, unpark_all or the lock-free unpark_one, and each wake list
// holds one thread (wake_first_home_only, wake_key_word, batch_one_bit, unpark_all_first_only,
// filter_drops_second, requeue_keeps_key, waiters_relaxed and waiters_plain_load each pass).
//
// clang-format off
// PARKPOOL_MODEL_CORRECT: correct own_word timed timed_own_word
// PARKPOOL_MODEL_BROKEN: relaxed_lock relaxed_unlock clear_bits_outside_lot park_without_validate stale_token home_word_no_bump wake_before_idle seq_load_relaxed own_word_no_wake own_word_wake_before_idle timeout_ignores_unpark timeout_clears_parked_bit timeout_stays_queued
// clang-format on
#include <cstdio>
#include <string>

#include "parking_lot_model.hpp"

#include "model_params.hpp"

namespace {

model::Bugs g_bugs;
int g_home_bits = model::kMaxThreads;

struct MutexTest : rl::test_suite<MutexTest, 3> {
  model::Lot lot;
  model::Mutex mutex;
  rl::var<int> counter;

  void before() {
    lot.init(3, &g_bugs, g_home_bits);
    mutex.init(&lot, 1, &g_bugs);
    counter($) = 0;
  }
  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    for (int i = 0; i < 2; ++i) {
      mutex.lock(me);
      counter($) = counter($) + 1;
      mutex.unlock();
    }
  }
  void after() { RL_ASSERT(counter($) == 6); }
};

// Threads 0 and 1 lock twice each; thread 2 tries twice with a deadline.
struct TimedMutexTest : rl::test_suite<TimedMutexTest, 3> {
  model::Lot lot;
  model::Mutex mutex;
  rl::var<int> counter;
  rl::atomic<int> timed_successes;

  void before() {
    lot.init(3, &g_bugs, g_home_bits);
    mutex.init(&lot, 1, &g_bugs);
    counter($) = 0;
    timed_successes.store(0, rl::mo_relaxed, $);
  }
  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    for (int i = 0; i < 2; ++i) {
      if (me == 2) {
        if (!mutex.try_lock_timed(me)) continue;
        timed_successes.fetch_add(1, rl::mo_relaxed, $);
      } else {
        mutex.lock(me);
      }
      counter($) = counter($) + 1;
      mutex.unlock();
    }
  }
  void after() { RL_ASSERT(counter($) == 4 + timed_successes.load(rl::mo_relaxed, $)); }
};

bool run_model(const std::string& variant, int& known) {
  g_bugs = model::Bugs{};
  g_home_bits = model::kMaxThreads;
  known = 1;
  bool timed = false;
  if (variant == "correct") {
  } else if (variant == "own_word") {
    g_home_bits = 1;
  } else if (variant == "relaxed_lock") {
    g_bugs.relaxed_lock = true;
  } else if (variant == "relaxed_unlock") {
    g_bugs.relaxed_unlock = true;
  } else if (variant == "clear_bits_outside_lot") {
    g_bugs.clear_bits_outside_lot = true;
  } else if (variant == "park_without_validate") {
    g_bugs.park_without_validate = true;
  } else if (variant == "home_word_no_bump") {
    g_bugs.home_word_no_bump = true;
  } else if (variant == "wake_before_idle") {
    g_bugs.wake_before_idle = true;
  } else if (variant == "seq_load_relaxed") {
    g_bugs.seq_load_relaxed = true;
  } else if (variant == "own_word_no_wake") {
    g_bugs.own_word_no_wake = true;  // the second parked thread sleeps on its own word
    g_home_bits = 1;
  } else if (variant == "own_word_wake_before_idle") {
    g_bugs.own_word_wake_before_idle = true;
    g_home_bits = 1;
  } else if (variant == "stale_token") {
    g_bugs.wake_under_stale_state = true;
  } else if (variant == "timed") {
    timed = true;
  } else if (variant == "timed_own_word") {
    timed = true;
    g_home_bits = 1;
  } else if (variant == "timeout_ignores_unpark") {
    timed = true;
    g_bugs.timeout_ignores_unpark = true;
  } else if (variant == "timeout_stays_queued") {
    timed = true;
    g_bugs.timeout_stays_queued = true;
  } else if (variant == "timeout_clears_parked_bit") {
    timed = true;
    g_bugs.timeout_clears_parked_bit = true;
  } else {
    known = 0;
    return false;
  }
  rl::test_params p = parkpool::model::random_params();
  return timed ? rl::simulate<TimedMutexTest>(p) : rl::simulate<MutexTest>(p);
}

}  // namespace

int main(int argc, char** argv) { return model::model_main(argc, argv, run_model); }

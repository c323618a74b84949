// Relacy model of parkpool::Condvar's wait / notify with requeue onto parkpool::Mutex.
// Two waiters wait (under the mutex) for a flag; a notifier sets the flag under the mutex and
// notifies (notify_one twice, or notify_all), with the mutex held or not depending on the
// variant. Every waiter must return; the flag and a plain counter are rl::vars guarded by the
// mutex. A lost notification shows as a Relacy deadlock. With the mutex free, notify_all wakes
// both waiters with one batched wake of their home word (INV-H in src/parking_lot.cpp); with it
// held, they are requeued and later woken, through the Condvar's home word, by unlock. The
// *_own_word variants give each home word one bit (INV-B), so the second sleeper of a home
// sleeps on its own word and a batched wake mixes both paths.
// The timed_* variants make the first waiter wait with a deadline (wait_until), which Relacy lets
// pass wherever the parking lot reads the clock; it gives up after two timeouts. Its timed-out
// path (on the Condvar's queue, or requeued onto the mutex's) must not make the notifier skip
// the other, untimed waiter, which must return.
//
// clang-format off
// PARKPOOL_MODEL_CORRECT: notify_all_locked notify_all_unlocked notify_one_locked notify_one_unlocked notify_all_locked_own_word notify_all_unlocked_own_word notify_one_locked_own_word timed_notify_all_locked timed_notify_all_unlocked timed_notify_one_locked timed_notify_one_unlocked
// PARKPOOL_MODEL_BROKEN: unlock_before_queueing requeue_without_parked_bit wake_before_idle wake_key_word seq_load_relaxed batch_one_bit own_word_wake_before_idle timeout_clears_cv_state own_word_no_wake home_word_no_bump unpark_all_first_only filter_drops_second requeue_keeps_key
// clang-format on
#include <cstdio>
#include <string>

#include "parking_lot_model.hpp"

#include "model_params.hpp"

namespace {

model::Bugs g_bugs;
bool g_notify_all = true;
bool g_notify_locked = true;
int g_home_bits = model::kMaxThreads;
bool g_timed = false;  // waiter 1 waits with a deadline

struct CondvarTest : rl::test_suite<CondvarTest, 3> {
  model::Lot lot;
  model::Mutex mutex;
  model::Condvar cv;
  rl::var<int> flag;
  rl::var<int> woken;
  rl::var<int> untimed_woken;  // the untimed waiter (2) returned

  void before() {
    lot.init(3, &g_bugs, g_home_bits);
    mutex.init(&lot, 1, &g_bugs);
    cv.init(&lot, 2, &g_bugs);
    flag($) = 0;
    woken($) = 0;
    untimed_woken($) = 0;
  }

  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    if (index == 0) {
      mutex.lock(me);
      flag($) = 1;
      if (g_notify_locked) notify();
      mutex.unlock();
      if (!g_notify_locked) notify();
    } else if (g_timed && index == 1) {
      mutex.lock(me);
      int timeouts = 0;
      while (flag($) == 0 && timeouts < 2) {
        if (cv.wait_timed(me, mutex)) ++timeouts;
      }
      mutex.unlock();
    } else {
      mutex.lock(me);
      while (flag($) == 0) cv.wait(me, mutex);
      woken($) = woken($) + 1;
      if (index == 2) untimed_woken($) = 1;
      mutex.unlock();
    }
  }

  void notify() {
    if (g_notify_all) {
      cv.notify_all(mutex);
    } else {
      cv.notify_one(mutex);
      cv.notify_one(mutex);
    }
  }

  void after() {
    if (g_timed) {
      RL_ASSERT(untimed_woken($) == 1);
    } else {
      RL_ASSERT(woken($) == 2);
    }
  }
};

bool run_model(const std::string& variant, int& known) {
  g_bugs = model::Bugs{};
  g_notify_all = true;
  g_notify_locked = true;
  g_home_bits = model::kMaxThreads;
  g_timed = false;
  known = 1;
  if (variant == "notify_all_locked") {
  } else if (variant == "notify_all_unlocked") {
    g_notify_locked = false;
  } else if (variant == "notify_one_locked") {
    g_notify_all = false;
  } else if (variant == "notify_one_unlocked") {
    g_notify_all = false;
    g_notify_locked = false;
  } else if (variant == "notify_all_locked_own_word") {
    g_home_bits = 1;
  } else if (variant == "notify_all_unlocked_own_word") {
    g_home_bits = 1;
    g_notify_locked = false;
  } else if (variant == "notify_one_locked_own_word") {
    g_home_bits = 1;
    g_notify_all = false;
  } else if (variant == "own_word_wake_before_idle") {
    g_bugs.own_word_wake_before_idle = true;  // the second waiter sleeps on its own word
    g_home_bits = 1;
    g_notify_locked = false;
  } else if (variant == "unlock_before_queueing") {
    g_bugs.unlock_before_queueing = true;
    g_notify_locked = false;
  } else if (variant == "requeue_without_parked_bit") {
    g_bugs.requeue_without_parked_bit = true;
  } else if (variant == "wake_before_idle") {
    g_bugs.wake_before_idle = true;  // batched wake of the mutex-free notify_all
    g_notify_locked = false;
  } else if (variant == "wake_key_word") {
    g_bugs.wake_key_word = true;  // requeued waiters woken by unlock on the mutex's word
  } else if (variant == "batch_one_bit") {
    g_bugs.batch_one_bit = true;  // the mutex-free notify_all wakes only one of the two waiters
    g_notify_locked = false;
  } else if (variant == "timed_notify_all_locked") {
    g_timed = true;
  } else if (variant == "timed_notify_all_unlocked") {
    g_timed = true;
    g_notify_locked = false;
  } else if (variant == "timed_notify_one_locked") {
    g_timed = true;
    g_notify_all = false;
  } else if (variant == "timed_notify_one_unlocked") {
    g_timed = true;
    g_notify_all = false;
    g_notify_locked = false;
  } else if (variant == "timeout_clears_cv_state") {
    g_timed = true;
    g_bugs.timeout_clears_cv_state = true;
    g_notify_all = false;
  } else if (variant == "own_word_no_wake") {
    g_bugs.own_word_no_wake = true;  // the second waiter sleeps on its own word
    g_home_bits = 1;
    g_notify_locked = false;
  } else if (variant == "home_word_no_bump") {
    g_bugs.home_word_no_bump = true;
    g_notify_locked = false;
  } else if (variant == "unpark_all_first_only") {
    g_bugs.unpark_all_first_only = true;  // the mutex-free notify_all wakes one of two waiters
    g_notify_locked = false;
  } else if (variant == "filter_drops_second") {
    g_bugs.filter_drops_second = true;  // the mutex-free notify_all loses the second waiter
    g_notify_locked = false;
  } else if (variant == "requeue_keeps_key") {
    // notify_one requeues a waiter that stays on the Condvar. (notify_all's requeue_all would
    // meet its requeued waiters again and never end, as src's walk does when the two keys share a
    // bucket and two threads are requeued.)
    g_bugs.requeue_keeps_key = true;
    g_notify_all = false;
  } else if (variant == "seq_load_relaxed") {
    g_bugs.seq_load_relaxed = true;
    g_notify_locked = false;
  } else {
    known = 0;
    return false;
  }
  rl::test_params p = parkpool::model::random_params();
  return rl::simulate<CondvarTest>(p);
}

}  // namespace

int main(int argc, char** argv) { return model::model_main(argc, argv, run_model); }

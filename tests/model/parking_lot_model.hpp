// A Relacy model of the parking lot protocol of src/parking_lot.cpp and of the primitives of
// src/mutex.cpp / src/condvar.cpp, shared by mutex_model.cpp and condvar_model.cpp.
//
// What is modelled faithfully:
//  - one bucket (all keys collide, which is a legal case of the real table) with its lock;
//  - per-thread futex word with the kIdle/kParked/kWaking states, the unpark token written under
//    the bucket lock, kWaking set under the lock, kIdle (release) + FUTEX_WAKE after the lock;
//  - validate under the lock, before_sleep after queueing and unlocking, FIFO by sequence number;
//  - unpark callbacks and requeue validate/callback under the lock, with be_fair chosen
//    nondeterministically (Relacy explores both hand-off and normal unlocks);
//  - Mutex: LOCKED/PARKED bits, fast paths, lock_slow / unlock_slow with the same orderings;
//  - Condvar: state word, wait (validate stores the mutex, before_sleep unlocks), notify_one /
//    notify_all with unpark_requeue onto the mutex and mark_parked(_if_locked).
//  - the bucket's waiter count (INV-W) and the lock-free check of the callback-less
//    unpark_one(key) (parking_lot_model.cpp).
// Not modelled: timeouts (the timed-out path) and spinning (SpinWait only delays). Plain data
// protected by the mutex is an rl::var, so Relacy reports a data race when a broken ordering fails
// to create happens-before.
#pragma once

#include "model_main.hpp"

#include <relacy/relacy.hpp>
#include <relacy/stdlib/mutex.hpp>
#include <relacy/stdlib/pthread.hpp>

namespace model {

constexpr int kMaxThreads = 4;
constexpr int kIdle = 0;
constexpr int kParked = 1;
constexpr int kWaking = 2;
constexpr int kNoKey = 0;

// Deliberate bugs, one per broken variant.
struct Bugs {
  bool relaxed_lock = false;                // Mutex::lock CAS relaxed instead of acquire
  bool clear_bits_outside_lot = false;      // unlock_slow clears LOCKED|PARKED before unparking,
                                            // not inside the callback under the bucket lock
  bool park_without_validate = false;       // Mutex::lock_slow parks without re-checking the state
  bool unlock_before_queueing = false;      // Condvar::wait unlocks the mutex before park()
  bool requeue_without_parked_bit = false;  // notify requeues without setting the mutex's PARKED
  bool wake_under_stale_state = false;      // the woken thread's state kIdle is set before the
                                            // token is written (token published too late)
  bool waiters_relaxed = false;     // INV-W RMWs relaxed instead of acquire (parker) / release
  bool waiters_plain_load = false;  // the lock-free unparker reads the count with a plain load
};

enum class Op { abort, unpark_one_requeue_rest, requeue_all, unpark_one, requeue_one };

struct UnparkResult {
  int unparked = 0;
  int requeued = 0;
  bool have_more = false;
  bool be_fair = false;
};

class Lot {
 public:
  void init(int threads, const Bugs* bugs = nullptr) {
    threads_ = threads;
    bugs_ = bugs;
    waiters_.store(0, rl::mo_relaxed, $);
    for (int i = 0; i < threads; ++i) {
      key_[i]($) = kNoKey;
      seq_[i]($) = 0;
      token_[i]($) = 0;
      state_[i].store(kIdle, rl::mo_relaxed, $);
    }
    next_seq_($) = 1;
  }

  // Returns the unpark token, or -1 when validate failed.
  template <class Validate, class BeforeSleep>
  int park(int me, int key, Validate validate, BeforeSleep before_sleep) {
    bucket_.lock($);
    // INV-W, parker side: acquire RMW before validate.
    waiters_.fetch_add(1, relaxed_waiters() ? rl::mo_relaxed : rl::mo_acquire, $);
    if (!validate()) {
      waiters_.fetch_sub(1, rl::mo_relaxed, $);
      bucket_.unlock($);
      return -1;
    }
    key_[me]($) = key;
    seq_[me]($) = next_seq_($);
    next_seq_($) = next_seq_($) + 1;
    state_[me].store(kParked, rl::mo_relaxed, $);
    bucket_.unlock($);
    before_sleep();
    for (;;) {
      const int v = state_[me].load(rl::mo_acquire, $);  // (P2)
      if (v == kIdle) break;
      rl::rl_futex(&state_[me], rl::RL_FUTEX_WAIT, v, nullptr, nullptr, 0, $);
    }
    return token_[me]($);
  }

  template <class Callback>
  UnparkResult unpark_one(int key, Callback callback, const Bugs& bugs) {
    bucket_.lock($);
    UnparkResult r;
    const int w = first_on(key);
    if (w >= 0) {
      key_[w]($) = kNoKey;
      waiters_.fetch_sub(1, rl::mo_relaxed, $);
      r.unparked = 1;
      r.have_more = first_on(key) >= 0;
      r.be_fair = rl::rand(2) == 1;
    }
    const int token = callback(r);
    if (w >= 0) {
      if (!bugs.wake_under_stale_state) token_[w]($) = token;
      state_[w].store(kWaking, rl::mo_relaxed, $);
    }
    bucket_.unlock($);
    if (w >= 0) {
      state_[w].store(kIdle, rl::mo_release, $);              // (P1)
      if (bugs.wake_under_stale_state) token_[w]($) = token;  // BUG: after the release
      rl::rl_futex(&state_[w], rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
    }
    return r;
  }

  // parking_lot::unpark_one(key) without a callback: the lock-free check of INV-W first.
  UnparkResult unpark_one_fast(int key) {
    int n;
    if (bugs_ != nullptr && bugs_->waiters_plain_load) {
      n = waiters_.load(rl::mo_acquire, $);  // BUG: a load cannot order the earlier store
    } else {
      n = waiters_.fetch_add(0, relaxed_waiters() ? rl::mo_relaxed : rl::mo_release, $);
    }
    if (n == 0) return UnparkResult{};
    Bugs none;
    return unpark_one(
        key, [](const UnparkResult&) { return kTokenNormalLot; }, none);
  }

  template <class Validate, class Callback>
  UnparkResult unpark_requeue(int from, int to, Validate validate, Callback callback) {
    bucket_.lock($);
    UnparkResult r;
    const Op op = validate();
    int w = -1;
    if (op != Op::abort) {
      const bool unpark_first = op == Op::unpark_one || op == Op::unpark_one_requeue_rest;
      const bool requeue_rest = op == Op::unpark_one_requeue_rest || op == Op::requeue_all;
      bool first = true;
      for (;;) {
        const int t = first_on(from);
        if (t < 0) break;
        if (!first && !requeue_rest) {
          r.have_more = true;
          break;
        }
        if (first && unpark_first) {
          key_[t]($) = kNoKey;
          waiters_.fetch_sub(1, rl::mo_relaxed, $);
          w = t;
          r.unparked = 1;
        } else {
          key_[t]($) = to;  // requeue: stays kParked, appended to the destination queue
          seq_[t]($) = next_seq_($);
          next_seq_($) = next_seq_($) + 1;
          ++r.requeued;
        }
        first = false;
      }
      if (w >= 0) r.be_fair = rl::rand(2) == 1;
      const int token = callback(op, r);
      if (w >= 0) {
        token_[w]($) = token;
        state_[w].store(kWaking, rl::mo_relaxed, $);
      }
    }
    bucket_.unlock($);
    if (w >= 0) {
      state_[w].store(kIdle, rl::mo_release, $);  // (P1)
      rl::rl_futex(&state_[w], rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
    }
    return r;
  }

 private:
  // Under the bucket lock: the FIFO head for `key`, or -1.
  int first_on(int key) {
    int best = -1;
    int best_seq = 0;
    for (int i = 0; i < threads_; ++i) {
      if (key_[i]($) == key && (best < 0 || seq_[i]($) < best_seq)) {
        best = i;
        best_seq = seq_[i]($);
      }
    }
    return best;
  }

  bool relaxed_waiters() const { return bugs_ != nullptr && bugs_->waiters_relaxed; }

  static constexpr int kTokenNormalLot = 0;
  int threads_ = 0;
  const Bugs* bugs_ = nullptr;
  rl::atomic<int> waiters_;  // INV-W (the model has a single bucket; requeues keep it constant)
  rl::mutex bucket_;
  rl::var<int> key_[kMaxThreads];
  rl::var<int> seq_[kMaxThreads];
  rl::var<int> token_[kMaxThreads];
  rl::var<int> next_seq_;
  rl::atomic<int> state_[kMaxThreads];
};

constexpr int kLocked = 1;
constexpr int kParkedBit = 2;
constexpr int kTokenNormal = 0;
constexpr int kTokenHandoff = 1;

// parkpool::Mutex (src/mutex.cpp) on the model lot.
class Mutex {
 public:
  void init(Lot* lot, int key, const Bugs* bugs) {
    lot_ = lot;
    key_ = key;
    bugs_ = bugs;
    state_.store(0, rl::mo_relaxed, $);
  }

  void lock(int me) {
    const rl::memory_order acq = bugs_->relaxed_lock ? rl::mo_relaxed : rl::mo_acquire;
    int e = 0;
    if (state_.compare_exchange_strong(e, kLocked, acq, $)) return;  // (M1)
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kLocked) == 0) {
        if (state_.compare_exchange_strong(s, s | kLocked, acq, $)) return;
        continue;
      }
      if ((s & kParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) continue;
      }
      const int token = lot_->park(
          me, key_,
          [this] {
            if (bugs_->park_without_validate) return true;
            return state_.load(rl::mo_relaxed, $) == (kLocked | kParkedBit);
          },
          [] {});
      if (token == kTokenHandoff) return;
      s = state_.load(rl::mo_relaxed, $);
    }
  }

  void unlock() {
    int e = kLocked;
    if (state_.compare_exchange_strong(e, 0, rl::mo_release, $)) return;  // (M2)
    unlock_slow();
  }

  // Condvar support (under the lot's lock).
  bool mark_parked_if_locked() {
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kLocked) == 0) return false;
      if (state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) return true;
    }
  }
  void mark_parked() { state_.fetch_or(kParkedBit, rl::mo_relaxed, $); }
  int key() const { return key_; }

 private:
  void unlock_slow() {
    if (bugs_->clear_bits_outside_lot) {
      // BUG: the state is released before looking at the queue, outside the bucket lock; the
      // wakeup then goes to whoever is queued, but later unlocks no longer see kParkedBit.
      state_.store(0, rl::mo_release, $);
      lot_->unpark_one(
          key_, [](const UnparkResult&) { return kTokenNormal; }, *bugs_);
      return;
    }
    lot_->unpark_one(
        key_,
        [this](const UnparkResult& r) {
          if (r.unparked != 0 && r.be_fair) {
            if (!r.have_more) state_.store(kLocked, rl::mo_relaxed, $);
            return kTokenHandoff;
          }
          state_.store(r.have_more ? kParkedBit : 0, rl::mo_release, $);  // (M3)
          return kTokenNormal;
        },
        *bugs_);
  }

  Lot* lot_ = nullptr;
  const Bugs* bugs_ = nullptr;
  int key_ = 0;
  rl::atomic<int> state_;
};

// parkpool::Condvar (src/condvar.cpp) on the model lot; state_ is 0 or the mutex's key.
class Condvar {
 public:
  void init(Lot* lot, int key, const Bugs* bugs) {
    lot_ = lot;
    key_ = key;
    bugs_ = bugs;
    state_.store(0, rl::mo_relaxed, $);
  }

  void wait(int me, Mutex& m) {
    if (bugs_->unlock_before_queueing) m.unlock();  // BUG: a notify can slip in here
    const int token = lot_->park(
        me, key_,
        [this, &m] {
          const int cur = state_.load(rl::mo_relaxed, $);
          if (cur == 0) state_.store(m.key(), rl::mo_relaxed, $);
          RL_ASSERT(cur == 0 || cur == m.key());
          return true;
        },
        [this, &m] {
          if (!bugs_->unlock_before_queueing) m.unlock();
        });
    if (token != kTokenHandoff) m.lock(me);
  }

  void notify_one(Mutex& m) {
    if (state_.load(rl::mo_relaxed, $) == 0) return;
    lot_->unpark_requeue(
        key_, m.key(),
        [this, &m] {
          if (state_.load(rl::mo_relaxed, $) != m.key()) return Op::abort;
          if (bugs_->requeue_without_parked_bit) return Op::requeue_one;  // BUG
          if (m.mark_parked_if_locked()) return Op::requeue_one;
          return Op::unpark_one;
        },
        [this](Op, const UnparkResult& r) {
          if (!r.have_more) state_.store(0, rl::mo_relaxed, $);
          return kTokenNormal;
        });
  }

  void notify_all(Mutex& m) {
    if (state_.load(rl::mo_relaxed, $) == 0) return;
    lot_->unpark_requeue(
        key_, m.key(),
        [this, &m] {
          if (state_.load(rl::mo_relaxed, $) != m.key()) return Op::abort;
          state_.store(0, rl::mo_relaxed, $);
          if (bugs_->requeue_without_parked_bit) return Op::requeue_all;  // BUG
          if (m.mark_parked_if_locked()) return Op::requeue_all;
          return Op::unpark_one_requeue_rest;
        },
        [&m](Op op, const UnparkResult& r) {
          if (op == Op::unpark_one_requeue_rest && r.requeued != 0) m.mark_parked();
          return kTokenNormal;
        });
  }

 private:
  Lot* lot_ = nullptr;
  const Bugs* bugs_ = nullptr;
  int key_ = 0;
  rl::atomic<int> state_;
};

using parkpool::model::model_main;  // the shared main() (model_main.hpp)

}  // namespace model

// A Relacy model of the parking lot protocol of src/parking_lot.cpp and of the primitives of
// src/mutex.cpp / src/condvar.cpp, shared by parking_lot_, mutex_, condvar_ and
// shared_mutex_model.cpp, each of which passes its Bugs to Lot::init (the lot's own mutations).
//
// What is modelled faithfully:
//  - one bucket (all keys collide, which is a legal case of the real table) with its lock;
//  - per-thread handshake word with the kIdle/kParked/kWaking states, the unpark token written
//    under the bucket lock, kWaking set under the lock, kIdle (release) after the lock;
//  - INV-H: a parked thread sleeps on its home word (FUTEX_WAIT_BITSET with its own bit) after
//    reading that word (acquire) and then its state; an unparker, after the kIdle stores of a run
//    of threads with the same home, increments the home word (release) and does one
//    FUTEX_WAKE_BITSET with the union of their bits. The futex is emulated by Futex below (the
//    kernel's check-and-queue under the hash-bucket lock), because rl_futex has no bitsets and
//    wakes by count. There are two home words, chosen by the key at park time (the mutex's key
//    and the condvar's key get different ones), so a requeued thread keeps a home word that is
//    not its current key's, as in the real table;
//  - INV-B: a thread takes a free bit of its home word at park (under the lock) and the unparker
//    frees it after its wake; with no free bit the thread sleeps on its own state word (an
//    ordinary futex) and is woken by its own wake after its kIdle. A home word has `home_bits`
//    bits (Lot::init; 32 in the real table): variants with one bit per home word put the second
//    sleeper of a home on its own word, so both sleep paths, and wakes mixing them, are explored;
//  - validate under the lock, before_sleep after queueing and unlocking, FIFO by sequence number;
//  - unpark callbacks and requeue validate/callback under the lock, with be_fair chosen
//    nondeterministically (Relacy explores both hand-off and normal unlocks);
//  - Mutex: LOCKED/PARKED bits, fast paths, lock_slow / unlock_slow with the same orderings;
//  - Condvar: state word, wait (validate stores the mutex, before_sleep unlocks), notify_one /
//    notify_all with unpark_requeue onto the mutex and mark_parked(_if_locked), and notify_all
//    with the mutex free waking every waiter at once (unpark_filter with one batched wake).
//  - the bucket's waiter count (INV-W) and the lock-free check of the callback-less
//    unpark_one(key) (parking_lot_model.cpp);
//  - park tokens and unpark_filter (FIFO walk, unpark / skip / stop, one batched wake), on which
//    shared_mutex_model.cpp builds parkpool::SharedMutex.
//  - timeouts: park_timed, whose deadline passes when its futex wait times out (Relacy's timed
//    wait) or, Relacy's choice, at any check of the clock; and the
//    timed-out path of park_slow (leave the queue under the lock unless already dequeued, free
//    the wake bit, timed_out(key, was_last) under the lock); Mutex::try_lock_timed and
//    Condvar::wait_timed on it.
// Not modelled: spinning (SpinWait only delays). Plain data protected by the mutex is an rl::var,
// so Relacy reports a data race when a broken ordering fails to create happens-before.
// Also not modelled, so the mutations of src/parking_lot.cpp there have no broken variant here:
//  - a second bucket: lock_pair, lock_own_bucket's re-check of the key after locking (a requeue
//    may have moved the thread to another bucket), and a requeue moving INV-W's counts from one
//    bucket to another (and its guard on the destination) cannot go wrong with one bucket;
//  - the queue's links: a thread's place is its key and a sequence number, so enqueue / unlink
//    (head, tail, next) have no counterpart;
//  - the bucket lock's futex protocol: bucket_ is Relacy's mutex. (src/parking_lot.cpp's
//    BucketLock runs detail::FutexLockProtocol, which tests/model/futex_lock_model.cpp checks.)
//  - unpark_all_slow's own loop: no primitive calls it (see unpark_all below).
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
  bool relaxed_unlock = false;              // Mutex::unlock fast-path CAS relaxed, not release
  bool clear_bits_outside_lot = false;      // unlock_slow clears LOCKED|PARKED before unparking,
                                            // not inside the callback under the bucket lock
  bool park_without_validate = false;       // Mutex::lock_slow parks without re-checking the state
  bool unlock_before_queueing = false;      // Condvar::wait unlocks the mutex before park()
  bool requeue_without_parked_bit = false;  // notify requeues without setting the mutex's PARKED
  bool wake_under_stale_state = false;      // the woken thread's state kIdle is set before the
                                            // token is written (token published too late)
  bool waiters_relaxed = false;     // INV-W RMWs relaxed instead of acquire (parker) / release
  bool waiters_plain_load = false;  // the lock-free unparker reads the count with a plain load
  bool wake_before_idle = false;    // INV-H: the home word is incremented and woken before the
                                    // kIdle stores instead of after them
  bool wake_key_word = false;       // INV-H: the unparker wakes the home word of the key it
                                    // unparks from, not the thread's own home word (wrong for a
                                    // thread requeued from another key)
  bool seq_load_relaxed = false;    // INV-H: the parked thread reads its home word relaxed (P0)
  bool batch_one_bit = false;       // INV-H: a batched wake names only the last thread's bit,
                                    // not the union of the run's bits
  bool own_word_wake_before_idle = false;  // INV-B: a thread sleeping on its own word is woken
                                           // before its kIdle store instead of after it
  bool timeout_ignores_unpark = false;     // the timed-out path leaves the queue without checking,
                                           // under the lock, that no unparker dequeued it already
  bool timeout_clears_parked_bit = false;  // Mutex's timed_out clears PARKED even when other
                                           // threads are still queued (ignores was_last)
  bool timeout_clears_cv_state = false;    // Condvar's timed_out clears state_ even when other
                                           // waiters are still queued (ignores was_last)
  bool wake_first_home_only = false;   // INV-H: wake_list increments and wakes only the first home
                                       // word of its list; the runs of later home words (threads
                                       // requeued from keys of other homes) get neither
  bool own_word_no_wake = false;       // INV-B: no FUTEX_WAKE of the own word after its kIdle
  bool home_word_no_bump = false;      // INV-H: wake_home wakes without incrementing (P3) first
  bool unpark_all_first_only = false;  // unpark_all stops after the first thread it unparks
  bool filter_drops_second = false;    // unpark_filter dequeues the second thread it selects but
                                       // leaves it out of its wake list: never kWaking nor woken
  bool requeue_keeps_key = false;      // a requeue moves threads to the tail without rekeying them
  bool timeout_stays_queued = false;   // the timed-out path does not unlink its thread (it still
                                       // leaves INV-W's count, frees its bit, sets kIdle)
};

// The kernel side of FUTEX_WAIT_BITSET / FUTEX_WAKE_BITSET, emulated: `lock_` is the futex
// hash-bucket lock, under which the kernel compares the word and queues the waiter, and under
// which a wake scans the queue. The comparison is a relaxed load: the kernel gives the user no
// ordering beyond "a wake that follows a change of the word finds every waiter that compared
// before the change", which the lock provides (the waker changes the word before it locks).
// Words are named by an id: home words 0 .. kHomeWords-1, then one own word per thread.
constexpr int kHomeWords = 2;
constexpr int kAnyBit = -1;  // FUTEX_BITSET_MATCH_ANY: an own-word sleeper or waker

class Futex {
 public:
  void init(int threads) {
    threads_ = threads;
    for (int i = 0; i < threads; ++i) {
      sleeping_on_[i]($) = -1;
      bits_[i]($) = 0;
    }
  }

  // Returns after a wake that names one of `bits`, or at once if the word differs (EAGAIN).
  // With `timed`, the wait may also end without a wake (ETIMEDOUT, when Relacy's scheduler times
  // the wait out): then it returns false.
  bool wait(int me, rl::atomic<int>& word_ref, int word, int expected, int bits,
            bool timed = false) {
    lock_.lock($);
    if (word_ref.load(rl::mo_relaxed, $) != expected) {
      lock_.unlock($);
      return true;
    }
    sleeping_on_[me]($) = word;
    bits_[me]($) = bits;
    while (sleeping_on_[me]($) != -1) {
      if (!timed) {
        cv_.wait(lock_, $);
      } else if (!cv_.wait_for(lock_, 1, $) && sleeping_on_[me]($) != -1) {
        sleeping_on_[me]($) = -1;  // timed out: leave the kernel's queue
        lock_.unlock($);
        return false;
      }
    }
    lock_.unlock($);
    return true;
  }

  void wake(int word, int bits) {
    lock_.lock($);
    bool any = false;
    for (int i = 0; i < threads_; ++i) {
      if (sleeping_on_[i]($) == word && (bits_[i]($) & bits) != 0) {
        sleeping_on_[i]($) = -1;
        any = true;
      }
    }
    lock_.unlock($);
    if (any) cv_.notify_all($);
  }

 private:
  int threads_ = 0;
  rl::mutex lock_;
  rl::condition_variable_any cv_;
  rl::var<int> sleeping_on_[kMaxThreads];  // -1: not sleeping
  rl::var<int> bits_[kMaxThreads];
};

constexpr int kParkTimedOut = -2;  // Lot::park_timed: the deadline passed

enum class Op { abort, unpark_one_requeue_rest, requeue_all, unpark_one, requeue_one };

constexpr int kFilterUnpark = 0;
constexpr int kFilterSkip = 1;
constexpr int kFilterStop = 2;

struct UnparkResult {
  int unparked = 0;
  int requeued = 0;
  bool have_more = false;
  bool be_fair = false;
};

class Lot {
 public:
  // `home_bits`: how many sleepers a home word takes before the next sleeps on its own word.
  void init(int threads, const Bugs* bugs = nullptr, int home_bits = kMaxThreads) {
    threads_ = threads;
    bugs_ = bugs;
    home_bits_ = home_bits;
    waiters_.store(0, rl::mo_relaxed, $);
    for (int i = 0; i < threads; ++i) {
      key_[i]($) = kNoKey;
      seq_[i]($) = 0;
      token_[i]($) = 0;
      park_token_[i]($) = 0;
      home_[i]($) = 0;
      bit_[i]($) = 0;
      state_[i].store(kIdle, rl::mo_relaxed, $);
    }
    for (int w = 0; w < kHomeWords; ++w) {
      home_word_[w].store(0, rl::mo_relaxed, $);
      wake_bits_[w].store(0, rl::mo_relaxed, $);
    }
    next_seq_($) = 1;
    futex_.init(threads);
  }

  // Returns the unpark token, or -1 when validate failed. `park_token` is what unpark_filter's
  // filter sees for this thread.
  template <class Validate, class BeforeSleep>
  int park(int me, int key, Validate validate, BeforeSleep before_sleep, int park_token = 0) {
    return park_impl(
        me, key, validate, before_sleep, [](int, bool) {}, false, park_token);
  }

  // park() with a deadline: the deadline may pass wherever the real wait_idle reads the clock
  // (after each check of the state), chosen by Relacy. Returns the unpark token, -1 when
  // validate failed, or kParkTimedOut. timed_out(key, was_last) runs under the bucket lock after
  // the thread left the queue, as src/parking_lot.cpp's park_slow calls it.
  template <class Validate, class BeforeSleep, class TimedOut>
  int park_timed(int me, int key, Validate validate, BeforeSleep before_sleep, TimedOut timed_out,
                 int park_token = 0) {
    return park_impl(me, key, validate, before_sleep, timed_out, true, park_token);
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
      if (bugs.wake_under_stale_state) {
        const int home = home_[w]($);
        const int bit = bit_[w]($);
        state_[w].store(kIdle, rl::mo_release, $);  // (P1)
        token_[w]($) = token;                       // BUG: after the release
        if (bit == 0) {
          futex_.wake(own_word(w), kAnyBit);
        } else {
          wake_home(home, bit);
        }
      } else {
        const int list[1] = {w};
        wake_list(list, 1, key);
      }
    }
    return r;
  }

  // parking_lot::unpark_filter(key, always unpark, callback): every thread on `key`, woken with
  // one batched wake per home word (src/parking_lot.cpp's wake_list).
  //
  // src/parking_lot.cpp's unpark_all_slow (callback-less, one token, its own loop) is not modelled
  // as such: no primitive calls it; this is the shape of Condvar::notify_all's unpark_filter.
  template <class Callback>
  UnparkResult unpark_all(int key, Callback callback) {
    const bool first_only = bug(&Bugs::unpark_all_first_only);
    bool one = false;
    return unpark_filter(
        key,
        [first_only, &one](int) {
          if (first_only && one) return kFilterStop;  // BUG: the others stay parked, unwoken
          one = true;
          return kFilterUnpark;
        },
        callback);
  }

  // parking_lot::unpark_filter: the threads on `key` in FIFO order; filter(park_token) returns
  // kFilterUnpark, kFilterSkip or kFilterStop; callback(result) -> token for every woken thread;
  // one batched wake (wake_list).
  template <class Filter, class Callback>
  UnparkResult unpark_filter(int key, Filter filter, Callback callback) {
    bucket_.lock($);
    UnparkResult r;
    int list[kMaxThreads];
    int n = 0;
    int after = 0;  // the sequence number of the last thread looked at
    for (int t = next_on(key, after); t >= 0; t = next_on(key, after)) {
      after = seq_[t]($);
      const int op = filter(park_token_[t]($));
      if (op == kFilterStop) {
        r.have_more = true;
        break;
      }
      if (op == kFilterSkip) {
        r.have_more = true;
        continue;
      }
      key_[t]($) = kNoKey;
      waiters_.fetch_sub(1, rl::mo_relaxed, $);
      ++r.unparked;
      if (bug(&Bugs::filter_drops_second) && r.unparked == 2) continue;  // BUG: lost, kParked
      list[n++] = t;
    }
    if (r.unparked != 0) r.be_fair = rl::rand(2) == 1;
    const int token = callback(r);
    for (int i = 0; i < n; ++i) {
      token_[list[i]]($) = token;
      state_[list[i]].store(kWaking, rl::mo_relaxed, $);
    }
    bucket_.unlock($);
    wake_list(list, n, key);
    return r;
  }

  // Threads queued in the bucket now (INV-W's count), for a model's harness only: a holder that
  // keeps its lock until others queued behind it (a long critical section).
  int queued_hint() { return waiters_.load(rl::mo_relaxed, $); }

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
          // Requeue: stays kParked, appended to the destination queue. With the bug it keeps
          // key `from`: src's same-bucket case (moved to the tail of the one queue, still on
          // key_from); the other-bucket case (in `to`'s queue under a key of `from`'s bucket,
          // found by no unpark) needs a second bucket, which the model does not have.
          if (!bug(&Bugs::requeue_keeps_key)) key_[t]($) = to;
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
      const int list[1] = {w};
      wake_list(list, 1, from);
    }
    return r;
  }

 private:
  template <class Validate, class BeforeSleep, class TimedOut>
  int park_impl(int me, int key, Validate validate, BeforeSleep before_sleep, TimedOut timed_out,
                bool timed, int park_token) {
    bucket_.lock($);
    // INV-W, parker side: acquire RMW before validate.
    waiters_.fetch_add(1, relaxed_waiters() ? rl::mo_relaxed : rl::mo_acquire, $);
    if (!validate()) {
      waiters_.fetch_sub(1, rl::mo_relaxed, $);
      bucket_.unlock($);
      return -1;
    }
    key_[me]($) = key;
    park_token_[me]($) = park_token;
    seq_[me]($) = next_seq_($);
    next_seq_($) = next_seq_($) + 1;
    home_[me]($) = home_of(key);           // INV-H, under the lock
    bit_[me]($) = take_bit(home_of(key));  // INV-B, under the lock
    state_[me].store(kParked, rl::mo_relaxed, $);
    bucket_.unlock($);
    before_sleep();
    if (wait_idle(me, timed)) return token_[me]($);
    return leave_on_timeout(me, timed_out);
  }

  // src/parking_lot.cpp's wait_idle: true once the state is kIdle; false when `timed` and the
  // deadline passed (a nondeterministic choice after each check of the state).
  bool wait_idle(int me, bool timed) {
    const int home = home_[me]($);
    const int bit = bit_[me]($);
    const bool relaxed_seq = bugs_ != nullptr && bugs_->seq_load_relaxed;
    // The deadline passes when the futex wait times out, or (Relacy's choice) before a check of
    // the clock; after a timed-out wait the next check sees it passed, as the real loop does.
    bool expired = false;
    if (bit == 0) {  // INV-B: no free bit, sleep on the own word
      for (;;) {
        const int v = state_[me].load(rl::mo_acquire, $);  // (P2)
        if (v == kIdle) return true;
        if (timed && (expired || rl::rand(2) == 1)) return false;
        expired = !futex_.wait(me, state_[me], own_word(me), v, kAnyBit, timed);
      }
    }
    for (;;) {
      const int seq =
          home_word_[home].load(relaxed_seq ? rl::mo_relaxed : rl::mo_acquire, $);  // (P0)
      const int v = state_[me].load(rl::mo_acquire, $);                             // (P2)
      if (v == kIdle) return true;
      if (timed && (expired || rl::rand(2) == 1)) return false;
      expired = !futex_.wait(me, home_word_[home], home, seq, bit, timed);
    }
  }

  // park_slow's timed-out path: under the (own) bucket lock, leave the queue unless an unparker
  // dequeued us first (state no longer kParked: then wait, untimed, for its kIdle and take its
  // token); free our wake bit (INV-B) and call timed_out(key, was_last) under the lock.
  template <class TimedOut>
  int leave_on_timeout(int me, TimedOut timed_out) {
    bucket_.lock($);
    const int s = state_[me].load(rl::mo_relaxed, $);  // stable under the lock
    const bool ignore = bugs_ != nullptr && bugs_->timeout_ignores_unpark;
    if (s != kParked && !ignore) {
      bucket_.unlock($);
      wait_idle(me, false);
      return token_[me]($);
    }
    const int key_now = key_[me]($);  // a requeue may have moved us
    // unlink (the bug leaves the thread queued: a later unpark takes it for a parked one)
    if (!bug(&Bugs::timeout_stays_queued)) key_[me]($) = kNoKey;
    waiters_.fetch_sub(1, rl::mo_relaxed, $);
    state_[me].store(kIdle, rl::mo_relaxed, $);  // we own it again
    const int bit = bit_[me]($);
    if (bit != 0) wake_bits_[home_[me]($)].fetch_and(~bit, rl::mo_relaxed, $);
    const bool was_last = first_on(key_now) < 0;
    timed_out(key_now, was_last);
    bucket_.unlock($);
    return kParkTimedOut;
  }

  static int home_of(int key) { return key % kHomeWords; }
  static int own_word(int thread) { return kHomeWords + thread; }

  // INV-B, under the lock: the lowest free bit of `home`'s word (of home_bits_), or 0.
  int take_bit(int home) {
    const int used = wake_bits_[home].load(rl::mo_relaxed, $);
    for (int i = 0; i < home_bits_; ++i) {
      if ((used & (1 << i)) == 0) {
        wake_bits_[home].fetch_or(1 << i, rl::mo_relaxed, $);
        return 1 << i;
      }
    }
    return 0;
  }

  // (P3) release increment of the home word, then the kernel wake of `bits` on it, then the
  // bits are free again (INV-B).
  void wake_home(int home, int bits) {
    if (!bug(&Bugs::home_word_no_bump)) home_word_[home].fetch_add(1, rl::mo_release, $);
    futex_.wake(home, bits);
    wake_bits_[home].fetch_and(~bits, rl::mo_relaxed, $);
  }

  // src/parking_lot.cpp's wake_list: kIdle for each thread (after reading its home and bit),
  // one increment and one wake per run of threads with the same home word, and a wake of its
  // own word after the kIdle of a thread without a bit (INV-B). `key` is the key the threads
  // were unparked from (used only by the wake_key_word bug).
  void wake_list(const int* list, int n, int key) {
    const bool key_word = bugs_ != nullptr && bugs_->wake_key_word;
    const bool early = bugs_ != nullptr && bugs_->wake_before_idle;
    const bool own_early = bugs_ != nullptr && bugs_->own_word_wake_before_idle;
    const bool own_none = bug(&Bugs::own_word_no_wake);
    // wake_first_home_only: the home-word runs woken so far; a later one is skipped.
    int runs = 0;
    const auto wake_run = [this, &runs](int h, int b) {
      if (bug(&Bugs::wake_first_home_only) && runs > 0) return;  // BUG: no increment, no wake
      ++runs;
      wake_home(h, b);
    };
    int home = -1;
    int bits = 0;
    for (int i = 0; i < n; ++i) {
      const int t = list[i];
      const int h = key_word ? home_of(key) : home_[t]($);  // read before kIdle (INV-S)
      const int bit = bit_[t]($);
      if (bit == 0) {
        if (own_early) futex_.wake(own_word(t), kAnyBit);  // BUG: before the kIdle store
        state_[t].store(kIdle, rl::mo_release, $);         // (P1)
        if (!own_early && !own_none) futex_.wake(own_word(t), kAnyBit);  // BUG if own_none
        continue;
      }
      if (h != home) {
        if (home >= 0 && !early) wake_run(home, bits);
        home = h;
        bits = 0;
      }
      if (bugs_ != nullptr && bugs_->batch_one_bit) bits = 0;  // BUG: forgets the earlier bits
      bits |= bit;
      if (early) wake_home(h, bit);               // BUG: before the kIdle store
      state_[t].store(kIdle, rl::mo_release, $);  // (P1)
    }
    if (home >= 0 && !early) wake_run(home, bits);
  }

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

  // Under the bucket lock: the thread on `key` with the smallest sequence number above `after`.
  int next_on(int key, int after) {
    int best = -1;
    int best_seq = 0;
    for (int i = 0; i < threads_; ++i) {
      const int sq = seq_[i]($);
      if (key_[i]($) == key && sq > after && (best < 0 || sq < best_seq)) {
        best = i;
        best_seq = sq;
      }
    }
    return best;
  }

  bool relaxed_waiters() const { return bugs_ != nullptr && bugs_->waiters_relaxed; }
  bool bug(bool Bugs::*flag) const { return bugs_ != nullptr && bugs_->*flag; }

  static constexpr int kTokenNormalLot = 0;
  int threads_ = 0;
  int home_bits_ = kMaxThreads;
  const Bugs* bugs_ = nullptr;
  rl::atomic<int> waiters_;  // INV-W (the model has a single bucket; requeues keep it constant)
  rl::mutex bucket_;
  rl::var<int> key_[kMaxThreads];
  rl::var<int> seq_[kMaxThreads];
  rl::var<int> token_[kMaxThreads];
  rl::var<int> park_token_[kMaxThreads];  // what unpark_filter's filter sees
  rl::var<int> next_seq_;
  rl::atomic<int> state_[kMaxThreads];
  rl::var<int> home_[kMaxThreads];  // INV-H: the home word index, set at park under the lock
  rl::atomic<int> home_word_[kHomeWords];
  rl::var<int> bit_[kMaxThreads];          // INV-B: the thread's bit, or 0 (own word)
  rl::atomic<int> wake_bits_[kHomeWords];  // INV-B: bits taken, set under the lock
  Futex futex_;
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

  void lock(int me) { lock_impl(me, false); }

  // try_lock_until: false when the deadline passed (Lot::park_timed chooses when). The
  // timed_out callback clears PARKED when the leaving thread was the last one queued (INV-M1).
  bool try_lock_timed(int me) { return lock_impl(me, true); }

  void unlock() {
    int e = kLocked;
    const rl::memory_order rel = bugs_->relaxed_unlock ? rl::mo_relaxed : rl::mo_release;
    if (state_.compare_exchange_strong(e, 0, rel, $)) return;  // (M2)
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
  bool lock_impl(int me, bool timed) {
    const rl::memory_order acq = bugs_->relaxed_lock ? rl::mo_relaxed : rl::mo_acquire;
    int e = 0;
    if (state_.compare_exchange_strong(e, kLocked, acq, $)) return true;  // (M1)
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kLocked) == 0) {
        if (state_.compare_exchange_strong(s, s | kLocked, acq, $)) return true;
        continue;
      }
      if ((s & kParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) continue;
      }
      auto validate = [this] {
        if (bugs_->park_without_validate) return true;
        return state_.load(rl::mo_relaxed, $) == (kLocked | kParkedBit);
      };
      int token;
      if (timed) {
        token = lot_->park_timed(
            me, key_, validate, [] {},
            [this](int, bool was_last) {
              if (was_last || bugs_->timeout_clears_parked_bit) {  // BUG variant: ignores was_last
                state_.fetch_and(~kParkedBit, rl::mo_relaxed, $);
              }
            });
        if (token == kParkTimedOut) return false;
      } else {
        token = lot_->park(me, key_, validate, [] {});
      }
      if (token == kTokenHandoff) return true;
      s = state_.load(rl::mo_relaxed, $);
    }
  }

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
        me, key_, [this, &m] { return register_waiter(m); },
        [this, &m] {
          if (!bugs_->unlock_before_queueing) m.unlock();
        });
    if (token != kTokenHandoff) m.lock(me);
  }

  // wait_until: true when it timed out (the deadline passed while still on the Condvar's own
  // queue); a waiter requeued onto the mutex was selected by a notify: not a timeout, as in
  // src/condvar.cpp. The mutex is held again on return either way.
  bool wait_timed(int me, Mutex& m) {
    bool requeued = false;
    const int token = lot_->park_timed(
        me, key_, [this, &m] { return register_waiter(m); }, [&m] { m.unlock(); },
        [this, &requeued](int key, bool was_last) {
          requeued = key != key_;
          // INV-C1: the last waiter leaving the Condvar's queue clears state_.
          if (!requeued && (was_last || bugs_->timeout_clears_cv_state)) {  // BUG variant
            state_.store(0, rl::mo_relaxed, $);
          }
        });
    if (token != kTokenHandoff) m.lock(me);
    return token == kParkTimedOut && !requeued;
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

  // As src/condvar.cpp: the mutex is looked at only under the lock, after state_ shows that a
  // waiter still uses it; locked -> requeue all onto it; free -> abort, then wake every waiter
  // with one batched wake (the real filter re-checks state_ == mutex; with one mutex in the
  // model, state_ is then either that mutex or 0 with an empty queue).
  void notify_all(Mutex& m) {
    if (state_.load(rl::mo_relaxed, $) == 0) return;
    bool mutex_free = false;
    lot_->unpark_requeue(
        key_, m.key(),
        [this, &m, &mutex_free] {
          if (state_.load(rl::mo_relaxed, $) != m.key()) return Op::abort;
          if (bugs_->requeue_without_parked_bit || m.mark_parked_if_locked()) {  // BUG: no bit
            state_.store(0, rl::mo_relaxed, $);
            return Op::requeue_all;
          }
          mutex_free = true;
          return Op::abort;
        },
        [](Op, const UnparkResult&) { return kTokenNormal; });
    if (!mutex_free) return;
    lot_->unpark_all(key_, [this](const UnparkResult&) {
      state_.store(0, rl::mo_relaxed, $);
      return kTokenNormal;
    });
  }

 private:
  // wait's validate, under the lot's lock: records the waiters' mutex in state_ (INV-C1).
  bool register_waiter(Mutex& m) {
    const int cur = state_.load(rl::mo_relaxed, $);
    if (cur == 0) state_.store(m.key(), rl::mo_relaxed, $);
    RL_ASSERT(cur == 0 || cur == m.key());
    return true;
  }

  Lot* lot_ = nullptr;
  const Bugs* bugs_ = nullptr;
  int key_ = 0;
  rl::atomic<int> state_;
};

using parkpool::model::model_main;  // the shared main() (model_main.hpp)

}  // namespace model

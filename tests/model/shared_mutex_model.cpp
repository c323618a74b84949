// Relacy model of parkpool::SharedMutex (src/shared_mutex.cpp, state table in
// <parkpool/shared_mutex.hpp>) on the model parking lot: the writer bit claimed while readers
// drain (key `this + 1`, kWriterParkedBit), the queue on `this` (kParkedBit), and whom an exclusive
// unlock wakes (HeadBatch: a head writer alone, else every queued reader and the first queued
// writer), with normal and fair (hand-off) unlocks both explored (the lot picks be_fair at
// random). Writers increment a plain counter and readers read it (rl::var: Relacy reports a data
// race if a reader and a writer, or two writers, overlap); a lost wakeup shows as a Relacy
// deadlock. Timeouts (the lot's park_timed: the deadline may pass wherever the parking lot reads
// the clock) are modelled for lock and lock_shared with a deadline, including the abandoned claim
// of a writer whose deadline passes while it drains readers. Not modelled: spinning, as in
// parking_lot_model.hpp.
//
// Suites: `writer_reader_writer` (threads: writer, reader, writer) is the shape of the lost
// writer: a writer holds the lock, a reader queues, a second writer queues behind it.
// `two_readers` (writer, reader, reader) drives the drain of several readers and the hand-off
// of a batch of readers. `timed_writer` (timed writer, reader, writer) and `timed_reader`
// (writer, timed reader, writer) give one thread a deadline; it tries twice (once in the *_once
// suite: a writer that retries would itself wake, on its next unlock, the threads a broken
// abandoned claim left asleep), and every thread without one must still get in.
//
// The lot runs with g_lot_bugs, so its own mutations reach these suites: filter_drops_second
// and batch_one_bit in two_readers (an unlock wakes both queued readers through unpark_filter,
// as src/shared_mutex.cpp's unlock_slow does: one is left asleep); home_word_no_bump,
// wake_before_idle and seq_load_relaxed in writer_reader_writer, own_word_no_wake and
// own_word_wake_before_idle in writer_reader_writer_own_word (a lost wake: a Relacy deadlock);
// timeout_stays_queued and timeout_ignores_unpark in timed_reader (an unlock takes the reader
// that timed out for a queued one, and its wake races with that reader's next park: a Relacy
// data race). Each is found within the first 40 schedules. The others cannot happen here: no
// requeue, no unpark_all, no lock-free unpark_one, and each wake list holds threads of one key
// (wake_first_home_only, wake_key_word, unpark_all_first_only, requeue_keeps_key,
// waiters_relaxed and waiters_plain_load each pass, 2026-12-07).
//
// clang-format off
// PARKPOOL_MODEL_CORRECT: writer_reader_writer two_readers writer_reader_writer_own_word timed_writer timed_reader timed_writer_two_readers timed_writer_two_readers_once
// PARKPOOL_MODEL_BROKEN: head_batch_stops_at_writer handoff_writer_skips_drain unlock_shared_relaxed last_reader_test_unmasked abandon_without_wake timeout_ignores_was_last filter_drops_second batch_one_bit home_word_no_bump wake_before_idle seq_load_relaxed own_word_no_wake own_word_wake_before_idle timeout_stays_queued timeout_ignores_unpark
// clang-format on
#include <cstdio>
#include <string>

#include "parking_lot_model.hpp"

#include "model_params.hpp"

namespace {

using model::kFilterSkip;
using model::kFilterStop;
using model::kFilterUnpark;
using model::kTokenHandoff;
using model::kTokenNormal;
using model::UnparkResult;

// Deliberate bugs, one per broken variant.
struct SharedBugs {
  // HeadBatch as before 2026-12-06: the run of readers at the head only, stopping at the first
  // writer; the readers' unlock_shared never wakes key `this`, so that writer sleeps forever.
  bool head_batch_stops_at_writer = false;
  // A writer that receives a hand-off together with readers takes the lock without waiting for
  // them to leave.
  bool handoff_writer_skips_drain = false;
  // unlock_shared's decrement relaxed instead of release (S4): the drained writer's acquire load
  // (S5) no longer orders the readers' reads before its writes.
  bool unlock_shared_relaxed = false;
  // The last reader tests the state it left without masking the writer and parked bits, which are
  // always set while a writer drains: it never recognises itself as the last one, and the
  // draining writer is never woken (INV-R2).
  bool last_reader_test_unmasked = false;
  // A writer whose deadline passes while it drains readers drops its claim without waking the
  // threads that queued behind it (they wait for an unlock that never comes).
  bool abandon_without_wake = false;
  // A thread timing out of the queue on `this` clears kParkedBit even when others are still
  // queued (ignores was_last): the next unlock takes the fast path and wakes nobody.
  bool timeout_ignores_was_last = false;
};

SharedBugs g_bugs;
model::Bugs g_lot_bugs;  // the lot's own mutations (parking_lot_model.hpp); none by default
int g_home_bits = model::kMaxThreads;

constexpr int kWriterBit = 1;
constexpr int kParkedBit = 2;
constexpr int kWriterParkedBit = 4;
constexpr int kOneReader = 8;
constexpr int kReaderToken = 1;
constexpr int kWriterToken = 2;

class SharedMutex {
 public:
  // Keys: `key` stands for `this`, `key + 1` for readers_key().
  void init(model::Lot* lot, int key) {
    lot_ = lot;
    key_ = key;
    state_.store(0, rl::mo_relaxed, $);
  }

  void lock(int me) { lock_impl(me, false); }
  // try_lock_until: false when the deadline passed (queued, or while draining readers).
  bool try_lock_timed(int me) { return lock_impl(me, true); }

  void unlock() {
    int e = kWriterBit;
    if (state_.compare_exchange_strong(e, 0, rl::mo_release, $)) return;  // (S2)
    unlock_slow();
  }

  void lock_shared(int me) { lock_shared_impl(me, false); }
  bool try_lock_shared_timed(int me) { return lock_shared_impl(me, true); }

  void unlock_shared() {
    // (S4) release: pairs with the draining writer's (S5).
    const int prev = state_.fetch_sub(
        kOneReader, g_bugs.unlock_shared_relaxed ? rl::mo_relaxed : rl::mo_release, $);
    const int mask = g_bugs.last_reader_test_unmasked ? ~0 : ~(kParkedBit | kWriterBit);
    if ((prev & mask) == (kOneReader | kWriterParkedBit)) {
      unpark_drainer();
    }
  }

 private:
  // Parks on `key` (validate as given); with `timed`, the deadline may pass: then timed_out
  // clears kParkedBit if this was the last thread on `key_` (INV-R1), and kParkTimedOut returns.
  template <class Validate>
  int park_queue(int me, Validate validate, int park_token, bool timed) {
    if (!timed)
      return lot_->park(
          me, key_, validate, [] {}, park_token);
    return lot_->park_timed(
        me, key_, validate, [] {},
        [this](int, bool was_last) {
          if (was_last || g_bugs.timeout_ignores_was_last) {  // BUG variant: ignores was_last
            state_.fetch_and(~kParkedBit, rl::mo_relaxed, $);
          }
        },
        park_token);
  }

  bool queued_validate() {
    const int st = state_.load(rl::mo_relaxed, $);
    return (st & (kWriterBit | kParkedBit)) == (kWriterBit | kParkedBit);
  }

  bool lock_impl(int me, bool timed) {
    int e = 0;
    if (state_.compare_exchange_strong(e, kWriterBit, rl::mo_acquire, $)) return true;  // (S1)
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kWriterBit) == 0) {
        // Claim the writer bit even with readers inside, then drain them. (S1'')
        if (state_.compare_exchange_strong(s, s | kWriterBit, rl::mo_acquire, $)) {
          return s < kOneReader || wait_for_readers(me, timed);
        }
        continue;
      }
      if ((s & kParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) continue;
      }
      const int token = park_queue(
          me, [this] { return queued_validate(); }, kWriterToken, timed);
      if (token == kTokenHandoff) {
        // The writer bit is ours; readers handed off with us may be inside.
        if (g_bugs.handoff_writer_skips_drain) return true;
        return wait_for_readers(me, timed);
      }
      if (token == model::kParkTimedOut) return false;
      s = state_.load(rl::mo_relaxed, $);
    }
  }

  bool lock_shared_impl(int me, bool timed) {
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kWriterBit) == 0) {
        if (state_.compare_exchange_strong(s, s + kOneReader, rl::mo_acquire, $)) {  // (S3)
          return true;
        }
        continue;
      }
      if ((s & kParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) continue;
      }
      const int token = park_queue(
          me, [this] { return queued_validate(); }, kReaderToken, timed);
      if (token == kTokenHandoff) return true;  // our count was added for us
      if (token == model::kParkTimedOut) return false;
      s = state_.load(rl::mo_relaxed, $);
    }
  }

  // False when the deadline passed: the claim is abandoned (src/shared_mutex.cpp).
  bool wait_for_readers(int me, bool timed) {
    int s = state_.load(rl::mo_acquire, $);  // (S5)
    for (;;) {
      if (s < kOneReader) return true;
      if ((s & kWriterParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kWriterParkedBit, rl::mo_acquire, $)) continue;
      }
      auto validate = [this] {
        const int st = state_.load(rl::mo_relaxed, $);
        return st >= kOneReader && (st & kWriterParkedBit) != 0;  // INV-R3
      };
      if (!timed) {
        lot_->park(
            me, key_ + 1, validate, [] {}, kWriterToken);
      } else if (lot_->park_timed(
                     me, key_ + 1, validate, [] {}, [](int, bool) {}, kWriterToken) ==
                 model::kParkTimedOut) {
        // Abandon the claim: readers may enter again; wake whoever queued behind it.
        const int prev = state_.fetch_and(~(kWriterBit | kWriterParkedBit), rl::mo_relaxed, $);
        if ((prev & kParkedBit) != 0 && !g_bugs.abandon_without_wake) {
          wake_after_abandoned_claim();
        }
        return false;
      }
      s = state_.load(rl::mo_acquire, $);  // (S5)
    }
  }

  // Readers may be inside: no hand-off; HeadBatch woken normally, kParkedBit kept while others
  // remain queued (INV-R1).
  void wake_after_abandoned_claim() {
    int readers = 0;
    bool writer = false;
    lot_->unpark_filter(
        key_, [&readers, &writer](int token) { return head_batch(token, readers, writer); },
        [this](const UnparkResult& r) {
          if (!r.have_more) state_.fetch_and(~kParkedBit, rl::mo_relaxed, $);
          return kTokenNormal;
        });
  }

  // HeadBatch: a head writer alone, else every queued reader and the first queued writer.
  static int head_batch(int token, int& readers, bool& writer) {
    if (token == kWriterToken) {
      if (writer) return kFilterSkip;
      writer = true;
      return kFilterUnpark;
    }
    if (writer && readers == 0) return kFilterStop;  // a head writer goes alone
    ++readers;
    return kFilterUnpark;
  }

  // unlock_shared_slow: the last reader wakes the draining writer; kWriterParkedBit is cleared
  // under the bucket lock (INV-R2).
  void unpark_drainer() {
    lot_->unpark_one(
        key_ + 1,
        [this](const UnparkResult&) {
          state_.fetch_and(~kWriterParkedBit, rl::mo_relaxed, $);
          return kTokenNormal;
        },
        g_lot_bugs);
  }

  void unlock_slow() {
    int readers = 0;
    bool writer = false;
    lot_->unpark_filter(
        key_,
        [&readers, &writer](int token) {
          if (g_bugs.head_batch_stops_at_writer) {
            if (writer) return kFilterStop;
            if (token == kWriterToken) {
              if (readers != 0) return kFilterStop;
              writer = true;
              return kFilterUnpark;
            }
            ++readers;
            return kFilterUnpark;
          }
          return head_batch(token, readers, writer);
        },
        [this, &readers, &writer](const UnparkResult& r) {
          const int parked = r.have_more ? kParkedBit : 0;
          if (r.unparked != 0 && r.be_fair) {
            const int owners = (writer ? kWriterBit : 0) + readers * kOneReader;
            state_.store(owners | parked, rl::mo_release, $);  // (S2')
            return kTokenHandoff;
          }
          state_.store(parked, rl::mo_release, $);
          return kTokenNormal;
        });
  }

  model::Lot* lot_ = nullptr;
  int key_ = 0;
  rl::atomic<int> state_;
};

// Thread 0 and thread 2 (or only thread 0 in two_readers) write; the others read.
bool g_two_readers = false;
int g_timed_thread = -1;   // the thread that locks with a deadline, or none
int g_timed_attempts = 2;  // how often it tries

struct SharedMutexTest : rl::test_suite<SharedMutexTest, 3> {
  model::Lot lot;
  SharedMutex m;
  rl::var<int> counter;
  rl::atomic<int> writes;

  void before() {
    lot.init(3, &g_lot_bugs, g_home_bits);
    m.init(&lot, 1);
    counter($) = 0;
    writes.store(0, rl::mo_relaxed, $);
  }
  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    const bool writer = index == 0 || (index == 2 && !g_two_readers);
    const bool timed = static_cast<int>(index) == g_timed_thread;
    for (int attempt = 0; attempt < (timed ? g_timed_attempts : 1); ++attempt) {
      if (writer) {
        if (timed) {
          if (!m.try_lock_timed(me)) continue;
        } else {
          m.lock(me);
        }
        counter($) = counter($) + 1;
        writes.fetch_add(1, rl::mo_relaxed, $);
        // With a deadline in play, the first writer in holds the lock until both others are
        // queued (bounded): a long critical section, during which a deadline passes. Otherwise
        // random schedules almost never queue two threads behind a holder that is a few steps
        // from its unlock.
        if (g_timed_thread >= 0 && writes.load(rl::mo_relaxed, $) == 1) {
          for (int i = 0; i < 40 && lot.queued_hint() < 2; ++i) rl::yield(1, $);
        }
        m.unlock();
      } else {
        if (timed) {
          if (!m.try_lock_shared_timed(me)) continue;
        } else {
          m.lock_shared(me);
        }
        const int seen = counter($);
        RL_ASSERT(seen >= 0 && seen <= 3);
        m.unlock_shared();
      }
      break;  // one successful entry per thread
    }
  }
  // Every thread without a deadline got in (a lost wakeup is a Relacy deadlock), and the
  // counter counts exactly the writers that got in.
  void after() {
    const int w = writes.load(rl::mo_relaxed, $);
    RL_ASSERT(counter($) == w);
    if (g_timed_thread < 0) RL_ASSERT(w == (g_two_readers ? 1 : 2));
  }
};

bool run_model(const std::string& variant, int& known) {
  g_bugs = SharedBugs{};
  g_lot_bugs = model::Bugs{};
  g_home_bits = model::kMaxThreads;
  g_two_readers = false;
  g_timed_thread = -1;
  g_timed_attempts = 2;
  known = 1;
  if (variant == "writer_reader_writer") {
  } else if (variant == "two_readers") {
    g_two_readers = true;
  } else if (variant == "writer_reader_writer_own_word") {
    g_home_bits = 1;
  } else if (variant == "timed_writer") {
    g_timed_thread = 0;
  } else if (variant == "timed_reader") {
    g_timed_thread = 1;
  } else if (variant == "timed_writer_two_readers") {
    g_timed_thread = 0;
    g_two_readers = true;
  } else if (variant == "timed_writer_two_readers_once") {
    g_timed_thread = 0;
    g_two_readers = true;
    g_timed_attempts = 1;
  } else if (variant == "abandon_without_wake") {
    g_timed_thread = 0;
    g_timed_attempts = 1;
    g_two_readers = true;
    g_bugs.abandon_without_wake = true;
  } else if (variant == "timeout_ignores_was_last") {
    g_timed_thread = 1;
    g_bugs.timeout_ignores_was_last = true;
  } else if (variant == "filter_drops_second") {
    g_two_readers = true;
    g_lot_bugs.filter_drops_second = true;
  } else if (variant == "batch_one_bit") {
    g_two_readers = true;
    g_lot_bugs.batch_one_bit = true;
  } else if (variant == "home_word_no_bump") {
    g_lot_bugs.home_word_no_bump = true;
  } else if (variant == "own_word_no_wake") {
    g_home_bits = 1;
    g_lot_bugs.own_word_no_wake = true;
  } else if (variant == "own_word_wake_before_idle") {
    g_home_bits = 1;
    g_lot_bugs.own_word_wake_before_idle = true;
  } else if (variant == "wake_before_idle") {
    g_lot_bugs.wake_before_idle = true;
  } else if (variant == "seq_load_relaxed") {
    g_lot_bugs.seq_load_relaxed = true;
  } else if (variant == "timeout_stays_queued") {
    g_timed_thread = 1;
    g_lot_bugs.timeout_stays_queued = true;
  } else if (variant == "timeout_ignores_unpark") {
    g_timed_thread = 1;
    g_lot_bugs.timeout_ignores_unpark = true;
  } else if (variant == "head_batch_stops_at_writer") {
    g_bugs.head_batch_stops_at_writer = true;
  } else if (variant == "handoff_writer_skips_drain") {
    g_bugs.handoff_writer_skips_drain = true;
  } else if (variant == "unlock_shared_relaxed") {
    g_bugs.unlock_shared_relaxed = true;
  } else if (variant == "last_reader_test_unmasked") {
    g_bugs.last_reader_test_unmasked = true;
  } else {
    known = 0;
    return false;
  }
  rl::test_params p = parkpool::model::random_params();
  return rl::simulate<SharedMutexTest>(p);
}

}  // namespace

int main(int argc, char** argv) { return model::model_main(argc, argv, run_model); }

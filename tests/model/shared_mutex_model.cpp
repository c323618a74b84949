// Relacy model of parkpool::SharedMutex (src/shared_mutex.cpp, state table in
// <parkpool/shared_mutex.hpp>) on the model parking lot: the writer bit claimed while readers
// drain (key `this + 1`, kWriterParkedBit), the queue on `this` (kParkedBit), and whom an exclusive
// unlock wakes (HeadBatch: a head writer alone, else every queued reader and the first queued
// writer), with normal and fair (hand-off) unlocks both explored (the lot picks be_fair at
// random). Writers increment a plain counter and readers read it (rl::var: Relacy reports a data
// race if a reader and a writer, or two writers, overlap); a lost wakeup shows as a Relacy
// deadlock. Not modelled: timeouts (the abandoned claim) and spinning, as in parking_lot_model.hpp.
//
// Suites: `writer_reader_writer` (threads: writer, reader, writer) is the shape of the lost
// writer: a writer holds the lock, a reader queues, a second writer queues behind it.
// `two_readers` (writer, reader, reader) drives the drain of several readers and the hand-off
// of a batch of readers.
//
// clang-format off
// PARKPOOL_MODEL_CORRECT: writer_reader_writer two_readers writer_reader_writer_own_word
// PARKPOOL_MODEL_BROKEN: head_batch_stops_at_writer handoff_writer_skips_drain unlock_shared_relaxed last_reader_test_unmasked
// clang-format on
#include <cstdio>
#include <string>

#include "parking_lot_model.hpp"

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
};

SharedBugs g_bugs;
model::Bugs g_lot_bugs;  // none: the lot is the correct one
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

  void lock(int me) {
    int e = 0;
    if (state_.compare_exchange_strong(e, kWriterBit, rl::mo_acquire, $)) return;  // (S1)
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kWriterBit) == 0) {
        // Claim the writer bit even with readers inside, then drain them. (S1'')
        if (state_.compare_exchange_strong(s, s | kWriterBit, rl::mo_acquire, $)) {
          if (s >= kOneReader) wait_for_readers(me);
          return;
        }
        continue;
      }
      if ((s & kParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) continue;
      }
      const int token = lot_->park(
          me, key_,
          [this] {
            const int st = state_.load(rl::mo_relaxed, $);
            return (st & (kWriterBit | kParkedBit)) == (kWriterBit | kParkedBit);
          },
          [] {}, kWriterToken);
      if (token == kTokenHandoff) {
        // The writer bit is ours; readers handed off with us may be inside.
        if (!g_bugs.handoff_writer_skips_drain) wait_for_readers(me);
        return;
      }
      s = state_.load(rl::mo_relaxed, $);
    }
  }

  void unlock() {
    int e = kWriterBit;
    if (state_.compare_exchange_strong(e, 0, rl::mo_release, $)) return;  // (S2)
    unlock_slow();
  }

  void lock_shared(int me) {
    int s = state_.load(rl::mo_relaxed, $);
    for (;;) {
      if ((s & kWriterBit) == 0) {
        if (state_.compare_exchange_strong(s, s + kOneReader, rl::mo_acquire, $)) return;  // (S3)
        continue;
      }
      if ((s & kParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kParkedBit, rl::mo_relaxed, $)) continue;
      }
      const int token = lot_->park(
          me, key_,
          [this] {
            const int st = state_.load(rl::mo_relaxed, $);
            return (st & (kWriterBit | kParkedBit)) == (kWriterBit | kParkedBit);
          },
          [] {}, kReaderToken);
      if (token == kTokenHandoff) return;  // our count was added for us
      s = state_.load(rl::mo_relaxed, $);
    }
  }

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
  void wait_for_readers(int me) {
    int s = state_.load(rl::mo_acquire, $);  // (S5)
    for (;;) {
      if (s < kOneReader) return;
      if ((s & kWriterParkedBit) == 0) {
        if (!state_.compare_exchange_strong(s, s | kWriterParkedBit, rl::mo_acquire, $)) continue;
      }
      lot_->park(
          me, key_ + 1,
          [this] {
            const int st = state_.load(rl::mo_relaxed, $);
            return st >= kOneReader && (st & kWriterParkedBit) != 0;  // INV-R3
          },
          [] {}, kWriterToken);
      s = state_.load(rl::mo_acquire, $);  // (S5)
    }
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
          if (token == kWriterToken) {
            if (writer) return kFilterSkip;
            writer = true;
            return kFilterUnpark;
          }
          if (writer && readers == 0) return kFilterStop;  // a head writer goes alone
          ++readers;
          return kFilterUnpark;
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

struct SharedMutexTest : rl::test_suite<SharedMutexTest, 3> {
  model::Lot lot;
  SharedMutex m;
  rl::var<int> counter;

  void before() {
    lot.init(3, nullptr, g_home_bits);
    m.init(&lot, 1);
    counter($) = 0;
  }
  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    const bool writer = index == 0 || (index == 2 && !g_two_readers);
    if (writer) {
      m.lock(me);
      counter($) = counter($) + 1;
      m.unlock();
    } else {
      m.lock_shared(me);
      const int seen = counter($);
      RL_ASSERT(seen >= 0 && seen <= 2);
      m.unlock_shared();
    }
  }
  void after() { RL_ASSERT(counter($) == (g_two_readers ? 1 : 2)); }
};

bool run_model(const std::string& variant, int& known) {
  g_bugs = SharedBugs{};
  g_home_bits = model::kMaxThreads;
  g_two_readers = false;
  known = 1;
  if (variant == "writer_reader_writer") {
  } else if (variant == "two_readers") {
    g_two_readers = true;
  } else if (variant == "writer_reader_writer_own_word") {
    g_home_bits = 1;
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
  rl::test_params p;
  p.search_type = rl::random_scheduler_type;
  p.iteration_count = 200000;
  p.execution_depth_limit = 4000;
  return rl::simulate<SharedMutexTest>(p);
}

}  // namespace

int main(int argc, char** argv) { return model::model_main(argc, argv, run_model); }

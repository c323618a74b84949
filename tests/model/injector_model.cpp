// Relacy model of the pool's injector (pool/include/parkpool/detail/injector.hpp): a two-lock
// queue over chunks, the tail_ release/acquire that publishes items, the spare-chunk hand-over,
// INV-C (a consumer leaves a chunk only when an item beyond it is published), and close() as the
// pool's external-submit gate (INV-G1).
//
// The model mirrors the header (with its seen_ cache of tail_) with one item per chunk, so that
// every push after the first starts a chunk and every pop after the first leaves one. Items and
// chunk links are rl::var: Relacy reports a data race when an ordering is missing. A chunk that the
// queue deletes is marked dead, and every access to a chunk asserts that it is alive. The locks are
// Relacy mutexes: the model checks the queue's protocol given mutual exclusion (parkpool::Mutex has
// its own model, mutex_model.cpp).
//
// Variants (argv[1]):
//   fifo      one producer pushes 1, 2, 3; two consumers pop; every item is taken once, and each
//             consumer sees its items in order
//   gate      a producer pushes until push() refuses; another thread closes and then, alone,
//             pops: it must find exactly the accepted items (INV-G1)
//   b_tail    fifo with tail_ stored relaxed: a consumer may read an item before it is written
//   b_spare   fifo with the producer taking the spare chunk relaxed: its writes race with the
//             consumer's last reads of that chunk
//   b_inv_c   fifo with a consumer recycling its chunk as soon as it read the chunk's last item,
//             before an item beyond it is published (INV-C broken): the producer may take the
//             chunk it is still writing
//   b_gate    gate with close() setting the flag without the tail lock
// Usage: injector_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: fifo gate
// PARKPOOL_MODEL_BROKEN: b_tail b_spare b_inv_c b_gate
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include "model_params.hpp"

#include <cstdio>
#include <string>

namespace {

struct Config {
  rl::memory_order tail_store = rl::mo_release;
  rl::memory_order spare_take = rl::mo_acquire;
  bool recycle_at_chunk_end = false;  // b_inv_c
  bool close_without_lock = false;    // b_gate
};
Config g_cfg;

constexpr int kMaxChunks = 8;

struct Chunk {
  rl::var<Chunk*> next;
  rl::var<int> item;  // one item per chunk
  rl::var<int> alive;
};

struct Queue {
  rl::mutex tail_mutex;
  rl::var<Chunk*> tail_chunk;
  rl::var<int> tail_index;  // 0 or 1 (kPerChunk == 1)
  rl::var<unsigned> pushed;
  rl::var<int> closed;
  rl::var<int> allocated;  // chunks taken from `pool` (never reused once deleted)
  rl::atomic<unsigned> tail;
  rl::mutex head_mutex;
  rl::var<Chunk*> head_chunk;
  rl::var<int> head_index;
  rl::atomic<unsigned> head;
  rl::atomic<unsigned> seen;  // consumers' copy of tail (written under head_mutex)
  rl::atomic<Chunk*> spare;
  Chunk pool[kMaxChunks];

  void init() {
    for (Chunk& c : pool) {
      c.next($) = nullptr;
      c.item($) = 0;
      c.alive($) = 0;
    }
    pool[0].alive($) = 1;
    allocated($) = 1;
    tail_chunk($) = &pool[0];
    head_chunk($) = &pool[0];
    tail_index($) = 0;
    head_index($) = 0;
    pushed($) = 0;
    closed($) = 0;
    tail.store(0, rl::mo_relaxed, $);
    head.store(0, rl::mo_relaxed, $);
    seen.store(0, rl::mo_relaxed, $);
    spare.store(nullptr, rl::mo_relaxed, $);
  }

  Chunk* take_spare() {
    if (spare.load(rl::mo_relaxed, $) == nullptr) return nullptr;
    return spare.exchange(nullptr, g_cfg.spare_take, $);
  }
  void recycle(Chunk* c) {
    Chunk* old = spare.exchange(c, rl::mo_acq_rel, $);
    if (old != nullptr) {
      RL_ASSERT(old->alive($) == 1);
      old->alive($) = 0;  // delete
    }
  }

  // Returns the 1-based position, or 0 when closed.
  unsigned push(int v) {
    tail_mutex.lock($);
    if (closed($) != 0) {
      tail_mutex.unlock($);
      return 0;
    }
    if (tail_index($) == 1) {
      Chunk* c = take_spare();
      if (c == nullptr) {
        const int n = allocated($);
        RL_ASSERT(n < kMaxChunks);
        c = &pool[n];
        allocated($) = n + 1;
        c->alive($) = 1;
      }
      RL_ASSERT(c->alive($) == 1);
      c->next($) = nullptr;
      Chunk* t = tail_chunk($);
      RL_ASSERT(t->alive($) == 1);
      t->next($) = c;
      tail_chunk($) = c;
      tail_index($) = 0;
    }
    Chunk* t = tail_chunk($);
    RL_ASSERT(t->alive($) == 1);
    t->item($) = v;
    tail_index($) = 1;
    const unsigned pos = pushed($) + 1;
    pushed($) = pos;
    tail.store(pos, g_cfg.tail_store, $);
    tail_mutex.unlock($);
    return pos;
  }

  void close() {
    if (g_cfg.close_without_lock) {
      closed($) = 1;
      return;
    }
    tail_mutex.lock($);
    closed($) = 1;
    tail_mutex.unlock($);
  }

  bool pop(int& out) {
    {
      const unsigned h = head.load(rl::mo_relaxed, $);
      if (h == seen.load(rl::mo_relaxed, $) && h == tail.load(rl::mo_relaxed, $)) return false;
    }
    Chunk* retired = nullptr;
    head_mutex.lock($);
    const unsigned h = head.load(rl::mo_relaxed, $);
    if (seen.load(rl::mo_relaxed, $) == h) {
      const unsigned t = tail.load(rl::mo_acquire, $);
      if (t == h) {
        head_mutex.unlock($);
        return false;
      }
      seen.store(t, rl::mo_relaxed, $);
    }
    if (head_index($) == 1) {
      Chunk* c = head_chunk($);
      RL_ASSERT(c->alive($) == 1);
      Chunk* n = c->next($);
      RL_ASSERT(n != nullptr);
      if (!g_cfg.recycle_at_chunk_end) retired = c;
      head_chunk($) = n;
      head_index($) = 0;
    }
    Chunk* c = head_chunk($);
    RL_ASSERT(c->alive($) == 1);
    out = c->item($);
    head_index($) = 1;
    head.store(h + 1, rl::mo_relaxed, $);
    // b_inv_c: the chunk is recycled right after its last item was read, while the producer
    // may still hold it as its tail chunk.
    if (g_cfg.recycle_at_chunk_end) retired = c;
    head_mutex.unlock($);
    if (retired != nullptr) recycle(retired);
    return true;
  }
};

// fifo: thread 0 pushes 1, 2, 3; threads 1 and 2 pop (two attempts each); after(), the rest is
// drained. Every item once; each consumer's items ascend.
struct FifoTest : rl::test_suite<FifoTest, 3> {
  Queue q;
  rl::var<int> got[3][3];  // got[consumer][k]; consumer 2 is after()'s drain
  rl::var<int> count[3];

  void before() {
    q.init();
    for (int c = 0; c < 3; ++c) {
      count[c]($) = 0;
      for (int k = 0; k < 3; ++k) got[c][k]($) = 0;
    }
  }
  void take(int who) {
    int v = 0;
    if (q.pop(v)) {
      const int n = count[who]($);
      got[who][n]($) = v;
      count[who]($) = n + 1;
    }
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (int v = 1; v <= 3; ++v) RL_ASSERT(q.push(v) == static_cast<unsigned>(v));
    } else {
      for (int i = 0; i < 2; ++i) take(static_cast<int>(index) - 1);
    }
  }
  void after() {
    for (int i = 0; i < 3; ++i) take(2);
    int seen[4] = {0, 0, 0, 0};
    for (int c = 0; c < 3; ++c) {
      int last = 0;
      for (int k = 0; k < count[c]($); ++k) {
        const int v = got[c][k]($);
        RL_ASSERT(v >= 1 && v <= 3);
        RL_ASSERT(v > last);  // FIFO as seen by one consumer
        last = v;
        ++seen[v];
      }
    }
    for (int v = 1; v <= 3; ++v) RL_ASSERT(seen[v] == 1);  // each item exactly once
  }
};

// gate: thread 0 pushes until refused (at most 4 tries); thread 1 closes, then pops everything.
struct GateTest : rl::test_suite<GateTest, 2> {
  Queue q;
  rl::var<int> accepted;
  rl::var<int> drained;

  void before() {
    q.init();
    accepted($) = 0;
    drained($) = 0;
  }
  void thread(unsigned index) {
    if (index == 0) {
      int n = 0;
      for (int v = 1; v <= 4; ++v) {
        if (q.push(v) == 0) break;
        ++n;
      }
      accepted($) = n;
    } else {
      q.close();
      int v = 0;
      int n = 0;
      while (q.pop(v)) ++n;
      drained($) = n;
    }
  }
  void after() {
    // INV-G1: what the closer drained after close() is everything that was accepted.
    RL_ASSERT(drained($) == accepted($));
  }
};

template <class Test>
bool simulate() {
  rl::test_params p = parkpool::model::random_params();
  return rl::simulate<Test>(p);
}

bool run_model(const std::string& variant, int& known) {
  g_cfg = Config{};
  known = 1;
  if (variant == "fifo") return simulate<FifoTest>();
  if (variant == "gate") return simulate<GateTest>();
  if (variant == "b_tail") {
    g_cfg.tail_store = rl::mo_relaxed;
    return simulate<FifoTest>();
  }
  if (variant == "b_spare") {
    g_cfg.spare_take = rl::mo_relaxed;
    return simulate<FifoTest>();
  }
  if (variant == "b_inv_c") {
    g_cfg.recycle_at_chunk_end = true;
    return simulate<FifoTest>();
  }
  if (variant == "b_gate") {
    g_cfg.close_without_lock = true;
    return simulate<GateTest>();
  }
  known = 0;
  return false;
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

// Relacy model of the pool's work-stealing deque
// (pool/include/parkpool/detail/chase_lev_deque.hpp): Chase-Lev with the C11 orderings of Le, Pop,
// Cohen and Zappa Nardelli (PPoPP 2013), the path compiled without TSAN (PARKPOOL_DEQUE_TSAN == 0):
// the two seq_cst fences D3 (pop) and D6 (steal), D2 as a release fence + relaxed bottom_ store,
// the seq_cst CAS on top_ (D4), the acquire loads D1' / D5 / D1, the ring published by a release
// store (G1) when it grows, the owner's top_seen_ cache, and pop()'s empty fast path.
//
// The model mirrors the header with the same memory orders, a ring of capacity 2 that grows to 4
// (the old ring stays alive, as in the header), and slots as relaxed rl::atomic (as in the
// header). Items are 1..3; item v names a payload rl::var the owner writes before push(v) and the
// taker reads after taking v, so a missing publication is a data race (or a slot read as 0, which
// is asserted against). The ring's mask is an rl::var too, so an unpublished ring is a race. Each
// thread counts what it took per item; after() drains the rest and asserts that every item was
// taken exactly once (INV-1).
//
// Search: every schedule with at most 4 (owner_thief, last_item) or 5 (grow) preemptions
// (rl::sched_bound; Relacy estimates the exhaustive search at 10^14 (grow) to 10^17 (owner_thief)
// schedules).
// Each correct variant runs in under ~15 s; each broken one is rejected in well under a second.
// b1 matters most: on x86 the stress tests catch a pop() without D3 only about one run in three.
//
// Variants (argv[1]):
//   owner_thief  the owner pushes 1, 2, pops twice, pushes 3, pops; one thief steals three times
//                (the D3/D6 race: the thief steals the top item while the owner pops the next)
//   last_item    the owner pushes 1, 2 and pops twice; two thieves steal once each (the
//                last-item race on top_ between the owner's CAS and the thieves')
//   grow         capacity 2: the owner pushes 1, 2, 3 (the third grows the ring, G1, unless a
//                steal made room) and pops once; one thief steals twice
//   b1  owner_thief with pop's D3 seq_cst fence removed: the owner reads a stale top_ and takes
//       without a CAS the item a thief takes too (with 1 preemption: the INV-1 assert); or the
//       thief reads a stale bottom_ and takes item 3 at an index that was popped and reused, whose
//       payload write no release orders before it (with 4 preemptions Relacy reports that race
//       first)
//   b2  owner_thief with steal's D6 seq_cst fence removed: the thief reads a stale bottom_, same
//       two failures
//   b3  owner_thief with push's D2 release fence removed (bottom_ published relaxed): a thief
//       reads a slot / payload the owner's write is not ordered before (race or item 0)
//   b4  last_item with pop's last-item CAS skipped (the owner stores top_ = t + 1 and keeps the
//       item): the owner and a thief both take the last item
//   b5  grow with the ring published relaxed (G1 release -> relaxed): a thief reads the new ring
//       before its mask and copied slots are ordered before it
// Usage: chase_lev_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: owner_thief last_item grow
// PARKPOOL_MODEL_BROKEN: b1 b2 b3 b4 b5
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct Config {
  bool pop_fence = true;                           // D3; b1: false
  bool steal_fence = true;                         // D6; b2: false
  bool push_fence = true;                          // D2; b3: false
  bool last_cas = true;                            // D4 in pop; b4: false
  rl::memory_order ring_publish = rl::mo_release;  // G1; b5: relaxed
  unsigned initial_capacity = 4;
};
Config g_cfg;

constexpr int kItems = 3;              // items are 1..kItems
constexpr int kMaxCap = 4;             // the largest ring: capacity 2 grown once
constexpr int kThreads = 3;            // the most threads a suite has
constexpr int kTakers = kThreads + 1;  // + after()'s drain

enum class Steal { success, empty, retry };

struct Ring {
  rl::var<int> mask;  // written before the ring is published (G1)
  rl::atomic<int> slots[kMaxCap];
  int get(int i) {
    const int m = mask($);
    return slots[i & m].load(rl::mo_relaxed, $);
  }
  void put(int i, int v) {
    const int m = mask($);
    slots[i & m].store(v, rl::mo_relaxed, $);
  }
  void init(int cap) {
    mask($) = cap - 1;
    for (int i = 0; i < cap; ++i) slots[i].store(0, rl::mo_relaxed, $);
  }
};

struct Deque {
  rl::atomic<int> top;
  rl::atomic<int> bottom;
  rl::atomic<Ring*> ring;
  int top_seen = 0;  // owner only
  Ring rings[2];     // rings[0] the first, rings[1] the grown one; both live until the end
  int rings_used = 0;

  void init(unsigned cap) {
    top.store(0, rl::mo_relaxed, $);
    bottom.store(0, rl::mo_relaxed, $);
    rings[0].init(static_cast<int>(cap));
    rings_used = 1;
    top_seen = 0;
    ring.store(&rings[0], rl::mo_relaxed, $);
  }

  Ring* grow(Ring* old, int b, int t) {
    RL_ASSERT(rings_used == 1);  // the model's runs grow at most once
    Ring* r = &rings[rings_used++];
    const int cap = (old->mask($) + 1) * 2;
    RL_ASSERT(cap <= kMaxCap);
    r->init(cap);
    for (int i = t; i < b; ++i) r->put(i, old->get(i));
    ring.store(r, g_cfg.ring_publish, $);  // (G1)
    return r;
  }

  // Owner only.
  void push(int v) {
    const int b = bottom.load(rl::mo_relaxed, $);
    Ring* r = ring.load(rl::mo_relaxed, $);
    if (b - top_seen > r->mask($)) {
      top_seen = top.load(rl::mo_acquire, $);  // (D1)
      if (b - top_seen > r->mask($)) r = grow(r, b, top_seen);
    }
    r->put(b, v);
    if (g_cfg.push_fence) rl::atomic_thread_fence(rl::mo_release, $);  // (D2)
    bottom.store(b + 1, rl::mo_relaxed, $);
  }

  // Owner only. 0 = nothing.
  int pop() {
    if (bottom.load(rl::mo_relaxed, $) <= top.load(rl::mo_relaxed, $)) return 0;
    const int b = bottom.load(rl::mo_relaxed, $) - 1;
    Ring* r = ring.load(rl::mo_relaxed, $);
    bottom.store(b, rl::mo_relaxed, $);
    if (g_cfg.pop_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // (D3)
    int t = top.load(rl::mo_relaxed, $);
    int item = 0;
    if (t <= b) {
      item = r->get(b);
      if (t == b) {
        if (g_cfg.last_cas) {
          if (!top.compare_exchange_strong(t, t + 1, rl::mo_seq_cst, $, rl::mo_relaxed, $)) {
            item = 0;  // a thief won
          }
        } else {
          top.store(t + 1, rl::mo_seq_cst, $);  // b4: assumes it won
        }
        bottom.store(b + 1, rl::mo_relaxed, $);
      }
    } else {
      bottom.store(b + 1, rl::mo_relaxed, $);
    }
    return item;
  }

  // Any thread.
  Steal steal(int& out) {
    int t = top.load(rl::mo_acquire, $);                                // (D1')
    if (g_cfg.steal_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // (D6)
    const int b = bottom.load(rl::mo_acquire, $);                       // (D5)
    if (t >= b) return Steal::empty;
    Ring* r = ring.load(rl::mo_acquire, $);
    const int item = r->get(t);
    if (!top.compare_exchange_strong(t, t + 1, rl::mo_seq_cst, $, rl::mo_relaxed, $)) {
      return Steal::retry;
    }
    out = item;
    return Steal::success;
  }
};

// Shared by the suites: the deque, the items' payloads, and per-taker counts.
struct State {
  Deque q;
  rl::var<int> payload[kItems + 1];         // written by the owner before push(v)
  rl::var<int> taken[kTakers][kItems + 1];  // taken[taker][v], written only by that taker

  void init() {
    q.init(g_cfg.initial_capacity);
    for (int v = 0; v <= kItems; ++v) payload[v]($) = 0;
    for (auto& row : taken) {
      for (auto& c : row) c($) = 0;
    }
  }
  void push(int v) {
    payload[v]($) = 10 * v;  // the owner's write before push: must be visible to the taker
    q.push(v);
  }
  void took(int taker, int v) {
    RL_ASSERT(v >= 1 && v <= kItems);  // never a slot nobody wrote
    RL_ASSERT(payload[v]($) == 10 * v);
    taken[taker][v]($) = taken[taker][v]($) + 1;
  }
  void pop(int taker) {
    if (const int v = q.pop(); v != 0) took(taker, v);
  }
  void steal(int taker, int attempts) {
    for (int i = 0; i < attempts; ++i) {
      int v = 0;
      if (q.steal(v) == Steal::success) took(taker, v);
    }
  }
  // after(): the rest is popped alone; then every pushed item was taken exactly once.
  void check(int pushed) {
    for (int i = 0; i < kItems + 1; ++i) pop(kTakers - 1);
    RL_ASSERT(q.bottom.load(rl::mo_relaxed, $) == q.top.load(rl::mo_relaxed, $));
    for (int v = 1; v <= pushed; ++v) {
      int n = 0;
      for (int k = 0; k < kTakers; ++k) n += taken[k][v]($);
      RL_ASSERT(n == 1);  // INV-1
    }
  }
};

// A suite's script: the owner's steps ('+' pushes the next item, 1, 2, ...; '-' pops) and how
// many steals each thief (threads 1..) attempts.
struct Script {
  const char* owner;
  int steals;
  int pushed() const {
    int n = 0;
    for (const char* c = owner; *c != '\0'; ++c) n += *c == '+' ? 1 : 0;
    return n;
  }
};

// One suite per script: thread 0 runs the owner's steps, every other thread steals; after()
// drains the deque and checks that each pushed item was taken exactly once.
template <unsigned Threads, const Script& S>
struct Scenario : rl::test_suite<Scenario<Threads, S>, Threads> {
  State s;
  void before() { s.init(); }
  void thread(unsigned index) {
    if (index != 0) {
      s.steal(static_cast<int>(index), S.steals);
      return;
    }
    int next = 1;
    for (const char* c = S.owner; *c != '\0'; ++c) {
      if (*c == '+') {
        s.push(next++);
      } else {
        s.pop(0);
      }
    }
  }
  void after() { s.check(S.pushed()); }
};

// owner_thief (b1, b2, b3): the owner pushes 1, 2, pops twice, pushes 3, pops; one thief steals
// three times.
constexpr Script kOwnerThief{"++--+-", 3};
using OwnerThief = Scenario<2, kOwnerThief>;
// last_item (b4): the owner pushes 1, 2 and pops twice; two thieves steal once each.
constexpr Script kLastItem{"++--", 1};
using LastItem = Scenario<3, kLastItem>;
// grow (b5): capacity 2; the owner pushes 1, 2, 3 and pops once; one thief steals twice.
constexpr Script kGrow{"+++-", 2};
using Grow = Scenario<2, kGrow>;

// The exhaustive search (rl::sched_full) of the smallest suite has ~10^14 schedules; each suite
// runs every schedule with at most this many preemptions instead (rl::sched_bound), the most
// that keeps a run under ~15 s (one core; measured: owner_thief 4 -> 3.8 s, 5 -> 35 s; last_item
// 4 -> 14 s, 5 -> over 100 s; grow 5 -> 11 s). Every broken variant is rejected with a bound of
// 1. CHASE_LEV_MODEL_BOUND=<n> overrides the bound (to search deeper by hand).
constexpr unsigned kOwnerThiefBound = 4;
constexpr unsigned kLastItemBound = 4;
constexpr unsigned kGrowBound = 5;

template <class Suite>
bool run_bounded(unsigned preemptions) {
  if (const char* e = std::getenv("CHASE_LEV_MODEL_BOUND"))
    preemptions = static_cast<unsigned>(std::strtoul(e, nullptr, 10));
  rl::test_params p;
  p.search_type = rl::sched_bound;
  p.context_bound = preemptions;
  p.output_history = false;
  return rl::simulate<Suite>(p);
}

bool run_model(const std::string& v, int& known) {
  g_cfg = Config{};
  known = 1;
  if (v == "owner_thief") return run_bounded<OwnerThief>(kOwnerThiefBound);
  if (v == "last_item") return run_bounded<LastItem>(kLastItemBound);
  if (v == "grow") {
    g_cfg.initial_capacity = 2;
    return run_bounded<Grow>(kGrowBound);
  }
  if (v == "b1") {
    g_cfg.pop_fence = false;
    return run_bounded<OwnerThief>(kOwnerThiefBound);
  }
  if (v == "b2") {
    g_cfg.steal_fence = false;
    return run_bounded<OwnerThief>(kOwnerThiefBound);
  }
  if (v == "b3") {
    g_cfg.push_fence = false;
    return run_bounded<OwnerThief>(kOwnerThiefBound);
  }
  if (v == "b4") {
    g_cfg.last_cas = false;
    return run_bounded<LastItem>(kLastItemBound);
  }
  if (v == "b5") {
    g_cfg.initial_capacity = 2;
    g_cfg.ring_publish = rl::mo_relaxed;
    return run_bounded<Grow>(kGrowBound);
  }
  known = 0;
  return false;
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

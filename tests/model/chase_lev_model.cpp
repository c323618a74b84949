// Relacy model of the pool's work-stealing deque
// (pool/include/parkpool/detail/chase_lev_deque.hpp): Chase-Lev with the C11 orderings of Le, Pop,
// Cohen and Zappa Nardelli (PPoPP 2013), the path compiled without TSAN (PARKPOOL_DEQUE_TSAN == 0):
// the two seq_cst fences D3 (pop) and D6 (steal), D2 as a release fence + relaxed bottom_ store,
// the seq_cst CAS on top_ (D4), the acquire loads D1' / D5 / D1, the ring published by a release
// store (G1) when it grows, the owner's top_seen_ cache, pop()'s empty fast path, push_if_room()
// (push() without growth: the same D1 and D2, false when full), and empty_hint() (two relaxed
// loads, bottom_ then top_) as the idle re-check any_work() uses it.
//
// The deque (Ring, Deque) is in chase_lev_model.hpp, shared with drain_model.cpp; its orders are
// DequeOrders there, which this file's Config extends. The model mirrors the header with the same
// memory orders, rings of capacity 2 that grow to 4 (the old ring stays alive, as in the header),
// and slots as relaxed rl::atomic (as in the header). Items are 1..3; item v names a payload
// rl::var written before push(v) and read by the taker after taking v, so a missing publication is
// a data race (or a slot read as 0, which is asserted against). The ring's mask is an rl::var too,
// so an unpublished ring is a race. Each thread counts what it took per item; after() drains the
// rest and asserts that every item was taken exactly once (INV-1). A suite is a script: each
// thread's steps (Script below). Deque 0 is thread 0's, deque 1 thread 1's (the room suite's thief
// that moves items into its own deque).
//
// D1 (make_room's acquire load of top_). A relaxed D1 lets a thief's slot read, made before its
// winning CAS, return the value the owner writes there after reading that CAS's top_ (load
// buffering: the thief would return the new item, which is then taken twice, and lose the old
// one). Relacy cannot produce that: a load reads only stores already executed, so with the slot
// alone no relaxed D1 fails (why D1 had no broken variant before). What D1 guarantees, and
// what rules the outcome out by read-write coherence, is that the thief's read happens before the
// overwrite. Ring::reader[] makes that relation checkable: a thief reads reader[slot] with the
// slot, and a put() that overwrites an index of the ring's previous lap (i > mask) writes it, so
// a missing happens-before is a data race (b8, b10). Only a thief whose CAS wins needs it (a loser
// discards what it read), so the witness is sound only where no CAS can lose before a wrapping
// put: the only suites whose rings wrap, grow and room, pop only after their last push.
//
// The hints. empty_hint() matters for correctness in one place: any_work(), the re-check after
// the announce (A1) and after the last searcher's R1 fence in pool/SLEEP.md (INV-NOLOST). There a
// false "empty" for a push that the submitter's N1 fence ordered before its N2 load would lose a
// wakeup. The hint suite checks it with the real orders: the sleeper's relaxed RMW, seq_cst fence,
// then empty_hint()'s relaxed loads; the submitter's push, N1 fence, relaxed N2 load. A stale
// top_ only makes the deque look fuller (top_ only grows); a later bottom_ than the push's is a
// pop of the owner, which is awake and takes the item itself (so the suite's owner does not pop).
// (The asymmetric-barrier path, L1 + membarrier, is idle_model's: Relacy has no membarrier.)
// The other uses are heuristics, not modelled: size_hint() in steal_more() only sizes the batch
// (each steal() re-checks); empty_hint() in join_on_worker() only decides whether to notify
// (a missed wake costs parallelism, never a job: the owner pops the job itself; thread_pool.hpp);
// top_hint() in stale_backlog() costs at most one wake or some parallelism (pool_core.hpp);
// next_pop_hint() only feeds __builtin_prefetch and is never dereferenced.
//
// Search: every schedule with at most N preemptions (rl::sched_bound; Relacy estimates the
// exhaustive search at 10^14 (grow) to 10^17 (owner_thief) schedules). Bounds, schedules and
// times (one core; "quiet": this 2-core VM otherwise idle; "loaded": one ctest run at load ~5,
// other builds sharing the machine):
//   owner_thief  4   1,005,004 schedules   quiet 3.8 s, loaded  6.9 s
//   last_item    4   4,247,938 schedules   quiet  14 s, loaded 23.4 s
//   grow         5   3,244,233 schedules   quiet  11 s, loaded 20.6 s
//   room         3   1,999,767 schedules                loaded 16.4 s (bound 4: > 60 s, > 6M)
//   hint         5   1,269,182 schedules                loaded  5.9 s (bound 6: 31 s)
//   reclaim      3     593,759 schedules   loaded (a CI run beside it) 4.3 s
// (room and hint were measured loaded only; by grow's ratio about 9 s and 3 s quiet.)
// Every broken variant is rejected with a bound of 1, and at its suite's bound in about a second
// or less (b1, b2: ~1 s loaded), except b8: ~8 s at grow's bound 5 (the bounded search reaches a
// failing schedule late; 0.3 s at bound 3); b10 rejects the same relaxed D1 in the room suite in
// 0.03 s. b1 matters most: on x86 the stress tests catch a pop() without D3 only about one run in
// three.
//
// Variants (argv[1]):
//   owner_thief  the owner pushes 1, 2, pops twice, pushes 3, pops; one thief steals three times
//                (the D3/D6 race: the thief steals the top item while the owner pops the next)
//   last_item    the owner pushes 1, 2 and pops twice; two thieves steal once each (the
//                last-item race on top_ between the owner's CAS and the thieves')
//   grow         capacity 2: the owner pushes 1, 2, 3 (the third grows the ring, G1, unless a
//                steal made room: then it overwrites slot 0, D1) and pops once; one thief steals
//                twice
//   room         WorkerContext::steal_more(): capacity 2; the owner pushes 1, 2, 3 onto deque 0;
//                thread 1 three times steals from deque 0 and push_if_room()s the item into its
//                own deque 1 (when full it runs the item: takes it), then pops once; thread 2
//                steals once from deque 1. The third push_if_room() finds the ring full unless
//                thread 2 stole (D1 refreshes top_seen_; then it wraps onto slot 0). Thread 2's
//                payload read checks that publication is transitive through the move (thread 1
//                never reads the payload, as in the pool)
//   hint         the owner pushes 1, 2 and notifies (N1 fence, relaxed N2 load of the sleeper
//                count); a thief steals once; a sleeper announces (relaxed RMW, seq_cst fence) and
//                re-checks with empty_hint(). after(): the submitter saw the sleeper or the
//                sleeper saw work (INV-NOLOST)
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
//   b6  room with push_if_room()'s D2 release fence removed: thread 2 steals from deque 1 an item
//       whose payload (written by thread 0, seen by thread 1) is not ordered before it (race)
//   b7  room with push_if_room()'s room check off by one (room for capacity + 1 items): the third
//       push_if_room() overwrites slot 0 while item 1 is still there: item 1 is lost, item 3 taken
//       twice (the INV-1 assert)
//   b8  grow with D1 relaxed: the owner's overwrite of slot 0 is not ordered after the thief's
//       read of it (the reader[] witness: race)
//   b9  hint without the submitter's N1 fence (push()'s D2 release fence alone): the sleeper's
//       re-check misses the push and the submitter misses the sleeper (the INV-NOLOST assert).
//       D2 is a release fence: it orders the push for acquirers, not the store->load pattern
//   b10 room with D1 relaxed (push_if_room()'s make_room()): thread 1's wrapping push_if_room()
//       overwrites slot 0 of deque 1 unordered after thread 2's read of it (reader[]: race)
//   reclaim      the header's ring reclamation (INV-2 (b)): capacity 2; the owner pushes 1, 2, 3
//                (the third grows the ring to 4 unless a steal made room), pops three times and
//                reclaims: if empty, a fresh ring of 2 (S1), the barrier (S2), the scan of the
//                hazard slots (S3), and unless one names the deque, rings 0 and 1 are freed
//                (Ring::freed := 1). One thief steals twice with its hazard slot (R1, R3) and
//                then returns. membarrier (S2) is modelled as in idle_model: the thief polls for
//                a pending barrier before and after each step from R1 on and acknowledges under
//                a mutex with a seq_cst fence; its return acknowledges every later barrier. A
//                thief's slot read reads Ring::freed and asserts 0: a read after the free fails
//                the assert, a read unordered with the free is a data race
//   b11 reclaim with R3 (the hazard cleared) before the slot read: the owner's scan reads null,
//       frees, and the thief's read of the old ring races the free
//   b12 reclaim without the barrier (S2): the scan may read the slot's old null while the thief
//       holds the old ring (race)
//   b13 reclaim without the scan (S3): frees although the thief holds the old ring (race)
//   b14 reclaim with R1 (the hazard set) after the ring_ load: the barrier lands between the
//       load and R1, the scan reads null, the thief reads the freed old ring (race)
// Usage: chase_lev_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
// PARKPOOL_MODEL_CORRECT: owner_thief last_item grow room hint reclaim
// PARKPOOL_MODEL_BROKEN: b1 b2 b3 b4 b5 b6 b7 b8 b9 b10 b11 b12 b13 b14
#include "model_main.hpp"

#include <relacy/relacy.hpp>

#include "chase_lev_model.hpp"
#include "model_membarrier.hpp"
#include "model_params.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using parkpool::model::Deque;
using parkpool::model::Steal;

// The deque's orders (D1..D6, G1, push_if_room's check) are parkpool::model::DequeOrders
// (chase_lev_model.hpp); run_model() copies them into g_deque_orders, which the deque reads.
struct Config : parkpool::model::DequeOrders {
  bool notify_fence = true;       // the submitter's N1 ('n'); b9: false
  bool reclaim_barrier = true;    // reclaim()'s S2 ('r'); b12: false
  bool reclaim_scan = true;       // reclaim()'s S3 ('r'); b13: false (frees unconditionally)
  unsigned initial_capacity = 4;  // set by run_suite()
};
Config g_cfg;

constexpr int kItems = 3;              // items are 1..kItems
constexpr int kThreads = 3;            // the most threads a suite has
constexpr int kDeques = 2;             // deque 0: thread 0's; deque 1: thread 1's
constexpr int kTakers = kThreads + 1;  // + after()'s drain

// Shared by the suites: the deques, the items' payloads, per-taker counts, and the idle
// handshake's sleeper word and the two answers it gave.
struct State {
  Deque q[kDeques];
  rl::var<int> payload[kItems + 1];         // written by the pusher before push(v)
  rl::var<int> taken[kTakers][kItems + 1];  // taken[taker][v], written only by that taker
  rl::atomic<int> sleepers;                 // the idle state word, reduced to P
  rl::var<int> saw_sleeper;                 // 'n': the submitter's N2 read P > 0
  rl::var<int> saw_empty;                   // 'w': the sleeper's re-check found deque 0 empty
  rl::atomic<Deque*> hazard[kThreads];      // each thread's hazard slot ('h')
  // membarrier for reclaim()'s S2 (model_membarrier.hpp, as idle_model's): the owner requests,
  // the thief (the one thread that polls: the reclaim suite's thread 1) acknowledges.
  parkpool::model::ModelMembarrier mb;

  void init() {
    for (auto& d : q) d.init(g_cfg.initial_capacity);
    for (int v = 0; v <= kItems; ++v) payload[v]($) = 0;
    for (auto& row : taken) {
      for (auto& c : row) c($) = 0;
    }
    sleepers.store(0, rl::mo_relaxed, $);
    saw_sleeper($) = 0;
    saw_empty($) = 0;
    for (auto& h : hazard) h.store(nullptr, rl::mo_relaxed, $);
    mb.reset();
  }
  // (S2) IdleCoordinator::heavy_barrier(): wait until the thief has fenced after this request.
  void heavy_barrier() { mb.barrier(); }
  // The thief: the IPI of a pending barrier may land here.
  void membarrier_point() { mb.point(); }
  void thief_returns() { mb.polled_returns(); }
  // 'h': a steal from deque 0 with the thief's hazard slot (the pool's find_task_slow).
  void steal_hazard(int taker) {
    int v = 0;
    if (q[0].steal_hazard(v, hazard[taker], [this] { membarrier_point(); }) == Steal::success) {
      took(taker, v);
    }
  }
  // 'r': the owner's reclaim() of deque 0 (PoolCore::reclaim_rings): S2 and S3 as configured.
  void reclaim() {
    q[0].reclaim(
        [this] {
          if (g_cfg.reclaim_barrier) heavy_barrier();
        },
        [this](Deque* d) {
          if (!g_cfg.reclaim_scan) return false;
          for (auto& h : hazard) {
            if (h.load(rl::mo_acquire, $) == d) return true;  // (S3)
          }
          return false;
        });
  }
  void push(int d, int v) {
    payload[v]($) = 10 * v;  // the pusher's write before push: must be visible to the taker
    q[d].push(v);
  }
  void took(int taker, int v) {
    RL_ASSERT(v >= 1 && v <= kItems);  // never a slot nobody wrote
    RL_ASSERT(payload[v]($) == 10 * v);
    taken[taker][v]($) = taken[taker][v]($) + 1;
  }
  void pop(int d, int taker) {
    if (const int v = q[d].pop(); v != 0) took(taker, v);
  }
  void steal(int d, int taker) {
    int v = 0;
    if (q[d].steal(v) == Steal::success) took(taker, v);
  }
  // WorkerContext::steal_more(): an item stolen from deque 0 moves into the thief's own deque 1
  // (unread: the pool only moves the pointer); if it is full, the thief runs it (takes it).
  void move(int taker) {
    int v = 0;
    if (q[0].steal(v) != Steal::success) return;
    RL_ASSERT(v >= 1 && v <= kItems);
    if (!q[1].push_if_room(v)) took(taker, v);
  }
  // The idle handshake (pool/SLEEP.md, INV-NOLOST) around deque 0's empty_hint(): the submitter
  // after its push: (N1) seq_cst fence, (N2) relaxed load of the sleeper count; the sleeper: (A1)
  // relaxed RMW announcing itself, its seq_cst fence, then the re-check any_work(), here
  // empty_hint() of deque 0.
  void notify() {
    if (g_cfg.notify_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // (N1)
    saw_sleeper($) = sleepers.load(rl::mo_relaxed, $) != 0 ? 1 : 0;      // (N2)
  }
  void announce() {
    sleepers.fetch_add(1, rl::mo_relaxed, $);    // (A1)
    rl::atomic_thread_fence(rl::mo_seq_cst, $);  // A1's fence
    saw_empty($) = q[0].empty_hint() ? 1 : 0;    // (A2)
  }
  // after(): the rest is popped alone; then every pushed item was taken exactly once, and no
  // wakeup was lost: the submitter saw the sleeper, or the sleeper saw the work.
  void check(int pushed) {
    for (int d = 0; d < kDeques; ++d) {
      for (int i = 0; i < kItems + 1; ++i) pop(d, kTakers - 1);
      RL_ASSERT(q[d].bottom.load(rl::mo_relaxed, $) == q[d].top.load(rl::mo_relaxed, $));
    }
    for (int v = 1; v <= pushed; ++v) {
      int n = 0;
      for (int k = 0; k < kTakers; ++k) n += taken[k][v]($);
      RL_ASSERT(n == 1);  // INV-1
    }
    RL_ASSERT(saw_sleeper($) != 0 || saw_empty($) == 0);  // INV-NOLOST
  }
};

// A suite's script: each thread's steps, run in order.
//   '+' push the next item (1, 2, ... in the order of the '+' over the threads) onto the
//       thread's own deque (thread 0: deque 0; thread 1: deque 1)
//   '-' pop the thread's own deque
//   's' / 't' steal once from deque 0 / deque 1
//   'm' steal once from deque 0 and push_if_room() the item into deque 1 (thread 1 only)
//   'n' the submitter's side of the idle handshake (after its pushes)
//   'w' the sleeper's side: announce, fence, empty_hint() of deque 0
//   'h' steal once from deque 0 with the thread's hazard slot, polling for the owner's barrier
//   'r' reclaim() deque 0 (thread 0 only)
//   'x' the thief returns: acknowledges every later barrier (last step of a thread using 'h')
struct Script {
  const char* steps[kThreads];
  int pushes(unsigned below) const {
    int n = 0;
    for (unsigned i = 0; i < below && i < kThreads; ++i) {
      for (const char* c = steps[i]; c != nullptr && *c != '\0'; ++c) n += *c == '+' ? 1 : 0;
    }
    return n;
  }
};

// One suite per script: thread i runs steps[i]; after() drains the deques and checks that each
// pushed item was taken exactly once (and INV-NOLOST).
template <unsigned Threads, const Script& S>
struct Scenario : rl::test_suite<Scenario<Threads, S>, Threads> {
  State s;
  void before() { s.init(); }
  void thread(unsigned index) {
    const int me = static_cast<int>(index);
    const int own = me < kDeques ? me : -1;
    int next = S.pushes(index) + 1;
    for (const char* c = S.steps[index]; *c != '\0'; ++c) {
      switch (*c) {
        case '+':
          RL_ASSERT(own >= 0);
          s.push(own, next++);
          break;
        case '-':
          RL_ASSERT(own >= 0);
          s.pop(own, me);
          break;
        case 's':
          s.steal(0, me);
          break;
        case 't':
          s.steal(1, me);
          break;
        case 'm':
          RL_ASSERT(me == 1);
          s.move(me);
          break;
        case 'n':
          s.notify();
          break;
        case 'w':
          s.announce();
          break;
        case 'h':
          s.steal_hazard(me);
          break;
        case 'r':
          RL_ASSERT(me == 0);
          s.reclaim();
          break;
        case 'x':
          s.thief_returns();
          break;
        default:
          RL_ASSERT(false);
      }
    }
  }
  void after() { s.check(S.pushes(Threads)); }
};

// owner_thief (b1, b2, b3): the owner pushes 1, 2, pops twice, pushes 3, pops; one thief steals
// three times.
constexpr Script kOwnerThief{{"++--+-", "sss"}};
using OwnerThief = Scenario<2, kOwnerThief>;
// last_item (b4): the owner pushes 1, 2 and pops twice; two thieves steal once each.
constexpr Script kLastItem{{"++--", "s", "s"}};
using LastItem = Scenario<3, kLastItem>;
// grow (b5, b8): capacity 2; the owner pushes 1, 2, 3 and pops once; one thief steals twice.
constexpr Script kGrow{{"+++-", "ss"}};
using Grow = Scenario<2, kGrow>;
// room (b6, b7, b10): capacity 2; the owner pushes 1, 2, 3; thread 1 moves three times from deque 0
// into its own deque with push_if_room(), then pops once; thread 2 steals once from deque 1.
constexpr Script kRoom{{"+++", "mmm-", "t"}};
using Room = Scenario<3, kRoom>;
// hint (b9): the owner pushes 1, 2 and notifies; a thief steals once; a sleeper announces and
// re-checks with empty_hint().
constexpr Script kHint{{"++n", "s", "w"}};
using Hint = Scenario<3, kHint>;
// reclaim (b11..b14): capacity 2; the owner pushes 1, 2, 3 (the third grows the ring to 4 unless
// a steal made room), pops three times and reclaims (shrinks to a fresh ring of 2, barrier,
// scan, frees rings 0 and 1); one thief steals twice with its hazard slot, polling for the
// barrier, then returns.
constexpr Script kReclaim{{"+++---r", "hhx"}};
using Reclaim = Scenario<2, kReclaim>;

// The exhaustive search (rl::sched_full) of the smallest suite has ~10^14 schedules; each suite
// runs every schedule with at most this many preemptions instead (rl::sched_bound), the most
// that keeps a run under ~15-20 s (one core; measured: owner_thief 4 -> 3.8 s, 5 -> 35 s;
// last_item 4 -> 14 s, 5 -> over 100 s; grow 5 -> 11 s; loaded: room 3 -> 16 s, 4 -> over 60 s;
// hint 5 -> 6 s, 6 -> 31 s; reclaim 3 -> 4.3 s loaded; the file's header has the schedule
// counts). Every broken variant is rejected with a bound of 1. CHASE_LEV_MODEL_BOUND=<n>
// overrides the bound (to search deeper by hand).
constexpr unsigned kOwnerThiefBound = 4;
constexpr unsigned kLastItemBound = 4;
constexpr unsigned kGrowBound = 5;
constexpr unsigned kRoomBound = 3;
constexpr unsigned kHintBound = 5;
constexpr unsigned kReclaimBound = 3;

template <class Suite>
bool run_bounded(unsigned preemptions) {
  if (const char* e = std::getenv("CHASE_LEV_MODEL_BOUND"))
    preemptions = static_cast<unsigned>(std::strtoul(e, nullptr, 10));
  rl::test_params p = parkpool::model::bounded_params(preemptions);
  parkpool::model::g_deque_orders = g_cfg;  // the variant's deque orders (a slice of Config)
  return rl::simulate<Suite>(p);
}

// The suites, each with its ring capacity and preemption bound.
template <class Suite>
bool run_suite(unsigned capacity, unsigned preemptions) {
  g_cfg.initial_capacity = capacity;
  return run_bounded<Suite>(preemptions);
}
bool owner_thief() { return run_suite<OwnerThief>(4, kOwnerThiefBound); }
bool last_item() { return run_suite<LastItem>(4, kLastItemBound); }
bool grow() { return run_suite<Grow>(2, kGrowBound); }
bool room() { return run_suite<Room>(2, kRoomBound); }
bool hint() { return run_suite<Hint>(4, kHintBound); }
bool reclaim() { return run_suite<Reclaim>(2, kReclaimBound); }

// Each variant: a suite and what it changes in the model (the header's list says why).
using Variant = parkpool::model::Variant<Config>;
constexpr Variant kVariants[] = {
    {"owner_thief", owner_thief, [](Config&) {}},
    {"last_item", last_item, [](Config&) {}},
    {"grow", grow, [](Config&) {}},
    {"room", room, [](Config&) {}},
    {"hint", hint, [](Config&) {}},
    {"b1", owner_thief, [](Config& c) { c.pop_fence = false; }},
    {"b2", owner_thief, [](Config& c) { c.steal_fence = false; }},
    {"b3", owner_thief, [](Config& c) { c.push_fence = false; }},
    {"b4", last_item, [](Config& c) { c.last_cas = false; }},
    {"b5", grow, [](Config& c) { c.ring_publish = rl::mo_relaxed; }},
    {"b6", room, [](Config& c) { c.room_fence = false; }},
    {"b7", room, [](Config& c) { c.room_slack = 1; }},
    {"b8", grow, [](Config& c) { c.top_refresh = rl::mo_relaxed; }},
    {"b9", hint, [](Config& c) { c.notify_fence = false; }},
    {"b10", room, [](Config& c) { c.top_refresh = rl::mo_relaxed; }},
    {"reclaim", reclaim, [](Config&) {}},
    {"b11", reclaim, [](Config& c) { c.hazard_clear_after_read = false; }},
    {"b12", reclaim, [](Config& c) { c.reclaim_barrier = false; }},
    {"b13", reclaim, [](Config& c) { c.reclaim_scan = false; }},
    {"b14", reclaim, [](Config& c) { c.hazard_set_before_load = false; }},
};

bool run_model(const std::string& v, int& known) {
  return parkpool::model::run_variant(kVariants, g_cfg, v, known);
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

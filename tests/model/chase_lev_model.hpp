// The Relacy model of the pool's Chase-Lev deque (pool/include/parkpool/detail/chase_lev_deque.hpp,
// the path compiled without TSAN), shared by the models that need one: chase_lev_model.cpp checks
// the deque itself (its header says what is modelled and why: the reader[] witness of D1, the
// rings of capacity 2 that grow to 4), drain_model.cpp runs the pool's final drain over one deque
// per worker. Same memory orders as the header; items are ints (0 = nothing), slots relaxed
// rl::atomic as in the header. Each order a broken variant weakens is a field of DequeOrders,
// read from g_deque_orders (a model sets it before rl::simulate, as model_parker.hpp's faults).
// It includes <relacy/relacy.hpp>: include it after the production headers a model uses.
#pragma once

#include <relacy/relacy.hpp>

namespace parkpool::model {

// The deque's orders as the header has them; a broken variant weakens one (named: the variants
// of chase_lev_model.cpp, cl_bN, and of drain_model.cpp, dr_bN, that do).
struct DequeOrders {
  bool pop_fence = true;                           // D3; cl_b1, dr_b4: false
  bool steal_fence = true;                         // D6; cl_b2, dr_b6: false
  bool push_fence = true;                          // D2 in push(); cl_b3: false
  bool last_cas = true;                            // D4 in pop; cl_b4: false (a plain store)
  rl::memory_order ring_publish = rl::mo_release;  // G1; cl_b5: relaxed
  bool room_fence = true;                          // D2 in push_if_room(); cl_b6: false
  int room_slack = 0;                              // push_if_room's room check; cl_b7: 1
  rl::memory_order top_refresh = rl::mo_acquire;   // D1; cl_b8, cl_b10: relaxed
  bool hazard_clear_after_read = true;             // R3 after the slot read; cl_b11: before
  bool hazard_set_before_load = true;              // R1 before the ring_ load; cl_b14: after
};
inline DequeOrders g_deque_orders;

constexpr int kMaxCap = 4;  // the largest ring: capacity 2 grown once

enum class Steal { success, empty, retry };

struct Ring {
  rl::var<int> mask;  // written before the ring is published (G1)
  rl::atomic<int> slots[kMaxCap];
  // D1's witness. The slots are atomics, and the failure a relaxed D1 allows is a thief's slot
  // read (before its CAS) returning the owner's later overwrite of that slot (load buffering:
  // the read takes its value from a store that the CAS it precedes enabled). Relacy lets a load
  // read only stores already executed, so it cannot produce that. What D1 must provide is that
  // the read happens before the overwrite; reader[] makes that a checked race: a thief reads
  // reader[slot] with the slot, and a put() that overwrites an index of the ring's previous lap
  // (i > mask) writes it. Only a thief whose CAS succeeds needs the order (a losing thief
  // discards what it read), so the suites that wrap a ring (grow, room) have no competing CAS
  // before a wrapping put.
  rl::var<int> reader[kMaxCap];
  // Set by reclaim() when it frees the ring (the header's INV-2 (b)); a thief's slot read reads
  // it and asserts 0: a read after the free fails the assert, a read unordered with the free is
  // a data race.
  rl::var<int> freed;
  int get(int i) {
    const int m = mask($);
    return slots[i & m].load(rl::mo_relaxed, $);
  }
  int get_for_steal(int i) {
    RL_ASSERT(freed($) == 0);  // INV-2: no thief reads a freed ring
    const int v = get(i);
    const int lap = reader[i & mask($)]($);  // a load: the read that D1 must order (see above)
    (void)lap;
    return v;
  }
  void put(int i, int v) {
    const int m = mask($);
    if (i > m) reader[i & m]($) = i;
    slots[i & m].store(v, rl::mo_relaxed, $);
  }
  void init(int cap) {
    mask($) = cap - 1;
    for (int i = 0; i < cap; ++i) {
      slots[i].store(0, rl::mo_relaxed, $);
      reader[i]($) = 0;
    }
  }
};

struct Deque {
  rl::atomic<int> top;
  rl::atomic<int> bottom;
  rl::atomic<Ring*> ring;
  int top_seen = 0;  // owner only
  // rings[0] the first, rings[1] the grown one, rings[2] reclaim()'s fresh ring of the initial
  // capacity. Each stays allocated (the model marks a free in Ring::freed).
  Ring rings[3];
  int rings_used = 0;
  int initial_cap = 0;  // owner only
  int current = 0;      // owner only: the index in rings[] of ring's value
  int retired[3];       // owner only: rings replaced and not yet freed
  int n_retired = 0;

  void init(unsigned cap) {
    top.store(0, rl::mo_relaxed, $);
    bottom.store(0, rl::mo_relaxed, $);
    for (Ring& r : rings) r.freed($) = 0;
    rings[0].init(static_cast<int>(cap));
    rings_used = 1;
    initial_cap = static_cast<int>(cap);
    current = 0;
    n_retired = 0;
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
    ring.store(r, g_deque_orders.ring_publish, $);  // (G1)
    retired[n_retired++] = current;
    current = rings_used - 1;
    return r;
  }

  // Owner only: push() (kGrow) and push_if_room() (false when full, nothing pushed).
  template <bool kGrow>
  bool push_impl(int v) {
    const int b = bottom.load(rl::mo_relaxed, $);
    Ring* r = ring.load(rl::mo_relaxed, $);
    const int slack = kGrow ? 0 : g_deque_orders.room_slack;  // cl_b7: off by one
    if (b - top_seen > r->mask($) + slack) {
      top_seen = top.load(g_deque_orders.top_refresh, $);  // (D1) make_room()
      if (b - top_seen > r->mask($) + slack) {
        if (!kGrow) return false;
        r = grow(r, b, top_seen);
      }
    }
    r->put(b, v);
    if (kGrow ? g_deque_orders.push_fence : g_deque_orders.room_fence) {
      rl::atomic_thread_fence(rl::mo_release, $);  // (D2)
    }
    bottom.store(b + 1, rl::mo_relaxed, $);
    return true;
  }
  void push(int v) { push_impl<true>(v); }
  bool push_if_room(int v) { return push_impl<false>(v); }

  // Owner only. 0 = nothing.
  int pop() {
    if (bottom.load(rl::mo_relaxed, $) <= top.load(rl::mo_relaxed, $)) return 0;
    const int b = bottom.load(rl::mo_relaxed, $) - 1;
    Ring* r = ring.load(rl::mo_relaxed, $);
    bottom.store(b, rl::mo_relaxed, $);
    if (g_deque_orders.pop_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // (D3)
    int t = top.load(rl::mo_relaxed, $);
    int item = 0;
    if (t <= b) {
      item = r->get(b);
      if (t == b) {
        if (g_deque_orders.last_cas) {
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
    int t = top.load(rl::mo_acquire, $);                                         // (D1')
    if (g_deque_orders.steal_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // (D6)
    const int b = bottom.load(rl::mo_acquire, $);                                // (D5)
    if (t >= b) return Steal::empty;
    Ring* r = ring.load(rl::mo_acquire, $);
    const int item = r->get_for_steal(t);
    if (!top.compare_exchange_strong(t, t + 1, rl::mo_seq_cst, $, rl::mo_relaxed, $)) {
      return Steal::retry;
    }
    out = item;
    return Steal::success;
  }

  // Any thread, with the thief's hazard slot (the header's R1..R3) and `poll`, called between the
  // steps from R1 on, where the IPI of the owner's barrier (S2) may land (idle_model's
  // membarrier emulation; chase_lev_model.cpp's State::membarrier_point).
  template <class Poll>
  Steal steal_hazard(int& out, rl::atomic<Deque*>& hazard, Poll poll) {
    int t = top.load(rl::mo_acquire, $);                                         // (D1')
    if (g_deque_orders.steal_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // (D6)
    const int b = bottom.load(rl::mo_acquire, $);                                // (D5)
    if (t >= b) return Steal::empty;
    poll();
    // (R1) release, then (R2) a compiler barrier (nothing to model: the program order is kept).
    if (g_deque_orders.hazard_set_before_load) hazard.store(this, rl::mo_release, $);
    poll();
    Ring* r = ring.load(rl::mo_acquire, $);
    poll();
    if (!g_deque_orders.hazard_set_before_load) {
      hazard.store(this, rl::mo_release, $);  // cl_b14: R1 after the ring_ load
      poll();
    }
    if (!g_deque_orders.hazard_clear_after_read) {
      hazard.store(nullptr, rl::mo_release, $);  // cl_b11: R3 before the slot read
      poll();
    }
    const int item = r->get_for_steal(t);
    poll();
    if (g_deque_orders.hazard_clear_after_read) hazard.store(nullptr, rl::mo_release, $);  // (R3)
    poll();
    if (!top.compare_exchange_strong(t, t + 1, rl::mo_seq_cst, $, rl::mo_relaxed, $)) {
      return Steal::retry;
    }
    out = item;
    return Steal::success;
  }

  // Owner only: the header's reclaim(). barrier() is S2; named() is S3 (true: a hazard slot,
  // read with acquire, names this deque). The model's runs shrink at most once.
  template <class Barrier, class Named>
  void reclaim(Barrier barrier, Named named) {
    const int t = top.load(rl::mo_acquire, $);     // (S0)
    const int b = bottom.load(rl::mo_relaxed, $);  // owner's word
    if (t != b) return;
    top_seen = t;
    Ring* cur = ring.load(rl::mo_relaxed, $);
    if (cur->mask($) + 1 != initial_cap) {
      RL_ASSERT(rings_used == 2);
      Ring* r = &rings[rings_used++];
      r->init(initial_cap);
      ring.store(r, rl::mo_release, $);  // (S1)
      retired[n_retired++] = current;
      current = rings_used - 1;
    }
    if (n_retired == 0) return;
    barrier();                                                           // (S2)
    if (named(this)) return;                                             // (S3)
    for (int i = 0; i < n_retired; ++i) rings[retired[i]].freed($) = 1;  // the free
    n_retired = 0;
  }

  // Any thread: size_hint() == 0, the header's order (both loads relaxed, bottom_ first).
  bool empty_hint() {
    const int b = bottom.load(rl::mo_relaxed, $);
    const int t = top.load(rl::mo_relaxed, $);
    return b <= t;
  }
};

}  // namespace parkpool::model

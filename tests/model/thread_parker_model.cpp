// Relacy model of the thread-parker protocols of <parkpool/thread_parker.hpp>:
//   - ParkThread shutdown: flag (S1)/(S2) + unpark, over the production Parker protocol
//     (include/parkpool/detail/parker_protocol.hpp instantiated with a Relacy backend);
//   - block_on's completion word (B1)-(B5) when the root coroutine finishes on another thread;
//   - block_on's ready queue (Q1)-(Q3) with wakes from several threads.
// The ParkThread and block_on logic is restated here step by step from include/parkpool/
// thread_parker.hpp and src/thread_parker.cpp (labels as in the code); the Parker is the
// production code itself.
//
// Why shutdown never leaves a thread asleep (the argument the model checks): shutdown stores the
// flag (S1) and then unparks. A park that reads the flag as false goes to the Parker. Either the
// shutdown token is still in the word (this park consumes it) or an earlier park consumed it; that
// park synchronized with the unpark, which follows (S1), so this later park must have seen the
// flag: contradiction. Hence at most one park uses the token and no park sleeps after shutdown.
//
// Broken variants (each must be rejected):
//   shutdown_without_unpark  shutdown sets the flag but does not unpark: the parked owner sleeps
//                            forever (Relacy: deadlock)
//   shutdown_relaxed         (S1)/(S2) relaxed: a park that returns on the flag does not see the
//                            writes made before shutdown() (Relacy: data race)
//   complete_without_wake    a foreign completer replaces kSleeping by kDone without waking the
//                            owner (Relacy: deadlock)
//   complete_relaxed         the completer's (B3)/(B3') are relaxed: block_on returns without
//                            seeing the coroutine's result (Relacy: data race)
//   push_relaxed             (Q2) relaxed: the owner resumes a node whose contents are not
//                            visible to it (Relacy: data race)
//   complete_no_retry        a completer whose (B3') CAS fails (the owner went back from
//                            kSleeping to kRunning, woken by a stale token) gives up instead of
//                            looking again: the owner then parks for good (Relacy: deadlock;
//                            reached only by the stale-token suite, 3b)
//
// The marker lines are read by tests/model/CMakeLists.txt and must stay one line each.
// clang-format off
// PARKPOOL_MODEL_CORRECT: correct
// PARKPOOL_MODEL_BROKEN: shutdown_without_unpark shutdown_relaxed complete_without_wake complete_relaxed push_relaxed complete_no_retry
// clang-format on
#include "model_main.hpp"
#include "model_parker.hpp"  // first: it orders the protocol header before Relacy

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

namespace {

using parkpool::UnparkReason;
using parkpool::detail::Deadline;
using parkpool::detail::kEmpty;
using parkpool::detail::WaitStatus;

enum class Variant {
  correct,
  shutdown_without_unpark,
  shutdown_relaxed,
  complete_without_wake,
  complete_relaxed,
  push_relaxed,
  complete_no_retry
};
Variant g_variant = Variant::correct;

using parkpool::model::to_rl;
using Word = parkpool::model::ModelWord;
using Backend = parkpool::model::ModelParkerBackend;
using Protocol = parkpool::model::ModelParkerProtocol;

// ---- ParkThread: Parker + shutdown flag ------------------------------------------------------
struct ModelParkThread {
  Word state;
  Backend backend;
  rl::atomic<bool> shutdown_flag;

  void init() {
    state.v.store(static_cast<int>(kEmpty), rl::mo_relaxed, $);
    shutdown_flag.store(false, rl::mo_relaxed, $);
  }
  void unpark() { Protocol::unpark(state, backend); }
  bool is_shutdown() {
    // (S2)
    return shutdown_flag.load(
        g_variant == Variant::shutdown_relaxed ? rl::mo_relaxed : rl::mo_acquire, $);
  }
  void park() {
    if (is_shutdown()) return;
    if (Protocol::try_consume(state)) return;
    Protocol::park_slow(state, backend, Deadline::forever(), 0);
  }
  void shutdown() {
    // (S1)
    shutdown_flag.store(
        true, g_variant == Variant::shutdown_relaxed ? rl::mo_relaxed : rl::mo_release, $);
    if (g_variant != Variant::shutdown_without_unpark) unpark();
  }
};

// 1. Shutdown racing with an owner that parks repeatedly: every park returns, and a park that
//    returns because of the shutdown sees what was written before shutdown().
struct ShutdownWakesOwner : rl::test_suite<ShutdownWakesOwner, 2> {
  ModelParkThread p;
  rl::var<int> data;
  void before() { p.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      p.park();
      p.park();
      p.park();
      RL_ASSERT(data($) == 1);
    } else {
      data($) = 1;
      p.shutdown();
    }
  }
};

// 2. Shutdown plus an ordinary unparker: the owner's three parks still all return.
struct ShutdownWithUnparker : rl::test_suite<ShutdownWithUnparker, 3> {
  ModelParkThread p;
  void before() { p.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      p.park();
      p.park();
      p.park();
      RL_ASSERT(p.is_shutdown() || g_variant == Variant::shutdown_relaxed);
    } else if (index == 1) {
      p.unpark();
    } else {
      p.shutdown();
    }
  }
};

// ---- block_on: completion word and ready queue -----------------------------------------------
constexpr int kRunning = 0;
constexpr int kSleeping = 1;
constexpr int kDone = 2;

struct Node {
  rl::var<int> payload;
  Node* next = nullptr;  // written by the pusher before (Q2), read by the owner after (Q3)
};

struct ModelBlockOn {
  ModelParkThread owner_parker;
  rl::atomic<int> state;
  rl::atomic<Node*> ready;
  rl::var<int> waker;      // BlockOnContext::waker_: written by the owner, read by completers
  bool waker_set = false;  // owner only

  void init() {
    owner_parker.init();
    state.store(kRunning, rl::mo_relaxed, $);
    ready.store(nullptr, rl::mo_relaxed, $);
    waker_set = false;
  }

  // BlockOnContext::push (+ the wake Resumption::resume does from another thread).
  void push_and_wake(Node& n) {
    Node* head = ready.load(rl::mo_relaxed, $);  // (Q1)
    for (;;) {
      n.next = head;
      // (Q2)
      if (ready.compare_exchange_strong(
              head, &n, g_variant == Variant::push_relaxed ? rl::mo_relaxed : rl::mo_release, $,
              rl::mo_relaxed, $)) {
        break;
      }
    }
    owner_parker.unpark();  // Waker::wake
  }

  // BlockOnContext::complete_foreign.
  void complete_foreign() {
    const rl::memory_order rel =
        g_variant == Variant::complete_relaxed ? rl::mo_relaxed : rl::mo_acq_rel;
    // Relacy requires failure <= success; the broken variant weakens both.
    const rl::memory_order fail =
        g_variant == Variant::complete_relaxed ? rl::mo_relaxed : rl::mo_acquire;
    int s = state.load(rl::mo_acquire, $);  // (B2)
    for (;;) {
      if (s == kRunning) {
        if (state.compare_exchange_strong(s, kDone, rel, $, fail, $)) return;  // (B3)
        continue;
      }
      RL_ASSERT(s == kSleeping);
      RL_ASSERT(waker($) == 1);  // INV-B2: the owner's waker is initialized and readable
      if (state.compare_exchange_strong(s, kDone, rel, $, fail, $)) {  // (B3')
        if (g_variant != Variant::complete_without_wake) owner_parker.unpark();
        return;
      }
      // MUTATION complete_no_retry: give up when the owner went back to kRunning meanwhile
      // (the completion is lost: the owner sleeps forever on kSleeping).
      if (g_variant == Variant::complete_no_retry) return;
    }
  }

  // BlockOnContext::drain_ready; `on_node` processes a node (may complete the root).
  template <class F>
  bool drain(F on_node) {
    Node* list = ready.exchange(nullptr, rl::mo_acquire, $);  // (Q3)
    if (list == nullptr) return false;
    while (list != nullptr) {
      Node* next = list->next;
      on_node(*list);
      list = next;
    }
    return true;
  }

  // BlockOnContext::run after the first resumption.
  template <class F>
  void run_loop(F on_node) {
    for (;;) {
      if (state.load(rl::mo_acquire, $) == kDone) break;  // (B5)
      if (drain(on_node)) continue;
      if (!waker_set) {  // ensure_waker: production writes waker_ once (if (!waker_))
        waker($) = 1;
        waker_set = true;
      }
      int s = kRunning;
      if (!state.compare_exchange_strong(s, kSleeping, rl::mo_acq_rel, $, rl::mo_acquire, $)) {
        break;  // (B1) failed: kDone
      }
      if (ready.load(rl::mo_relaxed, $) == nullptr) owner_parker.park();
      s = kSleeping;
      if (!state.compare_exchange_strong(s, kRunning, rl::mo_acquire, $, rl::mo_acquire, $)) {
        break;  // (B4) failed: kDone
      }
    }
  }
};

// 3. The root coroutine finishes on another thread (a foreign awaitable moved it there):
//    block_on returns, exactly after seeing the result.
struct ForeignCompletion : rl::test_suite<ForeignCompletion, 2> {
  ModelBlockOn b;
  rl::var<int> result;
  void before() { b.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      b.run_loop([](Node&) { RL_ASSERT(false); });
      RL_ASSERT(result($) == 42);
    } else {
      result($) = 42;
      b.complete_foreign();
    }
  }
};

// 3b. As 3, plus a stale token on the owner's block_on parker (a Resumption wake whose node the
//     owner drained before parking, or a wake meant for a nested block_on on the same thread):
//     the owner may return to kRunning after the completer saw kSleeping, which is the
//     completer's retry path.
struct ForeignCompletionStaleToken : rl::test_suite<ForeignCompletionStaleToken, 3> {
  ModelBlockOn b;
  rl::var<int> result;
  void before() { b.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      b.run_loop([](Node&) { RL_ASSERT(false); });
      RL_ASSERT(result($) == 42);
    } else if (index == 1) {
      result($) = 42;
      b.complete_foreign();
    } else {
      b.owner_parker.unpark();
    }
  }
};

// 4. Two resumptions queued from two threads (e.g. two AsyncEvents): both run on the owner,
//    which sees each node's contents; the owner completes the root after the second.
struct ReadyQueue : rl::test_suite<ReadyQueue, 3> {
  ModelBlockOn b;
  Node n1, n2;
  int seen = 0;
  void before() {
    b.init();
    seen = 0;
  }
  void thread(unsigned index) {
    if (index == 0) {
      b.run_loop([this](Node& n) {
        RL_ASSERT(n.payload($) == (&n == &n1 ? 1 : 2));
        if (++seen == 2) b.state.store(kDone, rl::mo_relaxed, $);  // complete() on the owner
      });
      RL_ASSERT(seen == 2);
    } else if (index == 1) {
      n1.payload($) = 1;
      b.push_and_wake(n1);
    } else {
      n2.payload($) = 2;
      b.push_and_wake(n2);
    }
  }
};

using parkpool::model::simulate;

}  // namespace

// Runs the suites for one variant; `known` tells model_main the variant exists.
static bool run_model(const std::string& v, int& known) {
  static const std::pair<const char*, Variant> kVariants[] = {
      {"correct", Variant::correct},
      {"shutdown_without_unpark", Variant::shutdown_without_unpark},
      {"shutdown_relaxed", Variant::shutdown_relaxed},
      {"complete_without_wake", Variant::complete_without_wake},
      {"complete_relaxed", Variant::complete_relaxed},
      {"push_relaxed", Variant::push_relaxed},
      {"complete_no_retry", Variant::complete_no_retry}};
  known = 0;
  for (const auto& [name, variant] : kVariants) {
    if (v == name) {
      g_variant = variant;
      known = 1;
    }
  }
  if (known == 0) return false;
  const rl::iteration_t iters = 500000;
  // A broken variant stops at the first suite that rejects it (the others would pass: each bug
  // lives in one protocol).
  return simulate<ShutdownWakesOwner>("ShutdownWakesOwner", iters) &&
         simulate<ShutdownWithUnparker>("ShutdownWithUnparker", iters) &&
         simulate<ForeignCompletion>("ForeignCompletion", iters) &&
         simulate<ForeignCompletionStaleToken>("ForeignCompletionStale", iters) &&
         simulate<ReadyQueue>("ReadyQueue", iters);
}

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

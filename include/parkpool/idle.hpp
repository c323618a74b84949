// parkpool/idle.hpp: idle-worker coordination, the drop-in piece any pool of N workers can use.
//
// Contract
// --------
// What: an IdleCoordinator decides, for a pool of `workers` threads, how long an idle worker spins,
//   how many workers may search for work at once, whom to wake when work arrives (a sleeper that
//   went to sleep on the waker's CPU, else the most recently parked; see "Whom to wake") and when
//   (a submit wakes one sleeper only if no worker is searching; the last searcher to find work
//   wakes the next sleeper, so a burst ramps up one worker at a time instead of as a herd). Each
//   worker owns a parkpool::Parker; sleeping is spin -> one timed park (if IdleOptions::timed_park
//   > 0; the latency preset) -> untimed park, all configurable (IdleOptions, three presets).
// How a pool uses it (worker w, running on its own thread):
//     auto has_work = [&] { return !queues_empty(); };
//     for (;;) {
//       if (Task t = pop_local_or_steal_or_injector()) {
//         idle.found_work(w, has_work);
//         run(t);
//         continue;
//       }
//       if (!idle.wait_for_work(w, has_work)) break;  // shutdown (drain first if promised)
//     }
//   and a submitter: `publish(task); idle.notify_work();`, and once: `idle.shutdown();`.
//   A worker that publishes while it runs a task (a push on its own deque) may call
//   notify_work_local(w) instead: see "Worker-local publication".
//   A worker that wants to search other queues first calls try_start_searching(w); see below.
// Thread-safety: notify_work(), shutdown(), unparker(), stats(), searching(), sleeping() may be
//   called from any thread. The worker-side calls for a given index w (try_start_searching,
//   found_work, wait_for_work, notify_work_local) must come from one thread at a time, normally
//   worker w itself: they keep per-worker state that only that thread touches.
// Memory ordering, in user terms (INV-NOLOST, argued in pool/SLEEP.md and checked by
//   tests/model/idle_model.cpp): if a task is published before notify_work() is called, then
//   at least one worker will afterwards call has_work() and see it, or is running and will come
//   back to the queues, unless shutdown() was called. Requirements on the pool: publication must
//   be an atomic store / RMW or happen under a mutex, and has_work() must read it atomically or
//   under the same mutex (plain non-atomic reads racing with writes are a data race anyway).
//   notify_work() is a seq_cst fence + a relaxed load; the worker side is an RMW on the state
//   word + a seq_cst fence, then the re-check: the store->load (Dekker) handshake needs seq_cst
//   on both sides. Work published before a notify_work() that woke a worker happens-before that
//   worker's return from wait_for_work() (the Parker's release/acquire token), unless a late
//   unpark from an earlier claim of the same worker, or a foreign unparker(w).unpark(), ended
//   that park first: the worker then returns counted as a searcher without that ordering, and
//   sees the work when it looks again (at the latest in the re-check of its next announce, which
//   the claim's mutex_ orders after the publication), so nothing is lost either way.
// Orderings: every RMW on the state word is relaxed; three seq_cst fences carry the handshake
//   (notify_work, after the announce, before has_more() on the last-searcher path). Under TSAN
//   (which does not model fences) they become acq_rel RMWs on the state word. The Relacy model
//   tests/model/idle_model.cpp checks both and rejects each fence's removal.
// Worker-local publication: notify_work_local(w), from worker w's thread while it is working
//   (after found_work() for its task, before its next try_start_searching() / wait_for_work()),
//   has notify_work()'s contract at a lower price when asymmetric() is true: a compiler barrier
//   and a relaxed load, no fence. The price moves to the two checks that must see such a
//   publication: the re-check after the announce (A1) and has_more() on the last-searcher path
//   (R1). When such a check finds nothing while the state word shows another worker working,
//   the worker issues a process-wide barrier (Linux membarrier(2),
//   MEMBARRIER_CMD_PRIVATE_EXPEDITED: every running thread of the process executes a full
//   barrier, by IPI) and checks again. A worker counted as searching or asleep then either
//   publishes later, after an RMW on the state word that follows ours in its modification
//   order, so that its notify reads our announce, or published before it went idle and finds
//   its own task in its own queue (pool/SLEEP.md, "Asymmetric barrier", Lemma H). asymmetric() is
//   false under TSAN, with IdleOptions::asymmetric_barrier false, and where the kernel lacks the
//   command (or refuses it: seccomp, valgrind): notify_work_local() is then notify_work(). The
//   kernel is asked once per process, by the first coordinator that wants the barrier. If the
//   command fails later (a seccomp filter installed after that), the worker registers again,
//   then falls back to MEMBARRIER_CMD_GLOBAL (an RCU grace period: milliseconds per call); if
//   that fails too, the process terminates with a message on stderr rather than risk a lost
//   wakeup. A call from another thread, or from worker w while it is counted as searching or
//   asleep, may lose the wake (checked by an assertion in debug builds for the searching case).
// Spurious returns: wait_for_work() may return true with no work available (a stale Parker
//   token, a foreign unparker(w).unpark(), a racing claim); callers just look again. It never
//   returns false before shutdown().
// Lifetime: the coordinator must outlive every call into it; the Unparkers returned by
//   unparker(w) may be copied and outlive it (unpark on a dead parker is a no-op).
// Whom to wake: among the sleepers, the most recently parked one that announced its sleep on the
//   CPU the waker runs on (the rseq area's CPU field on Linux); if none did, the most recently
//   parked one (LIFO: warm cache). Why the CPU first: a wake that runs on another CPU than the
//   waker's has to wake that idle CPU first (an IPI; on a VM the hypervisor must run the halted
//   vCPU again), and the kernel's placement looks at the CPU the thread last ran on: a sleeper that
//   slept on the waker's CPU ran there in our measurements, as soon as the waker blocked or
//   yielded. Measurements: pool/SLEEP.md, "Whom to wake". The CPU is a hint read at the announce: a
//   worker that migrates between its announce and its park only makes one choice a worse guess;
//   no wake depends on it.
// Fairness: within that rule wakes are LIFO; a long-idle worker may stay asleep indefinitely
//   while others suffice. That is the point. A worker spinning on a budget of 5 us or more yields
//   its CPU (sched_yield) every 64 spin rounds, so it does not hold a CPU that another runnable
//   thread of the process or machine needs for the length of its budget; a shorter spin never
//   yields (a yield that lets another thread run costs the spinner that thread's whole run while
//   it still counts as a searcher, and a short spin holds the CPU only briefly anyway).
// Cost: notify_work() when no wake is needed: one fence + one load, no RMW on a shared line, no
//   syscall; notify_work_local() with asymmetric(): one load. An announce whose re-check found
//   nothing, or a last searcher whose has_more() said false, while another worker works: one
//   membarrier syscall (an IPI per CPU running a thread of the process), then the check again. When
//   a wake is needed: the CPU from the rseq area (a TLS load; sched_getcpu() without rseq), an
//   uncontended mutex, one CAS, a scan of at most workers() 8-byte sleeper entries, the Parker's
//   unpark (one exchange + FUTEX_WAKE); on the woken side, a few prefetches and the on_wake hook.
//   found_work() of a non-searching worker: a branch on thread-owned state.
// Bad input: workers == 0 or workers > kMaxWorkers, spin_min > spin_max, spin_max >
//   IdleOptions::kSpinLimit, negative durations -> std::invalid_argument from the constructor. A
//   worker index >= workers() passed to any call taking one terminates the process with a
//   message on stderr (checked in every build: the call is noexcept and the index selects
//   the slot it would write). A has_work() or has_more() that throws terminates the process
//   (std::terminate): the worker's count in the sleep protocol cannot be unwound.
#pragma once

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "parkpool/detail/cpu_relax.hpp"
#include "parkpool/detail/futex_lock.hpp"
#include "parkpool/parker.hpp"

namespace parkpool {

// Configuration. The default-constructed value is the "default" preset. Spin budgets are time,
// never iteration counts (a count-based spin varies 100x across CPUs: onnxruntime PR 27916).
struct IdleOptions {
  // Adaptive spin budget per worker, in [spin_min, spin_max]. Doubled after a spin that found
  // work. When an idle episode ends after the spin (a wake, or the re-check found work) after g:
  // g < spin_max -> budget = 2g (a spin that long would have caught it, with margin for jitter);
  // g >= spin_max -> halved (spinning would not have helped). For a wake, g ends when the waker
  // claimed this worker (just before its FUTEX_WAKE), not when the woken thread got a CPU back:
  // that latency (5-50 us on the 2-vCPU VM) is not idle time a spin would have had to cover, and
  // counting it halved the budget of a worker whose spin would have caught the work (sparse load,
  // 18 us gaps: the budget fell to spin_min and stayed there, parks 3-4.5k per 25k tasks against
  // 1.4-1.7k, 2026-12-01). On x86 the claim's time is a time-stamp-counter read (no vDSO page to
  // miss on the waker's path; see detail::idle_ticks), which the woken worker converts at a rate
  // it measures against steady_clock from 1 ms after construction on (a wake in that first
  // millisecond ends g at the worker's own clock read); other targets stamp with steady_clock.
  // Dropped to spin_min when a timed park expires (the pool went idle). A miss alone never
  // shrinks the budget, so periodic load whose gap exceeds the current budget grows it back
  // instead of ratcheting it down.
  // spin_max == 0 disables spinning; spin_min == 0 acts as min(spin_max, 1 us) as the floor, so
  // a budget can always grow back after hits. spin_max above kSpinLimit is rejected: the
  // budget's arithmetic (a deadline on steady_clock, doubling) must stay far from overflow, and a
  // spin that long is a worker that never sleeps anyway.
  static constexpr std::chrono::nanoseconds kSpinLimit{std::chrono::hours(1)};
  // 25 us: DESIGN.md measured on this 2-core VM that waking a sleeping core costs ~15 us and a
  // blocking ping-pong ~50 us, while a ~25 us spin brings a hand-off to ~0.3 us. With at most half
  // the workers spinning (2 workers -> 1 spinner), the idle burn after a burst is bounded by
  // ~25 us + two park syscalls per idle episode, inside the 0.1 ms / 200 ms target.
  std::chrono::nanoseconds spin_min{std::chrono::microseconds(2)};
  std::chrono::nanoseconds spin_max{std::chrono::microseconds(25)};
  // After the spin and the announce/re-check: one park_timeout(timed_park) (0 = skip), then, if it
  // expired, one more has_work() check and an untimed park. A timed park wakes no faster than the
  // untimed one (both are one FUTEX_WAIT ended by the same FUTEX_WAKE); its expiry only resets the
  // spin budget to spin_min and re-checks the queues once, at the cost of a timer wakeup per worker
  // per idle episode. Default 0 (skip): with 1 ms, the two workers' expiries were most of the
  // pool's CPU after a burst: workers 33-38 us per 200 ms idle window, process 75 us,
  // against 1.5-10 us and 39-46 us with 0 (2 workers, 100k-task bursts, 19 windows per run, 2 runs
  // alternating, loaded 2-vCPU VM, 2026-11-30); wake latency is unchanged by construction. Without
  // the expiry a long idle period still shrinks the budget: each wake after g >= spin_max halves it
  // (above).
  std::chrono::nanoseconds timed_park{0};
  // Maximum number of workers searching (and spinning) at once; 0 = half the workers, at least 1.
  // Values above the worker count are clamped to it.
  std::size_t max_searching = 0;
  // Let notify_work_local() skip its fence, paid for by a membarrier syscall on the sleep path
  // (see "Worker-local publication" above). Used only where the kernel provides
  // MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux >= 4.14) and not under TSAN. It cut fork-join
  // fib(27) with TaskGroup (one notify per run()) by about a quarter on the 2-vCPU VM
  // (pool/SLEEP.md, "Asymmetric barrier"). false: notify_work_local() is notify_work() (one
  // seq_cst fence per call) and the sleep path makes no membarrier call: for a process whose
  // CPUs must not take IPIs.
  bool asymmetric_barrier = true;

  // Shortest start latency: longer spins (a budget of 10 to 100 us; 100 us is 4x the measured
  // hand-off break-even), and a 2 ms timed park whose expiry resets the spin budget to 10 us.
  // Burns more CPU after each burst.
  static IdleOptions latency() noexcept;
  // Least CPU: no spin (spin_max 0), no timed park (straight to the untimed park), one searcher.
  // Wake latency is then the bare futex wake. Until 2026-12-01 it spun up to 2 us: at one task
  // every 20 us that spin never found work and cost ~1.3 us of CPU per task (pool/SLEEP.md,
  // "Tuning").
  static IdleOptions efficiency() noexcept;
};

// Per-worker counters. Each field is written only by the worker's own thread (no RMW, no shared
// line); a snapshot read from another thread is approximate while the worker runs.
struct IdleWorkerStats {
  std::uint64_t parks = 0;            // park() / park_timeout() calls (one may return at once
                                      // when a token is already pending)
  std::uint64_t unparks = 0;          // parks ended by an unpark: a wake issued to this worker
                                      // (claim or shutdown), a foreign unpark, or a stale token
  std::uint64_t timed_out_parks = 0;  // park_timeout() calls that expired
  std::uint64_t spin_hits = 0;        // has_work() became true while spinning (no park needed)
  std::uint64_t spin_yields = 0;      // sched_yield() calls made while spinning (see
                                      // detail::kSpinYieldMinBudget)
  IdleWorkerStats& operator+=(const IdleWorkerStats& o) noexcept {
    parks += o.parks;
    unparks += o.unparks;
    timed_out_parks += o.timed_out_parks;
    spin_hits += o.spin_hits;
    spin_yields += o.spin_yields;
    return *this;
  }
};

namespace detail {
struct IdleTestAccess;  // white-box tests
// Spin rounds (a pause and a has_work() call each) between two yields (sched_yield) in the spin
// phase of wait_for_work(); a power of two, a multiple of 8 (the clock-check period).
inline constexpr unsigned kSpinYieldRounds = 64;
static_assert((kSpinYieldRounds & (kSpinYieldRounds - 1)) == 0 && kSpinYieldRounds % 8 == 0);
// The shortest spin budget whose spin yields (every kSpinYieldRounds rounds). A shorter spin
// never yields: it cannot hold a CPU long, while a yield that does let another thread run (the
// I/O thread that the worker's own task just woke, on the same CPU) takes the spinner off the CPU
// for that thread's whole run, still counted as a searcher, and adds two context switches. At
// the budget's floor (2 us, where a server's workers sit at 1k requests/s) the 64th round came
// before the deadline, so every idle episode made such a yield: pool/SLEEP.md, "Tuning".
inline constexpr std::chrono::nanoseconds kSpinYieldMinBudget{std::chrono::microseconds(5)};

// The claim stamp's clock (Slot::claimed_at_tick): the x86 time-stamp counter, read without a
// memory access; steady_clock nanoseconds on other targets (kIdleTicksAreNs). Why not steady_clock
// everywhere: its vDSO read loads the kernel's vvar page, and on the wake path, after the
// submitter slept, that page is cold: the one clock read took 3.8-4.5 us of a ~9 us submit path
// on the 2-vCPU dev VM (2026-12-02; a second read right after it: 40 ns), while rdtsc reads no
// memory at all. The owner converts ticks to nanoseconds with a rate it measures against
// steady_clock (IdleCoordinator::ns_per_tick). Assumes an invariant TSC, synchronized across
// CPUs (what Linux requires before it uses the TSC as its clocksource); where that fails, only
// the adaptive spin budget errs, within [spin_min, spin_max]: no part of the handshake reads it.

// How long after construction a worker starts trusting its tick rate (ns_per_tick).
inline constexpr std::int64_t kTickCalibrationNs = 1'000'000;
#if defined(__x86_64__) || defined(__i386__)
inline constexpr bool kIdleTicksAreNs = false;
inline std::int64_t idle_ticks() noexcept {
  return static_cast<std::int64_t>(__builtin_ia32_rdtsc());
}
#else
inline constexpr bool kIdleTicksAreNs = true;
inline std::int64_t idle_ticks() noexcept {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}
#endif
}  // namespace detail

class IdleCoordinator {
 public:
  static constexpr std::size_t kMaxWorkers = 0xFFFF;  // the counters are 16-bit fields of state_

  // Throws std::invalid_argument on workers == 0, workers > kMaxWorkers, or bad options.
  explicit IdleCoordinator(std::size_t workers, IdleOptions options = {});
  IdleCoordinator(const IdleCoordinator&) = delete;
  IdleCoordinator& operator=(const IdleCoordinator&) = delete;
  ~IdleCoordinator();

  // ---- Worker side (worker = index in [0, workers())), from that worker's thread. ----

  // Becomes a searcher (counted, so notify_work() relies on it instead of waking a sleeper).
  // Returns true if the worker is (now or already) searching; false if max_searching workers
  // already search or shutdown() was called: the worker should call wait_for_work(), which then
  // parks without spinning.
  bool try_start_searching(std::size_t worker) noexcept;

  // The worker got a task. If it was searching it stops; if it was the last searcher and a
  // worker sleeps, wakes one ("Whom to wake", as a searcher): ramp-up without a herd.
  // Cheap no-op for a worker that was not searching: call it on every task found.
  // This form wakes the next sleeper whenever it was the last searcher (tokio's rule): under
  // sparse load that is one wasted wake (and spin) per task. Prefer the overload below.
  void found_work(std::size_t worker) noexcept;

  // Same, but the last searcher wakes the next sleeper only if has_more() says work is still
  // queued (called after a seq_cst fence, so it sees every task whose notify_work() skipped the
  // wake because this worker searched: SLEEP.md case 3). has_more() has the contract of
  // has_work() (cheap, noexcept, no calls back into *this); it is called only on the
  // last-searcher path with sleepers, so the common path stays one branch: once, or, with the
  // asymmetric barrier while another worker works, a second time after the membarrier if the
  // first call said false.
  template <class HasMore>
  void found_work(std::size_t worker, HasMore&& has_more) noexcept {
    Slot& s = slot(worker);
    if (!s.searching) return;
    s.searching = false;
    const LastSearcher last = stop_searching_slow();
    if (last == LastSearcher::no) return;
    bool more = has_more();
    if (!more && last == LastSearcher::others_working) {
      heavy_barrier();  // (H): now has_more() also sees notify_work_local() publications
      more = has_more();
    }
    if (more) wake_one_slow();
  }

  // The worker found no work. Spins (only if it is or may become a searcher) for its adaptive
  // budget calling has_work(); then announces it sleeps, re-checks has_work() (the store->load
  // handshake, seq_cst on both sides), and parks: park_timeout(timed_park), one more has_work()
  // check, then an untimed park. Returns true when work may be available or the worker was
  // woken (it is then searching: call found_work() when it gets a task), false once shutdown()
  // was called. has_work() must be cheap, must not throw (a throw terminates the process), and
  // must not call back into *this; it is called on this thread only. A worker counted as a
  // searcher beyond max_searching (woken by a claim) skips the spin: at most max_searching
  // workers spin at once.
  template <class HasWork>
  bool wait_for_work(std::size_t worker, HasWork&& has_work) {
    return wait_for_work(worker, std::forward<HasWork>(has_work), []() noexcept {});
  }
  // Same, with a wake hook: on_wake() runs on this thread right after a park ends because of an
  // unpark (a notify's claim, shutdown, or a foreign unpark), before the coordinator's own
  // bookkeeping; not after a spin hit, a re-check that found work, or a timed park that expired.
  // It is the place to prefetch what the worker reads on its way to its task: after a sleep
  // those lines are cold, and the path reads them one after another, each waiting for the last
  // (pool/SLEEP.md, "Tuning"). The coordinator prefetches its own lines there too. on_wake must
  // be cheap and noexcept and must not call into *this.
  template <class HasWork, class OnWake>
  bool wait_for_work(std::size_t worker, HasWork&& has_work, OnWake&& on_wake) {
    return wait_for_work_impl<false>(worker, std::forward<HasWork>(has_work),
                                     std::forward<OnWake>(on_wake), std::chrono::nanoseconds{0},
                                     []() noexcept {});
  }
  // Same, with a long-idle hook: for a worker that holds something it should give back only if
  // it stays idle (the pool: the grown rings of its deque). If the worker has been in this call
  // for `hold` (from its entry, the spin included) without being woken or finding work, it calls
  // on_long_idle() once, then checks has_work() once more and parks untimed as usual. The sleep
  // is then: spin, announce and re-check, the timed park of IdleOptions::timed_park if any,
  // park_timeout() for what is left of `hold`, on_long_idle(), a has_work() check, an untimed
  // park. hold <= 0: on_long_idle() runs right after the re-check (and the timed park, if any),
  // before the untimed park. A hold past what steady_clock can reach (nanoseconds::max()) never
  // ends: the timed park then lasts until a wake, and the hook never runs. A wake, a found work
  // or shutdown() before the hold ends skips the hook: it runs at most once per call, and never
  // in a call that returns early.
  // on_long_idle() runs on this thread, while this worker is still announced asleep (in the
  // sleepers, counted by sleeping()): a notify_work() meanwhile may claim it, and its unpark then
  // makes the following park return at once, so a wake that comes during or right after the hook
  // is not lost (pool/SLEEP.md, "Long-idle hook"). It must be noexcept (a throw would leave the
  // worker announced), may take its time (it delays only this worker's own wake) and may call
  // heavy_barrier(), notify_work(), the statistics, searching() and sleeping(); it must not call
  // the worker-side calls for any index (wait_for_work, found_work, try_start_searching,
  // notify_work_local: this worker is not working) nor shutdown(). The plain forms above never
  // arm a timer and make no clock read for this.
  template <class HasWork, class OnWake, class OnLongIdle>
  bool wait_for_work(std::size_t worker, HasWork&& has_work, OnWake&& on_wake,
                     std::chrono::nanoseconds hold, OnLongIdle&& on_long_idle) {
    return wait_for_work_impl<true>(worker, std::forward<HasWork>(has_work),
                                    std::forward<OnWake>(on_wake), hold,
                                    std::forward<OnLongIdle>(on_long_idle));
  }

  // ---- Submitter side, any thread. ----

  // Call after publishing a task. Wakes one sleeper ("Whom to wake") only if no worker is
  // searching. No syscall and no RMW on a shared line when a worker searches or none sleeps.
  void notify_work() noexcept;

  // notify_work() for worker w's own publication, from w's thread while it is working (see
  // "Worker-local publication"): with asymmetric(), a compiler barrier and one relaxed load when
  // no wake is needed; otherwise notify_work().
  void notify_work_local(std::size_t worker) noexcept {
    // A worker drains after shutdown() without calling found_work(): its flag may be stale then,
    // and the shutdown bit makes this call return before anything depends on it.
    [[maybe_unused]] const Slot& s = slot(worker);  // the index is checked in every build
    assert((!s.searching || is_shutdown()) &&
           "IdleCoordinator: notify_work_local() from a searching worker");
    const std::uint64_t cur = local_fence_load();
    if (searching_of(cur) != 0 || sleeping_of(cur) == 0 || (cur & kShutdownBit) != 0) return;
    wake_one_slow();
  }

  // Same, for a submitter that can tell whether work is piling up. notify_work() trusts a
  // counted searcher to find the task; but a searcher that is not actually running (a woken
  // worker the OS has not scheduled yet, or a spinner preempted) then holds back every task
  // published meanwhile until it runs: up to a scheduler slice, milliseconds, while other workers
  // sleep. This form also wakes a sleeper while workers are searching when backlog() says that
  // work published before this task is still queued (the searchers are not keeping up).
  // backlog() is called only on that path (a worker searches and one sleeps), after the fence;
  // it must be cheap, noexcept and not call back into *this. A wrong answer costs a wasted wake
  // (true) or the plain notify_work() behaviour (false), never a lost wakeup.
  template <class Backlog>
  void notify_work(Backlog&& backlog) noexcept {
    const std::uint64_t cur = notify_fence_load();
    if (sleeping_of(cur) == 0 || (cur & kShutdownBit) != 0) return;
    if (searching_of(cur) == 0) {
      wake_one_slow();
    } else if (backlog()) {
      wake_one_slow(/*even_if_searching=*/true);
    }
  }

  // For a working worker whose published work nobody has taken for a while although a worker is
  // counted as searching: that searcher is not running (preempted, or woken onto a busy CPU and
  // not yet scheduled). Wakes a sleeper if a worker searches and one sleeps; does nothing when
  // none searches (every awake worker is then working, and one more would only time-slice with
  // them) or none sleeps. Not part of the no-lost-wakeup handshake (publications still need
  // notify_work / notify_work_local): an extra wake only, so one relaxed load and no fence.
  void notify_stalled() noexcept {
    const std::uint64_t cur = state_.load(std::memory_order_relaxed);  // relaxed: a hint
    if (sleeping_of(cur) == 0 || searching_of(cur) == 0 || (cur & kShutdownBit) != 0) return;
    wake_one_slow(/*even_if_searching=*/true);
  }

  // Wakes every sleeping worker; from then on wait_for_work() returns false and
  // try_start_searching() returns false. Idempotent.
  void shutdown() noexcept;

  // The Unparker of worker's Parker. A foreign unpark() makes that worker's wait_for_work()
  // return true (as a searcher); it never loses or corrupts the coordinator's state.
  const Unparker& unparker(std::size_t worker) const noexcept;

  // ---- Observers (snapshots, any thread). ----
  std::size_t workers() const noexcept { return workers_; }
  std::size_t max_searching() const noexcept { return max_searching_; }
  const IdleOptions& options() const noexcept { return options_; }
  // True if notify_work_local() runs without a fence (the asymmetric barrier is in use).
  bool asymmetric() const noexcept { return asymmetric_; }
  // (H) The process-wide barrier, for other protocols of the pool that need one (the deque's
  // ring reclamation, chase_lev_deque.hpp). Contract: only meaningful when asymmetric() is true;
  // then every thread of the process that is running executes a full memory barrier at some
  // point during the call, and a thread not running passed one when it was switched out
  // (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), with the fallbacks of src/idle.cpp; it
  // terminates the process rather than return without that guarantee). When asymmetric() is
  // false it may do nothing at all: the caller must not rely on it then. Any thread; a syscall
  // (an IPI per CPU running a thread of the process): for rare paths only.
  void heavy_barrier() noexcept;
  std::size_t searching() const noexcept;  // workers counted as searching
  std::size_t sleeping() const noexcept;   // workers announced asleep and not yet woken
  // True if some worker searches or is announced asleep: a pool that could keep work private
  // (unstealable) uses it to tell whether anyone would take it. One relaxed load of the state
  // word (a snapshot; a worker that goes idle just after it is seen at the next call).
  bool any_idle() const noexcept {
    const std::uint64_t s = state_.load(std::memory_order_relaxed);  // relaxed: a snapshot
    return searching_of(s) + sleeping_of(s) != 0;
  }
  // Narrower than any_idle(), for a pool with more workers than CPUs to run them: `slack` is
  // workers - (CPUs the workers may run on), 0 when there are no more workers than CPUs. True if
  // more than `slack` workers sleep (a sleeper woken now would have a CPU to itself), or exactly
  // `slack` sleep and one searches (a searcher on a CPU of its own). With slack == 0 it equals
  // any_idle(). False when more workers are awake than there are CPUs, searching or not: one more
  // runnable job only time-slices with them. Costs what any_idle() costs: one relaxed load (a
  // snapshot) and one compare.
  bool idle_capacity(std::uint32_t slack) const noexcept {
    const std::uint64_t s = state_.load(std::memory_order_relaxed);  // relaxed: a snapshot
    // (P << 16 | S) > (slack << 16)  <=>  P > slack, or P == slack and S > 0.
    return (s & ((kCountMask << 16) | kCountMask)) > (std::uint64_t{slack} << 16);
  }
  bool is_shutdown() const noexcept;
  IdleWorkerStats stats(std::size_t worker) const noexcept;
  IdleWorkerStats total_stats() const noexcept;

 private:
  friend struct detail::IdleTestAccess;

  // ---- state_: the one shared word (64-bit, lock-free, own cache line) ----
  //   bits  0..15  S  searching workers (counted by try_start_searching, claims, withdrawals)
  //   bits 16..31  P  sleeping workers  (announced asleep, in sleepers_, not yet claimed)
  //   bit  32      D  shutdown (set once, never cleared)
  // Transitions (who / where / ordering). Every RMW is relaxed: state_ publishes no data; the
  // handshake needs only its modification order plus the seq_cst fences N1 (notify_work), A1
  // (after the announce) and R1 (the last searcher, before has_more()), see src/idle.cpp and
  // pool/SLEEP.md. Under TSAN: N1+N2 an acq_rel RMW, A1 and R0 acq_rel RMWs, no fences.
  //   S+1      try_start_searching, CAS                             relaxed
  //   S-1      found_work, fetch_sub (R0; case 3 uses the last one)  relaxed (+ seq_cst fence R1
  //            before has_more() on the last-searcher path)
  //   P+1,S-s  announce, fetch_add under mutex_ (s = was searching)  relaxed + seq_cst fence (A1)
  //   P-1,S+1  claim (wake one, C1) CAS under mutex_                 relaxed
  //   P-1,S+1  withdraw (re-check found work) under mutex_           relaxed
  //   D        shutdown, fetch_or, then drain under mutex_           relaxed
  //   read     notify_work: seq_cst fence (N1) + relaxed load (N2)
  //   read     notify_work_local with asymmetric_: compiler barrier (L1) + relaxed load (L2);
  //            then an empty re-check after A1 or has_more() after R1 is repeated after a
  //            membarrier (H) while another worker is working
  // INV-P: P == sleepers_.size() whenever mutex_ is free (both change only under mutex_).
  // INV-S: S == number of workers whose slot.searching is true, plus claims (and shutdown's
  //        drain pops) whose woken worker has not yet returned (it sets slot.searching on
  //        return, in on_unparked or withdraw).
  static constexpr std::uint64_t kSearchingOne = 1;
  static constexpr std::uint64_t kSleepingOne = std::uint64_t{1} << 16;
  static constexpr std::uint64_t kCountMask = 0xFFFF;
  static constexpr std::uint64_t kShutdownBit = std::uint64_t{1} << 32;
  static std::size_t searching_of(std::uint64_t s) noexcept { return s & kCountMask; }
  static std::size_t sleeping_of(std::uint64_t s) noexcept { return (s >> 16) & kCountMask; }

  // Per-worker state, one cache line each.
  struct alignas(64) Slot {
    Parker parker;
    // True while this worker is in sleepers_. Written only under mutex_; read by the owner after a
    // park returned (the unpark that follows the write orders it: release/acquire in the Parker).
    std::atomic<bool> in_sleepers{false};
    // Owner-only (no atomics needed): is this worker counted in S; its current spin budget.
    bool searching = false;
    std::int64_t spin_budget_ns = 0;
    // When this idle episode began (adaptive spin), as steady_clock ns and as detail::idle_ticks(),
    // read back to back (with the anchors, they also give the tick rate: ns_per_tick).
    std::int64_t idle_since_ns = 0;
    std::int64_t idle_since_tick = 0;
    // detail::idle_ticks() when a waker claimed this worker (wake_one_slow, only while spinning
    // is enabled), 0 when none: the end of the idle gap for the adaptive budget. Written by the
    // claimer before its unpark, read and reset by the owner after the park returned. Relaxed: a
    // hint, no part of the handshake; a value from another episode (a claim racing a withdraw) is
    // older than idle_since_tick and ignored; a missing one falls back to the owner's clock.
    std::atomic<std::int64_t> claimed_at_tick{0};
    // Single-writer counters (owner); relaxed load+store, read by stats() with relaxed loads.
    std::atomic<std::uint64_t> parks{0}, unparks{0}, timed_out_parks{0}, spin_hits{0},
        spin_yields{0};
  };
  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    // Relaxed: a statistic with a single writer; no other data is published through it.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Checked in every build (one compare and a predicted branch): an index out of range would
  // otherwise write past slots_ and corrupt the sleep protocol silently.
  Slot& slot(std::size_t worker) noexcept {
    if (worker >= workers_) [[unlikely]]
      bad_worker_index(worker);
    return slots_[worker];
  }
  const Slot& slot(std::size_t worker) const noexcept {
    if (worker >= workers_) [[unlikely]]
      bad_worker_index(worker);
    return slots_[worker];
  }
  // Prints the index and workers() to stderr and aborts.
  [[noreturn, gnu::cold]] void bad_worker_index(std::size_t worker) const noexcept;

  // others_working: the state word our own RMW wrote shows another worker working, and the
  // asymmetric barrier is in use: a re-check that finds nothing must be repeated after (H).
  enum class Announce { parked_ok, others_working, shutdown };
  enum class LastSearcher { no, yes, others_working };
  // Out-of-line slow paths (src/idle.cpp).
  Announce announce_sleep(std::size_t worker) noexcept;  // push + (P+1, S-s) + fence
  bool withdraw(std::size_t worker) noexcept;            // re-check found work
  bool on_unparked(std::size_t worker) noexcept;         // after a park returned unparked
  // Right after a park returned unparked: starts the loads of the lines on_unparked() and
  // adapt_after_sleep() read (the slot, state_, options_, the tick anchor), so that they overlap
  // instead of missing one after another (wait_for_work's on_wake).
  void prefetch_after_wake(const Slot& s) const noexcept {
    __builtin_prefetch(&s);
    __builtin_prefetch(&state_);
    __builtin_prefetch(&options_);
    __builtin_prefetch(&anchor_ns_);
  }
  // R0; unless `no`, the caller was the last searcher and workers sleep (and fence R1 ran).
  LastSearcher stop_searching_slow() noexcept;
  // Claim the top sleeper and unpark it; by default only while no worker searches.
  void wake_one_slow(bool even_if_searching = false) noexcept;
  std::uint64_t notify_fence_load() noexcept;  // (N1) + (N2): the submitter's half
  // (L1) + (L2): the light half of the asymmetric handshake (notify_work_local).
  std::uint64_t local_fence_load() noexcept {
    if (!asymmetric_) return notify_fence_load();
    // (L1) compiler barrier only: keeps the caller's publication before (L2) in the program
    // text. The store->load order on the CPU is supplied by the other side's membarrier (H),
    // which runs a full barrier on this thread if it is running (pool/SLEEP.md).
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // (L2) relaxed: what it must see is ordered either by coherence (a worker that was idle at
    // the sleeper's RMW came back to work by a later RMW, R0, sequenced before this load) or by
    // the sleeper's membarrier (H): pool/SLEEP.md, Lemma H.
    return state_.load(std::memory_order_relaxed);
  }
  // True if the asymmetric barrier is in use and `after` (the value this thread's own RMW, A1 or
  // R0, wrote) shows a worker working besides the `self_working` caller: then a re-check that
  // found nothing must be repeated after heavy_barrier() (pool/SLEEP.md, Lemma H).
  bool others_working(std::uint64_t after, std::size_t self_working) const noexcept;
  // wait_for_work(), both forms; kHold: the long-idle form (nothing of it is compiled into the
  // plain one).
  template <bool kHold, class HasWork, class OnWake, class OnLongIdle>
  bool wait_for_work_impl(std::size_t worker, HasWork&& has_work, OnWake&& on_wake,
                          std::chrono::nanoseconds hold, OnLongIdle&& on_long_idle);
  void on_spin_hit(Slot& s) noexcept;
  void adapt_after_sleep(Slot& s) noexcept;  // after a park or a re-check found work
  // The tick rate as of s's episode start: the nanoseconds over the ticks elapsed from
  // construction (anchor_*) to then; 0 (unknown) if less than kTickCalibrationNs had passed.
  double ns_per_tick(const Slot& s) const noexcept;
  void on_timed_out(Slot& s) noexcept;

  alignas(64) std::atomic<std::uint64_t> state_{0};
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "state_ must be lock-free");

  // A sleeping worker and the CPU it announced its sleep on (-1: unknown). Both fields in one
  // contiguous vector, so that choosing a victim scans at most workers * 8 bytes under mutex_,
  // not one Slot line per sleeper.
  struct Sleeper {
    std::uint32_t worker;
    std::int32_t cpu;
  };
  // Guards sleepers_ and the slots' in_sleepers; P changes only under it (INV-P). A futex word
  // lock that never spins (detail/futex_lock.hpp says why not std::mutex or parkpool::Mutex).
  alignas(64) detail::FutexLock mutex_;
  std::vector<Sleeper> sleepers_;  // stack of sleeping workers, most recent last, under mutex_
  // Where this thread's CPU number lives, as an offset from the thread pointer (the rseq area's
  // cpu_id), or kNoRseqCpu: see current_cpu() in src/idle.cpp. Constant; on mutex_'s line, which
  // both of its readers (wake_one_slow, announce_sleep) touch anyway.
  std::ptrdiff_t rseq_cpu_offset_;

  std::size_t workers_;
  std::size_t max_searching_;
  // notify_work_local() skips its fence; empty checks repeat after (H). Constant.
  bool asymmetric_;
  IdleOptions options_;
  std::unique_ptr<Slot[]> slots_;
  // steady_clock ns and detail::idle_ticks() at construction, read back to back: the start of
  // every worker's tick-rate measurement (ns_per_tick). Written once, before any worker runs.
  std::int64_t anchor_ns_;
  std::int64_t anchor_tick_;
};

template <bool kHold, class HasWork, class OnWake, class OnLongIdle>
bool IdleCoordinator::wait_for_work_impl(std::size_t worker, HasWork&& has_work, OnWake&& on_wake,
                                         [[maybe_unused]] std::chrono::nanoseconds hold,
                                         [[maybe_unused]] OnLongIdle&& on_long_idle) {
  static_assert(noexcept(on_wake()), "IdleCoordinator::wait_for_work: on_wake must be noexcept");
  static_assert(noexcept(on_long_idle()),
                "IdleCoordinator::wait_for_work: on_long_idle must be noexcept");
  // The long-idle form: the hold runs from here (one clock read per call, only in that form).
  [[maybe_unused]] std::chrono::steady_clock::time_point hold_end{};
  if constexpr (kHold) {
    // Saturated: a hold past what the clock can count (nanoseconds::max()) ends never.
    const auto now = std::chrono::steady_clock::now();
    hold_end = hold >= std::chrono::steady_clock::time_point::max() - now
                   ? std::chrono::steady_clock::time_point::max()
                   : now + hold;
  }
  // has_work() must not throw: an exception here would leave this worker counted as a searcher
  // or sleeper, and every later notify_work() would rely on it. Called through a noexcept
  // wrapper, a throw terminates the process at once instead of hanging it later.
  auto check = [&has_work]() noexcept -> bool { return static_cast<bool>(has_work()); };
  Slot& s = slot(worker);
  // Relaxed: only a fast exit; the shutdown bit is re-read under mutex_ before any park.
  if ((state_.load(std::memory_order_relaxed) & kShutdownBit) != 0) return false;

  // Phase 1: spin, only as a counted searcher (caps the CPU burnt by spinners; Go and tokio cap at
  // half). A counted spinner makes notify_work() skip the wake: it will see the task itself, or
  // announce sleep and see it in the re-check.
  // The episode's start time feeds the adaptive budget (skipped when spinning is disabled).
  std::chrono::steady_clock::time_point start{};
  if (options_.spin_max.count() > 0) {
    start = std::chrono::steady_clock::now();
    s.idle_since_ns = start.time_since_epoch().count();
    s.idle_since_tick = detail::idle_ticks();
  }
  // A worker already counted as a searcher (woken by a claim, or withdrawn) may be one of more
  // than max_searching: claims and withdrawals add to S without the cap, since a woken worker
  // must search. Such a worker spins only if S is within the cap; otherwise it goes straight to
  // the announce, which removes it from S. Every spinner saw S <= max_searching with itself
  // counted, and stays counted while it spins, so no more than max_searching spin at once: the
  // last one to start would have seen them all (each RMW that added to S precedes, in state_'s
  // modification order, the one that added its own count, which its load follows: coherence).
  if (s.spin_budget_ns > 0 && try_start_searching(worker) &&
      searching_of(state_.load(std::memory_order_relaxed)) <= max_searching_) {
    const auto deadline = start + std::chrono::nanoseconds(s.spin_budget_ns);
    const bool yields = s.spin_budget_ns >= detail::kSpinYieldMinBudget.count();  // see there
    for (unsigned i = 1;; ++i) {
      if (check()) {
        on_spin_hit(s);
        return true;  // still searching: the caller's found_work() ends it
      }
      detail::cpu_relax();
      // The clock read (~20 ns via vDSO) in each of the first 8 rounds, then every 8th, keeps the
      // budget in time, not rounds, also with a has_work() that takes longer than the budget.
      if (i < 8 || (i & 7u) == 0) {
        if (std::chrono::steady_clock::now() >= deadline) break;
        // Relaxed: a fast exit, as above.
        if ((state_.load(std::memory_order_relaxed) & kShutdownBit) != 0) return false;
        // On a budget of kSpinYieldMinBudget or more, every kSpinYieldRounds rounds (a couple of
        // us) offer the CPU to another runnable thread on it (an I/O thread, an external
        // submitter, a co-located process): the budget keeps running meanwhile, and with nobody
        // else runnable sched_yield returns at once. See pool/SLEEP.md, "Tuning": without it a
        // server at its saturation rate fell behind; yielding in short spins too doubled a
        // server's CPU per request and its median latency at 1k requests/s.
        if ((i & (detail::kSpinYieldRounds - 1)) == 0 && yields) {
          bump(s.spin_yields);
          std::this_thread::yield();
        }
      }
    }
    // A miss changes nothing yet: the wake (or re-check) that ends this episode decides, from
    // the episode's length, whether a longer spin would have caught the work.
  }

  // Phase 2: announce (A1: RMW + seq_cst fence), then re-check (A2). Pairs with the
  // submitter's publish ; fence (N1) ; load (N2) in notify_work(). See pool/SLEEP.md.
  const Announce announced = announce_sleep(worker);
  if (announced == Announce::shutdown) return false;
  bool found = check();
  if (!found && announced == Announce::others_working) {
    heavy_barrier();  // (H): now the re-check also sees notify_work_local() publications
    found = check();
  }
  if (found) {
    adapt_after_sleep(s);
    return withdraw(worker);
  }

  // Phase 3: park. A returned token is either a claim/shutdown (we were popped) or foreign.
  if (options_.timed_park.count() > 0) {
    bump(s.parks);
    if (s.parker.park_timeout(options_.timed_park) == UnparkReason::unparked) {
      prefetch_after_wake(s);
      on_wake();
      return on_unparked(worker);
    }
    on_timed_out(s);
    // Still announced (in sleepers_, counted in P): this check is a safety net, not part of the
    // handshake. If it sees work, withdraw (which copes with a claim racing the timeout).
    if (check()) return withdraw(worker);
  }
  if constexpr (kHold) {
    // The long-idle hook (see its declaration). Still announced, as after the timed park above:
    // a claim that pops this worker meanwhile leaves its unpark's token in the Parker, so the
    // untimed park below returns at once (SLEEP.md, "Long-idle hook").
    for (auto now = std::chrono::steady_clock::now(); now < hold_end;
         now = std::chrono::steady_clock::now()) {
      bump(s.parks);
      if (s.parker.park_timeout(hold_end - now) == UnparkReason::unparked) {
        prefetch_after_wake(s);
        on_wake();
        return on_unparked(worker);
      }
      bump(s.timed_out_parks);  // the statistic only: the spin budget is left to the wake
    }
    on_long_idle();
    // As after the timed park: a safety net, not part of the handshake (a notify during the hook
    // is seen through the Parker's token). Withdraw copes with a claim that raced the hook.
    if (check()) return withdraw(worker);
  }
  bump(s.parks);
  s.parker.park();
  prefetch_after_wake(s);
  on_wake();
  return on_unparked(worker);
}

}  // namespace parkpool

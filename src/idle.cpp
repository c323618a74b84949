// IdleCoordinator slow paths. The protocol and the no-lost-wakeup argument: pool/SLEEP.md.
// Labels (A1), (A2), (N1), (N2), (C1), (R0), (R1) refer to that document. The orderings below are
// the ones tests/model/idle_model.cpp checks (its header lists the variants: the handshake, the
// last searcher, shutdown, the asymmetric barrier, the timed park, stale tokens, foreign
// unparks, and two sleeper-capable workers with the timed park); dropping any one of the fences,
// draining before setting the shutdown bit, or miscounting on the timed-out or withdraw paths
// fails it (the b variants).
//
// Why every RMW on state_ can be relaxed: no data is published through state_ (sleepers_ is
// under mutex_, tasks go through the pool's own queues, the woken worker is ordered by the
// Parker's token). state_ only carries the counts the handshake reasons about, and that argument
// needs only (a) state_'s single modification order (coherence, true for relaxed RMWs too) and
// (b) the seq_cst fences N1, A1 (and R1 for has_more()): C++20 [atomics.order] p4.4 -- if N1
// happens before a read of state_ that is coherence-ordered before A1's RMW, and A1's RMW happens
// before the A1 fence, then N1 precedes the A1 fence in S, so the re-check sees the published
// task.
//
// [[gnu::hot]] marks the functions on the wake path from idle (the submitter up to FUTEX_WAKE,
// the woken worker up to its task): GCC places them together in .text.hot, so that path touches
// fewer code pages, each a TLB miss on its first touch after an idle period (not after a
// syscall as such: pool/SLEEP.md, "Tuning", 2026-12-07).
// pool/SLEEP.md, "Tuning", has the measurement.
#include "parkpool/idle.hpp"

#include <algorithm>
#include <stdexcept>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>  // glibc >= 2.35: __rseq_offset, __rseq_size
#define PARKPOOL_HAVE_RSEQ_AREA 1
#endif
#include <unistd.h>

#include <cerrno>
#endif
#ifndef PARKPOOL_HAVE_RSEQ_AREA
#define PARKPOOL_HAVE_RSEQ_AREA 0
#endif
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace parkpool {

namespace {

// The store->load fences of the handshake. ThreadSanitizer does not model free-standing fences
// (and g++ -Wtsan warns about them), so under TSAN both fences are replaced by acq_rel RMWs on
// state_ itself. That path is also correct on its own (model variants v2, v4): two RMWs on the
// same word are totally ordered and the later one reads and acquires the earlier one (SLEEP.md,
// "TSAN path"); it only costs an RMW on a shared line per notify, which the fast path avoids.
#if defined(__SANITIZE_THREAD__)
#define PARKPOOL_IDLE_RMW_HANDSHAKE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PARKPOOL_IDLE_RMW_HANDSHAKE 1
#endif
#endif
#ifndef PARKPOOL_IDLE_RMW_HANDSHAKE
#define PARKPOOL_IDLE_RMW_HANDSHAKE 0
#endif

constexpr std::int64_t kOneMicro = 1000;

constexpr std::ptrdiff_t kNoRseqCpu = PTRDIFF_MIN;

// Where current_cpu() finds the CPU number: the offset of the rseq area's cpu_id from the thread
// pointer, or kNoRseqCpu. With glibc >= 2.35 and rseq registered (the default) the kernel keeps
// each thread's CPU there, at the same offset in every thread (__rseq_offset). __rseq_size is 0
// when glibc did not register rseq (GLIBC_TUNABLES=glibc.pthread.rseq=0, a kernel without rseq,
// valgrind). Read once, by the constructor: __rseq_offset and __rseq_size are libc variables
// reached through the GOT, two more cold pages on the wake path if read there.
std::ptrdiff_t rseq_cpu_offset() noexcept {
#if defined(__linux__) && PARKPOOL_HAVE_RSEQ_AREA
  if (__rseq_size >= offsetof(struct rseq, cpu_id) + sizeof(std::uint32_t)) {
    return __rseq_offset + static_cast<std::ptrdiff_t>(offsetof(struct rseq, cpu_id));
  }
#endif
  return kNoRseqCpu;
}

// The CPU the calling thread runs on, -1 if unknown. Only the sleep and wake slow paths call it,
// next to a futex syscall. With rseq: an inline load at `offset` from the thread pointer.
// sched_getcpu() reads the same field, but through a PLT call into libc, whose code and GOT lines
// are cold after an idle period: on the Intel 2-vCPU VM the inline read took ~0.45 us off the
// submitter's wake path, and taking the offset from the coordinator instead of libc's variables
// another 0.6-1 us (pool/SLEEP.md, "Tuning"). Without rseq, sched_getcpu(), which may be a
// syscall.
[[gnu::hot]] int current_cpu(std::ptrdiff_t offset) noexcept {
#if defined(__linux__) && PARKPOOL_HAVE_RSEQ_AREA
  if (offset != kNoRseqCpu) {
    const auto* cpu_id = reinterpret_cast<const std::uint32_t*>(
        static_cast<const char*>(__builtin_thread_pointer()) + offset);
    // Relaxed atomic read of a field the kernel rewrites on migration (only ever this thread's
    // own area): a hint, see wake_one_slow. Negative (uninitialized, registration failed) or a
    // stale CPU after a migration only makes one choice of victim a worse guess.
    return static_cast<std::int32_t>(__atomic_load_n(cpu_id, __ATOMIC_RELAXED));
  }
#else
  (void)offset;
#endif
#if defined(__linux__)
  return sched_getcpu();  // -1 on failure, which the victim choice treats as unknown
#else
  return -1;
#endif
}

#if defined(__linux__) && defined(__NR_membarrier) && !PARKPOOL_IDLE_RMW_HANDSHAKE
#define PARKPOOL_IDLE_MEMBARRIER 1
long membarrier(int cmd) noexcept { return syscall(__NR_membarrier, cmd, 0U, 0); }

// Registers this process for MEMBARRIER_CMD_PRIVATE_EXPEDITED. False if the kernel lacks the
// command or refuses it (seccomp filters, valgrind: ENOSYS / EPERM / EINVAL).
bool register_private_expedited() noexcept {
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// Once per process (a function-local static: thread-safe, one syscall pair).
bool asymmetric_barrier_available() noexcept {
  static const bool ok = register_private_expedited();
  return ok;
}

// (H) Every running thread of the process executes a full memory barrier before this returns;
// a thread not running passed one when it was switched out (membarrier(2)). Defensive paths,
// not expected to run: EPERM means the registration is missing (it belongs to the address
// space; Linux 6.18 here keeps it across fork(), and exec() starts a new process image with a
// fresh static), so register once more; if the command still fails, MEMBARRIER_CMD_GLOBAL (no
// registration; waits for an RCU grace period, milliseconds) gives the same guarantee. If even
// that fails no store->load order can be had for notify_work_local()'s publications: terminate
// rather than risk a lost wakeup.
// tests/idle_test.cpp (IdleCoordinatorDeathTest) reaches the re-registration, GLOBAL and
// terminate paths with seccomp filters.
void process_wide_barrier() noexcept {
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  if (errno == EPERM && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
      membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
    return;
  }
  if (membarrier(MEMBARRIER_CMD_GLOBAL) == 0) return;
  std::fputs("parkpool: membarrier() failed after it was registered; aborting\n", stderr);
  std::terminate();
}
#else
#define PARKPOOL_IDLE_MEMBARRIER 0
bool asymmetric_barrier_available() noexcept { return false; }
#endif

std::int64_t budget_floor(const IdleOptions& o) noexcept {
  // A zero floor could never grow back (a worker that never spins never has a spin hit), so a
  // spin_min of 0 means "as low as min(spin_max, 1 us)"; spin_max == 0 disables spinning.
  const std::int64_t lo = o.spin_min.count();
  const std::int64_t hi = o.spin_max.count();
  return lo > 0 ? lo : std::min(hi, kOneMicro);
}

}  // namespace

IdleOptions IdleOptions::latency() noexcept {
  IdleOptions o;
  o.spin_min = std::chrono::microseconds(10);
  o.spin_max = std::chrono::microseconds(100);
  o.timed_park = std::chrono::milliseconds(2);
  return o;
}

IdleOptions IdleOptions::efficiency() noexcept {
  IdleOptions o;
  o.spin_min = std::chrono::nanoseconds(0);
  o.spin_max = std::chrono::nanoseconds(0);
  o.timed_park = std::chrono::nanoseconds(0);
  o.max_searching = 1;
  return o;
}

IdleCoordinator::IdleCoordinator(std::size_t workers, IdleOptions options)
    : rseq_cpu_offset_(rseq_cpu_offset()),
      workers_(workers),
      max_searching_(0),
      asymmetric_(options.asymmetric_barrier && asymmetric_barrier_available()),
      options_(options),
      anchor_ns_(std::chrono::steady_clock::now().time_since_epoch().count()),
      anchor_tick_(detail::idle_ticks()) {
  if (workers == 0) throw std::invalid_argument("IdleCoordinator: workers must be > 0");
  // A literal, not "..." + std::to_string(kMaxWorkers): GCC 12 warns (-Wrestrict, a false
  // positive in libstdc++'s operator+) on that concatenation in optimized builds.
  static_assert(kMaxWorkers == 65535, "update the message below");
  if (workers > kMaxWorkers) {
    throw std::invalid_argument("IdleCoordinator: workers must be <= 65535");
  }
  if (options.spin_min.count() < 0 || options.spin_max.count() < 0 ||
      options.timed_park.count() < 0) {
    throw std::invalid_argument("IdleCoordinator: IdleOptions durations must be >= 0");
  }
  if (options.spin_min > options.spin_max) {
    throw std::invalid_argument("IdleCoordinator: IdleOptions spin_min must be <= spin_max");
  }
  // Keeps `start + budget` and `2 * budget` (wait_for_work, on_spin_hit) far from overflow.
  if (options.spin_max > IdleOptions::kSpinLimit) {
    throw std::invalid_argument("IdleCoordinator: IdleOptions spin_max must be <= 1 hour");
  }
  max_searching_ = options.max_searching == 0 ? std::max<std::size_t>(1, workers / 2)
                                              : std::min(options.max_searching, workers);
  sleepers_.reserve(workers);  // never allocates afterwards: the noexcept paths push/pop only
  slots_ = std::make_unique<Slot[]>(workers);
  for (std::size_t i = 0; i < workers; ++i) {
    // Start at the cap: a fresh pool is about to receive work; an idle episode longer than the
    // cap halves it (the rule is documented at IdleOptions).
    slots_[i].spin_budget_ns = options.spin_max.count();
  }
}

IdleCoordinator::~IdleCoordinator() = default;

bool IdleCoordinator::try_start_searching(std::size_t worker) noexcept {
  Slot& s = slot(worker);
  // Relaxed: S+1 publishes nothing; it only makes notify_work() skip wakes, and the skip is
  // covered by this searcher's own later S-1 (R0 or A1), see SLEEP.md case 3.
  std::uint64_t cur = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((cur & kShutdownBit) != 0) return false;
    if (s.searching) return true;  // already counted
    if (searching_of(cur) >= max_searching_) return false;
    if (state_.compare_exchange_weak(cur, cur + kSearchingOne, std::memory_order_relaxed,
                                     std::memory_order_relaxed)) {
      s.searching = true;
      return true;
    }
  }
}

void IdleCoordinator::found_work(std::size_t worker) noexcept {
  Slot& s = slot(worker);
  if (!s.searching) return;  // the common case for a busy worker: thread-owned, no atomics
  s.searching = false;
  // Last searcher: there may be more, wake one (no has_more(), so no (H) either).
  if (stop_searching_slow() != LastSearcher::no) wake_one_slow();
}

[[gnu::hot]] IdleCoordinator::LastSearcher IdleCoordinator::stop_searching_slow() noexcept {
#if PARKPOOL_IDLE_RMW_HANDSHAKE
  // TSAN path: acq_rel so that has_more() sees tasks whose notify RMW (release) came earlier in
  // state_'s order (a release sequence continues through the RMWs in between).
  const std::uint64_t old = state_.fetch_sub(kSearchingOne, std::memory_order_acq_rel);
#else
  // (R0) relaxed: when this is the S 1->0 step, a notify_work() that skipped because it read
  // S > 0 read a value earlier in state_'s modification order than R0, hence earlier than any
  // later A1: that A1's re-check sees its task (SLEEP.md case 3). Coherence is all it needs.
  const std::uint64_t old = state_.fetch_sub(kSearchingOne, std::memory_order_relaxed);
#endif
  assert(searching_of(old) > 0 && "IdleCoordinator: searching count underflow");
  if (searching_of(old) != 1 || sleeping_of(old) == 0 || (old & kShutdownBit) != 0) {
    return LastSearcher::no;
  }
#if !PARKPOOL_IDLE_RMW_HANDSHAKE
  // (R1) seq_cst fence, only on this rare path: the caller's has_more() is a re-check like A2.
  // A notify that skipped read a value before R0, so its N1 precedes R1 in S (p4.4) and
  // has_more() sees its task. Model variant b4 drops this fence and deadlocks.
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  // has_more() must also see what a working worker published with notify_work_local(): if one
  // may have, the caller repeats a has_more() that said false after (H). We are working from R0
  // on, hence self_working 1.
  return others_working(old - kSearchingOne, 1) ? LastSearcher::others_working : LastSearcher::yes;
}

bool IdleCoordinator::others_working(std::uint64_t after, std::size_t self_working) const noexcept {
  if (!asymmetric_) return false;
  // False when `after` (the value our own RMW, A1 or R0, wrote) counts every other worker as
  // searching or asleep (each worker is counted at most once: INV-P, INV-S). Such a worker
  // either publishes later, once working again, which it becomes by an RMW on state_ later in
  // the modification order than ours (R0; from asleep: C1 or a withdrawal first), so that its
  // notify_work_local() load, sequenced after that RMW, reads our RMW's value or a later one
  // (coherence) and the case analysis of SLEEP.md applies as with N1; or it published before it
  // went idle, and then finds its task in its own queue (its search or re-check comes after its
  // push in program order). A worker working at our RMW may have published before it with no
  // fence: the membarrier (H) orders that publication before our repeated re-check, or else its
  // load after our RMW, so that it reads our P (SLEEP.md, Lemma H).
  return searching_of(after) + sleeping_of(after) + self_working < workers_;
}

void IdleCoordinator::heavy_barrier() noexcept {
#if PARKPOOL_IDLE_MEMBARRIER
  process_wide_barrier();
#endif
}

[[gnu::hot]] std::uint64_t IdleCoordinator::notify_fence_load() noexcept {
#if PARKPOOL_IDLE_RMW_HANDSHAKE
  // TSAN path: (N1+N2) as one RMW on state_. acq_rel: the worker's (A1) RMW either precedes it
  // in state_'s modification order (we read P > 0) or follows it and acquires our release,
  // making the published task visible to its re-check (A2).
  return state_.fetch_add(0, std::memory_order_acq_rel);
#else
  // (N1) seq_cst fence: orders the caller's publication before (N2) in the single total order.
  // Pairs with (A1)'s fence in announce_sleep(): of the two fences, whichever comes first in
  // that order, the thread after the other fence sees the write before the first: either (N2)
  // sees P > 0 or the re-check (A2) sees the task. Without it (release/acquire only), both may
  // read stale values: the lost wakeup of tokio PR 1788 / llvm-project 109290.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // (N2) relaxed load: ordered by N1 (C++20 [atomics.order] p4.4: N1 happens before this read;
  // if it reads a value before A1's RMW, N1 precedes A1's fence in S).
  return state_.load(std::memory_order_relaxed);
#endif
}

[[gnu::hot]] void IdleCoordinator::notify_work() noexcept {
  const std::uint64_t cur = notify_fence_load();
  // Fast path: a searcher will see the task (case 3), or nobody sleeps (case 2).
  if (searching_of(cur) != 0 || sleeping_of(cur) == 0 || (cur & kShutdownBit) != 0) return;
  wake_one_slow();
}

[[gnu::hot]] void IdleCoordinator::wake_one_slow(bool even_if_searching) noexcept {
  std::uint32_t victim;
  const int here = current_cpu(rseq_cpu_offset_);  // outside the lock: "Whom to wake" in idle.hpp
  {
    std::lock_guard<detail::FutexLock> lock(mutex_);
    // Re-read under the lock: P only changes under mutex_ (INV-P), S may change concurrently, so
    // claim with a CAS. Every decision here reads state_ at or after the value the caller's N2,
    // L2 or R0 read or wrote in modification order (coherence: the same thread), so the case
    // analysis of SLEEP.md applies to it unchanged.
    // even_if_searching (notify_work(backlog) and notify_stalled()): an extra wake beside the
    // searchers; it can only add wakes to the protocol, so INV-NOLOST is unaffected (SLEEP.md,
    // "Extra wakes").
    std::uint64_t cur = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((searching_of(cur) != 0 && !even_if_searching) || sleeping_of(cur) == 0 ||
          (cur & kShutdownBit) != 0) {
        return;
      }
      // (C1) claim: P-1, S+1 (the woken worker comes up as a searcher, so the next notify_work()
      // skips: no herd). Relaxed: sleepers_ is ordered by mutex_, the victim by the Parker token;
      // the handshake only needs this RMW's place in state_'s modification order.
      if (state_.compare_exchange_weak(cur, cur - kSleepingOne + kSearchingOne,
                                       std::memory_order_relaxed, std::memory_order_relaxed)) {
        break;
      }
    }
    assert(!sleepers_.empty() && "IdleCoordinator: INV-P broken (P > 0, no sleeper)");
    // "Whom to wake" (idle.hpp): the most recent sleeper on our CPU, else the most recent one
    // (LIFO, warm cache: folly). A scan of <= workers_ contiguous 8-byte entries.
    auto pick = sleepers_.end() - 1;
    if (here >= 0) {
      for (auto it = sleepers_.end(); it != sleepers_.begin();) {
        --it;
        if (it->cpu == here) {
          pick = it;
          break;
        }
      }
    }
    victim = pick->worker;
    sleepers_.erase(pick);  // keeps the others' order; at most workers_ - 1 moves
    // Relaxed: read by the victim after its park returns; the unpark below (release) and the
    // park's token consumption (acquire) order this store before that read.
    slots_[victim].in_sleepers.store(false, std::memory_order_relaxed);
  }
  if (options_.spin_max.count() > 0) {
    // The end of the victim's idle gap, for its adaptive budget (Slot::claimed_at_tick).
    // Relaxed: a hint, see there. A tick read, not a steady_clock read: see detail::idle_ticks.
    slots_[victim].claimed_at_tick.store(detail::idle_ticks(), std::memory_order_relaxed);
  }
  // Outside the lock: the wake syscall never runs under mutex_.
  slots_[victim].parker.unparker().unpark();
}

IdleCoordinator::Announce IdleCoordinator::announce_sleep(std::size_t worker) noexcept {
  Slot& s = slot(worker);
  // Outside the lock; a hint for wake_one_slow's victim choice.
  const int cpu = current_cpu(rseq_cpu_offset_);
  std::uint64_t after = 0;  // the value our A1 RMW wrote, for others_working()
  {
    std::lock_guard<detail::FutexLock> lock(mutex_);
    // Relaxed: shutdown() sets D before it takes mutex_ to drain sleepers_; if it drained before
    // we locked, the mutex orders its fetch_or before this load. If it drains after, it pops us.
    if ((state_.load(std::memory_order_relaxed) & kShutdownBit) != 0) return Announce::shutdown;
    sleepers_.push_back({static_cast<std::uint32_t>(worker), cpu});
    s.in_sleepers.store(true, std::memory_order_relaxed);  // under mutex_, owner reads later
    const std::uint64_t delta = kSleepingOne - (s.searching ? kSearchingOne : 0);
    s.searching = false;
    // (A1) announce P+1 (and S-1 if we searched) in one RMW, so that no moment exists where we
    // are counted neither as a searcher nor as a sleeper. Relaxed: the fence below orders it
    // (p4.4 needs only that this RMW happens before the fence). Read by N2 and C1.
#if PARKPOOL_IDLE_RMW_HANDSHAKE
    after = state_.fetch_add(delta, std::memory_order_acq_rel) + delta;  // TSAN: acquires N's
#else
    after = state_.fetch_add(delta, std::memory_order_relaxed) + delta;
#endif
  }
#if !PARKPOOL_IDLE_RMW_HANDSHAKE
  // (A1 fence) seq_cst: orders the announce before the re-check (A2) the caller does next,
  // whatever ordering has_work() uses. Pairs with N1 in notify_work(). Store->load: a release
  // RMW followed by acquire loads would let A2 read a stale empty queue while N2 reads P == 0
  // (model variant b1 deadlocks exactly so).
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  // The re-check must also see what a working worker published with notify_work_local(): if
  // one may have, the caller repeats a re-check that found nothing after (H).
  return others_working(after, 0) ? Announce::others_working : Announce::parked_ok;
}

bool IdleCoordinator::withdraw(std::size_t worker) noexcept {
  Slot& s = slot(worker);
  std::uint64_t cur;
  {
    std::lock_guard<detail::FutexLock> lock(mutex_);
    if (s.in_sleepers.load(std::memory_order_relaxed)) {  // under mutex_, its only writer
      sleepers_.erase(std::find_if(sleepers_.begin(), sleepers_.end(),
                                   [worker](const Sleeper& e) { return e.worker == worker; }));
      s.in_sleepers.store(false, std::memory_order_relaxed);
      // P-1, S+1: come back as a searcher, so that finding the task makes us the last searcher,
      // who wakes the next sleeper if more work is queued (ramp-up). Relaxed: under mutex_, no
      // data published; the count's place in the modification order is all case 3 needs.
      cur = state_.fetch_add(kSearchingOne - kSleepingOne, std::memory_order_relaxed) +
            kSearchingOne - kSleepingOne;
      s.searching = true;
    } else {
      // A waker popped us (claim C1 or shutdown) and its unpark is on the way or already here.
      // Act as woken; the token, if it arrives late, makes one later park return at once, and
      // that return is then treated as foreign (in_sleepers is true again by then), or, if
      // another claim popped us just before on_unparked reads in_sleepers, as that claim's wake
      // (see on_unparked): harmless either way. Relaxed: only D is used; a shutdown that popped
      // us set it before its drain under mutex_, which we now hold.
      cur = state_.load(std::memory_order_relaxed);
      s.searching = true;  // the claim or shutdown that popped us counted us in S
    }
  }
  return (cur & kShutdownBit) == 0;
}

[[gnu::hot]] bool IdleCoordinator::on_unparked(std::size_t worker) noexcept {
  Slot& s = slot(worker);
  bump(s.unparks);
  adapt_after_sleep(s);
  // Relaxed: written under mutex_ by the waker before its unpark; the Parker's release/acquire
  // token makes it visible here.
  if (s.in_sleepers.load(std::memory_order_relaxed)) {
    // Still in sleepers_: a foreign unpark (unparker(w) used directly) or a stale token from an
    // earlier race. Leave the sleep state properly, as if the re-check had found work.
    return withdraw(worker);
  }
  // Claimed: C1 (or shutdown's drain) counted us in S. No fence here (nothing extra on the wake
  // path): if the claim came from found_work (R0) for a task whose notify skipped, our first
  // search may miss it, but we are a searcher, so we either find it while spinning or announce
  // again, and that A1 comes after the skipped notify's read in state_'s order: its re-check
  // sees the task. The same holds when the token that ended this park was a stale or foreign one
  // and a claim popped us just before the load above: then not even the claimer's own
  // publication is ordered before our return (SLEEP.md, case 1).
  s.searching = true;
  // Relaxed: shutdown() sets D before popping us; the unpark orders it before this load (after a
  // stale or foreign token this load may miss D: the next announce reads it under mutex_).
  return (state_.load(std::memory_order_relaxed) & kShutdownBit) == 0;
}

void IdleCoordinator::on_spin_hit(Slot& s) noexcept {
  bump(s.spin_hits);
  s.spin_budget_ns =
      std::min(options_.spin_max.count(), std::max(budget_floor(options_), s.spin_budget_ns * 2));
}

[[gnu::hot]] void IdleCoordinator::adapt_after_sleep(Slot& s) noexcept {
  const std::int64_t hi = options_.spin_max.count();
  if (hi == 0) return;  // spinning disabled: no clock read at all
  // The gap ends at the claim when a waker claimed us in this episode (Slot::claimed_at_tick)
  // and the tick rate is known; otherwise now: a clock read on the way out of the sleep (a
  // foreign unpark, a re-check that found work, or a claim in the pool's first millisecond).
  const std::int64_t claim = s.claimed_at_tick.load(std::memory_order_relaxed);  // see Slot
  s.claimed_at_tick.store(0, std::memory_order_relaxed);
  std::int64_t gap;
  const double rate = claim != 0 && claim >= s.idle_since_tick ? ns_per_tick(s) : 0;
  if (rate > 0) {
    // Capped at hi before the conversion back to an integer (only gap < hi matters below): a
    // counter gone wild must not overflow the cast.
    const double g = static_cast<double>(claim - s.idle_since_tick) * rate;
    gap = g < static_cast<double>(hi) ? static_cast<std::int64_t>(g) : hi;
  } else {
    gap = std::chrono::steady_clock::now().time_since_epoch().count() - s.idle_since_ns;
  }
  const std::int64_t lo = budget_floor(options_);
  if (gap < hi) {
    s.spin_budget_ns = std::min(hi, std::max(lo, 2 * gap));
  } else {
    s.spin_budget_ns = std::max(lo, s.spin_budget_ns / 2);
  }
}

[[gnu::hot]] double IdleCoordinator::ns_per_tick(const Slot& s) const noexcept {
  if constexpr (detail::kIdleTicksAreNs) return 1.0;
  // Each pair of reads is a few tens of ns apart, so over >= 1 ms the rate is within ~1e-4:
  // plenty for a budget of 1-100 us, and it sharpens as the pool ages. Computed only when a wake
  // needs it (one division); a counter that ran backwards (dt <= 0) leaves it unknown.
  const std::int64_t dns = s.idle_since_ns - anchor_ns_;
  const std::int64_t dt = s.idle_since_tick - anchor_tick_;
  if (dns < detail::kTickCalibrationNs || dt <= 0) return 0;
  return static_cast<double>(dns) / static_cast<double>(dt);
}

void IdleCoordinator::on_timed_out(Slot& s) noexcept {
  bump(s.timed_out_parks);
  s.spin_budget_ns = budget_floor(options_);  // the pool went idle: start the next burst short
}

void IdleCoordinator::shutdown() noexcept {
  // Relaxed: D publishes nothing; it is set before the drain, and every reader that must see it
  // is ordered after us by mutex_ (announce_sleep) or by the Parker token (on_unparked).
  // Idempotent.
  const std::uint64_t old = state_.fetch_or(kShutdownBit, std::memory_order_relaxed);
  if ((old & kShutdownBit) != 0) return;
  std::vector<Sleeper> popped;
  {
    std::lock_guard<detail::FutexLock> lock(mutex_);
    popped.swap(sleepers_);  // no allocation: moves the buffer out
    for (const Sleeper& e : popped) {
      slots_[e.worker].in_sleepers.store(false, std::memory_order_relaxed);
    }
    // A pop by shutdown is accounted exactly like a claim (C1): P-1, S+1 per worker. The popped
    // worker comes back through on_unparked() or withdraw() as a searcher (s.searching = true),
    // and its later found_work() subtracts that S again. Subtracting P alone left S one short,
    // so that found_work() borrowed through P into the shutdown bit, cleared it, and a worker
    // that announced afterwards slept forever (tests/regress/issue_5_idle_shutdown_test.cpp).
    // Relaxed: under mutex_, publishes nothing (as for withdraw's P-1, S+1).
    const std::uint64_t n = popped.size();
    state_.fetch_add(kSearchingOne * n - kSleepingOne * n, std::memory_order_relaxed);
  }
  for (const Sleeper& e : popped) slots_[e.worker].parker.unparker().unpark();
}

void IdleCoordinator::bad_worker_index(std::size_t worker) const noexcept {
  std::fprintf(stderr,
               "parkpool::IdleCoordinator: worker index %zu out of range (workers() is %zu)\n",
               worker, workers_);
  std::abort();
}

const Unparker& IdleCoordinator::unparker(std::size_t worker) const noexcept {
  return slot(worker).parker.unparker();
}

std::size_t IdleCoordinator::searching() const noexcept {
  return searching_of(state_.load(std::memory_order_relaxed));  // a snapshot
}
std::size_t IdleCoordinator::sleeping() const noexcept {
  return sleeping_of(state_.load(std::memory_order_relaxed));  // a snapshot
}
bool IdleCoordinator::is_shutdown() const noexcept {
  return (state_.load(std::memory_order_relaxed) & kShutdownBit) != 0;  // a snapshot
}

IdleWorkerStats IdleCoordinator::stats(std::size_t worker) const noexcept {
  const Slot& s = slot(worker);
  IdleWorkerStats r;
  r.parks = s.parks.load(std::memory_order_relaxed);
  r.unparks = s.unparks.load(std::memory_order_relaxed);
  r.timed_out_parks = s.timed_out_parks.load(std::memory_order_relaxed);
  r.spin_hits = s.spin_hits.load(std::memory_order_relaxed);
  r.spin_yields = s.spin_yields.load(std::memory_order_relaxed);
  return r;
}

IdleWorkerStats IdleCoordinator::total_stats() const noexcept {
  IdleWorkerStats t;
  for (std::size_t i = 0; i < workers_; ++i) t += stats(i);
  return t;
}

}  // namespace parkpool

// Relacy model of parkpool::asio_detail::ZeroWaitCounter (pool/include/parkpool/asio.hpp), the
// counter that AsioContext::join() and ~AsioContext() wait on. The model reimplements the class
// with rl::atomic (word_), rl::mutex + rl::condition_variable (m_, cv_; std::mutex and
// std::condition_variable in the header) and rl::var (generation_, waiters_, which Relacy then
// checks are only touched under m_), with the header's memory orders. Each step names the
// header lines it mirrors (asio.hpp as of the commit that made Z3 relaxed; the line numbers did
// not change from the commit that added this model).
//
// The checks:
//   * A handler's effect is a plain rl::var written before its count_down; a waiter reads every
//     effect after its wait returns true. A missing happens-before is a Relacy data race; a
//     waiter that returns before a count_down reads 0 (or races with the later write).
//   * INV-Z1 (lifetime): in the suites where the waiter may destroy the counter (handlers,
//     repost), it writes the rl::var `destroyed` after wait_zero returns true, and count_down /
//     count_down_locked / add read it (asserting 0) before each access to the counter outside m_,
//     and once after taking m_ (what they do under m_ is ordered before their unlock). An access
//     that is not ordered before the destruction is a data race on it (or reads 1).
//   * INV-Z2 (no lost wakeup): a waiter never woken blocks in cv.wait forever: a Relacy deadlock.
//   * kWaiterBit is set exactly while waiters_ > 0 (the header's comment on word_): asserted
//     wherever the model reads word_ under m_ (the waiter's Z2 load, the locked fetch_sub).
//
// Suites (3 threads each):
//   handlers  count 2. Threads 1 and 2 each write their effect and count_down(); thread 0
//             wait_zero()s, reads both effects and destroys the counter. The waiter may read 0
//             at once (both decrements lock-free), see the count reach 0 in its bit CAS, or
//             register (bit set) before one or both decrements, which then take the locked path.
//   repost    count 2. Thread 1 as in handlers; thread 2 is a handler that posts another (add()),
//             writes its effect and counts down, then runs the posted one (effect, count_down).
//             With the add() the count can come back to a value the waiter read earlier (an add
//             and a decrement: ABA), so the waiter's bit CAS can succeed on a decrement's write
//             that its Z2 load did not read: only then do the CAS's success order and Z3 matter
//             (cas_relaxed below).
//   join      count 2 (work_, tracked work): a unit H that thread 2 releases (effect,
//             count_down), and one held by a handler K that the pool refused and the context
//             kept, which only the joiner's discard releases. Thread 0 is AsioContext::join()'s
//             loop over work_: wait_zero_unless(kept); when it returns false it discards K
//             (kept = 0, K's effect, count_down) and waits again; then it reads H's effect.
//             Thread 1 keeps K (kept = 1, relaxed: m_ orders it, see interrupt()), calls
//             interrupt(), then wait_zero()s as a second waiter and reads both effects. So the
//             joiner either sees kept at once or registers and leaves on stop; thread 1 may
//             register before or after it leaves (the joiner is then the last waiter or not). When
//             the last waiter leaves on stop it clears the bit, so the later decrements are
//             lock-free again; thread 1 then reads 0 or is released by the locked decrement to 0. A
//             lost interrupt leaves K counted forever: a deadlock.
//   (Counted once with throwaway counters, 2026-12-07, in the 200,000 random schedules: join's
//   joiner left on stop as the last waiter in 61,000 and not as the last in 25,805; a locked
//   decrement found the bit already cleared in 6,548; handlers' waiter returned at its Z2 load in
//   20,803, at its bit CAS in 72,697 and released by a locked decrement in 106,500.)
//
// Search: each suite runs the random search of random_params() (model_params.hpp: 200,000
// schedules of at most 4,000 steps; only it lets Relacy wake a condition variable spuriously, up
// to 10 times per run, and read values more than one store old), then a systematic one: handlers
// every schedule (rl::sched_full, 2,389,754 schedules), repost every schedule with at most 5
// preemptions (bounded_params(5), 1,641,057; the full search did not end in 300 s), join at most
// 4 (bounded_params(4), 4,268,002). Times (ctest -j1 on this 2-core VM, loaded: other builds and
// tests running, load ~4; measured with Z3 acquire, the header's order then): handlers 6.2 s,
// repost 4.7 s, join 15.6 s, cas_relaxed_z3_acquire 4.9 s, the three suites with Z3 relaxed
// 21.3 s. Every broken variant is rejected by the random search within its first 12 schedules
// (under 0.01 s), and also by its suite's systematic search alone (checked by hand).
//
// Variants (argv[1]):
//   handlers, repost, join   the header's code and orders, on that suite. Z3 (the locked
//                            fetch_sub, line 270) is relaxed, the bit CAS acquire on success:
//                            every lock-free decrement precedes, in word_'s modification order,
//                            the CAS that sets the bit (a lock-free CAS cannot succeed while the
//                            bit is set), and every write of word_ is an RMW, so that CAS
//                            (acquire) reads from the release sequence of each of them; a later
//                            waiter's Z2 load reads that CAS's write or a later one. The waiters
//                            thus acquire every lock-free decrement themselves, and the locked
//                            ones through m_. (Z3 was acquire until this model showed that it
//                            need not be; the code is the same on x86.)
//   cas_relaxed_z3_acquire   repost with the other choice: the waiter's bit CAS (lines 232-233)
//                            relaxed on success (acquire on failure) and Z3 acquire, which then
//                            carries the decrements the CAS did not acquire. Relacy, like C++11,
//                            refuses a failure order stronger than the success order, so it is a
//                            relaxed CAS followed, on failure, by an acquire fence.
// Broken, each must be rejected (what Relacy reports):
//   z1_relaxed               handlers; count_down's CAS (Z1, line 203) relaxed: the waiter's Z2
//                            load reads 0 without acquiring the handlers' effects: data race on
//                            an effect
//   z2_relaxed               handlers; the waiter's first load (Z2, line 224) relaxed: it reads
//                            0 without acquiring: data race on an effect
//   cas_failure_relaxed      handlers; the bit CAS relaxed on failure (line 233): it fails on the
//                            0 written by the last decrement and returns true (lines 234-237)
//                            without acquiring it: data race on an effect
//   cas_relaxed              repost; the header's code with the bit CAS relaxed on success (as
//                            in cas_relaxed_z3_acquire, Z3 left relaxed). As Relacy finds it:
//                            the waiter's Z2 load reads the initial count 2 while thread 2's
//                            add() has made it 3, thread 1's decrement (release) takes it back
//                            to 2, and the bit CAS succeeds on that write without acquiring it;
//                            the locked decrements acquire nothing either, so thread 1's effect
//                            reaches the waiter through no path: data race on that effect
//   no_locked_path           handlers; count_down ignores kWaiterBit (always the lock-free CAS,
//                            lines 198-207): the decrement to 0 under a registered waiter
//                            notifies nobody (INV-Z2): deadlock
//   no_waiter_bit            handlers; the first waiter registers (waiters_ 1) but does not set
//                            the bit (lines 232-237): every decrement is lock-free and the last
//                            one notifies nobody: deadlock
//   touch_after_decrement    handlers; count_down reads word_ again after its lock-free
//                            decrement (as a "decrement, then look for a waiter" design would):
//                            the waiter may have returned and destroyed the counter (INV-Z1,
//                            line 205): data race on `destroyed`
//   notify_after_unlock      handlers; count_down_locked notifies after unlocking m_ (line 277
//                            moved after 278): the released waiter can relock, return and
//                            destroy the counter before the notify touches cv_ (INV-Z1): data
//                            race on `destroyed`
//   stop_keeps_bit           join; the last waiter leaving on stop does not clear the bit (line
//                            248): with no waiter left the bit stays set and the next decrement
//                            takes the locked path: the bit/waiters_ assertion. That is all the
//                            model can see (without the assertion it passes): the locked path
//                            still releases a later waiter (it clears the bit when it reaches 0,
//                            and a later first waiter's CAS finds the bit set), so the cost is
//                            the lock, not a hang or a race.
//   stop_clears_bit_early    join; every waiter leaving on stop clears the bit, not only the last
//                            (line 248 without the waiters_ count): thread 1, still registered,
//                            is left without the bit. The bit/waiters_ assertion fires at the
//                            next read of word_ under m_; without it, the decrements go lock-free
//                            and thread 1's wakeup is lost: deadlock.
//   interrupt_unlocked       join; interrupt() notifies without taking m_ (line 258): the notify
//                            can fall between the joiner's stop() (false) and its wait, and the
//                            joiner sleeps with K counted: deadlock
// Not modelled: is_zero() (the Z2 load under m_ again), count() (a relaxed snapshot).
// Usage: zero_wait_counter_model <variant> [--expect-failure]. Exit 0 = the expected outcome.
//
// clang-format off
// PARKPOOL_MODEL_CORRECT: handlers repost join cas_relaxed_z3_acquire
// PARKPOOL_MODEL_BROKEN: z1_relaxed z2_relaxed cas_failure_relaxed cas_relaxed no_locked_path no_waiter_bit touch_after_decrement notify_after_unlock stop_keeps_bit stop_clears_bit_early interrupt_unlocked
// clang-format on
#include <cstdint>
#include <string>

#include "model_main.hpp"

#include "model_params.hpp"

namespace {

struct Config {
  rl::memory_order z1 = rl::mo_release;    // z1_relaxed: rl::mo_relaxed
  rl::memory_order z2 = rl::mo_acquire;    // z2_relaxed: rl::mo_relaxed
  rl::memory_order z3 = rl::mo_relaxed;    // cas_relaxed_z3_acquire: rl::mo_acquire
  bool bit_cas_acquire_on_success = true;  // cas_relaxed, cas_relaxed_z3_acquire: false
  bool bit_cas_acquire_on_failure = true;  // cas_failure_relaxed: false
  bool lock_free_ignores_bit = false;      // no_locked_path
  bool waiter_sets_bit = true;             // no_waiter_bit: false
  bool touch_after_decrement = false;      // touch_after_decrement
  bool notify_after_unlock = false;        // notify_after_unlock
  bool last_leaver_clears_bit = true;      // stop_keeps_bit: false
  bool every_leaver_clears_bit = false;    // stop_clears_bit_early
  bool interrupt_locks = true;             // interrupt_unlocked: false
};
Config g_cfg;

constexpr std::uint64_t kWaiterBit = std::uint64_t{1} << 63;
constexpr std::uint64_t kCountMask = kWaiterBit - 1;

struct Counter {
  rl::atomic<std::uint64_t> word;     // word_
  rl::mutex m;                        // m_
  rl::condition_variable cv;          // cv_
  rl::var<std::uint64_t> generation;  // generation_ (under m_)
  rl::var<std::uint64_t> waiters;     // waiters_ (under m_)
  rl::var<int> destroyed;             // the model's lifetime witness (INV-Z1)

  void init(std::uint64_t count) {
    word($).store(count, rl::mo_relaxed);
    generation($) = 0;
    waiters($) = 0;
    destroyed($) = 0;
  }

  // Called by count_down / count_down_locked / add before their accesses to the counter (once
  // after taking m_ for what they do under it): it must not have been destroyed, and the access
  // must happen-before the destruction (else a race on `destroyed`).
  void touch() { RL_ASSERT(destroyed($) == 0); }

  // kWaiterBit is set exactly while waiters_ > 0, for `w` read from word_ under m_.
  void check_bit(std::uint64_t w) { RL_ASSERT(((w & kWaiterBit) != 0) == (waiters($) > 0)); }

  // add(), lines 190-194.
  void add() {
    touch();
    word($).fetch_add(1, rl::mo_relaxed);
  }

  // count_down(), lines 195-209.
  void count_down() {
    touch();
    std::uint64_t cur = word($).load(rl::mo_relaxed);  // line 197
    // line 198 (no_locked_path: the bit is ignored)
    while (g_cfg.lock_free_ignores_bit || (cur & kWaiterBit) == 0) {
      touch();
      // (Z1) lines 203-204: release on success, relaxed on failure
      if (word($).compare_exchange_weak(cur, cur - 1, g_cfg.z1, rl::mo_relaxed)) {
        if (g_cfg.touch_after_decrement) {
          touch();
          (void)word($).load(rl::mo_relaxed);
        }
        return;  // line 205: nothing touched after the decrement
      }
    }
    count_down_locked();  // line 208
  }

  // count_down_locked(), lines 265-278.
  void count_down_locked() {
    touch();
    m.lock($);  // line 266
    touch();
    const std::uint64_t old = word($).fetch_sub(1, g_cfg.z3);  // (Z3) line 270
    check_bit(old);
    if (old != (kWaiterBit | 1)) {  // line 272
      m.unlock($);
      return;
    }
    generation($) = generation($) + 1;               // line 273
    waiters($) = 0;                                  // line 274
    word($).fetch_and(~kWaiterBit, rl::mo_relaxed);  // line 276
    if (g_cfg.notify_after_unlock) {
      m.unlock($);
      touch();
      cv.notify_all($);
      return;
    }
    cv.notify_all($);  // line 277, under m_
    m.unlock($);       // line 278 (the lock_guard's scope ends)
  }

  // The bit CAS of lines 232-233: acquire on success and on failure in the header.
  bool bit_cas(std::uint64_t& cur) {
    const std::uint64_t want = cur | kWaiterBit;
    if (g_cfg.bit_cas_acquire_on_success) {
      return word($).compare_exchange_weak(
          cur, want, rl::mo_acquire,
          g_cfg.bit_cas_acquire_on_failure ? rl::mo_acquire : rl::mo_relaxed);
    }
    // Relaxed on success, acquire on failure (cas_relaxed, cas_relaxed_z3_acquire above).
    const bool ok = word($).compare_exchange_weak(cur, want, rl::mo_relaxed, rl::mo_relaxed);
    if (!ok && g_cfg.bit_cas_acquire_on_failure) rl::atomic_thread_fence(rl::mo_acquire, $);
    return ok;
  }

  // wait_zero_unless(stop), lines 222-250. std's cv_.wait(lock, pred) is `while (!pred())
  // wait(lock);`, written out here.
  template <class Stop>
  bool wait_zero_unless(Stop stop) {
    m.lock($);                                   // line 223
    std::uint64_t cur = word($).load(g_cfg.z2);  // (Z2) line 224
    check_bit(cur);
    if ((cur & kCountMask) == 0) {  // line 225
      m.unlock($);
      return true;
    }
    if (stop()) {  // line 226
      m.unlock($);
      return false;
    }
    // line 227. Written out: Relacy's rl::var postfix ++ returns the incremented value.
    const std::uint64_t registered = waiters($);
    waiters($) = registered + 1;
    if (registered == 0 && g_cfg.waiter_sets_bit) {
      while (!bit_cas(cur)) {           // lines 232-233
        if ((cur & kCountMask) == 0) {  // lines 234-237
          waiters($) = 0;
          m.unlock($);
          return true;
        }
      }
    }
    const std::uint64_t gen = generation($);                  // line 240
    while (!(generation($) != gen || stop())) cv.wait(m, $);  // line 241
    if (generation($) != gen) {                               // line 244
      m.unlock($);
      return true;
    }
    // line 248: leaving on stop()
    const std::uint64_t left = waiters($) - 1;
    waiters($) = left;
    if (left == 0 ? g_cfg.last_leaver_clears_bit : g_cfg.every_leaver_clears_bit) {
      word($).fetch_and(~kWaiterBit, rl::mo_relaxed);
    }
    m.unlock($);
    return false;  // line 249
  }

  void wait_zero() {  // lines 214-216
    (void)wait_zero_unless([] { return false; });
  }

  // interrupt(), lines 257-260.
  void interrupt() {
    if (g_cfg.interrupt_locks) m.lock($);  // line 258
    cv.notify_all($);                      // line 259
    if (g_cfg.interrupt_locks) m.unlock($);
  }
};

// handlers: two handlers count down; the waiter reads their effects and destroys the counter.
struct Handlers : rl::test_suite<Handlers, 3> {
  Counter c;
  rl::var<int> effect[2];

  void before() {
    c.init(2);
    effect[0]($) = 0;
    effect[1]($) = 0;
  }
  void thread(unsigned index) {
    if (index == 0) {
      c.wait_zero();
      RL_ASSERT(effect[0]($) == 1);
      RL_ASSERT(effect[1]($) == 1);
      c.destroyed($) = 1;
    } else {
      effect[index - 1]($) = 1;
      c.count_down();
    }
  }
};

// repost: thread 2's handler posts another (add) before it counts down, then runs it.
struct Repost : rl::test_suite<Repost, 3> {
  Counter c;
  rl::var<int> effect[3];

  void before() {
    c.init(2);
    for (auto& e : effect) e($) = 0;
  }
  void thread(unsigned index) {
    if (index == 0) {
      c.wait_zero();
      for (auto& e : effect) RL_ASSERT(e($) == 1);
      c.destroyed($) = 1;
    } else if (index == 1) {
      effect[0]($) = 1;
      c.count_down();
    } else {
      c.add();  // the handler posts another one
      effect[1]($) = 1;
      c.count_down();    // ... and finishes
      effect[2]($) = 1;  // the posted one runs on this thread
      c.count_down();
    }
  }
};

// join: the joiner (thread 0), the keeper that then waits too (thread 1), a handler (thread 2).
struct Join : rl::test_suite<Join, 3> {
  Counter c;
  rl::atomic<int> kept;           // AsioContext::has_kept(): K was refused and kept
  rl::var<int> handler_effect;    // H's effect
  rl::var<int> discarded_effect;  // K's destruction by the joiner's discard_kept()

  void before() {
    c.init(2);  // H and K
    kept($).store(0, rl::mo_relaxed);
    handler_effect($) = 0;
    discarded_effect($) = 0;
  }
  void thread(unsigned index) {
    if (index == 0) {
      // AsioContext::join(): `if (!work_.wait_zero_unless(kept)) continue;` after discard_kept().
      const auto stop = [this] { return kept($).load(rl::mo_relaxed) != 0; };
      while (!c.wait_zero_unless(stop)) {
        kept($).store(0, rl::mo_relaxed);
        discarded_effect($) = 1;
        c.count_down();
      }
      RL_ASSERT(handler_effect($) == 1);
    } else if (index == 1) {
      kept($).store(1, rl::mo_relaxed);  // keep_rejected(): the handler is kept, then
      c.interrupt();                     // work_.interrupt()
      c.wait_zero();
      RL_ASSERT(handler_effect($) == 1);
      RL_ASSERT(discarded_effect($) == 1);
    } else {
      handler_effect($) = 1;
      c.count_down();
    }
  }
};

// The random search, then, if it found nothing, the suite's systematic one (see the header).
template <class Suite>
bool run_suite(rl::test_params systematic) {
  rl::test_params p = parkpool::model::random_params();
  return rl::simulate<Suite>(p) && rl::simulate<Suite>(systematic);
}
bool handlers() {
  rl::test_params p;
  p.search_type = rl::sched_full;
  p.output_history = false;
  return run_suite<Handlers>(p);
}
bool repost() { return run_suite<Repost>(parkpool::model::bounded_params(5)); }
bool join() { return run_suite<Join>(parkpool::model::bounded_params(4)); }

bool run_model(const std::string& variant, int& known) {
  g_cfg = Config{};
  known = 1;
  if (variant == "handlers") return handlers();
  if (variant == "repost") return repost();
  if (variant == "join") return join();
  if (variant == "cas_relaxed_z3_acquire") {
    g_cfg.bit_cas_acquire_on_success = false;
    g_cfg.z3 = rl::mo_acquire;
    return repost();
  }
  if (variant == "z1_relaxed") {
    g_cfg.z1 = rl::mo_relaxed;
    return handlers();
  }
  if (variant == "z2_relaxed") {
    g_cfg.z2 = rl::mo_relaxed;
    return handlers();
  }
  if (variant == "cas_failure_relaxed") {
    g_cfg.bit_cas_acquire_on_failure = false;
    return handlers();
  }
  if (variant == "cas_relaxed") {
    g_cfg.bit_cas_acquire_on_success = false;
    return repost();
  }
  if (variant == "no_locked_path") {
    g_cfg.lock_free_ignores_bit = true;
    return handlers();
  }
  if (variant == "no_waiter_bit") {
    g_cfg.waiter_sets_bit = false;
    return handlers();
  }
  if (variant == "touch_after_decrement") {
    g_cfg.touch_after_decrement = true;
    return handlers();
  }
  if (variant == "notify_after_unlock") {
    g_cfg.notify_after_unlock = true;
    return handlers();
  }
  if (variant == "stop_keeps_bit") {
    g_cfg.last_leaver_clears_bit = false;
    return join();
  }
  if (variant == "stop_clears_bit_early") {
    g_cfg.every_leaver_clears_bit = true;
    return join();
  }
  if (variant == "interrupt_unlocked") {
    g_cfg.interrupt_locks = false;
    return join();
  }
  known = 0;
  return false;
}

}  // namespace

int main(int argc, char** argv) { return parkpool::model::model_main(argc, argv, run_model); }

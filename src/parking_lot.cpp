// The parking lot: a fixed table of buckets, each a FIFO queue of parked threads under a small
// futex lock. See <parkpool/parking_lot.hpp> for the contract and the choice of table.
//
// Named invariants:
//  INV-Q  A ThreadData is in the queue of bucket B iff its `state` is kParked and its `key`
//         hashes to B. Both are changed only with B's lock held (and, for a requeue, the lock of
//         the destination bucket too).
//  INV-S  A ThreadData whose state is kWaking or kParked is not reused and not freed: its owner
//         is inside park() and returns only after it has read state == kIdle (acquire).
//  INV-W  (waiter count) Bucket::waiters >= number of threads queued in the bucket, and every
//         thread (or requeue in progress) adds itself with an acquire RMW *before* running
//         validate; a callback-less unparker reads it with a release RMW *after* its own stores.
//         Both RMWs are on the same atomic, so one comes first in its modification order:
//          - unparker first: the parker's RMW reads from the unparker's release sequence, so its
//            validate happens-after the unparker's stores and sees the new state (no park);
//          - parker first: the unparker's RMW reads a value that includes the parker, > 0, and
//            it takes the lock, which orders it against the queueing.
//         This is the store->load (Dekker) handshake done with RMWs on one word instead of
//         seq_cst fences, so that ThreadSanitizer models it.
//  INV-H  (home word) A parked thread with a wake bit (INV-B) sleeps on the `wake_seq` word of its
//         home bucket (the bucket of the key it parked on; a requeue does not change it), with its
//         own `wake_bit` as FUTEX_WAIT_BITSET mask. Every kIdle an unparker stores is followed, by
//         the same unparker before it returns, by a release increment of that thread's home word
//         and a FUTEX_WAKE_BITSET of the thread's bit on it (wake_list). Why one shared word and
//         not the thread's own state word: an unpark_all / unpark_filter that wakes N threads of
//         one bucket then makes them all runnable with ONE syscall (one increment, one
//         FUTEX_WAKE_BITSET with the union of their bits), as glibc's pthread_cond_broadcast does,
//         instead of N syscalls whose wakees preempt the waker one by one. The price: a wake makes
//         the kernel scan every thread asleep on the word (at most 32, below).
//  INV-B  (bits) A home word has 32 bits and no two threads sleeping on it share one: a thread
//         takes a free bit of its home bucket's `wake_bits` at park, under that bucket's lock,
//         and its bit is freed by whoever ends the park, after the last moment the thread could
//         sleep with it (the unparker after its FUTEX_WAKE_BITSET, or the owner when it times
//         out while still queued). When all 32 are taken, the thread sleeps on its own `state`
//         word instead (wake_bit == 0), woken by its own FUTEX_WAKE after its kIdle: the pre-INV-H
//         path, one syscall per thread. So a wake on a home word wakes only the threads it is
//         meant for, at any number of threads, and batches of up to 32 threads per home still
//         take one syscall. (Measured on the 2-vCPU dev VM, 2026-12-01, 1024 threads contending
//         one Mutex with ~5 us critical sections, medians of 9 runs: with bits handed out round
//         robin and shared, each unlock woke the ~32 threads holding the woken thread's bit, 619
//         ms and 88k voluntary context switches; with INV-B 193 ms and 13k, as with per-thread
//         words only, 200 ms and 13k.)

#include <parkpool/parking_lot.hpp>

#include "parking_lot_internal.hpp"
#include "parkpool/detail/futex_lock.hpp"
#include "parkpool/detail/futex_syscall.hpp"
#include "parkpool/detail/parking_lot_test_hooks.hpp"

#include <linux/futex.h>
#include <sched.h>

#include <array>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace parkpool::parking_lot {
namespace {

// ---------------------------------------------------------------------------------------------
// futex
// ---------------------------------------------------------------------------------------------
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

std::uint32_t* futex_addr(std::atomic<std::uint32_t>& word) noexcept {
  // std::atomic<uint32_t> is a standard-layout wrapper of one uint32_t (asserted above); the
  // kernel only compares and sleeps on the address.
  return reinterpret_cast<std::uint32_t*>(&word);
}

// Sleeps while word == expected, until a FUTEX_WAKE_BITSET whose mask shares a bit with `bits`
// (FUTEX_BITSET_MATCH_ANY: any wake), a signal, a spurious wakeup or `deadline` (absolute
// CLOCK_MONOTONIC, which is what libstdc++'s steady_clock reads). Callers loop.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const Clock::time_point* deadline,
                std::uint32_t bits = FUTEX_BITSET_MATCH_ANY) noexcept {
  timespec ts{};
  if (deadline != nullptr) {
    const auto since_epoch = deadline->time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    ts.tv_sec = static_cast<time_t>(secs.count());
    ts.tv_nsec = static_cast<long>(std::chrono::nanoseconds(since_epoch - secs).count());
  }
  // FUTEX_WAIT_BITSET takes an absolute deadline (null: none), so EINTR and spurious returns do
  // not extend it; it costs what FUTEX_WAIT costs.
  parkpool::detail::futex_syscall(futex_addr(word), FUTEX_WAIT_BITSET_PRIVATE, expected,
                                  deadline != nullptr ? &ts : nullptr, nullptr, bits);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  // The word may belong to a thread that has already returned from park() (the store that let
  // it return precedes this call); its ThreadData lives in thread_local storage that may even be
  // gone. The kernel then returns EFAULT or wakes an unrelated waiter on reused memory, which
  // every futex user must tolerate as a spurious wakeup. Nothing here touches the memory.
  parkpool::detail::futex_syscall(futex_addr(word), FUTEX_WAKE_PRIVATE,
                                  static_cast<std::uint32_t>(count), nullptr, nullptr, 0);
}

// Wakes every thread sleeping on `word` whose wait mask shares a bit with `bits` (each bit is
// held by at most one sleeper, INV-B, so "every" is exactly the threads meant).
void futex_wake_bits(std::atomic<std::uint32_t>& word, std::uint32_t bits) noexcept {
  parkpool::detail::futex_syscall(futex_addr(word), FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, nullptr,
                                  nullptr, bits);
}

// ---------------------------------------------------------------------------------------------
// Bucket lock: the three-state futex lock of include/parkpool/detail/futex_lock.hpp (its word's
// states, transitions, orderings and INV-W are documented there, and tests/model/
// futex_lock_model.cpp model-checks that very protocol), with a short spin before it sleeps:
// a bucket is held only for queue operations and callbacks, a few hundred ns at most, so a
// contender usually gets it by waiting that long instead of two syscalls. (The coordinator's
// FutexLock never spins: see futex_lock.hpp for why that lock must not.)
// ---------------------------------------------------------------------------------------------
class BucketLock {
 public:
  constexpr BucketLock() noexcept = default;

  void lock() noexcept {
    if (!Protocol::try_lock(word_)) lock_slow();
  }
  void unlock() noexcept { Protocol::unlock(word_, backend_); }

 private:
  using Protocol = parkpool::detail::FutexLockProtocol<parkpool::detail::FutexBackend>;

  void lock_slow() noexcept {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      // Relaxed load: only a hint that spares a failing RMW; the CAS in try_lock acquires.
      if (word_.load(std::memory_order_relaxed) == Protocol::kFree && Protocol::try_lock(word_)) {
        return;
      }
    }
    Protocol::lock_contended(word_, backend_);
  }

  parkpool::detail::ParkerWord word_{Protocol::kFree};
  [[no_unique_address]] parkpool::detail::FutexBackend backend_;  // stateless
};

// ---------------------------------------------------------------------------------------------
// Per-thread parking data.
// ---------------------------------------------------------------------------------------------
// ThreadData::state (the handshake word; the thread sleeps on its home bucket's wake_seq, INV-H,
// or, when its home had no free bit, on this word, INV-B):
//   kIdle    not queued; the owner may return from park()    set by the unparker, after the
//                                                             bucket lock is released (release)
//   kParked  queued in the bucket of `key` (INV-Q)            set by the owner under the lock
//   kWaking  dequeued by an unparker that will set kIdle      set by the unparker under the lock
//            and FUTEX_WAKE; the owner must wait for kIdle
// kWaking exists so that an unparker can drop the bucket lock before touching the thread again
// (the wake syscall happens unlocked) while the thread still cannot leave park() (INV-S); this
// lets unpark_all wake any number of threads through the intrusive `next` links, without a
// buffer and without allocating.
constexpr std::uint32_t kIdle = 0;
constexpr std::uint32_t kParked = 1;
constexpr std::uint32_t kWaking = 2;

struct Bucket;

struct ThreadData {
  std::atomic<std::uint32_t> state{kIdle};
  // The key the thread is parked on. Written under the bucket lock(s) and read under them
  // (relaxed: ordered by the lock); read by the owner without a lock only to find which bucket
  // to lock (then re-checked under that lock), so relaxed.
  std::atomic<const void*> key{nullptr};
  ThreadData* next = nullptr;     // queue link, guarded by the bucket lock
  ParkToken park_token{};         // guarded by the bucket lock
  UnparkToken unpark_token{};     // written under the lock before kWaking; read after kIdle
  bool in_park = false;           // owner only: between queueing and returning from park()
  std::uint32_t in_callback = 0;  // owner only: > 0 while a callback of this thread runs
  // INV-H / INV-B: the home bucket whose wake_seq the thread sleeps on and its bit in the
  // FUTEX_WAIT_BITSET mask, or wake_bit == 0 (home unused): it sleeps on `state`. Written by the
  // owner under the home bucket's lock at every park, before it is queued; read by unparkers
  // under the lock of the bucket that queues it (the lock, or a requeue holding both locks,
  // orders the write before the read) and by the owner.
  Bucket* home = nullptr;
  std::uint32_t wake_bit = 0;  // one bit of home->wake_bits (INV-B), or 0
};
static_assert(std::is_trivially_destructible_v<ThreadData>,
              "ThreadData must stay usable during thread-local teardown");

// Constant-initialized and trivially destructible: no TLS guard, no destructor registration,
// valid for the whole life of the thread including its thread_local destructors, and no memory
// that outlives the thread (bounded under thread churn).
constinit thread_local ThreadData tls_thread_data;

// ---------------------------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------------------------
constexpr std::size_t kBucketBits = 12;
constexpr std::size_t kBucketCount = std::size_t{1} << kBucketBits;

struct alignas(64) Bucket {
  BucketLock lock;
  // INV-W: number of threads queued here plus requeues in progress (upper bound of the queue
  // length). Incremented (acquire) before validate, decremented (relaxed) after dequeueing.
  std::atomic<std::uint32_t> waiters{0};
  ThreadData* head = nullptr;  // FIFO queue, guarded by `lock`
  ThreadData* tail = nullptr;
  // Eventual fairness, guarded by `lock`: the next unpark after this instant is fair.
  // 0 = not yet armed (the next unpark is fair).
  std::int64_t fair_deadline_ns = 0;
  std::uint32_t seed = 0;  // xorshift32 state, guarded by `lock`; 0 = not yet seeded
  // INV-H: the futex word every thread whose home is this bucket sleeps on. A counter, not a
  // state: an unparker increments it (release, (P3)) after storing kIdle into the threads it
  // wakes, so a thread that read the old value before checking its state either sees kIdle or
  // has its FUTEX_WAIT_BITSET fail (the word changed) or sleeps before the increment and is
  // woken by the FUTEX_WAKE_BITSET that follows it. Only equality matters and a thread re-reads
  // it before every sleep, so wrapping around is harmless unless exactly 2^32 increments fall
  // between one thread's read and its sleep (the limit of every futex sequence counter).
  std::atomic<std::uint32_t> wake_seq{0};
  // INV-B: the bits of wake_seq held by threads whose home is this bucket (bit set from the
  // thread's park to the end of its wake). Set only under `lock` (so two parkers never take the
  // same free bit); cleared by RMWs without the lock. Relaxed everywhere: exclusive bits only
  // spare threads spurious wakeups; a wake wakes every sleeper with its bits, so no ordering of
  // this mask can lose one.
  std::atomic<std::uint32_t> wake_bits{0};
};
static_assert(sizeof(Bucket) == 64, "one cache line per bucket");

constinit std::array<Bucket, kBucketCount> g_table{};

Bucket& bucket_of(const void* key) noexcept {
  // Fibonacci hashing: multiplies by 2^64/phi and keeps the top bits, which mixes the alignment
  // zeros of the low address bits into the index.
  const auto h =
      static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key)) * 0x9E3779B97F4A7C15ULL;
  return g_table[static_cast<std::size_t>(h >> (64 - kBucketBits))];
}

[[noreturn]] void fatal(const char* what) noexcept {
  std::fprintf(stderr, "parkpool::parking_lot: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

void check_not_in_callback(const ThreadData& self) noexcept {
  if (self.in_callback != 0) {
    fatal(
        "a parking_lot function was called from a callback that runs under a bucket lock "
        "(callbacks must not park or unpark)");
  }
}

// RAII for "a callback of this thread is running".
class CallbackScope {
 public:
  explicit CallbackScope(ThreadData& t) noexcept : t_(t) { ++t_.in_callback; }
  ~CallbackScope() { --t_.in_callback; }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  ThreadData& t_;
};

// Locks the two buckets in address order (one lock when they are the same bucket).
void lock_pair(Bucket& a, Bucket& b) noexcept {
  if (&a == &b) {
    a.lock.lock();
  } else if (&a < &b) {
    a.lock.lock();
    b.lock.lock();
  } else {
    b.lock.lock();
    a.lock.lock();
  }
}
void unlock_pair(Bucket& a, Bucket& b) noexcept {
  a.lock.unlock();
  if (&a != &b) b.lock.unlock();
}

// Locks the bucket the thread is currently parked in (its key may change under a requeue).
Bucket& lock_own_bucket(const ThreadData& self) noexcept {
  for (;;) {
    const void* key = self.key.load(std::memory_order_relaxed);
    // Tests only (parking_lot_test_hooks.hpp), before the lock: a requeue needs it.
    detail::park_timed_out_relock_hook_for_test(key);
    Bucket& b = bucket_of(key);
    b.lock.lock();
    // Under the lock the key is stable for this bucket (INV-Q): a requeue changes it only while
    // holding this bucket's lock as well.
    if (self.key.load(std::memory_order_relaxed) == key) return b;
    b.lock.unlock();
  }
}

void enqueue(Bucket& b, ThreadData* t) noexcept {
  t->next = nullptr;
  if (b.tail != nullptr) {
    b.tail->next = t;
  } else {
    b.head = t;
  }
  b.tail = t;
}

// Removes `t` whose predecessor is `prev` (nullptr when it is the head).
void unlink(Bucket& b, ThreadData* prev, ThreadData* t) noexcept {
  if (prev != nullptr) {
    prev->next = t->next;
  } else {
    b.head = t->next;
  }
  if (b.tail == t) b.tail = prev;
  t->next = nullptr;
}

bool has_key_after(const ThreadData* from, const void* key) noexcept {
  for (const ThreadData* t = from; t != nullptr; t = t->next) {
    if (t->key.load(std::memory_order_relaxed) == key) return true;
  }
  return false;
}

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Called with the lock held, only when a thread is being unparked: true about every 0.5 ms.
bool be_fair(Bucket& b) noexcept {
  const std::int64_t now = now_ns();
  if (b.seed == 0) {
    b.seed = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&b) >> 6) | 1U;
  }
  // xorshift32 (Marsaglia 2003).
  b.seed ^= b.seed << 13;
  b.seed ^= b.seed >> 17;
  b.seed ^= b.seed << 5;
  const std::int64_t delay = static_cast<std::int64_t>(b.seed % 1'000'000U);  // [0, 1 ms)
  // A fair deadline of 0 (never armed) counts as passed. So, for a bucket serving one key, an
  // unpark more than 1 ms after the previous fair one is always fair: a lock held for longer
  // than 1 ms is handed off on unlock.
  if (now > b.fair_deadline_ns) {
    b.fair_deadline_ns = now + delay;
    return true;
  }
  return false;
}

// Marks a dequeued thread as being woken; must be called with the bucket lock held.
void mark_waking(ThreadData* t, UnparkToken token) noexcept {
  t->unpark_token = token;
  // Relaxed: the owner only acts on kIdle (below); under the lock, a timing-out owner reads
  // kWaking and then waits for kIdle.
  t->state.store(kWaking, std::memory_order_relaxed);
}

// Wakes the threads sleeping on `home`'s word whose bits are in `bits`, after their kIdle stores,
// and frees the bits.
void wake_home(Bucket& home, std::uint32_t bits) noexcept {
  // (P3) release RMW: pairs with the owner's acquire load of its home word (P0). A thread that
  // reads this increment (or a later one: they are RMWs, so they continue its release sequence)
  // sees the kIdle stored before it. The increment, not only the wake, is needed: an owner that
  // read the word before it and its state before the kIdle store is about to sleep on the old
  // value, and the kernel refuses to let it (EAGAIN) once the word changed.
  home.wake_seq.fetch_add(1, std::memory_order_release);
  // The home word is in the static table: always valid memory, whoever sleeps on it.
  futex_wake_bits(home.wake_seq, bits);
  // INV-B: only now, after the wake, can no thread of `bits` sleep with its bit any more (one
  // that has not slept yet fails its FUTEX_WAIT_BITSET: the word moved on), so only now may a
  // new parker take the bits. Relaxed: see Bucket::wake_bits.
  home.wake_bits.fetch_and(~bits, std::memory_order_relaxed);
}

// Wakes a list of threads linked by `next` that are all in kWaking. Called without any lock.
// Threads with the same home word (consecutive in the list, threads on their own word in between
// not counting) are woken with one increment and one FUTEX_WAKE_BITSET carrying the union of
// their bits (INV-H): an unpark_all of up to 32 threads of one key makes them all runnable with
// one syscall. A thread on its own word (INV-B) gets its own FUTEX_WAKE.
void wake_list(ThreadData* list) noexcept {
  Bucket* home = nullptr;
  std::uint32_t bits = 0;
  while (list != nullptr) {
    // Read before kIdle: afterwards `list` may return from park() and be reused (INV-S).
    ThreadData* next = list->next;
    Bucket* const h = list->home;
    const std::uint32_t bit = list->wake_bit;
    if (bit != 0 && h != home) {
      if (home != nullptr) wake_home(*home, bits);  // the previous run of threads, all kIdle
      home = h;
      bits = 0;
    }
    bits |= bit;
    // (P1) release: pairs with the owner's acquire load (P2); publishes unpark_token and
    // everything the unparker and its callback did.
    list->state.store(kIdle, std::memory_order_release);
    // INV-B, own word: the FUTEX_WAKE follows the kIdle store, as the kernel compares the word
    // itself (a thread that read kWaking either sleeps before the store and is woken here, or
    // fails its FUTEX_WAIT because the word changed).
    if (bit == 0) futex_wake(list->state, 1);
    list = next;
  }
  if (home != nullptr) wake_home(*home, bits);
}

// Tests only (parking_lot_test_hooks.hpp): called by wait_idle right before each futex wait,
// without any lock (an unpark takes the bucket lock). The key is read only when a hook is set.
void before_sleep_for_test(const ThreadData& self) noexcept {
  if (const auto hook = detail::park_before_sleep_hook_for_test.get()) {
    // Relaxed: the owner's own key, written under the bucket lock by it or by a requeue; the
    // hook only compares it.
    hook(self.key.load(std::memory_order_relaxed));
  }
}

// Waits until the owner's state is kIdle; returns false when `deadline` passed first.
bool wait_idle(ThreadData& self, const Clock::time_point* deadline) noexcept {
  if (self.wake_bit == 0) {
    // INV-B: no free bit at park; sleep on our own state word.
    for (;;) {
      // (P2) acquire: pairs with (P1).
      const std::uint32_t s = self.state.load(std::memory_order_acquire);
      if (s == kIdle) return true;
      if (deadline != nullptr && Clock::now() >= *deadline) return false;
      before_sleep_for_test(self);
      futex_wait(self.state, s, deadline);  // woken, EAGAIN, EINTR or spurious: loop
    }
  }
  for (;;) {
    // (P0) acquire: pairs with (P3). Read BEFORE the state: if it already includes the increment
    // that follows our kIdle, the acquire makes (P2) see kIdle; if not, the futex wait below
    // either fails (the word moved on) or is woken by that increment's FUTEX_WAKE_BITSET.
    const std::uint32_t seq = self.home->wake_seq.load(std::memory_order_acquire);
    // (P2) acquire: pairs with (P1).
    const std::uint32_t s = self.state.load(std::memory_order_acquire);
    if (s == kIdle) return true;
    if (deadline != nullptr && Clock::now() >= *deadline) return false;
    before_sleep_for_test(self);
    // Woken by our bit, EAGAIN, EINTR or a spurious return: loop.
    futex_wait(self.home->wake_seq, seq, deadline, self.wake_bit);
  }
}

// INV-B: takes a free bit of `b`'s wake word for `self`, or none (wake_bit 0: `self` will sleep
// on its own state word). Called with b's lock held, by the owner, before it is queued.
void take_wake_bit(Bucket& b, ThreadData& self) noexcept {
  // Relaxed (Bucket::wake_bits). Only this lock's holder sets bits, so a bit seen free stays
  // free until the fetch_or; a concurrent clear only frees another one.
  const std::uint32_t free = ~b.wake_bits.load(std::memory_order_relaxed);
  const std::uint32_t bit = free & (0U - free);  // the lowest free bit, or 0
  if (bit != 0) b.wake_bits.fetch_or(bit, std::memory_order_relaxed);
  self.home = &b;
  self.wake_bit = bit;
}

}  // namespace

namespace detail {

[[noreturn]] void callback_threw(const char* which) noexcept {
  std::fprintf(stderr,
               "parkpool::parking_lot: the %s callback threw an exception; callbacks run under a "
               "bucket lock and must not throw\n",
               which);
  std::fflush(stderr);
  std::terminate();
}

bool may_have_waiters(const void* key) noexcept {
  // The callback-less unpark_one / unpark_all return here when the bucket is empty: check the
  // callback rule first, so a call from a callback is caught every time, not only when some
  // thread happens to be queued (and the call would self-deadlock on the bucket lock).
  check_not_in_callback(tls_thread_data);
  // INV-W, unparker side: a release RMW (not a load), so that a parker whose increment comes
  // later in the modification order synchronizes with this thread and its validate sees every
  // store this thread made before the call.
  return bucket_of(key).waiters.fetch_add(0, std::memory_order_release) != 0;
}

ParkResult park_slow(const void* key, ValidateRef validate, BeforeSleepRef before_sleep,
                     TimedOutRef timed_out, ParkToken park_token,
                     const Deadline& deadline) noexcept {
  ThreadData& self = tls_thread_data;
  check_not_in_callback(self);
  if (self.in_park)
    fatal("park() called while this thread is already parking (from before_sleep?)");

  Bucket& b = bucket_of(key);
  b.lock.lock();
  // INV-W, parker side: acquire RMW before validate.
  b.waiters.fetch_add(1, std::memory_order_acquire);
  bool ok;
  {
    const CallbackScope scope(self);
    ok = validate();
  }
  if (!ok) {
    // Relaxed: INV-W only needs the count to be an upper bound while the thread is queued.
    b.waiters.fetch_sub(1, std::memory_order_relaxed);
    b.lock.unlock();
    return ParkResult::invalid();
  }
  self.key.store(key, std::memory_order_relaxed);  // under the lock, INV-Q
  self.park_token = park_token;
  take_wake_bit(b, self);  // INV-H / INV-B, under the lock: unparkers read them under a lock
  self.state.store(kParked, std::memory_order_relaxed);  // under the lock, INV-Q
  enqueue(b, &self);
  b.lock.unlock();

  self.in_park = true;
  {
    // before_sleep runs unlocked; it may unpark (a Condvar unlocks its mutex here) but not park.
    before_sleep();
  }

  const Clock::time_point* dl = deadline ? &*deadline : nullptr;
#if defined(PARKPOOL_DEADLOCK_DETECTION) && PARKPOOL_DEADLOCK_DETECTION
  // Only sleeps without a deadline can be part of a deadlock.
  if (dl == nullptr) deadlock_park_begin(&self);
#endif
  if (wait_idle(self, dl)) {
#if defined(PARKPOOL_DEADLOCK_DETECTION) && PARKPOOL_DEADLOCK_DETECTION
    if (dl == nullptr) deadlock_park_end();
#endif
    self.in_park = false;
    return ParkResult::unparked(self.unpark_token);
  }

  // Deadline passed: leave the queue unless an unparker got to us first.
  Bucket& own = lock_own_bucket(self);
  const std::uint32_t s = self.state.load(std::memory_order_relaxed);  // stable under the lock
  if (s != kParked) {
    // kWaking (or already kIdle): we were dequeued by an unparker; it will set kIdle promptly.
    own.lock.unlock();
    wait_idle(self, nullptr);
    self.in_park = false;
    return ParkResult::unparked(self.unpark_token);
  }
  const void* key_now = self.key.load(std::memory_order_relaxed);
  ThreadData* prev = nullptr;
  ThreadData* t = own.head;
  while (t != &self) {
    if (t == nullptr) fatal("INV-Q broken: a parked thread is missing from its bucket queue");
    prev = t;
    t = t->next;
  }
  unlink(own, prev, &self);
  own.waiters.fetch_sub(1, std::memory_order_relaxed);
  self.state.store(kIdle, std::memory_order_relaxed);  // we own it again; nobody else reads it
  // INV-B: no unparker will wake us, and we no longer sleep: free our bit. Relaxed: see
  // Bucket::wake_bits.
  if (self.wake_bit != 0) self.home->wake_bits.fetch_and(~self.wake_bit, std::memory_order_relaxed);
  const bool was_last = !has_key_after(own.head, key_now);
  {
    const CallbackScope scope(self);
    timed_out(key_now, was_last);
  }
  own.lock.unlock();
  self.in_park = false;
  return ParkResult::timed_out();
}

UnparkResult unpark_one_slow(const void* key, const UnparkCallbackRef* callback) noexcept {
  ThreadData& self = tls_thread_data;
  check_not_in_callback(self);
  Bucket& b = bucket_of(key);
  b.lock.lock();
  UnparkResult result;
  ThreadData* prev = nullptr;
  ThreadData* woken = nullptr;
  for (ThreadData* t = b.head; t != nullptr; prev = t, t = t->next) {
    if (t->key.load(std::memory_order_relaxed) == key) {
      unlink(b, prev, t);
      b.waiters.fetch_sub(1, std::memory_order_relaxed);
      woken = t;
      break;
    }
  }
  UnparkToken token = kDefaultUnparkToken;
  if (woken != nullptr) {
    result.unparked_threads = 1;
    result.have_more_threads = has_key_after(prev != nullptr ? prev->next : b.head, key);
    result.be_fair = be_fair(b);
  }
  if (callback != nullptr) {
    const CallbackScope scope(self);
    token = (*callback)(result);
  }
  if (woken != nullptr) mark_waking(woken, token);
  b.lock.unlock();
  wake_list(woken);
  return result;
}

std::size_t unpark_all_slow(const void* key, UnparkToken token) noexcept {
  check_not_in_callback(tls_thread_data);
  Bucket& b = bucket_of(key);
  b.lock.lock();
  ThreadData* list = nullptr;
  ThreadData* list_tail = nullptr;
  std::size_t n = 0;
  ThreadData* prev = nullptr;
  ThreadData* t = b.head;
  while (t != nullptr) {
    ThreadData* next = t->next;
    if (t->key.load(std::memory_order_relaxed) == key) {
      unlink(b, prev, t);
      b.waiters.fetch_sub(1, std::memory_order_relaxed);
      mark_waking(t, token);
      if (list_tail != nullptr) {
        list_tail->next = t;
      } else {
        list = t;
      }
      list_tail = t;
      ++n;
    } else {
      prev = t;
    }
    t = next;
  }
  b.lock.unlock();
  wake_list(list);
  return n;
}

UnparkResult unpark_filter_slow(const void* key, FilterRef filter,
                                UnparkCallbackRef callback) noexcept {
  ThreadData& self = tls_thread_data;
  check_not_in_callback(self);
  Bucket& b = bucket_of(key);
  b.lock.lock();
  UnparkResult result;
  ThreadData* list = nullptr;
  ThreadData* list_tail = nullptr;
  ThreadData* prev = nullptr;
  ThreadData* t = b.head;
  {
    const CallbackScope scope(self);
    while (t != nullptr) {
      ThreadData* next = t->next;
      if (t->key.load(std::memory_order_relaxed) == key) {
        const FilterOp op = filter(t->park_token);
        if (op == FilterOp::stop) {
          result.have_more_threads = true;
          break;
        }
        if (op == FilterOp::unpark) {
          unlink(b, prev, t);
          b.waiters.fetch_sub(1, std::memory_order_relaxed);
          if (list_tail != nullptr) {
            list_tail->next = t;
          } else {
            list = t;
          }
          list_tail = t;
          ++result.unparked_threads;
          t = next;
          continue;
        }
        result.have_more_threads = true;  // skipped: still parked
      }
      prev = t;
      t = next;
    }
    if (result.unparked_threads != 0) result.be_fair = be_fair(b);
    const UnparkToken token = callback(result);
    for (ThreadData* w = list; w != nullptr; w = w->next) mark_waking(w, token);
  }
  b.lock.unlock();
  wake_list(list);
  return result;
}

UnparkResult unpark_requeue_slow(const void* key_from, const void* key_to,
                                 RequeueValidateRef validate,
                                 RequeueCallbackRef callback) noexcept {
  ThreadData& self = tls_thread_data;
  check_not_in_callback(self);
  Bucket& from = bucket_of(key_from);
  Bucket& to = bucket_of(key_to);
  lock_pair(from, to);
  // INV-W for key_to: threads may land in `to` without running their own validate, so this
  // requeue counts as a waiter of `to` (acquire, before validate) until it is done.
  to.waiters.fetch_add(1, std::memory_order_acquire);

  UnparkResult result;
  RequeueOp op;
  {
    const CallbackScope scope(self);
    op = validate();
  }
  ThreadData* woken = nullptr;
  if (op != RequeueOp::abort) {
    ThreadData* prev = nullptr;
    ThreadData* t = from.head;
    bool first = true;
    const bool unpark_first =
        op == RequeueOp::unpark_one || op == RequeueOp::unpark_one_requeue_rest;
    const bool requeue_rest =
        op == RequeueOp::unpark_one_requeue_rest || op == RequeueOp::requeue_all;
    while (t != nullptr) {
      ThreadData* next = t->next;
      if (t->key.load(std::memory_order_relaxed) != key_from) {
        prev = t;
        t = next;
        continue;
      }
      if (!first && !requeue_rest) {
        // unpark_one / requeue_one: only the first thread is handled.
        result.have_more_threads = true;
        break;
      }
      unlink(from, prev, t);
      from.waiters.fetch_sub(1, std::memory_order_relaxed);
      if (first && unpark_first) {
        woken = t;
        result.unparked_threads = 1;
      } else {
        // Requeue: the thread stays kParked; key and queue change under both locks (INV-Q).
        t->key.store(key_to, std::memory_order_relaxed);
        to.waiters.fetch_add(1, std::memory_order_relaxed);  // ordered by the guard above
        enqueue(to, t);
        ++result.requeued_threads;
      }
      first = false;
      t = next;
    }
    if (woken != nullptr) result.be_fair = be_fair(from);
    UnparkToken token;
    {
      const CallbackScope scope(self);
      token = callback(op, result);
    }
    if (woken != nullptr) mark_waking(woken, token);
  }
  to.waiters.fetch_sub(1, std::memory_order_relaxed);  // the guard
  unlock_pair(from, to);
  wake_list(woken);
  return result;
}

const void* parked_key_locked(const void* thread_data) noexcept {
  const auto* t = static_cast<const ThreadData*>(thread_data);
  // Every bucket is locked: state and key are stable (INV-Q).
  if (t->state.load(std::memory_order_relaxed) != kParked) return nullptr;
  return t->key.load(std::memory_order_relaxed);
}

void check_not_in_callback_here() noexcept { check_not_in_callback(tls_thread_data); }

void lock_all_buckets() noexcept {
  // Array order is address order, the order lock_pair uses: no lock-order inversion.
  for (Bucket& b : g_table) b.lock.lock();
}

void unlock_all_buckets() noexcept {
  for (Bucket& b : g_table) b.lock.unlock();
}

}  // namespace detail

Deadline deadline_after(std::chrono::nanoseconds timeout) noexcept {
  const Clock::time_point now = Clock::now();
  if (timeout <= std::chrono::nanoseconds::zero()) return now;
  const auto headroom = Clock::time_point::max() - now;
  if (timeout >= headroom) return std::nullopt;  // too far to represent: no deadline
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

bool SpinWait::spin() noexcept {
  if (counter_ >= 10) return false;
  ++counter_;
  if (counter_ <= 3) {
    for (std::uint32_t i = 0; i < (1U << counter_); ++i) cpu_relax();
  } else {
    sched_yield();
  }
  return true;
}

void SpinWait::spin_no_yield() noexcept {
  if (counter_ < 10) ++counter_;
  for (std::uint32_t i = 0; i < (1U << counter_); ++i) cpu_relax();  // parking_lot_core: 2..1024
}

}  // namespace parkpool::parking_lot

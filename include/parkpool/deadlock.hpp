// parkpool::deadlock: optional deadlock detection for primitives built on the parking lot.
//
// What: primitives report the resources a thread holds (acquire_resource / release_resource,
// keyed like the parking lot, usually by the primitive's address); the parking lot records which
// key each thread is parked on when it parks *without* a deadline. check_deadlock() builds the
// wait-for graph "thread T is parked on key K, K is held by thread U" and returns its cycles. A
// primitive whose waiters park on a second key declares the resource they really wait for with
// WaitForHolders (SharedMutex does, for a writer waiting for the readers to leave).
//
// When a parked thread counts: from the moment its park's before_sleep callback has returned
// (the thread is queued on the key a moment earlier). Until then a check does not see it, so a
// deadlock that has just formed can be missed by one check and found by the next: call
// check_deadlock() periodically (as parking_lot's deadlock detection is meant to be used). The
// other order would report cycles that do not exist: a Condvar waiter releases its mutex in
// before_sleep, after it is queued.
//
// Build option: PARKPOOL_DEADLOCK_DETECTION (CMake option of the same name, a public compile
// definition of parkpool::sync). Without it every function here is an inline no-op and
// check_deadlock() returns no cycles; parkpool::Mutex, SharedMutex and Condvar then carry no
// bookkeeping at all. With it, each thread allocates a small record on its first use (freed
// when the thread exits) and acquire/release take a per-thread lock: a debugging aid, not for
// production hot paths.
//
// Thread-safety: all functions may be called from any thread. check_deadlock() briefly locks
// every bucket of the parking lot (freezing who is parked where) and the per-thread records; it
// must not be called from a parking-lot callback (that aborts with a message, as a parking_lot
// call from a callback does: it would wait forever for the bucket lock its caller holds).
//
// Result: one Cycle per strongly connected component of the wait-for graph that contains a
// cycle (two or more threads waiting on each other, or a thread waiting on a resource it holds).
// Every thread of a real deadlock appears in exactly one Cycle, unless a thread of it is already
// past its record (see "Thread exit"). The graph is a snapshot: threads in a real deadlock never
// move, so repeated checks report them again; a transient state (a resource released a moment
// later) could in principle be reported once, so confirm by calling again when acting on the
// result.
//
// Lifetime: records of exited threads are removed when they exit; keys are never dereferenced.
// Thread exit: a thread's record is freed during its thread_local destruction, by a thread_local
// created together with the record (so before every thread_local the thread constructed
// earlier). From then on the thread takes no part in deadlock detection: the primitives stay
// usable from its remaining thread_local destructors, but those holds and parks are not recorded,
// its earlier holds are forgotten, and no Cycle contains it. A deadlock that involves such a
// thread is not reported.
#pragma once

#include <thread>
#include <vector>

namespace parkpool::deadlock {

struct DeadlockedThread {
  std::thread::id thread;  // the thread
  // The key it is parked on (no deadline), or the resource that park waits for when the primitive
  // declared one with WaitForHolders (a SharedMutex writer waiting for readers: the SharedMutex).
  const void* waiting_on = nullptr;
  std::vector<const void*> holding;  // resources it holds
};
using Cycle = std::vector<DeadlockedThread>;

#if defined(PARKPOOL_DEADLOCK_DETECTION) && PARKPOOL_DEADLOCK_DETECTION
inline constexpr bool kEnabled = true;
// Records that the calling thread now holds `key` (a thread may hold a key several times, and
// several threads may hold one key, e.g. readers of a SharedMutex).
void acquire_resource(const void* key) noexcept;
// Forgets one hold of `key` by the calling thread (no effect if it holds none).
void release_resource(const void* key) noexcept;
std::vector<Cycle> check_deadlock();

// For a primitive whose waiter parks on a key other than the resource it waits for. While a
// WaitForHolders lives, a park without deadline by the calling thread counts as waiting for the
// holders of `resource`, not for those of the key it parks on, and is reported with `resource` as
// waiting_on. One hold of `resource` by the calling thread itself does not count: it is the claim
// that makes the thread wait (a SharedMutex writer records the writer bit it claimed as holding
// the mutex, then parks on the mutex's second key until the readers leave). A further hold by the
// thread does count, so a thread waiting for its own read hold is reported. Create it on the
// waiting thread, outside parking-lot callbacks; scopes nest.
class WaitForHolders {
 public:
  explicit WaitForHolders(const void* resource) noexcept;
  ~WaitForHolders();
  WaitForHolders(const WaitForHolders&) = delete;
  WaitForHolders& operator=(const WaitForHolders&) = delete;

 private:
  const void* previous_;  // the enclosing scope's resource, restored on destruction
};
#else
inline constexpr bool kEnabled = false;
inline void acquire_resource(const void*) noexcept {}
inline void release_resource(const void*) noexcept {}
inline std::vector<Cycle> check_deadlock() { return {}; }

class WaitForHolders {
 public:
  explicit WaitForHolders(const void*) noexcept {}
  WaitForHolders(const WaitForHolders&) = delete;
  WaitForHolders& operator=(const WaitForHolders&) = delete;
};
#endif

}  // namespace parkpool::deadlock

// Tests only: seams in src/parking_lot.cpp that let a test run an action at an exact point of a
// park, to force an interleaving a test could otherwise only make likely by repetition. Both are
// nullptr in production. Each is called on the parking thread itself, with no bucket lock held,
// so a hook may unpark or requeue (it must not park). It is called for every thread that reaches
// the point, so a hook checks that the thread is the test's (a thread_local flag) and returns at
// once otherwise. A test installs a hook before the thread that should run it starts (or on that
// thread) and removes it when done.
#pragma once

#include "parkpool/detail/test_hook.hpp"

namespace parkpool::parking_lot::detail {

// Called by a parked thread (queued, its before_sleep done, its state seen not yet woken) right
// before each futex wait of its park, with the key it is parked on: an unpark made here lands
// between the thread's last check and its sleep, the window that the unparker's increment of the
// home word closes (INV-H). Costs one relaxed load and a branch per sleep, which blocks anyway.
inline parkpool::detail::TestHook<const void*> park_before_sleep_hook_for_test;

// Called by a park whose deadline passed, each time it has read its key to find its bucket and
// before it locks that bucket, with the key it read: a requeue made here moves the thread after
// the read and before the lock, the move that the key's re-check under the lock catches (INV-Q).
// Costs one relaxed load and a branch, only on a timed-out park, which is about to take a lock.
inline parkpool::detail::TestHook<const void*> park_timed_out_relock_hook_for_test;

}  // namespace parkpool::parking_lot::detail

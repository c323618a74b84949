// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), as IdleCoordinator::heavy_barrier() uses it,
// modelled by its guarantee for the Relacy models whose protocol relies on it (idle_model: the
// sleeper's (H) against a notify_work_local() publisher; chase_lev_model: reclaim()'s S2 against
// a thief). One thread requests a barrier; one other thread, the only one that runs fence-free
// code the barrier must cover, polls for requests at its points of interest.
//   barrier()       the requester: returns once the polling thread has executed a seq_cst fence
//                   after this request, at a point() or when it returned (a thread not running
//                   passed a full barrier when it was switched out);
//   point()         the polling thread: the IPI of a pending request may land here;
//   polled_returns() the polling thread, when it is done: it acknowledges every later request.
// The mutex gives membarrier's two orders: what the polling thread did before its
// acknowledgement happens before what the requester does after the barrier, and what the
// requester did before the barrier happens before the polling thread's later steps.
// reset() in the suite's before() (or init()).
#pragma once

#include <relacy/relacy.hpp>

namespace parkpool::model {

struct ModelMembarrier {
  rl::mutex mutex;
  rl::condition_variable cv;
  rl::var<int> requested;
  rl::var<int> acked;
  rl::var<int> polled_gone;
  rl::atomic<int> pending;  // a hint the polling thread reads (relaxed): a request may be waiting

  void reset() {
    requested($) = 0;
    acked($) = 0;
    polled_gone($) = 0;
    pending.store(0, rl::mo_relaxed, $);
  }
  void barrier() {
    mutex.lock($);
    const int ticket = ++requested($);
    pending.store(1, rl::mo_relaxed, $);
    while (acked($) < ticket && polled_gone($) == 0) cv.wait(mutex, $);
    mutex.unlock($);
  }
  void point() {
    if (pending.load(rl::mo_relaxed, $) == 0) return;
    mutex.lock($);
    if (acked($) < requested($)) {
      rl::atomic_thread_fence(rl::mo_seq_cst, $);
      acked($) = requested($);
      cv.notify_all($);
    }
    mutex.unlock($);
  }
  void polled_returns() {
    mutex.lock($);
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    polled_gone($) = 1;
    cv.notify_all($);
    mutex.unlock($);
  }
};

}  // namespace parkpool::model

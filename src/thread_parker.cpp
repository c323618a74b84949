// Out-of-line parts of <parkpool/thread_parker.hpp>: the thread's cached ParkThread and the slow
// paths of block_on (parking, foreign completion). The inline fast paths stay in the header.
#include "parkpool/thread_parker.hpp"

#include <cstdio>
#include <cstdlib>

namespace parkpool::detail {
namespace {

// Set when the thread's cached parker (this_thread's, or block_on's) has been destroyed at thread
// exit. Trivially destructible and constant-initialized, so readable from any thread_local
// destructor.
constinit thread_local bool tl_parker_gone = false;
constinit thread_local bool tl_block_on_parker_gone = false;

struct CachedSlot {
  ParkThread parker;
  bool& gone;
  ~CachedSlot() { gone = true; }
};

[[noreturn]] void cached_parker_misuse() noexcept {
  std::fputs(
      "parkpool: this_thread / block_on used after the thread's cached parker was destroyed at "
      "thread exit (from a thread_local destructor)\n",
      stderr);
  std::abort();
}

}  // namespace

ParkThread& current_park_thread() {
  if (tl_parker_gone) [[unlikely]]
    cached_parker_misuse();
  // Created on first use (lazily, so threads that never park pay nothing), destroyed at exit.
  thread_local CachedSlot slot{ParkThread(), tl_parker_gone};
  return slot.parker;
}

namespace {
// block_on's own parker, apart from this_thread's: the tokens of code that parks the thread
// through this_thread (or CachedParkThread) and those of block_on's wakers never meet, so neither
// consumes nor forges the other's wakeups. Every block_on of the thread (nested ones too) shares
// it; they tolerate each other's tokens (INV-B3).
ParkThread& block_on_park_thread() {
  if (tl_block_on_parker_gone) [[unlikely]]
    cached_parker_misuse();
  thread_local CachedSlot slot{ParkThread(), tl_block_on_parker_gone};
  return slot.parker;
}
}  // namespace

void BlockOnContext::ensure_waker() {
  if (!waker_) waker_ = block_on_park_thread().unpark().into_waker();
}

// Completion of the root on a thread other than the owner (a foreign awaitable moved it).
void BlockOnContext::complete_foreign() noexcept {
  // (B2) acquire, pairs with (B1): if we see kSleeping, waker_ is initialized.
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (s == kRunning) {
      // The owner is not parked and will re-check state_ with (B1) before it parks (INV-B1).
      // (B3) release on success, pairs with (B1)'s acquire failure and (B5): publishes the result.
      // Acquire on failure, pairs with (B1)'s release: if the owner moved to kSleeping, waker_ is
      // visible. Written acq_rel because a failure order stronger than the success order is
      // rejected by Relacy (pre-C++17 rule) and warned about by GCC; the cold path pays nothing
      // measurable for the unneeded acquire half on success.
      if (state_.compare_exchange_weak(s, kDone, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        return;
      }
      continue;  // s reloaded (acquire: pairs with (B1) if it became kSleeping)
    }
    // kSleeping: clone the owner's waker before publishing kDone (INV-B2: after kDone the
    // context may be gone).
    Waker w = waker_;
    // (B3') release, pairs with (B4): publishes the result to the woken owner. acq_rel for the
    // reason given at (B3).
    if (state_.compare_exchange_strong(s, kDone, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      w.wake();  // INV-B1: the owner parks (or will) on kSleeping; this token reaches it.
      return;
    }
    // The owner went back to kRunning meanwhile; w is dropped, retry.
  }
}

bool BlockOnContext::drain_ready() noexcept {
  // (Q3) acquire, pairs with (Q2): sees the node fields and what the pusher wrote before.
  ReadyNode* list = ready_.exchange(nullptr, std::memory_order_acquire);
  if (list == nullptr) return false;
  // The stack is LIFO; reverse it so resumptions run in the order they were queued.
  ReadyNode* fifo = nullptr;
  while (list != nullptr) {
    ReadyNode* next = list->next;
    list->next = fifo;
    fifo = list;
    list = next;
  }
  while (fifo != nullptr) {
    ReadyNode* next = fifo->next;  // read first: resuming may destroy the node's frame
    fifo->handle.resume();
    fifo = next;
  }
  return true;
}

void BlockOnContext::run(std::coroutine_handle<> root) noexcept {
  root.resume();  // the hot path: a coroutine that never suspends finishes here
  for (;;) {
    // (B5) acquire, pairs with (B3): a kDone from another thread publishes the root's result.
    // (A kDone from this thread is sequenced before anyway.)
    if (state_.load(std::memory_order_acquire) == kDone) break;
    if (drain_ready()) continue;  // INV-B3: the queue is checked before every park
    ensure_waker();               // before (B1) publishes it (INV-B2)
    std::uint32_t s = kRunning;
    // (B1) acq_rel: release publishes waker_ to completers (pairs with (B2)); acquire on failure
    // pairs with (B3): the root finished on another thread, its result is visible.
    if (!state_.compare_exchange_strong(s, kSleeping, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
      break;  // kDone
    }
    // A push after the drain above comes with a wake, whose token this park consumes; a stale
    // token only costs one more iteration. Relaxed: a hint; drain_ready's (Q3) takes the nodes.
    if (ready_.load(std::memory_order_relaxed) == nullptr) block_on_park_thread().park();
    s = kSleeping;
    // (B4) acquire on failure, pairs with (B3'): the result written by the completer is visible.
    // Success needs only relaxed (kRunning publishes nothing), but a failure order stronger than
    // the success order draws GCC's -Winvalid-memory-model; acquire costs nothing on x86/ARMv8.
    if (!state_.compare_exchange_strong(s, kRunning, std::memory_order_acquire,
                                        std::memory_order_acquire)) {
      break;  // kDone
    }
  }
  // Every resumption queued for this block_on belongs to the root's coroutine tree, which has
  // finished: nothing may be left (an awaitable resumed twice would leave a node here).
  // Relaxed: a misuse check; it reads no node.
  if (ready_.load(std::memory_order_relaxed) != nullptr) {
    std::fputs(
        "parkpool: block_on finished with resumptions still queued (an awaitable resumed "
        "its coroutine twice?)\n",
        stderr);
    std::abort();
  }
}

}  // namespace parkpool::detail

// Out-of-line parts of parkpool::Parker (include/parkpool/parker.hpp).
// [[gnu::hot]] marks the functions on the wake path from idle (the submitter up to FUTEX_WAKE,
// the woken worker up to its task): GCC places them together in .text.hot, so that path touches
// fewer code pages, each a TLB miss on its first touch after an idle period (not after a
// syscall as such: pool/SLEEP.md, "Tuning", 2026-12-07).
// pool/SLEEP.md, "Tuning", has the measurement.
#include "parkpool/parker.hpp"

#include <cstdio>
#include <cstdlib>
#include <ostream>

namespace parkpool {
namespace detail {

void parker_misuse(const char* what) noexcept {
  std::fprintf(stderr, "parkpool: %s called on a moved-from Parker\n", what);
  std::abort();
}

namespace {
const char* state_name(std::uint32_t s) noexcept {
  switch (s) {
    case kEmpty:
      return "EMPTY";
    case kParked:
      return "PARKED";
    case kNotified:
      return "NOTIFIED";
    default:
      return "INVALID";
  }
}
}  // namespace

}  // namespace detail

std::ostream& operator<<(std::ostream& os, UnparkReason reason) {
  return os << (reason == UnparkReason::unparked ? "unparked" : "timed_out");
}

void Unparker::release() noexcept {
  if (inner_ == nullptr) return;
  // acq_rel: see ParkerInner::refs.
  if (inner_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete inner_;
  inner_ = nullptr;
}

std::ostream& operator<<(std::ostream& os, const Unparker& u) {
  if (u.inner_ == nullptr) return os << "Unparker{moved-from}";
  // Relaxed loads: a diagnostic snapshot, ordered with nothing.
  return os << "Unparker{state="
            << detail::state_name(u.inner_->state.load(std::memory_order_relaxed))
            << ", handles=" << u.inner_->refs.load(std::memory_order_relaxed) << '}';
}

Parker::Parker(ParkerOptions options) : unparker_(new detail::ParkerInner) {
  set_spin(options.spin);
}

void Parker::set_spin(std::chrono::nanoseconds spin) noexcept {
  inner("Parker::set_spin").spin_ns = spin.count() > 0 ? spin.count() : 0;
}

std::chrono::nanoseconds Parker::spin() const noexcept {
  return std::chrono::nanoseconds(inner("Parker::spin").spin_ns);
}

std::ostream& operator<<(std::ostream& os, const Parker& p) {
  const detail::ParkerInner* in = p.block();
  if (in == nullptr) return os << "Parker{moved-from}";
  // Relaxed loads: a diagnostic snapshot, as for Unparker.
  return os << "Parker{state=" << detail::state_name(in->state.load(std::memory_order_relaxed))
            << ", handles=" << in->refs.load(std::memory_order_relaxed) << ", spin=" << in->spin_ns
            << "ns, backend=" << detail::ParkerInner::Backend::kName << '}';
}

[[gnu::hot]] UnparkReason Parker::park_slow(const detail::Deadline& deadline) noexcept {
  detail::ParkerInner& in = *unparker_.inner_;
  return Protocol::park_slow(in.state, in.backend, deadline, in.spin_ns);
}

UnparkReason Parker::park_timeout_slow(std::int64_t timeout_ns) noexcept {
  const std::int64_t end = detail::saturating_add(detail::monotonic_now_ns(), timeout_ns);
  return park_slow(end == detail::kForeverNs ? detail::Deadline::forever()
                                             : detail::Deadline::monotonic(end));
}

UnparkReason Parker::park_until(const detail::Deadline& deadline) noexcept {
  if (deadline.ns == detail::kForeverNs) return park_slow(detail::Deadline::forever());
  const std::int64_t now = deadline.clock == detail::Deadline::Clock::realtime
                               ? detail::realtime_now_ns()
                               : detail::monotonic_now_ns();
  // A past deadline: the fast path already tried the token; no syscall.
  if (deadline.ns <= now) return UnparkReason::timed_out;
  return park_slow(deadline);
}

}  // namespace parkpool

// Deadlock detection (PARKPOOL_DEADLOCK_DETECTION). Contract in <parkpool/deadlock.hpp>.
#include <parkpool/deadlock.hpp>

#if defined(PARKPOOL_DEADLOCK_DETECTION) && PARKPOOL_DEADLOCK_DETECTION

#include <algorithm>
#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "parking_lot_internal.hpp"

namespace parkpool {
namespace {

// One per thread that ever used the detector. Lock order: Registry::m -> every bucket lock ->
// Record::m. The hooks take Record::m alone and never while holding a bucket lock.
struct Record {
  std::mutex m;
  std::vector<const void*> held;             // guarded by m
  const void* parked_thread_data = nullptr;  // guarded by m: set while parked without deadline
  const void* waits_for = nullptr;  // guarded by m: the innermost WaitForHolders' resource, or null
  std::thread::id id = std::this_thread::get_id();
};

struct Registry {
  std::mutex m;
  std::vector<Record*> records;  // guarded by m
};

Registry& registry() {
  // Never destroyed: threads may exit (and unregister) during static destruction.
  static Registry* r = new Registry;
  return *r;
}

// The calling thread's record, behind plain constant-initialised thread_locals: they need no
// construction and have no destructor, so they stay readable from every thread_local destructor
// of the thread, whatever the order of destruction (as tl_parker_gone in thread_parker.cpp).
// tl_record: null until the first hook creates the record, null again once RecordGuard freed it.
// tl_record_gone: set by RecordGuard's destructor, never cleared (the thread is exiting).
// Both are read and written only by their own thread.
constinit thread_local Record* tl_record = nullptr;
constinit thread_local bool tl_record_gone = false;

// Frees the record at thread exit. Constructed when the record is created, so it is destroyed
// before every thread_local constructed earlier, whose destructors may still lock a parkpool
// primitive: the hooks they reach see tl_record_gone and do nothing.
struct RecordGuard {
  RecordGuard() = default;
  RecordGuard(const RecordGuard&) = delete;
  RecordGuard& operator=(const RecordGuard&) = delete;
  ~RecordGuard() {
    Record* const rec = tl_record;
    {
      Registry& r = registry();
      const std::scoped_lock lk(r.m);
      r.records.erase(std::remove(r.records.begin(), r.records.end(), rec), r.records.end());
    }
    // Set before the delete, so nothing below (or any later destructor) can reach `rec`.
    tl_record_gone = true;
    tl_record = nullptr;
    delete rec;
  }
};

// The calling thread's record, created on first use; nullptr once the thread's thread_local
// teardown has freed it. From then on the thread takes no part in deadlock detection, and a hook
// must not create a record again: the function-local guard below has already been constructed
// and destroyed, so it would not be constructed a second time, and the new record would stay in
// the registry for good, a phantom thread for check_deadlock().
Record* self() {
  if (tl_record_gone) [[unlikely]]
    return nullptr;
  if (tl_record == nullptr) [[unlikely]] {
    // The thread's first hook. If that is itself reached from a thread_local destructor, the
    // guard is registered during the teardown; the runtime (glibc's __call_tls_dtors, libc++abi)
    // then runs its destructor after the running one, and the record is still freed.
    thread_local RecordGuard guard;
    auto* rec = new Record;  // debugging builds only: std::terminate if out of memory
    {
      Registry& r = registry();
      const std::scoped_lock lk(r.m);
      r.records.push_back(rec);
    }
    tl_record = rec;
  }
  return tl_record;
}

// Tarjan's strongly connected components over the wait-for graph.
struct Tarjan {
  const std::vector<std::vector<std::size_t>>& edges;
  std::vector<int> index, low;
  std::vector<bool> on_stack;
  std::vector<std::size_t> stack;
  std::vector<std::vector<std::size_t>> components;
  int next = 0;

  explicit Tarjan(const std::vector<std::vector<std::size_t>>& e)
      : edges(e), index(e.size(), -1), low(e.size(), 0), on_stack(e.size(), false) {}

  void visit(std::size_t v) {
    index[v] = low[v] = next++;
    stack.push_back(v);
    on_stack[v] = true;
    for (std::size_t w : edges[v]) {
      if (index[w] < 0) {
        visit(w);
        low[v] = std::min(low[v], low[w]);
      } else if (on_stack[w]) {
        low[v] = std::min(low[v], index[w]);
      }
    }
    if (low[v] == index[v]) {
      std::vector<std::size_t> comp;
      std::size_t w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        comp.push_back(w);
      } while (w != v);
      components.push_back(std::move(comp));
    }
  }
};

}  // namespace

namespace parking_lot::detail {

// Every hook: nothing once the thread's record is gone (self() returns nullptr during teardown).

void deadlock_park_begin(const void* thread_data) noexcept {
  Record* const r = self();
  if (r == nullptr) return;
  const std::scoped_lock lk(r->m);
  r->parked_thread_data = thread_data;
}

void deadlock_park_end() noexcept {
  Record* const r = self();
  if (r == nullptr) return;
  const std::scoped_lock lk(r->m);
  r->parked_thread_data = nullptr;
}

}  // namespace parking_lot::detail

namespace deadlock {

void acquire_resource(const void* key) noexcept {
  Record* const r = self();
  if (r == nullptr) return;
  const std::scoped_lock lk(r->m);
  r->held.push_back(key);  // debugging builds only: may allocate (std::terminate if out of memory)
}

void release_resource(const void* key) noexcept {
  Record* const r = self();
  if (r == nullptr) return;
  const std::scoped_lock lk(r->m);
  // The most recent hold first: locks are usually released in reverse order.
  const auto it = std::find(r->held.rbegin(), r->held.rend(), key);
  if (it != r->held.rend()) r->held.erase(std::next(it).base());
}

WaitForHolders::WaitForHolders(const void* resource) noexcept : previous_(nullptr) {
  Record* const r = self();
  if (r == nullptr) return;  // exiting thread: no part in detection (deadlock.hpp)
  const std::scoped_lock lk(r->m);
  previous_ = r->waits_for;
  r->waits_for = resource;
}

WaitForHolders::~WaitForHolders() {
  Record* const r = self();
  if (r == nullptr) return;
  const std::scoped_lock lk(r->m);
  r->waits_for = previous_;
}

std::vector<Cycle> check_deadlock() {
  // From a parking-lot callback this thread holds a bucket lock that lock_all_buckets() below
  // would wait for: a silent hang (also inside reg.m, behind another checker that waits for that
  // bucket). Abort with a message first, as a parking_lot call from a callback does.
  parking_lot::detail::check_not_in_callback_here();
  Registry& reg = registry();
  std::vector<DeadlockedThread> threads;
  // Per thread: its park waits for the holders of waiting_on except one hold of its own (its
  // claim, WaitForHolders).
  std::vector<bool> own_claim;
  {
    const std::scoped_lock lk(reg.m);
    parking_lot::detail::lock_all_buckets();
    for (Record* r : reg.records) {
      const std::scoped_lock rl(r->m);
      DeadlockedThread t;
      t.thread = r->id;
      t.holding = r->held;
      bool claim = false;
      if (r->parked_thread_data != nullptr) {
        t.waiting_on = parking_lot::detail::parked_key_locked(r->parked_thread_data);
        // waits_for is set before the park and cleared after it, under r->m like
        // parked_thread_data, so a parked thread seen here is inside its scope.
        if (t.waiting_on != nullptr && r->waits_for != nullptr) {
          t.waiting_on = r->waits_for;
          claim = true;
        }
      }
      threads.push_back(std::move(t));
      own_claim.push_back(claim);
    }
    parking_lot::detail::unlock_all_buckets();
  }

  // Edges: T -> U when T waits for a key that U holds (the key T is parked on, or the resource
  // its WaitForHolders names). T's one claim on that resource is no edge T -> T: a SharedMutex
  // writer waiting for readers would otherwise always form a cycle with itself.
  std::multimap<const void*, std::size_t> holders;
  for (std::size_t i = 0; i < threads.size(); ++i) {
    for (const void* k : threads[i].holding) holders.emplace(k, i);
  }
  std::vector<std::vector<std::size_t>> edges(threads.size());
  for (std::size_t i = 0; i < threads.size(); ++i) {
    if (threads[i].waiting_on == nullptr) continue;
    const auto [lo, hi] = holders.equal_range(threads[i].waiting_on);
    const auto& mine = threads[i].holding;
    // Only the claim: T waits for others, not for itself. A second hold (T reads the SharedMutex
    // it now waits to write) is a real self-deadlock and keeps the edge.
    const bool skip_self =
        own_claim[i] && std::count(mine.begin(), mine.end(), threads[i].waiting_on) < 2;
    for (auto it = lo; it != hi; ++it) {
      if (it->second == i && skip_self) continue;
      if (std::find(edges[i].begin(), edges[i].end(), it->second) == edges[i].end()) {
        edges[i].push_back(it->second);
      }
    }
  }

  Tarjan tarjan(edges);
  for (std::size_t v = 0; v < threads.size(); ++v) {
    if (tarjan.index[v] < 0) tarjan.visit(v);
  }
  std::vector<Cycle> cycles;
  for (const auto& comp : tarjan.components) {
    const bool self_loop =
        comp.size() == 1 &&
        std::find(edges[comp[0]].begin(), edges[comp[0]].end(), comp[0]) != edges[comp[0]].end();
    if (comp.size() < 2 && !self_loop) continue;
    Cycle c;
    for (std::size_t v : comp) c.push_back(threads[v]);
    cycles.push_back(std::move(c));
  }
  return cycles;
}

}  // namespace deadlock
}  // namespace parkpool

#endif  // PARKPOOL_DEADLOCK_DETECTION

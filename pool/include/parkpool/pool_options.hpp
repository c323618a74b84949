// parkpool::PoolOptions: construction options of parkpool::ThreadPool, and the default worker
// count. See <parkpool/thread_pool.hpp> for the pool's contract.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>

#include "parkpool/idle.hpp"

namespace parkpool {

/// The number of CPUs this process may use: the CPUs in its sched_getaffinity mask, capped by a
/// cgroup CPU quota (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us, rounded up).
/// At least 1. Read once per call (a few small file reads); not cached.
std::size_t available_cpus() noexcept;

namespace detail {
/// The CPU limit of a cgroup quota as available_cpus() reads it: the tightest ceil(quota /
/// period) over the process's cgroup and its ancestors, for cgroup v2 (cpu.max) and v1 (the cpu
/// hierarchy's cpu.cfs_quota_us / cpu.cfs_period_us, mounted as cpu, cpu,cpuacct or
/// cpuacct,cpu). 0 when no quota applies or nothing could be read. `proc_self_cgroup` is the
/// /proc/self/cgroup file to parse, `cgroup_root` the cgroup mount point (/sys/fs/cgroup); tests
/// pass a tree of their own. May throw on I/O trouble (std::bad_alloc, std::ios_base::failure).
std::size_t cgroup_cpu_limit(const std::string& proc_self_cgroup, const std::string& cgroup_root);
/// available_cpus() with the cgroup files read from `proc_self_cgroup` and `cgroup_root` (see
/// cgroup_cpu_limit) instead of /proc/self/cgroup and /sys/fs/cgroup: the affinity count (or
/// std::thread::hardware_concurrency(), at least 1, when the mask cannot be read), lowered to the
/// cgroup limit when that is smaller and not 0. An exception from cgroup_cpu_limit leaves the
/// affinity count.
std::size_t available_cpus_from(const char* proc_self_cgroup, const char* cgroup_root) noexcept;
}  // namespace detail

struct PoolOptions {
  /// Worker threads. 0, or more than IdleCoordinator::kMaxWorkers (65535), is rejected with
  /// std::invalid_argument by the ThreadPool constructor.
  std::size_t threads = available_cpus();
  /// Idle behaviour: spin budget, timed park (idle timeout), searcher cap. IdleOptions::latency()
  /// and IdleOptions::efficiency() are presets (see <parkpool/idle.hpp>).
  IdleOptions idle = {};
  /// Worker thread names are prefix + index, truncated to 15 bytes (Linux limit). Empty: unnamed.
  std::string thread_name_prefix = "parkpool-";
  /// Called on each worker thread, with its index, before it runs any task / after its last one.
  /// An exception thrown by a hook is passed to on_post_exception. on_thread_start runs as a
  /// worker of the pool, as a task does: running_in_this_thread() is true, what it posts goes to
  /// that worker's deque and runs, and shutdown() from it throws std::logic_error. on_thread_stop
  /// runs once the pool has shut down (no worker runs tasks any more): submit() or post() from it
  /// throws pool_closed, as from any other thread after shutdown(); shutdown() from it throws
  /// std::logic_error (the pool's shutdown is joining that thread).
  std::function<void(std::size_t worker)> on_thread_start;
  std::function<void(std::size_t worker)> on_thread_stop;
  /// Receives exceptions that escape post() tasks (submit() delivers them to its future, TaskGroup
  /// to wait()). Called on the worker thread that ran the task; an exception it throws is ignored.
  /// Default (empty): the exception is counted in stats() and its what() is written to stderr.
  std::function<void(std::exception_ptr)> on_post_exception;
  /// How long a worker whose deque grew for a backlog (its ring doubled past 256 tasks) must stay
  /// idle, in one idle episode, before it returns the deque to a ring of 256 and frees the grown
  /// and retired rings (about 16 bytes per task of the largest backlog; <parkpool/thread_pool.hpp>,
  /// post). Until then the worker parks with this timeout instead of untimed, and a burst that
  /// comes back within it finds its ring grown. 0: at every idle episode (each burst then grows its
  /// ring again: measured 5-20% on 1M-task bursts). 1 s: a workload that repeats its bursts
  /// within a second keeps its rings; one that stays idle for a second gives them back at the cost
  /// of one timer wakeup per worker (pool/SLEEP.md, "Long-idle hook"). Rings that shorter idle
  /// episodes kept for 10 holds (PoolCore::kRingKeepHolds) since the first idle episode that found
  /// them are freed at the next one, however short: a pool running light work after a backlog
  /// gives them back too, and a workload that repeats its bursts regrows its ring once per 10
  /// holds. Rings are freed only where the pool's asymmetric barrier is in use
  /// (IdleCoordinator::asymmetric()).
  /// std::chrono::milliseconds::max() (or any hold longer than steady_clock's nanoseconds can
  /// count, ~292 years): never; the worker then parks untimed as without a grown deque. Negative:
  /// std::invalid_argument from the ThreadPool constructor.
  std::chrono::milliseconds deque_ring_hold{1000};
};

}  // namespace parkpool

/* parkpool/tbb_rml.h: libparkpool_tbb, an external RML server for oneTBB 2021.x.
 *
 * What it is
 *   oneTBB (libtbb.so.12) creates its worker threads through a "resource management layer" (RML)
 *   server. At start-up it looks for an external one: the weak symbols __RML_open_factory,
 *   __RML_close_factory, __TBB_make_rml_server and __TBB_call_with_my_server_info, resolved from
 *   whatever is loaded in the process, or from a library named libirml.so.1. When none is found,
 *   it uses the private server built into libtbb. libparkpool_tbb exports those four symbols, so
 *       LD_PRELOAD=/path/to/libparkpool_tbb.so ./app
 *   or linking the library into the application (it must be loaded before libtbb initialises its
 *   scheduler) makes oneTBB's worker threads be created, put to sleep and woken by parkpool:
 *   each worker parks on a parkpool::Parker under a parkpool::IdleCoordinator (the preset's
 *   spin, if any, then a futex sleep; the sleeper woken first is the most recently parked one
 *   that slept on the waker's CPU, else the most recently parked one: parkpool/idle.hpp).
 *   The application is not changed or rebuilt. libtbb itself is not linked by this library.
 *
 * What it does not change
 *   oneTBB spins inside libtbb (arena and market loops) before it tells the server that it needs
 *   fewer workers; that spinning, and task scheduling itself, stay oneTBB's. The server decides
 *   only how a worker that oneTBB released sleeps and how fast it comes back. Like oneTBB's
 *   private server, it starts each worker on the process's CPUs (sched_getaffinity of the process
 *   id, read when oneTBB connects), whichever thread's demand started it, and it aborts the
 *   process with a message on stderr when a worker thread cannot be started (pthread_create
 *   fails, e.g. a stack size the system cannot map or the thread limit reached).
 *
 * Version handshake
 *   oneTBB 2021.1 .. 2022.x calls __RML_open_factory(factory, server_version, client_version = 2).
 *   Any other client_version is refused with PARKPOOL_TBB_RML_ST_INCOMPATIBLE (3), and oneTBB
 *   then silently falls back to its private server. __TBB_make_rml_server also refuses (same code)
 *   a client whose version() is not 0, the value every oneTBB 2021.x market reports; oneTBB then
 *   prints one runtime warning and falls back.
 *
 * Environment variables (read when oneTBB connects)
 *   PARKPOOL_TBB_VERBOSE=1     one line on stderr per connection ("parkpool_tbb: ...").
 *   PARKPOOL_TBB_DISABLE=1     refuse every connection (PARKPOOL_TBB_RML_ST_INCOMPATIBLE): oneTBB
 *                              uses its private server; handy to compare with the same binary.
 *   PARKPOOL_TBB_IDLE=efficiency|default|latency
 *                              the parkpool::IdleOptions preset for sleeping workers. Default
 *                              "efficiency" (no spin: sleep at once): oneTBB has already spun
 *                              before it releases a worker, so spinning again mostly burns.
 *                              Whatever the preset, at most half the process's CPUs (at least
 *                              one) spin at once, not half of oneTBB's max_job_count.
 *
 * Shutdown
 *   When oneTBB closes the connection (its last arena and thread are gone, e.g. tbb::finalize or
 *   the end of the program), every worker runs oneTBB's cleanup on its own thread and exits. If
 *   oneTBB closes from a thread that is not one of the server's workers, the server joins the
 *   workers before returning (a blocking tbb::finalize returns with them gone); from a worker it
 *   detaches them, as oneTBB's private server does. A program that exits without closing leaves
 *   the workers asleep; they end with the process.
 *
 * Not handled: fork() while workers exist (as with oneTBB's private server, the child has none
 *   of the parent's worker threads); Windows and macOS (oneTBB looks up the server differently).
 *
 * Thread-safety: every function below may be called from any thread at any time, including
 * before oneTBB connects (they then report zeros). The counters only grow;
 * parkpool_tbb_rml_idle_workers() is a gauge.
 */
#ifndef PARKPOOL_TBB_RML_H
#define PARKPOOL_TBB_RML_H

#if defined(__GNUC__)
#define PARKPOOL_TBB_RML_EXPORT __attribute__((visibility("default")))
#else
#define PARKPOOL_TBB_RML_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The rml::factory status codes this server returns (the values oneTBB's rml_base.h uses). */
#define PARKPOOL_TBB_RML_ST_SUCCESS 0
#define PARKPOOL_TBB_RML_ST_INCOMPATIBLE 3
/* The only client interface version this server implements (oneTBB's CLIENT_VERSION). */
#define PARKPOOL_TBB_RML_CLIENT_VERSION 2u

/* Connections oneTBB opened on this server since the process started (a oneTBB "market" each;
 * a program that never finalises the scheduler has at most one). Non-zero proves it is in use. */
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_connections(void);

/* Connections closed (request_close_connection received). */
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_closed_connections(void);

/* Worker threads this server created for oneTBB, over all connections. */
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_threads_started(void);

/* Worker threads that have exited (after oneTBB's cleanup of their job). */
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_threads_exited(void);

/* Times a worker went idle (oneTBB released it) and later came back because oneTBB asked for
 * workers again. */
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_wakeups(void);

/* Worker threads idle right now (gave their unit back to the server and wait to be asked
 * again), over all connections. A snapshot. */
PARKPOOL_TBB_RML_EXPORT unsigned long long parkpool_tbb_rml_idle_workers(void);

#ifdef __cplusplus
}
#endif

#endif /* PARKPOOL_TBB_RML_H */

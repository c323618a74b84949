// rml_abi.hpp: the binary interface between oneTBB 2021.x (libtbb.so.12) and an external RML
// server, declared from scratch to match it bit for bit on the Itanium C++ ABI (Linux x86-64,
// AArch64). Only the layout matters, never the names: oneTBB reaches the server through the
// extern "C" entry points and then through virtual calls, so what must agree is
//   - the order of the virtual functions (each class appends to its base's table; a virtual
//     destructor declared first takes two slots: complete-object and deleting destructor),
//   - the argument and return types of each virtual function,
//   - the data layout of the factory object oneTBB passes to the entry points.
// Learnt from oneTBB's src/tbb/rml_base.h, rml_tbb.h, rml_tbb.cpp, market.h and private_server.cpp
// at tag v2021.8.0 (Debian 12's libtbb12 2021.8.0). The interface version (CLIENT_VERSION 2) is
// the same up to 2022.x; only 2021.8 is tested here.
//
// Virtual table of a client (oneTBB's market implements it; we only call it):
//   [0] ~dtor (complete)  [1] ~dtor (deleting)  [2] version() const -> unsigned (market: 0)
//   [3] max_job_count() const -> unsigned       [4] min_stack_size() const -> size_t
//   [5] create_one_job() -> Job*                [6] acknowledge_close_connection()
//   [7] cleanup(Job&)                           [8] process(Job&)   (the tbb_client addition)
// Virtual table of a server (we implement it; oneTBB calls it):
//   [0] ~dtor  [1] ~dtor  [2] version() const -> unsigned
//   [3] request_close_connection(bool exiting)  [4] yield()
//   [5] independent_thread_number_changed(int)  [6] default_concurrency() const -> unsigned
//   [7] adjust_job_count_estimate(int delta)    (the tbb_server addition; the Windows-only
//                                                external-thread slots do not exist on Linux)
// The contract each slot carries is documented on the declarations below.
#pragma once

#include <cstddef>

#include "parkpool/tbb_rml.h"  // PARKPOOL_TBB_RML_EXPORT

namespace parkpool::tbb_rml::abi {

using version_type = unsigned;

// The client's per-thread execution context (oneTBB: the worker's thread_data). Opaque to us.
class Job;

class VersionedObject {
 public:
  virtual ~VersionedObject() = default;
  virtual version_type version() const = 0;

 protected:
  VersionedObject() = default;
  VersionedObject(const VersionedObject&) = default;
  VersionedObject& operator=(const VersionedObject&) = default;
};

class Client : public VersionedObject {
 public:
  // Most workers the client can use (oneTBB: its hard limit, max(4 * CPUs, 256)). Invariant.
  virtual unsigned max_job_count() const = 0;
  // Smallest stack a worker needs, 0 for the default. Invariant.
  virtual std::size_t min_stack_size() const = 0;
  // Called on the new worker thread, before anything else, to get its job.
  virtual Job* create_one_job() = 0;
  // Called once, after cleanup() has returned for every job: the client may now destroy itself
  // (oneTBB frees its market here, so nothing may touch the client afterwards).
  virtual void acknowledge_close_connection() = 0;
  // Called once per job after the connection is closed. oneTBB requires the job's own worker
  // thread to call it (it clears that thread's thread-local pointer).
  virtual void cleanup(Job& job) = 0;
};

class TbbClient : public Client {
 public:
  // Runs oneTBB work on the calling worker; returns when there is no arena in need of workers.
  virtual void process(Job& job) = 0;
};

class Server : public VersionedObject {
 public:
  // The client is done: every job must get cleanup() (on its own thread), then the client gets
  // acknowledge_close_connection(). May return before that happens. `exiting` is true when the
  // process is exiting (oneTBB 2021.x never passes true).
  virtual void request_close_connection(bool exiting) = 0;
  // A client thread cannot progress until others do.
  virtual void yield() = 0;
  // Hint: the number of non-RML threads running changed by delta.
  virtual void independent_thread_number_changed(int delta) = 0;
  // The concurrency the server aims for (oneTBB 2021.x only compares it with its worker limit to
  // print a warning when it is lower).
  virtual unsigned default_concurrency() const = 0;
};

class TbbServer : public Server {
 public:
  // The client can profitably use delta more (or -delta fewer) workers. Possibly called from
  // several threads at once; oneTBB 2021.8 calls it without its market's lock held (later
  // versions may hold one: this server never waits for the client inside the call, so it does
  // not depend on which).
  virtual void adjust_job_count_estimate(int delta) = 0;
};

// rml::factory::status_type (an unscoped enum: passed and returned as an int).
enum Status : int {
  st_success = 0,
  st_connection_exists = 1,
  st_not_found = 2,
  st_incompatible = 3
};

// The data layout of oneTBB's tbb_factory (a plain struct, zero-initialised by oneTBB). The
// server may set library_handle; the value 1 means "never dlclose the server" and also makes
// oneTBB call __RML_close_factory when it shuts down.
struct Factory {
  Status (*wait_to_close_routine)(Factory&);
  void* library_handle;
  void* make_server_routine;
  void* call_with_server_info_routine;
};
inline constexpr std::size_t kDontUnload = 1;

using ServerInfoCallback = void (*)(void* arg, const char* server_info);

}  // namespace parkpool::tbb_rml::abi

// The entry points oneTBB resolves (weak undefined symbols in libtbb.so.12). They must be
// extern "C" with exactly these names.
extern "C" {
PARKPOOL_TBB_RML_EXPORT parkpool::tbb_rml::abi::Status __RML_open_factory(
    parkpool::tbb_rml::abi::Factory& factory, parkpool::tbb_rml::abi::version_type& server_version,
    parkpool::tbb_rml::abi::version_type client_version);
PARKPOOL_TBB_RML_EXPORT parkpool::tbb_rml::abi::Status __RML_close_factory(
    parkpool::tbb_rml::abi::Factory& factory);
PARKPOOL_TBB_RML_EXPORT parkpool::tbb_rml::abi::Status __TBB_make_rml_server(
    parkpool::tbb_rml::abi::Factory& factory, parkpool::tbb_rml::abi::TbbServer*& server,
    parkpool::tbb_rml::abi::TbbClient& client);
PARKPOOL_TBB_RML_EXPORT void __TBB_call_with_my_server_info(
    parkpool::tbb_rml::abi::ServerInfoCallback callback, void* arg);
}

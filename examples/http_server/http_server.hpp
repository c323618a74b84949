// parkpool_http::Server: a small HTTP/1.1 server (Boost.Beast) whose request handling runs on a
// pool of worker threads: parkpool::ThreadPool (through <parkpool/asio.hpp>), oneTBB
// (tbb::task_arena::enqueue) or a plain std::mutex + std::condition_variable pool. The same code
// serves all three, so the example, the tests (tests/asio) and the load benchmark
// (bench/http_bench) compare the pools and nothing else. A fourth backend, inline_io, runs each
// handler on the I/O thread that parsed the request, with no pool at all: not a way to serve
// (one slow handler stalls every connection of that thread), but the floor of the server's own
// CPU cost per request that no pool can go below.
//
// What it does
//   Asio does all socket I/O on `io_threads` threads (one strand per connection). Each request
//   is parsed there, then handed to the pool, which computes the response (a CPU-bound handler:
//   `hash_rounds` rounds of FNV-1a over the target and body, rendered as JSON by response_body())
//   and hands it back to the connection's strand for writing.
//   - HTTP/1.1 keep-alive (and pipelined requests, answered in order).
//   - A connection that has started a request must complete it within `read_timeout`; an idle
//     keep-alive connection is closed after `idle_timeout`. Writes are bounded by read_timeout.
//   - A malformed request (or a body over `body_limit`) gets "400 Bad Request" with
//     "Connection: close", and the connection is closed.
//   - Connections are closed "lingering": send side first, then the server reads (and drops)
//     what the client still sends, for at most `linger_timeout`, so a response is not destroyed
//     by a TCP reset.
//
// Graceful stop (stop(), the destructor; the example calls it on SIGINT/SIGTERM)
//   Stops accepting connections; connections waiting for a new request are closed; a request
//   whose first bytes have arrived is read, handled and answered (with "Connection: close"),
//   then its connection is closed. Every request the server accepted (read in full:
//   ServerStats::requests_accepted) gets its response written (ServerStats::responses_sent)
//   before stop() returns, unless its client has gone away. Then the I/O threads and the pool stop.
//
// Thread safety: stop(), port() and stats() may be called from any thread, concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace parkpool_http {

enum class Backend { parkpool, tbb, std_pool, inline_io };

/// For Backend::parkpool: which parkpool::IdleOptions preset the pool uses (<parkpool/idle.hpp>):
/// the default (adaptive spin up to 25 us, then an untimed park),
/// latency() (longer spins, a 2 ms timed park) or efficiency() (no spin, one searcher).
enum class IdlePreset { standard, latency, efficiency };
/// "default", "latency", "efficiency" -> IdlePreset. Throws std::invalid_argument otherwise.
IdlePreset parse_idle_preset(std::string_view name);

/// "parkpool", "tbb", "std" (or "std_pool"), "inline" -> Backend. Throws std::invalid_argument
/// otherwise.
Backend parse_backend(std::string_view name);
/// "parkpool", "tbb", "std_pool", "inline".
std::string_view backend_name(Backend b) noexcept;
/// False for Backend::tbb when the server was built without oneTBB.
bool backend_available(Backend b) noexcept;

struct ServerOptions {
  Backend backend = Backend::parkpool;
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;                  // 0: an ephemeral port (see Server::port())
  std::size_t io_threads = 1;              // >= 1
  std::size_t workers = 0;                 // pool threads; 0: parkpool::available_cpus()
  IdlePreset idle = IdlePreset::standard;  // parkpool backend only
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds linger_timeout{1000};
  std::uint32_t hash_rounds = 64;  // CPU work per request (about 1 ns per byte per round)
  std::size_t body_limit = 1 << 20;
};

/// Counters since start (relaxed snapshots; exact once stop() has returned).
struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t requests_accepted = 0;  // parsed in full and handed to the pool
  std::uint64_t responses_sent = 0;     // 2xx responses written in full
  std::uint64_t bad_requests = 0;       // 400 responses (parse errors)
  std::uint64_t timeouts = 0;           // connections closed by read_timeout or idle_timeout
};

class Server {
 public:
  /// Binds, listens, starts the pool and the I/O threads. Throws std::invalid_argument for bad
  /// options (io_threads == 0, an unavailable backend, an unparsable address),
  /// boost::system::system_error when the address cannot be bound.
  explicit Server(const ServerOptions& options);
  /// stop().
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The port the server listens on (the ephemeral one if options.port was 0).
  std::uint16_t port() const noexcept;
  /// Graceful stop (see above). Idempotent; blocks until done; concurrent callers all wait.
  void stop();
  ServerStats stats() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The handler's result for a request: the JSON body the server sends with status 200.
/// {"target":"<target, JSON-escaped>","bytes":<body size>,"rounds":<rounds>,"hash":"<16 hex>"}
std::string response_body(std::string_view target, std::string_view body, std::uint32_t rounds);

}  // namespace parkpool_http

// The HTTP server of http_server.hpp: one translation unit (Beast is slow to compile), shared by
// the example, the tests and the benchmark.
#include "http_server.hpp"

#include "parkpool/asio.hpp"  // first: it includes <utility> before Asio (see the header)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#if defined(PARKPOOL_HAVE_TBB)
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#endif

namespace parkpool_http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// ---- names ----

Backend parse_backend(std::string_view name) {
  if (name == "parkpool") return Backend::parkpool;
  if (name == "tbb") return Backend::tbb;
  if (name == "std" || name == "std_pool") return Backend::std_pool;
  if (name == "inline") return Backend::inline_io;
  throw std::invalid_argument("unknown backend '" + std::string(name) +
                              "' (expected parkpool, tbb, std or inline)");
}

std::string_view backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::parkpool:
      return "parkpool";
    case Backend::tbb:
      return "tbb";
    case Backend::std_pool:
      return "std_pool";
    case Backend::inline_io:
      return "inline";
  }
  return "?";
}

IdlePreset parse_idle_preset(std::string_view name) {
  if (name == "default") return IdlePreset::standard;
  if (name == "latency") return IdlePreset::latency;
  if (name == "efficiency") return IdlePreset::efficiency;
  throw std::invalid_argument("unknown idle preset '" + std::string(name) +
                              "' (expected default, latency or efficiency)");
}

bool backend_available(Backend b) noexcept {
#if defined(PARKPOOL_HAVE_TBB)
  (void)b;
  return true;
#else
  return b != Backend::tbb;
#endif
}

// ---- the handler's work ----

namespace {
std::uint64_t fnv1a(std::uint64_t h, std::string_view s) noexcept {
  for (const char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(u));
      out += esc;
    } else {
      out += ch;
    }
  }
  out += '"';
}
}  // namespace

std::string response_body(std::string_view target, std::string_view body, std::uint32_t rounds) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a offset basis
  for (std::uint32_t r = 0; r < rounds; ++r) h = fnv1a(fnv1a(h, target), body);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  std::string out;
  out.reserve(target.size() + 96);
  out += "{\"target\":";
  append_json_string(out, target);
  out += ",\"bytes\":" + std::to_string(body.size());
  out += ",\"rounds\":" + std::to_string(rounds);
  out += ",\"hash\":\"";
  out += hex;
  out += "\"}";
  return out;
}

// ---- backends: where a request's handler runs ----

namespace {

// A unit of work for a backend. run() runs it and deletes it.
class Job {
 public:
  virtual ~Job() = default;
  virtual void run() noexcept = 0;
};

class WorkBackend {
 public:
  virtual ~WorkBackend() = default;
  // Takes ownership of `job` when it returns normally; on an exception the caller keeps it.
  virtual void submit(Job* job) = 0;
  // Waits for every submitted job, then stops the threads. Called once no more jobs come.
  virtual void shutdown() noexcept = 0;
};

// parkpool: jobs go through the Asio executor of <parkpool/asio.hpp>.
class ParkpoolBackend final : public WorkBackend {
 public:
  ParkpoolBackend(std::size_t n, IdlePreset idle) : pool_(options(n, idle)), ctx_(pool_) {}
  ~ParkpoolBackend() override { ParkpoolBackend::shutdown(); }
  void submit(Job* job) override {
    // post: never inside the call (this is an I/O thread anyway).
    asio::post(ctx_.get_executor(), [job] { job->run(); });
  }
  void shutdown() noexcept override {
    ctx_.join();  // every job has run (and been destroyed)
    pool_.shutdown();
  }

 private:
  static parkpool::PoolOptions options(std::size_t n, IdlePreset idle) {
    parkpool::PoolOptions o;
    o.threads = n;
    if (idle == IdlePreset::latency) o.idle = parkpool::IdleOptions::latency();
    if (idle == IdlePreset::efficiency) o.idle = parkpool::IdleOptions::efficiency();
    o.thread_name_prefix = "http-pp-";
    return o;
  }
  parkpool::ThreadPool pool_;
  parkpool::AsioContext ctx_;
};

#if defined(PARKPOOL_HAVE_TBB)
// oneTBB: task_arena::enqueue (fire-and-forget), no slot reserved for a master thread, so the
// arena's `n` slots are all for TBB workers; global_control lifts TBB's default worker count
// (hardware threads - 1) to n.
class TbbBackend final : public WorkBackend {
 public:
  explicit TbbBackend(std::size_t n)
      : limit_(tbb::global_control::max_allowed_parallelism, n + 1),
        arena_(static_cast<int>(n), 0) {}
  ~TbbBackend() override {
    TbbBackend::shutdown();
    arena_.terminate();
  }
  void submit(Job* job) override {
    pending_.add();
    try {
      arena_.enqueue([this, job] {
        job->run();
        pending_.count_down();
      });
    } catch (...) {
      pending_.count_down();
      throw;
    }
  }
  void shutdown() noexcept override { pending_.wait_zero(); }

 private:
  tbb::global_control limit_;
  tbb::task_arena arena_;
  parkpool::asio_detail::ZeroWaitCounter pending_;
};
#endif

// The baseline everybody writes first: one mutex, one condition variable, one FIFO queue.
class StdPoolBackend final : public WorkBackend {
 public:
  explicit StdPoolBackend(std::size_t n) {
    threads_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~StdPoolBackend() override { StdPoolBackend::shutdown(); }
  void submit(Job* job) override {
    {
      std::lock_guard<std::mutex> lock(m_);
      if (closed_) throw std::logic_error("StdPoolBackend: submit after shutdown");
      queue_.push_back(job);
    }
    cv_.notify_one();
  }
  void shutdown() noexcept override {
    {
      std::lock_guard<std::mutex> lock(m_);
      closed_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closed and drained
      Job* job = queue_.front();
      queue_.pop_front();
      lock.unlock();
      job->run();
      lock.lock();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;  // under m_
  bool closed_ = false;     // under m_
  std::vector<std::thread> threads_;
};

// No pool: the handler runs on the I/O thread that parsed the request, inside submit(); its
// completion is still posted to the connection's strand, as with the pools. The comparison
// point for the server's own CPU per request (see the header).
class InlineBackend final : public WorkBackend {
 public:
  void submit(Job* job) override { job->run(); }  // run() owns and deletes the job
  void shutdown() noexcept override {}            // nothing is ever pending
};

std::unique_ptr<WorkBackend> make_backend(Backend b, std::size_t n, IdlePreset idle) {
  switch (b) {
    case Backend::parkpool:
      return std::make_unique<ParkpoolBackend>(n, idle);
    case Backend::tbb:
#if defined(PARKPOOL_HAVE_TBB)
      return std::make_unique<TbbBackend>(n);
#else
      break;
#endif
    case Backend::std_pool:
      return std::make_unique<StdPoolBackend>(n);
    case Backend::inline_io:
      return std::make_unique<InlineBackend>();
  }
  throw std::invalid_argument("backend not available in this build: " +
                              std::string(backend_name(b)));
}

// ---- the handler as an asynchronous operation: run on the backend, complete on the strand ----

Response handle(const Request& req, std::uint32_t rounds) {
  Response res{http::status::ok, req.version()};
  res.set(http::field::server, "parkpool-http");
  res.set(http::field::content_type, "application/json");
  const auto target = req.target();
  res.body() = response_body(std::string_view(target.data(), target.size()), req.body(), rounds);
  res.prepare_payload();
  return res;
}

template <class Handler>
class HandleJob final : public Job {
 public:
  HandleJob(Handler h, const Request& req, std::uint32_t rounds)
      : handler_(std::move(h)),
        // Tracked: the I/O context must not run out of work while the job is on the pool.
        io_work_(asio::prefer(asio::get_associated_executor(handler_),
                              asio::execution::outstanding_work.tracked)),
        req_(&req),
        rounds_(rounds) {}
  void run() noexcept override {
    std::unique_ptr<HandleJob> self(this);
    Response res = handle(*req_, rounds_);
    // Back to the connection's strand (the handler's executor). The request stays alive: its
    // owner is suspended until this handler runs.
    auto ex = io_work_;
    asio::post(ex, beast::bind_front_handler(std::move(handler_), std::move(res)));
  }

 private:
  Handler handler_;
  std::decay_t<decltype(asio::prefer(asio::get_associated_executor(std::declval<Handler&>()),
                                     asio::execution::outstanding_work.tracked))>
      io_work_;
  const Request* req_;
  std::uint32_t rounds_;
};

template <class Token>
auto async_handle(WorkBackend& backend, const Request& req, std::uint32_t rounds, Token&& token) {
  return asio::async_initiate<Token, void(Response)>(
      [&backend, &req, rounds](auto handler) {
        auto* job = new HandleJob<decltype(handler)>(std::move(handler), req, rounds);
        try {
          backend.submit(job);
        } catch (...) {
          delete job;
          throw;
        }
      },
      token);
}

// One accepted connection. Its members are touched only on its strand.
struct Conn {
  explicit Conn(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  bool idle = false;            // waiting for the first byte of a request
  bool stop_requested = false;  // the server is stopping: answer what was started, then close
};

constexpr std::size_t kReadChunk = 4096;

}  // namespace

// ---- the server ----

struct Server::Impl {
  explicit Impl(const ServerOptions& o)
      : opt(o),
        backend(make_backend(o.backend, o.workers != 0 ? o.workers : parkpool::available_cpus(),
                             o.idle)),
        io_work(asio::make_work_guard(io)),
        acceptor(asio::make_strand(io)) {}

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(std::shared_ptr<Conn> c);
  asio::awaitable<void> lingering_close(Conn& c);
  bool register_conn(const std::shared_ptr<Conn>& c);
  void unregister_conn(Conn* c);
  void begin_stop();
  void run_io() noexcept;

  const ServerOptions opt;
  std::unique_ptr<WorkBackend> backend;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> io_work;
  tcp::acceptor acceptor;
  std::uint16_t port = 0;
  std::vector<std::thread> io_threads;

  std::mutex conns_mutex;
  bool stopping = false;                                 // under conns_mutex
  std::unordered_map<Conn*, std::weak_ptr<Conn>> conns;  // under conns_mutex

  std::mutex stop_mutex;  // serializes stop()
  bool stopped = false;   // under stop_mutex

  // Statistics. Relaxed: independent counters; stop()'s thread joins make them exact.
  std::atomic<std::uint64_t> connections_accepted{0}, connections_open{0}, requests_accepted{0},
      responses_sent{0}, bad_requests{0}, timeouts{0};
};

bool Server::Impl::register_conn(const std::shared_ptr<Conn>& c) {
  std::lock_guard<std::mutex> lock(conns_mutex);
  if (stopping) return false;
  conns.emplace(c.get(), c);
  return true;
}

void Server::Impl::unregister_conn(Conn* c) {
  std::lock_guard<std::mutex> lock(conns_mutex);
  conns.erase(c);
}

void Server::Impl::begin_stop() {
  std::vector<std::shared_ptr<Conn>> live;
  {
    std::lock_guard<std::mutex> lock(conns_mutex);
    stopping = true;  // no connection registers after this
    for (auto& [raw, weak] : conns) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  asio::post(acceptor.get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor.close(ignored);  // the accept loop ends with operation_aborted
  });
  for (auto& c : live) {
    asio::post(c->stream.get_executor(), [c] {
      c->stop_requested = true;
      if (c->idle) c->stream.cancel();  // between requests: nothing accepted is lost
    });
  }
}

void Server::Impl::run_io() noexcept {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      // Handlers here do not throw (sessions are coroutines that catch their errors); if one
      // ever does, report it and keep serving.
      std::fprintf(stderr, "parkpool_http: I/O handler threw: %s\n", e.what());
    }
  }
}

asio::awaitable<void> Server::Impl::accept_loop() {
  for (;;) {
    tcp::socket sock(asio::make_strand(io));
    boost::system::error_code ec;
    co_await acceptor.async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: the connection stays in the backlog, and the listening socket stays
      // readable: retrying at once spins this I/O thread at 100% CPU. Back off, then try again.
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    sock.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<Conn>(std::move(sock));
    if (!register_conn(c)) {
      boost::system::error_code ignored;
      c->stream.socket().close(ignored);
      continue;
    }
    connections_accepted.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(c->stream.get_executor(), session(c), asio::detached);
  }
}

asio::awaitable<void> Server::Impl::lingering_close(Conn& c) {
  boost::system::error_code ec;
  c.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (!ec) {
    std::array<char, 1024> sink;
    c.stream.expires_after(opt.linger_timeout);
    for (;;) {
      co_await c.stream.async_read_some(asio::buffer(sink),
                                        asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;  // eof (the client closed), timeout, reset
    }
  }
  c.stream.close();
}

asio::awaitable<void> Server::Impl::session(std::shared_ptr<Conn> c) {
  connections_open.fetch_add(1, std::memory_order_relaxed);
  struct Leave {
    Impl* s;
    Conn* c;
    ~Leave() {
      s->unregister_conn(c);
      s->connections_open.fetch_sub(1, std::memory_order_relaxed);
    }
  } leave{this, c.get()};

  beast::flat_buffer buf;
  bool linger = true;  // false once the socket is dead (timeout, reset)
  boost::system::error_code ec;
  for (;;) {
    // Stopping: close between requests only. Bytes of the next request already in `buf` (a
    // pipelined or partly read request) make it in flight: it is read, answered, then closed.
    // (stop()'s post can run between a write's completion and this line, on this strand.)
    if (c->stop_requested && buf.size() == 0) break;
    if (buf.size() == 0) {
      // Between requests: this wait is what stop() cancels.
      c->idle = true;
      c->stream.expires_after(opt.idle_timeout);
      const std::size_t n = co_await c->stream.async_read_some(
          buf.prepare(kReadChunk), asio::redirect_error(asio::use_awaitable, ec));
      c->idle = false;
      buf.commit(n);
      if (ec) {
        if (ec == beast::error::timeout) {
          timeouts.fetch_add(1, std::memory_order_relaxed);
          linger = false;
        } else if (ec != asio::error::operation_aborted) {
          linger = false;  // eof or reset: the client is gone
        }
        break;
      }
    }
    http::request_parser<http::string_body> parser;
    parser.body_limit(opt.body_limit);
    c->stream.expires_after(opt.read_timeout);
    co_await http::async_read(c->stream, buf, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == beast::error::timeout) {
        timeouts.fetch_add(1, std::memory_order_relaxed);
        linger = false;
        break;
      }
      if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
          ec.category() != http::make_error_code(http::error::bad_method).category()) {
        linger = false;  // the client went away mid-request
        break;
      }
      // A malformed request: 400, then close.
      Response bad{http::status::bad_request, 11};
      bad.set(http::field::server, "parkpool-http");
      bad.set(http::field::content_type, "text/plain");
      bad.body() = "bad request: " + ec.message() + "\n";
      bad.keep_alive(false);
      bad.prepare_payload();
      c->stream.expires_after(opt.read_timeout);
      co_await http::async_write(c->stream, bad, asio::redirect_error(asio::use_awaitable, ec));
      bad_requests.fetch_add(1, std::memory_order_relaxed);
      if (ec) linger = false;
      break;
    }
    requests_accepted.fetch_add(1, std::memory_order_relaxed);
    Request req = parser.release();
    Response res = co_await async_handle(*backend, req, opt.hash_rounds, asio::use_awaitable);
    const bool keep = req.keep_alive() && !c->stop_requested;
    res.keep_alive(keep);
    c->stream.expires_after(opt.read_timeout);
    co_await http::async_write(c->stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      linger = false;
      break;
    }
    responses_sent.fetch_add(1, std::memory_order_relaxed);
    if (!keep) break;
  }
  if (linger) {
    co_await lingering_close(*c);
  } else {
    c->stream.close();
  }
}

Server::Server(const ServerOptions& options) {
  if (options.io_threads == 0)
    throw std::invalid_argument("ServerOptions::io_threads must be >= 1");
  if (!backend_available(options.backend)) {
    throw std::invalid_argument("backend not available in this build: " +
                                std::string(backend_name(options.backend)));
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) throw std::invalid_argument("bad address: " + options.address);
  impl_ = std::make_unique<Impl>(options);
  Impl& s = *impl_;
  const tcp::endpoint ep(address, options.port);
  s.acceptor.open(ep.protocol());
  s.acceptor.set_option(asio::socket_base::reuse_address(true));
  s.acceptor.bind(ep);
  s.acceptor.listen(asio::socket_base::max_listen_connections);
  s.port = s.acceptor.local_endpoint().port();
  asio::co_spawn(s.acceptor.get_executor(), s.accept_loop(), asio::detached);
  s.io_threads.reserve(options.io_threads);
  for (std::size_t i = 0; i < options.io_threads; ++i) {
    s.io_threads.emplace_back([&s] { s.run_io(); });
  }
}

Server::~Server() { stop(); }

std::uint16_t Server::port() const noexcept { return impl_->port; }

void Server::stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.stop_mutex);
  if (s.stopped) return;
  s.begin_stop();
  s.io_work.reset();  // io.run() returns once every connection has finished
  for (auto& t : s.io_threads) t.join();
  s.backend->shutdown();
  s.stopped = true;
}

ServerStats Server::stats() const noexcept {
  const Impl& s = *impl_;
  ServerStats st;
  st.connections_accepted = s.connections_accepted.load(std::memory_order_relaxed);
  st.connections_open = s.connections_open.load(std::memory_order_relaxed);
  st.requests_accepted = s.requests_accepted.load(std::memory_order_relaxed);
  st.responses_sent = s.responses_sent.load(std::memory_order_relaxed);
  st.bad_requests = s.bad_requests.load(std::memory_order_relaxed);
  st.timeouts = s.timeouts.load(std::memory_order_relaxed);
  return st;
}

}  // namespace parkpool_http

// Tests of the HTTP server of examples/http_server (loopback only), over each backend.
#include "http_server.hpp"

#include <gtest/gtest.h>

#include <dirent.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "parkpool_test.hpp"
#include "raw_client.hpp"

using namespace std::chrono_literals;
using parkpool_http::Backend;
using parkpool_http::Server;
using parkpool_http::ServerOptions;
namespace raw = parkpool_http::raw;

namespace {

constexpr auto kReplyTimeout = 10s;  // a generous bound: a hang is a failure, not a wait

std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;  // includes the descriptor of the directory being read, both times
}

// Waits (bounded) until the server has closed every connection: connection teardown on the
// server side is asynchronous to the client's close. Sleeps briefly between polls: this waits
// for an event, with a deadline, it does not order a race.
bool wait_no_connections(const Server& s, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (s.stats().connections_open != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class HttpServer : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!parkpool_http::backend_available(GetParam())) GTEST_SKIP() << "built without oneTBB";
#if defined(__SANITIZE_THREAD__)
    // oneTBB's own synchronization is not instrumented: TSAN cannot see its happens-before.
    if (GetParam() == Backend::tbb) GTEST_SKIP() << "oneTBB is not TSAN-instrumented";
#endif
  }
  ServerOptions options() const {
    ServerOptions o;
    o.backend = GetParam();
    o.io_threads = 2;
    o.workers = 2;
    o.hash_rounds = 8;
    return o;
  }
};

TEST_P(HttpServer, ManyConcurrentKeepAliveClientsGetCorrectResponses) {
  ServerOptions o = options();
  Server server(o);
  const int clients = 16;
  const int per_client = static_cast<int>(parkpool::test::scaled(200, 10, 20));
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      raw::Socket s = raw::connect_loopback(server.port());
      std::string buf;
      for (int i = 0; i < per_client; i += 2) {
        // Two pipelined requests, then both responses, in order.
        const std::string t1 = "/c" + std::to_string(c) + "/r" + std::to_string(i);
        const std::string t2 = "/c" + std::to_string(c) + "/r" + std::to_string(i + 1);
        const std::string b1(static_cast<std::size_t>(i % 100), 'x');
        const std::string b2 = "body \"" + std::to_string(i) + "\"";
        ASSERT_TRUE(raw::send_all(s, raw::make_request("POST", t1, b1) +
                                         raw::make_request("POST", t2, b2)));
        auto r1 = raw::read_response(s, buf, kReplyTimeout);
        auto r2 = raw::read_response(s, buf, kReplyTimeout);
        ASSERT_TRUE(r1 && r2);
        EXPECT_EQ(r1->status, 200);
        EXPECT_EQ(r2->status, 200);
        EXPECT_FALSE(r1->close);
        EXPECT_EQ(r1->body, parkpool_http::response_body(t1, b1, o.hash_rounds));
        EXPECT_EQ(r2->body, parkpool_http::response_body(t2, b2, o.hash_rounds));
        if (r1->status == 200 && r2->status == 200) good.fetch_add(2, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  const int expected = clients * ((per_client + 1) / 2) * 2;
  EXPECT_EQ(good.load(std::memory_order_relaxed), expected);
  server.stop();
  EXPECT_EQ(server.stats().requests_accepted, static_cast<std::uint64_t>(expected));
  EXPECT_EQ(server.stats().responses_sent, static_cast<std::uint64_t>(expected));
}

TEST_P(HttpServer, MalformedRequestGets400AndTheConnectionIsClosed) {
  Server server(options());
  for (const std::string& bad : {std::string("THIS IS NOT HTTP\r\n\r\n"),
                                std::string("GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n"),
                                std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n")}) {
    raw::Socket s = raw::connect_loopback(server.port());
    ASSERT_TRUE(raw::send_all(s, bad));
    std::string buf;
    auto r = raw::read_response(s, buf, kReplyTimeout);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_TRUE(r->close) << bad;
    EXPECT_TRUE(raw::wait_closed(s, kReplyTimeout)) << bad;
  }
  EXPECT_EQ(server.stats().bad_requests, 3u);
  EXPECT_EQ(server.stats().requests_accepted, 0u);
}

TEST_P(HttpServer, StalledHalfRequestIsTimedOut) {
  ServerOptions o = options();
  o.read_timeout = 150ms;  // this test is about time: a short, configurable timeout
  Server server(o);
  raw::Socket s = raw::connect_loopback(server.port());
  ASSERT_TRUE(raw::send_all(s, "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: "));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(raw::wait_closed(s, kReplyTimeout));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  ASSERT_TRUE(wait_no_connections(server, kReplyTimeout));  // the close races the count
  EXPECT_EQ(server.stats().timeouts, 1u);
  EXPECT_EQ(server.stats().requests_accepted, 0u);
  // The server still serves others.
  raw::Socket s2 = raw::connect_loopback(server.port());
  ASSERT_TRUE(raw::send_all(s2, raw::make_request("GET", "/after", "")));
  std::string buf;
  auto r = raw::read_response(s2, buf, kReplyTimeout);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_P(HttpServer, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions o = options();
  o.idle_timeout = 150ms;  // about time, as above
  Server server(o);
  raw::Socket s = raw::connect_loopback(server.port());
  ASSERT_TRUE(raw::send_all(s, raw::make_request("GET", "/one", "")));
  std::string buf;
  ASSERT_TRUE(raw::read_response(s, buf, kReplyTimeout));
  EXPECT_TRUE(raw::wait_closed(s, kReplyTimeout));
  ASSERT_TRUE(wait_no_connections(server, kReplyTimeout));  // the close races the count
  EXPECT_EQ(server.stats().timeouts, 1u);
}

TEST_P(HttpServer, TenThousandConnectionsLeakNoDescriptors) {
  ServerOptions o = options();
  Server server(o);
  const std::size_t before = open_fds();
  const int threads_n = 4;
  const int per_thread = static_cast<int>(parkpool::test::scaled(10000, 10, 200)) / threads_n;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        raw::Socket s = raw::connect_loopback(server.port());
        if (i % 2 == 0) {  // half ask and close; half connect and close at once
          ASSERT_TRUE(raw::send_all(s, raw::make_request("GET", "/c", "", "Connection: close\r\n")));
          std::string buf;
          auto r = raw::read_response(s, buf, kReplyTimeout);
          ASSERT_TRUE(r);
          EXPECT_TRUE(r->close);
          if (r->status == 200) good.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(std::memory_order_relaxed), threads_n * ((per_thread + 1) / 2));
  {
    // The accept queue is FIFO: once this connection is answered, every earlier one has been
    // accepted (a connect-and-close may otherwise still sit in the backlog).
    raw::Socket last = raw::connect_loopback(server.port());
    ASSERT_TRUE(raw::send_all(last, raw::make_request("GET", "/last", "")));
    std::string buf;
    ASSERT_TRUE(raw::read_response(last, buf, kReplyTimeout));
  }
  ASSERT_TRUE(wait_no_connections(server, 10s));
  EXPECT_EQ(server.stats().connections_accepted,
            static_cast<std::uint64_t>(threads_n * per_thread + 1));
  EXPECT_EQ(open_fds(), before);
}

TEST_P(HttpServer, StopDuringLoadAnswersEveryAcceptedRequest) {
  ServerOptions o = options();
  Server server(o);
  const int clients = 12;
  std::atomic<int> answered{0};
  std::atomic<int> wrong{0};
  std::atomic<bool> go_stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      // Requests until the server closes; reconnect until connecting fails (acceptor closed).
      for (int conn = 0;; ++conn) {
        raw::Socket s;
        try {
          s = raw::connect_loopback(server.port());
        } catch (const std::system_error&) {
          return;
        }
        std::string buf;
        for (int i = 0;; ++i) {
          const std::string target =
              "/c" + std::to_string(c) + "/" + std::to_string(conn) + "/" + std::to_string(i);
          if (!raw::send_all(s, raw::make_request("POST", target, target))) break;
          auto r = raw::read_response(s, buf, kReplyTimeout);
          if (!r) break;  // closed before answering: that request was not accepted
          if (r->status != 200 ||
              r->body != parkpool_http::response_body(target, target, o.hash_rounds)) {
            wrong.fetch_add(1, std::memory_order_relaxed);
          }
          if (answered.fetch_add(1, std::memory_order_relaxed) == 200) {
            go_stop.store(true, std::memory_order_relaxed);  // relaxed: a trigger only
          }
          if (r->close) break;
        }
        if (conn > 10000) return;  // bound (never reached: stop comes after 200 answers)
      }
    });
  }
  while (!go_stop.load(std::memory_order_relaxed)) std::this_thread::yield();
  server.stop();  // concurrently with the clients
  for (auto& t : threads) t.join();
  const auto st = server.stats();
  EXPECT_EQ(wrong.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(st.requests_accepted, st.responses_sent);  // nothing accepted was lost
  EXPECT_EQ(static_cast<std::uint64_t>(answered.load(std::memory_order_relaxed)),
            st.responses_sent);  // and every response sent arrived
  EXPECT_EQ(st.connections_open, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpServer,
                         ::testing::Values(Backend::parkpool, Backend::tbb, Backend::std_pool),
                         [](const auto& param_info) {
                           return std::string(parkpool_http::backend_name(param_info.param));
                         });

TEST(HttpServerOptions, BadOptionsAreRejected) {
  EXPECT_THROW(parkpool_http::parse_backend("fibers"), std::invalid_argument);
  EXPECT_EQ(parkpool_http::parse_backend("std"), Backend::std_pool);
  ServerOptions o;
  o.io_threads = 0;
  EXPECT_THROW(Server{o}, std::invalid_argument);
  o.io_threads = 1;
  o.address = "not an address";
  EXPECT_THROW(Server{o}, std::invalid_argument);
}

TEST(HttpServerOptions, ResponseBodyEscapesTheTarget) {
  const std::string b = parkpool_http::response_body("/a\"b\\c\x01", "", 1);
  EXPECT_NE(b.find(R"("target":"/a\"b\\c\u0001")"), std::string::npos) << b;
  EXPECT_NE(b.find(R"("bytes":0)"), std::string::npos) << b;
}

}  // namespace

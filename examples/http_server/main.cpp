// http_server: an HTTP/1.1 server whose request handlers run on parkpool's ThreadPool (or, for
// comparison, on oneTBB or on a plain std::mutex pool). See http_server.hpp for what it does.
//
//   http_server [--backend parkpool|tbb|std|inline] [--port N] [--address A] [--io-threads N]
//               [--workers N] [--read-timeout-ms N] [--idle-timeout-ms N] [--hash-rounds N]
//               [--idle default|latency|efficiency]   (the parkpool pool's IdleOptions preset)
//
// Prints "listening on <address>:<port> (backend <name>)" on stdout once it accepts connections
// (with --port 0, the port is an ephemeral one), and serves until SIGINT or SIGTERM, then stops
// gracefully (every request it accepted is answered) and prints its counters. Exit status: 0;
// 1 if some accepted request went unanswered (its client went away) or on a runtime error; 2 for
// bad options.
//   curl -d 'hello' http://127.0.0.1:<port>/some/path
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "http_server.hpp"

namespace {

void usage(std::FILE* out) {
  std::fputs(
      "usage: http_server [--backend parkpool|tbb|std|inline] [--port N] [--address A]\n"
      "                   [--io-threads N] [--workers N] [--read-timeout-ms N]\n"
      "                   [--idle-timeout-ms N] [--hash-rounds N]\n"
      "                   [--idle default|latency|efficiency]\n",
      out);
}

unsigned long number(std::string_view flag, const char* text, unsigned long max) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(text, &end, 10);
  if (end == text || *end != '\0' || v > max) {
    throw std::invalid_argument(std::string(flag) + ": expected a number up to " +
                                std::to_string(max) + ", got '" + text + "'");
  }
  return v;
}

parkpool_http::ServerOptions parse(int argc, char** argv) {
  parkpool_http::ServerOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(std::string(a) + ": missing value");
    const char* v = argv[++i];
    if (a == "--backend") {
      o.backend = parkpool_http::parse_backend(v);
    } else if (a == "--idle") {
      o.idle = parkpool_http::parse_idle_preset(v);
    } else if (a == "--port") {
      o.port = static_cast<std::uint16_t>(number(a, v, 65535));
    } else if (a == "--address") {
      o.address = v;
    } else if (a == "--io-threads") {
      o.io_threads = number(a, v, 64);
    } else if (a == "--workers") {
      o.workers = number(a, v, 1024);
    } else if (a == "--read-timeout-ms") {
      o.read_timeout = std::chrono::milliseconds(number(a, v, 3'600'000));
    } else if (a == "--idle-timeout-ms") {
      o.idle_timeout = std::chrono::milliseconds(number(a, v, 3'600'000));
    } else if (a == "--hash-rounds") {
      o.hash_rounds = static_cast<std::uint32_t>(number(a, v, 1'000'000));
    } else {
      throw std::invalid_argument("unknown option " + std::string(a));
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  parkpool_http::ServerOptions options;
  try {
    options = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    usage(stderr);
    return 2;
  }
  // Block the stop signals before any thread starts (threads inherit the mask), then take them
  // synchronously with sigwait: no work in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::optional<parkpool_http::Server> started;
  try {
    started.emplace(options);
  } catch (const std::invalid_argument& e) {  // options the server refuses (ServerOptions)
    std::fprintf(stderr, "http_server: %s\n", e.what());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
  parkpool_http::Server& server = *started;
  try {
    std::printf("listening on %s:%u (backend %s)\n", options.address.c_str(),
                static_cast<unsigned>(server.port()),
                std::string(parkpool_http::backend_name(options.backend)).c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::printf("signal %d: stopping\n", sig);
    std::fflush(stdout);
    server.stop();
    const auto st = server.stats();
    std::printf(
        "stopped: %llu connections, %llu requests accepted, %llu responses sent, %llu bad "
        "requests, %llu timeouts\n",
        static_cast<unsigned long long>(st.connections_accepted),
        static_cast<unsigned long long>(st.requests_accepted),
        static_cast<unsigned long long>(st.responses_sent),
        static_cast<unsigned long long>(st.bad_requests),
        static_cast<unsigned long long>(st.timeouts));
    return st.requests_accepted == st.responses_sent ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}

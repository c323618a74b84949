// A minimal blocking HTTP/1.1 client over POSIX sockets, for the server's smoke test and tests:
// they need to send exactly the bytes they choose (half requests, garbage) and to see exactly
// when the server closes, which a full client library would hide. Loopback IPv4 only.
// Every call that waits takes a timeout and reports it (never blocks forever).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace parkpool_http::raw {

/// An owned socket descriptor (closed by the destructor).
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) noexcept : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }
  int fd() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// Connects to 127.0.0.1:port. Throws std::system_error.
inline Socket connect_loopback(std::uint16_t port) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd() < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::system_error(errno, std::generic_category(), "connect");
  }
  int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

/// Writes all of `data`. False if the peer is gone (EPIPE, ECONNRESET).
inline bool send_all(const Socket& s, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(s.fd(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

enum class ReadStatus { ok, closed, timeout, error };

/// Appends what arrives to `buf` (waiting at most `timeout` for something to arrive).
inline ReadStatus read_some(const Socket& s, std::string& buf, std::chrono::milliseconds timeout) {
  pollfd p{s.fd(), POLLIN, 0};
  for (;;) {
    const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ReadStatus::error;
    if (r == 0) return ReadStatus::timeout;
    break;
  }
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(s.fd(), chunk, sizeof chunk);  // read, not recv: also pipes
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == ECONNRESET ? ReadStatus::closed : ReadStatus::error;
    if (n == 0) return ReadStatus::closed;
    buf.append(chunk, static_cast<std::size_t>(n));
    return ReadStatus::ok;
  }
}

struct Reply {
  int status = 0;
  std::string headers;  // the status line and header fields, as received
  std::string body;
  bool close = false;   // "Connection: close" present
};

/// Reads one response (Content-Length framing, which the server always uses) from `s`, using
/// and keeping leftover bytes in `buf`. nullopt when the connection closed (or `timeout`
/// passed) before a whole response arrived; `why` says which.
inline std::optional<Reply> read_response(const Socket& s, std::string& buf,
                                          std::chrono::milliseconds timeout,
                                          ReadStatus* why = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto fail = [&](ReadStatus st) -> std::optional<Reply> {
    if (why != nullptr) *why = st;
    return std::nullopt;
  };
  auto more = [&]() -> ReadStatus {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return ReadStatus::timeout;
    return read_some(s, buf, left);
  };
  std::size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (const ReadStatus st = more(); st != ReadStatus::ok) return fail(st);
  }
  Reply r;
  r.headers = buf.substr(0, end + 2);
  if (r.headers.rfind("HTTP/1.", 0) != 0 || r.headers.size() < 12) return fail(ReadStatus::error);
  r.status = std::atoi(r.headers.c_str() + 9);
  std::size_t length = 0;
  for (std::size_t pos = 0; pos < r.headers.size();) {
    const std::size_t eol = r.headers.find("\r\n", pos);
    std::string line = r.headers.substr(pos, eol - pos);
    for (auto& ch : line) {
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    }
    if (line.rfind("content-length:", 0) == 0) {
      length = static_cast<std::size_t>(std::strtoull(line.c_str() + 15, nullptr, 10));
    }
    if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) {
      r.close = true;
    }
    pos = eol + 2;
  }
  const std::size_t body_start = end + 4;
  while (buf.size() < body_start + length) {
    if (const ReadStatus st = more(); st != ReadStatus::ok) return fail(st);
  }
  r.body = buf.substr(body_start, length);
  buf.erase(0, body_start + length);
  if (why != nullptr) *why = ReadStatus::ok;
  return r;
}

/// Waits for the peer to close (EOF or reset), dropping data. False on timeout.
inline bool wait_closed(const Socket& s, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string sink;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    const ReadStatus st = read_some(s, sink, left);
    if (st == ReadStatus::closed || st == ReadStatus::error) return true;
    if (st == ReadStatus::timeout) return false;
    sink.clear();
  }
}

/// A request with a body. `extra` is inserted among the header fields (each ending in "\r\n").
inline std::string make_request(std::string_view method, std::string_view target,
                                std::string_view body, std::string_view extra = {}) {
  std::string r;
  r.reserve(96 + target.size() + body.size() + extra.size());
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  r.append(extra);
  r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  r.append(body);
  return r;
}

}  // namespace parkpool_http::raw

// A consumer of the installed package: uses the public API and checks the result.
#include <parkpool/parker.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main() {
  parkpool::Parker parker;
  parkpool::Unparker unparker = parker.unparker();
  std::thread t([unparker] { unparker.unpark(); });
  parker.park();  // returns only once the token from the other thread is consumed
  t.join();
  if (parker.park_timeout(std::chrono::milliseconds(1)) != parkpool::UnparkReason::timed_out) {
    std::puts("consumer: expected timed_out");
    return 1;
  }
  std::puts("consumer: ok");
  return 0;
}

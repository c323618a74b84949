// A one-slot mailbox between two threads, built on parkpool::Parker: the consumer parks until
// the producer has filled the slot and unparked it. The pattern every pool uses to put a worker
// to sleep: publish, then unpark; park, then re-check.
#include <parkpool/parker.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

int main() {
  using namespace std::chrono_literals;
  parkpool::Parker parker;                                // owned by the consumer thread
  const parkpool::Unparker unparker = parker.unparker();  // handed to the producer

  std::atomic<int> slot{0};  // 0 = empty; the producer writes 1..N
  constexpr int kMessages = 1000;

  std::thread producer([&slot, unparker] {
    for (int i = 1; i <= kMessages; ++i) {
      int expected = 0;
      // Wait for the consumer to empty the slot (spin politely; this side does not park).
      while (!slot.compare_exchange_weak(expected, i, std::memory_order_release,
                                         std::memory_order_relaxed)) {
        expected = 0;
        std::this_thread::yield();
      }
      unparker.unpark();  // publish, then unpark
    }
  });

  long long sum = 0;
  for (int received = 0; received < kMessages;) {
    const int v = slot.exchange(0, std::memory_order_acquire);
    if (v != 0) {
      sum += v;
      ++received;
      continue;
    }
    // Nothing yet: sleep until the producer's next unpark, or at most 10 s (a safety net that
    // a correct program never needs: the token is never lost).
    if (parker.park_timeout(10s) == parkpool::UnparkReason::timed_out) {
      std::fprintf(stderr, "parker_handoff: a 10 s timeout expired; a wakeup was lost?\n");
      producer.join();
      return 1;
    }
  }
  producer.join();
  const long long expected = static_cast<long long>(kMessages) * (kMessages + 1) / 2;
  std::printf("parker_handoff: received %d messages, sum %lld (expected %lld)\n", kMessages, sum,
              expected);
  return sum == expected ? 0 : 1;
}

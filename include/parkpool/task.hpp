// parkpool::Task<T>: a minimal lazy coroutine type, enough to write coroutines that block_on runs.
//
// What it is
//   A coroutine returning Task<T> starts suspended; it runs when awaited (`co_await std::move(t)`,
//   symmetric transfer, no stack growth) or when passed to parkpool::block_on. Its result (or
//   exception) is handed to the awaiter; an exception escaping the coroutine is rethrown there.
//   T may be void or an object type (not a reference: use std::reference_wrapper).
//
// Thread safety
//   A Task is a unique owner of its coroutine frame, like std::unique_ptr: not synchronized, move
//   it between threads only with the usual happens-before. The coroutine may be resumed on another
//   thread by what it awaits; the awaiter of the Task is then resumed on that thread too.
//
// Lifetime
//   The Task destroys the frame when it is destroyed. Destroying a Task whose coroutine is
//   suspended in the middle (started, not finished) destroys the frame and its locals; the
//   awaitable it was suspended on must not resume it afterwards.
//
// Errors
//   co_await on an empty (moved-from) Task throws std::invalid_argument; awaiting a Task twice
//   (or after block_on) throws std::logic_error.
#pragma once

#include <coroutine>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace parkpool {

template <class T = void>
class Task;

namespace detail {

struct TaskAccess;

// Common part of every Task promise: continuation, completion hook, started flag.
class TaskPromiseBase {
 public:
  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      TaskPromiseBase& p = h.promise();
      if (p.continuation_) return p.continuation_;  // symmetric transfer to the awaiter
      // The root of a block_on: tell it. After this call the frame may be destroyed by the
      // block_on thread, so nothing of `p` is touched afterwards.
      if (p.on_done_ != nullptr) p.on_done_(p.on_done_arg_);
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() const noexcept { return {}; }

 protected:
  friend struct TaskAccess;
  template <class>
  friend class parkpool::Task;
  std::coroutine_handle<> continuation_;
  void (*on_done_)(void*) noexcept = nullptr;
  void* on_done_arg_ = nullptr;
  bool started_ = false;
};

template <class T>
class TaskPromise : public TaskPromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  void unhandled_exception() noexcept { result_.template emplace<2>(std::current_exception()); }
  template <class U = T>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    result_.template emplace<1>(std::forward<U>(value));
  }
  T take_result() {
    if (result_.index() == 2) std::rethrow_exception(std::get<2>(result_));
    return std::move(std::get<1>(result_));
  }

 private:
  std::variant<std::monostate, T, std::exception_ptr> result_;
};

template <>
class TaskPromise<void> : public TaskPromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
  void return_void() const noexcept {}
  void take_result() {
    if (exception_) std::rethrow_exception(exception_);
  }

 private:
  std::exception_ptr exception_;
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
  static_assert(!std::is_reference_v<T>, "Task<T&> is not supported: use std::reference_wrapper");

 public:
  using promise_type = detail::TaskPromise<T>;
  using value_type = T;

  Task() noexcept = default;
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  /// True if the Task holds a coroutine.
  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// True once the coroutine has finished.
  bool done() const noexcept { return h_ && h_.done(); }

  struct Awaiter {
    std::coroutine_handle<promise_type> h;
    bool await_ready() const {
      if (!h) throw std::invalid_argument("parkpool::Task: co_await on an empty (moved-from) Task");
      if (h.promise().started_) throw std::logic_error("parkpool::Task: awaited twice");
      return false;
    }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) const noexcept {
      h.promise().started_ = true;
      h.promise().continuation_ = awaiting;
      return h;  // symmetric transfer: start the task
    }
    T await_resume() const { return h.promise().take_result(); }
  };
  /// Starts the task and resumes the awaiter with its result. Rvalues only: a Task is consumed.
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }

 private:
  friend class detail::TaskPromise<T>;
  friend struct detail::TaskAccess;
  explicit Task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }
  std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

// What block_on needs of a Task, kept out of the public interface.
struct TaskAccess {
  template <class T>
  static std::coroutine_handle<> handle(const Task<T>& t) noexcept {
    return t.h_;
  }
  template <class T>
  static bool started(const Task<T>& t) noexcept {
    return t.h_.promise().started_;
  }
  template <class T>
  static void set_completion(Task<T>& t, void (*fn)(void*) noexcept, void* arg) noexcept {
    auto& p = t.h_.promise();
    p.started_ = true;
    p.on_done_ = fn;
    p.on_done_arg_ = arg;
  }
  template <class T>
  static T take_result(Task<T>& t) {
    return t.h_.promise().take_result();
  }
};

}  // namespace detail
}  // namespace parkpool

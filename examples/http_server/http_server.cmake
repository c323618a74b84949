# Shared by tests/asio, examples/http_server and bench/http_bench_server (which links
# bench/http_bench.cpp); each includes this file; the targets are defined once, by whichever
# comes first:
#   parkpool_asio_support   interface: Boost::headers, Threads, and C++20 coroutines for Asio on
#                           clang (Boost 1.74 only detects them on clang through
#                           <experimental/coroutine>, which libstdc++ 12 does not have; clang 14
#                           with libstdc++'s <coroutine> works, so the macro is set by hand).
#   parkpool_http_server    static library: the Beast HTTP server (one translation unit, because
#                           Beast is slow to compile), with its backends.
# Sets PARKPOOL_HTTP_SERVER_AVAILABLE in the including scope.
set(PARKPOOL_HTTP_SERVER_AVAILABLE OFF)
find_package(Boost 1.74 QUIET)
if(NOT Boost_FOUND OR NOT EXISTS "${Boost_INCLUDE_DIRS}/boost/beast/http.hpp")
  message(STATUS "parkpool: Boost.Asio/Beast not found (libboost-dev): Asio executor tests, "
                 "http_server example and http_bench skipped")
  return()
endif()
set(PARKPOOL_HTTP_SERVER_AVAILABLE ON)
find_package(TBB QUIET)  # sets TBB_FOUND for every includer
if(TARGET parkpool_http_server)
  return()
endif()

add_library(parkpool_asio_support INTERFACE)
target_link_libraries(parkpool_asio_support INTERFACE parkpool::parkpool Boost::headers Threads::Threads)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  target_compile_definitions(parkpool_asio_support INTERFACE BOOST_ASIO_HAS_CO_AWAIT=1)
endif()
if(PARKPOOL_SANITIZE MATCHES "thread")
  # Asio's "fenced blocks" (a std::atomic_thread_fence around each handler upcall) are
  # redundant where the queue that carried the handler already orders it (Asio's scheduler
  # mutex; ThreadPool's release/acquire publication), and ThreadSanitizer does not model
  # free-standing fences (g++ warns -Wtsan): Asio's switch replaces them by nothing.
  target_compile_definitions(parkpool_asio_support INTERFACE BOOST_ASIO_DISABLE_FENCED_BLOCK=1)
endif()

# g++ 12's -Wnull-dereference (on in parkpool's warning set) fires inside Asio's own scheduler
# code once it is inlined into our files (boost/asio/detail/impl/scheduler.ipp:325 dereferences
# the calling thread's scheduler record, which Asio's calling contract guarantees but GCC's
# flow analysis cannot see); the system-header exemption does not cover inlined code. Files that instantiate Asio's I/O turn it off for themselves (source-level options come
# after the target's, so they win): parkpool_asio_quiet_null_deref(<files>).
function(parkpool_asio_quiet_null_deref)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    set_source_files_properties(${ARGN} DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}"
                                PROPERTIES COMPILE_OPTIONS "-Wno-null-dereference")
  endif()
endfunction()

add_library(parkpool_http_server STATIC "${CMAKE_CURRENT_LIST_DIR}/http_server.cpp")
parkpool_asio_quiet_null_deref("${CMAKE_CURRENT_LIST_DIR}/http_server.cpp")
target_include_directories(parkpool_http_server PUBLIC "${CMAKE_CURRENT_LIST_DIR}")
target_link_libraries(parkpool_http_server PUBLIC parkpool_asio_support
                                           PRIVATE $<BUILD_INTERFACE:parkpool_internal_flags>)
target_compile_features(parkpool_http_server PUBLIC cxx_std_20)
if(TBB_FOUND)
  target_link_libraries(parkpool_http_server PRIVATE TBB::tbb)
  target_compile_definitions(parkpool_http_server PRIVATE PARKPOOL_HAVE_TBB=1)
else()
  message(STATUS "parkpool: oneTBB not found (libtbb-dev): http_server without --backend tbb")
endif()

# Target-scoped build flags for parkpool's own targets. Nothing here leaks into consumers: the
# interface library is linked as $<BUILD_INTERFACE:...>, so it is not part of the export set.
add_library(parkpool_internal_flags INTERFACE)

if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(parkpool_internal_flags INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
    -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion)
  if(PARKPOOL_WERROR)
    target_compile_options(parkpool_internal_flags INTERFACE -Werror)
  endif()
endif()

if(PARKPOOL_SANITIZE)
  set(_pp_valid "address;undefined" "thread" "address" "undefined")
  string(REPLACE ";" "," _pp_san "${PARKPOOL_SANITIZE}")
  if(NOT _pp_san MATCHES "^(address,undefined|undefined,address|thread|address|undefined)$")
    message(FATAL_ERROR "PARKPOOL_SANITIZE must be 'address;undefined' or 'thread', got '${PARKPOOL_SANITIZE}'")
  endif()
  # float-cast-overflow is not part of "undefined" (GCC and Clang): a floating-point timeout
  # that is NaN or out of range must not reach an integer conversion.
  if(_pp_san MATCHES "undefined")
    string(APPEND _pp_san ",float-cast-overflow")
  endif()
  target_compile_options(parkpool_internal_flags INTERFACE
    -fsanitize=${_pp_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(parkpool_internal_flags INTERFACE -fsanitize=${_pp_san})
  # Lets tests scale their iteration counts down under a sanitizer (see tests/support).
  target_compile_definitions(parkpool_internal_flags INTERFACE PARKPOOL_UNDER_SANITIZER=1)
endif()

# Applies the internal flags to one of the project's own targets.
function(parkpool_internal target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:parkpool_internal_flags>)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
endfunction()

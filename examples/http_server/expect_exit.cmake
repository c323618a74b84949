# Runs PROGRAM with ARGS (a |-separated list) and fails unless it exits with EXPECT.
#   cmake -DPROGRAM=... -DARGS=a|b -DEXPECT=2 -P expect_exit.cmake
string(REPLACE "|" ";" _args "${ARGS}")
execute_process(COMMAND "${PROGRAM}" ${_args} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out
                ERROR_VARIABLE _err TIMEOUT 30)
if(NOT "${_rc}" STREQUAL "${EXPECT}")
  message(FATAL_ERROR "${PROGRAM} ${_args}: exit ${_rc}, expected ${EXPECT}\n${_out}${_err}")
endif()

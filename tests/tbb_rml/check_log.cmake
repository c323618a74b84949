# Runs PROGRAM with ARGS (a ;-list) under the environment ENV (VAR=value items separated by |, applied to
# the program only, never to this cmake process) and passes when the program exits 0 AND its
# stderr matches PATTERN. (PASS_REGULAR_EXPRESSION alone would ignore the exit code.)
string(REPLACE "|" ";" ENV "${ENV}")
execute_process(COMMAND "${CMAKE_COMMAND}" -E env ${ENV} "${PROGRAM}" ${ARGS}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
if(NOT err MATCHES "${PATTERN}")
  message(FATAL_ERROR "stderr does not contain '${PATTERN}'")
endif()

# Builds and runs tests/install/consumer against parkpool, either through an install prefix
# (MODE=find_package) or through add_subdirectory (MODE=add_subdirectory). Fails loudly.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(cfg)
if(CONFIG)
  set(cfg --config ${CONFIG})
endif()

if(MODE STREQUAL "find_package")
  run("${CMAKE_COMMAND}" --install "${PARKPOOL_BINARY_DIR}" --prefix "${WORK_DIR}/prefix" ${cfg})
  run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
      -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
      -DCONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
  run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
      -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
      -DCONSUMER_MODE=add_subdirectory -DPARKPOOL_SOURCE_DIR=${PARKPOOL_SOURCE_DIR})
endif()
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build" -j 2)
run("${WORK_DIR}/build/consumer")

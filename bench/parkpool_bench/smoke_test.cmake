# Runs parkpool-bench at tiny sizes and checks its JSON, its pictures and its answers to bad input.
# Invoked by ctest (bench.parkpool_bench_smoke) with -DEXE=<parkpool-bench> -DOUT=<scratch dir>.
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")

# 1. Two micro benchmarks, the three figure families and the paired wake diagnostic, tiny
#    sizes, everything written.
execute_process(COMMAND "${EXE}" --size tiny --min-time 0.001 --repetitions 1
                        --workloads ParkTimeoutZero,UnparkThenPark,WakeLatencyDist,SparseSweep,Fib27Workers,WakeLatencyPaired
                        --json "${OUT}/r.json" --csv "${OUT}/r.csv" --markdown "${OUT}/r.md"
                        --plots "${OUT}/plots"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "parkpool-bench exited with ${rc}")
endif()
file(READ "${OUT}/r.json" j)
string(JSON cpu ERROR_VARIABLE err GET "${j}" machine cpu)
if(err)
  message(FATAL_ERROR "invalid JSON or no machine.cpu: ${err}")
endif()
foreach(key steal_fraction_during_run other_processes_cpu_fraction_during_run kernel compiler)
  string(JSON v ERROR_VARIABLE err GET "${j}" machine ${key})
  if(err)
    message(FATAL_ERROR "no machine.${key} in the JSON: ${err}")
  endif()
endforeach()
# The stall probe, before and after the run: at least one thread, a share of its time in [0, 1].
foreach(when start end)
  string(JSON threads ERROR_VARIABLE err GET "${j}" machine stall_probe ${when} threads)
  string(JSON lost ERROR_VARIABLE err2 GET "${j}" machine stall_probe ${when} lost_fraction)
  if(err OR err2 OR NOT threads GREATER 0 OR lost LESS 0 OR lost GREATER 1)
    message(FATAL_ERROR "machine.stall_probe.${when}: threads '${threads}', lost_fraction "
                        "'${lost}' (${err}${err2})")
  endif()
endforeach()
# One figure of each kind, with a positive median: a micro benchmark, each point of the pictures.
foreach(fig_impl "ParkTimeoutZero cpu_ns|parkpool" "WakeLatencyDist p99_us|parkpool"
                 "WakeLatencyDist p50_us|bare_futex" "SparseSweep/5 cpu_us_per_task|std_pool"
                 "SparseSweep/200 p99_us|parkpool" "Fib27Workers/1 real_ms|parkpool_join"
                 "Fib27Workers/2 real_ms|onetbb_task_group" "WakeLatencyPaired ratio_p50|parkpool"
                 "WakeLatencyPaired bare_p50_us|parkpool_efficiency")
  string(REPLACE "|" ";" parts "${fig_impl}")
  list(GET parts 0 fig)
  list(GET parts 1 impl)
  if(impl STREQUAL "onetbb_task_group" AND NOT j MATCHES "onetbb")
    continue()  # built without oneTBB
  endif()
  string(JSON med ERROR_VARIABLE err GET "${j}" figures "${fig}" ${impl} median)
  if(err OR NOT med GREATER 0)
    message(FATAL_ERROR "no positive '${fig}' figure for ${impl}: ${err}")
  endif()
endforeach()
foreach(pic wake_latency_distribution sparse_load_tradeoff fork_join_workers)
  foreach(ext png svg)
    set(f "${OUT}/plots/${pic}.${ext}")
    if(NOT EXISTS "${f}")
      message(FATAL_ERROR "no picture ${f}")
    endif()
    file(SIZE "${f}" size)
    if(size LESS 2000)
      message(FATAL_ERROR "picture ${f} is only ${size} bytes")
    endif()
  endforeach()
endforeach()
file(GLOB bars "${OUT}/plots/figures/*.png")
list(LENGTH bars n)
if(n LESS 2)
  message(FATAL_ERROR "expected a bar chart per figure in ${OUT}/plots/figures, found ${n}")
endif()
file(STRINGS "${OUT}/r.md" md_rows REGEX "^\\| ParkTimeoutZero cpu_ns \\| parkpool \\|")
if(NOT md_rows)
  message(FATAL_ERROR "the Markdown table has no ParkTimeoutZero row")
endif()

# 2. Without gnuplot: the table and JSON still come out, with one line saying why no pictures.
execute_process(COMMAND "${CMAKE_COMMAND}" -E env PATH=${OUT}/no-such-dir
                        "${EXE}" --size tiny --min-time 0.001 --repetitions 1
                        --workloads ParkTimeoutZero --json "${OUT}/r2.json" --plots "${OUT}/plots2"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "no pictures: gnuplot is not installed")
  message(FATAL_ERROR "without gnuplot: exit ${rc}, output:\n${out}")
endif()
file(READ "${OUT}/r2.json" j2)
string(JSON med ERROR_VARIABLE err GET "${j2}" figures "ParkTimeoutZero cpu_ns" parkpool median)
if(err OR EXISTS "${OUT}/plots2/fork_join_workers.png")
  message(FATAL_ERROR "without gnuplot: no JSON figure (${err}) or pictures written anyway")
endif()

# 3. Bad input: exit code 2.
foreach(args "--workloads;NoSuchWorkload" "--impls;no_such_impl" "--no-such-option"
             "--quick;--full" "--workers;0")
  execute_process(COMMAND "${EXE}" ${args} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 2)
    message(FATAL_ERROR "parkpool-bench ${args} must exit with 2, got ${rc}")
  endif()
endforeach()
message(STATUS "parkpool-bench smoke test: ok (cpu: ${cpu})")

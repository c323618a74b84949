# Runs parkpool-bench at tiny sizes and checks its JSON, its pictures and its answers to bad input
# and to outputs it cannot write. Invoked by ctest (bench.parkpool_bench_smoke) with
# -DEXE=<parkpool-bench> -DOUT=<scratch dir>. Every check runs; the failures are listed together at
# the end.
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")
set(failures "")
set(nfailed 0)
function(fail)
  string(CONCAT msg ${ARGN})
  message(STATUS "FAILED: ${msg}")
  math(EXPR n "${nfailed} + 1")
  set(nfailed ${n} PARENT_SCOPE)
  set(failures "${failures}\n  - ${msg}" PARENT_SCOPE)
endfunction()
find_program(GNUPLOT gnuplot)

# 1. Micro benchmarks, the three figure families and the paired wake diagnostic, tiny sizes,
#    everything written.
execute_process(COMMAND "${EXE}" --size tiny --min-time 0.001 --repetitions 1
                        --workloads ParkTimeoutZero,UnparkThenPark,PingPong,WakeLatencyDist,SparseSweep,Fib27Workers,WakeLatencyPaired
                        --json "${OUT}/r.json" --csv "${OUT}/r.csv" --markdown "${OUT}/r.md"
                        --plots "${OUT}/plots"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  fail("parkpool-bench exited with ${rc}")
endif()
set(j "{}")
if(EXISTS "${OUT}/r.json")
  file(READ "${OUT}/r.json" j)
else()
  fail("no ${OUT}/r.json")
endif()
string(JSON cpu ERROR_VARIABLE err GET "${j}" machine cpu)
if(err)
  fail("invalid JSON or no machine.cpu: ${err}")
endif()
foreach(key steal_fraction_during_run other_processes_cpu_fraction_during_run kernel compiler)
  string(JSON v ERROR_VARIABLE err GET "${j}" machine ${key})
  if(err)
    fail("no machine.${key} in the JSON: ${err}")
  endif()
endforeach()
# The stall probe, before and after the run: at least one thread, a share of its time in [0, 1].
foreach(when start end)
  string(JSON threads ERROR_VARIABLE err GET "${j}" machine stall_probe ${when} threads)
  string(JSON lost ERROR_VARIABLE err2 GET "${j}" machine stall_probe ${when} lost_fraction)
  if(err OR err2 OR NOT threads GREATER 0 OR lost LESS 0 OR lost GREATER 1)
    fail("machine.stall_probe.${when}: threads '${threads}', lost_fraction '${lost}' (${err}${err2})")
  endif()
endforeach()
# Issue 5's targets: all 19 listed; the wake p50 one evaluated from the quick figures (the only
# ones this run has) with its ratio the quotient of the two medians; memory's workload not run.
string(JSON ntargets ERROR_VARIABLE err LENGTH "${j}" targets)
if(err OR NOT ntargets EQUAL 19)
  fail("targets: expected 19 entries, got '${ntargets}' (${err})")
else()
  set(seen_wake FALSE)
  math(EXPR last "${ntargets} - 1")
  foreach(i RANGE ${last})
    string(JSON label GET "${j}" targets ${i} target)
    string(JSON verdict GET "${j}" targets ${i} verdict)
    if(label MATCHES "^\\(4\\) wake p50")
      set(seen_wake TRUE)
      string(JSON fig ERROR_VARIABLE e1 GET "${j}" targets ${i} figure)
      string(JSON v ERROR_VARIABLE e2 GET "${j}" targets ${i} value)
      string(JSON b ERROR_VARIABLE e3 GET "${j}" targets ${i} base_value)
      string(JSON r ERROR_VARIABLE e4 GET "${j}" targets ${i} ratio)
      if(e1 OR e2 OR e3 OR e4 OR NOT fig STREQUAL "WakeLatencyDist p50_us"
         OR NOT verdict MATCHES "^(met|MISSED)$")
        fail("target '${label}': figure '${fig}', verdict '${verdict}' (${e1}${e2}${e3}${e4})")
      else()
        # CMake has no floating point: awk checks the quotient.
        execute_process(COMMAND awk "BEGIN { d = ${v} / ${b} - ${r}; exit (d < 1e-9 && d > -1e-9) ? 0 : 1 }"
                        RESULT_VARIABLE ratio_rc)
        if(NOT ratio_rc EQUAL 0)
          fail("target '${label}': ratio ${r} is not ${v} / ${b}")
        endif()
      endif()
    elseif(label MATCHES "^\\(7\\) memory" AND NOT verdict STREQUAL "not run")
      fail("target '${label}': verdict '${verdict}', expected 'not run'")
    endif()
  endforeach()
  if(NOT seen_wake)
    fail("targets: no '(4) wake p50' entry")
  endif()
endif()
# One figure of each kind, with a positive median: a micro benchmark, each point of the pictures.
foreach(fig_impl "ParkTimeoutZero cpu_ns|parkpool" "WakeLatencyDist p90_us|parkpool"
                 "WakeLatencyDist p50_us|bare_futex" "SparseSweep/5 cpu_us_per_task|std_pool"
                 "SparseSweep/5 p99_us|parkpool" "Fib27Workers/1 real_ms|parkpool_join"
                 "Fib27Workers/2 real_ms|onetbb_task_group" "WakeLatencyPaired ratio_p50|parkpool"
                 "WakeLatencyPaired bare_p50_us|parkpool_efficiency"
                 "PingPong process_cpu_ns|parkpool" "PingPong process_cpu_ns|semaphore")
  string(REPLACE "|" ";" parts "${fig_impl}")
  list(GET parts 0 fig)
  list(GET parts 1 impl)
  if(impl STREQUAL "onetbb_task_group" AND NOT j MATCHES "onetbb")
    continue()  # built without oneTBB
  endif()
  string(JSON med ERROR_VARIABLE err GET "${j}" figures "${fig}" ${impl} median)
  if(err OR NOT med GREATER 0)
    fail("no positive '${fig}' figure for ${impl}: ${err}")
  endif()
endforeach()
# One sample per process: with --repetitions 1 every figure has exactly one. PingPong's own
# counter (the whole process's CPU) once shared the name cpu_ns with Google Benchmark's CPU time,
# and its CPU-timed cases gave two samples of different quantities to "PingPong cpu_ns".
foreach(fig "PingPong cpu_ns" "PingPong process_cpu_ns" "PingPong real_ns")
  string(JSON n ERROR_VARIABLE err LENGTH "${j}" figures "${fig}" parkpool samples)
  if(err OR NOT n EQUAL 1)
    fail("'${fig}' for parkpool: ${n} samples from one repetition, expected 1 (${err})")
  endif()
endforeach()
# Percentiles only where the sample count supports them (bench_stats.hpp, percentile_supported):
# WakeLatencyDist has 10 samples at tiny (p10 to p90, not p01, p05, p95, p99 or p999);
# SparseSweep/200 has 50 tasks (p50, not p99), SparseSweep/5 2000 (both).
string(JSON wake_impls ERROR_VARIABLE err GET "${j}" figures "WakeLatencyDist p50_us")
if(err)
  fail("no WakeLatencyDist p50_us figure: ${err}")
endif()
foreach(pct p10 p25 p50 p75 p90)
  string(JSON v ERROR_VARIABLE err GET "${j}" figures "WakeLatencyDist ${pct}_us" parkpool median)
  if(err)
    fail("WakeLatencyDist ${pct}_us missing at 10 samples: ${err}")
  endif()
endforeach()
foreach(fig "WakeLatencyDist p01_us" "WakeLatencyDist p05_us" "WakeLatencyDist p95_us"
            "WakeLatencyDist p99_us" "WakeLatencyDist p999_us" "SparseSweep/200 p99_us")
  string(JSON v ERROR_VARIABLE err GET "${j}" figures "${fig}")
  if(NOT err)
    fail("'${fig}' reported from too few samples (bench_stats.hpp)")
  endif()
endforeach()
string(JSON v ERROR_VARIABLE err GET "${j}" figures "SparseSweep/200 p50_us" parkpool median)
if(err)
  fail("SparseSweep/200 p50_us missing: ${err}")
endif()
foreach(pic wake_latency_distribution sparse_load_tradeoff fork_join_workers)
  foreach(ext png svg)
    set(f "${OUT}/plots/${pic}.${ext}")
    if(NOT EXISTS "${f}")
      fail("no picture ${f}")
      continue()
    endif()
    file(SIZE "${f}" size)
    if(size LESS 2000)
      fail("picture ${f} is only ${size} bytes")
    endif()
  endforeach()
endforeach()
file(GLOB bars "${OUT}/plots/figures/*.png")
list(LENGTH bars n)
if(n LESS 2)
  fail("expected a bar chart per figure in ${OUT}/plots/figures, found ${n}")
endif()
set(md_rows "")
if(EXISTS "${OUT}/r.md")
  file(STRINGS "${OUT}/r.md" md_rows REGEX "^\\| ParkTimeoutZero cpu_ns \\| parkpool \\| [^|]+ \\| 1 \\|")
endif()
if(NOT md_rows)
  fail("the Markdown table has no ParkTimeoutZero row with n = 1")
endif()

# 2. Without gnuplot: the table and JSON still come out, with one line saying why no pictures.
execute_process(COMMAND "${CMAKE_COMMAND}" -E env PATH=${OUT}/no-such-dir
                        "${EXE}" --size tiny --min-time 0.001 --repetitions 1
                        --workloads ParkTimeoutZero --json "${OUT}/r2.json" --plots "${OUT}/plots2"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "no pictures: gnuplot is not installed")
  fail("without gnuplot: exit ${rc}, output:\n${out}")
endif()
set(j2 "{}")
if(EXISTS "${OUT}/r2.json")
  file(READ "${OUT}/r2.json" j2)
endif()
string(JSON med ERROR_VARIABLE err GET "${j2}" figures "ParkTimeoutZero cpu_ns" parkpool median)
if(err OR EXISTS "${OUT}/plots2/fork_join_workers.png")
  fail("without gnuplot: no JSON figure (${err}) or pictures written anyway")
endif()

# 3. Bad input: exit code 2.
foreach(args "--workloads;NoSuchWorkload" "--impls;no_such_impl" "--no-such-option"
             "--quick;--full" "--workers;0")
  execute_process(COMMAND "${EXE}" ${args} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 2)
    fail("parkpool-bench ${args} must exit with 2, got ${rc}")
  endif()
endforeach()
execute_process(COMMAND "${EXE}" --help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "Exit status: 0; 1 if a case failed.*2 for an error")
  fail("--help does not give the exit status (exit ${rc})")
endif()

# A stand-in for a suite, for the checks that need control over what a case reports: a script
# named like one of the suites, in a directory of its own (--bench-dir). Its cases are Fake/* and
# ExternalPost/* (a workload --quick and tiny run once), for a parkpool implementation and a
# baseline; each writes Google Benchmark's JSON with real_time 2 (parkpool) or 4 (baseline),
# cpu_time 1, and one counter named $FAKE_COUNTER (default process_cpu_ns).
set(fake "${OUT}/fake-suites")
file(MAKE_DIRECTORY "${fake}")
file(WRITE "${fake}/parker_bench" [=[#!/bin/sh
out=
name=
for a in "$@"; do
  case "$a" in
    --benchmark_list_tests=true)
      printf 'Fake/parkpool\nFake/baseline\nExternalPost/parkpool\nExternalPost/baseline\n'
      exit 0 ;;
    --benchmark_out=*) out=${a#--benchmark_out=} ;;
    --benchmark_filter=*) name=${a#--benchmark_filter=^}; name=${name%"(/|\$)"} ;;
  esac
done
case "$name" in */parkpool) t=2 ;; *) t=4 ;; esac
printf '{"context": {}, "benchmarks": [{"name": "%s", "run_name": "%s", "run_type": "iteration", "repetitions": 1, "repetition_index": 0, "threads": 1, "iterations": 1, "real_time": %s, "cpu_time": 1, "time_unit": "ns", "%s": 3}]}\n' \
  "$name" "$name" "$t" "${FAKE_COUNTER:-process_cpu_ns}" > "$out"
]=])
file(CHMOD "${fake}/parker_bench" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                             GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# 4. The samples behind each median (n): the default 3 repetitions of tiny, except for the cases
#    it runs once (ExternalPost): the table must not call a single run a median of repetitions.
execute_process(COMMAND "${EXE}" --bench-dir "${fake}" --size tiny --workloads Fake,ExternalPost
                        --json "${OUT}/f.json" --markdown "${OUT}/f.md"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE errout)
if(NOT rc EQUAL 0)
  fail("the fake suite: exit ${rc}:\n${out}${errout}")
endif()
set(f_rows "")
if(EXISTS "${OUT}/f.md")
  file(STRINGS "${OUT}/f.md" f_rows)
endif()
foreach(row "^\\| figure \\| parkpool impl \\| parkpool \\| n \\| best baseline \\| baseline \\| n \\| ratio \\|$"
            "^\\| Fake real_ns \\| parkpool \\| 2 \\| 3 \\| baseline \\| 4 \\| 3 \\| 0.50x \\|$"
            "^\\| Fake process_cpu_ns \\| parkpool \\| 3 \\| 3 \\| baseline \\| 3 \\| 3 \\| 1.00x \\|$"
            "^\\| ExternalPost real_ns \\| parkpool \\| 2 \\| 1 \\| baseline \\| 4 \\| 1 \\| 0.50x \\|$")
  set(found FALSE)
  foreach(line IN LISTS f_rows)
    if(line MATCHES "${row}")
      set(found TRUE)
    endif()
  endforeach()
  if(NOT found)
    fail("the fake suite's Markdown table has no line matching ${row}:\n${f_rows}")
  endif()
endforeach()

# 5. A counter named like a figure made of Google Benchmark's own times (real_<unit>, cpu_<unit>):
#    refused, with the benchmark and the counter named, exit 2, nothing written.
foreach(counter cpu_ns real_us)
  file(REMOVE "${OUT}/c.json")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env FAKE_COUNTER=${counter}
                          "${EXE}" --bench-dir "${fake}" --size tiny --repetitions 1
                          --workloads Fake --json "${OUT}/c.json"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE errout)
  if(NOT rc EQUAL 2 OR NOT errout MATCHES "benchmark Fake/[a-z]+ has a counter named '${counter}'"
     OR EXISTS "${OUT}/c.json")
    fail("a counter named ${counter}: exit ${rc} (expected 2), JSON written: "
         "${OUT}/c.json, stderr:\n${errout}")
  endif()
endforeach()

# 6. Outputs that cannot be written. Seen before the run (a file where a directory should be):
#    exit 2 at once, saying which and why, nothing run.
file(WRITE "${OUT}/a-file" "")
foreach(args "--json;${OUT}/a-file/r.json" "--csv;${OUT}/a-file/r.csv"
             "--markdown;${OUT}/a-file/r.md" "--plots;${OUT}/a-file/plots" "--json;${OUT}")
  list(GET args 0 option)
  string(REPLACE ";" " " shown "${args}")
  execute_process(COMMAND "${EXE}" --bench-dir "${fake}" --size tiny --repetitions 1
                          --workloads Fake ${args}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE errout)
  if(NOT rc EQUAL 2 OR NOT errout MATCHES "parkpool-bench: [^\n]*${option}"
     OR NOT errout MATCHES "nothing was run" OR errout MATCHES "parkpool-bench: 1/2 ")
    fail("${shown}: exit ${rc} (expected 2 before the run), stderr:\n${errout}")
  endif()
endforeach()
# Seen only when written (a full device; a plots directory whose figures/ is a file): exit 2 after
# the run, the other outputs written (the JSON first).
if(EXISTS /dev/full)
  file(REMOVE "${OUT}/w.json" "${OUT}/w.md")
  execute_process(COMMAND "${EXE}" --bench-dir "${fake}" --size tiny --repetitions 1
                          --workloads Fake --json "${OUT}/w.json" --csv /dev/full
                          --markdown "${OUT}/w.md"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE errout)
  if(NOT rc EQUAL 2 OR NOT errout MATCHES "could not write --csv /dev/full"
     OR NOT EXISTS "${OUT}/w.json" OR NOT EXISTS "${OUT}/w.md")
    fail("--csv /dev/full: exit ${rc} (expected 2), JSON and Markdown written? stderr:\n${errout}")
  endif()
endif()
if(GNUPLOT)
  file(MAKE_DIRECTORY "${OUT}/plots6")
  file(WRITE "${OUT}/plots6/figures" "")
  file(REMOVE "${OUT}/p.json")
  execute_process(COMMAND "${EXE}" --bench-dir "${fake}" --size tiny --repetitions 1
                          --workloads Fake --json "${OUT}/p.json" --plots "${OUT}/plots6"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE errout)
  if(NOT rc EQUAL 2 OR NOT errout MATCHES "could not create the --plots directory [^\n]*figures"
     OR NOT EXISTS "${OUT}/p.json")
    fail("--plots with a file named figures in it: exit ${rc} (expected 2), JSON written? "
         "stderr:\n${errout}")
  endif()
endif()

if(nfailed GREATER 0)
  message(FATAL_ERROR "parkpool-bench smoke test: ${nfailed} checks failed:${failures}")
endif()
message(STATUS "parkpool-bench smoke test: ok (cpu: ${cpu})")

#!/usr/bin/env bash
# The main demo: builds the release preset and runs the comparison benchmark at a short default
# size, printing the table of ratios against the baselines. Extra arguments go to the benchmark
# (e.g. --benchmark_min_time=0.5 for a longer run, --benchmark_filter=PingPong).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target parker_bench parkpool-bench
exec ./build/release/bench/parker_bench "$@"

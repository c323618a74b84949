#!/usr/bin/env bash
# The main demo: installs what is missing (scripts/setup.sh), builds the release preset and runs
# parkpool-bench, the comparison benchmark, at its short default size (--quick: under 2 minutes
# on 2 cores), printing the table of ratios against oneTBB and the std baselines. Extra arguments
# go to parkpool-bench (e.g. --full for the long run, --workloads PingPong,WakeLatencyDist,
# --plots DIR for the pictures; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target parkpool-bench
exec ./build/release/bench/parkpool_bench/parkpool-bench "$@"

#!/usr/bin/env bash
# Installs the Debian 12 packages parkpool needs. As root it installs what is missing; otherwise
# it prints exactly what is missing and the command to install it, and exits 1.
# Usage: scripts/setup.sh [extra-package ...]
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ clang       # toolchain: g++ 12 and clang 14 both build parkpool
  libgtest-dev libbenchmark-dev     # tests and micro benchmarks
  libtbb-dev                        # oneTBB: the baseline we measure against
  libboost-dev                      # Boost.Asio/Beast (examples), Boost.Lockfree (bench baseline)
  relacy-dev                        # Relacy: model checking of the protocols (tests/model)
  libcli11-dev libfmt-dev nlohmann-json3-dev  # parkpool-bench: command line, output, JSON
  gnuplot-nox                       # parkpool-bench --plots: PNG and SVG pictures
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$p" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "parkpool setup: missing Debian packages: ${missing[*]}" >&2
  echo "install them as root with: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "parkpool setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Builds the cmio helper (guest/cmio/cmio-helper.c):
#   guest/dist/cmio-helper-riscv64   the real one for the Cartesi Machine: static, /dev/cmio
#   guest/dist/cmio-helper-host-sim  host build with -DCMIO_SIM: talks to the SIMULATED device
#                                    (src/machine/gio-simulator.ts) over the unix socket in CMIO_SIM_SOCKET
#
# Usage: guest/cmio/build.sh [all|host|riscv64]    (default: all; tests call `host`)
# Env:   CC_RISCV64 (default riscv64-linux-gnu-gcc), CC_HOST (default cc), OUT_DIR (default guest/dist)
set -euo pipefail

mode="${1:-all}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$here/cmio-helper.c"
out="${OUT_DIR:-$root/guest/dist}"
cc_riscv="${CC_RISCV64:-riscv64-linux-gnu-gcc}"
cc_host="${CC_HOST:-cc}"
cflags=(-std=c11 -O2 -Wall -Wextra -Werror)

case "$mode" in all|host|riscv64) ;; *) echo "usage: $0 [all|host|riscv64]" >&2; exit 2 ;; esac
mkdir -p "$out"

size_of() { stat -c %s "$1"; }

# Write to a temporary name and rename, so a concurrent reader (a test run) never sees half a binary.
build() { # build OUTPUT COMPILER FLAGS...
  local target="$1" compiler="$2"; shift 2
  local tmp="$target.tmp.$$"
  "$compiler" "${cflags[@]}" "$@" -o "$tmp" "$src"
  mv -f "$tmp" "$target"
  echo "built $target ($(size_of "$target") bytes)"
}

if [[ "$mode" == all || "$mode" == riscv64 ]]; then
  if ! command -v "$cc_riscv" >/dev/null 2>&1; then
    cat >&2 <<EOF
error: the riscv64 cross compiler '$cc_riscv' is not installed; it is needed for guest/dist/cmio-helper-riscv64.
Install it (Debian/Ubuntu, as root):
  apt-get update && apt-get install -y gcc-riscv64-linux-gnu
(it brings libc6-dev-riscv64-cross, whose libc.a the -static link needs), or set CC_RISCV64.
Only the host-simulation build is needed by the tests: $0 host
EOF
    exit 1
  fi
  build "$out/cmio-helper-riscv64" "$cc_riscv" -static -s
  if command -v file >/dev/null 2>&1; then file "$out/cmio-helper-riscv64"; fi
fi

if [[ "$mode" == all || "$mode" == host ]]; then
  if ! command -v "$cc_host" >/dev/null 2>&1; then
    echo "error: no host C compiler '$cc_host' (apt-get install -y gcc), or set CC_HOST" >&2
    exit 1
  fi
  build "$out/cmio-helper-host-sim" "$cc_host" -DCMIO_SIM
fi

#!/usr/bin/env bash
# Builds the NSM helper (enclave/nsm/nsm-helper.c):
#   enclave/dist/nsm-helper      the real one for the enclave image: x86_64, static, talks to /dev/nsm
#   enclave/dist/nsm-helper-sim  -DNSM_SIM: the same code with the device layer swapped for the unix socket in
#                                $NSM_SIM_SOCKET (the SIMULATED NSM of test/enclave/nsm-simulator.ts); tests only
#
# Usage: enclave/build.sh [all|real|sim]    (default: all; tests call `sim`)
# Env:   CC (default cc), OUT_DIR (default enclave/dist)
set -euo pipefail

mode="${1:-all}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/nsm/nsm-helper.c"
out="${OUT_DIR:-$here/dist}"
cc="${CC:-cc}"
cflags=(-std=c11 -O2 -Wall -Wextra -Werror)

case "$mode" in all|real|sim) ;; *) echo "usage: $0 [all|real|sim]" >&2; exit 2 ;; esac
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "error: no C compiler '$cc' (apt-get install -y gcc), or set CC" >&2
  exit 1
fi
mkdir -p "$out"

# Write to a temporary name and rename, so a concurrent reader (a test run) never sees half a binary.
build() { # build OUTPUT FLAGS...
  local target="$1"; shift
  local tmp="$target.tmp.$$"
  "$cc" "${cflags[@]}" "$@" -o "$tmp" "$src"
  mv -f "$tmp" "$target"
  echo "built $target ($(stat -c %s "$target") bytes)"
}

if [[ "$mode" == all || "$mode" == real ]]; then
  # Static, so the image needs no libc of a particular version for it; stripped, so builds compare.
  build "$out/nsm-helper" -static -s
fi
if [[ "$mode" == all || "$mode" == sim ]]; then
  build "$out/nsm-helper-sim" -DNSM_SIM
fi

#!/usr/bin/env bash
# Issue #15: 4 KiB replay hits as a build makes them. A build asks for each URL about once, so nearly every
# request it replays is the first for its netlock entry (its record read, hashed and checked then), where the
# anchors harness asks for one URL over and over (its record checked once). Here every request names a distinct
# URL, against squid serving the same distinct URLs from its cache.
# Fill: wrk with bench/record-miss.lua (run id "fill", one thread) through squid and through `fetch-oracle record`
# from the live nginx origin, so each holds GET http://ORIGIN/f4k?fill-1-2 … fill-1-N. Then the origin stops.
# squid is filled for FILL_SECONDS, enough for what it serves in DURATION; the oracle for ORACLE_FILL_SECONDS,
# so that its netlock is about what one measurement asks for, as a build's netlock is what the build asks for
# (a larger one would have each index page read for fewer of its entries than a build reads).
# Measure: for each rep and connection count the oracle starts afresh as `fetch-oracle replay` of what it recorded
# (a build's replay starts with the build: its first seconds are in the figures) and squid goes on as it is; wrk
# asks for fill-1-2, fill-1-3, … in order, so every request is one neither was asked since the fill. A request
# past what a target holds is a miss (squid: 503 with the origin down; the oracle: 504), counted as an error:
# a run with errors measured past its fill (raise FILL_SECONDS or ORACLE_FILL_SECONDS).
# The proxies and the origin run on SERVER_CPUS, wrk on CLIENT_CPUS, as in the harness. Reuses
# ../shared/bench/anchors (lib.sh, conf/*.in) by path, read-only, through bench/squid-beside.sh.
# Usage, from the checkout: bash bench/replay-first-hits.sh   (env: W, DURATION, REPS, CONNS, FILL_SECONDS,
# ORACLE_FILL_SECONDS, ANCHORS_DIR, ORACLE_FLAGS: more flags for `replay`). Needs nginx, squid, wrk (bench/anchors `run.sh install`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=replay-first-hits
WORKDIR=${W:-${TMPDIR:-/tmp}/fo-replay-first-hits}
DURATION=${DURATION:-5} REPS=${REPS:-2} CONNS=${CONNS:-1 16 64} FILL_SECONDS=${FILL_SECONDS:-30}
ORACLE_FILL_SECONDS=${ORACLE_FILL_SECONDS:-30}
SERVER_CPUS=${SERVER_CPUS:-0} CLIENT_CPUS=${CLIENT_CPUS:-1}
ORIGIN_PORT=${ORIGIN_PORT:-28380} SQUID_PORT=${SQUID_PORT:-28328} ORACLE_PORT=${ORACLE_PORT:-28998}
SQUID_CACHE_MEM_MB=${SQUID_CACHE_MEM_MB:-2048}
# shellcheck source=bench/squid-beside.sh
source "$ROOT/bench/squid-beside.sh"
stop_all() { local n; for n in oracle squid origin; do stop_bg "$n"; done; }
trap stop_all EXIT
stop_all
rm -rf "$WORKDIR"
write_f4k
start_origin
start_squid
# shellcheck disable=SC2086 # ORACLE_FLAGS is split into words on purpose
(cd "$ROOT" && start_bg oracle node bin/fetch-oracle.js record --listen "127.0.0.1:$ORACLE_PORT" \
  --data "$WORKDIR/oracle-data" --netlock "$WORKDIR/netlock.json")
wait_port "$ORACLE_PORT" 30
port_of() { case $1 in squid) echo "$SQUID_PORT" ;; oracle) echo "$ORACLE_PORT" ;; esac; }

# Fill both with the same URLs, in the same order, at 16 connections.
for n in squid oracle; do
  secs=$FILL_SECONDS; [[ $n == oracle ]] && secs=$ORACLE_FILL_SECONDS
  out=$(on_client env WRK_TARGET_URL="http://127.0.0.1:$ORIGIN_PORT/f4k" WRK_RUN_ID=fill \
    wrk -t1 -c16 -d"${secs}s" --timeout 30s -s "$ROOT/bench/record-miss.lua" "http://127.0.0.1:$(port_of "$n")/" 2>&1)
  filled=$(grep -o '"requests":[0-9]*' <<<"$out" | cut -d: -f2)
  echo "fill $n: $filled URLs in $secs s" | tee -a "$WORKDIR/res/verify.txt" >&2
done
stop_bg oracle # SIGTERM writes the netlock: one signed entry per URL recorded
stop_bg origin
wait_port_closed "$ORIGIN_PORT" || die "origin still listening"
node -e 'console.log(`oracle netlock entries: ${require(process.argv[1]).count}`)' "$WORKDIR/netlock.json" | tee -a "$WORKDIR/res/verify.txt" >&2
start_replay() {
  # shellcheck disable=SC2086
  (cd "$ROOT" && start_bg oracle node bin/fetch-oracle.js replay --listen "127.0.0.1:$ORACLE_PORT" \
    --data "$WORKDIR/oracle-data" --netlock "$WORKDIR/netlock.json" ${ORACLE_FLAGS:-})
  wait_port "$ORACLE_PORT" 30
}

# Check, with the origin down: the first URL wrk sent comes back byte-exact from both (squid from its cache).
# (wrk makes one request with the script before it connects and never sends it: fill-1-1 is never asked.)
start_replay
for n in squid oracle; do
  got=$(curl -s --noproxy '' -x "http://127.0.0.1:$(port_of "$n")" -D "$WORKDIR/res/h" "http://127.0.0.1:$ORIGIN_PORT/f4k?fill-1-2" | sha256sum | cut -d' ' -f1)
  [[ $got == "$SHA" ]] || die "$n served wrong bytes for fill-1-2 with the origin down: $(tr -d '\r' <"$WORKDIR/res/h" | head -12 | tr '\n' ' ')"
  echo "check $n fill-1-2: byte-exact with the origin down" >>"$WORKDIR/res/verify.txt"
done
stop_bg oracle

log "load average $(cut -d' ' -f1-3 /proc/loadavg); $REPS reps x '$CONNS' conns x $DURATION s"
for rep in $(seq 1 "$REPS"); do
  for c in $CONNS; do
    order="squid oracle"; (( rep % 2 == 0 )) && order="oracle squid"
    for n in $order; do
      [[ $n == oracle ]] && start_replay
      wrk_distinct "$n" "$c" "$rep" fill
      [[ $n == oracle ]] && stop_bg oracle
      sleep 1
    done
  done
done
curl -s --max-time 5 "http://127.0.0.1:$SQUID_PORT/squid-internal-mgr/counters" |
  grep -E '^(client_http\.(requests|hits)|server\.all\.requests) ' >"$WORKDIR/res/squid-counters.txt" || true
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORKDIR/res/verify.txt"
cat "$WORKDIR/res/verify.txt" "$WORKDIR/res/squid-counters.txt" >&2 || true
node "$ROOT/bench/record-miss-report.mjs" "$WORKDIR/res/raw.jsonl" '4 KiB first hit, distinct URLs'

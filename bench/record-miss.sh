#!/usr/bin/env bash
# Issue #15: 4 KiB records against squid's MISS path. Every request names a distinct URL (bench/record-miss.lua:
# GET http://ORIGIN/f4k?RUN-THREAD-N), so squid misses, fetches from the live nginx origin and stores each object
# (memory cache + aufs cache_dir, squid.conf of bench/anchors), and `fetch-oracle record` fetches, stores and signs
# each one. Reuses ../shared/bench/anchors (lib.sh, conf/*.in) by path, read-only. The proxies and the origin run
# on SERVER_CPUS (they share that core: the origin's cost is the same for both), wrk on CLIENT_CPUS.
# Usage, from the checkout: bash bench/record-miss.sh   (env: W, DURATION, REPS, CONNS, TARGETS, ANCHORS_DIR,
# ORACLE_FLAGS: more flags for `record`, e.g. `--sync each`)
# TARGETS may add ceil-pass, ceil-store, ceil-record and ceil-packed: bench/record-ceiling-server.mjs in that
# mode, the ceiling of a Node proxy doing only that much of a record (its header says what).
# Needs nginx, squid, wrk (bench/anchors `run.sh install`); prints a markdown table (medians over REPS, interleaved).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=record-miss
WORKDIR=${W:-${TMPDIR:-/tmp}/fo-record-miss}
DURATION=${DURATION:-10} REPS=${REPS:-2} CONNS=${CONNS:-1 16 64} TARGETS=${TARGETS:-squid oracle}
SERVER_CPUS=${SERVER_CPUS:-0} CLIENT_CPUS=${CLIENT_CPUS:-1}
ORIGIN_PORT=${ORIGIN_PORT:-28280} SQUID_PORT=${SQUID_PORT:-28228} ORACLE_PORT=${ORACLE_PORT:-28898}
SQUID_CACHE_MEM_MB=${SQUID_CACHE_MEM_MB:-1024}
# shellcheck source=bench/squid-beside.sh
source "$ROOT/bench/squid-beside.sh"
for n in $TARGETS; do
  case $n in squid | oracle | ceil-pass | ceil-store | ceil-record | ceil-packed) ;; *) die "unknown target $n" ;; esac
done
stop_all() { local n; for n in oracle ceil-pass ceil-store ceil-record ceil-packed squid origin; do stop_bg "$n"; done; }
# The last run's files are deleted after this one is measured, not before: for a while after a mass delete,
# ext4 searches past the freed inodes on every file it creates (perf: recently_deleted in __ext4_new_inode),
# and both proxies create a file per object. Runs closer than a few minutes apart still measure the one before's.
OLD=
if [[ -e $WORKDIR ]]; then OLD=$WORKDIR.old.$$; mv "$WORKDIR" "$OLD"; fi
trap 'stop_all; [[ -z $OLD ]] || rm -rf "$OLD"' EXIT

stop_all
write_f4k
start_origin
if [[ " $TARGETS " == *" squid "* ]]; then start_squid; fi
if [[ " $TARGETS " == *" oracle "* ]]; then
  # shellcheck disable=SC2086 # ORACLE_FLAGS is split into words on purpose
  (cd "$ROOT" && start_bg oracle node bin/fetch-oracle.js record --listen "127.0.0.1:$ORACLE_PORT" \
    --data "$WORKDIR/oracle-data" --netlock "$WORKDIR/netlock.json" ${ORACLE_FLAGS:-})
  wait_port "$ORACLE_PORT" 30
fi
# ceil-*: bench/record-ceiling-server.mjs, Node doing only the contract's minimum of a record.
CEIL_PORT=${CEIL_PORT:-28870}
ceil_port() { case $1 in ceil-pass) echo "$CEIL_PORT" ;; ceil-store) echo $((CEIL_PORT + 1)) ;; ceil-record) echo $((CEIL_PORT + 2)) ;; ceil-packed) echo $((CEIL_PORT + 3)) ;; esac; }
for n in $TARGETS; do
  [[ $n == ceil-* ]] || continue
  mkdir -p "$WORKDIR/$n"
  (cd "$ROOT" && start_bg "$n" node bench/record-ceiling-server.mjs "${n#ceil-}" "$WORKDIR/$n" "$(ceil_port "$n")")
  wait_port "$(ceil_port "$n")" 30
done
port_of() { case $1 in squid) echo "$SQUID_PORT" ;; oracle) echo "$ORACLE_PORT" ;; ceil-*) ceil_port "$1" ;; *) die "unknown target $1" ;; esac; }

# Check: a distinct URL is fetched byte-exact through each proxy, and asked again is served from what was stored.
for n in $TARGETS; do
  u="http://127.0.0.1:$ORIGIN_PORT/f4k?check-$n"
  for i in 1 2; do
    got=$(curl -s --noproxy '' -x "http://127.0.0.1:$(port_of "$n")" -D "$WORKDIR/res/h" "$u" | sha256sum | cut -d' ' -f1)
    [[ $got == "$SHA" ]] || die "$n served wrong bytes for $u"
    echo "check $n #$i: $(grep -iE '^(x-cache|x-fetch-oracle[^:]*):' "$WORKDIR/res/h" | tr -d '\r' | tr '\n' ' ')" >>"$WORKDIR/res/verify.txt"
  done
done

log "load average $(cut -d' ' -f1-3 /proc/loadavg); $REPS reps x '$CONNS' conns x $DURATION s, targets $TARGETS"
for rep in $(seq 1 "$REPS"); do
  for c in $CONNS; do
    order=$TARGETS; (( rep % 2 == 0 )) && order=$(tr ' ' '\n' <<<"$TARGETS" | tac | tr '\n' ' ')
    for n in $order; do
      wrk_distinct "$n" "$c" "$rep" "$n-$rep-$c"
      sleep 1
    done
  done
done
if [[ " $TARGETS " == *" squid "* ]]; then
  curl -s --max-time 5 "http://127.0.0.1:$SQUID_PORT/squid-internal-mgr/counters" |
    grep -E '^(client_http\.(requests|hits)|server\.all\.requests) ' >"$WORKDIR/res/squid-counters.txt" || true
fi
if [[ " $TARGETS " == *" oracle "* ]]; then # SIGTERM writes the netlock: one signed entry per distinct URL recorded
  stop_bg oracle
  node -e 'console.log(`oracle netlock entries: ${require(process.argv[1]).count}`)' "$WORKDIR/netlock.json" >>"$WORKDIR/res/verify.txt"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORKDIR/res/verify.txt"
cat "$WORKDIR/res/verify.txt" "$WORKDIR/res/squid-counters.txt" 2>/dev/null >&2 || true
node "$ROOT/bench/record-miss-report.mjs" "$WORKDIR/res/raw.jsonl"

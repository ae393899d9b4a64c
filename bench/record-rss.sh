#!/usr/bin/env bash
# Issue #15: peak RSS of `fetch-oracle record` as its run grows to ~100,000 entries, and of the next run that
# keeps that netlock. wrk asks for distinct 4 KiB URLs (bench/record-miss.lua) through `record` for SECONDS at
# CONNS connections; RSS is sampled every 10 s; then SIGINT writes the netlock. A second `record` on the same data
# directory and netlock (the kept case: every entry read and verified before it listens) is stopped once it
# listens, writing the same netlock back. Peaks: VmHWM before each SIGINT, getrusage's maxrss (GNU time) with
# the netlock written. The origin is nginx (bench/anchors conf); `record` on SERVER_CPUS, wrk on CLIENT_CPUS.
# With POLL=1 the first run serves the admin API and bench/live-poll.mjs (on CLIENT_CPUS) polls its live report
# page's data as an open page does, and what the polls cost is printed; once the load stops, the netlock so far
# is downloaded as from the page (GET /netlock) and the peak RSS before and after it printed.
# Usage, from the checkout: bash bench/record-rss.sh   (env: W, SECONDS_RUN, CONNS, POLL, ANCHORS_DIR, NODE_FLAGS)
# Needs nginx, wrk (bench/anchors `run.sh install`) and GNU time (/usr/bin/time).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=${ANCHORS_DIR:-$ROOT/../shared/bench/anchors}
[[ -f $HERE/lib.sh || -n ${ANCHORS_DIR:-} ]] || HERE=/work/shared/bench/anchors # a worktree under /work/wt
[[ -f $HERE/lib.sh ]] || { echo "record-rss: $HERE/lib.sh not found (set ANCHORS_DIR)" >&2; exit 1; }
WORKDIR=${W:-${TMPDIR:-/tmp}/fo-record-rss}
SECONDS_RUN=${SECONDS_RUN:-90} CONNS=${CONNS:-64}
SERVER_CPUS=${SERVER_CPUS:-0} CLIENT_CPUS=${CLIENT_CPUS:-1}
ORIGIN_PORT=${ORIGIN_PORT:-28280} ORACLE_PORT=${ORACLE_PORT:-28896} ADMIN_PORT=${ADMIN_PORT:-28894} POLL=${POLL:-0}
# shellcheck source=/dev/null
source "$HERE/lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
for b in nginx wrk taskset curl node /usr/bin/time; do command -v "$b" >/dev/null || die "$b missing: $HERE/run.sh install; apt-get install time"; done
# As bench/record-miss.sh: the last run's files go after this one is measured (ext4 is slow after a mass delete).
OLD=
if [[ -e $WORKDIR ]]; then OLD=$WORKDIR.old.$$; mv "$WORKDIR" "$OLD"; fi
trap 'stop_bg origin; [[ -z $OLD ]] || rm -rf "$OLD"' EXIT
mkdir -p "$WORKDIR/data" "$WORKDIR/origin/tmp" "$WORKDIR/res"
head -c 4096 /dev/urandom >"$WORKDIR/data/f4k"
render "$HERE/conf/nginx-static.conf.in" "$WORKDIR/origin/nginx.conf" NAME=origin PORT="$ORIGIN_PORT" \
  WORKDIR="$WORKDIR" NGINX_WORKERS=1
start_bg origin nginx -e "$WORKDIR/origin/error.log" -c "$WORKDIR/origin/nginx.conf"
wait_port "$ORIGIN_PORT" 20

kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mb() { echo $(( ($1 + 512) / 1024 )); }
# Starts `record` under GNU time; sets PID (the node process) and LISTEN_MS (until it listens).
start_record() {
  local t0 t1
  t0=$(date +%s%N)
  (cd "$ROOT" && exec taskset -c "$SERVER_CPUS" /usr/bin/time -f '%M' -o "$WORKDIR/res/$1.maxrss" \
    node ${NODE_FLAGS:-} bin/fetch-oracle.js record --listen "127.0.0.1:$ORACLE_PORT" --data "$WORKDIR/oracle-data" \
    --netlock "$WORKDIR/netlock.json" ${2:-} >"$WORKDIR/res/$1.out" 2>"$WORKDIR/res/$1.log") &
  RECORD_JOB=$!
  until port_open "$ORACLE_PORT"; do sleep 0.05; done
  t1=$(date +%s%N)
  LISTEN_MS=$(( (t1 - t0) / 1000000 ))
  PID=$(pgrep -f "^node .*bin/fetch-oracle.js record --listen 127.0.0.1:$ORACLE_PORT" | head -1)
}
# SIGINT (the netlock is written); sets HWM_MB (before SIGINT), MAXRSS_MB (with the netlock written), STOP_MS.
stop_record() {
  local t0 t1
  HWM_MB=$(mb "$(kb "$PID" VmHWM)")
  t0=$(date +%s%N)
  kill -INT "$PID"
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
  t1=$(date +%s%N)
  STOP_MS=$(( (t1 - t0) / 1000000 ))
  wait "$RECORD_JOB" || true # GNU time has written maxrss once it exits
  MAXRSS_MB=$(mb "$(tail -1 "$WORKDIR/res/$1.maxrss")")
}

log "load average $(cut -d' ' -f1-3 /proc/loadavg); record for $SECONDS_RUN s at $CONNS connections$([[ $POLL == 1 ]] && echo ', the live page polling')"
if [[ $POLL == 1 ]]; then
  start_record run "--admin 127.0.0.1:$ADMIN_PORT"
  taskset -c "$CLIENT_CPUS" node "$ROOT/bench/live-poll.mjs" "http://127.0.0.1:$ADMIN_PORT" >"$WORKDIR/res/poll.txt" 2>&1 &
  POLLER=$!
else
  start_record run
fi
taskset -c "$CLIENT_CPUS" env WRK_TARGET_URL="http://127.0.0.1:$ORIGIN_PORT/f4k" WRK_RUN_ID=rss \
  wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" --timeout 30s -s "$ROOT/bench/record-miss.lua" "http://127.0.0.1:$ORACLE_PORT/" \
  >"$WORKDIR/res/wrk.log" 2>&1 &
WRK=$!
samples=()
for (( t = 10; t <= SECONDS_RUN; t += 10 )); do
  sleep 10
  samples+=("$t s: $(mb "$(kb "$PID" VmRSS)") MB at $(wc -l <"$WORKDIR/oracle-data/records.jsonl" 2>/dev/null || echo 0) records")
done
wait "$WRK" || true
if [[ $POLL == 1 ]]; then
  kill -TERM "$POLLER"; wait "$POLLER" || true
  # The netlock so far, as a user downloads it from the page (GET /netlock), once the load has stopped.
  hwm_before_get=$(mb "$(kb "$PID" VmHWM)")
  get=$(taskset -c "$CLIENT_CPUS" curl -sS -o "$WORKDIR/res/netlock.get.json" -w '%{http_code} %{size_download} %{time_total}' "http://127.0.0.1:$ADMIN_PORT/netlock")
  GET_LINE="GET /netlock: status, bytes, seconds: $get; peak RSS $hwm_before_get MB before it, $(mb "$(kb "$PID" VmHWM)") MB after"
fi
stop_record run
hwm=$HWM_MB maxrss=$MAXRSS_MB stop_ms=$STOP_MS
entries=$(node -e 'console.log(require(process.argv[1]).count)' "$WORKDIR/netlock.json")
cp "$WORKDIR/netlock.json" "$WORKDIR/res/netlock.first.json"
start_record kept
sleep 1
stop_record kept
same=no
cmp -s "$WORKDIR/netlock.json" "$WORKDIR/res/netlock.first.json" && same=yes

echo "record: $(grep -o 'Requests/sec: *[0-9.]*' "$WORKDIR/res/wrk.log" | tr -s ' '), $entries netlock entries"
printf '  RSS %s\n' "${samples[@]}"
[[ $POLL == 1 ]] && echo "  live page: $(cat "$WORKDIR/res/poll.txt")" && echo "  $GET_LINE"
echo "| record run of $entries entries | peak RSS before SIGINT | peak RSS with the netlock written | SIGINT to exit |"
echo "|---|---:|---:|---:|"
echo "| $CONNS conns, $SECONDS_RUN s | $hwm MB | $maxrss MB | $stop_ms ms |"
echo
echo "| record keeping that netlock | time until it listens | peak RSS listening | peak RSS with it written back | written back byte-identical |"
echo "|---|---:|---:|---:|---|"
echo "| $entries entries | $LISTEN_MS ms | $HWM_MB MB | $MAXRSS_MB MB | $same |"

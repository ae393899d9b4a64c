# Sourced by bench/record-miss.sh and bench/replay-first-hits.sh, which set squid beside `fetch-oracle` on distinct
# 4 KiB URLs: finds ../shared/bench/anchors (its lib.sh and conf/*.in, read-only) and sources lib.sh, and starts
# its nginx origin serving one 4 KiB file (f4k, whose sha256 is SHA) and its squid (memory and aufs cache).
# The caller sets ROOT, NAME (for messages), WORKDIR, ORIGIN_PORT, SQUID_PORT and SQUID_CACHE_MEM_MB.
HERE=${ANCHORS_DIR:-$ROOT/../shared/bench/anchors}
[[ -f $HERE/lib.sh || -n ${ANCHORS_DIR:-} ]] || HERE=/work/shared/bench/anchors # a worktree under /work/wt
[[ -f $HERE/lib.sh ]] || { echo "$NAME: $HERE/lib.sh not found (set ANCHORS_DIR)" >&2; exit 1; }
# shellcheck source=/dev/null
source "$HERE/lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
for b in nginx squid wrk taskset curl node; do command -v "$b" >/dev/null || die "$b missing: $HERE/run.sh install"; done

# The 4 KiB body both serve, under $WORKDIR/data (made once per run), and its sha256.
write_f4k() {
  mkdir -p "$WORKDIR/data" "$WORKDIR/origin/tmp" "$WORKDIR/squid" "$WORKDIR/res"
  node -e 'const c=require("crypto");process.stdout.write(c.createCipheriv("aes-128-ctr",Buffer.alloc(16,7),Buffer.alloc(16,3)).update(Buffer.alloc(4096)))' >"$WORKDIR/data/f4k"
  SHA=$(sha256sum "$WORKDIR/data/f4k" | cut -d' ' -f1)
}

start_origin() {
  render "$HERE/conf/nginx-static.conf.in" "$WORKDIR/origin/nginx.conf" NAME=origin PORT="$ORIGIN_PORT" \
    WORKDIR="$WORKDIR" NGINX_WORKERS=1
  start_bg origin nginx -e "$WORKDIR/origin/error.log" -c "$WORKDIR/origin/nginx.conf"
  wait_port "$ORIGIN_PORT" 20 # no name: its liveness check can read an empty cmdline mid-exec
}

start_squid() {
  render "$HERE/conf/squid.conf.in" "$WORKDIR/squid/squid.conf" WORKDIR="$WORKDIR" SQUID_PORT="$SQUID_PORT" \
    SQUID_CACHE_MEM_MB="$SQUID_CACHE_MEM_MB" SQUID_CACHE_DIR_LINE="cache_dir aufs $WORKDIR/squid/cache 4096 16 256"
  chown -R proxy:proxy "$WORKDIR/squid"
  squid -k parse -f "$WORKDIR/squid/squid.conf" >"$WORKDIR/squid/parse.log" 2>&1 || die "squid.conf invalid"
  squid -z -N -f "$WORKDIR/squid/squid.conf" >>"$WORKDIR/squid/parse.log" 2>&1
  start_bg squid squid -N -f "$WORKDIR/squid/squid.conf"
  wait_port "$SQUID_PORT" 30
}

# One wrk run of DURATION s at $2 connections against target $1 (the caller's port_of names its port), every
# request a distinct URL of run id $4 (bench/record-miss.lua), for repetition $3: its output to res/wrk.log, its
# figures to res/raw.jsonl.
wrk_distinct() {
  local n=$1 c=$2 rep=$3 run=$4 out json
  out=$(on_client env WRK_TARGET_URL="http://127.0.0.1:$ORIGIN_PORT/f4k" WRK_RUN_ID="$run" \
    wrk -t1 -c"$c" -d"${DURATION}s" --timeout 30s -s "$ROOT/bench/record-miss.lua" "http://127.0.0.1:$(port_of "$n")/" 2>&1) || true
  printf '### %s c=%s rep=%s load=%s\n%s\n' "$n" "$c" "$rep" "$(cut -d' ' -f1 /proc/loadavg)" "$out" >>"$WORKDIR/res/wrk.log"
  json=$(grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //') || json='{"failed":1}'
  echo "{\"target\":\"$n\",\"conns\":$c,\"rep\":$rep,${json#\{}" >>"$WORKDIR/res/raw.jsonl"
}

#!/usr/bin/env bash
# Issue #15: replay hits over HTTPS (intercepted: CONNECT, then TLS with the oracle's leaf) beside HTTP, for
# fetch-oracle and mitmproxy's server replay (the one anchor of bench/anchors that can answer HTTPS from a
# recording). An nginx origin serves a 4 KiB object over HTTP and HTTPS (self-signed); both proxies record it,
# the origin stops, and bench/proxy-load.ts (wrk cannot tunnel) measures keep-alive hits through each proxy.
# Servers on CPU $SERVER_CPUS, the load generator on $CLIENT_CPUS, as in bench/anchors.
# Usage, from the checkout: bash bench/replay-https.sh   (env: W, SECONDS_EACH, REPS, CONNS, TARGETS)
# Needs nginx, openssl, curl, mitmdump (bench/anchors `run.sh install`); prints a markdown table.
set -euo pipefail
W=${W:-${TMPDIR:-/tmp}/fo-replay-https}
SECONDS_EACH=${SECONDS_EACH:-5} REPS=${REPS:-2} CONNS=${CONNS:-1 16 64} TARGETS=${TARGETS:-oracle mitmproxy}
SERVER_CPUS=${SERVER_CPUS:-0} CLIENT_CPUS=${CLIENT_CPUS:-1}
HTTP_PORT=${HTTP_PORT:-28180} HTTPS_PORT=${HTTPS_PORT:-28443} ORACLE_PORT=${ORACLE_PORT:-28899} MITM_PORT=${MITM_PORT:-28183}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
log() { printf '[replay-https] %s\n' "$*" >&2; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; log "port $1 never opened"; return 1; }
stop_pid() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

rm -rf "$W"; mkdir -p "$W/www" "$W/nginx" "$W/mitm"
node -e 'const c=require("crypto");process.stdout.write(c.createCipheriv("aes-128-ctr",Buffer.alloc(16,7),Buffer.alloc(16,3)).update(Buffer.alloc(4096)))' >"$W/www/f4k"
SHA=$(sha256sum "$W/www/f4k" | cut -d' ' -f1)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -days 2 -keyout "$W/origin.key" -out "$W/origin.pem" 2>/dev/null
cat >"$W/nginx/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; default_type application/octet-stream; keepalive_requests 1000000;
  client_body_temp_path $W/nginx/body; proxy_temp_path $W/nginx/proxy; fastcgi_temp_path $W/nginx/fcgi;
  uwsgi_temp_path $W/nginx/uwsgi; scgi_temp_path $W/nginx/scgi;
  server { listen 127.0.0.1:$HTTP_PORT; root $W/www; }
  server { listen 127.0.0.1:$HTTPS_PORT ssl; server_name localhost; ssl_certificate $W/origin.pem; ssl_certificate_key $W/origin.key; root $W/www; }
}
EOF
nginx -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" & ORIGIN=$!; PIDS+=("$ORIGIN")
wait_port "$HTTP_PORT"; wait_port "$HTTPS_PORT"
URL_HTTP=http://127.0.0.1:$HTTP_PORT/f4k URL_HTTPS=https://localhost:$HTTPS_PORT/f4k

log "record through fetch-oracle"
(cd "$ROOT" && exec node bin/fetch-oracle.js record --listen "127.0.0.1:$ORACLE_PORT" --data "$W/oracle" --netlock "$W/netlock.json" --upstream-ca "$W/origin.pem") >"$W/record.log" 2>&1 & REC=$!
wait_port "$ORACLE_PORT"
for u in "$URL_HTTP" "$URL_HTTPS"; do curl -sSf -o /dev/null --noproxy '' -x "http://127.0.0.1:$ORACLE_PORT" --cacert "$W/oracle/ca/ca-cert.pem" "$u"; done
stop_pid "$REC"
if [[ " $TARGETS " == *" mitmproxy "* ]]; then
  log "record through mitmproxy"
  mitmdump -q --listen-host 127.0.0.1 -p "$MITM_PORT" --set "confdir=$W/mitm" --set ssl_insecure=true -w "$W/mitm.flows" >"$W/mitm-record.log" 2>&1 & M=$!
  wait_port "$MITM_PORT"
  for u in "$URL_HTTP" "$URL_HTTPS"; do curl -sSf -o /dev/null --noproxy '' -x "http://127.0.0.1:$MITM_PORT" --cacert "$W/mitm/mitmproxy-ca-cert.pem" "$u"; done
  stop_pid "$M"
fi
kill "$ORIGIN"; wait "$ORIGIN" 2>/dev/null || true
log "origin stopped; replaying"

declare -A CA PORT
(cd "$ROOT" && exec taskset -c "$SERVER_CPUS" node bin/fetch-oracle.js replay --listen "127.0.0.1:$ORACLE_PORT" --data "$W/oracle" --netlock "$W/netlock.json") >"$W/replay.log" 2>&1 & PIDS+=($!)
CA[oracle]=$W/oracle/ca/ca-cert.pem PORT[oracle]=$ORACLE_PORT
if [[ " $TARGETS " == *" mitmproxy "* ]]; then
  taskset -c "$SERVER_CPUS" mitmdump -q --listen-host 127.0.0.1 -p "$MITM_PORT" --set "confdir=$W/mitm" --server-replay "$W/mitm.flows" \
    --set server_replay_nopop=true --set server_replay_kill_extra=true --set server_replay_refresh=false --set connection_strategy=lazy >"$W/mitm-replay.log" 2>&1 & PIDS+=($!)
  CA[mitmproxy]=$W/mitm/mitmproxy-ca-cert.pem PORT[mitmproxy]=$MITM_PORT
fi
for t in $TARGETS; do
  wait_port "${PORT[$t]}"
  for u in "$URL_HTTP" "$URL_HTTPS"; do
    got=$(curl -sSf --noproxy '' -x "http://127.0.0.1:${PORT[$t]}" --cacert "${CA[$t]}" "$u" | sha256sum | cut -d' ' -f1)
    [[ $got == "$SHA" ]] || { log "$t served wrong bytes for $u"; exit 1; }
  done
done

: >"$W/results.jsonl"
for rep in $(seq "$REPS"); do
  for c in $CONNS; do for t in $TARGETS; do for u in "$URL_HTTP" "$URL_HTTPS"; do
    out=$(cd "$ROOT" && taskset -c "$CLIENT_CPUS" node bin/run-ts.js bench/proxy-load.ts --proxy "127.0.0.1:${PORT[$t]}" --url "$u" \
      --ca "${CA[$t]}" --connections "$c" --seconds "$SECONDS_EACH" --sha256 "$SHA") || out='{"failed":1}'
    echo "{\"target\":\"$t\",\"rep\":$rep,${out#\{}" >>"$W/results.jsonl"
    log "rep $rep c=$c $t $u: $out"
  done; done; done
done

node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => !r.failed);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const targets = [...new Set(rows.map((r) => r.target))];
const cols = targets.flatMap((t) => ["http", "https"].map((s) => [t, s]));
console.log(`| 4 KiB hit | ${cols.map(([t, s]) => `${t} ${s.toUpperCase()}`).join(" | ")} |`);
console.log(`|---|${cols.map(() => "---:").join("|")}|`);
for (const c of [...new Set(rows.map((r) => r.connections))]) {
  for (const [label, f] of [["req/s", (r) => r.rps], ["p50 ms", (r) => r.p50_ms], ["p99 ms", (r) => r.p99_ms]]) {
    const cells = cols.map(([t, s]) => { const v = med(rows.filter((r) => r.target === t && r.scheme === s && r.connections === c).map(f)); return Number.isNaN(v) ? "–" : label === "req/s" ? Math.round(v).toLocaleString("en") : v.toFixed(2); });
    console.log(`| ${label}, c=${c} | ${cells.join(" | ")} |`);
  }
}
console.log(`\nmedians of ${process.argv[2]} rep(s), ${process.argv[3]} s each; errors: ${rows.reduce((a, r) => a + r.errors, 0)}`);
' "$W/results.jsonl" "$REPS" "$SECONDS_EACH"

#!/usr/bin/env bash
# Issue #15: what `fetch-oracle record` holds for the records of its data directory (its record index), with N
# records in records.jsonl: time until it listens and its memory once it does. The lines are synthesized
# (npm-like URLs, one in ten a HEAD; well-formed, as the index reads them: it does not verify records, a
# request does), so the figure is the index's alone. `record` runs on SERVER_CPUS; each size is opened twice.
# Usage, from the checkout: bash bench/record-open.sh   (env: SIZES (default "0 100000 1000000"), W, SERVER_CPUS, ORACLE_PORT)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${W:-${TMPDIR:-/tmp}/fo-record-open}
SIZES=${SIZES:-0 100000 1000000} SERVER_CPUS=${SERVER_CPUS:-0} ORACLE_PORT=${ORACLE_PORT:-28893}
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
for b in taskset curl node; do command -v "$b" >/dev/null || { echo "record-open: $b missing" >&2; exit 1; }; done
rm -rf "$WORKDIR"; mkdir -p "$WORKDIR"
trap 'rm -rf "$WORKDIR"' EXIT

synthesize() { # DIR N
  node -e '
    const { mkdirSync, openSync, writeSync, closeSync } = require("node:fs");
    const [dir, n] = [process.argv[1], Number(process.argv[2])];
    mkdirSync(dir, { recursive: true });
    const fd = openSync(dir + "/records.jsonl", "w", 0o600);
    const record = "bafyreidqz2dr7cr5h62etpb4hlhgkr6o6aw7y5h74sgzcjjsu4sl7w7fxe";
    let buf = "";
    for (let i = 0; i < n; i++) {
      const key = `https://registry.npmjs.org/some-package-${i}/-/some-package-${i}-1.${i % 97}.${i % 13}.tgz\n${i % 10 === 0 ? "HEAD" : "GET"}\naccept=*/*`;
      buf += JSON.stringify({ key, record, signature: Buffer.alloc(64, i % 251).toString("base64") }) + "\n";
      if (buf.length > 1 << 20) { writeSync(fd, buf); buf = ""; }
    }
    writeSync(fd, buf);
    closeSync(fd);' "$1" "$2"
}
mb() { awk -v k="$2" '$1 == k":" { printf "%d", ($2 + 512) / 1024 }' "/proc/$1/status"; }

echo "| records in the data directory | records.jsonl | time until it listens | RSS listening | of it anonymous | peak RSS |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
  data="$WORKDIR/data-$n"
  synthesize "$data" "$n"
  for rep in 1 2; do
    t0=$(date +%s%N)
    (cd "$ROOT" && exec taskset -c "$SERVER_CPUS" node bin/fetch-oracle.js record --listen "127.0.0.1:$ORACLE_PORT" --data "$data" \
      --netlock "$WORKDIR/netlock.json" >"$WORKDIR/out.log" 2>"$WORKDIR/err.log") &
    job=$!
    until curl -s -o /dev/null "http://127.0.0.1:$ORACLE_PORT/" 2>/dev/null; do
      kill -0 "$job" 2>/dev/null || { cat "$WORKDIR/err.log" >&2; exit 1; }
      sleep 0.05
    done
    t1=$(date +%s%N)
    pid=$(pgrep -f "^node .*bin/fetch-oracle.js record --listen 127.0.0.1:$ORACLE_PORT" | head -1)
    sleep 1
    echo "| $n | $(( $(stat -c %s "$data/records.jsonl") / 1000000 )) MB | $(( (t1 - t0) / 1000000 )) ms | $(mb "$pid" VmRSS) MB | $(mb "$pid" RssAnon) MB | $(mb "$pid" VmHWM) MB |"
    kill -INT "$pid"
    wait "$job" || true
    rm -f "$WORKDIR"/netlock.json*
  done
done

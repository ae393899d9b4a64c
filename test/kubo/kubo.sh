#!/usr/bin/env bash
# Kubo (the real `ipfs` daemon) for interop tests, built from the Go module proxy (design §9).
#
#   test/kubo/kubo.sh build        Build test/kubo/bin/ipfs from go.mod/go.sum in this folder, if it is missing
#                                  or older than go.mod/go.sum (`go build -o bin/ipfs github.com/ipfs/kubo/cmd/ipfs`).
#                                  A cold build downloads ~300 modules and takes several minutes on 2 cores.
#   test/kubo/kubo.sh start DIR    Build if needed; if DIR has no repo, `ipfs init --profile=unixfs-v1-2025,test`
#                                  plus settings that keep the node from dialling out (empty Bootstrap, no MDNS,
#                                  Routing.Type none, AutoConf off, API/gateway/swarm on 127.0.0.1 port 0); then
#                                  start `ipfs daemon --offline` in the background (log DIR/daemon.log, pid
#                                  DIR/daemon.pid), wait (≤ KUBO_START_TIMEOUT s, default 60) until
#                                  `POST /api/v0/id` answers, and print the RPC API URL (http://127.0.0.1:PORT)
#                                  as the LAST line of stdout. If the daemon of DIR already runs, just prints it.
#   test/kubo/kubo.sh url DIR      Print the RPC API URL of the running daemon of DIR.
#   test/kubo/kubo.sh stop DIR     Stop the daemon of DIR: SIGTERM, then SIGKILL after 15 s. Idempotent.
#
# Typical use (CI):
#   KUBO_DIR=$(mktemp -d)
#   export FETCH_ORACLE_KUBO_API=$(test/kubo/kubo.sh start "$KUBO_DIR" | tail -n 1)
#   npx vitest run test/interop
#   test/kubo/kubo.sh stop "$KUBO_DIR"
#
# Environment: GO (default /usr/local/go/bin/go if present, else `go` on PATH); KUBO_START_TIMEOUT (seconds);
# KUBO_ONLINE=1 starts the daemon without --offline (bitswap with explicitly connected peers only).
# Everything but the final URL goes to stderr. The daemon only ever listens on 127.0.0.1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/bin/ipfs"
KUBO_PKG="github.com/ipfs/kubo/cmd/ipfs"

log() { printf 'kubo.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

go_cmd() {
  if [[ -n "${GO:-}" ]]; then
    printf '%s\n' "$GO"
  elif [[ -x /usr/local/go/bin/go ]]; then
    printf '%s\n' /usr/local/go/bin/go
  elif command -v go >/dev/null 2>&1; then
    command -v go
  else
    die "no Go toolchain (set GO=/path/to/go)"
  fi
}

needs_build() {
  [[ ! -x "$BIN" || "$HERE/go.sum" -nt "$BIN" || "$HERE/go.mod" -nt "$BIN" ]]
}

cmd_build() {
  if ! needs_build; then
    log "up to date: $BIN"
    return 0
  fi
  local go start tmp
  go="$(go_cmd)"
  start=$SECONDS
  mkdir -p "$HERE/bin"
  tmp="$HERE/bin/.ipfs.$$"
  log "building Kubo with $("$go" version) (a cold build takes several minutes)..."
  # -mod=readonly: go.mod/go.sum are the source of truth; a build never rewrites them.
  if ! (cd "$HERE" && "$go" build -mod=readonly -o "$tmp" "$KUBO_PKG") >&2; then
    rm -f "$tmp"
    die "go build $KUBO_PKG failed"
  fi
  mv -f "$tmp" "$BIN" # atomic: a concurrent start never sees a half-written binary
  log "built $("$BIN" version) in $((SECONDS - start)) s: $BIN"
}

ipfs_in() { # ipfs_in DIR args...: run the binary against the repo DIR
  local dir="$1"
  shift
  IPFS_PATH="$dir" IPFS_TELEMETRY=off "$BIN" "$@"
}

pid_of() { # prints the pid of DIR's daemon if it is alive (and really an ipfs process)
  local dir="$1" pid
  [[ -f "$dir/daemon.pid" ]] || return 1
  pid="$(cat "$dir/daemon.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against a recycled pid
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'ipfs' || return 1
  printf '%s\n' "$pid"
}

api_url() { # DIR/api holds the multiaddr the daemon really bound, e.g. /ip4/127.0.0.1/tcp/41234
  local dir="$1" maddr
  [[ -f "$dir/api" ]] || return 1
  maddr="$(cat "$dir/api" 2>/dev/null || true)"
  [[ "$maddr" =~ ^/ip4/127\.0\.0\.1/tcp/([0-9]+)$ ]] || return 1
  printf 'http://127.0.0.1:%s\n' "${BASH_REMATCH[1]}"
}

api_answers() { # POST /api/v0/id answers with a peer ID
  curl -fsS --max-time 5 -X POST "$1/api/v0/id" 2>/dev/null | grep -q '"ID"'
}

init_repo() {
  local dir="$1"
  log "initialising repo $dir (profiles unixfs-v1-2025,test)"
  ipfs_in "$dir" init --profile=unixfs-v1-2025,test --empty-repo >&2
  # The `test` profile already sets loopback port-0 addresses, empty Bootstrap, MDNS off and NAT port mapping off.
  # The rest makes sure nothing dials out even if the daemon were started without --offline.
  local -a settings=(
    'Addresses.API' '"/ip4/127.0.0.1/tcp/0"'
    'Addresses.Gateway' '"/ip4/127.0.0.1/tcp/0"'
    'Addresses.Swarm' '["/ip4/127.0.0.1/tcp/0"]'
    'Addresses.Announce' '[]'
    'Addresses.AppendAnnounce' '[]'
    'Bootstrap' '[]'
    'Peering.Peers' '[]'
    'Discovery.MDNS.Enabled' 'false'
    'Routing.Type' '"none"'
    'Routing.DelegatedRouters' '[]'
    'Ipns.DelegatedPublishers' '[]'
    'DNS.Resolvers' '{}'
    'AutoConf.Enabled' 'false'
    'AutoTLS.Enabled' 'false'
    'Provide.Enabled' 'false'
    'Swarm.DisableNatPortMap' 'true'
    'Swarm.RelayClient.Enabled' 'false'
    'Swarm.RelayService.Enabled' 'false'
    'Swarm.Transports.Network.QUIC' 'false'
    'Swarm.Transports.Network.WebTransport' 'false'
    'Swarm.Transports.Network.WebRTCDirect' 'false'
    'Swarm.Transports.Network.Websocket' 'false'
    'Plugins.Plugins.telemetry.Config.Mode' '"off"'
  )
  local i
  for ((i = 0; i < ${#settings[@]}; i += 2)); do
    ipfs_in "$dir" config --json "${settings[i]}" "${settings[i + 1]}" >/dev/null
  done
}

cmd_start() {
  local dir="${1:-}"
  [[ -n "$dir" ]] || die "usage: kubo.sh start DIR"
  cmd_build
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"

  local pid url
  if pid="$(pid_of "$dir")"; then
    if url="$(api_url "$dir")" && api_answers "$url"; then
      log "daemon of $dir already running (pid $pid)"
      printf '%s\n' "$url"
      return 0
    fi
    die "a daemon (pid $pid) holds $dir but its API does not answer; run: kubo.sh stop $dir"
  fi

  [[ -f "$dir/config" ]] || init_repo "$dir"
  rm -f "$dir/api" "$dir/daemon.pid"

  # KUBO_ONLINE=1: without --offline, so bitswap runs; with Routing none, no bootstrap and loopback-only swarm
  # addresses it still reaches only the peers it is told of (`ipfs swarm connect`, Peering).
  local -a mode=(--offline)
  [[ "${KUBO_ONLINE:-0}" == 1 ]] && mode=()
  log "starting ipfs daemon ${mode[*]:-(online)} (log: $dir/daemon.log)"
  IPFS_PATH="$dir" IPFS_TELEMETRY=off nohup "$BIN" daemon "${mode[@]}" >"$dir/daemon.log" 2>&1 </dev/null &
  pid=$!
  disown "$pid" 2>/dev/null || true
  printf '%s\n' "$pid" >"$dir/daemon.pid"

  local timeout="${KUBO_START_TIMEOUT:-60}" deadline=$((SECONDS + ${KUBO_START_TIMEOUT:-60}))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "daemon exited before its API answered; last lines of $dir/daemon.log:"
      tail -n 30 "$dir/daemon.log" >&2 || true
      rm -f "$dir/daemon.pid"
      die "ipfs daemon failed to start"
    fi
    if url="$(api_url "$dir")" && api_answers "$url"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      log "API did not answer within ${timeout} s; last lines of $dir/daemon.log:"
      tail -n 30 "$dir/daemon.log" >&2 || true
      cmd_stop "$dir"
      die "timed out waiting for the ipfs daemon"
    fi
    sleep 0.2
  done
  log "daemon ready (pid $pid): $url"
  printf '%s\n' "$url"
}

cmd_url() {
  local dir="${1:-}" url
  [[ -n "$dir" ]] || die "usage: kubo.sh url DIR"
  pid_of "$dir" >/dev/null || die "no daemon running for $dir"
  url="$(api_url "$dir")" || die "no API address in $dir/api"
  printf '%s\n' "$url"
}

# wait_gone PID TENTHS: true once PID has exited, false if it still runs after TENTHS tenths of a second.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$1" 2>/dev/null
}

cmd_stop() {
  local dir="${1:-}" pid i
  [[ -n "$dir" ]] || die "usage: kubo.sh stop DIR"
  if ! pid="$(pid_of "$dir")"; then
    rm -f "$dir/daemon.pid"
    log "no daemon running for $dir"
    return 0
  fi
  log "stopping daemon pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 150; then
    log "daemon pid $pid ignored SIGTERM for 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 50 || true
  fi
  rm -f "$dir/daemon.pid" "$dir/api"
  log "stopped"
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start "${2:-}" ;;
  url) cmd_url "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  *)
    sed -n '2,25p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac

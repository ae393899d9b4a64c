#!/bin/sh
# Boot of the fetch-oracle enclave image (the Dockerfile's CMD); see enclave/README.md.
#
# An enclave has no network device: only loopback (without an address until we give it one) and vsock.
#   outbound: oracle --CONNECT--> 127.0.0.1:3128 --socat--> vsock 3:8001 --> parent's `fetch-oracle enclave parent`
#             (TLS to the origin runs inside that tunnel and ends in the oracle: the parent relays ciphertext)
#   inbound:  parent socat TCP:8899 --> vsock <enclave-cid>:8899 --socat--> 127.0.0.1:8899 (the oracle's proxy)
#             parent socat TCP:8900 --> vsock <enclave-cid>:8900 --socat--> 127.0.0.1:8900 (admin API: CA, netlock)
#
# Only the vsock endpoints differ in the tests (test/enclave/boot.test.ts): ENCLAVE_INBOUND,
# ENCLAVE_ADMIN_INBOUND and ENCLAVE_OUTBOUND name unix sockets there (UNIX-LISTEN / UNIX-CONNECT), and the script runs in a network
# namespace with nothing but loopback (unshare -n), like the enclave. Everything else is this file as the image
# runs it.
set -eu

: "${ENCLAVE_INBOUND:=VSOCK-LISTEN:8899,fork,reuseaddr}" # where the parent's clients arrive
: "${ENCLAVE_OUTBOUND:=VSOCK-CONNECT:3:8001}"            # the parent (always CID 3), port of its CONNECT proxy
: "${ENCLAVE_ADMIN_INBOUND:=VSOCK-LISTEN:8900,fork,reuseaddr}" # the admin API (/ca.pem, /netlock, /stats)
: "${ORACLE_PORT:=8899}"                                  # the oracle's proxy, on loopback
: "${OUTBOUND_PORT:=3128}"                                # the oracle's --upstream-proxy, on loopback
: "${ADMIN_PORT:=8900}"                                   # the oracle's admin API, on loopback
: "${ORACLE_DATA:=/run/fetch-oracle}"                     # an enclave's file system lives in its memory
: "${ORACLE_CMD:=node /app/fetch-oracle.mjs}"
: "${NSM_HELPER:=/usr/local/bin/nsm-helper}"
: "${ORACLE_ARGS:=--netlock /run/fetch-oracle/build.netlock.json}"

# Loopback first: nothing below works without it (docs/nitro.md §4).
ip addr add 127.0.0.1/8 dev lo 2>/dev/null || true # already there outside an enclave
ip link set lo up

socat "TCP-LISTEN:${OUTBOUND_PORT},bind=127.0.0.1,fork,reuseaddr" "${ENCLAVE_OUTBOUND}" &
socat "${ENCLAVE_INBOUND}" "TCP:127.0.0.1:${ORACLE_PORT}" &
socat "${ENCLAVE_ADMIN_INBOUND}" "TCP:127.0.0.1:${ADMIN_PORT}" &

mkdir -p "$ORACLE_DATA"
# exec: the oracle gets the signals (SIGTERM writes the netlock). ORACLE_CMD and ORACLE_ARGS are split on
# spaces on purpose (a command plus its arguments).
# shellcheck disable=SC2086
exec $ORACLE_CMD enclave serve \
  --listen "127.0.0.1:${ORACLE_PORT}" \
  --upstream-proxy "127.0.0.1:${OUTBOUND_PORT}" \
  --admin "127.0.0.1:${ADMIN_PORT}" \
  --nsm-helper "$NSM_HELPER" \
  --data "$ORACLE_DATA" \
  $ORACLE_ARGS

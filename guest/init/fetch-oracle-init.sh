#!/bin/sh
# fetch-oracle-init: PID 1 of a `fetch-oracle machine run` (busybox sh). Installed as /sbin/fetch-oracle-init;
# the kernel command line names it (init=/sbin/fetch-oracle-init). docs/cartesi.md "Guest flow".
#
#   1. mounts, loopback up;
#   2. starts the guest shim (`fetch-oracle-guest.mjs machine`) and waits for its `ready` line on a fifo: the
#      shim has asked the host for the run's config (GIO 0x27), listens on 127.0.0.1:8899 and wrote run.sh;
#   3. sources run.sh (fixed clock `date -s @time`, proxy + CA variables, FETCH_ORACLE_INPUT/OUTPUT, the
#      user's env, `set -- argv`), unpacks the input drive (/dev/pmem1, a tar), runs the command;
#   4. tars FETCH_ORACLE_OUTPUT onto the output drive (/dev/pmem2), stops the shim (it sends its stats),
#      writes the result drive (/dev/pmem3) and powers off. The kernel's halt carries no exit code, so the
#      result drive does: NUL-padded lines `fetch-oracle-result 1`, `exit N`, `output BYTES`, `fatal TEXT`.
# A block that does not hash to its CID makes the shim write /run/fetch-oracle/fatal and stop the command:
# the result then says `fatal …` and no output is written.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

RUN=/run/fetch-oracle
SHIM=/usr/lib/fetch-oracle/fetch-oracle-guest.mjs
INPUT_DRIVE=/dev/pmem1
OUTPUT_DRIVE=/dev/pmem2
RESULT_DRIVE=/dev/pmem3

mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
mkdir -p "$RUN" /mnt/input /mnt/output

status=125
fatal=
output_bytes=0

finish() {
  # One line of fatal text: the host prints it.
  fatal=$(printf '%s' "$fatal" | tr '\n\r\0' '   ' | cut -c1-3000)
  {
    printf 'fetch-oracle-result 1\nexit %s\noutput %s\n' "$status" "$output_bytes"
    [ -n "$fatal" ] && printf 'fatal %s\n' "$fatal"
  } >"$RUN/result"
  dd if="$RUN/result" of="$RESULT_DRIVE" bs=4096 conv=notrunc,fsync 2>/dev/null
  sync
  poweroff -f
  exit 0
}

mkfifo "$RUN/ready.fifo"
node "$SHIM" machine >"$RUN/ready.fifo" &
shim=$!
# Opening the fifo waits for the shim to open it; read waits for its one line (EOF if it died first).
exec 3<"$RUN/ready.fifo"
if ! read -r ready <&3 || [ "$ready" != ready ]; then
  wait "$shim"
  fatal=$(cat "$RUN/fatal" 2>/dev/null)
  [ -n "$fatal" ] || fatal="the guest shim exited (status $?) before it was ready"
  finish
fi

fo_input=0
fo_output=0
. "$RUN/run.sh"

if [ "$fo_input" = 1 ]; then
  # The host may have swapped this drive in after boot (snapshot start): drop what the kernel cached of it.
  blockdev --flushbufs "$INPUT_DRIVE" 2>/dev/null
  if ! tar -x -f "$INPUT_DRIVE" -C "$FETCH_ORACLE_INPUT"; then
    fatal="cannot unpack the input drive into $FETCH_ORACLE_INPUT"
    kill -TERM "$shim"; wait "$shim"
    finish
  fi
fi

cd "$FETCH_ORACLE_INPUT" || cd /
# Its own session, so the shim can stop the whole command (every process it started) on a fatal block.
setsid "$@" </dev/null &
cmd=$!
echo "$cmd" >"$RUN/cmd.pid"
wait "$cmd"
status=$?
cd /

if [ -s "$RUN/fatal" ]; then
  fatal=$(cat "$RUN/fatal")
elif [ "$fo_output" = 1 ]; then
  set -o pipefail 2>/dev/null
  if ! output_bytes=$(tar -c -f - -C "$FETCH_ORACLE_OUTPUT" . | tee "$OUTPUT_DRIVE" | wc -c); then
    fatal="cannot write the output of $FETCH_ORACLE_OUTPUT to the output drive (larger than the drive?)"
    output_bytes=0
  fi
  set +o pipefail 2>/dev/null
  sync
fi

kill -TERM "$shim" 2>/dev/null
wait "$shim"
if [ -z "$fatal" ] && [ -s "$RUN/fatal" ]; then fatal=$(cat "$RUN/fatal"); fi
exec 3<&-
finish

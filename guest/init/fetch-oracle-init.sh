#!/bin/sh
# PLACEHOLDER init for the machine image (PID 1). The real init (mounts, shim, run.sh, result drive) is
# helper B's guest/init/fetch-oracle-init.sh, which replaces this file at merge. This one only mounts the
# kernel file systems, says it ran, and powers the machine off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo "fetch-oracle-init: placeholder init; nothing to run"
sync
poweroff -f

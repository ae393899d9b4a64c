#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, idempotently:
#   Debian packages (the real clients and sandbox tools the tests drive), npm packages, and Kubo.
# Usage: bash scripts/setup.sh        (as root, or with sudo for the apt step)
set -euo pipefail
cd "$(dirname "$0")/.."

# Command -> Debian package providing it.
declare -A NEED=(
  [curl]=curl [ip]=iproute2 [unshare]=util-linux [tar]=tar [openssl]=openssl [git]=git [gzip]=gzip
  [socat]=socat [gcc]=gcc [strace]=strace
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
command -v apt-get >/dev/null 2>&1 || missing+=(apt)
# fetch-oracle build: buildah (chroot isolation, vfs), debootstrap for the test base image, and a static
# busybox the build tests copy into a scratch image (a dynamic one would lack its libraries there).
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
# fetch-oracle machine image: mke2fs/debugfs/e2fsck (the ext2 image and its tests), qemu-user to list the
# riscv64 busybox's applets, and the Debian archive keys apt checks the mirror's InRelease with.
command -v mke2fs >/dev/null 2>&1 || [ -x /usr/sbin/mke2fs ] || [ -x /sbin/mke2fs ] || missing+=(e2fsprogs)
command -v qemu-riscv64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
# The Cartesi Machine emulator's runtime dependencies (shared/cartesi/README.md): its JSON-RPC server, which
# `machine run` drives, needs none; its Lua CLI, for trying a machine by hand, needs these.
for pkg in lua5.4 libslirp0 libgomp1 libstdc++6; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
# fetch-oracle report: its page is tested in a real browser (Debian's Chromium, driven by playwright-core).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
# pip drives the pip client tests (the machine's own python3 if it has pip, else Debian's).
if ! command -v python3 >/dev/null 2>&1; then missing+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The guest's cmio helper is cross-compiled for riscv64 (static) with Debian's cross toolchain.
if ! command -v riscv64-linux-gnu-gcc >/dev/null 2>&1 || [ ! -f /usr/riscv64-linux-gnu/lib/libc.a ]; then
  echo "setup: installing the riscv64 cross compiler"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("setup: Node >= 20.19 needed, found "+process.version); process.exit(1) }'
echo "setup: npm ci"
npm ci --no-audit --no-fund

echo "setup: building the guest (npm run build:guest)"
npm run build:guest

# The enclave's NSM helper: the static one for the image and the simulated-NSM build the tests use.
echo "setup: building the NSM helper (enclave/build.sh)"
bash enclave/build.sh all

# fetch-oracle provenance is checked by an independent verifier: the in-toto and securesystemslib packages
# from PyPI (test/provenance/in_toto_verify.py), pinned, installed only when missing.
if ! python3 -c 'import in_toto, securesystemslib' >/dev/null 2>&1; then
  echo "setup: pip install in-toto==3.1.0 securesystemslib==1.6.0"
  python3 -m pip install --quiet in-toto==3.1.0 securesystemslib==1.6.0 \
    || python3 -m pip install --quiet --break-system-packages in-toto==3.1.0 securesystemslib==1.6.0
fi

if [ -x test/kubo/kubo.sh ]; then
  echo "setup: building Kubo (test/kubo/kubo.sh build)"
  test/kubo/kubo.sh build
fi
echo "setup: done"

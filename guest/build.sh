#!/usr/bin/env bash
# Builds the guest side:
#   guest/dist/fetch-oracle-guest.mjs   the shim, one self-contained file (plain `node`, no node_modules)
#   guest/dist/cmio-helper-*            the cmio helper (guest/cmio/build.sh)
# Usage: guest/build.sh [all|host]   all = shim + riscv64 helper + host-sim helper (needs gcc-riscv64-linux-gnu);
#                                    host = shim + host-sim helper (what the tests need)
set -euo pipefail
mode="${1:-all}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p guest/dist
npx esbuild guest/main.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile=guest/dist/fetch-oracle-guest.mjs --metafile=guest/dist/meta.json --log-level=warning \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
# The shim must contain no network client, no record side and no signer: fail the build if one was bundled.
node -e '
  const inputs = Object.keys(require("./guest/dist/meta.json").inputs);
  const bad = inputs.filter((i) => /node_modules\/undici\/|node_modules\/tweetnacl\/|src\/upstream\/|kubo-rpc-client|src\/oracle\/record|src\/proxy\/record-handler|src\/proxy\/request-body|src\/store\/|src\/records\/|src\/cli\//.test(i));
  if (bad.length > 0) { console.error("guest bundle must not contain: " + bad.join(", ")); process.exit(1); }'
bash guest/cmio/build.sh "$mode"
printf 'guest/dist/fetch-oracle-guest.mjs: %s bytes\n' "$(stat -c %s guest/dist/fetch-oracle-guest.mjs)"

// Which code `bin/fetch-oracle.js` runs: the bundle `npm ci` builds (dist/fetch-oracle.mjs: faster start, ~40 MB
// less memory than a TypeScript loader) when it is newer than every source file; otherwise the sources through
// tsx, so an edited checkout never runs stale code. Shared with the benchmarks that run the CLI as users do.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const bundlePath = join(root, 'dist', 'fetch-oracle.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Whether the bundle exists and is at least as new as every file under src/. */
export function bundleIsFresh() {
  try {
    return statSync(bundlePath).mtimeMs >= newestSource(join(root, 'src'));
  } catch {
    return false;
  }
}

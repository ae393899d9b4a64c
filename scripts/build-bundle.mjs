// `npm run build`: bundles the CLI into dist/fetch-oracle.mjs plus one chunk per command (dist/chunks/), so a
// process loads only the code of the command it runs (issue #15). Built into dist.next, then swapped in, so
// a CLI started during a rebuild finds either the old build or the new one whole, never a half-written mix.
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const next = join(root, 'dist.next');
const dist = join(root, 'dist');
rmSync(next, { recursive: true, force: true });
await build({
  entryPoints: { 'fetch-oracle': join(root, 'src/cli/main.ts') },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir: next,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});
rmSync(dist, { recursive: true, force: true });
renameSync(next, dist);

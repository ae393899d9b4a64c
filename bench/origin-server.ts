// A benchmark origin in its own process: GET /big.bin (BIG bytes, each MiB distinct) and GET /small (4 KiB).
// GET /_first: when the first package request since the last /_first came in (ms since the epoch), and how many
// were answered: bench/seed.ts times each client from there to its exit, whatever runs it.
// Usage: node bin/run-ts.js bench/origin-server.ts BYTES   → prints `listening http://127.0.0.1:PORT`
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { entryBytes, packageBytes } from './package-bytes.ts';

const BIG = Number(process.argv[2] ?? 1024 * 1024 * 1024);
const block = Buffer.alloc(1024 * 1024);
for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
const small = Buffer.alloc(4096, 7);
const now = (): number => performance.timeOrigin + performance.now();
let packages = { first: 0, answered: 0 };

// The handler's promise is voided: nothing awaits a request; a failed write rejects and ends the benchmark.
const server = createServer((req, res) => void (async () => {
  // bench/seed.ts: npm-style tarballs /pkg/NAME/-/NAME-1.0.0.tgz, package number in NAME (bench/package-bytes.ts).
  if (req.url === '/_first') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(packages));
    packages = { first: 0, answered: 0 };
    return;
  }
  // bench/entries.ts: /entry/NAME/-/NAME-1.0.0.tgz, 4 KiB each, distinct.
  const pkg = /^\/(pkg|entry)\/p(\d+)\/-\//.exec(req.url ?? '');
  if (pkg !== null) {
    if (packages.first === 0) packages.first = now();
    res.once('finish', () => packages.answered++);
    const bytes = pkg[1] === 'pkg' ? packageBytes(Number(pkg[2])) : entryBytes(Number(pkg[2]));
    res.writeHead(200, { 'content-length': String(bytes.byteLength), 'content-type': 'application/octet-stream' });
    res.end(bytes);
    return;
  }
  if (req.url?.startsWith('/small')) {
    res.writeHead(200, { 'content-length': '4096', 'content-type': 'application/octet-stream' });
    res.end(small);
    return;
  }
  res.writeHead(200, { 'content-length': String(BIG), 'content-type': 'application/octet-stream' });
  for (let sent = 0; sent < BIG; sent += block.length) {
    // Vary each MiB so the store cannot deduplicate leaves.
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, BIG - sent)));
    if (chunk.length >= 4) chunk.writeUInt32BE(sent / block.length, 0);
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
  }
  res.end();
})());
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

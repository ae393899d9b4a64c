// The ceiling of one Node process on one core for what replay does, without the proxy: answers GET /NAME from
// DIR with node:http, in one of three modes, so that `replay-ceiling.ts` can set them beside nginx.
//   mem     the bytes from memory (read once at start): Node's HTTP and socket cost alone
//   read    each answer read from the file (1 MiB pieces into reused buffers, as replay reads its leaves)
//   verify  read, and SHA-256 of every piece compared with the one taken at start (replay's check of a block
//           against its CID on every read)
// It answers origin-form (`GET /f4k`) and absolute-form (`GET http://host/f4k`, a forward proxy's request) alike,
// so the anchors harness can measure it as one more forward-proxy column beside squid and the oracle.
// Usage: node bench/ceiling-server.mjs MODE DIR PORT
import { hash } from 'node:crypto';
import { openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const [mode, dir, port] = process.argv.slice(2);
if (!['mem', 'read', 'verify'].includes(mode ?? '') || dir === undefined || port === undefined) {
  process.stderr.write('usage: ceiling-server.mjs mem|read|verify DIR PORT\n');
  process.exit(2);
}
const PIECE = 1024 * 1024;
const sha = (bytes) => hash('sha256', bytes, 'buffer');
/** Per file: its size, its bytes (mem mode) and the SHA-256 of each 1 MiB piece (verify mode). */
const files = new Map();
for (const name of readdirSync(dir)) {
  const path = join(dir, name);
  const bytes = readFileSync(path);
  const digests = [];
  for (let off = 0; off < bytes.byteLength; off += PIECE) digests.push(sha(bytes.subarray(off, off + PIECE)));
  files.set(`/${name}`, { path, size: bytes.byteLength, bytes: mode === 'mem' ? bytes : undefined, digests, fd: openSync(path, 'r') });
}
/** Whole 1 MiB buffers the socket is done with, for the next piece (no garbage per piece). */
const free = [];

createServer((req, res) => {
  const target = req.url ?? '';
  const f = files.get(target.startsWith('/') ? target : URL.parse(target)?.pathname ?? '');
  if (f === undefined) {
    res.writeHead(404, { 'content-length': '0' });
    res.end();
    return;
  }
  res.writeHead(200, ['content-type', 'application/octet-stream', 'content-length', String(f.size)]);
  let off = 0;
  const next = () => {
    while (off < f.size) {
      const n = Math.min(PIECE, f.size - off);
      let piece;
      let whole;
      if (f.bytes !== undefined) piece = f.bytes.subarray(off, off + n);
      else {
        whole = n === PIECE ? (free.pop() ?? Buffer.allocUnsafeSlow(PIECE)) : Buffer.allocUnsafeSlow(n);
        piece = whole.subarray(0, readSync(f.fd, whole, 0, n, off));
        if (mode === 'verify' && !sha(piece).equals(f.digests[off / PIECE])) {
          res.destroy(new Error(`${f.path} changed`));
          return;
        }
      }
      off += n;
      const ok = res.write(piece, () => whole?.byteLength === PIECE && free.push(whole));
      if (!ok) {
        res.once('drain', next);
        return;
      }
    }
    res.end();
  };
  next();
}).listen(Number(port), '127.0.0.1');

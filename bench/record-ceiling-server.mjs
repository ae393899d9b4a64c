// The ceiling of one Node process on one core for what `record` must do on a miss, without the oracle: a
// forward proxy on node:http + undici (the oracle's own stack) that does only the contract's minimum, so that
// `record-miss.sh` can set it beside squid and `fetch-oracle record`. Modes, each adding to the one before:
//   pass    fetch the absolute URL upstream (one keep-alive pool per origin) and relay status, headers, body
//   store   + SHA-256 of the body (its raw-leaf CID) and the body written as a block file (temporary + rename,
//           sharded by digest, as the embedded store writes it)
//   record  + SHA-512 and the record (request, status, headers, digests, time: JSON here, DAG-CBOR in the
//           oracle) hashed and written as a second block file, ed25519-signed, and an index line and a journal
//           line appended, the answer sent only once one group fdatasync of both files has covered them
//   packed  record, with both blocks appended to one pack file (open once, a blocking write each) instead of a
//           file each: what packing small blocks into segments would save (no such format exists yet)
// Nothing else: no key normalisation, no run set, no log lines, no limits, no error answers worth the name.
// Usage: node bench/record-ceiling-server.mjs pass|store|record|packed DIR PORT
import { generateKeyPairSync, hash, sign } from 'node:crypto';
import { fdatasync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Pool } from 'undici';

const [mode, dir, port] = process.argv.slice(2);
if (!['pass', 'store', 'record', 'packed'].includes(mode ?? '') || dir === undefined || port === undefined) {
  process.stderr.write('usage: record-ceiling-server.mjs pass|store|record|packed DIR PORT\n');
  process.exit(2);
}
const blocks = join(dir, 'blocks');
mkdirSync(blocks, { recursive: true });
const made = new Set();
const written = new Set();
let tmpSeq = 0;
const pack = mode === 'packed' ? openSync(join(blocks, 'ceiling.pack'), 'a') : undefined;
/**
 * A block file as the embedded store writes one under 64 KiB: blocking temp write + rename into its shard,
 * skipped when this process wrote it already (the store checks that it is still there). Packed: appended.
 */
const putBlock = (digestHex, bytes) => {
  if (written.has(digestHex)) return;
  written.add(digestHex);
  if (pack !== undefined) {
    writeSync(pack, bytes); // its place (pack, offset, length) would go in the index line
    return;
  }
  const shard = join(blocks, digestHex.slice(-2));
  if (!made.has(shard)) {
    mkdirSync(shard, { recursive: true });
    made.add(shard);
  }
  const path = join(shard, digestHex);
  const tmp = `${path}.${tmpSeq++}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
};

const { privateKey } = generateKeyPairSync('ed25519');
const indexFd = openSync(join(dir, 'records.jsonl'), 'a');
const journalFd = openSync(join(dir, 'journal.jsonl'), 'a');
/** Group commit: one fdatasync of both files covers every line written before it started. */
let waiting = [];
let syncing = false;
const syncBoth = () =>
  Promise.all([indexFd, journalFd].map((fd) => new Promise((ok, no) => fdatasync(fd, (e) => (e ? no(e) : ok())))));
const durable = () =>
  new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    if (!syncing) void drain();
  });
async function drain() {
  syncing = true;
  while (waiting.length > 0) {
    const batch = waiting;
    waiting = [];
    try {
      await syncBoth();
      for (const w of batch) w.resolve();
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
  syncing = false;
}

/** Not relayed: hop-by-hop, and the length the answer sets itself. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);
const pools = new Map();
const poolFor = (origin) => {
  let pool = pools.get(origin);
  if (pool === undefined) pools.set(origin, (pool = new Pool(origin, { connections: 128 })));
  return pool;
};

createServer((req, res) => {
  void (async () => {
    const url = new URL(req.url ?? '');
    const up = await poolFor(url.origin).request({ method: 'GET', path: url.pathname + url.search, headers: { host: url.host } });
    const pieces = [];
    for await (const piece of up.body) pieces.push(piece);
    const body = Buffer.concat(pieces);
    const headers = Object.entries(up.headers).filter(([name]) => !HOP.has(name));
    if (mode !== 'pass') {
      const leaf = hash('sha256', body, 'hex');
      putBlock(leaf, body);
      if (mode !== 'store') {
        const fetchedAt = new Date().toISOString();
        const record = Buffer.from(
          JSON.stringify({ request: { method: 'GET', url: req.url }, status: up.statusCode, headers, body: leaf, size: body.byteLength, sha256: leaf, sha512: hash('sha512', body, 'base64'), fetchedAt }),
        );
        const recordDigest = hash('sha256', record, 'hex');
        putBlock(recordDigest, record);
        const signature = sign(null, Buffer.concat([Buffer.from('fetch-oracle/record/v1\n'), Buffer.from(recordDigest, 'hex')]), privateKey).toString('base64');
        writeSync(indexFd, `${JSON.stringify([recordDigest, signature])}\n`);
        writeSync(journalFd, `${JSON.stringify([`GET ${req.url}`, recordDigest, signature, fetchedAt])}\n`);
        await durable();
      }
    }
    res.writeHead(up.statusCode, [...headers.flatMap(([name, value]) => [name, String(value)]), 'content-length', String(body.byteLength)]);
    res.end(body);
  })().catch((e) => res.destroy(e));
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening ${port} ${mode}\n`));

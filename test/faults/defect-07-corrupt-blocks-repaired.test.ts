/**
 * Defect 7 (issue 13): a recorded body whose block was corrupt on disk stayed corrupt in record mode: every
 * later hit was cut at the same offset. Now record mode quarantines the bad block and fetches the request
 * again: the same bytes give the same CIDs (the block is put back, the record kept: the store is repaired),
 * other bytes are upstream mutation as usual. A corrupt block found before the head (a one-block body, the
 * first block of a larger one) is repaired for that very request; one found mid-stream fails that transfer
 * (its head is gone), and the next request gets the repaired body. Everything talks to 127.0.0.1 only.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { CHUNK_BYTES, rawLeafCid } from '../../src/protocol/unixfs.ts';
import { isQuarantined, locateBlock, tamperBlock } from '../helpers/blocks.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { cli, tempDir } from '../helpers/run.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const leafCid = (bytes: Uint8Array): string => rawLeafCid(createHash('sha256').update(bytes).digest()).toString();

describe('defect 7: record mode repairs a recorded body whose block is corrupt', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let t: TestOracle;
  let data: string;
  let netlock: string;
  const log: string[] = [];
  const one = Buffer.concat([...pseudoRandomChunks(100 * 1024, 71)]);
  const many = Buffer.concat([...pseudoRandomChunks(3 * CHUNK_BYTES + 500 * 1024, 72)]);
  const v1 = Buffer.from('version 1 of a changing document\n');
  const v2 = Buffer.from('version 2 of a changing document\n');
  let changed = false;
  let closed = false;

  const leaf = (i: number): Buffer => many.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
  /** A stored block's bytes as they lie on disk (its file, or its entry in a pack). */
  async function stored(cid: string): Promise<Buffer> {
    const where = await locateBlock(data, cid);
    const file = await open(where.path, 'r');
    try {
      const bytes = Buffer.alloc(where.length);
      const { bytesRead } = await file.read(bytes, 0, where.length, where.offset);
      return bytes.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }
  /** Flips one byte of a stored block, where it lies. */
  async function corrupt(cid: string): Promise<void> {
    const bytes = await stored(cid);
    const at = bytes.byteLength >> 1;
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await tamperBlock(data, cid, bytes);
  }

  async function get(path: string): Promise<{ status: number; body: Buffer; failed?: string }> {
    const res = await request(`${origin.url}${path}`, { dispatcher: t.agent });
    const chunks: Buffer[] = [];
    try {
      for await (const c of res.body) chunks.push(c as Buffer);
      return { status: res.statusCode, body: Buffer.concat(chunks) };
    } catch (err) {
      return { status: res.statusCode, body: Buffer.concat(chunks), failed: (err as Error).message };
    }
  }

  beforeAll(async () => {
    dir = await tempDir('fo-defect7-');
    data = join(dir.path, 'data');
    netlock = join(dir.path, 'repair.netlock.json');
    origin = await startOrigin();
    origin.route('/one', (_q, r) => void r.end(one));
    origin.route('/many', (_q, r) => {
      r.writeHead(200, { 'content-length': String(many.byteLength) });
      r.end(many);
    });
    origin.route('/many-first', (_q, r) => void r.end(many));
    origin.route('/changes', (_q, r) => void r.end(changed ? v2 : v1));
    t = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: netlock, logger: createLogger('oracle', (level, ns, line) => log.push(`${level} ${ns}: ${line}`)) });
    for (const path of ['/one', '/many', '/many-first', '/changes']) expect((await get(path)).status).toBe(200);
  }, 30_000);

  afterAll(async () => {
    if (!closed) await t?.close();
    await origin?.close();
    await dir?.remove();
  });

  it('a one-block body: the first request after the corruption already gets the whole body, fetched again; the block is repaired', async () => {
    const cid = leafCid(one);
    const good = await stored(cid);
    await corrupt(cid);
    const first = await get('/one');
    expect(first.failed).toBeUndefined();
    expect(first.status).toBe(200);
    expect(sha(first.body)).toBe(sha(one));
    expect(origin.hits.get('/one')).toBe(2);
    expect((await stored(cid)).equals(good)).toBe(true);
    expect(await isQuarantined(data, cid)).toBe(true);
    expect(log.join('\n')).toMatch(new RegExp(`block ${cid} quarantined`));
    // From the record again, whole, without the origin.
    const later = await get('/one');
    expect(sha(later.body)).toBe(sha(one));
    expect(origin.hits.get('/one')).toBe(2);
  });

  it('a block in the middle of a larger body: that transfer fails (never wrong bytes), the next request gets the repaired body', async () => {
    const cid = leafCid(leaf(2));
    const good = await stored(cid);
    await corrupt(cid);
    const cut = await get('/many');
    expect(cut.status).toBe(200);
    expect(cut.failed).toBeDefined();
    expect(cut.body.byteLength).toBeLessThanOrEqual(2 * CHUNK_BYTES);
    expect(cut.body.equals(many.subarray(0, cut.body.byteLength))).toBe(true);
    const next = await get('/many');
    expect(next.failed).toBeUndefined();
    expect(sha(next.body)).toBe(sha(many));
    expect(origin.hits.get('/many')).toBe(2);
    expect((await stored(cid)).equals(good)).toBe(true);
    const later = await get('/many');
    expect(sha(later.body)).toBe(sha(many));
    expect(origin.hits.get('/many')).toBe(2);
  }, 30_000);

  it('the first block of a larger body is checked before the head: that request already gets the whole body', async () => {
    await corrupt(leafCid(leaf(0)));
    const first = await get('/many-first');
    expect(first.failed).toBeUndefined();
    expect(sha(first.body)).toBe(sha(many));
    expect(origin.hits.get('/many-first')).toBe(2);
  }, 30_000);

  it('an origin that now sends other bytes: upstream mutation as usual, the new version answers', async () => {
    changed = true;
    await corrupt(leafCid(v1));
    const got = await get('/changes');
    expect(got.body.equals(v2)).toBe(true);
    expect(t.oracle.mutations.map((m) => ({ url: m.url, oldBody: m.oldBody, newBody: m.newBody }))).toEqual([{ url: `${origin.url}/changes`, oldBody: leafCid(v1), newBody: leafCid(v2) }]);
  });

  it('the netlock written afterwards verifies: every body in the store is whole again, no record changed but the mutated one', async () => {
    closed = true;
    await t.close();
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; body: string }> };
    expect(file.entries.map((e) => e.url.slice(origin.url.length))).toEqual(['/changes', '/many', '/many-first', '/one']);
    expect(file.entries.find((e) => e.url.endsWith('/changes'))?.body).toBe(leafCid(v2));
    const verified = await cli(['verify', netlock, '--data', data], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path } });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }, 60_000);
});

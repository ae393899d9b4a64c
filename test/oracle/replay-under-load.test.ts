/**
 * Issue #15, bad input under load: while 64 keep-alive connections hammer replay hits, a request for a URL the
 * netlock lacks still gets the explained 504, and a body block tampered on disk is refused (502 before the
 * head for a one-block body, a failed transfer for a later block of a larger one), never a 200 with wrong
 * bytes. Replay keeps verified records and request keys in memory, but reads and hashes every body block on
 * every answer: this is what shows it. No timings are asserted: the load runs until enough answers arrived.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { rawLeafCid } from '../../src/protocol/unixfs.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { tamperBlock } from '../helpers/blocks.ts';
import { startOrigin, pseudoRandomChunks } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { replayOfRecorded } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { expectReplayMiss } from '../helpers/replay-miss.ts';
import { tempDir } from '../helpers/run.ts';

const CONNECTIONS = 64;
const MIB = 1024 * 1024;

interface Got {
  status: number;
  code: string | undefined;
  body: Buffer;
  /** Set when the transfer failed after the head. */
  failed?: string;
}

async function get(agent: ProxyAgent, url: string): Promise<Got> {
  const res = await request(url, { dispatcher: agent });
  const code = res.headers['x-oracle-error'] as string | undefined;
  const chunks: Buffer[] = [];
  try {
    for await (const c of res.body) chunks.push(c as Buffer);
    return { status: res.statusCode, code, body: Buffer.concat(chunks) };
  } catch (err) {
    return { status: res.statusCode, code, body: Buffer.concat(chunks), failed: (err as Error).message };
  }
}

const leafCid = (bytes: Buffer): CID => rawLeafCid(createHash('sha256').update(bytes).digest());

/** The same bytes with one flipped: same length, another hash. */
const flipped = (bytes: Buffer): Buffer => {
  const out = Buffer.from(bytes);
  out[out.byteLength >> 1] = out[out.byteLength >> 1]! ^ 0x55;
  return out;
};

describe('replay under 64-connection load', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let replay: TestOracle;
  let data: string;
  const small = Buffer.concat([...pseudoRandomChunks(4096, 15)]);
  /** Another body of the same buffer class: answers of both reuse one pool, and each must stay its own. */
  const other = Buffer.concat([...pseudoRandomChunks(3000, 17)]);
  const big = Buffer.concat([...pseudoRandomChunks(3 * MIB + 77, 16)]);

  beforeAll(async () => {
    dir = await tempDir('fo-replay-load-');
    data = join(dir.path, 'data');
    const netlockPath = join(dir.path, 'netlock.json');
    origin = await startOrigin();
    origin.route('*', (q, r) => {
      const body = q.url === '/big' ? big : q.url === '/other' ? other : small;
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength) });
      r.end(body);
    });
    replay = await replayOfRecorded(origin, ['/small', '/small-too', '/other', '/big'], { dataDir: data, netlockPath });
  });

  afterAll(async () => {
    await replay?.close();
    await dir?.remove();
  });

  it('streams a multi-block body over concurrent connections byte for byte, again and again (its leaf buffers are reused)', async () => {
    const agent = new ProxyAgent({ uri: replay.proxyUrl, connections: 4 });
    try {
      for (let round = 0; round < 3; round++) {
        const got = await Promise.all(Array.from({ length: 4 }, () => get(agent, `${origin.url}/big`)));
        for (const g of got) {
          expect(g.failed).toBeUndefined();
          expect(g.body.byteLength).toBe(big.byteLength);
          expect(g.body.equals(big)).toBe(true);
        }
      }
    } finally {
      await agent.close();
    }
  });

  it('answers a miss with the explained 504 and refuses tampered blocks, never sending wrong bytes with a 200', async () => {
    const load = new ProxyAgent({ uri: replay.proxyUrl, connections: CONNECTIONS, pipelining: 1 });
    const seen = { ok: 0, refused: 0, wrong: 0, other: [] as string[] };
    let stop = false;
    /** Resolves once `n` more answers arrived: the load is known to be running at that point. */
    const waiters: Array<{ at: number; resolve: () => void }> = [];
    const answered = (): void => {
      const total = seen.ok + seen.refused;
      for (const w of waiters.splice(0)) {
        if (total >= w.at) w.resolve();
        else waiters.push(w);
      }
    };
    const after = (n: number): Promise<void> => new Promise((resolve) => waiters.push({ at: seen.ok + seen.refused + n, resolve }));
    const loop = async (n: number): Promise<void> => {
      while (!stop) {
        const [path, want] = n++ % 2 === 0 ? ['/small', small] : ['/other', other];
        const got = await get(load, `${origin.url}${path}`);
        if (got.status === 200 && got.failed === undefined) {
          if (got.body.equals(want)) seen.ok++;
          else seen.wrong++;
        } else if (got.status === 502 && got.code === 'ORACLE_ERR_BLOCK_CORRUPT') seen.refused++;
        else seen.other.push(`${got.status} ${got.code ?? ''} ${got.failed ?? ''}`);
        answered();
      }
    };
    const loops = Array.from({ length: CONNECTIONS }, (_, i) => loop(i));
    try {
      await after(2 * CONNECTIONS);

      // A miss, in the middle of the load: the whole explained answer.
      const missUrl = `${origin.url}/never-recorded`;
      const miss = await get(replay.agent, missUrl);
      expectReplayMiss({ status: miss.status, headers: { 'x-oracle-error': miss.code, 'x-fetch-oracle-miss': '1', 'content-type': 'text/plain; charset=utf-8' }, body: miss.body.toString() }, 'GET', missUrl);
      expect(miss.body.toString()).toMatch(new RegExp(`GET ${origin.url}/small`)); // the nearest recorded request

      // The hot one-block body, tampered in place on disk after thousands of good answers: refused from then on.
      await tamperBlock(data, leafCid(small), flipped(small));
      const refused = await get(replay.agent, `${origin.url}/small`);
      expect(refused.status, refused.body.toString()).toBe(502);
      expect(refused.code).toBe('ORACLE_ERR_BLOCK_CORRUPT');
      await after(CONNECTIONS);

      // A middle block of the larger body: the transfer fails after the head, it never completes with wrong bytes.
      const good = await get(replay.agent, `${origin.url}/big`);
      expect(good.failed).toBeUndefined();
      expect(good.body.equals(big)).toBe(true);
      await tamperBlock(data, leafCid(big.subarray(MIB, 2 * MIB)), flipped(big.subarray(MIB, 2 * MIB)));
      const broken = await get(replay.agent, `${origin.url}/big`);
      expect(broken.status).toBe(200);
      expect(broken.failed).toBeDefined();
      expect(broken.body.byteLength).toBeLessThan(big.byteLength);
      expect(broken.body.subarray(0, MIB).equals(big.subarray(0, MIB))).toBe(true);
    } finally {
      stop = true;
      await Promise.all(loops);
      await load.close();
    }
    expect(seen.wrong).toBe(0);
    expect(seen.other).toEqual([]);
    expect(seen.ok).toBeGreaterThan(2 * CONNECTIONS);
    expect(seen.refused).toBeGreaterThan(0);
  }, 120_000);

  it('keeps answering from a verified record whose block changed on disk since, and reads a body repaired by rename afresh', async () => {
    // Its body is the block tampered above. The host keeps a verified record from its entry's second answer on.
    for (let i = 0; i < 2; i++) expect((await replay.fetch(`${origin.url}/small-too`)).status).toBe(502);
    const file = JSON.parse(await readFile(join(dir.path, 'netlock.json'), 'utf8')) as { entries: Array<{ url: string; record: string }> };
    const record = file.entries.find((e) => e.url.endsWith('/small-too'))!.record;
    await tamperBlock(data, record, 'not a record');
    // The body repaired as a store repairs a block (record mode, issue 13 defect 7): the bad copy set aside,
    // the good one written again by another store object (a new pack entry, or another file renamed into
    // place). Replay reads it afresh: the answer that failed its hash made it drop the file it held open, and a
    // pack entry set aside is looked for again in the packs.
    const repairer = new FsBlockStore(data);
    try {
      await repairer.quarantine(leafCid(small));
      await repairer.put(leafCid(small), small);
    } finally {
      await repairer.close();
    }
    const again = await replay.fetch(`${origin.url}/small-too`);
    expect(again.status).toBe(200);
    expect(again.body.equals(small)).toBe(true);
  });
});

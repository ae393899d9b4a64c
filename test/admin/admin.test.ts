import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { createAdminApp } from '../../src/admin/app.ts';
import { AdminServer } from '../../src/admin/server.ts';
import { importCar } from '../../src/netlock/import-car.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { verifyNetlock } from '../../src/netlock/verify.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { errorFromCode, InternalError, UnauthorizedError } from '../../src/errors.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';

describe('admin API', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let oracle: TestOracle;
  let admin: string;

  beforeAll(async () => {
    dir = await tempDir('fo-admin-');
    origin = await startOrigin();
    origin.route('/pkg', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.end('{"ok":true}');
    });
    oracle = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data'), admin: { host: '127.0.0.1', port: 0 } });
    const a = oracle.oracle.adminAddress()!;
    admin = `http://127.0.0.1:${a.port}`;
    await oracle.fetch(`${origin.url}/pkg`, { headers: { accept: 'application/json' } });
    await oracle.fetch(`${origin.url}/pkg`, { headers: { accept: 'application/json' } });
  });

  afterAll(async () => {
    await oracle.close();
    await origin.close();
    await dir.remove();
  });

  it('serves /healthz, /stats, /records?url= and /netlock of the run so far', async () => {
    expect(await (await fetch(`${admin}/healthz`)).json()).toEqual({ ok: true });
    const stats = (await (await fetch(`${admin}/stats`)).json()) as Record<string, number>;
    expect(stats).toMatchObject({ mode: 'record', requests: 2, hits: 1, misses: 1, upstreamFetches: 1 });
    expect(stats['bytesRecorded']).toBe(11);
    const records = (await (await fetch(`${admin}/records?url=${encodeURIComponent(`${origin.url}/pkg`)}`)).json()) as {
      records: Array<{ request: { method: string; headers: Record<string, string> }; response: { status: number; size: number; headers: string[][] } }>;
    };
    expect(records.records).toHaveLength(1);
    expect(records.records[0]!.request).toMatchObject({ method: 'GET', headers: { accept: 'application/json' } });
    expect(records.records[0]!.response).toMatchObject({ status: 200, size: 11 });
    const netlock = (await (await fetch(`${admin}/netlock`)).json()) as { count: number; netlock: string };
    expect(netlock.count).toBe(1);
    expect(netlock.netlock).toMatch(/^bafy/);
    const bad = await fetch(`${admin}/records`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'ORACLE_ERR_BAD_REQUEST' });
  });

  it('streams /netlock.car: the run so far with every record and body, importable into an empty store where it verifies', async () => {
    const res = await fetch(`${admin}/netlock.car`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.ipld.car; version=1');
    const root = res.headers.get('x-fetch-oracle-netlock')!;
    const netlock = (await (await fetch(`${admin}/netlock`)).json()) as { netlock: string };
    expect(root).toBe(netlock.netlock);
    const car = new Uint8Array(await res.arrayBuffer());
    const store = new MemoryBlockStore();
    // eslint-disable-next-line @typescript-eslint/require-await -- an in-memory CAR as the AsyncIterable importCar reads
    const imported = await importCar((async function* () { yield car; })(), store);
    expect(imported.root.toString()).toBe(root);
    const key = (await LocalSigner.publicKeyIn(join(dir.path, 'data')))!;
    const report = await verifyNetlock(CID.parse(root), store, [key]);
    expect(report).toMatchObject({ entries: 1, bodyBytes: 11, failures: [] });
    // Cut short (as when the oracle fails mid-stream), the CAR is refused and nothing lands.
    const partial = new MemoryBlockStore();
    // eslint-disable-next-line @typescript-eslint/require-await -- an in-memory CAR as the AsyncIterable importCar reads
    await expect(importCar((async function* () { yield car.subarray(0, car.byteLength - 5); })(), partial)).rejects.toMatchObject({ code: expect.stringMatching(/^ORACLE_ERR_/) as unknown });
    expect(partial.cids()).toEqual([]);
  });

  it('requires the bearer token when one is set, except for /healthz', async () => {
    const app = createAdminApp({ stats: () => ({ n: 1 }), recordsForUrl: () => Promise.resolve([]), netlock: () => Promise.resolve({}), caPem: () => 'PEM', token: 'x'.repeat(32) });
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/stats')).status).toBe(401);
    const refused = await app.request('/stats', { headers: { authorization: 'Bearer wrong' } });
    expect(refused.status).toBe(401);
    const body = (await refused.json()) as { code: string; message: string };
    expect(errorFromCode(body.code, body.message)).toBeInstanceOf(UnauthorizedError);
    expect(await (await app.request('/stats', { headers: { authorization: `Bearer ${'x'.repeat(32)}` } })).json()).toEqual({ n: 1 });
  });

  it('answers a failure that is not an OracleError as 500 ORACLE_ERR_INTERNAL, read back as InternalError', async () => {
    const app = createAdminApp({ stats: () => { throw new TypeError('stats broke'); }, recordsForUrl: () => Promise.resolve([]), netlock: () => Promise.resolve({}), caPem: () => 'PEM' });
    const res = await app.request('/stats');
    expect(res.status).toBe(500);
    const body = (await res.json()) as { code: string; message: string };
    expect(body).toEqual({ code: 'ORACLE_ERR_INTERNAL', message: 'stats broke' });
    expect(errorFromCode(body.code, body.message)).toBeInstanceOf(InternalError);
  });

  it('refuses to bind off loopback without a token', async () => {
    const deps = { stats: () => ({}), recordsForUrl: () => Promise.resolve([]), netlock: () => Promise.resolve({}), caPem: () => '' };
    await expect(AdminServer.start({ host: '0.0.0.0', port: 0 }, deps)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_CONFIG' });
  });

  it('streams /netlock as the very file the run then writes, leaving no temporary file, and for a replay its netlock file', async () => {
    const d = await tempDir('fo-admin-netlock-');
    try {
      const netlockPath = join(d.path, 'build.netlock.json');
      const rec = await startTestOracle({ mode: 'record', dataDir: join(d.path, 'data'), netlockPath, admin: { host: '127.0.0.1', port: 0 } });
      const url = `http://127.0.0.1:${rec.oracle.adminAddress()!.port}/netlock`;
      let soFar: string;
      try {
        for (const n of [1, 2, 3]) expect((await rec.fetch(`${origin.url}/pkg?n=${n}`)).status).toBe(200);
        const res = await fetch(url);
        expect(res.headers.get('content-type')).toBe('application/json');
        soFar = await res.text();
        expect((JSON.parse(soFar) as { count: number }).count).toBe(3);
        expect((await readdir(d.path)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
        expect((await readdir(join(d.path, 'data'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      } finally {
        await rec.close();
      }
      expect(await readFile(netlockPath, 'utf8')).toBe(soFar);

      const rep = await startTestOracle({ mode: 'replay', dataDir: join(d.path, 'data'), netlockPath, admin: { host: '127.0.0.1', port: 0 } });
      try {
        expect(await (await fetch(`http://127.0.0.1:${rep.oracle.adminAddress()!.port}/netlock`)).text()).toBe(soFar);
      } finally {
        await rep.close();
      }
    } finally {
      await d.remove();
    }
  });
});

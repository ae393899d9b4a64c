import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import { verifyNetlockPath } from '../../src/netlock/verify-file.ts';
import { encodeRecord } from '../../src/protocol/record.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { buildFixtureNetlock, pseudoRandomBytes } from '../netlock/netlock-fixture.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, tempDir } from '../helpers/run.ts';

async function storeFiles(data: string): Promise<string[]> {
  const out: string[] = [];
  const blocks = join(data, 'blocks');
  for (const shard of await readdir(blocks)) for (const f of await readdir(join(blocks, shard))) out.push(join(blocks, shard, f));
  return out.sort();
}

/** The pid of a process that has exited (so temp files named after it are stale). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

/**
 * Defect 11 of issue 13: orphan blocks and temp files were never cleaned (1.1 GiB on disk for 22 MB of
 * recorded bodies after the fault run). `fetch-oracle gc` keeps every block a record or netlock needs and
 * removes the rest; start-up removes temp files of processes that are gone. After gc every netlock still
 * verifies and replays.
 */
describe('defect 11: gc and stale temp files', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let version = 1;
  // TMPDIR goes along: gc looks for stale body spools in the temporary directory this test writes one to.
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path, ...(process.env['TMPDIR'] === undefined ? {} : { TMPDIR: process.env['TMPDIR'] }) });

  beforeAll(async () => {
    dir = await tempDir('fo-d11-');
    origin = await startOrigin();
    origin.route('/a', (_q, r) => void r.end(Buffer.alloc(3 * 1024 * 1024 + 5, 1))); // a multi-block body
    origin.route('/b', (_q, r) => void r.end('small b\n'));
    origin.route('/m', (_q, r) => void r.end(`mutable v${version}\n`));
  });
  afterAll(async () => {
    await origin.close();
    await dir.remove();
  });

  it('removes only what nothing needs; every netlock still verifies and replays', async () => {
    const data = join(dir.path, 'data');
    const outside = join(dir.path, 'outside.netlock.json'); // passed with --keep
    const inside = join(data, 'builds', 'inside.netlock.json'); // found in the data directory
    await mkdir(join(data, 'builds'), { recursive: true });
    const rec1 = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: outside });
    for (const p of ['/a', '/b', '/m']) expect((await rec1.fetch(`${origin.url}${p}`)).status).toBe(200);
    await rec1.close();
    // The origin changes /m; a --refresh run records a new version (the old one stays what `outside` names).
    version = 2;
    const rec2 = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: inside, refresh: true });
    expect((await rec2.fetch(`${origin.url}/m`)).body.toString()).toBe('mutable v2\n');
    await rec2.close();
    // A netlock imported from elsewhere (its records are in no index; its file lives anywhere, not given).
    const store = new FsBlockStore(data);
    const imported = await buildFixtureNetlock([{ url: 'https://files.example/imported.tgz', bodyBytes: 2 * 1024 * 1024 + 3 }], store);
    const importedPath = join(dir.path, 'elsewhere.netlock.json');
    await writeFile(importedPath, renderNetlockFile(imported.file));

    // Garbage: a multi-block body nothing names (a crashed import), a record never signed or indexed,
    // stale temp files of a dead process, a quarantined block, and a temp file of a live process.
    const orphanBody = await importBody(pseudoRandomBytes('orphan', 2 * 1024 * 1024 + 100), store);
    const orphanRecord = await encodeRecord({ ...imported.entries[0]!.record, fetchedAt: '2020-01-01T00:00:00.000Z' });
    await store.put(orphanRecord.cid, orphanRecord.bytes);
    const dead = deadPid();
    const shard = join(data, 'blocks', 'zz');
    await mkdir(shard, { recursive: true });
    const deadTmp = join(shard, `bafkreifake.${dead}.0.tmp`);
    const liveTmp = join(shard, `bafkreifake.${process.pid}.0.tmp`);
    await writeFile(deadTmp, Buffer.alloc(4096));
    await writeFile(liveTmp, Buffer.alloc(10));
    await writeFile(join(shard, 'bafkreicorrupt.corrupt'), 'bad');
    const spool = join(tmpdir(), `fetch-oracle-body-${dead}-d11${process.pid}`);
    await writeFile(spool, Buffer.alloc(2048));
    const orphans = [orphanBody.cid, orphanRecord.cid];
    await store.close(); // seals the pack it wrote: gc rewrites only packs nothing appends to any more

    // Fresh orphans are kept by the default --min-age (a record run may be importing them).
    const young = await cli(['gc', '--data', data, '--keep', outside, '--dry-run'], { env: env() });
    expect(young.code, young.stderr).toBe(0);
    expect(young.stdout).toMatch(/would remove: 0 unreferenced block/);
    expect(young.stdout).toMatch(/kept \(younger than --min-age\): \d+ unreferenced block/);
    // Everything two hours old (block files, and packs: a packed block is as old as its pack).
    for (const f of await storeFiles(data)) {
      if (!f.endsWith('.tmp') && !f.endsWith('.corrupt')) {
        const old = new Date(Date.now() - 2 * 3600_000);
        await utimes(f, old, old);
      }
    }
    const before = await storeFiles(data);
    const dry = await cli(['gc', '--data', data, '--keep', outside, '--dry-run', '--json'], { env: env() });
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout) as { removed: { count: number; bytes: number }; temp: { count: number }; quarantined: { count: number }; roots: { netlockFiles: string[]; storedNetlocks: number } };
    expect(await storeFiles(data)).toEqual(before); // a dry run removes nothing
    expect(planned.removed.count).toBe(5); // orphan body: 3 leaves + 1 root node; the orphan record
    // The dead store temp file (and the dead spool, unless another oracle starting meanwhile removed it first).
    expect(planned.temp.count).toBeGreaterThanOrEqual(1);
    expect(planned.quarantined.count).toBe(1);
    expect(planned.roots.netlockFiles).toEqual(expect.arrayContaining([outside, join('builds', 'inside.netlock.json')]));
    expect(planned.roots.storedNetlocks).toBe(3);

    const real = await cli(['gc', '--data', data, '--keep', outside], { env: env() });
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/removed: 5 unreferenced block\(s\)/);
    for (const p of [deadTmp, spool, join(shard, 'bafkreicorrupt.corrupt')]) await expect(stat(p), p).rejects.toThrow(/ENOENT/);
    const after = new FsBlockStore(data);
    for (const cid of orphans) expect(await after.has(cid), cid.toString()).toBe(false);
    await after.close();
    await stat(liveTmp); // a live process's temp file stays

    // Every netlock still verifies, all of its blocks present.
    for (const path of [outside, inside, importedPath]) {
      const report = await verifyNetlockPath(path, new FsBlockStore(data), undefined);
      expect(report.failures, path).toEqual([]);
      expect(report.entries).toBeGreaterThan(0);
    }
    // ... and replays byte for byte.
    const rep = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: outside });
    try {
      const a = await rep.fetch(`${origin.url}/a`);
      expect(createHash('sha256').update(a.body).digest('hex')).toBe(createHash('sha256').update(Buffer.alloc(3 * 1024 * 1024 + 5, 1)).digest('hex'));
      expect((await rep.fetch(`${origin.url}/m`)).body.toString()).toBe('mutable v1\n');
    } finally {
      await rep.close();
    }
    const rep2 = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: importedPath, trust: [imported.signer.publicKey] });
    try {
      expect((await rep2.fetch('https://files.example/imported.tgz')).body.byteLength).toBe(2 * 1024 * 1024 + 3);
    } finally {
      await rep2.close();
    }
    // The record index still answers without the origin.
    const hits = origin.requests.length;
    const rec3 = await startTestOracle({ mode: 'record', dataDir: data });
    try {
      expect((await rec3.fetch(`${origin.url}/b`)).body.toString()).toBe('small b\n');
      expect((await rec3.fetch(`${origin.url}/m`)).body.toString()).toBe('mutable v2\n');
    } finally {
      await rec3.close();
    }
    expect(origin.requests.length).toBe(hits);
  }, 120_000);

  it('a block file gc removed is stored again when a running process puts the same bytes again', async () => {
    // Block files (packs are off here; test/store/block-packs.test.ts has the same for a packed block).
    const store = new FsBlockStore(join(dir.path, 'rewrite'), { packBelow: 0 });
    const first = await importBody([new Uint8Array([1, 2, 3])], store);
    await rm(store.pathOf(first.cid)); // what gc does to a block nothing needed (an aborted download)
    const again = await importBody([new Uint8Array([1, 2, 3])], store); // the same body, fetched again
    expect(again.cid.equals(first.cid)).toBe(true);
    await stat(store.pathOf(first.cid));
  });

  it('removes stale temp files of processes that are gone at start-up', async () => {
    const data = join(dir.path, 'start-data');
    const netlock = join(dir.path, 'start.netlock.json');
    const dead = deadPid();
    const shard = join(data, 'blocks', 'ab');
    await mkdir(shard, { recursive: true });
    const stale = [join(shard, `bafkreistale.${dead}.3.tmp`), join(tmpdir(), `fetch-oracle-body-${dead}-5e${process.pid}`), `${netlock}.${dead}.0a1b2c3d.tmp`];
    const live = join(shard, `bafkreilive.${process.pid}.1.tmp`);
    for (const p of [...stale, live]) await writeFile(p, 'x');
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: netlock });
    await rec.close();
    for (const p of stale) await expect(stat(p), p).rejects.toThrow(/ENOENT/);
    expect(await readFile(live, 'utf8')).toBe('x');
  });
});

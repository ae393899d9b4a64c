import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DecodedEntry } from '../../src/netlock/file.ts';
import { buildNetlockFile, renderNetlockFile, writeNetlockFile } from '../../src/netlock/file.ts';
import { RunSet } from '../../src/oracle/run-set.ts';
import type { RunSetOptions } from '../../src/oracle/run-set.ts';
import { encodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import { RunJournal } from '../../src/records/journal.ts';
import { entryRow } from '../../src/report/model.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { tempDir } from '../helpers/run.ts';
import { buildFixtureNetlock, FIXTURE_SEED, manySmallResponses } from '../netlock/netlock-fixture.ts';

let dir: { path: string; remove(): Promise<void> };
beforeEach(async () => {
  dir = await tempDir('fo-run-set-');
});
afterEach(async () => {
  await dir.remove();
});

/** A signed record with many request and response headers, as a real origin answers (a redirect here). */
async function redirectEntry(signer: LocalSigner, store: MemoryBlockStore): Promise<DecodedEntry> {
  const key = computeRequestKey({ method: 'GET', url: 'https://example.test/old', headers: { accept: 'text/html' } });
  const record: FetchRecord = {
    v: 1,
    request: { method: 'GET', url: 'https://example.test/old', headers: { accept: 'text/html', 'user-agent': 'curl/8' } },
    response: {
      status: 301,
      headers: [['Date', 'Fri, 04 Dec 2026 11:38:21 GMT'], ['Server', 'nginx'], ['Location', 'https://example.test/new'], ['Content-Type', 'text/html'], ['ETag', '"abc"'], ['X-Fetch-Oracle-Upstream-Failure', 'none, a test']],
      body: null,
      size: 0,
      sha256: new Uint8Array(32).fill(1),
      sha512: new Uint8Array(64).fill(2),
    },
    fetchedAt: '2026-12-04T11:38:21.000Z',
    oracle: signer.publicKey,
  };
  const block = await encodeRecord(record);
  await store.put(block.cid, block.bytes);
  return { key: key.id, signed: await signer.sign(block.cid), record };
}

describe.each([
  { held: 'in the heap', spill: false },
  { held: 'in a scratch file', spill: true },
])('RunSet holding summaries of what a run served (issue #15: a run of 100,000 requests), $held', ({ spill }) => {
  const runs: RunSet[] = [];
  const newRun = (journal?: RunJournal, options: Omit<RunSetOptions, 'journal' | 'spillDir'> = {}): RunSet => {
    const run = new RunSet({ ...options, journal, spillDir: spill ? dir.path : undefined });
    runs.push(run);
    return run;
  };
  afterEach(() => {
    for (const run of runs.splice(0)) run.close();
  });

  it('writes the netlock and report rows the decoded entries give, holding none of the headers they do not read', async () => {
    const store = new MemoryBlockStore();
    const signer = LocalSigner.fromSeed(FIXTURE_SEED);
    const fixture = await buildFixtureNetlock([{ url: 'https://example.test/a', bodyBytes: 3000 }, { url: 'https://example.test/empty', bodyBytes: null }, { url: 'https://example.test/big', bodyBytes: 1024 * 1024 + 5 }], store, signer);
    const full = [...fixture.entries, await redirectEntry(signer, store)];
    const journal = new RunJournal(join(dir.path, 'run.netlock.json'));
    const run = newRun(journal);
    for (const e of full) await run.add(e);
    await run.add(full[0]!); // served again: held once, journalled once

    const held = run.entries();
    expect(held.map((e) => e.key)).toEqual(full.map((e) => e.key));
    expect(renderNetlockFile(await buildNetlockFile(held, new MemoryBlockStore()))).toBe(renderNetlockFile(await buildNetlockFile(full, new MemoryBlockStore())));
    expect(held.map(entryRow)).toEqual(full.map(entryRow));
    const redirect = held[3]!.record;
    expect(redirect.response.headers).toEqual([['Location', 'https://example.test/new'], ['Content-Type', 'text/html'], ['X-Fetch-Oracle-Upstream-Failure', 'none, a test']]);
    expect('request' in redirect).toBe(false);
    expect(held.every((e) => e.record.oracle === held[0]!.record.oracle)).toBe(true); // one copy of the signer key

    const lines = (await readFile(journal.path, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(full.length);
    const written = await run.write(join(dir.path, 'run.netlock.json'), new MemoryBlockStore());
    expect(written.count).toBe(full.length);
    expect(await readFile(join(dir.path, 'run.netlock.json'), 'utf8')).toBe(renderNetlockFile(await buildNetlockFile(full, new MemoryBlockStore())));
    expect(await new RunJournal(join(dir.path, 'run.netlock.json')).recover()).toEqual({ entries: [], bad: [] });
  });

  it('replaces a key served again with another record, and keeps a served key over a kept one', async () => {
    const store = new MemoryBlockStore();
    const signer = LocalSigner.fromSeed(FIXTURE_SEED);
    const before = await buildFixtureNetlock([{ url: 'https://example.test/a', bodyBytes: 10, seed: 'one' }], store, signer);
    const after = await buildFixtureNetlock([{ url: 'https://example.test/a', bodyBytes: 10, seed: 'two' }], store, signer);
    const run = newRun();
    await run.add(before.entries[0]!);
    await run.add(after.entries[0]!);
    run.keep(before.entries);
    expect(run.size).toBe(1);
    const [only] = run.entries();
    expect(only!.signed.record.equals(after.entries[0]!.signed.record)).toBe(true);
    expect(only!.signed.signature).toEqual(after.entries[0]!.signed.signature);
    expect(only!.record.response.body?.equals(after.entries[0]!.record.response.body!)).toBe(true);
    expect(only!.record.response.sha256).toEqual(after.entries[0]!.record.response.sha256);
  });

  it('keeps the entries of a kept netlock, one at a time as read, under the ones it serves', async () => {
    const store = new MemoryBlockStore();
    const keptFixture = await buildFixtureNetlock([{ url: 'https://example.test/a', bodyBytes: 10, seed: 'old' }, { url: 'https://example.test/b', bodyBytes: 20 }], store, LocalSigner.fromSeed(new Uint8Array(32).fill(3)));
    const served = await buildFixtureNetlock([{ url: 'https://example.test/a', bodyBytes: 10, seed: 'new' }], store);
    const run = newRun();
    await run.add(served.entries[0]!);
    for (const e of keptFixture.entries) run.keep([e]);
    expect(run.size).toBe(2);
    const want = [served.entries[0]!, keptFixture.entries[1]!]; // two signers: the root lists both
    expect(renderNetlockFile(await buildNetlockFile(run.entries(), new MemoryBlockStore()))).toBe(renderNetlockFile(await buildNetlockFile(want, new MemoryBlockStore())));
    expect((await buildNetlockFile(run.entries(), new MemoryBlockStore())).oracles).toHaveLength(2);
  });

  it('writes, a page at a time, the very file and DAG the whole decoded entries give (three leaf pages under a branch)', async () => {
    const store = new MemoryBlockStore();
    const fixture = await buildFixtureNetlock(manySmallResponses(700, 16), store);
    const run = newRun();
    for (const e of [...fixture.entries].reverse()) await run.add(e); // served in another order than the keys'
    const rules = { 'registry.example': ['authorization'] };
    const paged = await run.write(join(dir.path, 'paged.json'), new MemoryBlockStore(), rules);
    const whole = await writeNetlockFile(join(dir.path, 'whole.json'), fixture.entries, new MemoryBlockStore(), { variantRules: rules });
    expect(paged.netlock).toBe(whole.netlock);
    expect(paged.count).toBe(700);
    expect(await readFile(join(dir.path, 'paged.json'), 'utf8')).toBe(await readFile(join(dir.path, 'whole.json'), 'utf8'));
    expect(await readFile(join(dir.path, 'whole.json'), 'utf8')).toBe(renderNetlockFile(whole));
  });

  it('builds the same netlock with its keys sorted seven at a time through the scratch directory', async () => {
    const store = new MemoryBlockStore();
    const fixture = await buildFixtureNetlock(manySmallResponses(700, 16), store);
    const run = newRun(undefined, { sortChunk: 7 });
    for (const e of [...fixture.entries].reverse()) await run.add(e);
    const whole = await writeNetlockFile(join(dir.path, 'whole.json'), fixture.entries, new MemoryBlockStore());
    expect(await run.head(new MemoryBlockStore())).toEqual(await run.write(join(dir.path, 'sorted.json'), new MemoryBlockStore()));
    expect(await readFile(join(dir.path, 'sorted.json'), 'utf8')).toBe(await readFile(join(dir.path, 'whole.json'), 'utf8'));
    expect((await readdir(dir.path)).sort()).toEqual(['sorted.json', 'whole.json']);
    expect(whole.count).toBe(700);
  });

  it('loses no entry when keys share their digest: each key finds, replaces and writes its own', async () => {
    const store = new MemoryBlockStore();
    const signer = LocalSigner.fromSeed(FIXTURE_SEED);
    const fixture = await buildFixtureNetlock(manySmallResponses(40, 16), store, signer);
    const again = await buildFixtureNetlock([{ url: fixture.entries[17]!.record.request.url, bodyBytes: 16, seed: 'again' }], store, signer);
    const run = newRun(undefined, { keyDigest: () => [1, 1], sortChunk: 5 }); // every key on one slot
    for (const e of fixture.entries.slice(0, 30)) await run.add(e);
    run.keep(fixture.entries.slice(20)); // 20..29 held already: only 30..39 are added
    await run.add(fixture.entries[3]!); // the same record again: nothing changes
    expect(run.version).toBe('0:40');
    await run.add(again.entries[0]!);
    expect(run.version).toBe('1:40');
    expect(fixture.entries.every((e) => run.has(e.key))).toBe(true);
    expect(run.has(`${fixture.entries[0]!.key}x`)).toBe(false);
    const want = fixture.entries.map((e, i) => (i === 17 ? again.entries[0]! : e));
    expect(run.entries().map((e) => e.signed.record.toString())).toEqual(want.map((e) => e.signed.record.toString()));
    await run.write(join(dir.path, 'shared.json'), new MemoryBlockStore());
    expect(await readFile(join(dir.path, 'shared.json'), 'utf8')).toBe(renderNetlockFile(await buildNetlockFile(want, new MemoryBlockStore())));
  });

  it('versions its entries for the live page: added ones from where an older version ends, a replaced one moves it', async () => {
    const store = new MemoryBlockStore();
    const signer = LocalSigner.fromSeed(FIXTURE_SEED);
    const fixture = await buildFixtureNetlock(manySmallResponses(5, 16), store, signer);
    const replacement = await buildFixtureNetlock([{ url: fixture.entries[1]!.record.request.url, bodyBytes: 16, seed: 'again' }], store, signer);
    const run = newRun();
    expect(run.version).toBe('0:0');
    for (const e of fixture.entries.slice(0, 3)) await run.add(e);
    const v3 = run.version;
    await run.add(fixture.entries[0]!); // served again, same record: nothing changes
    expect(run.version).toBe(v3);
    run.keep(fixture.entries.slice(3));
    expect(run.version).toBe('0:5');
    expect(run.entriesFrom(3).map((e) => e.key)).toEqual(fixture.entries.slice(3).map((e) => e.key));
    expect(run.entriesFrom(5)).toEqual([]);
    expect(run.entriesFrom(1, 3).map((e) => e.key)).toEqual(fixture.entries.slice(1, 3).map((e) => e.key));
    expect(run.entriesFrom(0).map((e) => e.key)).toEqual(run.entries().map((e) => e.key));
    await run.add(replacement.entries[0]!);
    expect(run.version).toBe('1:5');
  });

  it('gives the head of the netlock it would write without writing it, into any sink', async () => {
    const store = new MemoryBlockStore();
    const fixture = await buildFixtureNetlock(manySmallResponses(300, 16), store);
    const run = newRun();
    for (const e of fixture.entries) await run.add(e);
    let puts = 0;
    const head = await run.head({ put: () => Promise.resolve(void puts++) });
    const written = await run.write(join(dir.path, 'nl.json'), new MemoryBlockStore());
    expect(head).toEqual(written);
    expect(puts).toBeGreaterThan(2); // leaf pages, a branch, the root
  });

  it('writes the file of a run that served nothing, and leaves no scratch or temporary file behind', async () => {
    const run = newRun();
    const empty = await run.write(join(dir.path, 'empty.json'), new MemoryBlockStore());
    expect(empty.count).toBe(0);
    expect(await readFile(join(dir.path, 'empty.json'), 'utf8')).toBe(renderNetlockFile(await buildNetlockFile([], new MemoryBlockStore())));
    expect((await readdir(dir.path)).sort()).toEqual(['empty.json']);
  });
});

/**
 * `verifyNetlock` checks several entries at once (signatures on the thread pool, issue #15) and enters what it
 * found in the netlock's order: failures come in entry order, and every count is what a check one entry at a
 * time gives.
 */
import { CID } from 'multiformats/cid';
import { describe, expect, it } from 'vitest';
import { verifyNetlock } from '../../src/netlock/verify.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { buildFixtureNetlock, manySmallResponses } from './netlock-fixture.ts';

describe('verifyNetlock over many entries at once', () => {
  it('names every bad entry, in the netlock order, and counts the good ones', async () => {
    const store = new MemoryBlockStore();
    const fixture = await buildFixtureNetlock(manySmallResponses(60, 300), store);
    const entries = fixture.file.entries;
    // Bodies of entries spread over several windows of checks (neighbours included), and one record.
    const badBodies = new Set([3, 10, 11, 25, 47].map((i) => entries[i]!.body!));
    for (const body of badBodies) await store.put(CID.parse(body), new TextEncoder().encode('not the body'));
    const badRecord = entries[33]!.record;
    await store.put(CID.parse(badRecord), new TextEncoder().encode('not the record'));

    const report = await verifyNetlock(fixture.root, store, [fixture.signer.publicKey]);
    const bad = entries.filter((e) => badBodies.has(e.body!) || e.record === badRecord);
    expect(report.entries).toBe(60);
    expect(report.failures.map((f) => f.entry)).toEqual(bad.map((e) => `${e.method} ${e.url}`));
    expect(report.failures.every((f) => f.code === 'ORACLE_ERR_BLOCK_CORRUPT')).toBe(true);
    const good = entries.filter((e) => !bad.includes(e));
    expect(report.bodyBytes).toBe(good.reduce((n, e) => n + e.size, 0));
  });
});

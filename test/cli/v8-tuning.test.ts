/**
 * Batch commands cap V8's young generation (issue #15: `seed` of 200,000 entries held ~40 MB of young garbage
 * at its peak) and give a small old generation room (`seed` of 1,500 packages ran 16 full collections). Run in
 * child processes: both change V8 flags for the whole process.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_OLD_GENERATION_BYTES, BATCH_YOUNG_GENERATION_BYTES, growthPercentToReach } from '../../src/cli/v8-tuning.ts';
import { COMMANDS } from '../../src/cli/commands.ts';

const RUN_TS = resolve('bin/run-ts.js');

/**
 * A process that allocates for a while with much of it living through scavenges (a ring of recent objects),
 * which makes V8 grow its young generation; it prints the largest size the young generation had.
 */
const CHURN = `
import { getHeapSpaceStatistics } from 'node:v8';
import { tuneV8 } from ${JSON.stringify(resolve('src/cli/v8-tuning.ts'))};
tuneV8({ batch: process.argv[2] === 'batch' });
const ring = new Array(100_000);
let largest = 0;
for (let i = 0; i < 3_000_000; i++) {
  ring[i % ring.length] = { i, text: 'entry ' + i, list: [i, i + 1] };
  if (i % 10_000 === 0) {
    await new Promise((r) => setImmediate(r)); // the observer runs between turns
    largest = Math.max(largest, getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
  }
}
process.stdout.write(String(largest));
`;

/**
 * A process with ~20 MB of live data that reads 1.3 GB through 64 KiB buffers which die young, the way a seed
 * reads its bodies from sockets; given a resident size it gives the old generation room within it as batch
 * commands do. It prints how many full collections it ran.
 */
const READER = `
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { roomAboveLiveHeap, tuneV8 } from ${JSON.stringify(resolve('src/cli/v8-tuning.ts'))};
tuneV8();
if (process.argv[2] !== 'plain') roomAboveLiveHeap(${BATCH_OLD_GENERATION_BYTES}, Number(process.argv[2]));
let full = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++;
}).observe({ entryTypes: ['gc'] });
const live = Array.from({ length: 200_000 }, (_, i) => ({ i, text: 'kept ' + i }));
const reads = new Array(16);
for (let i = 0; i < 20_000; i++) {
  reads[i % reads.length] = new Uint8Array(65536);
  if (i % 100 === 0) await new Promise((r) => setImmediate(r)); // the observers run between turns
}
await new Promise((r) => setImmediate(r));
process.stdout.write(String(full) + ' ' + live.length);
`;

describe('the old generation of batch commands', () => {
  it('grows to the batch size while its live data is small, twice that data at most, and 25% past it', () => {
    const MB = 1024 * 1024;
    expect(growthPercentToReach(48 * MB, 12 * MB)).toBe(100); // 24 MB would leave 24 MB unused: capped at twice
    expect(growthPercentToReach(48 * MB, 32 * MB)).toBe(50);
    expect(growthPercentToReach(48 * MB, 40 * MB)).toBe(25); // 20% would be less than every process gets
    expect(growthPercentToReach(48 * MB, 200 * MB)).toBe(25);
    expect(growthPercentToReach(48 * MB, 0)).toBe(100);
  });

  it('runs fewer full collections with room than with 25% growth alone, unless the process is already as large as allowed', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fo-v8-old-'));
    try {
      await writeFile(join(dir, 'reader.mts'), READER);
      const fullCollections = (mode: 'plain' | number): number => {
        const r = spawnSync(process.execPath, [RUN_TS, join(dir, 'reader.mts'), String(mode)], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        return Number(r.stdout.split(' ')[0]);
      };
      // A child's count moves with the load on the machine (the concurrent marker's share of the CPUs): the
      // median of three rounds, each mode once per round, so one slow moment does not decide.
      const rounds = [0, 1, 2].map(() => ({ plain: fullCollections('plain'), room: fullCollections(1024 * 1024 * 1024), noRoomLeft: fullCollections(1024 * 1024) }));
      const median = (pick: (r: (typeof rounds)[number]) => number): number => rounds.map(pick).sort((a, b) => a - b)[1]!;
      const plain = median((r) => r.plain);
      const room = median((r) => r.room);
      const noRoomLeft = median((r) => r.noRoomLeft); // any process is larger than 1 MiB
      expect(plain).toBeGreaterThanOrEqual(6);
      expect(room).toBeLessThanOrEqual(plain / 2);
      expect(noRoomLeft).toBeGreaterThanOrEqual(room * 1.5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the young generation of batch commands', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fo-v8-'));
    await writeFile(join(dir, 'churn.mts'), CHURN);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const largestYoung = (mode: 'batch' | 'server'): number => {
    const r = spawnSync(process.execPath, [RUN_TS, join(dir, 'churn.mts'), mode], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return Number(r.stdout);
  };

  it('stays at the cap in a batch command, and grows past it otherwise', () => {
    expect(largestYoung('server')).toBeGreaterThan(BATCH_YOUNG_GENERATION_BYTES);
    expect(largestYoung('batch')).toBeLessThanOrEqual(BATCH_YOUNG_GENERATION_BYTES);
  });

  it('is applied to the commands that run through a data set, not to the proxies', () => {
    const batch = [...COMMANDS].filter(([, c]) => c.batch === true).map(([name]) => name);
    expect(batch).toEqual(expect.arrayContaining(['seed', 'import', 'export', 'gc', 'verify', 'lockfile', 'report']));
    for (const server of ['record', 'replay', 'run', 'build']) expect(batch).not.toContain(server);
  });
});

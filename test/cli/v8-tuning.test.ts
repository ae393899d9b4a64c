/**
 * Batch commands cap V8's young generation (issue #15: `seed` of 200,000 entries held ~40 MB of young garbage
 * at its peak). Run in child processes: the cap changes a V8 flag for the whole process.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_YOUNG_GENERATION_BYTES } from '../../src/cli/v8-tuning.ts';
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

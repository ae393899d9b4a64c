/**
 * The caller's signal: `seed` with its default concurrency of 16 printed Node's MaxListenersExceededWarning
 * (each record in flight listened on the caller's signal), and aborting it still stops the run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DecodedEntry } from '../../src/netlock/file.ts';
import { seed } from '../../src/seed/seeder.ts';
import type { SeedRecorder } from '../../src/seed/session.ts';
import type { SeedEntry } from '../../src/seed/types.ts';

const RECORDED = { record: { response: { status: 200, size: 1, headers: [] } } } as unknown as DecodedEntry;
const entries = (n: number): SeedEntry[] => Array.from({ length: n }, (_, i) => ({ source: { file: 'urls.txt', line: i + 1, name: `u${i}` }, url: `http://127.0.0.1:9/u${i}`, accept: '*/*', expect: [] }));

/** A recorder that, like the real one, listens on the signal it is given while a record is in flight. */
function listeningRecorder(onRecord: () => void = () => undefined, onDone: () => void = () => undefined): SeedRecorder {
  return {
    record: async (_request, options) => {
      const listener = (): void => undefined;
      options?.signal?.addEventListener('abort', listener);
      try {
        onRecord();
        await new Promise((resolve) => setTimeout(resolve, 2));
        return { entry: RECORDED, fetched: true };
      } finally {
        options?.signal?.removeEventListener('abort', listener);
        onDone();
      }
    },
    bodyReader: () => {
      throw new Error('no body is read here');
    },
  };
}

describe('seed and its caller signal', () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  afterEach(() => {
    process.off('warning', onWarning);
  });

  it('runs 16 records at once on one signal without a MaxListenersExceededWarning', async () => {
    process.on('warning', onWarning);
    let inFlight = 0;
    let most = 0;
    const recorder = listeningRecorder(
      () => (most = Math.max(most, ++inFlight)),
      () => inFlight--,
    );
    const result = await seed([{ entries: entries(64), resolvers: [], warnings: [] }], { recorder, concurrency: 16, signal: new AbortController().signal });
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    expect(result).toMatchObject({ total: 64, done: 64, failed: 0 });
    expect(most).toBe(16);
    expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
  });

  it('stops taking entries once the caller aborts', async () => {
    const stop = new AbortController();
    let records = 0;
    const recorder = listeningRecorder(() => {
      if (++records === 10) stop.abort();
    });
    const result = await seed([{ entries: entries(200), resolvers: [], warnings: [] }], { recorder, concurrency: 4, signal: stop.signal });
    expect(result.done).toBeGreaterThanOrEqual(10);
    expect(result.done).toBeLessThan(20);
  });
});

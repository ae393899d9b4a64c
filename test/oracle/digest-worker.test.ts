import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { BATCH_BYTES, DigestWorker, MAX_IN_FLIGHT_BYTES } from '../../src/oracle/digest-worker.ts';
import { pseudoRandomBytes } from '../netlock/netlock-fixture.ts';

const MiB = 1024 * 1024;

async function bytesOf(seed: string, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of pseudoRandomBytes(seed, length)) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('DigestWorker: whole-body sha256 and sha512', () => {
  const workers = new DigestWorker();
  afterAll(() => workers.close());

  // Around every boundary: empty, one byte, exactly one batch (hashed on this thread), one batch and a byte
  // (the worker), and more than may be in flight at once (the producer must wait for the worker).
  for (const size of [0, 1, BATCH_BYTES, BATCH_BYTES + 1, MAX_IN_FLIGHT_BYTES + 3 * BATCH_BYTES + 7]) {
    it(`gives node:crypto's digests for ${size} bytes, whatever the size hint says`, async () => {
      const body = await bytesOf(`body ${size}`, size);
      for (const sizeHint of [size, 10, 5 * BATCH_BYTES, 0, undefined]) {
        const job = workers.begin(sizeHint === undefined ? {} : { sizeHint });
        for await (const p of pseudoRandomBytes(`body ${size}`, size)) await job.update(p);
        const digests = await job.digest();
        expect(hex(digests.sha256), `hint ${sizeHint}`).toBe(createHash('sha256').update(body).digest('hex'));
        expect(hex(digests.sha512), `hint ${sizeHint}`).toBe(createHash('sha512').update(body).digest('hex'));
      }
    });
  }

  it('takes the sha256 it is given for a body hashed on this thread, and still computes the sha512', async () => {
    const body = await bytesOf('known', 5000);
    const known = new Uint8Array(32).fill(7); // not the body's: shows it was taken as given
    const job = workers.begin({ sizeHint: body.byteLength });
    await job.update(body);
    const digests = await job.digest({ sha256: known });
    expect(hex(digests.sha256)).toBe(hex(known));
    expect(hex(digests.sha512)).toBe(createHash('sha512').update(body).digest('hex'));
  });

  it('skips the sha256 when told it will be given (one raw leaf), and refuses a digest without it', async () => {
    const body = await bytesOf('given', 5000);
    const given = new Uint8Array(createHash('sha256').update(body).digest());
    const job = workers.begin({ sizeHint: body.byteLength, sha256Given: true });
    await job.update(body);
    const digests = await job.digest({ sha256: given });
    expect(hex(digests.sha256)).toBe(hex(given));
    expect(hex(digests.sha512)).toBe(createHash('sha512').update(body).digest('hex'));
    const without = workers.begin({ sizeHint: body.byteLength, sha256Given: true });
    await without.update(body);
    await expect(without.digest()).rejects.toThrow(/sha256Given/);
  });

  it('hashes a small body that comes in one chunk, in several, or in none alike (given sha256 or not)', async () => {
    const body = await bytesOf('pieces', 9000);
    for (const cuts of [[], [9000], [1, 9000], [4000, 4001, 9000]]) {
      for (const sha256Given of [false, true]) {
        const job = workers.begin({ sizeHint: body.byteLength, sha256Given });
        let from = 0;
        for (const to of cuts) {
          await job.update(body.subarray(from, to));
          from = to;
        }
        const seen = body.subarray(0, from);
        const given = new Uint8Array(createHash('sha256').update(seen).digest());
        const digests = await job.digest(sha256Given ? { sha256: given } : {});
        expect(hex(digests.sha256), `cuts ${cuts.join()}`).toBe(createHash('sha256').update(seen).digest('hex'));
        expect(hex(digests.sha512), `cuts ${cuts.join()}`).toBe(createHash('sha512').update(seen).digest('hex'));
      }
    }
  });

  it('refuses a body declared small once abandoned', async () => {
    const job = workers.begin({ sizeHint: 10 });
    await job.update(new Uint8Array(10));
    job.abandon();
    await expect(job.update(new Uint8Array(1))).rejects.toThrow(/abandoned/);
    await expect(job.digest()).rejects.toThrow(/abandoned/);
  });

  it('begins no job once closed, small or large', async () => {
    const closed = new DigestWorker();
    await closed.close();
    expect(() => closed.begin({ sizeHint: 10 })).toThrow(/closed/);
    expect(() => closed.begin()).toThrow(/closed/);
  });

  it('keeps concurrent jobs apart', async () => {
    const [a, b] = await Promise.all(
      ['one', 'two'].map(async (seed) => {
        const job = workers.begin();
        for await (const p of pseudoRandomBytes(seed, 5 * MiB + 3)) await job.update(p);
        return hex((await job.digest()).sha512);
      }),
    );
    expect(a).toBe(createHash('sha512').update(await bytesOf('one', 5 * MiB + 3)).digest('hex'));
    expect(b).toBe(createHash('sha512').update(await bytesOf('two', 5 * MiB + 3)).digest('hex'));
  });

  // Whole batch buffers come back from the worker and serve the next batch of any job: many bodies at once,
  // over more rounds than there are spare buffers, must still each get their own digests.
  it('keeps bodies apart while batch buffers are reused across jobs and rounds', async () => {
    for (const round of [1, 2, 3]) {
      const seeds = Array.from({ length: 6 }, (_, i) => [`round ${round} body ${i}`, (i + 1) * BATCH_BYTES + i * 4099] as const);
      const got = await Promise.all(
        seeds.map(async ([seed, size]) => {
          const job = workers.begin(round === 2 ? { sizeHint: size } : {});
          for await (const p of pseudoRandomBytes(seed, size)) await job.update(p);
          return hex((await job.digest()).sha256);
        }),
      );
      for (const [i, [seed, size]] of seeds.entries()) expect(got[i], seed).toBe(createHash('sha256').update(await bytesOf(seed, size)).digest('hex'));
    }
  });

  it('refuses the digest of an abandoned body, and serves the next job', async () => {
    const job = workers.begin();
    for await (const p of pseudoRandomBytes('abandoned', 3 * MiB)) await job.update(p);
    job.abandon();
    await expect(job.digest()).rejects.toThrow(/abandoned/);
    const next = workers.begin();
    for await (const p of pseudoRandomBytes('after', 3 * MiB)) await next.update(p);
    expect(hex((await next.digest()).sha256)).toBe(createHash('sha256').update(await bytesOf('after', 3 * MiB)).digest('hex'));
  });
});

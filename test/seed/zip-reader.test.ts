import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockMissingError } from '../../src/errors.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { checkBody } from '../../src/seed/check.ts';
import { goZipHash } from '../../src/seed/go-dirhash.ts';
import type { SeedEntry } from '../../src/seed/types.ts';
import { bodyRangeReader, readZipFiles } from '../../src/seed/zip-reader.ts';
import type { RangeReader } from '../../src/seed/zip-reader.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { run, tempDir } from '../helpers/run.ts';
import { buildZipForTest } from './zip-fixture.ts';

/** A RangeReader over bytes in memory. */
function memoryReader(bytes: Uint8Array): RangeReader {
  return {
    size: bytes.byteLength,
    read: (offset, length) => Promise.resolve(bytes.subarray(offset, offset + length)),
    // eslint-disable-next-line @typescript-eslint/require-await -- an in-memory RangeReader: stream() is an AsyncIterable with nothing to await
    stream: async function* (offset, length) {
      yield bytes.subarray(offset, offset + length);
    },
  };
}

/** A RangeReader over a UnixFS body in a block store (as SeedSession.bodyReader), counting block fetches. */
function storeReader(root: CID, size: number, store: MemoryBlockStore): { reader: RangeReader; fetches: () => number } {
  let fetches = 0;
  const source = { get: async (cid: CID) => (fetches++, store.get(cid)) };
  return { fetches: () => fetches, reader: bodyRangeReader(root, size, source) };
}

/** Hash1 written out independently of go-dirhash: sorted `sha256  name` lines, sha256, base64. */
function expectedH1(files: Record<string, Uint8Array | string>): string {
  const lines = Object.keys(files)
    .sort()
    .map((name) => `${createHash('sha256').update(files[name]!).digest('hex')}  ${name}\n`);
  return `h1:${createHash('sha256').update(lines.join('')).digest('base64')}`;
}

describe('readZipFiles / goZipHash (yauzl over a RangeReader)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let zipBytes: Buffer;
  const files: Record<string, Uint8Array | string> = {};
  beforeAll(async () => {
    dir = await tempDir('fo-zip-reader-');
    // A module-zip-like tree: many small deflated files, one incompressible 2.5 MiB file (stored by zip's
    // own choice), so the body spans three UnixFS leaves and the central directory sits in the last one.
    const root = join(dir.path, 'example.com', 'm@v1.0.0');
    await mkdir(join(root, 'sub'), { recursive: true });
    files['example.com/m@v1.0.0/go.mod'] = 'module example.com/m\n';
    files['example.com/m@v1.0.0/blob.bin'] = randomBytes(2.5 * 1024 * 1024);
    for (let i = 0; i < 300; i++) files[`example.com/m@v1.0.0/sub/f${String(i).padStart(3, '0')}.go`] = `package sub\n\nconst X${i} = ${i}\n`.repeat(1 + (i % 7));
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir.path, name), content);
    const out = join(dir.path, 'm.zip');
    const r = await run('zip', ['-q', '-X', '-D', '-r', out, 'example.com'], { cwd: dir.path });
    expect(r.code, r.stderr).toBe(0);
    zipBytes = await readFile(out);
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('hashes a zip made by the zip CLI, streamed from the block store with few block fetches', async () => {
    const store = new MemoryBlockStore();
    const body = await importBody([zipBytes], store);
    const { reader, fetches } = storeReader(body.cid, body.size, store);
    expect(await goZipHash(reader)).toBe(expectedH1(files));
    // 302 entries: every central directory record, local header and small entry would be a root + leaf
    // fetch (and a 1 MiB hash) without the reader's windows (1814 fetches with a single window; 8 with them).
    expect(fetches()).toBeLessThanOrEqual(12);
    const names: string[] = [];
    for await (const f of readZipFiles(memoryReader(zipBytes))) {
      names.push(f.name);
      for await (const _ of f.content); // drain
    }
    expect(names.sort()).toEqual(Object.keys(files).sort());
  });

  it('hashes the deflated zip the seed tests build by hand', async () => {
    const small = { 'example.com/m@v1.0.0/go.mod': 'module example.com/m\n', 'example.com/m@v1.0.0/m.go': 'package m\n' };
    expect(await goZipHash(memoryReader(buildZipForTest(small)))).toBe(expectedH1(small));
  });

  it('refuses truncated zips, a corrupt central directory and corrupt data with ORACLE_ERR_INVALID_ARCHIVE', async () => {
    const cases: Array<[string, Buffer]> = [];
    cases.push(['empty', Buffer.alloc(0)]);
    cases.push(['cut in the end record', zipBytes.subarray(0, zipBytes.length - 10)]);
    cases.push(['cut in half', zipBytes.subarray(0, zipBytes.length >> 1)]);
    const cdOffset = zipBytes.readUInt32LE(zipBytes.length - 22 + 16);
    const badCd = Buffer.from(zipBytes);
    badCd[cdOffset] = 0; // the first central directory record's signature
    cases.push(['a central directory record without its signature', badCd]);
    const badCount = Buffer.from(zipBytes);
    badCount.writeUInt16LE(0xfff0, badCount.length - 22 + 10); // more entries than the directory holds
    cases.push(['an entry count larger than the directory', badCount]);
    const goMod = zipBytes.indexOf('module example.com/m');
    expect(goMod).toBeGreaterThan(0); // stored: zip does not deflate a 21-byte file
    const badData = Buffer.from(zipBytes);
    badData[goMod] = 'M'.charCodeAt(0);
    cases.push(['data that does not match its CRC-32', badData]);
    cases.push(['not a zip at all', Buffer.from('<html>not found</html>')]);
    for (const [what, bytes] of cases) {
      const err = await goZipHash(memoryReader(bytes)).catch((e: unknown) => e);
      expect(err, what).toMatchObject({ code: 'ORACLE_ERR_INVALID_ARCHIVE', message: expect.stringMatching(/^not a readable zip file: /) as unknown });
    }
  });

  it('passes errors of the body itself through (a missing block is not a bad zip)', async () => {
    const missing = new BlockMissingError('bafkreiexample');
    const reader: RangeReader = {
      size: zipBytes.length,
      read: async () => Promise.reject(missing),
      // eslint-disable-next-line @typescript-eslint/require-await -- a RangeReader whose stream fails: nothing to await
      stream: async function* () {
        yield* [];
        throw missing;
      },
    };
    await expect(goZipHash(reader)).rejects.toBe(missing);
    // The directory reads fine, an entry's data does not.
    const dataFails: RangeReader = { ...memoryReader(zipBytes), stream: reader.stream.bind(reader) };
    await expect(goZipHash(dataFails)).rejects.toBe(missing);
  });

  it('checkBody names a body that is not a zip ORACLE_ERR_INVALID_ARCHIVE, never DIGEST_MISMATCH', async () => {
    const entry = { source: { file: 'go.sum', line: 3, name: 'example.com/m@v1.0.0' }, url: 'https://gp.example/m.zip', expect: [{ algorithm: 'go-h1', over: 'zip', value: expectedH1(files) }] } as unknown as SeedEntry;
    const record = { response: { sha256: new Uint8Array(32), sha512: new Uint8Array(64) } } as unknown as FetchRecord;
    await expect(checkBody(record, entry, entry.url, memoryReader(zipBytes))).resolves.toBeUndefined();
    const err = await checkBody(record, entry, entry.url, memoryReader(zipBytes.subarray(0, 1000))).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ORACLE_ERR_INVALID_ARCHIVE' });
    expect((err as Error).message).toMatch(/^go\.sum:3 example\.com\/m@v1\.0\.0: https:\/\/gp\.example\/m\.zip is not a readable zip file: .*; nothing recorded$/);
  });
});

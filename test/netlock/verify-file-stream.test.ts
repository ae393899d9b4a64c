/**
 * `verify FILE` reads a readable netlock as a stream beside the DAG (issue #15): any JSON layout and any
 * order of lines verify as JSON.parse would have them, and a file that is not JSON is refused, naming it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetlockFileStream } from '../../src/netlock/file-entries.ts';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import type { NetlockFile } from '../../src/netlock/file.ts';
import { verifyNetlockPath } from '../../src/netlock/verify-file.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { tempDir } from '../helpers/run.ts';
import { buildFixtureNetlock, manySmallResponses } from './netlock-fixture.ts';
import type { FixtureNetlock } from './netlock-fixture.ts';

describe('verify of a netlock file read as a stream', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: FsBlockStore;
  let fixture: FixtureNetlock;

  beforeAll(async () => {
    dir = await tempDir('fo-verify-stream-');
    store = new FsBlockStore(join(dir.path, 'data'));
    fixture = await buildFixtureNetlock(manySmallResponses(40, 100), store);
  });
  afterAll(async () => {
    await store.close();
    await dir.remove();
  });

  async function verifyText(name: string, text: string): Promise<Awaited<ReturnType<typeof verifyNetlockPath>>> {
    const path = join(dir.path, `${name}.netlock.json`);
    await writeFile(path, text);
    return verifyNetlockPath(path, store, [fixture.signer.publicKey]);
  }

  /** The file's fields but its entries. */
  const headOf = (file: NetlockFile): Omit<NetlockFile, 'entries'> => {
    const { entries: _entries, ...head } = file;
    return head;
  };

  const shuffled = (): NetlockFile => {
    const entries = [...fixture.file.entries];
    for (let i = 0; i < entries.length; i++) {
      const j = (i * 17 + 5) % entries.length;
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    return { ...fixture.file, entries };
  };

  it('accepts the file as written, its lines in any order, and any layout with the head after the entries', async () => {
    for (const [name, text] of [
      ['as-written', renderNetlockFile(fixture.file)],
      ['shuffled', renderNetlockFile(shuffled())],
      ['one-line, entries first', JSON.stringify({ entries: shuffled().entries, ...headOf(fixture.file) })],
    ] as const) {
      const report = await verifyText(name.replace(/\W+/g, '-'), text);
      expect(report.failures, name).toEqual([]);
      expect(report).toMatchObject({ entries: 40, fileChecked: true });
    }
  });

  it('names a line added, a line removed and a head field changed, wherever they are in the file', async () => {
    const file = shuffled();
    const [gone] = file.entries.splice(7, 1);
    file.entries.push({ ...file.entries[0]!, url: 'https://registry.example/smuggled.tgz' });
    const text = JSON.stringify({ entries: file.entries, ...headOf(file), count: 41 });
    const report = await verifyText('edited', text);
    const messages = report.failures.map((f) => `${f.entry}: ${f.message}`);
    expect(messages).toContainEqual(expect.stringMatching(/^netlock file: field "count" is 41 but the signed netlock says 40$/));
    expect(messages).toContainEqual(`GET ${gone!.url}: is in the signed netlock (accept "${gone!.accept}") but not in the file`);
    expect(messages).toContainEqual('GET https://registry.example/smuggled.tgz: entry 40 of the file is not in the signed netlock');
    expect(report.failures).toHaveLength(3);
  });

  it('checks the fields of a file that starts with more whitespace than one read', async () => {
    const file = shuffled();
    const text = `${' \n\t\r'.repeat(40_000)}${renderNetlockFile({ ...file, count: 41 })}`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(128 * 1024);
    const report = await verifyText('padded', text);
    expect(report.fileChecked).toBe(true);
    expect(report.failures.map((f) => f.message)).toEqual(['field "count" is 41 but the signed netlock says 40']);
  });

  it('says a file has no entries list, and refuses one cut short or followed by other bytes as not valid JSON', async () => {
    const whole = renderNetlockFile(fixture.file);
    const noList = await verifyText('no-list', JSON.stringify({ ...fixture.file, entries: { a: 1 } }));
    expect(noList.failures.map((f) => f.message)).toEqual(['has no "entries" list']);
    await expect(verifyText('cut', whole.slice(0, Math.floor(whole.length / 2)))).rejects.toThrow(/cut\.netlock\.json is not valid JSON/);
    const trailing = verifyText('trailing', `${whole}{}`);
    await expect(trailing).rejects.toThrow(/trailing\.netlock\.json is not valid JSON/);
    await expect(trailing).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_NETLOCK' });
  });

  it('yields the first entries before it has read the end of the file', async () => {
    // 600 entries (~300 KiB, over one 256 KiB read) and then bytes that are no JSON: those of the first read
    // come out before the error.
    const entries = Array.from({ length: 600 }, (_, i) => ({ ...fixture.file.entries[0]!, url: `https://registry.example/${'x'.repeat(200)}/${i}` }));
    const path = join(dir.path, 'streamed.netlock.json');
    await writeFile(path, `${JSON.stringify({ netlock: fixture.file.netlock, entries }).slice(0, -2)} not json`.padEnd(600_000, ' '));
    const seen: unknown[] = [];
    const stream = new NetlockFileStream(path);
    await expect(
      (async () => {
        for await (const e of stream.entries()) seen.push(e);
      })(),
    ).rejects.toThrow(/is not valid JSON/);
    expect(seen.length).toBeGreaterThan(300);
    expect(stream.head).toEqual({ netlock: fixture.file.netlock });
  });
});

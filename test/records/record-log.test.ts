import { appendFile, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import type { SignedRecord } from '../../src/protocol/signature.ts';
import { FsRecordIndex } from '../../src/records/fs-record-index.ts';
import { RunJournal } from '../../src/records/journal.ts';
import { RecordLog } from '../../src/records/record-log.ts';
import { tempDir } from '../helpers/run.ts';

// A line as the record index and the journal have always written it: existing files must keep opening.
const CID_TEXT = 'bafyreidqz2dr7cr5h62etpb4hlhgkr6o6aw7y5h74sgzcjjsu4sl7w7fxe';
const SIGNATURE = new Uint8Array(64).fill(7);
const KEY = 'https://example.test/a\nGET';
const GOLDEN_LINE = `{"key":"https://example.test/a\\nGET","record":"${CID_TEXT}","signature":"${Buffer.from(SIGNATURE).toString('base64')}"}\n`;
const signed: SignedRecord = { record: CID.parse(CID_TEXT), signature: SIGNATURE };

let dir: { path: string; remove(): Promise<void> };
beforeEach(async () => {
  dir = await tempDir('fo-record-log-');
});
afterEach(async () => {
  await dir.remove();
});

describe('RecordLog', () => {
  it('writes the line format existing data dirs and journals hold', async () => {
    const log = new RecordLog(join(dir.path, 'log.jsonl'));
    await log.append(KEY, signed);
    await log.close();
    expect(await readFile(log.path, 'utf8')).toBe(GOLDEN_LINE);
    expect((await stat(log.path)).mode & 0o777).toBe(0o600);
  });

  it('streams a log line by line as read() parses it whole: torn lines by number, across read chunks', async () => {
    const path = join(dir.path, 'big.jsonl');
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) lines.push(GOLDEN_LINE.replace('/a', `/${i}`).trimEnd()); // ~640 KB: three chunks
    lines.splice(1234, 0, '{"key":"torn');
    lines.splice(2500, 0, '');
    await writeFile(path, `${lines.join('\n')}\n{"key":"last torn`);
    const log = new RecordLog(path);
    const whole = await log.read();
    const seen: string[] = [];
    const { bad } = await log.readEach((e) => seen.push(`${e.key} ${e.signed.record.toString()} ${Buffer.from(e.signed.signature).toString('hex')}`));
    expect(bad).toEqual(whole.bad);
    expect(bad).toEqual([1235, 3003]);
    expect(seen).toEqual(whole.entries.map((e) => `${e.key} ${e.signed.record.toString()} ${Buffer.from(e.signed.signature).toString('hex')}`));
    expect(seen).toHaveLength(3000);
    expect(await new RecordLog(join(dir.path, 'none.jsonl')).readEach(() => expect.fail('no lines'))).toEqual({ bad: [] });
  });

  it('gives each line the byte offset it starts at, and reads a line back from there (multi-byte keys, torn lines, a chunk boundary)', async () => {
    const path = join(dir.path, 'offsets.jsonl');
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++) lines.push(GOLDEN_LINE.replace('/a', i % 3 === 0 ? `/é✓${i}` : `/${i}`).trimEnd()); // ~420 KB: past the first read chunk
    lines.splice(700, 0, '{"key":"torn');
    await writeFile(path, `${lines.join('\n')}\n`);
    const log = new RecordLog(path);
    const seen: Array<{ key: string; offset: number }> = [];
    await log.readEach((e, offset) => seen.push({ key: e.key, offset }));
    expect(seen).toHaveLength(2000);
    // The keys-only read (what the index opens with) finds the same lines at the same offsets.
    const keys: Array<{ key: string; offset: number }> = [];
    expect(await log.readKeys((key, offset) => keys.push({ key, offset }))).toEqual({ bad: [701] });
    expect(keys).toEqual(seen);
    const bytes = await readFile(path);
    for (const { key, offset } of seen) {
      expect(offset === 0 || bytes[offset - 1] === 0x0a).toBe(true);
      expect((JSON.parse(bytes.toString('utf8', offset, bytes.indexOf(0x0a, offset))) as { key: string }).key).toBe(key);
      expect(log.lineAt(offset, key)).toMatchObject({ offset, entry: { key } });
    }
    // Appends say where their line starts, also after a torn last line (it is ended first).
    await appendFile(path, '{"key":"torn at the end');
    const at = await log.append('https://example.test/new\nGET', signed);
    expect(log.lineAt(at, 'https://example.test/new\nGET')?.offset).toBe(at);
    expect((await readFile(path)).indexOf('{"key":"https://example.test/new')).toBe(at);
    const next = await log.append('https://example.test/ünï\nGET', signed);
    expect(log.lineAt(next, 'https://example.test/ünï\nGET')?.entry.signed.record.toString()).toBe(CID_TEXT);
    await log.close();
  });

  it('finds a line pushed on by the appends of another writer, and nothing in a truncated file', async () => {
    const path = join(dir.path, 'shared.jsonl');
    const ours = new RecordLog(path);
    await ours.append(KEY, signed);
    const expected = (await stat(path)).size; // where our next line would start, alone
    await appendFile(path, GOLDEN_LINE.replace('/a', '/theirs')); // another process, between our appends
    const said = await ours.append('https://example.test/ours\nGET', signed);
    const found = ours.lineAt(said, 'https://example.test/ours\nGET');
    expect(found?.entry.key).toBe('https://example.test/ours\nGET');
    expect(found!.offset).toBeGreaterThanOrEqual(expected);
    expect(ours.lineAt(expected, 'https://example.test/ours\nGET')?.offset).toBe(found!.offset);
    expect(ours.lineAt(0, 'https://example.test/missing\nGET')).toBeUndefined();
    await writeFile(path, '');
    expect(ours.lineAt(said, 'https://example.test/ours\nGET')).toBeUndefined();
    await ours.close();
  });

  it('reads an absent file as an empty log', async () => {
    expect(await new RecordLog(join(dir.path, 'none.jsonl')).read()).toEqual({ entries: [], bad: [] });
  });

  it('skips torn lines and reports their numbers', async () => {
    const path = join(dir.path, 'log.jsonl');
    await writeFile(path, `${GOLDEN_LINE}{"key":"x","rec\n${GOLDEN_LINE}{"key":"trunc`);
    const { entries, bad } = await new RecordLog(path).read();
    expect(entries.map((e) => [e.key, e.signed.record.toString()])).toEqual([
      [KEY, CID_TEXT],
      [KEY, CID_TEXT],
    ]);
    expect(bad).toEqual([2, 4]);
  });

  it('starts a new line after a torn last line when it appends', async () => {
    const path = join(dir.path, 'log.jsonl');
    await writeFile(path, `${GOLDEN_LINE}{"key":"trunc`);
    const log = new RecordLog(path);
    await log.append(KEY, signed);
    await log.close();
    expect(await readFile(path, 'utf8')).toBe(`${GOLDEN_LINE}{"key":"trunc\n${GOLDEN_LINE}`);
    expect((await log.read()).bad).toEqual([2]);
  });

  it('keeps whole lines when appends race', async () => {
    const log = new RecordLog(join(dir.path, 'log.jsonl'));
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(`k${i}`, signed)));
    const { entries, bad } = await log.read();
    expect(bad).toEqual([]);
    expect(new Set(entries.map((e) => e.key)).size).toBe(50);
    await log.close();
  });

  it('rejects an append the disk refuses (ENOSPC) instead of hanging or reporting it durable', async () => {
    const path = join(dir.path, 'full.jsonl');
    await symlink('/dev/full', path); // a real device that fails every write with ENOSPC
    const log = new RecordLog(path);
    await expect(log.append(KEY, signed)).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(log.append(KEY, signed)).rejects.toMatchObject({ code: 'ENOSPC' });
    await log.close();
  });

  it('closes idempotently and removes its file', async () => {
    const log = new RecordLog(join(dir.path, 'log.jsonl'));
    await log.close();
    await log.append(KEY, signed);
    await log.close();
    await log.close();
    await log.remove();
    await log.remove();
    await expect(stat(log.path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects an already-aborted signal without writing', async () => {
    const log = new RecordLog(join(dir.path, 'log.jsonl'));
    const signal = AbortSignal.abort();
    await expect(log.append(KEY, signed, { signal })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
    await expect(log.read({ signal })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
    await expect(stat(log.path)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('FsRecordIndex', () => {
  it('opens an existing records.jsonl, last line per key winning, and warns about torn lines', async () => {
    const other: SignedRecord = { record: signed.record, signature: new Uint8Array(64).fill(9) };
    const otherLine = `{"key":"https://example.test/a\\nGET","record":"${CID_TEXT}","signature":"${Buffer.from(other.signature).toString('base64')}"}\n`;
    await writeFile(join(dir.path, 'records.jsonl'), `${GOLDEN_LINE}garbage\n${otherLine}`);
    const warnings: string[] = [];
    const index = await FsRecordIndex.open(dir.path, createLogger('test', (level, _ns, line) => {
      if (level === 'warn') warnings.push(line);
    }));
    expect(index.size).toBe(1);
    expect(index.get(KEY)?.signature).toEqual(other.signature);
    expect(index.keysForUrl('https://example.test/a')).toEqual([KEY]);
    expect(warnings.join('\n')).toMatch(/skipped 1 malformed line\(s\) of .*records\.jsonl: 2/);
    await index.put('https://example.test/b\nGET', signed);
    await index.close();
    await index.close();
    const reopened = await FsRecordIndex.open(dir.path);
    expect(reopened.keysForUrl('https://example.test/b')).toEqual(['https://example.test/b\nGET']);
    await reopened.close();
  });

  it('gives back each signed record as put, in this process and after reopening, whatever its CID', async () => {
    // Read back from the file at each get (issue #15): the CID (any length, any codec) and signature must come back whole.
    const rawCid = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku');
    const longCid = CID.createV1(0x71, { code: 0x00, size: 300, digest: new Uint8Array(300).fill(5), bytes: new Uint8Array([0x00, 0xac, 0x02, ...new Uint8Array(300).fill(5)]) });
    const puts: Array<[string, SignedRecord]> = [
      ['https://example.test/raw\nGET', { record: rawCid, signature: new Uint8Array(64).map((_, i) => i) }],
      ['https://example.test/long\nGET', { record: longCid, signature: new Uint8Array(64).fill(0xff) }],
      [KEY, signed],
    ];
    const index = await FsRecordIndex.open(dir.path);
    for (const [k, v] of puts) await index.put(k, v);
    const check = (i: FsRecordIndex): void => {
      for (const [k, v] of puts) {
        const got = i.get(k)!;
        expect(got.record.equals(v.record)).toBe(true);
        expect(got.record.bytes).toEqual(v.record.bytes);
        expect(got.signature).toEqual(v.signature);
      }
    };
    check(index);
    await index.close();
    const reopened = await FsRecordIndex.open(dir.path);
    check(reopened);
    expect(reopened.get('https://example.test/none\nGET')).toBeUndefined();
    await reopened.close();
  });
});

describe('FsRecordIndex opening records.jsonl by its keys alone', () => {
  it('takes a line shaped as a record line without decoding it: one that does not decode is no record, and its key is recorded again', async () => {
    const undecodable = GOLDEN_LINE.replace(CID_TEXT, 'bnot-a-cid');
    const other = `{"key":"https://example.test/b\\nGET","record":"${CID_TEXT}","signature":"${Buffer.from(new Uint8Array(64).fill(2)).toString('base64')}"}\n`;
    const shortSignature = GOLDEN_LINE.replace('"signature":"', '"signature":"AAAA');
    await writeFile(join(dir.path, 'records.jsonl'), `${GOLDEN_LINE}${other}${undecodable}${shortSignature}{"key":"torn\n`);
    const warnings: string[] = [];
    const index = await FsRecordIndex.open(dir.path, createLogger('test', (level, _ns, line) => {
      if (level === 'warn') warnings.push(line);
    }));
    // The last line for KEY does not decode: no record (never the earlier line's), so the request is recorded again.
    expect(index.get(KEY)).toBeUndefined();
    expect(index.get('https://example.test/b\nGET')?.signature).toEqual(new Uint8Array(64).fill(2));
    expect(warnings.join('\n')).toMatch(/skipped 2 malformed line\(s\) of .*records\.jsonl: 4, 5/);
    await index.put(KEY, signed);
    expect(index.get(KEY)?.signature).toEqual(SIGNATURE);
    await index.close();
  });
});

describe('FsRecordIndex reading records back from records.jsonl', () => {
  it('answers a key only with a line of that key: a file rewritten under it means recording again, not another record', async () => {
    const index = await FsRecordIndex.open(dir.path);
    await index.put(KEY, signed);
    await index.put('https://example.test/b\nGET', { record: signed.record, signature: new Uint8Array(64).fill(1) });
    expect(index.get('https://example.test/b\nGET')?.signature).toEqual(new Uint8Array(64).fill(1));
    // Another tool rewrote the file: the offsets held now point into other lines.
    await writeFile(join(dir.path, 'records.jsonl'), GOLDEN_LINE.replace('/a', '/other-url-that-is-longer'));
    expect(index.get('https://example.test/b\nGET')).toBeUndefined();
    expect(index.get(KEY)).toBeUndefined();
    await index.close();
  });
});

describe('RunJournal', () => {
  it('recovers what a run appended and is gone once removed', async () => {
    const netlock = join(dir.path, 'build.netlock');
    const journal = new RunJournal(netlock);
    expect(journal.path).toBe(`${netlock}.journal`);
    await journal.append(KEY, signed);
    await appendFile(journal.path, '{"torn');
    const { entries, bad } = await new RunJournal(netlock).recover();
    expect(entries.map((e) => e.key)).toEqual([KEY]);
    expect(bad).toEqual([2]);
    await journal.remove();
    expect(await new RunJournal(netlock).recover()).toEqual({ entries: [], bad: [] });
  });
});

describe('RecordLog when the file cannot be opened', () => {
  it('fails the append, closes cleanly, and opens on a later append once it can', async () => {
    const log = new RecordLog(join(dir.path, 'later', 'log.jsonl'));
    await expect(log.append(KEY, signed)).rejects.toMatchObject({ code: 'ENOENT' });
    await log.close();
    await mkdir(join(dir.path, 'later'));
    await log.append(KEY, signed);
    await log.close();
    expect((await log.read()).entries).toHaveLength(1);
  });
});

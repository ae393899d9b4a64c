/**
 * Seed entries packed one string each (issue #15: a 100,000-entry lockfile's entries as objects were the
 * seed's peak): every field comes back as it went in, and the list works as the run's queue.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/seed/admission.ts';
import { PackedEntries } from '../../src/seed/packed-entries.ts';
import type { SeedEntry } from '../../src/seed/types.ts';
import { collectGarbage } from '../helpers/gc.ts';
import { ROOT } from '../helpers/run.ts';

const hex = (n: number, byte: number): string => Buffer.alloc(n, byte).toString('hex');

/** Entries with every field and kind of digest a parser makes, and text JSON and packing must keep. */
const ENTRIES: SeedEntry[] = [
  { source: { file: 'package-lock.json', line: 12, name: 'node_modules/@s/a@1.0.0' }, url: 'https://r.example/@s/a/-/a-1.0.0.tgz', accept: '*/*', expect: [{ algorithm: 'sha512', hex: hex(64, 0xfb) }, { algorithm: 'sha1', hex: hex(20, 1) }] },
  { source: { file: 'dir/ünïcode "quoted"\nfile.lock', line: 0, name: 'ñame with \\ and \u2028 and 😀' }, url: 'https://u:p@r.example/a%20b?q=1&r=2#frag', accept: 'application/vnd.pypi.simple.v1+json, text/html;q=0.1', expect: [] },
  { source: { file: 'requirements.txt', line: 3, name: 'foo==1.0' }, url: 'https://f.example/foo.whl', accept: '*/*', expect: [], missingDigest: true },
  { source: { file: 'requirements.txt', line: 4, name: 'bar (index)' }, url: 'https://pypi.example/simple/bar/', accept: 'text/html', expect: [], acceptStatus: [404, 410] },
  { source: { file: 'go.sum', line: 9, name: 'example.com/m@v1.0.0' }, url: 'https://proxy.example/example.com/m/@v/v1.0.0.zip', accept: '*/*', expect: [{ algorithm: 'go-h1', over: 'zip', value: 'h1:AbC+/dEf=' }, { algorithm: 'go-h1', over: 'mod', value: 'h1:x:y' }] },
  // Hex that is not canonical (upper case, odd length, empty) is kept as it is, not re-encoded.
  { source: { file: 'SHA256SUMS', line: 1, name: 'odd' }, url: 'https://d.example/odd', accept: '*/*', expect: [{ algorithm: 'sha256', hex: 'ABCDEF' }, { algorithm: 'sha256', hex: 'abc' }, { algorithm: 'sha256', hex: '' }] },
  { source: { file: 'SHA256SUMS', line: 2, name: 'plain' }, url: 'https://d.example/plain', accept: '*/*', expect: [{ algorithm: 'sha256', hex: hex(32, 0) }] },
];

describe.each([
  { where: 'held as strings', options: {} },
  { where: 'spilled to a file past the second', options: { spillAfter: 2 } },
])('PackedEntries, entries $where', ({ options }) => {
  it('gives back every field of every entry as it was pushed, in order', () => {
    const list = new PackedEntries(options);
    ENTRIES.forEach((e, i) => expect(list.push(structuredClone(e))).toBe(i));
    expect(list).toHaveLength(ENTRIES.length);
    expect([...list]).toEqual(ENTRIES);
    expect([...list.slots()].map((s) => s.slot)).toEqual(ENTRIES.map((_, i) => i));
    const taken: SeedEntry[] = [];
    for (let next = list.take(); next !== undefined; next = list.take()) taken.push(next.entry);
    expect(taken).toEqual(ENTRIES);
    expect(list).toHaveLength(0);
  });

  it('replaces and removes queued entries by slot; a slot taken or removed is no longer queued', () => {
    const list = new PackedEntries(options);
    for (const e of ENTRIES) list.push(e);
    const changed = { ...ENTRIES[2]!, expect: [{ algorithm: 'sha256' as const, hex: hex(32, 9) }] };
    list.replace(2, changed);
    list.remove(3);
    expect(list.queued(2)).toEqual(changed);
    expect(list.queued(3)).toBeUndefined();
    expect(() => list.replace(3, changed)).toThrow(RangeError);
    expect(() => list.remove(3)).toThrow(RangeError);
    expect(list).toHaveLength(ENTRIES.length - 1);
    expect(list.take()?.slot).toBe(0);
    expect(list.queued(0)).toBeUndefined();
    expect(() => list.remove(0)).toThrow(RangeError);
    expect([...list.slots()].map((s) => s.slot)).toEqual([1, 2, 4, 5, 6]);
    // Removed slots are skipped when taking.
    expect([list.take(), list.take(), list.take()].map((t) => t?.slot)).toEqual([1, 2, 4]);
    expect(list).toHaveLength(2);
  });

  it('keeps slot numbers across the compaction of taken entries, over many thousands', () => {
    const list = new PackedEntries(options);
    const entry = (i: number): SeedEntry => ({ source: { file: 'f', line: i, name: `p${i}` }, url: `https://r.example/p${i}.tgz`, accept: '*/*', expect: [{ algorithm: 'sha512', hex: hex(64, i % 256) }] });
    for (let i = 0; i < 5000; i++) list.push(entry(i));
    for (let i = 0; i < 3000; i++) expect(list.take()!.slot).toBe(i);
    for (let i = 5000; i < 6000; i++) expect(list.push(entry(i))).toBe(i);
    expect(list.queued(2999)).toBeUndefined();
    expect(list.queued(4321)).toEqual(entry(4321));
    list.remove(5500);
    expect(list).toHaveLength(2999);
    const rest = [...list.slots()].map((s) => s.slot);
    expect(rest[0]).toBe(3000);
    expect(rest).not.toContain(5500);
    expect(rest.at(-1)).toBe(5999);
  });
});

describe('PackedEntries', () => {
  it('spills past its limit to a file no one sees, closes it once drained, and spills again when it fills', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fo-packed-'));
    try {
      const list = new PackedEntries({ spillDir: dir, spillAfter: 3 });
      const entry = (i: number): SeedEntry => ({ ...ENTRIES[i % ENTRIES.length]!, source: { file: 'f', line: i, name: `p${i}` } });
      for (let i = 0; i < 3; i++) list.push(entry(i));
      expect(list.spilled).toBe(false);
      for (let i = 3; i < 40; i++) list.push(entry(i));
      expect(list.spilled).toBe(true);
      expect(await readdir(dir)).toEqual([]); // unlinked once open
      const taken: SeedEntry[] = [];
      for (let next = list.take(); next !== undefined; next = list.take()) taken.push(next.entry);
      expect(taken).toEqual(Array.from({ length: 40 }, (_, i) => entry(i)));
      expect(list.spilled).toBe(false);
      for (let i = 40; i < 50; i++) expect(list.push(entry(i))).toBe(i);
      expect(list.spilled).toBe(true);
      expect(list.queued(45)).toEqual(entry(45));
      list.close();
      list.close();
      expect(list.spilled).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('keeps in memory what the spill file cannot take (a full disk): every entry comes back, in order', () => {
    // A file size limit (ulimit -f, in KiB; SIGXFSZ ignored so the write fails with EFBIG) stands in for a full disk.
    const script = `
      import { PackedEntries } from './src/seed/packed-entries.ts';
      const list = new PackedEntries({ spillAfter: 2 });
      const entry = (i) => ({ source: { file: 'f', line: i, name: 'p' + i }, url: 'https://r.example/p' + i + '.tgz', accept: '*/*', expect: [{ algorithm: 'sha512', hex: String(i % 10).repeat(128) }] });
      for (let i = 0; i < 2000; i++) list.push(entry(i));
      let ok = 0;
      for (let next = list.take(), i = 0; next !== undefined; next = list.take(), i++) if (JSON.stringify(next.entry) === JSON.stringify(entry(i)) && next.slot === i) ok++;
      console.log(JSON.stringify({ ok }));`;
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 64; exec node --import tsx --input-type=module -e "$0"`, script], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: 2000 }); // ~400 KB of entries, a 64 KiB file
  });
});

describe('Admission', () => {
  const npm = (line: number, url: string, digest: string): SeedEntry => ({ source: { file: 'package-lock.json', line, name: `e${line}` }, url, accept: '*/*', expect: [{ algorithm: 'sha512', hex: digest }] });

  it('adopts a packed list: duplicates are removed from it and their digests join the first entry', () => {
    const list = new PackedEntries();
    const slots = [npm(1, 'https://r.example/a.tgz', hex(64, 1)), npm(2, 'https://r.example/b.tgz', hex(64, 2)), { ...npm(3, 'https://u:p@r.example/a.tgz', hex(64, 1)), expect: [{ algorithm: 'sha1' as const, hex: hex(20, 3) }] }].map((e) => list.push(e));
    const admission = new Admission(list);
    expect([...list.slots()].map(({ slot, entry }) => admission.admitQueued(slot, entry))).toEqual([true, true, false]);
    expect(slots).toEqual([0, 1, 2]);
    expect([...list].map((e) => e.source.line)).toEqual([1, 2]);
    expect(list.queued(0)?.expect).toEqual([{ algorithm: 'sha512', hex: hex(64, 1) }, { algorithm: 'sha1', hex: hex(20, 3) }]);
    // A duplicate with another digest of the same kind is refused, naming both.
    expect(() => admission.admit(npm(9, 'https://r.example/b.tgz', hex(64, 7)))).toThrow(/e9: https:\/\/r\.example\/b\.tgz is also .*e2.*different digest/);
  });

  it('checks a later duplicate against an entry already taken while admission is open, and holds none once closed', async () => {
    const admission = new Admission();
    expect(admission.admit(npm(1, 'https://r.example/a.tgz', hex(64, 1)))).toBe(true);
    expect(admission.admit(npm(2, 'https://r.example/doc', hex(64, 2)), false)).toBe(true); // seeded by its resolver
    expect(admission.queue).toHaveLength(1);
    expect(admission.take()?.source.line).toBe(1);
    expect(() => admission.admit(npm(3, 'https://r.example/a.tgz', hex(64, 5)))).toThrow(/different digest/);
    expect(() => admission.admit(npm(4, 'https://r.example/doc', hex(64, 6)))).toThrow(/different digest/);
    expect(admission.admit(npm(5, 'https://r.example/a.tgz', hex(64, 1)))).toBe(false);

    // Closed: an entry taken is the caller's alone.
    admission.admit(npm(6, 'https://r.example/c.tgz', hex(64, 6)));
    admission.closeAdmission();
    let taken: SeedEntry | undefined = admission.take();
    expect(taken?.source.line).toBe(6);
    const ref = new WeakRef(taken!);
    taken = undefined;
    await new Promise((resolve) => setImmediate(resolve)); // a WeakRef keeps its target to the end of the job that made it
    collectGarbage();
    expect(ref.deref()).toBeUndefined();
  });
});

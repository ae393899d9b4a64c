import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { classifyDifferences } from '../../src/image/classify.ts';
import type { FileSample } from '../../src/image/tar-entries.ts';

function sample(bytes: Buffer): FileSample {
  return { size: bytes.length, head: bytes, tailSha256: createHash('sha256').update(bytes.subarray(16)).digest('hex') };
}

/** A timestamp-based .pyc: magic, flags 0, source mtime, source size, then the code. */
function pyc(mtime: number, code = 'code'): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32LE(0x0a0d0da7, 0);
  header.writeUInt32LE(0, 4);
  header.writeUInt32LE(mtime, 8);
  header.writeUInt32LE(123, 12);
  return Buffer.concat([header, Buffer.from(code)]);
}

const diff = (path: string): { path: string; what: string } => ({ path, what: 'content' });

describe('classifyDifferences', () => {
  it('names the step that reads /dev/urandom as the cause, before hundreds of explained paths', () => {
    const pycs = Array.from({ length: 300 }, (_, i) => `/venv/lib/python3.11/site-packages/m${i}/__pycache__/x.cpython-311.pyc`);
    const paths = ['/var/log/dpkg.log', '/var/cache/apt/pkgcache.bin', ...pycs, '/etc/machine-token'].sort().map(diff);
    const record = new Map<string, FileSample>([...pycs.map((p): [string, FileSample] => [p, sample(pyc(1_700_000_000))]), ['/etc/machine-token', sample(Buffer.from([1, 2, 3, 4]))]]);
    const replay = new Map<string, FileSample>([...pycs.map((p): [string, FileSample] => [p, sample(pyc(1_700_000_099))]), ['/etc/machine-token', sample(Buffer.from([9, 8, 7, 6]))]]);
    const steps = ['ADD file:abc in /', '|1 SOURCE_DATE_EPOCH=0 /bin/sh -c apt-get update && apt-get install -y python3-venv', '|1 SOURCE_DATE_EPOCH=0 /bin/sh -c head -c4 /dev/urandom > /etc/machine-token', 'python3 -m venv /venv'];
    const causes = classifyDifferences(paths, steps, { record, replay });
    expect(causes.map((c) => [c.kind, c.paths.length])).toEqual([
      ['random', 1],
      ['compiled', 300],
      ['log', 1],
      ['cache', 1],
    ]);
    expect(causes[0]!.paths).toEqual([diff('/etc/machine-token')]);
    expect(causes[0]!.madeBy).toEqual([steps[2]]);
    expect(causes[0]!.fix).toMatch(/Cartesi Machine/);
    expect(causes[1]!.notes[0]).toMatch(/timestamp-based \.pyc, only the header's source mtime differs/);
    expect(causes[2]!.fix).toBe('--scrub logs keeps them out of the layers');
    expect(causes[3]!.fix).toBe('--scrub apt keeps them out of the layers');
  });

  it('tells times, reordering, temporary paths and random tokens apart in text files', () => {
    const text = (s: string): FileSample => sample(Buffer.from(s));
    const record = new Map([
      ['/a/built-at.txt', text('built 2026-12-03T13:49:02Z by make\n')],
      ['/a/order.json', text('{"b":1,"a":2}')],
      ['/a/paths.txt', text('cwd=/tmp/tmp.Xy12ab\n')],
      ['/a/id.txt', text('id = 7f3a9c0e5b2d4e18a6c1\n')],
      ['/a/npm-index', text('{"key":"x","time":1764769742123}')],
    ]);
    const replay = new Map([
      ['/a/built-at.txt', text('built 2026-12-03T13:51:40Z by make\n')],
      ['/a/order.json', text('{"a":2,"b":1}')],
      ['/a/paths.txt', text('cwd=/tmp/tmp.Qz98cd\n')],
      ['/a/id.txt', text('id = 0c2e4a6b8d1f3a5c7e9b\n')],
      ['/a/npm-index', text('{"key":"x","time":1764769799001}')],
    ]);
    const causes = classifyDifferences([...record.keys()].sort().map(diff), ['make'], { record, replay });
    const kindOf = (p: string): string | undefined => causes.find((c) => c.paths.some((x) => x.path === p))?.kind;
    expect(kindOf('/a/built-at.txt')).toBe('timestamps');
    expect(kindOf('/a/npm-index')).toBe('timestamps');
    expect(kindOf('/a/order.json')).toBe('order');
    expect(kindOf('/a/paths.txt')).toBe('build-paths');
    expect(kindOf('/a/id.txt')).toBe('random');
  });

  it('recognises archives and keystores, and leaves what it cannot explain as such', () => {
    const gz = (t: number): FileSample => sample(Buffer.from([0x1f, 0x8b, 8, 0, t, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7]));
    const jks = (t: number): FileSample => sample(Buffer.concat([Buffer.from([0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]), Buffer.alloc(12, t)]));
    const record = new Map([
      ['/x.gz', gz(1)],
      ['/etc/ssl/certs/java/cacerts', jks(1)],
      ['/bin/tool', sample(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1]))],
    ]);
    const replay = new Map([
      ['/x.gz', gz(2)],
      ['/etc/ssl/certs/java/cacerts', jks(2)],
      ['/bin/tool', sample(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2]))],
    ]);
    const causes = classifyDifferences([...record.keys()].sort().map(diff), ['apt-get install -y openjdk-17-jdk-headless'], { record, replay });
    expect(causes.map((c) => [c.kind, c.paths.map((p) => p.path)])).toEqual([
      ['other', ['/bin/tool']],
      ['timestamps', ['/etc/ssl/certs/java/cacerts', '/x.gz']],
    ]);
    expect(causes[1]!.notes.join('\n')).toMatch(/Java keystore/);
    // Paths outside every profile: the fix says so.
    const cache = classifyDifferences([diff('/home/u/.cache/tool/db')], [], { record: new Map(), replay: new Map() });
    expect(cache[0]!.kind).toBe('cache');
    expect(cache[0]!.fix).toMatch(/^no --scrub profile covers them/);
  });
});

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { extract as tarExtract } from 'tar-stream';
import type { Extract } from 'tar-stream';
import { InvalidArchiveError } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';

/** One entry as tar-stream yields it: its header and a stream of its bytes. */
export type TarStreamEntry = Extract extends AsyncIterable<infer E> ? E : never;

/** One entry of a layer tar, with what makes two entries "the same": metadata and a digest of the content. */
export interface TarEntry {
  /** Path as stored, normalised to start with `/` and without a trailing slash (`/etc/hosts`). */
  path: string;
  /** `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`, or `unknown` (e.g. an old-GNU sparse file). */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** Symlink or hard-link target. */
  link: string;
  /** `major,minor` for device nodes. */
  device: string;
  /** sha256 (hex) of the stored content of a regular file or an `unknown` entry; '' otherwise. */
  sha256: string;
  /** Extended attributes and other pax records (`SCHILY.xattr.*`), sorted `name=value` lines. */
  pax: string;
}

/** tar-stream's entry types, as this module names them (a hard link is `hardlink`, a directory `dir`). */
const TYPES: Partial<Record<string, string>> = {
  file: 'file',
  'contiguous-file': 'file',
  link: 'hardlink',
  symlink: 'symlink',
  'character-device': 'char',
  'block-device': 'block',
  directory: 'dir',
  fifo: 'fifo',
};

/** pax records already reflected in the entry's own fields (or that say nothing about the content). */
const PAX_IN_FIELDS = new Set(['path', 'linkpath', 'size', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'uname', 'gname']);

function normalise(path: string): string {
  const p = path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return `/${p}`;
}

/**
 * Reads every entry of an uncompressed tar file with tar-stream (ustar, pax extended headers, GNU long
 * names and long link names: what buildah writes for layers), hashing regular files' content as it streams
 * past. Used to tell which paths two layers that should be equal differ in; it never extracts anything.
 *
 * Sparse files are not expanded (tar-stream has no sparse support; test/image/parts.test.ts shows both
 * cases): a pax sparse file (GNU tar's `--format=pax -S`) reads as a regular file whose content is the
 * stored form (sparse map and data regions), named and sized here by its `GNU.sparse.name` and
 * `GNU.sparse.realsize`; an old-GNU sparse entry (`--format=gnu -S`, type flag `S`) reads as type
 * `unknown`, hashed over its stored data. Either way equal layers compare equal and a changed sparse
 * file is reported; buildah (Go's archive/tar) never writes sparse entries.
 */
export async function readTarEntries(path: string, options: AbortOptions = {}): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  await forEachTarEntry(path, options, async (entry) => {
    // tar-stream's declared types are tighter than what it yields: `type` is null for a type flag it does
    // not know, `linkname` null when empty, `pax` the entry's pax records (global ones merged in) or null.
    const header = entry.header;
    const pax = (header.pax ?? {}) as Partial<Record<string, string>>;
    const type = TYPES[(header.type as string | null) ?? ''] ?? 'unknown';
    const hash = type === 'file' || type === 'unknown' ? createHash('sha256') : undefined;
    for await (const chunk of entry) hash?.update(chunk as Uint8Array);
    const size = pax['GNU.sparse.realsize'] !== undefined ? Number(pax['GNU.sparse.realsize']) : header.size;
    entries.push({
      path: normalise(pax['GNU.sparse.name'] ?? header.name),
      type,
      mode: header.mode & 0o7777,
      uid: pax['uid'] !== undefined ? Number(pax['uid']) : header.uid,
      gid: pax['gid'] !== undefined ? Number(pax['gid']) : header.gid,
      size: hash === undefined ? 0 : size,
      mtime: pax['mtime'] !== undefined ? Math.floor(Number(pax['mtime'])) : Math.floor(header.mtime.getTime() / 1000),
      link: type === 'symlink' || type === 'hardlink' ? (header.linkname ?? '') : '',
      device: type === 'char' || type === 'block' ? `${header.devmajor},${header.devminor}` : '',
      sha256: hash === undefined ? '' : hash.digest('hex'),
      pax: Object.entries(pax)
        .filter(([k]) => !PAX_IN_FIELDS.has(k))
        .map(([k, v]) => `${k}=${v}`)
        .sort()
        .join('\n'),
    });
  });
  return entries;
}

/** Streams the tar at `path` through `visit`, one entry at a time; a file that is not a tar is InvalidArchiveError. */
export async function forEachTarEntry(path: string, options: AbortOptions, visit: (entry: TarStreamEntry) => Promise<void>): Promise<void> {
  options.signal?.throwIfAborted();
  const input = createReadStream(path);
  const extract = tarExtract();
  let readError: Error | undefined;
  input.on('error', (err) => {
    readError = err;
    extract.destroy(err);
  });
  input.pipe(extract);
  try {
    for await (const entry of extract) {
      options.signal?.throwIfAborted();
      await visit(entry);
    }
  } catch (err) {
    options.signal?.throwIfAborted();
    if (readError !== undefined) throw readError;
    throw new InvalidArchiveError(`${path}: not a readable tar file: ${(err as Error).message}`, { cause: err });
  } finally {
    input.destroy();
    extract.destroy();
  }
}

/** The start of a file's content in one layer, for classification (classify.ts). */
export interface FileSample {
  size: number;
  /** The first bytes (up to the sampling limit). */
  head: Buffer;
  /** sha256 (hex) of everything after the first 16 bytes (a .pyc's code after its header). */
  tailSha256: string;
}

/**
 * The start of each regular file of `wanted` in an uncompressed tar (up to `maxHead` bytes) and a sha256 of
 * its bytes after the first 16, for telling why two versions differ (classify.ts). Streams like
 * readTarEntries; only the wanted files' heads are kept in memory.
 */
export async function readTarSamples(path: string, wanted: ReadonlySet<string>, maxHead: number, options: AbortOptions = {}): Promise<Map<string, FileSample>> {
  const samples = new Map<string, FileSample>();
  await forEachTarEntry(path, options, async (entry) => {
    const name = normalise(entry.header.name);
    if (!wanted.has(name) || entry.header.type !== 'file') {
      entry.resume();
      return;
    }
    const head: Buffer[] = [];
    let kept = 0;
    let seen = 0;
    const tail = createHash('sha256');
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      if (kept < maxHead) {
        head.push(chunk.subarray(0, maxHead - kept));
        kept += Math.min(chunk.length, maxHead - kept);
      }
      if (seen + chunk.length > 16) tail.update(chunk.subarray(Math.max(0, 16 - seen)));
      seen += chunk.length;
    }
    samples.set(name, { size: seen, head: Buffer.concat(head), tailSha256: tail.digest('hex') });
  });
  return samples;
}

export interface EntryDifference {
  path: string;
  /** `only in record`, `only in replay`, or the fields that differ (`content`, `mode`, `mtime`…). */
  what: string;
}

const FIELDS = ['type', 'sha256', 'size', 'mode', 'uid', 'gid', 'mtime', 'link', 'device', 'pax'] as const;

/** The paths two layers differ in, sorted by path; `a` is the recorded build's layer, `b` the replay's. */
export function diffTarEntries(a: readonly TarEntry[], b: readonly TarEntry[]): EntryDifference[] {
  const byPath = (list: readonly TarEntry[]): Map<string, TarEntry> => new Map(list.map((e) => [e.path, e]));
  const left = byPath(a);
  const right = byPath(b);
  const out: EntryDifference[] = [];
  for (const path of [...new Set([...left.keys(), ...right.keys()])].sort()) {
    const x = left.get(path);
    const y = right.get(path);
    if (x === undefined) out.push({ path, what: 'only in the replay' });
    else if (y === undefined) out.push({ path, what: 'only in the record' });
    else {
      const fields = FIELDS.filter((f) => x[f] !== y[f]).map((f) => (f === 'sha256' ? 'content' : f === 'pax' ? 'xattrs' : f));
      if (fields.length > 0) out.push({ path, what: fields.join(', ') });
    }
  }
  return out;
}

import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { AbortOptions } from '../protocol/blocks.ts';

/** One entry of a layer tar, with what makes two entries "the same": metadata and a digest of the content. */
export interface TarEntry {
  /** Path as stored, normalised to start with `/` and without a trailing slash (`/etc/hosts`). */
  path: string;
  /** `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`, or the raw type flag. */
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
  /** sha256 (hex) of the content of a regular file; '' otherwise. */
  sha256: string;
  /** Extended attributes and other pax records (`SCHILY.xattr.*`), sorted `name=value` lines. */
  pax: string;
}

const BLOCK = 512;
const TYPES: Record<string, string> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

function text(b: Buffer, start: number, length: number): string {
  const field = b.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

/** Numeric header field: octal text, or base-256 (GNU) when the high bit of the first byte is set. */
function num(b: Buffer, start: number, length: number): number {
  const field = b.subarray(start, start + length);
  if (field[0] !== undefined && (field[0] & 0x80) !== 0) {
    let v = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    return v;
  }
  const t = text(b, start, length).trim();
  return t === '' ? 0 : parseInt(t, 8);
}

/** pax extended header records: `LEN name=value\n`… */
function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number(data.subarray(i, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) break;
    const record = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
  return out;
}

function normalise(path: string): string {
  const p = path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return `/${p}`;
}

/**
 * Reads every entry of an uncompressed tar file (ustar, pax and GNU long names: what buildah writes for
 * layers), hashing regular files' content as it streams past. Used to tell which paths two layers that
 * should be equal differ in; it never extracts anything.
 */
export async function readTarEntries(path: string, options: AbortOptions = {}): Promise<TarEntry[]> {
  const handle = await open(path, 'r');
  const entries: TarEntry[] = [];
  try {
    let offset = 0;
    const header = Buffer.alloc(BLOCK);
    const chunk = Buffer.alloc(1024 * 1024);
    let pending = new Map<string, string>();
    let longName: string | undefined;
    let longLink: string | undefined;
    const readData = async (size: number, hash: ReturnType<typeof createHash> | undefined, keep: boolean): Promise<Buffer | undefined> => {
      const parts: Buffer[] = [];
      let left = size;
      while (left > 0) {
        options.signal?.throwIfAborted();
        const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, left), offset);
        if (bytesRead === 0) throw new Error(`${path}: tar entry truncated at byte ${offset}`);
        const piece = chunk.subarray(0, bytesRead);
        hash?.update(piece);
        if (keep) parts.push(Buffer.from(piece));
        offset += bytesRead;
        left -= bytesRead;
      }
      offset += (BLOCK - (size % BLOCK)) % BLOCK;
      return keep ? Buffer.concat(parts) : undefined;
    };
    for (;;) {
      options.signal?.throwIfAborted();
      const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
      if (bytesRead < BLOCK || header.every((b) => b === 0)) break;
      offset += BLOCK;
      const flag = String.fromCharCode(header[156] ?? 0);
      const size = num(header, 124, 12);
      if (flag === 'x' || flag === 'g') {
        const data = await readData(size, undefined, true);
        if (flag === 'x') pending = parsePax(data!);
        continue;
      }
      if (flag === 'L' || flag === 'K') {
        const data = (await readData(size, undefined, true))!.toString('utf8').replace(/\0+$/, '');
        if (flag === 'L') longName = data;
        else longLink = data;
        continue;
      }
      const prefix = text(header, 345, 155);
      const name = pending.get('path') ?? longName ?? (prefix === '' ? text(header, 0, 100) : `${prefix}/${text(header, 0, 100)}`);
      const link = pending.get('linkpath') ?? longLink ?? text(header, 157, 100);
      const type = TYPES[flag] ?? `type ${JSON.stringify(flag)}`;
      const realSize = pending.has('size') ? Number(pending.get('size')) : size;
      const hash = type === 'file' ? createHash('sha256') : undefined;
      await readData(type === 'file' || !(flag in TYPES) ? realSize : 0, hash, false);
      const pax = [...pending].filter(([k]) => !['path', 'linkpath', 'size', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'uname', 'gname'].includes(k)).map(([k, v]) => `${k}=${v}`).sort().join('\n');
      entries.push({
        path: normalise(name),
        type,
        mode: num(header, 100, 8) & 0o7777,
        uid: pending.has('uid') ? Number(pending.get('uid')) : num(header, 108, 8),
        gid: pending.has('gid') ? Number(pending.get('gid')) : num(header, 116, 8),
        size: type === 'file' ? realSize : 0,
        mtime: pending.has('mtime') ? Math.floor(Number(pending.get('mtime'))) : num(header, 136, 12),
        link: type === 'symlink' || type === 'hardlink' ? link : '',
        device: type === 'char' || type === 'block' ? `${num(header, 329, 8)},${num(header, 337, 8)}` : '',
        sha256: hash === undefined ? '' : hash.digest('hex'),
        pax,
      });
      pending = new Map();
      longName = undefined;
      longLink = undefined;
    }
  } finally {
    await handle.close();
  }
  return entries;
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

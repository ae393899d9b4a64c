/**
 * The tars that carry files into and out of the machine (docs/cartesi.md "Drives"). In: `--input DIR` packed
 * deterministically (names sorted byte-wise, mtime 0, uid/gid 0, no user or group names, permission bits
 * kept), so the same directory always makes the same drive and the same root hash. Out: the tar the init
 * wrote on the output drive, extracted without ever writing outside the target (no absolute names, no
 * `..`, nothing through a symlink the archive made, no device nodes).
 */
import { createWriteStream } from 'node:fs';
import { link, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import { InvalidArchiveError, InvalidConfigError, throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { AbortOptions } from '../protocol/blocks.ts';

interface InputEntry {
  /** Path inside the tar, relative, `/`-separated. */
  name: string;
  abs: string;
}

async function collect(root: string, rel: string, out: InputEntry[]): Promise<void> {
  const names = (await readdir(join(root, rel))).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
  for (const n of names) {
    const r = rel === '' ? n : `${rel}/${n}`;
    out.push({ name: r, abs: join(root, r) });
    if ((await lstat(join(root, r))).isDirectory()) await collect(root, r, out);
  }
}

/**
 * Packs `dir` into a tar at `file` and returns its size. Regular files, directories and symlinks only (a
 * device node or socket is refused). The drive is the tar followed by zeros, so `limit` bounds it.
 */
export async function packInputTar(dir: string, file: string, limit: number, options: AbortOptions = {}): Promise<number> {
  const entries: InputEntry[] = [];
  try {
    if (!(await lstat(dir)).isDirectory()) throw new InvalidConfigError(`--input ${dir} is not a directory`);
    await collect(dir, '', entries);
  } catch (err) {
    if (err instanceof InvalidConfigError) throw err;
    throw new InvalidConfigError(`Cannot read --input ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const pack = tarPack();
  let size = 0;
  const out = createWriteStream(file);
  const written = pipeline(pack, async function* (source: AsyncIterable<unknown>) {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > limit) throw new InvalidConfigError(`--input ${dir} makes a tar larger than the input drive (${limit} bytes): raise --input-mib`);
      yield chunk;
    }
  }, out);
  written.catch(() => undefined); // awaited below; a size refusal may come while an entry is being written
  try {
    for (const e of entries) {
      throwIfAborted(options.signal);
      const st = await lstat(e.abs);
      const common = { name: e.name, mode: st.mode & 0o7777, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
      if (st.isDirectory()) pack.entry({ ...common, type: 'directory' });
      else if (st.isSymbolicLink()) pack.entry({ ...common, type: 'symlink', linkname: await readlink(e.abs) });
      else if (st.isFile()) {
        const bytes = await readFile(e.abs);
        await new Promise<void>((resolveEntry, reject) => pack.entry({ ...common, type: 'file', size: bytes.byteLength }, bytes, (err) => (err ? reject(err) : resolveEntry())));
      } else throw new InvalidConfigError(`--input ${dir}: ${e.name} is not a regular file, directory or symlink`);
    }
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy();
    // The pipeline's own failure (the size limit) says more than the entry it interrupted.
    const failed: unknown = await written.then(() => undefined, (e: unknown) => e);
    throw failed instanceof InvalidConfigError ? failed : err;
  }
  return size;
}

/** The parts of a tar entry name, refused when it could land outside the target. */
function safeParts(name: string): string[] {
  if (name.startsWith('/')) throw new InvalidArchiveError(`Output tar entry ${JSON.stringify(name)} is an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new InvalidArchiveError(`Output tar entry ${JSON.stringify(name)} climbs out of the output directory (..)`);
  return parts;
}

/** Throws unless every existing parent of `parts` under `root` is a real directory (not a symlink). */
async function checkParents(root: string, parts: string[]): Promise<void> {
  let at = root;
  for (const p of parts.slice(0, -1)) {
    at = join(at, p);
    const st = await lstat(at).catch(() => undefined);
    if (st === undefined) return;
    if (!st.isDirectory()) throw new InvalidArchiveError(`Output tar entry ${parts.join('/')} goes through ${posix.join(...parts.slice(0, parts.indexOf(p) + 1))}, which is not a directory`);
  }
}

/**
 * Extracts the tar `bytes` into `target` (a new, empty directory). Regular files, directories, symlinks and
 * hard links (to an entry already extracted) are written; device nodes and fifos are skipped with a warning.
 */
export async function extractOutputTar(bytes: Uint8Array, target: string, logger: Logger): Promise<{ files: number; bytes: number }> {
  const ex = tarExtract();
  const stats = { files: 0, bytes: 0 };
  const done = new Promise<void>((resolveDone, reject) => {
    ex.on('entry', (header, stream, next) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(c as Buffer);
        const parts = safeParts(header.name);
        if (parts.length === 0) return; // the archive's `.`
        await checkParents(target, parts);
        const path = join(target, ...parts);
        const mode = (header.mode ?? 0o644) & 0o7777;
        switch (header.type) {
          case 'directory':
            await mkdir(path, { recursive: true, mode: mode | 0o700 });
            break;
          case 'file':
          case 'contiguous-file': {
            await mkdir(join(target, ...parts.slice(0, -1)), { recursive: true });
            const data = Buffer.concat(chunks);
            await writeFile(path, data, { mode, flag: 'wx' });
            stats.files++;
            stats.bytes += data.byteLength;
            break;
          }
          case 'symlink':
            await mkdir(join(target, ...parts.slice(0, -1)), { recursive: true });
            await symlink(header.linkname ?? '', path);
            break;
          case 'link': {
            const from = safeParts(header.linkname ?? '');
            await checkParents(target, from);
            const existing = await lstat(join(target, ...from)).catch(() => undefined);
            if (existing?.isFile() !== true) throw new InvalidArchiveError(`Output tar entry ${header.name} is a hard link to ${header.linkname ?? ''}, which is not a file extracted before it`);
            await mkdir(join(target, ...parts.slice(0, -1)), { recursive: true });
            await link(join(target, ...from), path);
            break;
          }
          default:
            logger.warn('output tar: skipping %s (%s entries are not copied out of the machine)', header.name, header.type ?? 'unknown');
        }
      })().then(() => next(), (err: unknown) => {
        ex.destroy(err as Error);
      });
    });
    ex.on('finish', () => resolveDone());
    ex.on('error', (err: NodeJS.ErrnoException) => {
      // Our own refusals and file-system failures as they are; anything else is tar-stream failing to parse.
      reject(err instanceof InvalidArchiveError || err.code !== undefined ? err : new InvalidArchiveError(`The output drive does not hold a readable tar: ${err.message}`));
    });
  });
  ex.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  await done;
  return stats;
}

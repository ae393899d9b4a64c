import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

export interface TreeHash {
  /** sha256 over every `path\0kind\0content-sha256\n` line, sorted by path. */
  digest: string;
  /** Relative path (POSIX separators) → `file:<sha256>` or `link:<target>`. */
  files: Record<string, string>;
}

/**
 * Hashes the files under `root` (or `root` itself if it is a file): relative paths and contents, not
 * timestamps or modes, so two installs of the same bytes in different directories compare equal.
 * `exclude` drops entries whose relative path matches (directories are not descended into).
 */
export async function hashTree(root: string, exclude: (path: string) => boolean = () => false): Promise<TreeHash> {
  const files: Record<string, string> = {};
  const walk = async (path: string): Promise<void> => {
    const rel = relative(root, path).split(sep).join('/');
    if (rel !== '' && exclude(rel)) return;
    const st = await lstat(path);
    if (st.isDirectory()) {
      for (const name of (await readdir(path)).sort()) await walk(join(path, name));
    } else if (st.isSymbolicLink()) {
      files[rel] = `link:${await readlink(path)}`;
    } else if (st.isFile()) {
      files[rel === '' ? '.' : rel] = `file:${createHash('sha256').update(await readFile(path)).digest('hex')}`;
    }
  };
  await walk(root);
  const digest = createHash('sha256');
  for (const path of Object.keys(files).sort()) digest.update(`${path}\0${files[path]!}\n`);
  return { digest: digest.digest('hex'), files };
}

/** `hashTree` of several paths under `base` (files or directories), keyed by the path. */
export async function hashPaths(base: string, paths: readonly string[], exclude?: (path: string) => boolean): Promise<Record<string, TreeHash>> {
  const out: Record<string, TreeHash> = {};
  for (const p of paths) out[p] = await hashTree(join(base, p), exclude);
  return out;
}

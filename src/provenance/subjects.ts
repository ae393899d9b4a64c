/** Subjects of a provenance statement: output files (their sha256) and image IDs from `build`. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { InvalidConfigError } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { ResourceDescriptor } from '../protocol/provenance.ts';

/** sha256 of a file, streamed (outputs can be large). */
export async function sha256File(path: string, options: AbortOptions = {}): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, options.signal === undefined ? {} : { signal: options.signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The name a subject file gets: its path relative to `cwd` with `/` separators when it lies inside `cwd`, else its
 * path as given (normalised). The verifier names files the same way, so `--subject out/app.tar` matches on both sides.
 */
export function subjectName(path: string, cwd: string): string {
  const abs = isAbsolute(path) ? normalize(path) : join(cwd, path);
  const rel = relative(cwd, abs);
  const name = rel === '' || rel.startsWith('..') || isAbsolute(rel) ? normalize(path) : rel;
  return name.split(sep).join('/');
}

/** Every regular file under `dir`, sorted by relative path (symlinks are not followed: they are not outputs' bytes). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * One subject per file: a path that is a directory gives one per regular file under it. Throws
 * InvalidConfigError for a path that does not exist or is neither a file nor a directory.
 */
export async function fileSubjects(paths: readonly string[], cwd: string, options: AbortOptions = {}): Promise<ResourceDescriptor[]> {
  const out: ResourceDescriptor[] = [];
  for (const p of paths) {
    const abs = isAbsolute(p) ? p : join(cwd, p);
    let info;
    try {
      info = await stat(abs);
    } catch (cause) {
      throw new InvalidConfigError(`Subject ${p} cannot be read: ${(cause as Error).message}`, { cause });
    }
    const files = info.isDirectory() ? await filesUnder(abs) : info.isFile() ? [abs] : undefined;
    if (files === undefined) throw new InvalidConfigError(`Subject ${p} is neither a file nor a directory`);
    for (const f of files) out.push({ name: subjectName(f, cwd), digest: { sha256: await sha256File(f, options) } });
  }
  return out;
}

/** An image ID as `build` prints it (`sha256:<64 hex>`, or the bare hex) → a subject named `name`. */
export function imageSubject(id: string, name = 'image'): ResourceDescriptor {
  const m = /^(?:sha256:)?([0-9a-f]{64})$/.exec(id.trim());
  if (m === null) throw new InvalidConfigError(`--image-id expects sha256:<64 hex digits> (what build prints), got ${JSON.stringify(id.slice(0, 100))}`);
  return { name, digest: { sha256: m[1]! }, mediaType: 'application/vnd.oci.image.config.v1+json' };
}

import { InvalidLockfileError } from '../errors.ts';
import { GENERIC_ACCEPT } from './client-requests.ts';
import { parseDigest } from './digests.ts';
import { isHttpUrl, logicalLines } from './text.ts';
import type { SeedEntry, SeedPlan, SeedWarning } from './types.ts';

/**
 * A Dockerfile's `ADD [--checksum=sha256:HEX] URL… DEST` instructions (shell and JSON forms, `\` continuations,
 * `${ARG}` defaults substituted). Only http(s) sources are seeded; git sources and URLs whose build arguments
 * have no default are warned about; an ADD without --checksum is warned about (refused with --strict).
 * Read by hand: only ADD and ARG matter, with file:line in every warning; a full Dockerfile parser would
 * be a dependency for two instructions.
 */
export function parseDockerfile(text: string, file: string): SeedPlan {
  const entries: SeedEntry[] = [];
  const warnings: SeedWarning[] = [];
  const args = new Map<string, string>();
  const substitute = (s: string): string => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a?: string, b?: string) => args.get((a ?? b)!) ?? m);
  for (const { line, text: t } of logicalLines(text)) {
    const m = /^\s*(\w+)\s+(.*)$/.exec(t);
    if (m === null || t.trimStart().startsWith('#')) continue;
    const instruction = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (instruction === 'ARG') {
      for (const a of rest.split(/\s+/)) {
        const eq = a.indexOf('=');
        if (eq > 0) args.set(a.slice(0, eq), substitute(a.slice(eq + 1).replace(/^["']|["']$/g, '')));
      }
      continue;
    }
    if (instruction !== 'ADD') continue;
    let checksum: string | undefined;
    let words: string[];
    const flags = /^((?:--[\w-]+(?:=\S*)?\s+)*)(.*)$/.exec(rest)!;
    for (const f of flags[1]!.trim().split(/\s+/)) if (f.startsWith('--checksum=')) checksum = f.slice('--checksum='.length);
    const body = flags[2]!.trim();
    if (body.startsWith('[')) {
      try {
        words = JSON.parse(body) as string[];
      } catch (err) {
        throw new InvalidLockfileError(file, line, `ADD in JSON form is not a JSON array: ${(err as Error).message}`);
      }
    } else {
      words = body.split(/\s+/);
    }
    if (words.length < 2) throw new InvalidLockfileError(file, line, 'ADD needs a source and a destination');
    const expect = checksum === undefined ? [] : [parseDigest(substitute(checksum))];
    if (expect[0] === undefined && checksum !== undefined) throw new InvalidLockfileError(file, line, `unreadable --checksum=${checksum} (expected sha256:HEX)`);
    for (const w of words.slice(0, -1)) {
      const url = substitute(w);
      if (!isHttpUrl(url)) continue; // a build-context file
      const source = { file, line, name: url };
      if (/\$\{?\w/.test(url)) {
        warnings.push({ source, message: 'uses a build argument without a default: not seeded', strict: true });
        continue;
      }
      if (/\.git(#|$)/.test(url)) {
        warnings.push({ source, message: 'a git source: not seeded', strict: false });
        continue;
      }
      const e = expect.filter((d) => d !== undefined);
      if (e.length === 0) warnings.push({ source, message: 'ADD without --checksum: recorded as fetched, unchecked', strict: true });
      entries.push({ source, url, accept: GENERIC_ACCEPT, expect: e, ...(e.length === 0 ? { missingDigest: true } : {}) });
    }
  }
  return { entries, resolvers: [], warnings };
}

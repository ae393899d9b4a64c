import { InvalidLockfileError } from '../errors.ts';
import { YARN_TARBALL_ACCEPT } from './client-requests.ts';
import { parseDigest, parseSri } from './digests.ts';
import { isHttpUrl } from './text.ts';
import type { Expectation, SeedEntry, SeedPlan, SeedWarning } from './types.ts';

function unquote(v: string): string {
  const t = v.trim();
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) {
    try {
      return JSON.parse(t) as string;
    } catch {
      return t.slice(1, -1);
    }
  }
  return t;
}

/**
 * yarn v1 `yarn.lock`. A small reader rather than @yarnpkg/lockfile: that package is unmaintained since
 * 2018 and returns no line numbers, which every error and warning here must name. Only the two-level shape
 * yarn v1 writes is accepted: unindented `"spec", spec:` headers, then two-space `key value` fields (deeper
 * blocks such as `dependencies:` are skipped). yarn berry (`__metadata:`) is refused: its `checksum` hashes
 * yarn's own cache zip, not the downloaded tarball.
 */
export function parseYarnLock(text: string, file: string): SeedPlan {
  const entries: SeedEntry[] = [];
  const warnings: SeedWarning[] = [];
  let current: { line: number; name: string; fields: Map<string, string> } | undefined;
  const finish = (): void => {
    if (current === undefined) return;
    const { line, fields } = current;
    const version = fields.get('version');
    const name = `${current.name}${version === undefined ? '' : ` (${version})`}`;
    const source = { file, line, name };
    const resolved = fields.get('resolved');
    if (resolved === undefined) {
      warnings.push({ source, message: 'no "resolved" URL: not seeded', strict: true });
    } else if (!isHttpUrl(resolved)) {
      warnings.push({ source, message: `"resolved" is not an http(s) URL (${resolved.slice(0, 100)}): not seeded`, strict: true });
    } else {
      const hash = resolved.indexOf('#');
      const url = hash < 0 ? resolved : resolved.slice(0, hash);
      const integrity = fields.get('integrity');
      let expect: Expectation[] = integrity === undefined ? [] : parseSri(integrity);
      if (integrity !== undefined && expect.length === 0) throw new InvalidLockfileError(file, line, `${name}: unreadable integrity ${JSON.stringify(integrity.slice(0, 100))}`);
      if (expect.length === 0 && hash >= 0) {
        // yarn v1 without `integrity` checks the sha1 in the URL fragment.
        const sha1 = parseDigest(`sha1:${resolved.slice(hash + 1)}`);
        if (sha1 !== undefined) expect = [sha1];
      }
      if (expect.length === 0) warnings.push({ source, message: 'no integrity: recorded as fetched, unchecked', strict: true });
      entries.push({ source, url, accept: YARN_TARBALL_ACCEPT, expect, ...(expect.length === 0 ? { missingDigest: true } : {}) });
    }
    current = undefined;
  };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = i + 1;
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const indent = raw.length - raw.trimStart().length;
    if (indent === 0) {
      finish();
      if (raw.startsWith('__metadata:')) throw new InvalidLockfileError(file, line, 'a yarn berry (v2+) lockfile: only yarn v1 lockfiles are read (berry checksums hash its cache zips, not the tarballs)');
      if (!raw.trimEnd().endsWith(':')) throw new InvalidLockfileError(file, line, `expected an entry header ending in ":", got ${JSON.stringify(raw.slice(0, 100))}`);
      const specs = raw.trimEnd().slice(0, -1).split(/,\s*/).map(unquote);
      const first = specs[0] ?? '';
      const at = first.lastIndexOf('@');
      current = { line, name: at > 0 ? first.slice(0, at) : first, fields: new Map() };
      continue;
    }
    if (current === undefined) throw new InvalidLockfileError(file, line, 'indented line outside an entry');
    if (indent !== 2) continue; // a nested block (dependencies, optionalDependencies)
    const t = raw.trim();
    if (t.endsWith(':')) continue;
    const m = /^("(?:[^"\\]|\\.)*"|\S+)\s+(.+)$/.exec(t);
    if (m === null) throw new InvalidLockfileError(file, line, `expected "key value", got ${JSON.stringify(t.slice(0, 100))}`);
    current.fields.set(unquote(m[1]!), unquote(m[2]!));
  }
  finish();
  return { entries, resolvers: [], warnings };
}

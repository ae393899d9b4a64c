import { parse, TomlError } from 'smol-toml';
import { InvalidLockfileError } from '../errors.ts';
import { PIP_FILE_ACCEPT } from './client-requests.ts';
import { parseDigest } from './digests.ts';
import { isHttpUrl, LineCursor, lineOf } from './text.ts';
import type { SeedEntry, SeedPlan, SeedWarning } from './types.ts';

/** Parses TOML, turning a syntax error into file:line. */
export function parseToml(text: string, file: string): Record<string, unknown> {
  try {
    return parse(text);
  } catch (err) {
    const line = err instanceof TomlError ? err.line : 1;
    throw new InvalidLockfileError(file, line, `not valid TOML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}

/**
 * `uv.lock`: every `[[package]]`'s `sdist` and `wheels` (`url` + `hash`); a direct-URL package's sdist without
 * a `url` is its `source.url`. Local sources (editable, virtual, path, directory) have nothing to fetch; git
 * sources are warned about.
 */
export function parseUvLock(text: string, file: string): SeedPlan {
  const doc = parseToml(text, file);
  if (typeof doc['version'] !== 'number') throw new InvalidLockfileError(file, 1, 'no top-level "version": not a uv.lock');
  const packages = doc['package'];
  const entries: SeedEntry[] = [];
  const warnings: SeedWarning[] = [];
  if (packages === undefined) return { entries, resolvers: [], warnings };
  if (!Array.isArray(packages)) throw new InvalidLockfileError(file, lineOf(text, 'package'), '"package" is not an array of tables');
  const cursor = new LineCursor(text);
  for (const pkg of packages as Array<Record<string, unknown>>) {
    const name = typeof pkg['name'] === 'string' ? pkg['name'] : '?';
    const line = cursor.find(`name = ${JSON.stringify(name)}`);
    const label = `${name}@${typeof pkg['version'] === 'string' ? pkg['version'] : '?'}`;
    const src = (pkg['source'] ?? {}) as Record<string, unknown>;
    if (typeof src['git'] === 'string') {
      warnings.push({ source: { file, line, name: label }, message: `git source ${src['git']}: not seeded`, strict: false });
      continue;
    }
    const files: Array<Record<string, unknown>> = [];
    if (pkg['sdist'] !== undefined) files.push({ url: src['url'], ...(pkg['sdist'] as Record<string, unknown>) });
    if (Array.isArray(pkg['wheels'])) files.push(...(pkg['wheels'] as Array<Record<string, unknown>>));
    for (const f of files) {
      const url = f['url'];
      if (typeof url !== 'string' || !isHttpUrl(url)) {
        if (typeof src['registry'] === 'string' || typeof src['url'] === 'string') warnings.push({ source: { file, line, name: label }, message: 'a file without an http(s) url: not seeded', strict: true });
        continue;
      }
      const source = { file, line, name: `${label} ${decodeURIComponent(url.split('/').pop() ?? '')}` };
      const digest = typeof f['hash'] === 'string' ? parseDigest(f['hash']) : undefined;
      if (typeof f['hash'] === 'string' && digest === undefined) throw new InvalidLockfileError(file, line, `${label}: unreadable hash ${JSON.stringify(f['hash'])}`);
      if (digest === undefined) warnings.push({ source, message: 'no hash: recorded as fetched, unchecked', strict: true });
      entries.push({ source, url, accept: PIP_FILE_ACCEPT, expect: digest === undefined ? [] : [digest], ...(digest === undefined ? { missingDigest: true } : {}) });
    }
  }
  return { entries, resolvers: [], warnings };
}

import { InvalidLockfileError } from '../errors.ts';
import { NPM_TARBALL_ACCEPT } from './client-requests.ts';
import { parseSri } from './digests.ts';
import { PackedEntries } from './packed-entries.ts';
import { isHttpUrl, LineCursor, lineOf, parseJson } from './text.ts';
import type { SeedPlan, SeedWarning } from './types.ts';

export interface LockPackage {
  version?: unknown;
  resolved?: unknown;
  integrity?: unknown;
  link?: unknown;
  inBundle?: unknown;
  bundled?: unknown;
  dependencies?: unknown;
}

/**
 * `package-lock.json` / `npm-shrinkwrap.json`: v2 and v3 read `packages` (path → entry); v1 walks the nested
 * `dependencies`. Each `resolved` tarball is seeded with its `integrity`. Skipped: the root, workspace links
 * and bundled dependencies (they come inside their parent's tarball). Warned: entries with no `resolved`
 * (npm would have to ask the registry) or no `integrity`, and non-http sources (git, file).
 */
export function parseNpmLock(text: string, file: string): SeedPlan {
  const doc = parseJson(text, file) as { lockfileVersion?: unknown; packages?: unknown; dependencies?: unknown } | null;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidLockfileError(file, 1, 'not a package-lock.json (expected a JSON object)');
  const version = doc.lockfileVersion;
  if (typeof version !== 'number' || ![1, 2, 3].includes(version)) throw new InvalidLockfileError(file, lineOf(text, '"lockfileVersion"') || 1, `unsupported lockfileVersion ${JSON.stringify(version)} (expected 1, 2 or 3)`);
  const { add, plan } = npmPackages(file);
  if (version >= 2) {
    const packages = doc.packages;
    if (packages === null || typeof packages !== 'object' || Array.isArray(packages)) throw new InvalidLockfileError(file, 1, `lockfileVersion ${version} without a "packages" object`);
    // Entries appear in file order: one forward scan counts lines (a search from the top per entry is
    // quadratic, seconds for a large lockfile).
    const lines = new LineCursor(text);
    for (const [path, pkg] of Object.entries(packages as Record<string, unknown>)) {
      if (path === '') continue;
      const line = lines.find(JSON.stringify(path));
      if (pkg === null || typeof pkg !== 'object') throw new InvalidLockfileError(file, line, `entry ${JSON.stringify(path)} is not an object`);
      add(path, pkg, line);
    }
  } else {
    const walk = (deps: unknown, prefix: string): void => {
      if (deps === null || typeof deps !== 'object') return;
      for (const [name, pkg] of Object.entries(deps as Record<string, unknown>)) {
        if (pkg === null || typeof pkg !== 'object') throw new InvalidLockfileError(file, lineOf(text, JSON.stringify(name)), `dependency ${JSON.stringify(name)} is not an object`);
        const p = pkg as LockPackage;
        add(`${prefix}node_modules/${name}`, p, lineOf(text, `${JSON.stringify(name)}: {`) || lineOf(text, JSON.stringify(name)));
        walk(p.dependencies, `${prefix}node_modules/${name}/`);
      }
    };
    walk(doc.dependencies, '');
  }
  return plan;
}

/** What npm lockfile readers share: each package entry (`packages` path, its object, its line) to the plan. */
export function npmPackages(file: string): { add: (path: string, pkg: LockPackage, line: number) => void; plan: SeedPlan } {
  const entries = new PackedEntries();
  const warnings: SeedWarning[] = [];
  const add = (path: string, pkg: LockPackage, line: number): void => {
    if (pkg.link === true || pkg.inBundle === true || pkg.bundled === true) return;
    const name = `${path}${typeof pkg.version === 'string' ? `@${pkg.version}` : ''}`;
    const source = { file, line, name };
    if (typeof pkg.resolved !== 'string') {
      warnings.push({ source, message: 'no "resolved" URL: npm would ask the registry for it, which seeding cannot know', strict: true });
      return;
    }
    if (!isHttpUrl(pkg.resolved)) {
      warnings.push({ source, message: `"resolved" is not an http(s) URL (${pkg.resolved.slice(0, 100)}): not seeded`, strict: true });
      return;
    }
    const expect = typeof pkg.integrity === 'string' ? parseSri(pkg.integrity) : [];
    if (typeof pkg.integrity === 'string' && expect.length === 0) throw new InvalidLockfileError(file, line, `${name}: unreadable "integrity" ${JSON.stringify(pkg.integrity.slice(0, 100))}`);
    if (expect.length === 0) warnings.push({ source, message: 'no "integrity": recorded as fetched, unchecked', strict: true });
    entries.push({ source, url: pkg.resolved, accept: NPM_TARBALL_ACCEPT, expect, ...(expect.length === 0 ? { missingDigest: true } : {}) });
  };
  return { add, plan: { entries, resolvers: [], warnings } };
}

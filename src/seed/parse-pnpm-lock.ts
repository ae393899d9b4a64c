import { LineCounter, parseDocument } from 'yaml';
import { isMap, isScalar } from 'yaml';
import { InvalidLockfileError } from '../errors.ts';
import { PNPM_TARBALL_ACCEPT } from './client-requests.ts';
import { parseSri } from './digests.ts';
import { isHttpUrl } from './text.ts';
import type { SeedEntry, SeedPlan, SeedWarning } from './types.ts';

export const DEFAULT_NPM_REGISTRY = 'https://registry.npmjs.org';

/** Name and version of a pnpm package key: `/name@1.0.0` (v6), `name@1.0.0(peer@2)` (v9), `/name/1.0.0` (v5). */
export function pnpmNameVersion(key: string): { name: string; version: string } | undefined {
  const k = key.replace(/^\//, '').replace(/\(.*$/, '');
  // v5: `name/version[_peers]` (the peer suffix may itself hold `@`, so this form is tried first).
  const v5 = /^((?:@[^/]+\/)?[^/@]+)\/(\d[^/]*)$/.exec(k);
  if (v5 !== null) return { name: v5[1]!, version: v5[2]!.replace(/_.*$/, '') };
  const at = k.indexOf('@', k.startsWith('@') ? 1 : 0);
  if (at > 0) return { name: k.slice(0, at), version: k.slice(at + 1).replace(/_.*$/, '') };
  const slash = k.lastIndexOf('/');
  if (slash > 0) return { name: k.slice(0, slash), version: k.slice(slash + 1).replace(/_.*$/, '') };
  return undefined;
}

/** The registry tarball URL npm and pnpm use: `REGISTRY/@scope/name/-/name-1.0.0.tgz`. */
export function npmTarballUrl(registry: string, name: string, version: string): string {
  const base = name.includes('/') ? name.split('/')[1]! : name;
  return `${registry.replace(/\/+$/, '')}/${name}/-/${base}-${version}.tgz`;
}

/**
 * `pnpm-lock.yaml` (lockfile v5, v6 and v9): every `packages` entry with `resolution.integrity`, from
 * `resolution.tarball` or else the registry URL pnpm derives from name and version. Entries resolved from git
 * or a directory are warned about.
 */
export function parsePnpmLock(text: string, file: string, registry = DEFAULT_NPM_REGISTRY): SeedPlan {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: false });
  const firstError = doc.errors[0];
  if (firstError !== undefined) throw new InvalidLockfileError(file, counter.linePos(firstError.pos[0]).line, `not valid YAML: ${firstError.message.split('\n')[0]}`);
  const root = doc.contents;
  if (!isMap(root)) throw new InvalidLockfileError(file, 1, 'not a pnpm-lock.yaml (expected a mapping)');
  const version = root.get('lockfileVersion');
  if (version === undefined) throw new InvalidLockfileError(file, 1, 'no lockfileVersion: not a pnpm-lock.yaml');
  const entries: SeedEntry[] = [];
  const warnings: SeedWarning[] = [];
  const packages = root.get('packages', true);
  if (packages === undefined) return { entries, resolvers: [], warnings };
  if (!isMap(packages)) throw new InvalidLockfileError(file, lineOfNode(packages, counter), '"packages" is not a mapping');
  for (const pair of packages.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const line = lineOfNode(pair.key, counter);
    const nv = pnpmNameVersion(key);
    const source = { file, line, name: nv === undefined ? key : `${nv.name}@${nv.version}` };
    if (!isMap(pair.value)) throw new InvalidLockfileError(file, line, `package ${JSON.stringify(key)} is not a mapping`);
    const resolution = pair.value.get('resolution');
    const res = (resolution !== null && typeof resolution === 'object' && 'toJSON' in resolution ? (resolution as { toJSON(): unknown }).toJSON() : resolution) as Record<string, unknown> | undefined;
    if (res === undefined || typeof res !== 'object') {
      warnings.push({ source, message: 'no "resolution": not seeded', strict: true });
      continue;
    }
    if (typeof res['type'] === 'string' && res['type'] !== 'tarball') {
      warnings.push({ source, message: `resolved from ${res['type']} (${typeof res['repo'] === 'string' ? res['repo'] : typeof res['directory'] === 'string' ? res['directory'] : ''}): not seeded`, strict: true });
      continue;
    }
    const tarball = typeof res['tarball'] === 'string' ? res['tarball'] : undefined;
    if (tarball !== undefined && !isHttpUrl(tarball)) {
      warnings.push({ source, message: `tarball ${tarball.slice(0, 100)} is not an http(s) URL: not seeded`, strict: true });
      continue;
    }
    if (tarball === undefined && nv === undefined) throw new InvalidLockfileError(file, line, `cannot tell name and version from package key ${JSON.stringify(key)}`);
    const url = tarball ?? npmTarballUrl(registry, nv!.name, nv!.version);
    const expect = typeof res['integrity'] === 'string' ? parseSri(res['integrity']) : [];
    if (expect.length === 0) warnings.push({ source, message: 'no integrity: recorded as fetched, unchecked', strict: true });
    entries.push({ source, url, accept: PNPM_TARBALL_ACCEPT, expect, ...(expect.length === 0 ? { missingDigest: true } : {}) });
  }
  return { entries, resolvers: [], warnings };
}

function lineOfNode(node: unknown, counter: LineCounter): number {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range === undefined ? 0 : counter.linePos(range[0]).line;
}

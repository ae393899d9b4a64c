import { InvalidLockfileError } from '../errors.ts';
import { CARGO_DOWNLOAD_ACCEPT, CARGO_INDEX_ACCEPT } from './client-requests.ts';
import { parseDigest } from './digests.ts';
import { LineCursor, lineOf } from './text.ts';
import { parseToml } from './parse-uv-lock.ts';
import type { EntrySource, SeedEntry, SeedPlan, SeedResolver, SeedWarning } from './types.ts';

export const CRATES_IO_SOURCE = 'registry+https://github.com/rust-lang/crates.io-index';
export const CRATES_IO_SPARSE = 'https://index.crates.io/';

/** Index path of a crate in a cargo registry index (`1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`), lower case. */
export function cargoIndexPath(name: string): string {
  const n = name.toLowerCase();
  if (n.length <= 2) return `${n.length}/${n}`;
  if (n.length === 3) return `3/${n[0]!}/${n}`;
  return `${n.slice(0, 2)}/${n.slice(2, 4)}/${n}`;
}

/** The download URL from a registry's `dl` template (cargo's markers; none means `/{crate}/{version}/download`). */
export function crateDownloadUrl(dl: string, name: string, version: string, checksum: string): string {
  if (!/\{(crate|version|prefix|lowerprefix|sha256-checksum)\}/.test(dl)) return `${dl.replace(/\/+$/, '')}/${name}/${version}/download`;
  const prefix = name.length <= 2 ? String(name.length) : name.length === 3 ? `3/${name[0]!}` : `${name.slice(0, 2)}/${name.slice(2, 4)}`;
  return dl
    .replaceAll('{crate}', name)
    .replaceAll('{version}', version)
    .replaceAll('{prefix}', prefix)
    .replaceAll('{lowerprefix}', prefix.toLowerCase())
    .replaceAll('{sha256-checksum}', checksum);
}

interface Crate {
  source: EntrySource;
  name: string;
  version: string;
  checksum: string | undefined;
}

/**
 * `Cargo.lock` (v1–v4): every registry crate with its `checksum` (v1 keeps them under `[metadata]`). A crate
 * of crates.io is fetched from the sparse index (`--cargo-index` replaces it, as cargo's source replacement
 * does); `sparse+URL` sources are used as they are. Per registry a resolver records `config.json`, reads its
 * `dl` template, and seeds each crate's index file (cargo fetch asks for them) and its `.crate`. Git-index
 * (`registry+` other than crates.io) and git sources are warned about; path crates have no source.
 */
export function parseCargoLock(text: string, file: string, cargoIndex = CRATES_IO_SPARSE): SeedPlan {
  const doc = parseToml(text, file);
  const packages = doc['package'];
  const warnings: SeedWarning[] = [];
  if (packages !== undefined && !Array.isArray(packages)) throw new InvalidLockfileError(file, lineOf(text, '[[package]]') || 1, '"package" is not an array of tables');
  const metadata = (doc['metadata'] ?? {}) as Record<string, unknown>;
  const byIndex = new Map<string, Crate[]>();
  const cursor = new LineCursor(text);
  for (const pkg of (packages ?? []) as Array<Record<string, unknown>>) {
    const name = pkg['name'];
    const version = pkg['version'];
    const needle = `name = ${JSON.stringify(name)}`;
    const line = cursor.find(needle);
    if (typeof name !== 'string' || typeof version !== 'string') throw new InvalidLockfileError(file, line, 'a [[package]] without a string name and version');
    const src = pkg['source'];
    if (src === undefined) continue; // a path crate of this workspace
    const source = { file, line, name: `${name} ${version}` };
    if (typeof src !== 'string') throw new InvalidLockfileError(file, line, `${name} ${version}: "source" is not a string`);
    let index: string;
    if (src === CRATES_IO_SOURCE) index = cargoIndex;
    else if (src.startsWith('sparse+')) index = src.slice('sparse+'.length);
    else {
      warnings.push({ source, message: `source ${src.slice(0, 100)} is not a sparse registry: not seeded`, strict: true });
      continue;
    }
    const checksum = typeof pkg['checksum'] === 'string' ? pkg['checksum'] : typeof metadata[`checksum ${name} ${version} (${src})`] === 'string' ? (metadata[`checksum ${name} ${version} (${src})`] as string) : undefined;
    if (checksum !== undefined && parseDigest(`sha256:${checksum}`) === undefined) throw new InvalidLockfileError(file, line, `${name} ${version}: unreadable checksum ${JSON.stringify(checksum)}`);
    if (checksum === undefined) warnings.push({ source, message: 'no checksum: recorded as fetched, unchecked', strict: true });
    const idx = index.endsWith('/') ? index : `${index}/`;
    byIndex.set(idx, [...(byIndex.get(idx) ?? []), { source, name, version, checksum }]);
  }
  const resolvers: SeedResolver[] = [...byIndex].map(([index, crates]) => ({
    source: { file, line: crates[0]!.source.line, name: index },
    label: `cargo registry ${index}`,
    async resolve(ctx) {
      const config = await ctx.fetchDocument({ source: { file, line: crates[0]!.source.line, name: `${index}config.json` }, url: `${index}config.json`, accept: CARGO_INDEX_ACCEPT, expect: [] });
      let dl: unknown;
      try {
        dl = (JSON.parse(config.text) as { dl?: unknown }).dl;
      } catch (err) {
        throw new InvalidLockfileError(file, crates[0]!.source.line, `registry ${index}config.json is not JSON: ${(err as Error).message}`);
      }
      if (typeof dl !== 'string') throw new InvalidLockfileError(file, crates[0]!.source.line, `registry ${index}config.json has no "dl" template`);
      const entries: SeedEntry[] = [];
      for (const c of crates) {
        entries.push({ source: { ...c.source, name: `${c.name} (index)` }, url: `${index}${cargoIndexPath(c.name)}`, accept: CARGO_INDEX_ACCEPT, expect: [] });
        const expect = c.checksum === undefined ? [] : [{ algorithm: 'sha256' as const, hex: c.checksum.toLowerCase() }];
        entries.push({ source: c.source, url: crateDownloadUrl(dl, c.name, c.version, c.checksum ?? ''), accept: CARGO_DOWNLOAD_ACCEPT, expect, ...(expect.length === 0 ? { missingDigest: true } : {}) });
      }
      return { entries, warnings: [] };
    },
  }));
  return { entries: [], resolvers, warnings };
}

import { InvalidLockfileError } from '../errors.ts';
import { GO_ACCEPT } from './client-requests.ts';
import type { SeedEntry, SeedPlan } from './types.ts';

export const DEFAULT_GOPROXY = 'https://proxy.golang.org';

/** GOPROXY path escaping (golang.org/x/mod/module.EscapePath): each upper-case letter becomes `!` + lower case. */
export function escapeModulePath(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/**
 * `go.sum`: `MODULE VERSION h1:HASH` lines seed the module `.zip` (its dirhash checked) and `.info`;
 * `MODULE VERSION/go.mod h1:HASH` lines seed the `.mod` (hashed as a lone go.mod). URLs follow the GOPROXY
 * protocol under `goProxy`. Read by hand: three fields a line, and no npm package reads go.sum.
 */
export function parseGoSum(text: string, file: string, goProxy = DEFAULT_GOPROXY): SeedPlan {
  const entries: SeedEntry[] = [];
  const base = goProxy.replace(/\/+$/, '');
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '') return;
    const parts = t.split(/\s+/);
    if (parts.length !== 3) throw new InvalidLockfileError(file, line, `expected "MODULE VERSION[/go.mod] h1:HASH", got ${JSON.stringify(t.slice(0, 120))}`);
    const [mod, ver, hash] = parts as [string, string, string];
    if (!/^h1:[A-Za-z0-9+/]{43}=$/.test(hash)) throw new InvalidLockfileError(file, line, `${mod} ${ver}: unsupported hash ${JSON.stringify(hash.slice(0, 60))} (expected h1:BASE64)`);
    const isMod = ver.endsWith('/go.mod');
    const version = isMod ? ver.slice(0, -'/go.mod'.length) : ver;
    if (!/^v\d/.test(version)) throw new InvalidLockfileError(file, line, `${mod}: ${JSON.stringify(version)} is not a module version`);
    // The go command sends the escaped path through url.PathEscape, which encodes `!` as %21; the request
    // key keeps %21 and a raw `!` apart (RFC 3986 §6.2.2 decodes only unreserved characters), so seed the same.
    const urlPath = (p: string): string => escapeModulePath(p).replaceAll('!', '%21');
    const at = `${base}/${urlPath(mod)}/@v/${urlPath(version)}`;
    const name = `${mod}@${version}`;
    if (isMod) {
      entries.push({ source: { file, line, name: `${name}/go.mod` }, url: `${at}.mod`, accept: GO_ACCEPT, expect: [{ algorithm: 'go-h1', over: 'mod', value: hash }] });
    } else {
      entries.push({ source: { file, line, name: `${name}.info` }, url: `${at}.info`, accept: GO_ACCEPT, expect: [] });
      entries.push({ source: { file, line, name }, url: `${at}.zip`, accept: GO_ACCEPT, expect: [{ algorithm: 'go-h1', over: 'zip', value: hash }] });
    }
  });
  return { entries, resolvers: [], warnings: [] };
}

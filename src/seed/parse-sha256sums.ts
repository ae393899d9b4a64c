import { InvalidLockfileError } from '../errors.ts';
import { GENERIC_ACCEPT } from './client-requests.ts';
import { parseDigest } from './digests.ts';
import { isHttpUrl } from './text.ts';
import type { SeedEntry, SeedPlan } from './types.ts';

/**
 * `SHA256SUMS`-style files (`sha256sum`/`sha512sum` output `HEX  NAME` or `HEX *NAME`, and the BSD form
 * `SHA256 (NAME) = HEX`). A NAME that is not a URL is resolved against `baseUrl` (`--base-url`). Read by
 * hand: two fields a line, too little for a library.
 */
export function parseSha256Sums(text: string, file: string, baseUrl?: string): SeedPlan {
  const entries: SeedEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const gnu = /^([0-9a-fA-F]{40,128})\s+\*?(.+)$/.exec(t);
    const bsd = /^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$/i.exec(t);
    const hex = gnu?.[1] ?? bsd?.[3];
    const name = (gnu?.[2] ?? bsd?.[2])?.trim();
    const digest = hex === undefined ? undefined : bsd !== null ? parseDigest(`${bsd[1]!}:${hex}`) : parseDigest(hex);
    if (digest === undefined || name === undefined) throw new InvalidLockfileError(file, line, `expected "HEX  NAME" or "SHA256 (NAME) = HEX", got ${JSON.stringify(t.slice(0, 120))}`);
    let url: string;
    if (isHttpUrl(name)) url = name;
    else if (baseUrl !== undefined) url = new URL(name.split('/').map(encodeURIComponent).join('/'), baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).toString();
    else throw new InvalidLockfileError(file, line, `${name} is a file name, not a URL: give --base-url URL to say where it is downloaded from`);
    entries.push({ source: { file, line, name }, url, accept: GENERIC_ACCEPT, expect: [digest] });
  });
  return { entries, resolvers: [], warnings: [] };
}

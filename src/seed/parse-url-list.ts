import { InvalidLockfileError } from '../errors.ts';
import { GENERIC_ACCEPT } from './client-requests.ts';
import { parseDigest } from './digests.ts';
import { isHttpUrl } from './text.ts';
import type { SeedEntry, SeedPlan, SeedWarning } from './types.ts';

/**
 * A plain URL list: one URL per line, optionally followed by digests (`sha256=HEX`, `sha512=HEX`,
 * `sha256:HEX` or SRI `sha512-BASE64`); `#` starts a comment (at line start or after whitespace). Read by
 * hand: the format is this tool's own.
 */
export function parseUrlList(text: string, file: string): SeedPlan {
  const entries: SeedEntry[] = [];
  const warnings: SeedWarning[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.replace(/(^|\s)#.*$/, '').trim();
    if (t === '') return;
    const [url, ...rest] = t.split(/\s+/);
    if (!isHttpUrl(url!)) throw new InvalidLockfileError(file, line, `expected an http(s) URL, got ${JSON.stringify(url!.slice(0, 120))}`);
    const expect = rest.map((tok) => {
      const d = parseDigest(tok);
      if (d === undefined) throw new InvalidLockfileError(file, line, `unreadable digest ${JSON.stringify(tok.slice(0, 120))} (expected sha256=HEX, sha512=HEX or an SRI string)`);
      return d;
    });
    const source = { file, line, name: url! };
    entries.push({ source, url: url!, accept: GENERIC_ACCEPT, expect, ...(expect.length === 0 ? { missingDigest: true } : {}) });
    if (expect.length === 0) warnings.push({ source, message: 'no digest: recorded as fetched, unchecked', strict: true });
  });
  return { entries, resolvers: [], warnings };
}

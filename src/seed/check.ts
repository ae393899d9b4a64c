import { createHash } from 'node:crypto';
import { DigestMismatchError, InvalidArchiveError } from '../errors.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { toHex } from '../protocol/signature.ts';
import { decidingDigests, showDigest } from './digests.ts';
import { goModHash, goZipHash } from './go-dirhash.ts';
import type { RangeReader } from './zip-reader.ts';
import type { BodyDigest, SeedEntry } from './types.ts';

/** Largest go.mod read whole for its hash (the module proxy protocol has no such limit, Go itself uses 16 MiB). */
export const MAX_GO_MOD_BYTES = 16 * 1024 * 1024;

/** Where an entry is named in messages: `file:line name`. */
export function describeEntry(entry: SeedEntry): string {
  return `${entry.source.file}${entry.source.line > 0 ? `:${entry.source.line}` : ''} ${entry.source.name}`;
}

function mismatch(entry: SeedEntry, url: string, expected: string, got: string): DigestMismatchError {
  return new DigestMismatchError(`${describeEntry(entry)}: ${url} does not match its lockfile: expected ${expected}, got ${got}; nothing recorded`);
}

async function sha1Of(reader: RangeReader): Promise<string> {
  const h = createHash('sha1');
  for await (const c of reader.stream(0, reader.size)) h.update(c);
  return h.digest('hex');
}

/**
 * Checks a record's body against what the lockfile promises: sha256/sha512 from the digests every record
 * carries; sha1 and Go's h1 dirhashes by reading the body back from the block store (blocks verified) —
 * all before the record is committed. Throws DigestMismatchError naming the entry and both digests, or
 * InvalidArchiveError when a body the lockfile hashes as a Go module zip is not a readable zip.
 */
export async function checkBody(record: FetchRecord, entry: SeedEntry, url: string, reader: RangeReader): Promise<void> {
  const deciding = decidingDigests(entry.expect);
  if (deciding.length > 0) {
    const algorithm = deciding[0]!.algorithm;
    const got: BodyDigest = {
      algorithm,
      hex: algorithm === 'sha256' ? toHex(record.response.sha256) : algorithm === 'sha512' ? toHex(record.response.sha512) : await sha1Of(reader),
    };
    if (!deciding.some((d) => d.hex === got.hex)) throw mismatch(entry, url, deciding.map(showDigest).join(' or '), showDigest(got));
  }
  for (const e of entry.expect) {
    if (e.algorithm !== 'go-h1') continue;
    let got: string;
    if (e.over === 'mod') {
      if (reader.size > MAX_GO_MOD_BYTES) throw mismatch(entry, url, e.value, `a ${reader.size}-byte body (larger than any go.mod)`);
      got = goModHash(await reader.read(0, reader.size));
    } else {
      try {
        got = await goZipHash(reader);
      } catch (err) {
        // A body that is not a zip cannot be compared: it is named as such (ORACLE_ERR_INVALID_ARCHIVE).
        if (err instanceof InvalidArchiveError) throw new InvalidArchiveError(`${describeEntry(entry)}: ${url} is ${err.message} (its lockfile expects ${e.value}); nothing recorded`, { cause: err });
        throw err;
      }
    }
    if (got !== e.value) throw mismatch(entry, url, e.value, got);
  }
}

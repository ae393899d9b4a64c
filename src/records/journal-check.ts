import type { DecodedEntry } from '../netlock/file.ts';
import { keyFromId } from '../netlock/verify.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { decodeRecord } from '../protocol/record.ts';
import { verifyRecord } from '../protocol/verify-record.ts';
import type { SignedRecord } from '../protocol/signature.ts';

/** A journal line `recover` (or the next record run) refused, and why. */
export interface RefusedJournalLine {
  /** `METHOD url` of the line's request key. */
  entry: string;
  record: string;
  reason: string;
}

export interface JournalCheck {
  good: DecodedEntry[];
  refused: RefusedJournalLine[];
}

/**
 * Checks journal lines before they become netlock entries: the record block is present and hashes to its
 * CID, the signature is the record's oracle key's signature of that CID, the record answers the line's
 * request key, and (when `trusted` is given) the key is one of those. A line that fails is refused with its
 * reason, never silently kept: a journal is a plain file anyone with write access can append to.
 */
export async function checkJournalEntries(entries: ReadonlyArray<{ key: string; signed: SignedRecord }>, source: BlockSource, trusted?: readonly Uint8Array[]): Promise<JournalCheck> {
  const verified = verifyingSource(source);
  const good: DecodedEntry[] = [];
  const refused: RefusedJournalLine[] = [];
  for (const e of entries) {
    let name = e.key.split('\n').slice(0, 2).reverse().join(' ');
    try {
      const key = keyFromId(e.key);
      name = `${key.method} ${key.url}`;
      const record = decodeRecord(await verified.get(e.signed.record));
      verifyRecord(e.signed, record, key, trusted ?? [record.oracle]);
      good.push({ key: e.key, signed: e.signed, record });
    } catch (err) {
      refused.push({ entry: name, record: e.signed.record.toString(), reason: (err as Error).message });
    }
  }
  return { good, refused };
}

/** One message naming how many lines were refused and the first few of them. */
export function describeRefused(refused: readonly RefusedJournalLine[], journalPath: string | undefined): string {
  const shown = refused.slice(0, 5).map((r) => `${r.entry} (record ${r.record}): ${r.reason}`);
  const more = refused.length > shown.length ? `; and ${refused.length - shown.length} more` : '';
  return `refused ${refused.length} line(s) of ${journalPath ?? 'the journal'} whose record or signature did not verify: ${shown.join('; ')}${more}`;
}

import { InvalidRecordError } from '../errors.ts';
import type { BlockSource } from './blocks.ts';
import { verifyingSource } from './blocks.ts';
import { decodeRecord } from './record.ts';
import type { FetchRecord } from './record.ts';
import type { RequestKey } from './request-key.ts';
import { assertTrustedKey, verifyRecordSignature } from './signature.ts';
import type { SignedRecord } from './signature.ts';

/**
 * Checks a decoded record against the entry that names it: signature by its oracle key, that key trusted,
 * and the record really answers `key` (a netlock cannot re-point a key at another URL's record).
 */
export function verifyRecord(signed: SignedRecord, record: FetchRecord, key: RequestKey, trusted: readonly Uint8Array[]): void {
  verifyRecordSignature(signed, record.oracle);
  assertTrustedKey(record.oracle, trusted, `Record ${signed.record}`);
  const r = record.request;
  const sameVariant = Object.entries(key.variant).every(([h, v]) => (r.headers[h] ?? '') === v);
  if (r.method !== key.method || r.url !== key.url || !sameVariant || (r.bodyDigest ?? '') !== (key.bodyDigest ?? '')) {
    throw new InvalidRecordError(`Record ${signed.record} answers ${r.method} ${r.url}, not the netlock key ${key.method} ${key.url}`);
  }
}

/** Loads the record a netlock entry names (its block verified against the CID) and checks it with `verifyRecord`. */
export async function loadVerifiedRecord(signed: SignedRecord, key: RequestKey, source: BlockSource, trusted: readonly Uint8Array[]): Promise<FetchRecord> {
  const record = decodeRecord(await verifyingSource(source).get(signed.record));
  verifyRecord(signed, record, key, trusted);
  return record;
}

import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockMissingError, InvalidNetlockError } from '../errors.ts';
import { DAG_CBOR_CODE } from '../protocol/blocks.ts';
import { blockLinks, cidsIn, WALKABLE_CODECS } from '../store/block-links.ts';
import { keyFromId } from './verify.ts';

/** A link of a netlock block, labelled with what it belongs to (for error messages). */
export interface CarLink {
  cid: CID;
  /** `netlock root`, `netlock index`, or the entry's request (`GET https://…`). */
  label: string;
  /** The link is a netlock entry's record (from a leaf index page). */
  entry: boolean;
}

/** The links of a block in order (`blockLinks`), labelled with the netlock entry they belong to. */
export function carLinks(cid: CID, bytes: Uint8Array, label: string): CarLink[] {
  if (!WALKABLE_CODECS.has(cid.code)) {
    throw new InvalidNetlockError(`Cannot export ${label}: block ${cid} has codec 0x${cid.code.toString(16)}, which is not raw, dag-pb or dag-cbor`);
  }
  if (cid.code === DAG_CBOR_CODE) {
    let value: unknown;
    try {
      value = dagCbor.decode(bytes);
    } catch (cause) {
      throw new InvalidNetlockError(`Cannot export ${label}: block ${cid} is not valid DAG-CBOR`, { cause });
    }
    const page = value as { leaf?: unknown; entries?: unknown } | null;
    if (page !== null && typeof page === 'object' && page.leaf === true && Array.isArray(page.entries)) {
      // A leaf index page: label each record (and, below it, its body) with the entry's request.
      const links: CarLink[] = [];
      for (const e of page.entries as unknown[]) {
        const [key, record] = Array.isArray(e) ? (e as unknown[]) : [];
        const recordCid = CID.asCID(record);
        if (recordCid === null) continue;
        const name = typeof key === 'string' ? entryName(key) : label;
        links.push({ cid: recordCid, label: name, entry: true });
        // Witnesses' countersignatures (and, below them, a dissenting witness's own record and body).
        const witnesses = Array.isArray(e) ? (e as unknown[])[3] : undefined;
        for (const w of Array.isArray(witnesses) ? (witnesses as unknown[]) : []) {
          const c = Array.isArray(w) ? CID.asCID((w as unknown[])[0]) : null;
          if (c !== null) links.push({ cid: c, label: name, entry: false });
        }
      }
      return links;
    }
    return cidsIn(value).map((c) => ({ cid: c, label, entry: false }));
  }
  try {
    return blockLinks(cid, bytes).map((c) => ({ cid: c, label, entry: false }));
  } catch (cause) {
    throw new BlockCorruptError(cid.toString(), `Cannot export ${label}: block ${cid} is not valid dag-pb (${(cause as Error).message})`);
  }
}

function entryName(keyId: string): string {
  try {
    const k = keyFromId(keyId);
    return `${k.method} ${k.url}`;
  } catch {
    return `entry ${JSON.stringify(keyId.slice(0, 100))}`;
  }
}

/** Re-throws a block error with the context of what it belonged to, keeping its class and code. */
export function withContext(err: unknown, context: string): unknown {
  if (err instanceof BlockMissingError) return new BlockMissingError(err.cid, `${context}: ${err.message}`);
  if (err instanceof BlockCorruptError) return new BlockCorruptError(err.cid, `${context}: ${err.message}`);
  return err;
}

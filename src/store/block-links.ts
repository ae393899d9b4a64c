import * as dagCbor from '@ipld/dag-cbor';
import * as dagPb from '@ipld/dag-pb';
import { CID } from 'multiformats/cid';
import { DAG_CBOR_CODE, DAG_PB_CODE, RAW_CODE } from '../protocol/blocks.ts';

/** Codecs whose links `blockLinks` can follow (those of our CID profile and netlocks). */
export const WALKABLE_CODECS: ReadonlySet<number> = new Set([RAW_CODE, DAG_PB_CODE, DAG_CBOR_CODE]);

/**
 * The CIDs a block links to, in order: dag-pb `Links`, every CID anywhere in a DAG-CBOR value, none for raw
 * (what Kubo's `dag export` and `refs` follow). Throws the codec's decode error for malformed bytes, and an
 * Error for a codec outside WALKABLE_CODECS.
 */
export function blockLinks(cid: CID, bytes: Uint8Array): CID[] {
  if (cid.code === RAW_CODE) return [];
  if (cid.code === DAG_PB_CODE) return dagPb.decode(bytes).Links.map((l) => l.Hash);
  if (cid.code === DAG_CBOR_CODE) return cidsIn(dagCbor.decode(bytes));
  throw new Error(`codec 0x${cid.code.toString(16)} is not raw, dag-pb or dag-cbor`);
}

/** Every CID in a decoded DAG-CBOR value, depth-first in document order. */
export function cidsIn(value: unknown): CID[] {
  const out: CID[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 64 || v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    const c = CID.asCID(v);
    if (c !== null) out.push(c);
    else if (Array.isArray(v)) for (const x of v) walk(x, depth + 1);
    else for (const x of Object.values(v)) walk(x, depth + 1);
  };
  walk(value, 0);
  return out;
}

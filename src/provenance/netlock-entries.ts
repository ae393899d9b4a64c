/** The netlock side of provenance: every entry of a netlock DAG with its verified record. */
import type { CID } from 'multiformats/cid';
import { InvalidNetlockError } from '../errors.ts';
import { NetlockReader } from '../netlock/dag.ts';
import type { NetlockRoot } from '../netlock/dag.ts';
import { keyFromId } from '../netlock/verify.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import type { ProvenanceEntry } from '../protocol/provenance.ts';
import { loadVerifiedRecord } from '../protocol/verify-record.ts';

export interface NetlockForProvenance {
  readonly root: CID;
  readonly rootValue: NetlockRoot;
  readonly entries: readonly ProvenanceEntry[];
}

/**
 * Reads the netlock under `root` from `store`: every index page and record block checked against its CID, every
 * record's signature against its oracle key (one of the keys the root names, or of `trusted` when given) and
 * against the key it answers. The statement is built from this signed DAG, never from the readable file, so an
 * edited `netlock.json` cannot put a dependency into a provenance statement.
 */
export async function readNetlockForProvenance(root: CID, store: BlockSource, trusted?: readonly Uint8Array[], options: AbortOptions = {}): Promise<NetlockForProvenance> {
  const source = verifyingSource(store);
  const reader = new NetlockReader(root, source);
  const rootValue = await reader.rootValue(options);
  const keys = trusted ?? rootValue.oracles;
  const entries: ProvenanceEntry[] = [];
  for await (const entry of reader.entries(options)) {
    const record = await loadVerifiedRecord(entry.signed, keyFromId(entry.key), source, keys);
    entries.push({ key: entry.key, record, recordCid: entry.signed.record });
  }
  if (entries.length !== rootValue.count) throw new InvalidNetlockError(`Netlock ${root} root says ${rootValue.count} entries, index holds ${entries.length}`);
  return { root, rootValue, entries };
}

/** The netlock side of provenance: every entry of a netlock DAG with its verified record. */
import type { CID } from 'multiformats/cid';
import { InvalidNetlockError } from '../errors.ts';
import type { NetlockRoot } from '../netlock/dag.ts';
import { openEntryRecords } from '../netlock/entry-records.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import type { ProvenanceEntry } from '../protocol/provenance.ts';

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
  const netlock = await openEntryRecords(root, store, { ...options, signedBy: trusted ?? 'root' });
  const { rootValue } = netlock;
  const entries: ProvenanceEntry[] = [];
  for await (const e of netlock.entries()) entries.push({ key: e.key, record: e.record, recordCid: e.signed.record });
  if (entries.length !== rootValue.count) throw new InvalidNetlockError(`Netlock ${root} root says ${rootValue.count} entries, index holds ${entries.length}`);
  return { root, rootValue, entries };
}

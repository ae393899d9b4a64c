/**
 * Every entry of a netlock DAG with its record: what provenance, the report page, `lockfile` and a record run
 * keeping an existing netlock all read, in one place.
 */
import type { CID } from 'multiformats/cid';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { decodeRecord } from '../protocol/record.ts';
import { loadVerifiedRecord } from '../protocol/verify-record.ts';
import { NetlockReader, WALK_ONCE } from './dag.ts';
import type { NetlockEntry, NetlockRoot } from './dag.ts';
import type { DecodedEntry } from './file.ts';
import { keyFromId } from './verify.ts';

/** Records read at once (reads overlap; memory stays small whatever the netlock's size). */
const READ_BATCH = 64;

export interface EntryRecordsOptions extends AbortOptions {
  /**
   * Also check each record's signature and that it answers its entry's key (`loadVerifiedRecord`): against the
   * oracle keys the root names ('root') or these keys. Without it records are decoded only; every block is
   * checked against its CID either way.
   */
  readonly signedBy?: 'root' | readonly Uint8Array[];
}

export interface EntryRecords {
  readonly rootValue: NetlockRoot;
  /** The entries in key order, each with its record (countersignatures are not decoded). */
  entries(): AsyncGenerator<DecodedEntry>;
}

/** Opens the netlock at `root` in `store`: its root block now, its entries and records as they are iterated. */
export async function openEntryRecords(root: CID, store: BlockSource, options: EntryRecordsOptions = {}): Promise<EntryRecords> {
  const { signedBy, ...abort } = options;
  const source = verifyingSource(store);
  const reader = new NetlockReader(root, source, WALK_ONCE);
  const rootValue = await reader.rootValue(abort);
  const keys = signedBy === 'root' ? rootValue.oracles : signedBy;
  const withRecord = async (e: NetlockEntry): Promise<DecodedEntry> => ({
    key: e.key,
    signed: e.signed,
    record: keys === undefined ? decodeRecord(await source.get(e.signed.record, abort)) : await loadVerifiedRecord(e.signed, keyFromId(e.key), source, keys),
  });
  return {
    rootValue,
    async *entries(): AsyncGenerator<DecodedEntry> {
      let batch: NetlockEntry[] = [];
      for await (const e of reader.entries(abort)) {
        batch.push(e);
        if (batch.length < READ_BATCH) continue;
        yield* await Promise.all(batch.map(withRecord));
        batch = [];
      }
      yield* await Promise.all(batch.map(withRecord));
    },
  };
}

/**
 * Before a machine boots: does this host hold every block the netlock commits to? The guest asks for them
 * one by one, and a host that lacks one must abort the run (design §7), so a missing block found only in
 * the middle of a build would waste it. The walk is the CAR export's (root, index pages, records, body
 * DAGs, each block once); structure blocks are read and verified, raw leaves only looked up.
 */
import type { CID } from 'multiformats/cid';
import { BlockMissingError, throwIfAborted } from '../errors.ts';
import { carLinks, withContext } from '../netlock/car-links.ts';
import { NetlockReader } from '../netlock/dag.ts';
import { RAW_CODE, verifyingSource } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { decodeRecord } from '../protocol/record.ts';
import { cidKey } from '../protocol/cid-key.ts';

/** What the walk needs of a store: blocks, and a cheap presence check for leaves. */
export interface PresenceSource extends BlockSource {
  has(cid: CID, options?: AbortOptions): Promise<boolean>;
}

export interface NetlockBlocks {
  /** Blocks the netlock reaches (each counted once). */
  blocks: number;
  /** Netlock entries. */
  entries: number;
  /** The newest `fetchedAt` of its records (unix seconds), or undefined for an empty netlock. */
  newestFetchedAt: number | undefined;
}

/** Walks the netlock `root`; throws BlockMissingError naming the first missing block and what it belongs to. */
export async function checkNetlockBlocks(root: CID, store: PresenceSource, options: AbortOptions = {}): Promise<NetlockBlocks> {
  const verified = verifyingSource(store);
  try {
    await new NetlockReader(root, verified).rootValue(options);
  } catch (err) {
    throw withContext(err, 'netlock root');
  }
  const seen = new Set<string>([cidKey(root)]);
  const stack: Array<{ cid: CID; label: string; record: boolean }> = [{ cid: root, label: 'netlock root', record: false }];
  const result: NetlockBlocks = { blocks: 0, entries: 0, newestFetchedAt: undefined };
  while (stack.length > 0) {
    throwIfAborted(options.signal);
    const item = stack.pop()!;
    result.blocks++;
    if (item.cid.code === RAW_CODE) {
      if (!(await store.has(item.cid, options))) throw new BlockMissingError(item.cid.toString(), `Block ${item.cid} of ${item.label} is not in this host's store`);
      continue;
    }
    let bytes: Uint8Array;
    try {
      bytes = await verified.get(item.cid, options);
    } catch (err) {
      throw withContext(err, `Block of ${item.label}`);
    }
    if (item.record) {
      result.entries++;
      const at = Date.parse(decodeRecord(bytes).fetchedAt) / 1000;
      if (Number.isFinite(at) && (result.newestFetchedAt === undefined || at > result.newestFetchedAt)) result.newestFetchedAt = Math.floor(at);
    }
    const children = carLinks(item.cid, bytes, item.label);
    for (let i = children.length - 1; i >= 0; i--) {
      const c = children[i]!;
      const key = cidKey(c.cid);
      if (seen.has(key)) continue;
      seen.add(key);
      stack.push({ cid: c.cid, label: item.label === 'netlock root' ? 'netlock index' : c.label, record: c.entry });
    }
  }
  return result;
}

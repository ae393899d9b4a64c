/**
 * A netlock as one CARv1 file (design §4): the netlock root, its index pages, every record and every body
 * block, so one file carries a build's whole network into an air-gapped machine or a Cartesi Machine image.
 * The file is an ordinary CARv1 (https://ipld.io/specs/transport/car/carv1/) whose only root is the netlock
 * root: Kubo's `ipfs dag import` reads it, and `importCar` reads what Kubo's `ipfs dag export ROOT` writes.
 */
import type { Writable } from 'node:stream';
import type { CID } from 'multiformats/cid';
import { throwIfAborted } from '../errors.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { carHeader, carSectionHead } from './car-codec.ts';
import { carLinks, withContext } from './car-links.ts';
import { openByteOutput } from '../io/byte-output.ts';
import { NetlockReader } from './dag.ts';
import { CidIndex } from '../protocol/cid-index.ts';

/** Blocks read ahead of the one being written (bounded: at most this many blocks of ≤ 2 MiB in memory). */
export const EXPORT_PREFETCH_BLOCKS = 8;

export interface ExportCarOptions extends AbortOptions {
  /** Blocks fetched ahead of the one being written. @default EXPORT_PREFETCH_BLOCKS */
  prefetch?: number;
}

export interface ExportCarResult {
  root: CID;
  /** Netlock entries walked. */
  entries: number;
  /** Blocks written (each once). */
  blocks: number;
  /** Bytes of the CAR file. */
  bytes: number;
}

/**
 * Writes the netlock `root` and every block it reaches as a CARv1 to `out`: a path (written to a temporary
 * file, fsynced and renamed, so no partial CAR is ever left under the name) or a Writable (written with
 * backpressure and not ended: the caller owns it). The DAG is walked depth-first like Kubo's `dag export`
 * (root, index pages, records, UnixFS body DAGs), each block once, every block verified against its CID;
 * memory holds the CIDs seen and at most `prefetch` blocks. A missing or corrupt block fails the export with
 * an error naming the netlock entry it belongs to.
 */
export async function exportCar(root: CID, source: BlockSource, out: Writable | string, options: ExportCarOptions = {}): Promise<ExportCarResult> {
  throwIfAborted(options.signal);
  const verified = verifyingSource(source);
  // Fails early, and clearly, when `root` is not a netlock.
  await new NetlockReader(root, verified).rootValue(options);
  const writer = await openByteOutput(out);
  const result: ExportCarResult = { root, entries: 0, blocks: 0, bytes: 0 };
  try {
    const header = carHeader([root]);
    await writer.write([header]);
    result.bytes += header.byteLength;
    const prefetch = Math.max(1, options.prefetch ?? EXPORT_PREFETCH_BLOCKS);
    // Blocks seen, numbered in typed arrays: a Set of 400,000 `cidKey` strings was 28 MB of heap (issue #15).
    const seen = new CidIndex();
    seen.add(root);
    const stack: PendingBlock[] = [{ cid: root, label: 'netlock root', bytes: undefined }];
    const fetchBlock = async (p: PendingBlock): Promise<Uint8Array> => {
      try {
        return await verified.get(p.cid, options);
      } catch (err) {
        throw withContext(err, `Cannot export ${p.label}`);
      }
    };
    while (stack.length > 0) {
      throwIfAborted(options.signal);
      for (let i = stack.length - 1; i >= Math.max(0, stack.length - prefetch); i--) {
        const p = stack[i]!;
        if (p.bytes === undefined) {
          p.bytes = fetchBlock(p);
          p.bytes.catch(() => {}); // surfaced when awaited in order
        }
      }
      const item = stack.pop()!;
      const bytes = await item.bytes!;
      const head = carSectionHead(item.cid, bytes.byteLength);
      await writer.write([head, bytes]);
      result.bytes += head.byteLength + bytes.byteLength;
      result.blocks++;
      const children = carLinks(item.cid, bytes, item.label);
      if (item.label === 'netlock root') for (const c of children) c.label = 'netlock index';
      result.entries += children.filter((c) => c.entry).length;
      // Reverse, so that the first link is popped (written) first: depth-first pre-order.
      for (let i = children.length - 1; i >= 0; i--) {
        const c = children[i]!;
        const known = seen.size;
        if (seen.add(c.cid) < known) continue;
        stack.push({ cid: c.cid, label: c.label, bytes: undefined });
      }
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return result;
}

interface PendingBlock {
  cid: CID;
  /** What the block belongs to, for error messages: `netlock root`, `netlock index`, or `GET https://…`. */
  label: string;
  bytes: Promise<Uint8Array> | undefined;
}

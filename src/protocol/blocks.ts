import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { BlockCorruptError, BlockMissingError, throwIfAborted } from '../errors.ts';

/** Options of every async call: the caller's AbortSignal (style habit 11). */
export interface AbortOptions {
  signal?: AbortSignal;
}

/**
 * Where blocks come from: the host's store or, in the guest, the dehashing device.
 * Implementations may return unverified bytes; callers that need integrity wrap them in
 * `verifyingSource`.
 */
export interface BlockSource {
  get(cid: CID, options?: AbortOptions): Promise<Uint8Array>;
}

/** Where imported blocks go. */
export interface BlockSink {
  put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void>;
}

export const SHA2_256_CODE = 0x12;
export const RAW_CODE = 0x55;
export const DAG_PB_CODE = 0x70;
export const DAG_CBOR_CODE = 0x71;

/** Design §2: every block fits one device reply. */
export const MAX_BLOCK_BYTES = 2 * 1024 * 1024;

/** Throws BlockCorruptError unless `bytes` hash (sha2-256, the only hash of our CID profile) to `cid`. */
export async function verifyBlock(cid: CID, bytes: Uint8Array): Promise<void> {
  if (cid.multihash.code !== SHA2_256_CODE) {
    throw new BlockCorruptError(cid.toString(), `Unsupported multihash 0x${cid.multihash.code.toString(16)} in ${cid} (expected sha2-256)`);
  }
  if (bytes.byteLength > MAX_BLOCK_BYTES) {
    throw new BlockCorruptError(cid.toString(), `Block ${cid} is ${bytes.byteLength} bytes (limit ${MAX_BLOCK_BYTES})`);
  }
  const digest = await sha256.digest(bytes);
  if (!equalBytes(digest.digest, cid.multihash.digest)) {
    throw new BlockCorruptError(cid.toString());
  }
}

/** Wraps a source so that every block it returns is checked against its CID. */
export function verifyingSource(source: BlockSource): BlockSource {
  return {
    async get(cid, options) {
      throwIfAborted(options?.signal);
      const bytes = await source.get(cid, options);
      await verifyBlock(cid, bytes);
      return bytes;
    },
  };
}

/** A BlockSource over a Map, for tests and for small in-memory DAGs. */
export function mapSource(blocks: ReadonlyMap<string, Uint8Array>): BlockSource {
  return {
    get(cid) {
      const bytes = blocks.get(cid.toString());
      if (bytes === undefined) return Promise.reject(new BlockMissingError(cid.toString()));
      return Promise.resolve(bytes);
    },
  };
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function parseCid(text: string): CID {
  return CID.parse(text);
}

export { CID };

import * as nodeCrypto from 'node:crypto';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import type { MultihashDigest } from 'multiformats/hashes/interface';
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
  /**
   * True when `put` keeps no reference to `bytes` once it resolves (it wrote or copied them): an importer may
   * then fill that memory with the next block. Absent means the sink may hold on to them (a map of blocks).
   */
  readonly putKeepsNoBytes?: boolean;
  /** Puts every block it took on disk (a store); absent when there is no disk (a map of blocks). */
  flush?(options?: AbortOptions): Promise<void>;
}

export const SHA2_256_CODE = 0x12;
export const RAW_CODE = 0x55;
export const DAG_PB_CODE = 0x70;
export const DAG_CBOR_CODE = 0x71;

/** Design §2: every block fits one device reply. */
/**
 * The SHA-256 of a whole body stored as one raw block, read off its CID (a raw block's sha2-256 CID is the
 * digest of exactly those bytes); undefined for any other DAG (its root's digest is of a node, not the body).
 */
export function rawBodySha256(root: CID | null): Uint8Array | undefined {
  return root !== null && root.code === RAW_CODE && root.multihash.code === SHA2_256_CODE ? root.multihash.digest : undefined;
}

export const MAX_BLOCK_BYTES = 2 * 1024 * 1024;

/** Throws BlockCorruptError unless `bytes` hash (sha2-256, the only hash of our CID profile) to `cid`. */
export function verifyBlockSync(cid: CID, bytes: Uint8Array): void {
  if (cid.multihash.code !== SHA2_256_CODE) {
    throw new BlockCorruptError(cid.toString(), `Unsupported multihash 0x${cid.multihash.code.toString(16)} in ${cid} (expected sha2-256)`);
  }
  if (bytes.byteLength > MAX_BLOCK_BYTES) {
    throw new BlockCorruptError(cid.toString(), `Block ${cid} is ${bytes.byteLength} bytes (limit ${MAX_BLOCK_BYTES})`);
  }
  if (!sha256Matches(bytes, cid.multihash.digest)) {
    throw new BlockCorruptError(cid.toString());
  }
}

/** Node 20.12+ has the one-shot `crypto.hash`; older ones hash through a Hash object. */
const HAS_ONE_SHOT_HASH = typeof nodeCrypto.hash === 'function';

/**
 * A digest of `data`, computed at once. Node's one-shot `crypto.hash` makes no Hash object, which costs more
 * than hashing a small block: every replay hit verifies one, every record hashes its blocks and small bodies
 * (issue #15). A `'binary'` (latin1) string is one character a byte: compared in place, it makes the least
 * garbage. The Hash object where `crypto.hash` is missing.
 */
export function hashOnce(algorithm: 'sha256' | 'sha512', data: string | Uint8Array, encoding: 'buffer'): Buffer;
export function hashOnce(algorithm: 'sha256' | 'sha512', data: string | Uint8Array, encoding: 'binary' | 'hex'): string;
export function hashOnce(algorithm: 'sha256' | 'sha512', data: string | Uint8Array, encoding: 'buffer' | 'binary' | 'hex'): Buffer | string {
  if (HAS_ONE_SHOT_HASH) return encoding === 'buffer' ? nodeCrypto.hash(algorithm, data, 'buffer') : nodeCrypto.hash(algorithm, data, encoding);
  const hash = nodeCrypto.createHash(algorithm).update(data);
  return encoding === 'buffer' ? hash.digest() : hash.digest(encoding);
}

/** `hashOnce` as a plain Uint8Array view (what records and CIDs hold). */
export function digestOnce(algorithm: 'sha256' | 'sha512', data: Uint8Array): Uint8Array {
  const digest = hashOnce(algorithm, data, 'buffer');
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

/** The SHA-256 multihash of `bytes`: what multiformats' `sha256.digest` gives, through `hashOnce`. */
export function sha256Multihash(bytes: Uint8Array): MultihashDigest<typeof SHA2_256_CODE> {
  return createDigest(SHA2_256_CODE, digestOnce('sha256', bytes));
}

/** `verifyBlockSync`, rejecting instead of throwing. */
export function verifyBlock(cid: CID, bytes: Uint8Array): Promise<void> {
  try {
    verifyBlockSync(cid, bytes);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Whether the SHA-256 of `bytes` is `digest`: its `'binary'` text compared in place (see `hashOnce`). */
function sha256Matches(bytes: Uint8Array, digest: Uint8Array): boolean {
  const text = hashOnce('sha256', bytes, 'binary');
  if (digest.byteLength !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) !== digest[i]) return false;
  return true;
}

/** Sources whose every block is already checked against its CID: wrapping them again would hash twice. */
const VERIFIED_SOURCES = new WeakSet<BlockSource>();

/** Wraps a source so that every block it returns is checked against its CID (once: a verifying source is returned as is). */
export function verifyingSource(source: BlockSource): BlockSource {
  if (VERIFIED_SOURCES.has(source)) return source;
  const verified: BlockSource = {
    async get(cid, options) {
      throwIfAborted(options?.signal);
      const bytes = await source.get(cid, options);
      verifyBlockSync(cid, bytes);
      return bytes;
    },
  };
  VERIFIED_SOURCES.add(verified);
  return verified;
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

const BASE32 = Buffer.from('abcdefghijklmnopqrstuvwxyz234567', 'latin1');

/**
 * What `cid.toString()` gives (base32 with its `b` prefix for a CIDv1, base58btc for a CIDv0), as one flat
 * string. multiformats builds it a character at a time, which V8 keeps as a tree of ~60 pieces (~2 KB) until
 * something reads the string whole (a netlock file of 100,000 lines held 100,000 such trees while it was
 * built, issue #15: ~200 MB), and keeps it in a per-CID `Map` behind a `WeakMap`: ~800 bytes of garbage and a
 * weak entry for the collector per CID, on every record's journal and index lines (session 26). A CIDv1 is
 * written here a byte at a time into one buffer; a CIDv0's text is read whole once, which flattens it.
 */
export function cidText(cid: CID): string {
  if (cid.version === 0) {
    const text = cid.toString();
    text.charCodeAt(0);
    return text;
  }
  const bytes = cid.bytes;
  const out = Buffer.allocUnsafe(1 + Math.ceil((bytes.byteLength * 8) / 5));
  out[0] = 0x62; // 'b'
  let at = 1;
  let bits = 0;
  let acc = 0;
  for (const byte of bytes) {
    acc = ((acc << 8) | byte) & 0xfff; // 5 bits are taken before more than 12 are held
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[at++] = BASE32[(acc >>> bits) & 31]!;
    }
  }
  if (bits > 0) out[at++] = BASE32[(acc << (5 - bits)) & 31]!;
  return out.toString('latin1', 0, at);
}

export function parseCid(text: string): CID {
  return CID.parse(text);
}

export { CID };

/**
 * Keeps verified blocks in memory up to `maxBytes` (least recently used out first) and shares concurrent
 * fetches of one CID: in the guest every block is a device round trip, and index pages and records repeat.
 * Blocks are verified against their CID before they are cached.
 */
export class CachingBlockSource implements BlockSource {
  readonly #source: BlockSource;
  readonly #maxBytes: number;
  readonly #blocks = new Map<string, Uint8Array>();
  readonly #pending = new Map<string, Promise<Uint8Array>>();
  #bytes = 0;
  /** Fetches that reached the underlying source (cache misses). */
  fetches = 0;

  constructor(source: BlockSource, maxBytes: number) {
    this.#source = source;
    this.#maxBytes = maxBytes;
    VERIFIED_SOURCES.add(this); // blocks are verified before they are cached or returned
  }

  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    const key = cid.toString();
    const hit = this.#blocks.get(key);
    if (hit !== undefined) {
      this.#blocks.delete(key);
      this.#blocks.set(key, hit);
      return Promise.resolve(hit);
    }
    const running = this.#pending.get(key);
    if (running !== undefined) return running;
    this.fetches++;
    const p = this.#source
      .get(cid, options)
      .then(async (bytes) => {
        await verifyBlock(cid, bytes);
        this.#remember(key, bytes);
        return bytes;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }

  #remember(key: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.#maxBytes) return;
    this.#blocks.set(key, bytes);
    this.#bytes += bytes.byteLength;
    for (const [k, b] of this.#blocks) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#blocks.delete(k);
      this.#bytes -= b.byteLength;
    }
  }
}

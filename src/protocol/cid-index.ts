import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';

const IDENTITY_HASH = 0x00;
const NO_ID = -1;
const MIN_CAPACITY = 1024;

/** A per-id array the caller keeps beside a `CidIndex` (sizes, offsets, flags). */
export type IdColumn = Float64Array | Uint32Array | Int32Array | Uint8Array;

/**
 * CIDs numbered 0, 1, 2… in the order they are added, with each CID's bytes in one growing buffer and an
 * open-addressing table of ids, all in typed arrays outside the heap the collector walks: ~60 bytes a CIDv1 of
 * SHA-256, where a `Map` keyed by `cidKey` with an object per block took ~250 (`gc` and `import` of a
 * 200,000-entry netlock, 400,000 blocks, peaked at 242–262 MB; issue #15). Callers keep what they know of each
 * block in columns indexed by id (`fit` grows them with the index), and walk with ids, not strings.
 *
 * Written here rather than taken from a library for the reasons `KeyOffsets` gives. Lookups compare the whole
 * CID, so distinct CIDs never share an id. The slot comes from the CID's digest, which content addressing makes
 * uniform; an identity multihash (the content itself, which anyone can choose) is hashed first, so that no CAR
 * can make its CIDs crowd one slot.
 */
export class CidIndex {
  #slots = new Int32Array(MIN_CAPACITY).fill(NO_ID);
  /** Per id: its slot hash (the table grows without hashing again), and where its bytes start in `#bytes`. */
  #hashes = new Uint32Array(MIN_CAPACITY);
  #starts = new Uint32Array(MIN_CAPACITY + 1);
  #bytes = new Uint8Array(64 * 1024);
  #count = 0;

  /** CIDs held. */
  get size(): number {
    return this.#count;
  }

  /** Bytes the index holds (its typed arrays). */
  get byteLength(): number {
    return this.#slots.byteLength + this.#hashes.byteLength + this.#starts.byteLength + this.#bytes.byteLength;
  }

  /** The id of `cid`, or -1. */
  idOf(cid: CID): number {
    return this.#slots[this.#find(cid, slotHash(cid))]!;
  }

  /** The id of `cid`, added if it is new (then it is `size - 1`). */
  add(cid: CID): number {
    const hash = slotHash(cid);
    const slot = this.#find(cid, hash);
    const had = this.#slots[slot]!;
    if (had !== NO_ID) return had;
    const id = this.#count;
    this.#fitFor(id, cid.bytes.byteLength);
    this.#bytes.set(cid.bytes, this.#starts[id]);
    this.#starts[id + 1] = this.#starts[id]! + cid.bytes.byteLength;
    this.#hashes[id] = hash;
    this.#count++;
    // Grown at 70% full: probes stay short.
    if (this.#count * 10 > this.#slots.length * 7) this.#rehash(this.#slots.length * 2);
    else this.#slots[slot] = id;
    return id;
  }

  /** The CID of `id` (a new object each call, over a copy of its bytes). */
  cidOf(id: number): CID {
    return CID.decode(this.#bytes.slice(this.#starts[id], this.#starts[id + 1]));
  }

  /** The CID of `id`'s byte `i` (a CIDv1's codec is byte 1 when it is under 128), without decoding it. */
  byteOf(id: number, i: number): number {
    return this.#bytes[this.#starts[id]! + i]!;
  }

  /** `column`, or a larger copy of it when ids have grown past its length. */
  fit<T extends IdColumn>(column: T): T {
    if (column.length >= this.#hashes.length) return column;
    const grown = new (column.constructor as new (length: number) => T)(this.#hashes.length);
    grown.set(column);
    return grown;
  }

  /** The slot holding `cid`'s id, else the empty slot where it goes (linear probing; the table is never full). */
  #find(cid: CID, hash: number): number {
    const mask = this.#slots.length - 1;
    const bytes = cid.bytes;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const id = this.#slots[slot]!;
      if (id === NO_ID || (this.#hashes[id] === hash && this.#holds(id, bytes))) return slot;
    }
  }

  #holds(id: number, bytes: Uint8Array): boolean {
    const start = this.#starts[id]!;
    if (this.#starts[id + 1]! - start !== bytes.byteLength) return false;
    for (let i = 0; i < bytes.byteLength; i++) if (this.#bytes[start + i] !== bytes[i]) return false;
    return true;
  }

  #fitFor(id: number, length: number): void {
    if (id + 1 >= this.#hashes.length) {
      const hashes = new Uint32Array(this.#hashes.length * 2);
      hashes.set(this.#hashes);
      this.#hashes = hashes;
      const starts = new Uint32Array(hashes.length + 1);
      starts.set(this.#starts);
      this.#starts = starts;
    }
    const end = this.#starts[id]! + length;
    if (end > this.#bytes.byteLength) {
      const bytes = new Uint8Array(Math.max(end, this.#bytes.byteLength * 2));
      bytes.set(this.#bytes.subarray(0, this.#starts[id]));
      this.#bytes = bytes;
    }
  }

  #rehash(capacity: number): void {
    this.#slots = new Int32Array(capacity).fill(NO_ID);
    const mask = capacity - 1;
    for (let id = 0; id < this.#count; id++) {
      let slot = this.#hashes[id]! & mask;
      while (this.#slots[slot] !== NO_ID) slot = (slot + 1) & mask;
      this.#slots[slot] = id;
    }
  }
}

/** 32 bits of the CID's digest (its last four bytes), or of the SHA-256 of a digest that is not a hash's. */
function slotHash(cid: CID): number {
  const { code, digest } = cid.multihash;
  const d = code === IDENTITY_HASH || digest.byteLength < 8 ? createHash('sha256').update(cid.bytes).digest() : digest;
  const n = d.byteLength;
  return ((d[n - 4]! << 24) | (d[n - 3]! << 16) | (d[n - 2]! << 8) | d[n - 1]!) >>> 0;
}

import type { CID } from 'multiformats/cid';

const EMPTY = -1;
/** A slot whose block was set aside (quarantined): probing goes on past it, and no lookup answers it. */
const DEAD = -2;
const MIN_CAPACITY = 1024;

/** What a slot holds: where the entry starts (pack number × 2^32 + offset) and its CID's and data's lengths. */
export interface PackPlace {
  pack: number;
  offset: number;
  cidLength: number;
  length: number;
}

/**
 * CID → where its entry is in the packs, held as 20 bytes a slot in typed arrays (an open-addressing table
 * keyed by the first 64 bits of the CID's digest), outside the heap the collector walks: ~30 bytes a block
 * at 70% full, where a `Map` of CID strings took ~150 (issue #15, as `KeyOffsets` for the record index).
 *
 * Written here rather than taken from a library for the reasons `KeyOffsets` gives (a native store cannot go
 * into the enclave's bundle). A digest prefix is only a place to look: the caller confirms each candidate by
 * the CID bytes stored in the entry (`confirm`), so two CIDs sharing 64 bits each keep their own slot.
 */
export class PackSlots {
  #heads: Uint32Array;
  #tails: Uint32Array;
  #places: Float64Array;
  /** `cidLength << 24 | length`: blocks are under 16 MiB, CIDs under 256 bytes. */
  #sizes: Uint32Array;
  #used = 0;
  #live = 0;

  constructor() {
    this.#heads = new Uint32Array(MIN_CAPACITY);
    this.#tails = new Uint32Array(MIN_CAPACITY);
    this.#places = new Float64Array(MIN_CAPACITY).fill(EMPTY);
    this.#sizes = new Uint32Array(MIN_CAPACITY);
  }

  /** Blocks held. */
  get size(): number {
    return this.#live;
  }

  /** The slot of `cid` (`confirm` says whether the entry a candidate slot names is this CID's), or -1. */
  find(cid: CID, confirm: (place: PackPlace) => boolean): number {
    return this.findDigest(cid.multihash.digest, confirm);
  }

  /** `find` by the CID's digest (a pack index's CID bytes are not decoded into a CID: `cidDigest`). */
  findDigest(digest: Uint8Array, confirm: (place: PackPlace) => boolean): number {
    for (let slot = this.firstDigest(digest); slot !== -1; slot = this.nextDigest(digest, slot)) if (confirm(this.place(slot))) return slot;
    return -1;
  }

  /**
   * The first slot filed under the first 64 bits of `cid`'s digest, or -1; `next` gives the following ones.
   * With the accessors below, a lookup allocates nothing (replay's hot path, issue #15).
   */
  first(cid: CID): number {
    return this.firstDigest(cid.multihash.digest);
  }

  next(cid: CID, slot: number): number {
    return this.nextDigest(cid.multihash.digest, slot);
  }

  firstDigest(d: Uint8Array): number {
    const head = digestHead(d);
    const tail = digestTail(d);
    return this.#probe(head, tail, start(head, tail, this.#places.length - 1));
  }

  nextDigest(d: Uint8Array, slot: number): number {
    return this.#probe(digestHead(d), digestTail(d), (slot + 1) & (this.#places.length - 1));
  }

  packOf(slot: number): number {
    return Math.floor(this.#places[slot]! / 2 ** 32);
  }

  offsetOf(slot: number): number {
    return this.#places[slot]! % 2 ** 32;
  }

  cidLengthOf(slot: number): number {
    return this.#sizes[slot]! >>> 24;
  }

  lengthOf(slot: number): number {
    return this.#sizes[slot]! & 0xffffff;
  }

  #probe(head: number, tail: number, from: number): number {
    const mask = this.#places.length - 1;
    for (let slot = from; this.#places[slot] !== EMPTY; slot = (slot + 1) & mask) {
      if (this.#places[slot] !== DEAD && this.#heads[slot] === head && this.#tails[slot] === tail) return slot;
    }
    return -1;
  }

  /** The places of every entry filed under the first 64 bits of `cid`'s digest (almost always one or none). */
  candidates(cid: CID): PackPlace[] {
    const out: PackPlace[] = [];
    this.find(cid, (place) => (out.push(place), false));
    return out;
  }

  place(slot: number): PackPlace {
    const at = this.#places[slot]!;
    const size = this.#sizes[slot]!;
    return { pack: Math.floor(at / 2 ** 32), offset: at % 2 ** 32, cidLength: size >>> 24, length: size & 0xffffff };
  }

  /** Files a new entry (the caller found no slot for its CID). */
  add(cid: CID, place: PackPlace): void {
    this.addDigest(cid.multihash.digest, place);
  }

  /** `add` by the CID's digest. */
  addDigest(d: Uint8Array, place: PackPlace): void {
    if ((this.#used + 1) * 10 > this.#places.length * 7) this.#grow();
    this.#put(digestHead(d), digestTail(d), place.pack * 2 ** 32 + place.offset, ((place.cidLength << 24) | place.length) >>> 0);
    this.#live++;
  }

  /** Moves a slot's block to another entry (a copy written again after the one there was set aside). */
  move(slot: number, place: PackPlace): void {
    this.#places[slot] = place.pack * 2 ** 32 + place.offset;
    this.#sizes[slot] = ((place.cidLength << 24) | place.length) >>> 0;
  }

  /** Forgets a slot's block: it is no longer in the packs. */
  remove(slot: number): void {
    if (this.#places[slot]! < 0) return;
    this.#places[slot] = DEAD;
    this.#live--;
  }

  #put(head: number, tail: number, at: number, size: number): void {
    const mask = this.#places.length - 1;
    let slot = start(head, tail, mask);
    while (this.#places[slot] !== EMPTY) slot = (slot + 1) & mask;
    this.#heads[slot] = head;
    this.#tails[slot] = tail;
    this.#places[slot] = at;
    this.#sizes[slot] = size;
    this.#used++;
  }

  #grow(): void {
    const [heads, tails, places, sizes] = [this.#heads, this.#tails, this.#places, this.#sizes];
    // Twice as large, unless most of the used slots are dead ones this rebuild drops.
    const capacity = this.#live * 10 > places.length * 7 * 0.5 ? places.length * 2 : places.length;
    this.#heads = new Uint32Array(capacity);
    this.#tails = new Uint32Array(capacity);
    this.#places = new Float64Array(capacity).fill(EMPTY);
    this.#sizes = new Uint32Array(capacity);
    this.#used = 0;
    for (let slot = 0; slot < places.length; slot++) {
      if (places[slot]! >= 0) this.#put(heads[slot]!, tails[slot]!, places[slot]!, sizes[slot]!);
    }
  }
}

/** The first 64 bits of a CID's digest (a SHA-256: evenly spread), as two 32-bit halves. */
function digestHead(d: Uint8Array): number {
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}

function digestTail(d: Uint8Array): number {
  return ((d[4]! << 24) | (d[5]! << 16) | (d[6]! << 8) | d[7]!) >>> 0;
}

function start(head: number, tail: number, mask: number): number {
  return (tail ^ Math.imul(head, 0x9e3779b1)) & mask;
}

/** Whether a CID can be filed here: a digest of at least 64 bits (not an identity CID) and CID bytes under 256. */
export function packableCid(cid: CID): boolean {
  return cid.multihash.digest.byteLength >= 8 && cid.bytes.byteLength < 256;
}

/**
 * The digest in a CID's bytes, as a view of them (no CID made: a store filing a pack index's entries decoded
 * one CID each, half its time), or undefined for bytes that are not a CIDv0 or CIDv1 ending with its digest.
 */
export function cidDigest(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.byteLength === 34 && bytes[0] === 0x12 && bytes[1] === 0x20) return bytes.subarray(2); // CIDv0: a bare sha2-256 multihash
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 63; shift += 7) {
      const b = bytes[at++];
      if (b === undefined) return -1;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    return -1;
  };
  if (varint() !== 1 || varint() < 0 || varint() < 0) return undefined; // version, codec, hash function
  const length = varint();
  return length >= 0 && at + length === bytes.byteLength ? bytes.subarray(at) : undefined;
}

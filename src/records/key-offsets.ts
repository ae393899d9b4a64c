import { hashOnce } from '../protocol/blocks.ts';

/** A request key's digest as two 32-bit halves: of its URL (so a URL's keys can be found) and of the whole key. */
export type KeyDigest = (url: string, key: string) => readonly [urlPart: number, keyPart: number];

/** The URL a request key starts with (`<url>\n<method>…`, `src/protocol/request-key.ts`). */
export function urlOfKey(key: string): string {
  const nl = key.indexOf('\n');
  return nl === -1 ? key : key.slice(0, nl);
}

/** The first 32 bits of SHA-256 of `text` (hex out: half the cost of a Buffer for a short input). */
const sha256Head = (text: string): number => parseInt(hashOnce('sha256', text, 'hex').slice(0, 8), 16);

/**
 * The first 32 bits of SHA-256 of the URL and of the key. A cryptographic hash, not a fast one, because the
 * keys come from the build: nobody can make many keys share a slot, nor two keys share a digest.
 */
export const sha256KeyDigest: KeyDigest = (url, key) => [sha256Head(url), sha256Head(key)];

const EMPTY = -1;
const MIN_CAPACITY = 1024;

/**
 * Request key → a byte offset, held as 16 bytes a slot in typed arrays (an open-addressing table of key
 * digests), not as the key itself: a data directory's record index of 1,000,000 keys is ~32 MB here, outside
 * the V8 heap the collector walks, where a `Map` of the keys took ~160 MB of heap (issue #15).
 *
 * Written here rather than taken from a library: what it must hold is two integers and a number per key, and
 * a native key-value store (`lmdb`, `classic-level`) cannot go into the bundle the enclave image runs.
 *
 * Two keys with the same 64-bit digest share a slot: the offset is only ever a place to look, and the caller
 * checks the key of the line it finds there (`RecordLog.lineAt`), so a shared slot costs a request being
 * recorded again, never another key's answer.
 */
export class KeyOffsets {
  readonly #digest: KeyDigest;
  #urlParts: Uint32Array;
  #keyParts: Uint32Array;
  #offsets: Float64Array;
  #count = 0;

  constructor(digest: KeyDigest = sha256KeyDigest) {
    this.#digest = digest;
    this.#urlParts = new Uint32Array(MIN_CAPACITY);
    this.#keyParts = new Uint32Array(MIN_CAPACITY);
    this.#offsets = new Float64Array(MIN_CAPACITY).fill(EMPTY);
  }

  /** Keys held (distinct digests). */
  get size(): number {
    return this.#count;
  }

  /** Bytes the table holds (its typed arrays). */
  get byteLength(): number {
    return this.#offsets.byteLength * 2;
  }

  get(key: string): number | undefined {
    const [u, k] = this.#digest(urlOfKey(key), key);
    const slot = this.#find(u, k);
    return this.#offsets[slot] === EMPTY ? undefined : this.#offsets[slot];
  }

  set(key: string, offset: number): void {
    const [u, k] = this.#digest(urlOfKey(key), key);
    this.#place(u, k, offset);
  }

  /** Sets `key` → `offset` unless its digest's slot is taken: then returns the offset there, unchanged. */
  setIfAbsent(key: string, offset: number): number | undefined {
    const [u, k] = this.#digest(urlOfKey(key), key);
    const had = this.#offsets[this.#find(u, k)]!;
    if (had !== EMPTY) return had;
    this.#place(u, k, offset);
    return undefined;
  }

  /**
   * Where the keys of `url` may be, each with the test a key found there must pass to be the one filed: its
   * URL is `url` and its digest is the slot's. Read the lines to have the keys.
   */
  candidatesForUrl(url: string): Array<{ offset: number; isKey: (key: string) => boolean }> {
    const out: Array<{ offset: number; isKey: (key: string) => boolean }> = [];
    const [u] = this.#digest(url, url);
    const prefix = `${url}\n`;
    for (let slot = 0; slot < this.#offsets.length; slot++) {
      if (this.#offsets[slot] === EMPTY || this.#urlParts[slot] !== u) continue;
      const k = this.#keyParts[slot]!;
      out.push({ offset: this.#offsets[slot]!, isKey: (key) => key.startsWith(prefix) && this.#digest(url, key)[1] === k });
    }
    return out;
  }

  /** The slot holding (u, k), else the empty slot where it goes (linear probing; the table is never full). */
  #find(u: number, k: number): number {
    const mask = this.#offsets.length - 1;
    for (let slot = (k ^ Math.imul(u, 0x9e3779b1)) & mask; ; slot = (slot + 1) & mask) {
      if (this.#offsets[slot] === EMPTY || (this.#keyParts[slot] === k && this.#urlParts[slot] === u)) return slot;
    }
  }

  #place(u: number, k: number, offset: number): void {
    const slot = this.#find(u, k);
    if (this.#offsets[slot] === EMPTY) {
      // Grown at 70% full: probes stay short, and at 1,000,000 keys the table is 2^21 slots.
      if ((this.#count + 1) * 10 > this.#offsets.length * 7) {
        this.#grow();
        this.#place(u, k, offset);
        return;
      }
      this.#count++;
      this.#urlParts[slot] = u;
      this.#keyParts[slot] = k;
    }
    this.#offsets[slot] = offset;
  }

  #grow(): void {
    const [urlParts, keyParts, offsets] = [this.#urlParts, this.#keyParts, this.#offsets];
    const capacity = offsets.length * 2;
    this.#urlParts = new Uint32Array(capacity);
    this.#keyParts = new Uint32Array(capacity);
    this.#offsets = new Float64Array(capacity).fill(EMPTY);
    this.#count = 0;
    for (let slot = 0; slot < offsets.length; slot++) {
      if (offsets[slot] !== EMPTY) this.#place(urlParts[slot]!, keyParts[slot]!, offsets[slot]!);
    }
  }
}

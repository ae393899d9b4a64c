import { tmpdir } from 'node:os';
import { SpillFile } from '../io/spill-file.ts';
import type { Expectation, SeedEntry } from './types.ts';

const LOWER_HEX = /^(?:[0-9a-f]{2})*$/;
/** Taken slots dropped from the front of the list once there are this many (and they are half of it). */
const COMPACT_AFTER = 1024;
/** Entries held as strings before the rest go to a spill file. */
const SPILL_AFTER = 10_000;

/** Closes the spill file of a list collected without being drained or closed. */
const spills = new FinalizationRegistry<SpillFile>((spill) => spill.close());

/** An entry's options beyond the usual, when it has any. */
interface Extra {
  missingDigest?: true;
  acceptStatus?: number[];
}

/**
 * Seed entries kept as one string each, in order: a lockfile's entries, or what `seed` has still to fetch.
 * As objects, an npm entry held ~600 bytes (the entry, its source, its digest list and digest, the digest's
 * 128 hex digits, a name built of two strings, the run's task around it): 60 MB for a lockfile of 100,000
 * entries, the seed's peak (issue #15). Packed, it is one string of ~220 bytes, with the digest in base64 and
 * the file name and Accept value as numbers into a table this list keeps.
 *
 * Past `SPILL_AFTER` entries queued, the strings go to a spill file (`SpillFile`: unlinked once open, so
 * nothing is left behind) and the list keeps each one's ticket: a lockfile of 200,000 entries held 44 MB of
 * strings, the largest part of the seed's 204–217 MB peak (issue #15). The file is closed once every entry
 * is taken (a later push opens another), by `close`, or when the list is collected.
 *
 * Entries are taken from the front (`take`); a slot number names an entry while it is queued, so a later
 * duplicate of it can still change its digests (`queued`, `replace`), or be removed (`remove`).
 */
export class PackedEntries implements Iterable<SeedEntry> {
  /** An entry as its string, or as its ticket in `#spill`; undefined once taken or removed. */
  #items: Array<string | number | undefined> = [];
  /** Slot of `#items[0]`, and the index in `#items` of the first entry not taken. */
  #base = 0;
  #head = 0;
  /** Slots after `#head` removed. */
  #removed = 0;
  #texts: string[] = [];
  #textIndex = new Map<string, number>();
  readonly #spillDir: string;
  readonly #spillAfter: number;
  #spill: SpillFile | undefined;

  /** `spillDir` (default: the system's temporary folder) and `spillAfter` (default `SPILL_AFTER`) say where and when entries spill. */
  constructor(options: { spillDir?: string; spillAfter?: number } = {}) {
    this.#spillDir = options.spillDir ?? tmpdir();
    this.#spillAfter = options.spillAfter ?? SPILL_AFTER;
  }

  /** Whether entries are in a spill file now. */
  get spilled(): boolean {
    return this.#spill !== undefined;
  }

  /** Closes the spill file, if any: entries in it are lost. Idempotent; only for a list that is done with. */
  close(): void {
    if (this.#spill === undefined) return;
    spills.unregister(this);
    this.#spill.close();
    this.#spill = undefined;
  }

  get length(): number {
    return this.#items.length - this.#head - this.#removed;
  }

  /** Adds `entry` at the end; returns its slot. */
  push(entry: SeedEntry): number {
    this.#items.push(this.#pack(entry));
    return this.#base + this.#items.length - 1;
  }

  /** The first entry not taken, and its slot; undefined when none is left. Its string is released. */
  take(): { slot: number; entry: SeedEntry } | undefined {
    for (; this.#head < this.#items.length && this.#items[this.#head] === undefined; this.#head++) this.#removed--;
    if (this.#head === this.#items.length) {
      this.close(); // nothing queued is in it
      return undefined;
    }
    const slot = this.#base + this.#head;
    const entry = this.#unpack(this.#items[this.#head]!);
    this.#items[this.#head++] = undefined;
    if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
    return { slot, entry };
  }

  /** The entry in `slot`, a copy, if it has not been taken yet. */
  queued(slot: number): SeedEntry | undefined {
    const packed = this.#items[slot - this.#base];
    return slot - this.#base >= this.#head && packed !== undefined ? this.#unpack(packed) : undefined;
  }

  /** Puts `entry` in place of the queued entry in `slot`. */
  replace(slot: number, entry: SeedEntry): void {
    this.#queuedAt(slot);
    this.#items[slot - this.#base] = this.#pack(entry);
  }

  /** Removes the queued entry in `slot`. */
  remove(slot: number): void {
    this.#queuedAt(slot);
    this.#items[slot - this.#base] = undefined;
    this.#removed++;
  }

  /** The entries queued, in order, as copies with their slots; the list is unchanged. */
  *slots(): Generator<{ slot: number; entry: SeedEntry }> {
    for (let i = this.#head; i < this.#items.length; i++) {
      const packed = this.#items[i];
      if (packed !== undefined) yield { slot: this.#base + i, entry: this.#unpack(packed) };
    }
  }

  *[Symbol.iterator](): Iterator<SeedEntry> {
    for (const { entry } of this.slots()) yield entry;
  }

  #queuedAt(slot: number): void {
    const at = slot - this.#base;
    if (at < this.#head || this.#items[at] === undefined) throw new RangeError(`slot ${slot} is not queued`);
  }

  #text(value: string): number {
    let index = this.#textIndex.get(value);
    if (index === undefined) {
      index = this.#texts.push(value) - 1;
      this.#textIndex.set(value, index);
    }
    return index;
  }

  #pack(entry: SeedEntry): string | number {
    const text = this.#packText(entry);
    // JSON.stringify's result is a tree of the pieces it was built in (~310 bytes for ~180 characters), and
    // the first JSON.parse of it adds a flat copy; a string decoded from bytes is one piece (~220).
    if (this.#spill === undefined && this.length < this.#spillAfter) return Buffer.from(text).toString();
    if (this.#spill === undefined) {
      this.#spill = new SpillFile(this.#spillDir);
      spills.register(this, this.#spill, this);
    }
    try {
      return this.#spill.append(text) ?? text; // a text too long for a ticket stays a string
    } catch {
      return Buffer.from(text).toString(); // the scratch file cannot grow (a full disk): the entry stays in memory
    }
  }

  #packText(entry: SeedEntry): string {
    const extra: Extra = {};
    if (entry.missingDigest === true) extra.missingDigest = true;
    if (entry.acceptStatus !== undefined) extra.acceptStatus = entry.acceptStatus;
    const fields: unknown[] = [this.#text(entry.source.file), entry.source.line, entry.source.name, entry.url, this.#text(entry.accept), Object.keys(extra).length === 0 ? 0 : extra];
    for (const e of entry.expect) fields.push(packExpectation(e));
    return JSON.stringify(fields);
  }

  #unpack(item: string | number): SeedEntry {
    const packed = typeof item === 'number' ? this.#spill!.read(item) : item;
    const [file, line, name, url, accept, extra, ...expect] = JSON.parse(packed) as [number, number, string, string, number, Extra | 0, ...string[]];
    return { source: { file: this.#texts[file]!, line, name }, url, accept: this.#texts[accept]!, expect: expect.map(unpackExpectation), ...(extra === 0 ? {} : extra) };
  }
}

/** `ALGORITHM:BASE64` for a digest in canonical hex (a third smaller), `ALGORITHM=HEX` otherwise, `go-h1:OVER:VALUE`. */
function packExpectation(e: Expectation): string {
  if (e.algorithm === 'go-h1') return `go-h1:${e.over}:${e.value}`;
  return LOWER_HEX.test(e.hex) ? `${e.algorithm}:${Buffer.from(e.hex, 'hex').toString('base64')}` : `${e.algorithm}=${e.hex}`;
}

function unpackExpectation(code: string): Expectation {
  if (code.startsWith('go-h1:')) {
    const cut = code.indexOf(':', 6);
    return { algorithm: 'go-h1', over: code.slice(6, cut) as 'zip' | 'mod', value: code.slice(cut + 1) };
  }
  const cut = code.search(/[:=]/);
  const algorithm = code.slice(0, cut) as 'sha1' | 'sha256' | 'sha512';
  return { algorithm, hex: code[cut] === ':' ? Buffer.from(code.slice(cut + 1), 'base64').toString('hex') : code.slice(cut + 1) };
}

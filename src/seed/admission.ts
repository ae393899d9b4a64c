import { createHash } from 'node:crypto';
import { InvalidLockfileError } from '../errors.ts';
import { computeRequestKey } from '../protocol/request-key.ts';
import { describeEntry } from './check.ts';
import { decidingDigests } from './digests.ts';
import { PackedEntries } from './packed-entries.ts';
import type { SeedEntry, SeedResolver } from './types.ts';

/**
 * The request key's SHA-256, as the map of entries seen is keyed: a key id is built of pieces of the URL
 * that, kept as the map's key, held ~400 bytes an entry (a lockfile of 100,000 entries: 40 MB, issue #15).
 */
function keyOf(entry: SeedEntry): string {
  const url = splitUserinfo(entry.url).url;
  return createHash('sha256').update(computeRequestKey({ method: 'GET', url, headers: { accept: entry.accept } }).id).digest('base64');
}

/** The URL without userinfo, and the Basic credentials it carried (used for the fetch only). */
export function splitUserinfo(url: string): { url: string; authorization: string | undefined } {
  const u = new URL(url);
  if (u.username === '' && u.password === '') return { url, authorization: undefined };
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  return { url: u.toString(), authorization: `Basic ${basic}` };
}

/**
 * What `seed` has still to run, and what it has admitted: entries are packed (a lockfile of 100,000 holds
 * ~22 MB so, ~60 MB as objects, issue #15), resolvers run first.
 */
export class Admission {
  readonly queue: PackedEntries;
  readonly resolvers: SeedResolver[] = [];
  /**
   * Request key → slot of its first entry, and the entries taken from the queue by slot: a resolver may still
   * admit a duplicate of any of them. Dropped (undefined) when no resolver can, so an entry seeded is garbage.
   */
  seen: Map<string, number> | undefined = new Map();
  taken: Map<number, SeedEntry> | undefined = new Map();
  /** Slots of entries a resolver seeds itself (its index documents), never queued: -1, -2… */
  #unqueued = 0;

  /** `queue`: entries already packed (a lockfile's), to admit with `admitQueued`; adopted, not copied. */
  constructor(queue = new PackedEntries()) {
    this.queue = queue;
  }

  /**
   * Queues `entry` (or, with `queue` false, only notes it: its caller seeds it) unless its request is already
   * admitted: then returns false and the entry's digests join the first one's. Throws when the two promise
   * different bodies.
   */
  admit(entry: SeedEntry, queue = true): boolean {
    const key = keyOf(entry);
    const first = this.seen!.get(key);
    if (first !== undefined) return this.#merge(first, entry);
    let slot: number;
    if (queue) {
      slot = this.queue.push(entry);
    } else {
      slot = --this.#unqueued;
      this.taken!.set(slot, entry);
    }
    this.seen!.set(key, slot);
    return true;
  }

  /** As `admit`, for `entry` already queued in `slot` (of the queue given to the constructor): a duplicate is removed. */
  admitQueued(slot: number, entry: SeedEntry): boolean {
    const key = keyOf(entry);
    const first = this.seen!.get(key);
    if (first === undefined) {
      this.seen!.set(key, slot);
      return true;
    }
    this.queue.remove(slot);
    return this.#merge(first, entry);
  }

  /** `entry`'s digests join those of the entry in `slot` (queued, or taken). Returns false: `entry` is a duplicate. */
  #merge(slot: number, entry: SeedEntry): false {
    const queued = this.queue.queued(slot);
    const first = queued ?? this.taken!.get(slot)!;
    const a = decidingDigests(first.expect);
    const b = decidingDigests(entry.expect);
    const goA = first.expect.filter((e) => e.algorithm === 'go-h1').map((e) => (e.algorithm === 'go-h1' ? e.value : ''));
    const goB = entry.expect.filter((e) => e.algorithm === 'go-h1').map((e) => (e.algorithm === 'go-h1' ? e.value : ''));
    const clash = (a.length > 0 && b.length > 0 && a[0]!.algorithm === b[0]!.algorithm && !a.some((x) => b.some((y) => y.hex === x.hex))) || (goA.length > 0 && goB.length > 0 && !goA.some((x) => goB.includes(x)));
    if (clash) {
      throw new InvalidLockfileError(entry.source.file, entry.source.line, `${entry.source.name}: ${entry.url} is also ${describeEntry(first)}, with a different digest; one of them is wrong`);
    }
    const added = entry.expect.filter((e) => !first.expect.some((f) => JSON.stringify(f) === JSON.stringify(e)));
    if (added.length > 0) {
      first.expect.push(...added);
      if (queued !== undefined) this.queue.replace(slot, first);
    }
    return false;
  }

  /** The next entry to seed (kept by slot while resolvers may admit a duplicate of it). */
  take(): SeedEntry | undefined {
    const next = this.queue.take();
    if (next !== undefined) this.taken?.set(next.slot, next.entry);
    return next?.entry;
  }

  /** No resolver can admit an entry any more. */
  closeAdmission(): void {
    this.seen = undefined;
    this.taken = undefined;
  }
}


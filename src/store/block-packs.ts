import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fdatasync, fstat, fstatSync, ftruncateSync, mkdirSync, open, openSync, readSync, readv, readvSync, renameSync, writeSync, writevSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { syncDir } from '../io/durable.ts';
import { PACK_HEADER_BYTES, PACK_LIVE, PACK_MAGIC, PACK_NAME_RE, PACK_QUARANTINED, entryHead, packWriterRunning, scanPack, sealedPackName } from './pack-file.ts';
import type { PackEntry } from './pack-file.ts';
import { INDEX_RECORD_HEAD, appendPackIndex, entryEnd, indexRecord, indexRecords, packIndexPath, readPackIndex, writePackIndex } from './pack-index.ts';
import { PackSlots, cidDigest } from './pack-slots.ts';
import type { PackPlace } from './pack-slots.ts';

/** The folder of pack files inside `blocks/`. */
export const PACKS_DIR = 'packs';
/**
 * Index records a pack's writer holds before it appends them to the index without waiting for a checkpoint:
 * a store that writes many blocks between two (`import`, `seed`) held one per block (+35 MB of RSS for
 * `import` of 100,000 entries). Such records may name entries a crash then takes back; a store opening the
 * pack finds that they run past its end and scans it instead (`#fromIndex`).
 */
const INDEX_BATCH = 1024;

/** A pack takes no more entries once it is this large; the next goes to a new pack. */
export const PACK_BYTES = 256 * 1024 * 1024;

interface Pack {
  /** Its id (the hex in its name, which sealing keeps) and its name now. */
  id: string;
  name: string;
  fd: number;
  /** Written by this object (indexed as it is appended, never scanned again). */
  own: boolean;
  /** Where the next scan of someone else's pack goes on. */
  scanned: number;
  damage: string | undefined;
  /** Index records of entries this object appended, not yet in the pack's index (written at `flush`, or by INDEX_BATCH). */
  unindexed: Buffer[];
  /** A read found another CID where a slot from this pack's index said (the index lied): scanned whole next time. */
  rescan: boolean;
}

/** What `read` answers for a block it holds that is too large to read there (`readAsync` reads it). */
export const LARGE_BLOCK = Symbol('large packed block');

/** Where a packed block's bytes are (for tools and tests that look at the files). */
export interface PackedBlockPlace {
  path: string;
  /** The entry's state byte. */
  stateOffset: number;
  /** The block's bytes. */
  offset: number;
  length: number;
}

/**
 * Small blocks appended to pack files (`blocks/packs/<pid>-<hex>.pack`) instead of a file each: a new file
 * costs ~80 µs of CPU on a quiet ext4 and several times that after mass deletes, more than the rest of a small
 * record's storage (issue #15, docs/benchmarks.md). Each process appends to packs of its own, with one `writev`
 * an entry; others' packs are read with `pread` through descriptors held open, and scanned again for what they
 * added since when a block is not found. Which entry holds a CID is kept in `PackSlots` (off the heap).
 *
 * Bytes are not checked here, as with block files: callers verify every block against its CID.
 */
export class BlockPacks {
  readonly dir: string;
  readonly #packBytes: number;
  #packs: Pack[] = [];
  #slots = new PackSlots();
  /** Views of `#head` by CID length, and the two-piece vector of a read: made once, not per read. */
  readonly #heads: Buffer[] = [];
  readonly #iov: Uint8Array[] = [];
  #writer: { pack: number; size: number } | undefined;
  #loaded: Promise<void> | undefined;
  #refreshing: Promise<void> | undefined;
  #ready = false;
  #madeDir = false;
  /** Own packs appended to since the last `flush`, and whether names in the folder changed (or the folder was made). */
  readonly #unsynced = new Set<Pack>();
  #namesChanged = false;
  #folderMade = false;
  /** An entry's header and CID bytes, read to confirm which CID an entry holds. */
  readonly #head = Buffer.allocUnsafe(PACK_HEADER_BYTES + 255);
  readonly #blocksDir: string;
  /** The index appends under way, in order (each waits for the one before). */
  #indexed: Promise<void> = Promise.resolve();
  #entriesFromIndexes = 0;
  #bytesScanned = 0;

  constructor(blocksDir: string, packBytes = PACK_BYTES) {
    this.dir = join(blocksDir, PACKS_DIR);
    this.#blocksDir = blocksDir;
    this.#packBytes = packBytes;
  }

  /** What indexing others' packs took so far: entries read from their indexes, and pack bytes scanned. */
  get indexing(): { entriesFromIndexes: number; bytesScanned: number } {
    return { entriesFromIndexes: this.#entriesFromIndexes, bytesScanned: this.#bytesScanned };
  }

  /** Whether the packs there were are indexed (until then, `read` and `has` know nothing). */
  get ready(): boolean {
    return this.#ready;
  }

  /** Blocks indexed. */
  get size(): number {
    return this.#slots.size;
  }

  /** Indexes the packs there are, once (a failed attempt is made again at the next call). */
  load(): Promise<void> {
    this.#loaded ??= this.refresh().then(
      () => {
        this.#ready = true;
      },
      (err: unknown) => {
        this.#loaded = undefined;
        throw err;
      },
    );
    return this.#loaded;
  }

  /** Indexes packs that appeared, and what others' packs gained, since the last look. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#scanAll().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #scanAll(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const known = new Map(this.#packs.map((p) => [p.id, p]));
    for (const name of names.sort()) {
      const id = PACK_NAME_RE.exec(name)?.[2];
      if (id === undefined) continue;
      const pack = known.get(id);
      if (pack !== undefined) {
        pack.name = name; // sealed since: the same file, read on where the last scan ended
        continue;
      }
      let fd: number;
      try {
        fd = await openAsync(join(this.dir, name));
      } catch {
        continue; // removed since (a gc rewrote it)
      }
      this.#packs.push({ id, name, fd, own: false, scanned: 0, damage: undefined, unindexed: [], rescan: false });
    }
    for (let n = 0; n < this.#packs.length; n++) {
      const pack = this.#packs[n]!;
      if (pack.own) continue;
      // A pack whose index lied is read again from its start, by a scan only, and gets a true index.
      const rescan = pack.rescan;
      if (rescan) Object.assign(pack, { rescan: false, scanned: 0, damage: undefined });
      if (pack.damage !== undefined) continue;
      const size = await sizeOf(pack.fd);
      if (size <= pack.scanned) continue;
      // A pack nobody writes whose index lacks entries gets a whole one, for the next store that opens it:
      // the good runs of its index as they are, and a record for each entry scanned.
      const pieces: Buffer[] | undefined = pack.scanned === 0 && !packWriterRunning(pack.name) ? [] : undefined;
      const scanned = (e: PackEntry): void => {
        pieces?.push(indexRecord(e.offset, e.state, e.cid.bytes, e.length));
        this.#file(n, e.offset, e.state, e.cid.bytes, e.cid.multihash.digest, e.length);
      };
      const fromIndex = pack.scanned === 0 && !rescan ? await this.#fromIndex(n, pack, size, scanned, pieces) : { whole: false, broke: false };
      if (fromIndex.broke) {
        // An index that is not this pack's: scanned from its start instead (what it filed is only ever a
        // candidate place that a read confirms), and indexed anew.
        pieces?.splice(0);
        Object.assign(pack, { scanned: 0, damage: undefined });
      }
      if (pack.damage === undefined && size > pack.scanned) {
        const from = pack.scanned;
        const scan = await scanPack(pack.fd, from, size, scanned);
        this.#bytesScanned += scan.end - from;
        pack.scanned = scan.end;
        pack.damage = scan.damage;
      }
      if (pieces !== undefined && pieces.length > 0 && !fromIndex.whole && pack.damage === undefined) {
        await writePackIndex(packIndexPath(this.#blocksDir, pack.id), pieces).catch(() => {}); // only a cache: a read-only store scans
      }
    }
  }

  /** Files a live entry of pack `n` (a copy filed already stays). */
  #file(n: number, offset: number, state: number, cidBytes: Uint8Array, digest: Uint8Array, length: number): void {
    if (state !== PACK_LIVE) return;
    if (this.#slots.findDigest(digest, (place) => this.#readHead(place, cidBytes)) !== -1) return;
    this.#slots.addDigest(digest, { pack: n, offset, cidLength: cidBytes.byteLength, length });
  }

  /**
   * Files a pack's entries from its index (`pack-index.ts`), scanning the pack (`scanned`) where the index
   * skips some (entries its writer had not indexed when it stopped, a takeover's); stops using the index at
   * the first record that does not start where the pack's previous entry ends, or runs past the pack. Leaves
   * `pack.scanned` where the index left off (the caller scans on from there). With `pieces`, adds the index's
   * good runs of records to them, as they are. Whether the index covered the pack to where it was read, and
   * whether it broke off on a record that cannot be this pack's (the caller then scans the pack whole).
   */
  async #fromIndex(n: number, pack: Pack, size: number, scanned: (e: PackEntry) => void, pieces: Buffer[] | undefined): Promise<{ whole: boolean; broke: boolean }> {
    const bytes = await readPackIndex(packIndexPath(this.#blocksDir, pack.id));
    if (bytes === undefined) return { whole: false, broke: false };
    // The pack's magic is checked as a scan from its start would (a pack that is not one is damage).
    const head = await scanPack(pack.fd, 0, PACK_MAGIC.byteLength, scanned);
    if (head.damage !== undefined) {
      pack.damage = head.damage;
      return { whole: false, broke: false };
    }
    let pos = head.end;
    let filed = 0;
    let whole = true;
    let broke = false;
    let run = -1; // where the current run of good records starts in the index
    let runEnd = -1;
    const endRun = (): void => {
      if (run !== -1) pieces?.push(bytes.subarray(run, runEnd));
      run = -1;
    };
    for (const r of indexRecords(bytes)) {
      if (r.offset > pos) {
        endRun();
        whole = false;
        const gap = await scanPack(pack.fd, pos, r.offset, scanned);
        this.#bytesScanned += gap.end - pos;
        pos = gap.end;
        if (gap.damage !== undefined || gap.end !== r.offset) {
          broke = true;
          break;
        }
      }
      const end = entryEnd(r);
      const digest = cidDigest(r.cidBytes);
      if (r.offset !== pos || end > size || digest === undefined) {
        broke = true;
        break;
      }
      this.#file(n, r.offset, r.state, r.cidBytes, digest, r.length);
      if (run === -1) run = r.at;
      runEnd = r.at + INDEX_RECORD_HEAD + r.cidBytes.byteLength;
      filed++;
      pos = end;
    }
    endRun();
    this.#entriesFromIndexes += filed;
    pack.scanned = pos;
    return { whole: whole && !broke && pos === size, broke };
  }

  /** The slot of a CID whose entry is live, or -1 (each candidate confirmed by the CID bytes in its entry). */
  #find(cid: CID): number {
    return this.#slots.find(cid, (place) => this.#readHead(place, cid.bytes));
  }

  #readHead(place: PackPlace, cidBytes: Uint8Array): boolean {
    const pack = this.#packs[place.pack];
    if (pack === undefined || place.cidLength !== cidBytes.byteLength) return false;
    const want = PACK_HEADER_BYTES + place.cidLength;
    if (readSync(pack.fd, this.#head, 0, want, place.offset) !== want) return false;
    const same = holdsCid(this.#head.subarray(0, want), cidBytes);
    if (!same) pack.rescan = true; // another CID where the slot says: its index lied (or 64 bits of two digests agree)
    return same && this.#head[0] === PACK_LIVE;
  }

  has(cid: CID): boolean {
    return this.#find(cid) !== -1;
  }

  /**
   * Whether a put of `cid` can be skipped: the block is in this object's pack being written, or in a pack
   * that is still there. A sealed pack or another process's may have been written again by `gc` without it
   * (its open descriptor still reads the old file), so such a copy counts only while its file exists.
   */
  holds(cid: CID): boolean {
    const slot = this.#find(cid);
    if (slot === -1) return false;
    const pack = this.#packs[this.#slots.place(slot).pack]!;
    return (this.#writer !== undefined && this.#packs[this.#writer.pack] === pack) || existsSync(join(this.dir, pack.name));
  }

  /**
   * A packed block's bytes, in memory `alloc` gives for its size, by one blocking `preadv` (a small block, which
   * the page cache holds when it was just written or read); undefined when the packs do not hold it (live), and
   * LARGE_BLOCK, unread, when it is `syncBelow` bytes or more.
   */
  read(cid: CID, alloc: (size: number) => Uint8Array, syncBelow = Infinity): Uint8Array | typeof LARGE_BLOCK | undefined {
    const slots = this.#slots;
    // Nothing allocated here but the block's memory (`alloc`): replay reads a block per 4 KiB hit.
    for (let slot = slots.first(cid); slot !== -1; slot = slots.next(cid, slot)) {
      const pack = this.#packs[slots.packOf(slot)];
      const cidLength = slots.cidLengthOf(slot);
      const length = slots.lengthOf(slot);
      if (pack === undefined || cidLength !== cid.bytes.byteLength) continue;
      if (length >= syncBelow) return LARGE_BLOCK;
      const head = (this.#heads[cidLength] ??= this.#head.subarray(0, PACK_HEADER_BYTES + cidLength));
      const data = alloc(length);
      const iov = this.#iov;
      iov[0] = head;
      iov[1] = data;
      const n = readvSync(pack.fd, iov, slots.offsetOf(slot));
      iov[1] = head; // holds no answer's memory
      if (isEntryOf(head, cid)) return filled(data, n - head.byteLength);
      if (!holdsCid(head, cid.bytes)) {
        pack.rescan = true; // the slot came from an index that lied: dropped, and the pack scanned at the next look
        slots.remove(slot);
      }
    }
    return undefined;
  }

  /** A packed block's bytes read through the thread pool (a large one, or a cold one: the event loop goes on). */
  async readAsync(cid: CID, alloc: (size: number) => Uint8Array): Promise<Uint8Array | undefined> {
    for (const place of this.#slots.candidates(cid)) {
      const pack = this.#packs[place.pack];
      if (pack === undefined || place.cidLength !== cid.bytes.byteLength) continue;
      const head = Buffer.allocUnsafe(PACK_HEADER_BYTES + place.cidLength);
      const data = alloc(place.length);
      const n = await new Promise<number>((resolve, reject) => readv(pack.fd, [head, data], place.offset, (err, read) => (err === null ? resolve(read) : reject(err))));
      if (isEntryOf(head, cid)) return filled(data, n - head.byteLength);
      if (!holdsCid(head, cid.bytes)) pack.rescan = true;
    }
    return undefined;
  }

  /** Where a live packed block is, or undefined. */
  locate(cid: CID): PackedBlockPlace | undefined {
    const slot = this.#find(cid);
    if (slot === -1) return undefined;
    const place = this.#slots.place(slot);
    return { path: join(this.dir, this.#packs[place.pack]!.name), stateOffset: place.offset, offset: place.offset + PACK_HEADER_BYTES + place.cidLength, length: place.length };
  }

  /**
   * Appends a block to this object's pack (made at the first append, and again once it reaches
   * PACK_BYTES, the full one sealed). A failed write (a full disk) is cut off again, so the pack ends with a whole entry.
   */
  append(cid: CID, bytes: Uint8Array): void {
    const writer = this.#writer !== undefined && this.#writer.size < this.#packBytes ? this.#writer : this.#newPack();
    const pack = this.#packs[writer.pack]!;
    const head = entryHead(cid, bytes.byteLength);
    const at = writer.size;
    const total = head.byteLength + bytes.byteLength;
    try {
      let done = writevSync(pack.fd, [head, bytes], at);
      // A short write is finished with the rest (a full disk then throws, and the entry is cut off below).
      while (done < total) done += writeSync(pack.fd, Buffer.concat([head, bytes]).subarray(done), 0, total - done, at + done);
    } catch (err) {
      try {
        ftruncateSync(pack.fd, at);
      } catch {
        // The entry stays torn at the end: scans stop before it, and gc drops it.
      }
      throw err;
    }
    writer.size += total;
    this.#unsynced.add(pack);
    pack.unindexed.push(indexRecord(at, PACK_LIVE, cid.bytes, bytes.byteLength));
    if (pack.unindexed.length >= INDEX_BATCH) this.#appendIndex([pack], [pack.unindexed.splice(0)]).catch(() => {});
    this.#slots.add(cid, { pack: writer.pack, offset: at, cidLength: cid.bytes.byteLength, length: bytes.byteLength });
  }

  /**
   * Appends index records to their packs' indexes, after those of earlier calls (records stay in the order
   * their entries were appended). A failed write leaves them to a scan: an index is only a cache.
   */
  #appendIndex(packs: readonly Pack[], records: ReadonlyArray<readonly Buffer[]>): Promise<void> {
    const append = async (): Promise<void> => {
      for (const [i, pack] of packs.entries()) {
        if (records[i]!.length > 0) await appendPackIndex(packIndexPath(this.#blocksDir, pack.id), records[i]!).catch(() => {});
      }
    };
    this.#indexed = this.#indexed.then(append);
    return this.#indexed;
  }

  #newPack(): { pack: number; size: number } {
    if (this.#writer !== undefined) this.#seal(this.#packs[this.#writer.pack]!);
    const claimed = this.#claimSealed();
    if (claimed !== undefined) return claimed;
    if (!this.#madeDir) {
      mkdirSync(this.dir, { recursive: true });
      this.#madeDir = true;
      this.#folderMade = true;
    }
    const id = randomBytes(6).toString('hex');
    const name = `${process.pid}-${id}.pack`;
    let fd: number;
    try {
      fd = openSync(join(this.dir, name), 'wx+', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(this.dir, { recursive: true }); // the folder was removed since it was made
      fd = openSync(join(this.dir, name), 'wx+', 0o644);
    }
    try {
      writeSync(fd, PACK_MAGIC, 0, PACK_MAGIC.byteLength, 0);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.#packs.push({ id, name, fd, own: true, scanned: PACK_MAGIC.byteLength, damage: undefined, unindexed: [], rescan: false });
    this.#namesChanged = true;
    this.#writer = { pack: this.#packs.length - 1, size: PACK_MAGIC.byteLength };
    return this.#writer;
  }

  /**
   * Takes over a pack with room that nobody appends to any more (sealed, or its writer gone), by renaming it to
   * this process's name (no other process takes it then, and gc leaves it): without this, every run that stores
   * anything would leave one more pack, and a store holds a descriptor for each. Only a pack indexed to its end
   * (no torn tail) is taken, so the next entry goes where its last one ends.
   */
  #claimSealed(): { pack: number; size: number } | undefined {
    for (let n = 0; n < this.#packs.length; n++) {
      const pack = this.#packs[n]!;
      if (pack.own || pack.damage !== undefined || pack.scanned >= this.#packBytes || packWriterRunning(pack.name)) continue;
      const mine = join(this.dir, `${process.pid}-${pack.id}.pack`);
      try {
        renameSync(join(this.dir, pack.name), mine);
      } catch {
        continue; // taken by another process, or rewritten by gc, since it was read
      }
      let fd: number | undefined;
      try {
        fd = openSync(mine, 'r+');
        if (fstatSync(fd).size === pack.scanned) {
          closeSync(pack.fd);
          Object.assign(pack, { fd, own: true, name: `${process.pid}-${pack.id}.pack` });
          this.#namesChanged = true;
          this.#writer = { pack: n, size: pack.scanned };
          return this.#writer;
        }
      } catch {
        // not writable here: given back below
      }
      if (fd !== undefined) closeSync(fd);
      try {
        renameSync(mine, join(this.dir, pack.name)); // it grew since it was read: given back as it was
      } catch {
        // left under this process's name: gc takes it as a pack whose writer is gone once this process is
      }
    }
    return undefined;
  }

  /**
   * Sets a packed block aside: its entry's state byte becomes PACK_QUARANTINED in place (the bytes stay for
   * inspection until `gc`), so no process serves it again. Whether the packs held it.
   */
  quarantine(cid: CID): boolean {
    const slot = this.#find(cid);
    if (slot === -1) return false;
    const place = this.#slots.place(slot);
    const pack = this.#packs[place.pack]!;
    let fd: number | undefined;
    try {
      fd = pack.own ? pack.fd : openForMark(this.dir, pack);
      writeSync(fd, Buffer.of(PACK_QUARANTINED), 0, 1, place.offset);
    } catch {
      // Not writable here: forgotten by this process all the same (never served again by it).
    } finally {
      if (fd !== undefined && !pack.own) closeSync(fd);
    }
    this.#slots.remove(slot);
    return true;
  }

  /**
   * Puts on disk what this object wrote since the last flush: the data of every pack it appended to (sealed
   * since or not), then the folder's names (packs made, sealed or taken over). A failed flush leaves all of
   * it to the next one.
   */
  async flush(): Promise<void> {
    const packs = [...this.#unsynced];
    // The index records of what this flush puts on disk (not of what is appended while it waits).
    const records = packs.map((pack) => pack.unindexed.splice(0));
    const names = this.#namesChanged;
    const folder = this.#folderMade;
    this.#unsynced.clear();
    this.#namesChanged = false;
    this.#folderMade = false;
    try {
      await Promise.all(packs.map((pack) => datasync(pack.fd)));
      if (names) await syncDir(this.dir);
      if (folder) await syncDir(join(this.dir, '..'));
    } catch (err) {
      packs.forEach((pack, i) => {
        this.#unsynced.add(pack);
        pack.unindexed.unshift(...records[i]!);
      });
      this.#namesChanged ||= names;
      this.#folderMade ||= folder;
      throw err;
    }
    // Indexed once their entries are on disk, in the order they were appended.
    await this.#appendIndex(packs, records);
  }

  /** Renames the pack being written to its sealed name: it takes no more entries, so `gc` may rewrite it. */
  #seal(pack: Pack): void {
    this.#writer = undefined;
    const sealed = sealedPackName(pack.id);
    try {
      renameSync(join(this.dir, pack.name), join(this.dir, sealed));
      pack.name = sealed;
      this.#namesChanged = true;
    } catch {
      // Left under the writer's name: gc leaves it until this process is gone, then rewrites it all the same.
    }
  }

  /** Seals the pack being written, closes every pack and forgets the index: the next use loads it again. Idempotent. */
  close(): void {
    if (this.#writer !== undefined) this.#seal(this.#packs[this.#writer.pack]!);
    for (const pack of this.#packs) closeSync(pack.fd);
    this.#unsynced.clear(); // a store is flushed before it is closed (a rename of the seal above is not: gc knows a pack whose writer is gone)
    this.#packs = [];
    this.#slots = new PackSlots();
    this.#writer = undefined;
    this.#loaded = undefined;
    this.#ready = false;
  }
}

/** Another process's pack, to mark an entry: under the name it was read by, or the one sealing gave it since. */
function openForMark(dir: string, pack: Pack): number {
  try {
    return openSync(join(dir, pack.name), 'r+');
  } catch {
    return openSync(join(dir, sealedPackName(pack.id)), 'r+');
  }
}

/** Whether an entry's header and CID bytes, as read, are a live entry of `cid`. */
function isEntryOf(head: Uint8Array, cid: CID): boolean {
  return head[0] === PACK_LIVE && holdsCid(head, cid.bytes);
}

/** Whether an entry's header and CID bytes, as read, are an entry of the CID `bytes` (live or set aside). */
function holdsCid(head: Uint8Array, bytes: Uint8Array): boolean {
  if (head[1] !== bytes.byteLength || head.byteLength !== PACK_HEADER_BYTES + bytes.byteLength) return false;
  // A loop, not `subarray(…).equals(…)`: no view allocated per read, for a few dozen bytes.
  for (let i = 0; i < bytes.byteLength; i++) if (head[PACK_HEADER_BYTES + i] !== bytes[i]) return false;
  return true;
}

/** The block read, or the part of it there was (the file was cut short): what its hash then refuses. */
function filled(data: Uint8Array, n: number): Uint8Array {
  return n >= data.byteLength ? data : data.subarray(0, Math.max(0, n));
}

function openAsync(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err === null ? resolve(fd) : reject(err))));
}

function sizeOf(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fstat(fd, (err, st) => (err === null ? resolve(st.size) : reject(err))));
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err === null ? resolve() : reject(err))));
}

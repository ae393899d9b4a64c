import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CID } from 'multiformats/cid';
import { InvalidNetlockError } from '../errors.ts';
import { syncDir } from '../io/durable.ts';
import type { BlockSink } from '../protocol/blocks.ts';
import { buildNetlockPaged, compareKeys, NETLOCK_VERSION, NetlockReader, sortedEntries, WALK_ONCE } from './dag.ts';
import type { BuildNetlockOptions, NetlockEntry, NetlockRoot, SortedEntries } from './dag.ts';
import type { FetchRecord, RecordResponse } from '../protocol/record.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { decodeCountersignature } from '../protocol/countersignature.ts';
import type { Countersignature } from '../protocol/countersignature.ts';
import { cidText } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { decodeRecord } from '../protocol/record.ts';

/** One readable line of `netlock.json` (design §4). */
export interface NetlockFileEntry {
  method: string;
  url: string;
  accept: string;
  status: number;
  body: string | null;
  size: number;
  sha256: string;
  record: string;
  signature: string;
  /** Countersignatures (only in a witnessed netlock, only on entries that have any), in the order the DAG keeps. */
  witnesses?: ReadableWitness[];
}

/** One countersignature of an entry, readable: the witness key, the record it vouches for, its fetch time, the block and signature. */
export interface ReadableWitness {
  witness: string;
  record: string;
  fetchedAt: string;
  countersignature: string;
  signature: string;
}

/** A netlock file as `writeNetlockFileFrom` returns it: its head, the lines left in the file. */
export type WrittenNetlock = Omit<NetlockFile, 'entries'>;

export interface NetlockFile {
  netlock: string;
  version: number;
  keyVersion: number;
  count: number;
  oracles: string[];
  /** Witness keys (hex), only in a witnessed netlock. */
  witnesses?: string[];
  variantRules?: Record<string, readonly string[]>;
  entries: NetlockFileEntry[];
}

/**
 * What a netlock file's lines, its root and the report read of an entry's record; the rest stays in the
 * record block (a run decodes no more than this from what it holds, `RunSet`).
 */
export interface RecordSummary {
  readonly oracle: Uint8Array;
  readonly fetchedAt: string;
  readonly response: Pick<RecordResponse, 'status' | 'body' | 'size' | 'sha256' | 'headers'>;
}

/** An index entry with what its netlock line needs of its record, and its countersignatures decoded. */
export interface EntrySummary extends NetlockEntry {
  readonly record: RecordSummary;
  /** The decoded countersignatures, in the order of `witnesses`. */
  readonly countersigned?: readonly Countersignature[] | undefined;
}

/** An index entry with its whole record decoded. */
export interface DecodedEntry extends EntrySummary {
  readonly record: FetchRecord;
}

/** An index entry with its record and countersignatures decoded (blocks read through `source`, which should verify them). */
export async function decodeEntry(e: NetlockEntry, source: BlockSource, options: AbortOptions = {}): Promise<DecodedEntry> {
  const record = decodeRecord(await source.get(e.signed.record, options));
  if ((e.witnesses?.length ?? 0) === 0) return { key: e.key, signed: e.signed, record };
  const countersigned: Countersignature[] = [];
  for (const w of e.witnesses ?? []) countersigned.push(decodeCountersignature(await source.get(w.countersignature, options), w.countersignature));
  return { key: e.key, signed: e.signed, record, witnesses: e.witnesses, countersigned };
}

/** Renders the file with one entry per line, sorted by request key, so that diffs of two builds read well. */
export function renderNetlockFile(file: NetlockFile): string {
  return [...renderedPieces(file)].join('');
}

/** The rendered file in pieces of up to 1,000 lines: a 100,000-entry file is written without one 40 MB string. */
function* renderedPieces(file: NetlockFile): Generator<string> {
  yield renderedHead(file);
  const n = file.entries.length;
  for (let i = 0; i < n; i += RENDERED_PAGE_LINES) yield `${renderedLines(file.entries.slice(i, i + RENDERED_PAGE_LINES), i === 0)}${i + RENDERED_PAGE_LINES < n ? '' : '\n'}`;
  yield RENDERED_TAIL;
}

/** The file up to its first entry line. */
function renderedHead(file: WrittenNetlock): string {
  const head = { netlock: file.netlock, version: file.version, keyVersion: file.keyVersion, count: file.count, oracles: file.oracles, ...(file.witnesses === undefined ? {} : { witnesses: file.witnesses }), ...(file.variantRules === undefined ? {} : { variantRules: file.variantRules }) };
  return `${JSON.stringify(head, null, 2).replace(/\n}$/, '')},\n  "entries": [\n`;
}

/** Entry lines, each but the file's first preceded by the comma and newline that end the one before. */
function renderedLines(lines: readonly NetlockFileEntry[], first: boolean): string {
  return lines.map((e, i) => `${first && i === 0 ? '' : ',\n'}    ${JSON.stringify(e)}`).join('');
}

const RENDERED_TAIL = '  ]\n}\n';
/** Lines rendered and written at a time. */
const RENDERED_PAGE_LINES = 1000;

/** Builds the netlock DAG into `sink` and returns the readable form of it. */
export async function buildNetlockFile(entries: readonly EntrySummary[], sink: BlockSink, options: BuildNetlockOptions = {}): Promise<NetlockFile> {
  const lines: NetlockFileEntry[] = [];
  const head = await buildNetlockHead(sortedEntries(entries), sink, options, (page) => {
    lines.push(...page);
  });
  return { ...head, entries: lines };
}

/**
 * Builds the netlock DAG over entries decoded a page at a time, giving each leaf page's readable lines to
 * `onLines` (awaited) when given; returns the file's head. The root's oracle and witness keys are gathered from the
 * entries (witness keys from their decoded countersignatures, else `options.witnesses`).
 */
export async function buildNetlockHead(entries: SortedEntries<EntrySummary>, sink: BlockSink, options: BuildNetlockOptions, onLines?: (lines: NetlockFileEntry[]) => void | Promise<void>): Promise<WrittenNetlock> {
  const oracles = new Map<string, Uint8Array>();
  const witnesses = new Map<string, Uint8Array>();
  const signers = (): { oracles: Uint8Array[]; witnesses: readonly Uint8Array[] | undefined } => ({ oracles: [...oracles.values()], witnesses: witnesses.size > 0 ? [...witnesses.values()] : options.witnesses });
  const built = await buildNetlockPaged(entries, signers, sink, options, async (page) => {
    for (const e of page) {
      oracles.set(toHex(e.record.oracle), e.record.oracle);
      for (const c of e.countersigned ?? []) witnesses.set(toHex(c.witness), c.witness);
    }
    if (onLines !== undefined) await onLines(page.map(readableEntry));
  });
  return readableHead(built.root, built.rootValue);
}

/** The readable file's head: the fields of the signed root. */
function readableHead(root: CID, value: NetlockRoot): WrittenNetlock {
  return {
    netlock: root.toString(),
    version: NETLOCK_VERSION,
    keyVersion: value.keyVersion,
    count: value.count,
    oracles: value.oracles.map(toHex),
    ...(value.witnesses === undefined ? {} : { witnesses: value.witnesses.map(toHex) }),
    ...(value.variantRules === undefined ? {} : { variantRules: value.variantRules }),
  };
}

/**
 * Builds the netlock DAG into `sink` a page at a time and writes the readable file atomically at `path`,
 * byte for byte what `renderNetlockFile` gives, without holding its lines: they go to a scratch file as
 * their pages are built, and follow the head (known once the root is) into the file. A 100,000-entry run
 * held ~60 MB of lines while writing otherwise (issue #15).
 */
export async function writeNetlockFileFrom(path: string, entries: SortedEntries<EntrySummary>, sink: BlockSink, options: BuildNetlockOptions = {}, file: FileDurability = { durable: true }): Promise<WrittenNetlock> {
  const linesTmp = tempPathFor(path);
  const lines = await open(linesTmp, 'w+', 0o600);
  try {
    let first = true;
    const head = await buildNetlockHead(entries, sink, options, async (page) => {
      await lines.write(renderedLines(page, first));
      first &&= page.length === 0;
    });
    if (head.count > 0) await lines.write('\n');
    if (file.durable) await sink.flush?.(); // the pages on disk before the file that names their root
    await writeFileAtomically(path, file, async (out) => {
      await out.write(renderedHead(head));
      for await (const chunk of lines.createReadStream({ start: 0, autoClose: false })) await out.write(chunk as Buffer);
      await out.write(RENDERED_TAIL);
    });
    return head;
  } finally {
    await lines.close();
    await unlink(linesTmp).catch(() => {});
  }
}

/** The readable line of one netlock entry: what `verify` checks every line of a file against. */
export function readableEntry(e: EntrySummary): NetlockFileEntry {
  const k = parseKeyId(e.key);
  return {
    method: k.method,
    url: k.url,
    accept: k.variant['accept'] ?? '',
    status: e.record.response.status,
    body: e.record.response.body === null ? null : cidText(e.record.response.body),
    size: e.record.response.size,
    sha256: toHex(e.record.response.sha256),
    record: cidText(e.signed.record),
    signature: Buffer.from(e.signed.signature).toString('base64'),
    ...readableWitnesses(e),
  };
}

/** The `witnesses` field of an entry's line (sorted by countersignature CID, as the leaf keeps them), or nothing. */
function readableWitnesses(e: EntrySummary): { witnesses?: ReadableWitness[] } {
  const w = e.witnesses ?? [];
  if (w.length === 0) return {};
  const lines = w.map((signed, i) => {
    const c = e.countersigned?.[i];
    if (c === undefined) throw new InvalidNetlockError(`Entry ${e.key.split('\n').slice(0, 2).join(' ')} has a countersignature that was not decoded`);
    return { witness: toHex(c.witness), record: c.record.toString(), fetchedAt: c.fetchedAt, countersignature: signed.countersignature.toString(), signature: Buffer.from(signed.signature).toString('base64') };
  });
  return { witnesses: lines.sort((a, b) => compareKeys(a.countersignature, b.countersignature)) };
}

/** Builds the netlock DAG into `sink` and writes the readable file atomically at `path`. */
export async function writeNetlockFile(path: string, entries: readonly EntrySummary[], sink: BlockSink, options: BuildNetlockOptions = {}): Promise<NetlockFile> {
  const file = await buildNetlockFile(entries, sink, options);
  await sink.flush?.(); // the pages on disk before the file that names their root
  await writeRenderedFile(path, file);
  return file;
}

/**
 * Writes the readable file of the netlock at `root` atomically at `path`, reading its entries from `source`
 * (which should verify blocks) a page at a time: `import --netlock` rebuilt the whole netlock in memory to
 * write it, every record decoded (issue #15). The head comes from the root, so its fields are the signed ones.
 */
export async function writeNetlockFileOf(path: string, root: CID, source: BlockSource, options: AbortOptions = {}): Promise<WrittenNetlock> {
  const reader = new NetlockReader(root, source, WALK_ONCE);
  const value = await reader.rootValue(options);
  const head = readableHead(root, value);
  await writeFileAtomically(path, { durable: true }, async (out) => {
    await out.write(renderedHead(head));
    let page: NetlockFileEntry[] = [];
    let written = 0;
    for await (const e of reader.entries(options)) {
      page.push(readableEntry(await decodeEntry(e, source, options)));
      if (page.length === RENDERED_PAGE_LINES) {
        await out.write(renderedLines(page, written === 0));
        written += page.length;
        page = [];
      }
    }
    await out.write(renderedLines(page, written === 0));
    written += page.length;
    if (written !== value.count) throw new InvalidNetlockError(`Netlock ${head.netlock} has ${written} entries but its root says ${value.count}`);
    await out.write(written > 0 ? `\n${RENDERED_TAIL}` : RENDERED_TAIL);
  });
  return head;
}

/** Writes the readable file atomically at `path`, a piece at a time. */
export async function writeRenderedFile(path: string, file: NetlockFile): Promise<void> {
  await writeFileAtomically(path, { durable: true }, async (out) => {
    for (const piece of renderedPieces(file)) await out.write(piece);
  });
}

/** A temporary file beside `path` (the data directory's stale-temp sweep knows the pattern). */
export function tempPathFor(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

/** Whether a netlock file is put on disk before the write resolves (not for a copy read once and dropped). */
export interface FileDurability {
  durable: boolean;
}

/**
 * Writes a temporary file beside `path` with `fill`, then renames it over `path`. `durable`: the file is
 * synced before the rename and the folder after, so the netlock is whole on disk before the run's journal
 * (what would rebuild it) is removed.
 */
async function writeFileAtomically(path: string, { durable }: FileDurability, fill: (out: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  const handle = await open(tmp, 'w');
  try {
    try {
      await fill(handle);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    if (durable) await syncDir(dirname(path));
  } catch (err) {
    await unlink(tmp).catch(() => {}); // a full disk leaves no partial file behind
    throw err;
  }
}

/** `ipfs://CID`: a netlock named by its root alone, its blocks in the block store (e.g. Kubo and its peers). */
const IPFS_REF = /^ipfs:\/\/([a-z0-9]+)\/?$/i;

/** Whether `ref` names a netlock by its root (`ipfs://CID`) rather than a file. */
export function isNetlockRootRef(ref: string): boolean {
  return IPFS_REF.test(ref.trim());
}

/** Reads a netlock file (the JSON written above) or a bare root CID, or takes the root of `ipfs://CID`; returns the root. */
export async function readNetlockRoot(path: string): Promise<{ root: CID; file: NetlockFile | undefined }> {
  const ref = IPFS_REF.exec(path.trim());
  if (ref !== null) return { root: parseRoot(ref[1]!, path), file: undefined };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new InvalidNetlockError(`Cannot read netlock ${path}: ${(cause as Error).message}`, { cause });
  }
  const trimmed = text.trim();
  if (/^[a-z0-9]+$/i.test(trimmed)) return { root: parseRoot(trimmed, path), file: undefined };
  let file: NetlockFile;
  try {
    file = JSON.parse(text) as NetlockFile;
  } catch (cause) {
    throw new InvalidNetlockError(`Netlock ${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof file.netlock !== 'string') throw new InvalidNetlockError(`Netlock ${path} has no "netlock" root CID`);
  return { root: parseRoot(file.netlock, path), file };
}

/** Bytes `netlockRootOf` reads: the head `renderNetlockFile` writes before the entries. */
const HEAD_BYTES = 4096;

/**
 * The root CID of a netlock file, reading only its head when the file starts as `renderNetlockFile` writes it
 * (`{"netlock": "<cid>", …`): a 100,000-entry file is ~40 MB of JSON, and parsing it whole to start a replay
 * cost ~150 MB of peak memory. Other files (a bare CID, another layout) are read as `readNetlockRoot` does.
 */
export async function netlockRootOf(path: string): Promise<CID> {
  if (isNetlockRootRef(path)) return (await readNetlockRoot(path)).root;
  let root: string | undefined;
  try {
    const fh = await open(path, 'r');
    try {
      root = await headRootOf(fh);
    } finally {
      await fh.close();
    }
  } catch {
    return (await readNetlockRoot(path)).root; // reports the unreadable file
  }
  return root === undefined ? (await readNetlockRoot(path)).root : parseRoot(root, path);
}

/** The root CID text at the head of an open netlock file, when it starts as `renderNetlockFile` writes it. */
export async function headRootOf(fh: FileHandle): Promise<string | undefined> {
  return /^\s*\{\s*"netlock"\s*:\s*"([a-z0-9]+)"\s*,/.exec(await netlockHead(fh))?.[1];
}

/** The first HEAD_BYTES of an open netlock file, as text. */
export async function netlockHead(fh: FileHandle): Promise<string> {
  const buf = Buffer.alloc(HEAD_BYTES);
  const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
  return buf.subarray(0, bytesRead).toString('utf8');
}

function parseRoot(text: string, path: string): CID {
  try {
    return CID.parse(text);
  } catch (cause) {
    throw new InvalidNetlockError(`Netlock ${path} names an invalid root CID ${JSON.stringify(text.slice(0, 80))}`, { cause });
  }
}

import type { CID } from 'multiformats/cid';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { decodeCountersignature } from '../protocol/countersignature.ts';
import { decodeRecord } from '../protocol/record.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { NetlockReader, WALK_ONCE } from './dag.ts';
import { isNetlockRootRef, netlockRootOf, readableEntry } from './file.ts';
import { NetlockFileStream } from './file-entries.ts';
import type { NetlockFileEntry } from './file.ts';
import { verifyNetlock } from './verify.ts';
import type { VerifyFailure, VerifyNetlockOptions, VerifyReport } from './verify.ts';

/** Failure code of a readable field that disagrees with the signed DAG. */
export const FILE_MISMATCH_CODE = 'ORACLE_ERR_INVALID_NETLOCK';

/** The note `verify` prints when it accepted the keys the netlock itself names (no `--trust`). */
export const UNTRUSTED_KEYS_NOTE = 'signed by keys named in the file; pass --trust to check who';

const HEAD_FIELDS = ['netlock', 'version', 'keyVersion', 'count', 'oracles', 'witnesses', 'variantRules', 'entries'] as const;
const ENTRY_FIELDS: ReadonlyArray<keyof NetlockFileEntry> = ['method', 'url', 'accept', 'status', 'body', 'size', 'sha256', 'record', 'signature', 'witnesses'];

export interface FileVerifyReport extends VerifyReport {
  /** Whose keys were accepted: those given with --trust, or whichever keys the netlock names. */
  trust: 'given' | 'named-in-netlock';
  /** Whether the file had readable fields (a JSON netlock) that were checked; false for a bare root CID. */
  fileChecked: boolean;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function show(v: unknown): string {
  const text = JSON.stringify(v) ?? 'absent';
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** A line of the file's entries: its 1-based place in the list, and its value. */
interface FileLine {
  line: number;
  value: unknown;
}

/** What a file line is matched on: method, url and accept (or its place, for a line that is no object). */
function lineId(value: unknown, line: number): string {
  const e = value as Partial<Record<string, unknown>> | null;
  return e !== null && typeof e === 'object' ? `${String(e['method'])} ${String(e['url'])} ${String(e['accept'])}` : `#${line}`;
}

/**
 * Checks every field of a readable netlock file (`src/netlock/file.ts` format; a JSON object, as
 * `NetlockFileStream.isObject` says) against the signed DAG its root names: the head (version, key rules,
 * count, oracle keys, variant rules) against the root block, and every entry's method, url, accept, status,
 * body, size, sha256, record and signature against the index entry and the record block it names. A field
 * the DAG does not carry is a failure too: nothing in the file is taken on trust. Records that cannot be
 * loaded are left to `verifyNetlock`, which reports them.
 *
 * The file is read as a stream beside the walk of the DAG (`NetlockFileStream`): lines are matched to DAG
 * entries by method, url and accept (in order among equals, e.g. POSTs with different bodies), so one removed
 * or added line names that line, not every line after it. A file in the DAG's order (as written) holds one
 * line at a time; lines met before their entry wait, so a shuffled file is held whole. Invalid JSON throws
 * InvalidNetlockError.
 */
export async function checkReadableFile(file: NetlockFileStream, root: CID, store: BlockSource, options: VerifyNetlockOptions = {}): Promise<VerifyFailure[]> {
  const headFailures: VerifyFailure[] = [];
  const failures: VerifyFailure[] = [];
  const failHead = (message: string): void => void headFailures.push({ entry: 'netlock file', code: FILE_MISMATCH_CODE, message });
  const fail = (entry: string, message: string): void => void failures.push({ entry, code: FILE_MISMATCH_CODE, message });
  const source = verifyingSource(store);
  const reader = new NetlockReader(root, source, WALK_ONCE);
  let rootValue;
  try {
    rootValue = await reader.rootValue(options);
  } catch {
    return failures; // verifyNetlock names the unreadable root
  }
  const lines = file.entries(options)[Symbol.asyncIterator]();
  let read = 0;
  let fileDone = false;
  const waiting = new Map<string, FileLine[]>();
  /** The next line of the file, or undefined at its end. */
  const nextLine = async (): Promise<FileLine | undefined> => {
    if (fileDone) return undefined;
    const next = await lines.next();
    if (next.done === true) {
      fileDone = true;
      return undefined;
    }
    return { line: ++read, value: next.value };
  };
  const wait = (id: string, got: FileLine): void => {
    const queue = waiting.get(id);
    if (queue === undefined) waiting.set(id, [got]);
    else queue.push(got);
  };
  /** The first line not yet matched with this id: one met before, or the next such line of the file. */
  const take = async (id: string): Promise<FileLine | undefined> => {
    const queue = waiting.get(id);
    if (queue !== undefined) {
      const got = queue.shift()!;
      if (queue.length === 0) waiting.delete(id);
      return got;
    }
    for (let got = await nextLine(); got !== undefined; got = await nextLine()) {
      const gotId = lineId(got.value, got.line);
      if (gotId === id) return got;
      wait(gotId, got);
    }
    return undefined;
  };
  let fileError: Error | undefined;
  const takeLine = (id: string): Promise<FileLine | undefined> =>
    take(id).catch((err: unknown) => {
      fileError = err as Error;
      throw err;
    });
  try {
    for await (const entry of reader.entries(options)) {
      const k = parseKeyId(entry.key);
      const name = `${k.method} ${k.url}`;
      const accept = k.variant['accept'] ?? '';
      const got = await takeLine(`${k.method} ${k.url} ${accept}`);
      if (got === undefined) {
        fail(name, `is in the signed netlock (accept ${JSON.stringify(accept)}) but not in the file`);
        continue;
      }
      const line = got.value as Record<string, unknown>;
      let want: Partial<NetlockFileEntry>;
      let readable = true;
      try {
        const countersigned = [];
        for (const w of entry.witnesses ?? []) countersigned.push(decodeCountersignature(await source.get(w.countersignature, options), w.countersignature));
        want = readableEntry({ ...entry, record: decodeRecord(await source.get(entry.signed.record, options)), countersigned });
      } catch {
        // The record is unreadable (reported by verifyNetlock): check what the index itself says.
        readable = false;
        want = { method: k.method, url: k.url, accept, record: entry.signed.record.toString(), signature: Buffer.from(entry.signed.signature).toString('base64') };
      }
      for (const field of ENTRY_FIELDS) {
        // A `witnesses` line the DAG does not have is a mismatch too (an added countersignature is not signed by the netlock).
        if (!(field in want) && !(field === 'witnesses' && readable && field in line)) continue;
        if (!same(line[field], want[field])) fail(name, `entry ${got.line} of the file: field ${JSON.stringify(field)} is ${show(line[field])} but the signed netlock says ${show(want[field])}`);
      }
      for (const field of Object.keys(line)) {
        if (!(ENTRY_FIELDS as readonly string[]).includes(field)) fail(name, `entry ${got.line} of the file: field ${JSON.stringify(field)} is not part of the signed netlock`);
      }
    }
  } catch {
    if (fileError !== undefined) throw fileError;
    return failures; // an unreadable index is reported by verifyNetlock
  }
  // The lines no DAG entry took: those met on the way, then the rest of the file.
  for (let got = await nextLine(); got !== undefined; got = await nextLine()) wait(lineId(got.value, got.line), got);
  const left = [...waiting.values()].flat().sort((x, y) => x.line - y.line);

  // The head, complete now that the whole file was read.
  for (const name of [...Object.keys(file.head), ...(file.entriesIs === 'absent' ? [] : ['entries'])]) {
    if (!(HEAD_FIELDS as readonly string[]).includes(name)) failHead(`field ${JSON.stringify(name)} is not part of the signed netlock`);
  }
  const head: Record<string, unknown> = {
    version: rootValue.v,
    keyVersion: rootValue.keyVersion,
    count: rootValue.count,
    oracles: rootValue.oracles.map(toHex),
    witnesses: rootValue.witnesses?.map(toHex),
    variantRules: rootValue.variantRules,
  };
  for (const [name, want] of Object.entries(head)) {
    if (!same(file.head[name], want)) failHead(`field ${JSON.stringify(name)} is ${show(file.head[name])} but the signed netlock says ${show(want)}`);
  }
  if (file.entriesIs !== 'list') {
    failHead('has no "entries" list');
    return headFailures;
  }
  if (read !== rootValue.count) failHead(`lists ${read} entries but the signed netlock holds ${rootValue.count}`);
  for (const { line, value } of left) {
    const e = value as Record<string, unknown> | null;
    const what = e !== null && typeof e === 'object' ? `${String(e['method'])} ${String(e['url'])}` : `entry ${line}`;
    fail(what, `entry ${line} of the file is not in the signed netlock`);
  }
  return [...headFailures, ...failures];
}

/**
 * `fetch-oracle verify FILE`: the signed DAG (signatures, blocks, bodies; `verifyNetlock`) and, for a
 * readable netlock file, every field of it against that DAG (`checkReadableFile`).
 */
export async function verifyNetlockPath(path: string, store: BlockSource, trusted: readonly Uint8Array[] | undefined, options: VerifyNetlockOptions = {}): Promise<FileVerifyReport> {
  const root = await netlockRootOf(path);
  // netlockRootOf took the root from a file that is a JSON object, or a bare root CID (no fields to check).
  const file = isNetlockRootRef(path) ? undefined : new NetlockFileStream(path);
  const readable = file !== undefined && (await file.isObject());
  const report = await verifyNetlock(root, store, trusted, options);
  // Read again as plain JSON: every field as written, not as the NetlockFile type says it should be.
  const fileFailures = readable ? await checkReadableFile(file, root, store, options) : [];
  return { ...report, failures: [...report.failures, ...fileFailures], trust: trusted === undefined ? 'named-in-netlock' : 'given', fileChecked: readable };
}

/** The text `verify` prints (without --json). */
export function renderVerifyText(report: FileVerifyReport, attested: boolean): string {
  const lines = [`netlock ${report.root}`, `  entries: ${report.entries}`, `  body bytes: ${report.bodyBytes}`, `  signed by: ${report.oracles.join(', ') || '(none)'}`];
  if (report.witnesses.length > 0) lines.push(`  witnessed by: ${report.witnesses.join(', ')}`);
  if (report.quorum > 1) lines.push(`  quorum: ${report.quorum} distinct trusted keys per record`);
  if (report.trust === 'named-in-netlock' && !attested) lines.push(`  trust: ${UNTRUSTED_KEYS_NOTE}`);
  for (const n of report.notCounted) lines.push(`  not counted: key ${n.key} (${n.why}) on ${n.entries} entr${n.entries === 1 ? 'y' : 'ies'}`);
  for (const d of report.disagreements) lines.push(`  DISAGREE ${d.entry}: ${d.records.map((r) => `record ${r.record} signed by ${r.keys.join(', ') || 'no counted key'}`).join('; ')}`);
  for (const a of report.attestations ?? []) lines.push(`  attested by: ${a.cid} (${a.moduleId}, ${a.timestamp}, key ${a.publicKey}, PCR0 ${a.pcr0}, ${a.records} record(s))`);
  for (const f of report.failures) lines.push(`FAIL ${f.entry}: ${f.code}: ${f.message}`);
  if (report.failures.length > 0) {
    lines.push(`${report.failures.length} failure(s)`);
  } else {
    const quorum = report.quorum > 1 ? `, each record signed by ${report.quorum} distinct trusted keys` : '';
    const who = (attested ? ', every key attested' : report.trust === 'given' ? ', every key trusted' : '') + quorum;
    const fields = report.fileChecked ? '; every field of the file matches the signed netlock' : '';
    const note = report.trust === 'named-in-netlock' && !attested ? ` (${UNTRUSTED_KEYS_NOTE})` : '';
    lines.push(`OK: every signature, block and body verified${who}${fields}${note}`);
  }
  return `${lines.join('\n')}\n`;
}

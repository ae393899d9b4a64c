import { readFile } from 'node:fs/promises';
import type { CID } from 'multiformats/cid';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { decodeCountersignature } from '../protocol/countersignature.ts';
import { decodeRecord } from '../protocol/record.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { NetlockReader } from './dag.ts';
import { readableEntry, readNetlockRoot } from './file.ts';
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

/**
 * Checks every field of a readable netlock file (`src/netlock/file.ts` format) against the signed DAG its
 * root names: the head (version, key rules, count, oracle keys, variant rules) against the root block, and
 * every entry's method, url, accept, status, body, size, sha256, record and signature against the index
 * entry and the record block it names. A field the DAG does not carry is a failure too: nothing in the file
 * is taken on trust. Records that cannot be loaded are left to `verifyNetlock`, which reports them.
 */
export async function checkReadableFile(text: unknown, root: CID, store: BlockSource, options: VerifyNetlockOptions = {}): Promise<VerifyFailure[]> {
  const failures: VerifyFailure[] = [];
  const fail = (entry: string, message: string): void => void failures.push({ entry, code: FILE_MISMATCH_CODE, message });
  if (text === null || typeof text !== 'object' || Array.isArray(text)) {
    fail('netlock file', 'is not a JSON object');
    return failures;
  }
  const file = text as Record<string, unknown>;
  const source = verifyingSource(store);
  const reader = new NetlockReader(root, source);
  let rootValue;
  try {
    rootValue = await reader.rootValue(options);
  } catch {
    return failures; // verifyNetlock names the unreadable root
  }
  for (const name of Object.keys(file)) {
    if (!(HEAD_FIELDS as readonly string[]).includes(name)) fail('netlock file', `field ${JSON.stringify(name)} is not part of the signed netlock`);
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
    if (!same(file[name], want)) fail('netlock file', `field ${JSON.stringify(name)} is ${show(file[name])} but the signed netlock says ${show(want)}`);
  }
  if (!Array.isArray(file['entries'])) {
    fail('netlock file', 'has no "entries" list');
    return failures;
  }
  const listed = file['entries'] as unknown[];
  if (listed.length !== rootValue.count) fail('netlock file', `lists ${listed.length} entries but the signed netlock holds ${rootValue.count}`);
  // File lines are matched to DAG entries by method, url and accept (in order among equals, e.g. POSTs
  // with different bodies), so one removed or added line names that line, not every line after it.
  const queues = new Map<string, Array<{ line: number; value: unknown }>>();
  listed.forEach((value, i) => {
    const e = value as Partial<Record<string, unknown>> | null;
    const id = e !== null && typeof e === 'object' ? `${String(e['method'])} ${String(e['url'])} ${String(e['accept'])}` : `#${i}`;
    const q = queues.get(id) ?? [];
    q.push({ line: i + 1, value });
    queues.set(id, q);
  });
  try {
    for await (const entry of reader.entries(options)) {
      const k = parseKeyId(entry.key);
      const name = `${k.method} ${k.url}`;
      const accept = k.variant['accept'] ?? '';
      const got = queues.get(`${k.method} ${k.url} ${accept}`)?.shift();
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
    return failures; // an unreadable index is reported by verifyNetlock
  }
  for (const q of queues.values()) {
    for (const { line, value } of q) {
      const e = value as Record<string, unknown> | null;
      const what = e !== null && typeof e === 'object' ? `${String(e['method'])} ${String(e['url'])}` : `entry ${line}`;
      fail(what, `entry ${line} of the file is not in the signed netlock`);
    }
  }
  return failures;
}

/**
 * `fetch-oracle verify FILE`: the signed DAG (signatures, blocks, bodies; `verifyNetlock`) and, for a
 * readable netlock file, every field of it against that DAG (`checkReadableFile`).
 */
export async function verifyNetlockPath(path: string, store: BlockSource, trusted: readonly Uint8Array[] | undefined, options: VerifyNetlockOptions = {}): Promise<FileVerifyReport> {
  const { root, file } = await readNetlockRoot(path);
  const report = await verifyNetlock(root, store, trusted, options);
  let fileFailures: VerifyFailure[] = [];
  if (file !== undefined) {
    // Re-read as plain JSON: every field as written, not as the NetlockFile type says it should be.
    fileFailures = await checkReadableFile(JSON.parse(await readFile(path, 'utf8')) as unknown, root, store, options);
  }
  return { ...report, failures: [...report.failures, ...fileFailures], trust: trusted === undefined ? 'named-in-netlock' : 'given', fileChecked: file !== undefined };
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

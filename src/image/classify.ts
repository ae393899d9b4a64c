import { scrubProfilesOf } from './scrub.ts';
import type { EntryDifference, FileSample } from './tar-entries.ts';

/**
 * Why a path differs between two builds of the same inputs, and what fixes it: the classes of
 * docs/reproducible-builds.md ("When --check still finds a difference"). A class is decided by the path
 * (caches, logs), by the bytes of both versions when they were sampled (a .pyc header, a gzip or zip
 * archive, a Java keystore, text whose differing words are times, temporary paths or random tokens, or the
 * same lines in another order), and by the instructions of the layer (a step that reads /dev/urandom).
 */

export type CauseKind = 'random' | 'other' | 'timestamps' | 'compiled' | 'order' | 'build-paths' | 'log' | 'cache';

export interface Cause {
  kind: CauseKind;
  /** What the class is, e.g. "timestamps in compiled files". */
  title: string;
  paths: EntryDifference[];
  /** What a few of the paths showed (one line each, e.g. "timestamp-based .pyc: the header records the source mtime"). */
  notes: string[];
  /** Instructions named as the cause (they read an entropy source or write one of the paths). */
  madeBy: string[];
  fix: string;
}

export interface Samples {
  record: ReadonlyMap<string, FileSample>;
  replay: ReadonlyMap<string, FileSample>;
}

const TITLES: Record<CauseKind, string> = {
  random: 'random data',
  other: 'not explained',
  timestamps: 'timestamps',
  compiled: 'timestamps in compiled files',
  order: 'order (parallelism or a randomly seeded hash map)',
  'build-paths': 'build paths',
  log: 'logs',
  cache: 'caches',
};

const CARTESI = 'or build it in the Cartesi Machine (`fetch-oracle machine`), where time and entropy are deterministic';

const FIXES: Record<Exclude<CauseKind, 'log' | 'cache'>, string> = {
  random: `the step reads random data, so its output differs on every run on the host: create the data when the container starts, ${CARTESI}`,
  other: 'compare the two versions (--keep-storage keeps both storages; `buildah mount` them); --layers names the one instruction',
  timestamps: `the tool writes the wall-clock time: if it honours SOURCE_DATE_EPOCH it already sees it (unless the Dockerfile sets its own); else use its own option (gzip -n, tar --mtime, Maven's project.build.outputTimestamp), ${CARTESI}`,
  compiled:
    'a timestamp-based .pyc records its source file\'s mtime. py_compile writes hash-based ones when SOURCE_DATE_EPOCH is set, which `build` gives every RUN step; these were written by an import, or by a step where the Dockerfile unsets it: `python3 -m compileall --invalidation-mode checked-hash DIR` in that step, or PYTHONDONTWRITEBYTECODE=1',
  order: `the same content in another order: use the tool's option for a stable order (cargo's rustc cache: --scrub cargo), one job (-j1), ${CARTESI}`,
  'build-paths': `a temporary directory's random name is written into the file: give the tool a fixed directory (TMPDIR=/tmp/build), ${CARTESI}`,
};

/** Commands that read entropy or the clock, for naming the instruction behind random data or times. */
const ENTROPY = /\/dev\/u?random\b|\$RANDOM\b|\$\{RANDOM\}|\bopenssl\s+rand\b|\buuidgen\b|\bssh-keygen\b|\/proc\/sys\/kernel\/random\b|\bgpg\b.*--(?:quick-)?gen-key/;
const CLOCK = /(^|[\s;&|(`$])date\b/;
const NAMES = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?$|^(?:UTC|GMT|CET|CEST|Z)$/;
/** A word made of digits and date/time punctuation (a part of a time, or a number next to one). */
const TIME_PART = /^(?=.*\d)[\d:.,TZ+-]+$/;
/** A word that is a time by itself: a date, a clock time or Unix seconds/milliseconds of this century. */
const TIME_WORD = /\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}|^1\d{9}(?:\d{3}){0,3}$/;
const TEMP_PATH = /^\/(?:tmp|var\/tmp)\/[^\s"']+$/;
const RANDOM_TOKEN = /^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9+/=_-]{16,}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^[0-9a-fA-F]{16,}$/;

function isText(b: Buffer): boolean {
  return !b.subarray(0, 8192).includes(0);
}

/** Words of a text, split at white space and punctuation that does not belong to paths, times or tokens. */
function words(text: string): string[] {
  return text
    .split(/[\s"'`,;()[\]{}<>|&=]+/)
    .map((w) => w.replace(/^:+|:+$/g, ''))
    .filter((w) => w !== '');
}

/** What the bytes of both versions say about one path (undefined: not sampled or nothing recognised). */
function byContent(path: string, a: FileSample | undefined, b: FileSample | undefined): { kind: CauseKind; note: string } | undefined {
  if (a === undefined || b === undefined) return undefined;
  const magic = (s: FileSample, bytes: number[]): boolean => bytes.every((x, i) => s.head[i] === x);
  if (path.endsWith('.pyc') && a.head.length >= 16 && b.head.length >= 16) {
    const timestampBased = a.head.readUInt32LE(4) === 0 && b.head.readUInt32LE(4) === 0;
    const codeSame = a.tailSha256 === b.tailSha256 && a.head.subarray(0, 8).equals(b.head.subarray(0, 8));
    if (timestampBased && codeSame) return { kind: 'compiled', note: `${path}: timestamp-based .pyc, only the header's source mtime differs` };
    if (timestampBased) return { kind: 'compiled', note: `${path}: timestamp-based .pyc, and the compiled code differs too` };
    return { kind: 'other', note: `${path}: hash-based .pyc whose compiled code differs` };
  }
  if (magic(a, [0x1f, 0x8b]) && magic(b, [0x1f, 0x8b])) return { kind: 'timestamps', note: `${path}: gzip (its header records a modification time unless written with -n)` };
  if (magic(a, [0x50, 0x4b, 0x03, 0x04]) && magic(b, [0x50, 0x4b, 0x03, 0x04])) return { kind: 'timestamps', note: `${path}: zip/jar (each entry records a modification time)` };
  if (magic(a, [0xfe, 0xed, 0xfe, 0xed]) && magic(b, [0xfe, 0xed, 0xfe, 0xed])) return { kind: 'timestamps', note: `${path}: Java keystore (each entry records its creation time)` };
  const complete = a.head.length === a.size && b.head.length === b.size;
  if (!complete || !isText(a.head) || !isText(b.head)) return undefined;
  const ta = a.head.toString('utf8');
  const tb = b.head.toString('utf8');
  const sorted = (t: string): string => [...t].sort().join('');
  if (ta.length === tb.length && sorted(ta) === sorted(tb)) return { kind: 'order', note: `${path}: the same characters in another order` };
  const wa = new Set(words(ta));
  const wb = new Set(words(tb));
  const changed = [...[...wa].filter((w) => !wb.has(w)), ...[...wb].filter((w) => !wa.has(w))];
  if (changed.length === 0) return { kind: 'order', note: `${path}: the same words in another order` };
  const shown = changed.slice(0, 4).join(' ');
  if (changed.every((w) => TIME_PART.test(w) || NAMES.test(w)) && changed.some((w) => TIME_WORD.test(w) || NAMES.test(w))) return { kind: 'timestamps', note: `${path}: only times differ (${shown})` };
  if (changed.some((w) => TEMP_PATH.test(w))) return { kind: 'build-paths', note: `${path}: temporary paths differ (${shown})` };
  if (changed.some((w) => RANDOM_TOKEN.test(w))) return { kind: 'random', note: `${path}: random-looking tokens differ (${shown})` };
  return undefined;
}

/** The class a path falls in by its name alone. */
function byPath(path: string): CauseKind | undefined {
  if (/^\/var\/log\/|\/_logs\/|\.log(\.\d+)?$/.test(path)) return 'log';
  if (scrubProfilesOf(path).length > 0 || /\/\.cache\/|^\/var\/cache\/|\/\.m2\/repository\/|\/\.global-cache$|\/\.rustc_info\.json$/.test(path)) return 'cache';
  if (path.endsWith('.pyc')) return 'compiled';
  return undefined;
}

/** Whether an instruction's text names `path` (as a word, or its last two components). */
function mentions(instruction: string, path: string): boolean {
  const escaped = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const tail = path.split('/').filter((p) => p !== '').slice(-2).join('/');
  const candidates = [path, ...(tail.length >= 4 && tail !== path.slice(1) ? [tail] : [])];
  return candidates.some((c) => new RegExp(`(^|[\\s"'=>:])${escaped(c)}($|[\\s"';&|)])`).test(instruction));
}

function fixFor(kind: CauseKind, paths: readonly EntryDifference[]): string {
  if (kind !== 'log' && kind !== 'cache') return FIXES[kind];
  const profiles = [...new Set(paths.flatMap((p) => scrubProfilesOf(p.path)))];
  const uncovered = paths.filter((p) => scrubProfilesOf(p.path).length === 0).length;
  const parts: string[] = [];
  if (profiles.length > 0) parts.push(`--scrub ${profiles.join(',')} keeps them out of the layers`);
  if (uncovered > 0) parts.push(`${uncovered === paths.length ? 'no' : `for ${uncovered} of them no`} --scrub profile covers them: delete them in the RUN step that writes them, or copy what you need into a later stage (docs/reproducible-builds.md)`);
  return parts.join('; ');
}

/**
 * Sorts the differing paths of a layer into causes, most telling first (random data and unexplained paths
 * before timestamps, compiled files, order, build paths, logs and caches), each with the instructions that
 * made them where the layer's instructions say so, and the fix.
 */
export function classifyDifferences(paths: readonly EntryDifference[], instructions: readonly string[], samples: Samples): Cause[] {
  const steps = instructions.filter((i) => !/^(ARG|ENV|LABEL|WORKDIR|USER|EXPOSE|CMD|ENTRYPOINT)\b/.test(i));
  const entropy = steps.filter((s) => ENTROPY.test(s));
  const groups = new Map<CauseKind, { paths: EntryDifference[]; notes: string[] }>();
  for (const p of paths) {
    const content = byContent(p.path, samples.record.get(p.path), samples.replay.get(p.path));
    const named = byPath(p.path);
    let kind: CauseKind = named === 'log' || named === 'cache' ? named : (content?.kind ?? named ?? 'other');
    // An unexplained path that a step reading entropy writes (or any, when such a step exists) is random data.
    if (kind === 'other' && entropy.length > 0) kind = 'random';
    const g = groups.get(kind) ?? { paths: [], notes: [] };
    g.paths.push(p);
    if (content !== undefined && content.kind === kind && g.notes.length < 3) g.notes.push(content.note);
    groups.set(kind, g);
  }
  const order: CauseKind[] = ['random', 'other', 'timestamps', 'compiled', 'order', 'build-paths', 'log', 'cache'];
  return order
    .filter((k) => groups.has(k))
    .map((kind) => {
      const g = groups.get(kind)!;
      const writers = steps.filter((s) => g.paths.some((p) => mentions(s, p.path)));
      const readers = kind === 'random' ? entropy : kind === 'timestamps' ? steps.filter((s) => CLOCK.test(s)) : [];
      const madeBy = [...new Set([...readers.filter((r) => writers.length === 0 || writers.includes(r)), ...writers])];
      return { kind, title: TITLES[kind], paths: g.paths, notes: g.notes, madeBy: madeBy.length > 0 ? madeBy : kind === 'random' ? entropy : [], fix: fixFor(kind, g.paths) };
    });
}

/** Why an instruction is named: it reads entropy or the clock, or it names one of the paths. */
export function why(instruction: string, cause: Cause): string {
  if (cause.kind === 'random' && ENTROPY.test(instruction)) return 'reads random data';
  if (cause.kind === 'timestamps' && CLOCK.test(instruction)) return 'reads the clock';
  return 'names these paths';
}

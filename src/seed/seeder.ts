import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { asOracleError, InvalidLockfileError, UpstreamError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { computeRequestKey } from '../protocol/request-key.ts';
import { checkBody, describeEntry } from './check.ts';
import { decidingDigests } from './digests.ts';
import type { SeedRecorder } from './session.ts';
import type { SeedEntry, SeedPlan, SeedResolver, SeedWarning } from './types.ts';

/** Redirect hops followed per entry (curl's and npm's default is 20; registries use one or two). */
export const MAX_REDIRECTS = 10;
/** Largest index document (PEP 691 page, cargo config) read into memory to resolve entries. */
export const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;
export const SEED_USER_AGENT = 'fetch-oracle-seed/0.1';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface SeedProgress {
  /** Entries known so far (resolvers add more as they run). */
  total: number;
  done: number;
  failed: number;
  fetched: number;
  reused: number;
  /** Body bytes of the entries done (fetched or reused). */
  bytes: number;
  /** Body bytes fetched from origins in this run. */
  fetchedBytes: number;
  /** Resolvers (index pages, registry configs) still running. */
  resolving: number;
}

export interface SeedFailure {
  entry: string;
  url: string;
  code: string;
  message: string;
}

export interface SeedResult extends SeedProgress {
  /** Entries merged into an identical earlier one (same request key). */
  duplicates: number;
  warnings: SeedWarning[];
  failures: SeedFailure[];
}

/** Credentials for a host (`--auth HOST=TOKEN`): sent as `authorization` for the fetch, never recorded. */
export interface HostAuth {
  /** `host` or `host:port`, lower case. */
  host: string;
  /** The `authorization` header value. */
  authorization: string;
}

export interface SeedOptions {
  recorder: SeedRecorder;
  /** Fetches (and resolvers) in flight at once. */
  concurrency: number;
  /** Refuse to start when an entry has no resolved URL or no digest. @default false */
  strict?: boolean;
  auth?: readonly HostAuth[];
  signal?: AbortSignal;
  onProgress?: (progress: SeedProgress) => void;
  logger?: Logger;
}

/**
 * The request key's SHA-256, as the map of entries seen is keyed: a key id is built of pieces of the URL
 * that, kept as the map's key, held ~400 bytes an entry (a lockfile of 100,000 entries: 40 MB, issue #15).
 */
function keyOf(url: string, accept: string): string {
  return createHash('sha256').update(computeRequestKey({ method: 'GET', url, headers: { accept } }).id).digest('base64');
}

function authFor(url: URL, auth: readonly HostAuth[]): string | undefined {
  return auth.find((a) => a.host === url.host.toLowerCase() || a.host === url.hostname.toLowerCase())?.authorization;
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
 * Merges `entry` into `seen` (request key → first entry). Returns false for a duplicate (its digests join
 * the first one's); throws when two entries of one request promise different bodies.
 */
function admit(seen: Map<string, SeedEntry>, entry: SeedEntry): boolean {
  const key = keyOf(splitUserinfo(entry.url).url, entry.accept);
  const first = seen.get(key);
  if (first === undefined) {
    seen.set(key, entry);
    return true;
  }
  const a = decidingDigests(first.expect);
  const b = decidingDigests(entry.expect);
  const goA = first.expect.filter((e) => e.algorithm === 'go-h1').map((e) => (e.algorithm === 'go-h1' ? e.value : ''));
  const goB = entry.expect.filter((e) => e.algorithm === 'go-h1').map((e) => (e.algorithm === 'go-h1' ? e.value : ''));
  const clash = (a.length > 0 && b.length > 0 && a[0]!.algorithm === b[0]!.algorithm && !a.some((x) => b.some((y) => y.hex === x.hex))) || (goA.length > 0 && goB.length > 0 && !goA.some((x) => goB.includes(x)));
  if (clash) {
    throw new InvalidLockfileError(entry.source.file, entry.source.line, `${entry.source.name}: ${entry.url} is also ${describeEntry(first)}, with a different digest; one of them is wrong`);
  }
  first.expect.push(...entry.expect.filter((e) => !first.expect.some((f) => JSON.stringify(f) === JSON.stringify(e))));
  return false;
}

type Task = { entry: SeedEntry } | { resolver: SeedResolver };

/** What `seed` starts from: its plans admitted, and what they said. */
interface Admitted {
  queue: Task[];
  /** Request key → first entry; undefined when no resolver can add entries (nothing is admitted later). */
  seen: Map<string, SeedEntry> | undefined;
  result: SeedResult;
}

function admitPlans(plans: readonly SeedPlan[], strict: boolean): Admitted {
  const warnings = plans.flatMap((p) => p.warnings);
  if (strict) {
    const refused = warnings.filter((w) => w.strict);
    if (refused.length > 0) {
      const first = refused[0]!.source;
      const list = refused.map((w) => `  ${w.source.file}:${w.source.line} ${w.source.name}: ${w.message}`).join('\n');
      throw new InvalidLockfileError(first.file, first.line, `--strict: ${refused.length} entr${refused.length === 1 ? 'y' : 'ies'} cannot be seeded with a checked digest:\n${list}`);
    }
  }
  const seen = new Map<string, SeedEntry>();
  const result: SeedResult = { total: 0, done: 0, failed: 0, fetched: 0, reused: 0, bytes: 0, fetchedBytes: 0, resolving: 0, duplicates: 0, warnings, failures: [] };
  const queue: Task[] = plans.flatMap((p) => p.resolvers.map((resolver) => ({ resolver })));
  result.resolving = queue.length;
  for (const p of plans) {
    for (const entry of p.entries) {
      if (admit(seen, entry)) queue.push({ entry });
      else result.duplicates++;
    }
  }
  result.total = queue.length - result.resolving;
  return { queue, seen: result.resolving === 0 ? undefined : seen, result };
}

/**
 * Runs seed plans through a recorder: every entry is fetched (or found already recorded) through the record
 * path, following redirects hop by hop as a client would (each hop a record), and checked against its
 * lockfile digest before it is committed. Resolvers run first, adding the entries they find. Failures are
 * collected, not thrown, so one run reports every bad entry; the caller writes the netlock only when there
 * are none.
 *
 * Not async itself: the run does not hold `plans`, so an entry seeded is garbage unless a resolver may still
 * add entries it must be checked against (a lockfile of 100,000 entries holds ~80 MB of them, issue #15).
 * The caller should not hold them either.
 */
export function seed(plans: readonly SeedPlan[], options: SeedOptions): Promise<SeedResult> {
  let admitted: Admitted;
  try {
    admitted = admitPlans(plans, options.strict === true);
  } catch (err) {
    return Promise.reject(err);
  }
  return run(admitted, options);
}

async function run(admitted: Admitted, options: SeedOptions): Promise<SeedResult> {
  const { recorder, signal } = options;
  const logger = options.logger ?? NOOP_LOGGER;
  const auth = options.auth ?? [];
  const { queue, result } = admitted;
  const seen = admitted.seen ?? new Map<string, SeedEntry>(); // only resolvers admit more: it stays empty
  const progress = (): void => options.onProgress?.({ ...result });
  const fail = (entry: SeedEntry, url: string, err: unknown): void => {
    result.failed++;
    const code = asOracleError(err).code;
    const message = (err as Error).message;
    result.failures.push({ entry: describeEntry(entry), url, code, message });
    logger.error('%s', message);
  };

  /** Records one entry, following redirects; returns the final record. */
  const seedOne = async (entry: SeedEntry): Promise<FetchRecord> => {
    const split = splitUserinfo(entry.url);
    let url = split.url;
    let authorization = split.authorization ?? authFor(new URL(url), auth);
    for (let hop = 0; ; hop++) {
      const headers: Array<[string, string]> = [['accept', entry.accept], ['user-agent', SEED_USER_AGENT]];
      if (authorization !== undefined) headers.push(['authorization', authorization]);
      let location: string | undefined;
      const at = url;
      const { entry: recorded, fetched } = await recorder.record(
        { method: 'GET', url: at, headers },
        {
          ...(signal === undefined ? {} : { signal }),
          check: async (record) => {
            const status = record.response.status;
            location = REDIRECTS.has(status) ? record.response.headers.find(([n]) => n === 'location')?.[1] : undefined;
            if (location !== undefined) return;
            if (status === 200) return checkBody(record, entry, at, recorder.bodyReader(record, signal));
            if (entry.acceptStatus?.includes(status) === true) return;
            throw new UpstreamError(`${describeEntry(entry)}: ${at} answered HTTP ${status}${status === 401 || status === 403 ? ' (credentials: --auth HOST=TOKEN or user:password@ in the URL)' : ''}; nothing recorded`, { reason: `HTTP_${status}` });
          },
        },
      );
      if (fetched) result.fetchedBytes += recorded.record.response.size;
      if (location === undefined) {
        if (fetched) result.fetched++;
        else result.reused++;
        result.bytes += recorded.record.response.size;
        return recorded.record;
      }
      if (hop >= MAX_REDIRECTS) throw new UpstreamError(`${describeEntry(entry)}: more than ${MAX_REDIRECTS} redirects from ${entry.url}`, { reason: 'TOO_MANY_REDIRECTS' });
      const next = new URL(location, at);
      // Credentials follow a redirect only to the same origin (as fetch and curl do); --auth applies per host.
      if (next.origin !== new URL(at).origin) authorization = authFor(next, auth);
      next.hash = '';
      url = next.toString();
    }
  };

  const readDocument = async (record: FetchRecord): Promise<string> => {
    if (record.response.size > MAX_DOCUMENT_BYTES) throw new UpstreamError(`index document of ${record.response.size} bytes is larger than ${MAX_DOCUMENT_BYTES}`, { reason: 'TOO_LARGE' });
    const raw = Buffer.from(await recorder.bodyReader(record, signal).read(0, record.response.size));
    const coding = record.response.headers.find(([n]) => n === 'content-encoding')?.[1]?.trim().toLowerCase();
    const bytes = coding === 'gzip' || coding === 'x-gzip' ? await promisify(gunzip)(raw, { maxOutputLength: MAX_DOCUMENT_BYTES }) : coding === 'deflate' ? await promisify(inflate)(raw, { maxOutputLength: MAX_DOCUMENT_BYTES }) : coding === 'br' ? await promisify(brotliDecompress)(raw, { maxOutputLength: MAX_DOCUMENT_BYTES }) : raw;
    return bytes.toString('utf8');
  };

  let wake: Array<() => void> = [];
  const wakeAll = (): void => {
    for (const w of wake.splice(0)) w();
  };
  const runTask = async (task: Task): Promise<void> => {
    if ('entry' in task) {
      try {
        await seedOne(task.entry);
        result.done++;
      } catch (err) {
        fail(task.entry, task.entry.url, err);
      }
      progress();
      return;
    }
    const r = task.resolver;
    try {
      const found = await r.resolve({
        signal: signal ?? new AbortController().signal,
        fetchDocument: async (doc) => {
          if (admit(seen, doc)) result.total++;
          const record = await seedOne(doc);
          result.done++;
          progress();
          return { status: record.response.status, text: record.response.status === 200 ? await readDocument(record) : '', contentType: record.response.headers.find(([n]) => n === 'content-type')?.[1] ?? '' };
        },
      });
      result.warnings.push(...found.warnings);
      for (const entry of found.entries) {
        try {
          if (admit(seen, entry)) {
            result.total++;
            queue.push({ entry });
          } else {
            result.duplicates++;
          }
        } catch (err) {
          result.total++;
          fail(entry, entry.url, err);
        }
      }
    } catch (err) {
      fail({ source: r.source, url: r.source.name, accept: '', expect: [] }, r.source.name, err);
    } finally {
      result.resolving--;
      progress();
      wakeAll();
    }
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      if (signal?.aborted === true) return;
      const task = queue.shift();
      if (task !== undefined) {
        await runTask(task);
        continue;
      }
      if (result.resolving === 0) return;
      await new Promise<void>((r) => wake.push(r));
    }
  };
  progress();
  const onAbort = (): void => wakeAll();
  signal?.addEventListener('abort', onAbort);
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    wake = [];
  }
  return result;
}

import { setMaxListeners } from 'node:events';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { asOracleError, InvalidLockfileError, UpstreamError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { Admission, splitUserinfo } from './admission.ts';
import { checkBody, describeEntry } from './check.ts';
import { PackedEntries } from './packed-entries.ts';
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

function authFor(url: URL, auth: readonly HostAuth[]): string | undefined {
  return auth.find((a) => a.host === url.host.toLowerCase() || a.host === url.hostname.toLowerCase())?.authorization;
}

/** What `seed` starts from: its plans admitted, and what they said. */
interface Admitted {
  admission: Admission;
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
  // The first plan's entries, when packed, are the queue: not held twice (issue #15).
  const adopted = plans[0]?.entries instanceof PackedEntries ? plans[0].entries : undefined;
  const admission = new Admission(adopted);
  const result: SeedResult = { total: 0, done: 0, failed: 0, fetched: 0, reused: 0, bytes: 0, fetchedBytes: 0, resolving: 0, duplicates: 0, warnings, failures: [] };
  for (const p of plans) admission.resolvers.push(...p.resolvers);
  result.resolving = admission.resolvers.length;
  const count = (admitted: boolean): void => {
    if (admitted) result.total++;
    else result.duplicates++;
  };
  for (const { slot, entry } of adopted?.slots() ?? []) count(admission.admitQueued(slot, entry));
  for (const p of plans) if (p.entries !== adopted) for (const entry of p.entries) count(admission.admit(entry));
  if (result.resolving === 0) admission.closeAdmission();
  return { admission, result };
}

/**
 * Runs seed plans through a recorder: every entry is fetched (or found already recorded) through the record
 * path, following redirects hop by hop as a client would (each hop a record), and checked against its
 * lockfile digest before it is committed. Resolvers run first, adding the entries they find. Failures are
 * collected, not thrown, so one run reports every bad entry; the caller writes the netlock only when there
 * are none.
 *
 * Not async itself: the run does not hold `plans` (a packed list of entries becomes its queue), so an entry
 * seeded is garbage unless a resolver may still add entries it must be checked against (issue #15). The
 * caller should not hold them either.
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
  const { recorder } = options;
  // The records and body reads in flight each listen on the run's signal (two per task): its own, so the
  // caller's holds one listener, and Node's warning past ten listeners (meant for leaks) is not printed.
  const stop = new AbortController();
  const signal = stop.signal;
  setMaxListeners(2 * Math.max(1, options.concurrency) + 1, signal);
  const callerStopped = (): void => stop.abort(options.signal?.reason);
  const logger = options.logger ?? NOOP_LOGGER;
  const auth = options.auth ?? [];
  const { admission, result } = admitted;
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
          signal,
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
  const runEntry = async (entry: SeedEntry): Promise<void> => {
    try {
      await seedOne(entry);
      result.done++;
    } catch (err) {
      fail(entry, entry.url, err);
    }
    progress();
  };
  const runResolver = async (r: SeedResolver): Promise<void> => {
    try {
      const found = await r.resolve({
        signal,
        fetchDocument: async (doc) => {
          if (admission.admit(doc, false)) result.total++;
          const record = await seedOne(doc);
          result.done++;
          progress();
          return { status: record.response.status, text: record.response.status === 200 ? await readDocument(record) : '', contentType: record.response.headers.find(([n]) => n === 'content-type')?.[1] ?? '' };
        },
      });
      result.warnings.push(...found.warnings);
      for (const entry of found.entries) {
        try {
          if (admission.admit(entry)) {
            result.total++;
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
      if (--result.resolving === 0) admission.closeAdmission();
      progress();
      wakeAll();
    }
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      if (signal.aborted) return;
      const resolver = admission.resolvers.shift();
      if (resolver !== undefined) {
        await runResolver(resolver);
        continue;
      }
      const entry = admission.take();
      if (entry !== undefined) {
        await runEntry(entry);
        continue;
      }
      if (result.resolving === 0) return;
      await new Promise<void>((r) => wake.push(r));
    }
  };
  progress();
  signal.addEventListener('abort', wakeAll);
  if (options.signal?.aborted === true) callerStopped();
  else options.signal?.addEventListener('abort', callerStopped, { once: true });
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  } finally {
    options.signal?.removeEventListener('abort', callerStopped);
    signal.removeEventListener('abort', wakeAll);
    wake = [];
    admission.queue.close(); // what an aborted run left queued is not needed again
  }
  return result;
}

/**
 * `fetch-oracle seed` (build a netlock before the build runs, from URL lists and lockfiles, checking their
 * digests) and `fetch-oracle lockfile` (a netlock back to a pinned list). Wired into cli.ts's command switch;
 * these functions print and return an exit code (0 ok, 1 failed, 2 usage) and never exit the process.
 */
import type { Command } from './command.ts';
import { parseCommandLine, reportingErrors, UsageError } from './common.ts';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';
import { SYNC_HELP, SYNC_OPTIONS, syncInitFromFlags } from './front-flags.ts';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { createLogger } from '../log.ts';
import { OracleError } from '../errors.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { createBlockStore } from '../store/index.ts';
import { LOCKFILE_FORMATS, pinnedEntries, renderPinned } from '../seed/lockfile-out.ts';
import type { LockfileFormat } from '../seed/lockfile-out.ts';
import { openByteOutput } from '../io/byte-output.ts';
import { isKind, kindFromName, parseInput } from '../seed/parse-input.ts';
import { readNpmLockStream } from '../seed/npm-lock-stream.ts';
import { ProgressReporter, formatBytes } from '../seed/progress.ts';
import { seed } from '../seed/seeder.ts';
import type { HostAuth, SeedResult } from '../seed/seeder.ts';
import { SeedSession } from '../seed/session.ts';
import { KINDS } from '../seed/types.ts';
import type { ParseOptions, SeedKind, SeedPlan } from '../seed/types.ts';

/** Characters of the pinned list gathered per write. */
const LOCKFILE_WRITE_CHARS = 64 * 1024;

/**
 * Reads and parses every input. Its own function so that no input's text outlives it: a local of the
 * command's async body stayed alive for the whole run (a 20 MB lockfile held to the end, issue #15).
 */
async function readPlans(paths: readonly string[], kind: SeedKind | undefined, options: ParseOptions): Promise<SeedPlan[]> {
  const plans: SeedPlan[] = [];
  for (const path of paths) {
    // An npm lockfile is read as a stream (a v1 one, undefined here, is read whole below).
    if ((kind ?? kindFromName(path)) === 'npm') {
      const plan = await readNpmLockStream(path).catch((e: unknown) => {
        if (e instanceof OracleError) throw e;
        throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
      });
      if (plan !== undefined) {
        plans.push(plan);
        continue;
      }
    }
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
    }
    plans.push(parseInput(path, text, kind, options).plan);
  }
  return plans;
}

export const DEFAULT_SEED_NETLOCK = 'fetch-oracle.netlock.json';
export const DEFAULT_SEED_CONCURRENCY = 16;

export const SEED_HELP = `Usage: fetch-oracle seed [--netlock OUT] [--data DIR | --ipfs URL] [--concurrency N] [options] INPUT...

Builds a netlock before the build runs, from what the inputs pin. Each INPUT is a file whose kind is detected
from its name and content, or given with --kind: a URL list (one URL per line, optional sha256=HEX,
sha512=HEX or an SRI string after it, # comments), package-lock.json (v1-v3), yarn.lock (v1), pnpm-lock.yaml,
requirements.txt (pinned == with --hash=, resolved through the PEP 503/691 index pip would ask), uv.lock,
Cargo.lock (crates from the registry's sparse index and dl template), go.sum (module .zip/.mod/.info from
the module proxy, h1: dirhashes checked), SHA256SUMS-style files, and a Dockerfile's ADD URLs.

Every download goes through the record path of 'fetch-oracle record' (same request keys, records and
signatures: the request the package manager will make, with its Accept header) and is checked against the
digest its lockfile gives before it is recorded: a mismatch names the entry and both digests and records
nothing. The netlock is written only when every entry succeeded; what did succeed stays recorded in the
data directory, so a rerun (also after an interruption) fetches only what is missing. 'replay --netlock OUT'
then serves the build offline.

Options:
  --netlock OUT          where to write the netlock (default ./${DEFAULT_SEED_NETLOCK}; OUT.journal while running)
  --data DIR             data directory: blocks, records, keys (default $FETCH_ORACLE_DATA or
                         ~/.local/share/fetch-oracle)
  --ipfs URL             store blocks in Kubo (its RPC API) with the data directory as cache, as record --ipfs
  --concurrency N        downloads in flight at once (default ${DEFAULT_SEED_CONCURRENCY})
  --kind KIND            the kind of every INPUT: ${KINDS.join(', ')}
  --strict               refuse (before fetching anything) entries without a resolved URL or a digest;
                         without it they are warned about and listed, and seeded unchecked when they have a URL
  --auth HOST=TOKEN      send 'authorization: Bearer TOKEN' to HOST (or HOST=Basic B64 / HOST=Bearer T as given);
                         repeatable. user:password@ in a URL is sent as Basic. Credentials are used for the
                         fetch only: they never enter a record, key or netlock
  --upstream-ca FILE     also trust this PEM CA for upstream TLS (repeatable)
${SYNC_HELP}  --npm-registry URL     registry for pnpm entries without a tarball URL (default https://registry.npmjs.org)
  --pip-index URL        index for requirements (default: the file's --index-url, else https://pypi.org/simple/)
  --cargo-index URL      sparse index replacing crates.io, as cargo source replacement (default
                         https://index.crates.io/)
  --goproxy URL          Go module proxy (default https://proxy.golang.org)
  --base-url URL         where the files a SHA256SUMS names are downloaded from
  --json                 print a JSON summary on stdout (netlock, counts, warnings, failures)
  -v, --verbose          log every recorded request to stderr
  -h, --help             show this help

Progress goes to stderr: a bar (counts, bytes, rate, ETA) on a terminal, plain lines otherwise.
Exit status: 0 when the netlock was written, 1 when an entry failed (no netlock written), 2 for a usage error.
`;

export const LOCKFILE_HELP = `Usage: fetch-oracle lockfile NETLOCK [--format sha256sums|urls|json] [--data DIR | --ipfs URL] [--out FILE]

Turns a recording back into a pinned list (recording becomes pinning): reads NETLOCK's DAG from the store
(every block checked against its CID) and prints its entries. sha256sums: 'HEX  URL' per GET 200 answer;
urls: 'URL sha256=HEX' per GET 200 answer (both are inputs 'fetch-oracle seed' reads back); json: every
entry with method, url, accept, status, size, sha256, SRI integrity (sha512), body and record CIDs.
Signatures are not checked here: 'fetch-oracle verify NETLOCK' does that.

Options:
  --format FORMAT        sha256sums (default), urls or json
  --data DIR             data directory holding the blocks (default as for record)
  --ipfs URL             read the blocks from Kubo's RPC API (the data directory's store first)
  --out FILE             write the list to FILE instead of stdout
  -h, --help             show this help
`;

/** What cli.ts provides. */
export interface SeedCliContext {
  defaultDataDir: string;
  stdout?: Writable & { isTTY?: boolean };
  stderr?: Writable & { isTTY?: boolean };
  /** Aborted on SIGINT/SIGTERM: the seed stops, the journal keeps what was recorded. */
  signal?: AbortSignal;
}

function parseAuth(values: readonly string[]): HostAuth[] {
  return values.map((v) => {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) throw new UsageError(`--auth expects HOST=TOKEN, got ${JSON.stringify(v.replace(/=.*/, '=…'))}`);
    const value = v.slice(eq + 1);
    return { host: v.slice(0, eq).toLowerCase(), authorization: /^(Basic|Bearer|Token) /i.test(value) ? value : `Bearer ${value}` };
  });
}


export async function runSeed(args: string[], context: SeedCliContext): Promise<number> {
  const out = context.stdout ?? process.stdout;
  const err = context.stderr ?? process.stderr;
  return reportingErrors(err, 'fetch-oracle', async () => {
    const { values, positionals } = parseCommandLine(
      {
        args,
        allowPositionals: true,
        strict: true,
        options: {
          netlock: { type: 'string' },
          data: { type: 'string' },
          ipfs: { type: 'string' },
          concurrency: { type: 'string' },
          kind: { type: 'string' },
          strict: { type: 'boolean' },
          auth: { type: 'string', multiple: true },
          'upstream-ca': { type: 'string', multiple: true },
          ...SYNC_OPTIONS,
          'npm-registry': { type: 'string' },
          'pip-index': { type: 'string' },
          'cargo-index': { type: 'string' },
          goproxy: { type: 'string' },
          'base-url': { type: 'string' },
          json: { type: 'boolean' },
          verbose: { type: 'boolean', short: 'v' },
          help: { type: 'boolean', short: 'h' },
        },
      },
      SEED_HELP,
    );
    if (values.help === true) {
      out.write(SEED_HELP);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError(`seed needs at least one INPUT file\n\n${SEED_HELP}`);
    const concurrency = values.concurrency === undefined ? DEFAULT_SEED_CONCURRENCY : Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw new UsageError(`--concurrency expects a whole number from 1 to 1024, got ${JSON.stringify(values.concurrency)}`);
    if (values.kind !== undefined && !isKind(values.kind)) throw new UsageError(`--kind expects one of ${KINDS.join(', ')}, got ${JSON.stringify(values.kind)}`);
    const kind = values.kind;
    const auth = parseAuth(values.auth ?? []);
    const options: ParseOptions = {
      ...(values['npm-registry'] === undefined ? {} : { npmRegistry: values['npm-registry'] }),
      ...(values['pip-index'] === undefined ? {} : { pipIndex: values['pip-index'].endsWith('/') ? values['pip-index'] : `${values['pip-index']}/` }),
      ...(values['cargo-index'] === undefined ? {} : { cargoIndex: values['cargo-index'].replace(/^sparse\+/, '') }),
      ...(values.goproxy === undefined ? {} : { goProxy: values.goproxy }),
      ...(values['base-url'] === undefined ? {} : { baseUrl: values['base-url'] }),
      readInclude: (path) => readFileSync(path, 'utf8'),
    };
    // Every input is parsed before anything is fetched: a malformed lockfile seeds nothing.
    const plans = await readPlans(positionals, kind, options);
    const netlockPath = resolve(values.netlock ?? DEFAULT_SEED_NETLOCK);
    const logger = createLogger('oracle', (level, namespace, line) => {
      if (level === 'info' && values.verbose !== true) return;
      if (level === 'error') return; // failures are listed once, at the end
      err.write(`${level} ${namespace}: ${line}\n`);
    });
    const upstreamCaPem = await readUpstreamCaPem(values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => err.write(`warn oracle: ${m}\n`));
    const session = await SeedSession.open({
      dataDir: resolve(values.data ?? context.defaultDataDir),
      ...(values.ipfs === undefined ? {} : { ipfs: values.ipfs }),
      netlockPath,
      upstreamCaPem,
      ...syncInitFromFlags(values),
      logger,
    });
    let result: SeedResult;
    let netlock: string | undefined;
    let count = 0;
    try {
      if (session.interrupted > 0) err.write(`seed: continuing: ${session.journalPath} holds ${session.interrupted} request(s) an interrupted run recorded; they are not fetched again\n`);
      const reporter = new ProgressReporter({ tty: err.isTTY === true, write: (t) => err.write(t) });
      // Handed over, not kept here: an entry seeded can then be collected (seeder.ts).
      result = await seed(plans.splice(0), { recorder: session, concurrency, strict: values.strict === true, auth, logger, onProgress: (p) => reporter.update(p), ...(context.signal === undefined ? {} : { signal: context.signal }) });
      reporter.finish();
      if (result.failures.length === 0 && context.signal?.aborted !== true) {
        const file = await session.writeNetlock();
        netlock = file.netlock;
        count = file.count;
      }
    } finally {
      await session.close();
    }
    for (const w of result.warnings) err.write(`warning: ${w.source.file}${w.source.line > 0 ? `:${w.source.line}` : ''} ${w.source.name}: ${w.message}\n`);
    for (const f of result.failures) err.write(`FAIL ${f.code}: ${f.message}\n`);
    const aborted = context.signal?.aborted === true;
    if (values.json === true) {
      out.write(`${JSON.stringify({ netlock: netlock ?? null, path: netlock === undefined ? null : netlockPath, count, entries: result.total, fetched: result.fetched, reused: result.reused, duplicates: result.duplicates, bytes: result.bytes, fetchedBytes: result.fetchedBytes, warnings: result.warnings.map((w) => ({ file: w.source.file, line: w.source.line, entry: w.source.name, message: w.message })), failures: result.failures, interrupted: aborted }, null, 2)}\n`);
    }
    if (netlock !== undefined) {
      err.write(`seed: ${result.done} entries (${result.fetched} fetched, ${result.reused} already recorded, ${result.duplicates} duplicate(s)), ${formatBytes(result.bytes)}: netlock ${netlock} (${count} requests) written to ${netlockPath}\n`);
      return 0;
    }
    err.write(
      aborted
        ? `seed: interrupted after ${result.done} of ${result.total} entries; no netlock written. Run the same command again to continue (recorded entries are not fetched again).\n`
        : `seed: ${result.failures.length} of ${result.total} entries failed; no netlock written. The ${result.done} that succeeded stay recorded: a rerun fetches only what is missing.\n`,
    );
    return 1;
  });
}

export async function runLockfile(args: string[], context: SeedCliContext): Promise<number> {
  const out = context.stdout ?? process.stdout;
  const err = context.stderr ?? process.stderr;
  return reportingErrors(err, 'fetch-oracle', async () => {
    const options = { format: { type: 'string' }, data: { type: 'string' }, ipfs: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
    const { values, positionals } = parseCommandLine({ args, allowPositionals: true, strict: true, options }, LOCKFILE_HELP);
    if (values.help === true) {
      out.write(LOCKFILE_HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(`lockfile takes one NETLOCK\n\n${LOCKFILE_HELP}`);
    const format = (values.format ?? 'sha256sums') as LockfileFormat;
    if (!LOCKFILE_FORMATS.includes(format)) throw new UsageError(`--format expects one of ${LOCKFILE_FORMATS.join(', ')}, got ${JSON.stringify(values.format)}`);
    const root = await netlockRootOf(positionals[0]!);
    const store = createBlockStore({ dataDir: resolve(values.data ?? context.defaultDataDir), ...(values.ipfs === undefined ? {} : { ipfs: values.ipfs }) });
    // Written as the entries are read: stdout gets the list so far if a block fails to verify midway (exit
    // 1); --out gets it whole or not at all (a temporary file renamed at the end).
    const output = await openByteOutput(values.out ?? out);
    try {
      let batch = '';
      for await (const piece of renderPinned(pinnedEntries(root, store), format)) {
        batch += piece;
        if (batch.length >= LOCKFILE_WRITE_CHARS) {
          await output.write([Buffer.from(batch)]);
          batch = '';
        }
      }
      if (batch !== '') await output.write([Buffer.from(batch)]);
      await output.finish();
    } catch (e) {
      await output.abort();
      throw e;
    } finally {
      await store.close();
    }
    return 0;
  });
}

/**
 * `fetch-oracle seed` as cli.ts runs it: SIGINT/SIGTERM stop the seed (in-flight fetches are aborted and
 * record nothing; finished ones stay recorded) and it exits 1 without a netlock; a second signal exits at once.
 */
export async function runSeedCommand(args: string[], defaultDataDir: string, io: Pick<SeedCliContext, 'stdout' | 'stderr'> = {}): Promise<number> {
  const abort = new AbortController();
  const stop = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nseed: ${signal}: stopping\n`);
    abort.abort();
    process.once(signal, () => process.kill(process.pid, signal));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await runSeed(args, { ...io, defaultDataDir, signal: abort.signal });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export const seedCommand: Command = {
  help: SEED_HELP,
  run: (args, context) => runSeedCommand(args, context.defaultDataDir, context),
};

export const lockfileCommand: Command = {
  help: LOCKFILE_HELP,
  run: (args, context) => runLockfile(args, context),
};

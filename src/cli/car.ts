/**
 * `fetch-oracle export` and `fetch-oracle import`: a netlock as one CARv1 file (design §4). Wired into the
 * command switch of cli.ts; these functions print and return an exit code (0 ok, 1 failed, 2 usage) and
 * never exit the process themselves.
 */
import type { Command } from './command.ts';
import { parseCommandLine, parseTrustedKeys, reportingErrors, UsageError } from './common.ts';
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { parseArgs, ParseArgsConfig } from 'node:util';
import { CID } from 'multiformats/cid';
import { verifyingSource } from '../protocol/blocks.ts';
import { exportCar } from '../netlock/export-car.ts';
import { importCar } from '../netlock/import-car.ts';
import { netlockRootOf, writeNetlockFileOf } from '../netlock/file.ts';
import { VerifiedNetlocks } from '../records/verified-netlocks.ts';
import { createBlockStore } from '../store/index.ts';

export const CAR_HELP = {
  export: `Usage: fetch-oracle export --car OUT.car NETLOCK [--data DIR] [--ipfs URL]

Writes the netlock NETLOCK (a netlock.json, a file holding its root CID, or the root CID itself) as one CARv1
file whose only root is the netlock root: the root, its index pages, every record and every body block, each
once, each checked against its CID. The file appears only when complete. Kubo reads it with
'ipfs dag import OUT.car'; 'fetch-oracle import' reads it back.

Options:
  --car FILE             the CAR to write (required; '-' writes it to stdout)
  --data DIR             data directory holding the blocks (default as for record)
  --ipfs URL             read the blocks from Kubo's RPC API (e.g. http://127.0.0.1:5001); with --data as well,
                         from the embedded store of DIR first
  -h, --help             show this help
`,
  import: `Usage: fetch-oracle import IN.car [--data DIR | --ipfs URL] [--netlock OUT.json] [--trust KEY]... [--json]

Reads a CARv1 ('-' for stdin) holding one netlock (as 'fetch-oracle export' or Kubo's 'ipfs dag export ROOT' write it), checks
every block against its CID and every record signature, every body against its record, and only then stores
the netlock's blocks: nothing is imported from a CAR with a wrong block, a truncated CAR, a CAR whose header
names more or fewer than one root, or a netlock that does not verify. Prints the netlock. The data directory
remembers the root it checked, so that a replay from it does not check those signatures again.

Options:
  --data DIR             import into the embedded store of DIR (default as for record)
  --ipfs URL             import into Kubo (its RPC API, e.g. http://127.0.0.1:5001) and pin the netlock root;
                         with --data as well, the embedded store of DIR is filled as Kubo's cache
  --netlock FILE         also write the readable netlock.json of the imported netlock to FILE
  --trust KEY            accept only records signed by this ed25519 public key (hex; repeatable; default: the
                         keys the netlock names, listed in the summary)
  --json                 print the result as JSON
  -h, --help             show this help
`,
} as const;

/** What the caller (cli.ts) provides: defaults it owns and where to print. */
export interface CarCliContext {
  /** Data directory when --data is not given (cli.ts: $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle). */
  defaultDataDir?: string;
  stdin?: AsyncIterable<Uint8Array>;
  stdout?: Writable;
  stderr?: Writable;
}

const COMMON = {
  help: { type: 'boolean', short: 'h' },
  data: { type: 'string' },
  ipfs: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export async function runExport(args: string[], context: CarCliContext = {}): Promise<number> {
  const out = context.stdout ?? process.stdout;
  const err = context.stderr ?? process.stderr;
  return reportingErrors(err, 'fetch-oracle export', async () => {
    const { values, positionals } = parse('export', args, { car: { type: 'string' } });
    if (values['help'] === true) {
      out.write(CAR_HELP.export);
      return 0;
    }
    const car = str(values['car']);
    if (car === undefined) throw new UsageError(`export needs --car OUT.car\n\n${CAR_HELP.export}`);
    if (positionals.length !== 1) throw new UsageError(`export takes one NETLOCK (a netlock.json or a root CID)\n\n${CAR_HELP.export}`);
    const root = await netlockRoot(positionals[0]!);
    const ipfs = str(values['ipfs']);
    const dataDir = dataDirOf(values, context, ipfs !== undefined);
    const store = createBlockStore({ ...(dataDir === undefined ? {} : { dataDir }), ...(ipfs === undefined ? {} : { ipfs }) });
    try {
      const toStdout = car === '-';
      const result = await exportCar(root, store, toStdout ? out : resolve(car));
      (toStdout ? err : out).write(`wrote ${toStdout ? 'CAR to stdout' : car}: netlock ${root} (${result.entries} entries, ${result.blocks} blocks, ${result.bytes} bytes) from ${store.description}\n`);
      return 0;
    } finally {
      await store.close();
    }
  });
}

export async function runImport(args: string[], context: CarCliContext = {}): Promise<number> {
  const out = context.stdout ?? process.stdout;
  const err = context.stderr ?? process.stderr;
  return reportingErrors(err, 'fetch-oracle import', async () => {
    const { values, positionals } = parse('import', args, {
      netlock: { type: 'string' },
      trust: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    });
    if (values['help'] === true) {
      out.write(CAR_HELP.import);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(`import takes one IN.car\n\n${CAR_HELP.import}`);
    const carArg = positionals[0]!;
    const input = carArg === '-' ? (context.stdin ?? process.stdin) : resolve(carArg);
    const ipfs = str(values['ipfs']);
    const dataDir = dataDirOf(values, context, ipfs !== undefined);
    const trust = parseTrustedKeys(strs(values['trust']));
    const store = createBlockStore({ ...(dataDir === undefined ? {} : { dataDir }), ...(ipfs === undefined ? {} : { ipfs }) });
    try {
      const result = await importCar(input, store, { name: carArg === '-' ? 'stdin' : carArg, ...(trust.length === 0 ? {} : { trusted: trust }) });
      // Checked whole (every record's signature among it): a replay from this data directory need not again.
      if (dataDir !== undefined) await (await VerifiedNetlocks.open(dataDir)).add(result.root);
      const netlockPath = str(values['netlock']);
      if (netlockPath !== undefined) await writeNetlockFileOf(resolve(netlockPath), result.root, verifyingSource(store));
      const { report } = result;
      if (values['json'] === true) {
        out.write(`${JSON.stringify({ ...report, store: store.description, blocks: result.blocks, unreferenced: result.unreferenced, carBytes: result.bytes }, null, 2)}\n`);
      } else {
        out.write(
          `netlock ${report.root}\n  entries: ${report.entries}\n  body bytes: ${report.bodyBytes}\n  signed by: ${report.oracles.join(', ') || '(none)'}\n` +
            `  blocks: ${result.blocks} imported into ${store.description}${result.unreferenced > 0 ? ` (${result.unreferenced} block(s) of the CAR outside the netlock skipped)` : ''}\n` +
            `${netlockPath === undefined ? '' : `  netlock file: ${netlockPath}\n`}OK: every block, signature and body verified\n`,
        );
      }
      return 0;
    } finally {
      await store.close();
    }
  });
}


function parse(command: 'export' | 'import', args: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  return parseCommandLine({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true }, CAR_HELP[command]);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}


/** --data, else the caller's default; with --ipfs and neither, undefined (Kubo alone, no cache). */
function dataDirOf(values: Record<string, unknown>, context: CarCliContext, ipfs: boolean): string | undefined {
  const given = str(values['data']);
  if (given !== undefined) return resolve(given);
  if (ipfs) return undefined;
  if (context.defaultDataDir !== undefined) return resolve(context.defaultDataDir);
  throw new UsageError('needs --data DIR (or --ipfs URL)');
}

/** A netlock file (JSON or bare CID), or a root CID given on the command line. */
async function netlockRoot(arg: string): Promise<CID> {
  const exists = await access(arg).then(
    () => true,
    () => false,
  );
  if (!exists) {
    try {
      return CID.parse(arg);
    } catch {
      // not a CID either: let readNetlockRoot report the missing file
    }
  }
  return netlockRootOf(arg);
}

export const exportCommand: Command = {
  help: CAR_HELP.export,
  run: runExport,
};

export const importCommand: Command = {
  help: CAR_HELP.import,
  run: runImport,
};

import 'reflect-metadata';
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { parseArgs, ParseArgsConfig } from 'node:util';
import { runAttest } from './attest.ts';
import { runGc } from './gc.ts';
import { parseAddress, parseCommandLine, parseTrustedKeys, stderrLogger, untilSignal, UsageError } from './common.ts';
import { runExport, runImport } from './car.ts';
import { runServeMachine } from './serve-machine.ts';
import { attestedPolicyFromFlags, runEnclave, VERIFY_ATTESTED_HELP, VERIFY_ATTESTED_OPTIONS } from './enclave.ts';
import { runBuild } from './build.ts';
import { runRun } from './run.ts';
import { runLockfile, runSeedCommand } from './seed.ts';
import { clientEnvironment, exportLines, writeCombinedBundle } from '../tls/client-env.ts';
import { OracleError } from '../errors.ts';
import { Oracle } from '../oracle/oracle.ts';
import type { OracleInit } from '../oracle/oracle.ts';
import type { ListenAddress } from '../proxy/proxy-server.ts';
import { recoverMessages, recoverNetlock } from '../records/recover.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import { renderVerifyText, verifyNetlockPath } from '../netlock/verify-file.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { createBlockStore } from '../store/index.ts';
import { CertAuthority } from '../tls/cert-authority.ts';

const DEFAULT_LISTEN = '127.0.0.1:8899';

const HELP: Record<string, string> = {
  main: `fetch-oracle: record a build's network once as signed, content-addressed records; replay it offline.

Usage: fetch-oracle <command> [options]

Commands:
  record    forward proxy that records every new request and answers recorded ones from the record
  replay    forward proxy that answers only from a netlock, never touching the network
  env       print the shell exports that point clients at the proxy and make them trust its CA
  verify    check a netlock's signatures, blocks and bodies
  recover   rebuild a netlock from the journal of a run that crashed
  gc        remove blocks no record or netlock needs, and stale temp files, from the data directory
  export    write a netlock and every block it needs as one CAR file (export --car OUT.car NETLOCK)
  import    load and verify a CAR into the embedded store or Kubo (import IN.car)
  run       run a command with a recording proxy (or, with --replay FILE, offline in a loopback-only
            namespace where the replay proxy is the only way out)
  build     build an unmodified Dockerfile with buildah through the recording proxy; --replay FILE rebuilds
            it offline, --check does both and compares the image digests
  attest    verify an AWS Nitro Enclave attestation document (attest verify FILE)
  serve-machine  answer a Cartesi Machine's dehashing device from this host's blocks
  seed      build a netlock before the build, from URL lists and lockfiles, checking their digests
  lockfile  turn a netlock back into a pinned list (sha256sums, urls, json)
  enclave   run the oracle in a Nitro Enclave (enclave serve) or the parent's CONNECT proxy (enclave parent)

Run 'fetch-oracle <command> --help' for the options of a command.
Environment: FETCH_ORACLE_DATA (data directory), FETCH_ORACLE_ADMIN_TOKEN, NODE_DEBUG=oracle (debug log).
`,
  record: `Usage: fetch-oracle record --listen HOST:PORT [--data DIR] [--netlock FILE] [--admin HOST:PORT]

Forward proxy in record mode. The first time a request is seen it is fetched upstream once, its body stored
content-addressed and a signed record written; every later identical request is answered from that record
without contacting the origin. On SIGINT/SIGTERM the netlock of every request this run served is written to
FILE; a journal (FILE.journal) lets a crashed run be recovered.

Options:
  --listen HOST:PORT     proxy address (default ${DEFAULT_LISTEN}; port 0 picks a free one; unix:/path for a socket)
  --data DIR             data directory (default $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle)
  --netlock FILE         write this run's netlock here on shutdown
  --admin HOST:PORT      serve the admin API (GET /healthz /stats /records?url= /netlock /ca.pem)
  --admin-token TOKEN    bearer token for the admin API (required off loopback)
  --ipfs URL             also store every block in Kubo (its RPC API, e.g. http://127.0.0.1:5001) and pin each
                         record's DAG and the netlock root; the data directory stays as a local cache
  --upstream-ca FILE     also trust this PEM CA for upstream TLS (repeatable)
  --variant-header HOST=NAME  also key requests to HOST by request header NAME (repeatable; e.g. a registry that
                         answers differently by a custom header); stored in the netlock, so replay follows it
  --refresh              fetch every recorded request again once in this run; an answer that changed is kept
                         as a new version beside the old one and reported (upstream mutation)
  --report FILE          on shutdown write the upstream mutations seen and the stats as JSON
  -h, --help             show this help
`,
  replay: `Usage: fetch-oracle replay --netlock FILE --listen HOST:PORT [--data DIR] [--trust KEY]...

Forward proxy that serves only what FILE names, verifying every block hash and record signature. It has no
upstream client: a request not in the netlock gets a 504 whose body explains the miss and names the nearest
recorded requests.

Options:
  --netlock FILE         the netlock to serve (required)
  --listen HOST:PORT     proxy address (default ${DEFAULT_LISTEN}; unix:/path for a socket)
  --data DIR             data directory holding the blocks (default as for record)
  --trust KEY            trust records signed by this ed25519 public key (hex; repeatable; default: this data
                         directory's own oracle key)
  --report FILE          on shutdown write every miss and every unused netlock entry as JSON
  --ipfs URL             read blocks from Kubo (the data directory's store first)
  --admin HOST:PORT      serve the admin API
  --admin-token TOKEN    bearer token for the admin API (required off loopback)
  -h, --help             show this help
`,
  env: `Usage: fetch-oracle env [--listen HOST:PORT] [--data DIR] [--no-proxy LIST]

Prints export lines for HTTP_PROXY, HTTPS_PROXY (and lower-case forms), NO_PROXY and the CA variables common
clients obey, each pointing at one combined system + oracle CA bundle written to DIR/ca-bundle.pem.
Use: eval "$(fetch-oracle env --listen 127.0.0.1:8899)"

Options:
  --listen HOST:PORT     the proxy's address (default ${DEFAULT_LISTEN})
  --data DIR             data directory (default as for record)
  --no-proxy LIST        value for NO_PROXY (default empty: a request that bypasses the proxy is not recorded)
  -h, --help             show this help
`,
  verify: `Usage: fetch-oracle verify FILE [--data DIR] [--trust KEY]... [--json] [--attested --pcr0 HEX …]

Checks every record signature, that every block is present and hashes to its CID, that every body
matches its record's size and sha256, and that every field of the readable file (count, oracle keys, variant
rules, each entry's url, status, body, size, sha256, record and signature) is what the signed DAG under its
root says. Prints a summary; exits 1 naming each failing entry and field. Without --trust any key the
netlock names is accepted, and the summary says so.

Options:
  --data DIR             data directory holding the blocks (default as for record)
  --trust KEY            accept only records signed by these keys (hex; repeatable; default: the keys the
                         netlock names, which are listed in the summary)
  --json                 print the report as JSON
  --ipfs URL             check the blocks in Kubo (its RPC API) instead of the data directory
${VERIFY_ATTESTED_HELP}  -h, --help             show this help
`,
  recover: `Usage: fetch-oracle recover --netlock FILE [--data DIR] [--trust KEY]...

Writes FILE from FILE.journal, the journal a record run keeps while it runs (for a run killed before it could
write its netlock). A later 'record' with the same --netlock also picks the journal up by itself. Every line's
record block and signature are verified (by this data directory's key unless --trust names others); lines
that fail are refused and counted, the journal is then kept, and the exit status is 1. With nothing to
recover, FILE is left as it is and the message says what it holds (exit 2).
`,
};

const COMMON = {
  help: { type: 'boolean', short: 'h' },
  data: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function defaultDataDir(): string {
  const env = process.env['FETCH_ORACLE_DATA'];
  if (env !== undefined && env !== '') return resolve(env);
  const xdg = process.env['XDG_DATA_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'share'), 'fetch-oracle');
}

export function parseListen(text: string, flag = '--listen'): ListenAddress | { path: string } {
  return parseAddress(text, flag);
}

function parse(command: string, args: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  return parseCommandLine({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true }, HELP[command] ?? '');
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** `--variant-header HOST=NAME[,NAME…]` (repeatable) → per-host extra variant headers. */
function variantRulesOf(values: string[]): { variantRules?: Record<string, string[]> } {
  if (values.length === 0) return {};
  const rules: Record<string, string[]> = {};
  for (const v of values) {
    const m = /^([A-Za-z0-9.\-:[\]]+)=([A-Za-z0-9!#$%&'*+.^_`|~,-]+)$/.exec(v);
    if (m === null) throw new UsageError(`--variant-header expects HOST=HEADER[,HEADER…], got ${JSON.stringify(v)}`);
    rules[m[1]!.toLowerCase()] = [...(rules[m[1]!.toLowerCase()] ?? []), ...m[2]!.split(',').filter((h) => h !== '').map((h) => h.toLowerCase())];
  }
  return { variantRules: rules };
}

function urlOf(a: ListenAddress): string {
  return `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

async function runProxy(command: 'record' | 'replay', args: string[]): Promise<number> {
  const { values } = parse(command, args, {
    listen: { type: 'string' },
    netlock: { type: 'string' },
    admin: { type: 'string' },
    'admin-token': { type: 'string' },
    'upstream-ca': { type: 'string', multiple: true },
    trust: { type: 'string', multiple: true },
    report: { type: 'string' },
    refresh: { type: 'boolean' },
    'variant-header': { type: 'string', multiple: true },
    ipfs: { type: 'string' },
  });
  if (values['help'] === true) {
    process.stdout.write(HELP[command]!);
    return 0;
  }
  const netlock = str(values['netlock']);
  if (command === 'replay' && netlock === undefined) throw new UsageError(`replay needs --netlock FILE\n\n${HELP['replay']}`);
  const logger = stderrLogger();
  const adminToken = str(values['admin-token']) ?? process.env['FETCH_ORACLE_ADMIN_TOKEN'];
  const admin = str(values['admin']);
  const trust = strs(values['trust']);
  const init: OracleInit = {
    mode: command,
    dataDir: resolve(str(values['data']) ?? defaultDataDir()),
    listen: parseListen(str(values['listen']) ?? DEFAULT_LISTEN),
    logger,
    upstreamCaPem: await Promise.all(strs(values['upstream-ca']).map((f) => readFile(f, 'utf8'))),
    ...(netlock === undefined ? {} : { netlockPath: resolve(netlock) }),
    ...(admin === undefined ? {} : { admin: parseListen(admin, '--admin') as ListenAddress }),
    ...(adminToken === undefined || adminToken === '' ? {} : { adminToken }),
    ...(trust.length === 0 ? {} : { trust: parseTrustedKeys(trust) }),
    ...(values['refresh'] === true ? { refresh: true } : {}),
    ...variantRulesOf(strs(values['variant-header'])),
    ...(str(values['ipfs']) === undefined ? {} : { ipfs: str(values['ipfs'])! }),
  };
  if (command === 'replay' && values['refresh'] === true) throw new UsageError('--refresh is a record option: replay never fetches');
  if (init.admin !== undefined && 'path' in init.admin) throw new UsageError('--admin expects HOST:PORT');
  const oracle = new Oracle(init);
  // Signal handlers go in before anything is printed: a script that waits for `listening` and then
  // sends SIGTERM must never find the default handler still in place.
  const stopped = untilSignal(logger);
  await oracle.start();
  const where = 'path' in init.listen ? `unix:${init.listen.path}` : urlOf(oracle.proxyAddress());
  const adminAddress = oracle.adminAddress();
  logger.info('%s proxy on %s (data %s%s)', command === 'record' ? 'recording' : 'replay', where, init.dataDir, netlock === undefined ? '' : `, netlock ${init.netlockPath}`);
  logger.info('CA certificate: %s', oracle.caCertPath);
  process.stdout.write(`listening ${where}\n`);
  if (adminAddress !== undefined) process.stdout.write(`admin ${urlOf(adminAddress)}\n`);
  await stopped;
  await oracle.close();
  const reportPath = str(values['report']);
  if (reportPath !== undefined && command === 'record') {
    await writeFile(reportPath, `${JSON.stringify({ mutations: oracle.mutations, stats: oracle.stats }, null, 2)}\n`);
  }
  const report = reportPath === undefined || command === 'record' ? undefined : await oracle.replayReport();
  if (reportPath !== undefined && report !== undefined) {
    await writeFile(reportPath, `${JSON.stringify(report, null, 2)}\n`);
    logger.info('wrote replay report to %s: %d miss(es), %d unused entr(ies)', reportPath, report.misses.length, report.unused.length);
  }
  return 0;
}

async function runEnv(args: string[]): Promise<number> {
  const { values } = parse('env', args, { listen: { type: 'string' }, 'no-proxy': { type: 'string' } });
  if (values['help'] === true) {
    process.stdout.write(HELP['env']!);
    return 0;
  }
  const dataDir = resolve(str(values['data']) ?? defaultDataDir());
  const listen = parseListen(str(values['listen']) ?? DEFAULT_LISTEN);
  if ('path' in listen) throw new UsageError('env needs --listen HOST:PORT: clients reach a proxy by TCP address');
  const ca = await CertAuthority.loadOrCreate({ dir: join(dataDir, 'ca') });
  const bundlePath = join(dataDir, 'ca-bundle.pem');
  await writeCombinedBundle(ca.certPem, bundlePath);
  const noProxy = str(values['no-proxy']);
  process.stdout.write(exportLines(clientEnvironment({ proxyUrl: urlOf(listen), bundlePath, ...(noProxy === undefined ? {} : { noProxy }) })));
  return 0;
}

async function runVerify(args: string[]): Promise<number> {
  const { values, positionals } = parse('verify', args, { trust: { type: 'string', multiple: true }, json: { type: 'boolean' }, ipfs: { type: 'string' }, ...VERIFY_ATTESTED_OPTIONS });
  if (values['help'] === true) {
    process.stdout.write(HELP['verify']!);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError(`verify takes one netlock FILE\n\n${HELP['verify']}`);
  const dataDir = resolve(str(values['data']) ?? defaultDataDir());
  const trust = strs(values['trust']);
  // Against Kubo, no cache in front: a block Kubo lost must be reported, not served from the cache.
  const ipfs = str(values['ipfs']);
  const store = ipfs === undefined ? new FsBlockStore(dataDir) : createBlockStore({ ipfs, cache: false });
  const attested = await attestedPolicyFromFlags(values);
  const report = await verifyNetlockPath(file, store, trust.length === 0 ? undefined : parseTrustedKeys(trust), attested === undefined ? {} : { attested });
  if ('close' in store && typeof store.close === 'function') await store.close();
  if (values['json'] === true) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(renderVerifyText(report, attested !== undefined));
  }
  return report.failures.length === 0 ? 0 : 1;
}

async function runRecover(args: string[]): Promise<number> {
  const { values } = parse('recover', args, { netlock: { type: 'string' }, trust: { type: 'string', multiple: true } });
  if (values['help'] === true) {
    process.stdout.write(HELP['recover']!);
    return 0;
  }
  const netlock = str(values['netlock']);
  if (netlock === undefined) throw new UsageError(`recover needs --netlock FILE\n\n${HELP['recover']}`);
  const dataDir = resolve(str(values['data']) ?? defaultDataDir());
  const own = await LocalSigner.publicKeyIn(dataDir);
  const trust = strs(values['trust']);
  const trusted = trust.length > 0 ? parseTrustedKeys(trust) : own === undefined ? undefined : [own];
  const outcome = await recoverNetlock(resolve(netlock), new FsBlockStore(dataDir), trusted);
  const said = recoverMessages(outcome, netlock, `${netlock}.journal`);
  process.stdout.write(said.out);
  if (said.err !== '') process.stderr.write(said.err.replace(/^/gm, 'fetch-oracle: ').replace(/fetch-oracle: $/, ''));
  return said.code;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'record':
      case 'replay':
        return await runProxy(command, rest);
      case 'env':
        return await runEnv(rest);
      case 'verify':
        return await runVerify(rest);
      case 'recover':
        return await runRecover(rest);
      case 'gc':
        return await runGc(rest, defaultDataDir(), (t) => process.stdout.write(t));
      case 'attest':
        return await runAttest(rest, (t) => process.stdout.write(t));
      case 'export':
        return await runExport(rest, { defaultDataDir: defaultDataDir() });
      case 'import':
        return await runImport(rest, { defaultDataDir: defaultDataDir() });
      case 'run':
        return await runRun(rest, defaultDataDir());
      case 'build':
        return await runBuild(rest, defaultDataDir());
      case 'enclave':
        return await runEnclave(rest, defaultDataDir(), (t) => process.stdout.write(t));
      case 'seed':
        return await runSeedCommand(rest, defaultDataDir());
      case 'lockfile':
        return await runLockfile(rest, { defaultDataDir: defaultDataDir() });
      case 'serve-machine':
        return await runServeMachine(rest, defaultDataDir(), (t) => process.stdout.write(t));
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(HELP['main']!);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command ${JSON.stringify(command)}\n\n${HELP['main']}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`fetch-oracle: ${err.message}\n`);
      return 2;
    }
    const code = err instanceof OracleError ? `${err.code}: ` : '';
    process.stderr.write(`fetch-oracle: ${code}${(err as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));

/** `fetch-oracle replay`: the forward proxy that answers only from a netlock. */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseQuorum, parseTrustedKeys, stderrLogger, UsageError } from './common.ts';
import { DEFAULT_LISTEN, parseListen, parseOptions, str, strs } from './options.ts';
import { adminTokenOf, PROXY_OPTIONS, serveUntilSignal } from './proxy-command.ts';
import type { Logger } from '../log.ts';
import { Oracle } from '../oracle/oracle.ts';
import type { ReplayInit } from '../oracle/oracle.ts';
import { FRONT_HELP, frontInitFromFlags, SYNC_OPTIONS } from './front-flags.ts';
import type { ListenAddress } from '../proxy/proxy-server.ts';
import { isNetlockRootRef } from '../netlock/file.ts';
import { KUBO_FETCH_TIMEOUT_MS } from '../store/index.ts';
import { parseDuration } from './front-flags.ts';

export const REPLAY_HELP = `Usage: fetch-oracle replay --netlock FILE|ipfs://CID --listen HOST:PORT [--data DIR] [--trust KEY]... [--quorum K] [--ipfs URL [--ipfs-timeout DUR]]

Forward proxy that serves only what FILE names, verifying every block hash and record signature. It has no
upstream client: a request not in the netlock gets a 504 whose body explains the miss and names the nearest
recorded requests.

Options:
  --netlock FILE         the netlock to serve (required); ipfs://CID names it by its root alone (with --ipfs, the
                         blocks may come from Kubo's peers: a netlock recorded on another machine)
  --listen HOST:PORT     proxy address (default ${DEFAULT_LISTEN}; unix:/path for a socket)
  --data DIR             data directory holding the blocks (default as for record)
  --trust KEY            trust records signed by this ed25519 public key (hex; repeatable; default: this data
                         directory's own oracle key)
  --quorum K             serve a record only when K distinct --trust keys signed it: its oracle's record
                         signature and witnesses' countersignatures (fetch-oracle witness); default 1
  --report FILE          on shutdown write every miss and every unused netlock entry as JSON
  --ipfs URL             read blocks from Kubo (the data directory's store first); Kubo fetches blocks it lacks
                         from its peers over bitswap unless the daemon runs --offline
  --ipfs-timeout DUR     longest wait for Kubo to get one block it lacks from its peers (default ${KUBO_FETCH_TIMEOUT_MS / 1000}s); past
                         it the request fails 504 ORACLE_ERR_BLOCK_FETCH_TIMEOUT naming the block, others go on
  --admin HOST:PORT      serve the admin API (GET / the live report page, /metrics; docs/report.md)
  --admin-token TOKEN    bearer token for the admin API (required off loopback)
${FRONT_HELP}  -h, --help             show this help
`;

export const replayCommand: Command = {
  help: REPLAY_HELP,
  run: runReplay,
};

export async function runReplay(args: string[], context: CommandContext): Promise<number> {
  const { values } = parseOptions(args, { ...PROXY_OPTIONS, ...SYNC_OPTIONS, quorum: { type: 'string' } }, REPLAY_HELP);
  if (values['help'] === true) {
    context.stdout.write(REPLAY_HELP);
    return 0;
  }
  const netlock = str(values['netlock']);
  if (netlock === undefined) throw new UsageError(`replay needs --netlock FILE\n\n${REPLAY_HELP}`);
  if (values['ipfs-timeout'] !== undefined && values['ipfs'] === undefined) throw new UsageError('--ipfs-timeout applies only with --ipfs URL');
  if (values['refresh'] === true) throw new UsageError('--refresh is a record option: replay never fetches');
  if (values['sync'] !== undefined) throw new UsageError('--sync is a record option: replay writes no records');
  const logger = stderrLogger();
  const { oracle, init } = createOracle(values, netlock, context, logger);
  await serveUntilSignal(oracle, { label: 'replay', listen: init.listen, dataDir: init.dataDir, netlockPath: init.netlockPath }, logger, context.stdout);
  const reportPath = str(values['report']);
  const report = reportPath === undefined ? undefined : await oracle.replayReport();
  if (reportPath !== undefined && report !== undefined) {
    await writeFile(reportPath, `${JSON.stringify(report, null, 2)}\n`);
    logger.info('wrote replay report to %s: %d miss(es), %d unused entr(ies)', reportPath, report.misses.length, report.unused.length);
  }
  return 0;
}

/** The replaying Oracle of these flags (kept in one place: OracleInit is the oracle's to reshape). */
function createOracle(values: Record<string, unknown>, netlock: string, context: CommandContext, logger: Logger): { oracle: Oracle; init: ReplayInit } {
  const admin = str(values['admin']);
  const trust = strs(values['trust']);
  for (const flag of ['upstream-ca', 'variant-header'] as const) {
    if (strs(values[flag]).length > 0) throw new UsageError(`--${flag} is a record option: replay never fetches, and follows the variant rules its netlock names`);
  }
  const init: ReplayInit = {
    mode: 'replay',
    dataDir: resolve(str(values['data']) ?? context.defaultDataDir),
    listen: parseListen(str(values['listen']) ?? DEFAULT_LISTEN),
    logger,
    netlockPath: isNetlockRootRef(netlock) ? netlock.trim() : resolve(netlock),
    ...(admin === undefined ? {} : { admin: parseListen(admin, '--admin') as ListenAddress }),
    ...adminTokenOf(str(values['admin-token'])),
    ...(trust.length === 0 ? {} : { trust: parseTrustedKeys(trust) }),
    ...(str(values['quorum']) === undefined ? {} : { quorum: parseQuorum(str(values['quorum']), trust) }),
    ...(str(values['ipfs']) === undefined ? {} : { ipfs: str(values['ipfs'])! }),
    ...ipfsTimeoutOf(values),
    ...frontInitFromFlags(values, process.env),
  };
  if (init.admin !== undefined && 'path' in init.admin) throw new UsageError('--admin expects HOST:PORT');
  return { oracle: new Oracle(init), init };
}

/** `--ipfs-timeout DUR` as ReplayInit's field (only when given). */
function ipfsTimeoutOf(values: Record<string, unknown>): { ipfsFetchTimeoutMs?: number } {
  const text = str(values['ipfs-timeout']);
  return text === undefined ? {} : { ipfsFetchTimeoutMs: parseDuration(text, '--ipfs-timeout') };
}

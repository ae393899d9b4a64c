/** `fetch-oracle record`: the recording forward proxy. */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { stderrLogger, UsageError } from './common.ts';
import { DEFAULT_LISTEN, parseListen, parseOptions, str, strs } from './options.ts';
import { adminTokenOf, PROXY_OPTIONS, serveUntilSignal, variantRulesOf } from './proxy-command.ts';
import type { Logger } from '../log.ts';
import { Oracle } from '../oracle/oracle.ts';
import type { RecordInit } from '../oracle/oracle.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';
import { FRONT_HELP, frontInitFromFlags, SYNC_HELP, SYNC_OPTIONS, syncInitFromFlags, UPSTREAM_HELP, UPSTREAM_OPTIONS } from './front-flags.ts';
import type { ListenAddress } from '../proxy/proxy-server.ts';

export const RECORD_HELP = `Usage: fetch-oracle record --listen HOST:PORT [--data DIR] [--netlock FILE] [--admin HOST:PORT]

Forward proxy in record mode. The first time a request is seen it is fetched upstream once, its body stored
content-addressed and a signed record written; every later identical request is answered from that record
without contacting the origin. On SIGINT/SIGTERM the netlock of every request this run served is written to
FILE, keeping the entries a netlock already there holds (a file there that cannot be verified is refused at
start); a journal (FILE.journal) lets a crashed run be recovered.

Options:
  --listen HOST:PORT     proxy address (default ${DEFAULT_LISTEN}; port 0 picks a free one; unix:/path for a socket)
  --data DIR             data directory (default $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle)
  --netlock FILE         write this run's netlock here on shutdown (adding to the one already there)
  --admin HOST:PORT      serve the admin API (GET / the live report page, /metrics, /healthz /stats
                         /records?url= /netlock /ca.pem)
  --admin-token TOKEN    bearer token for the admin API (required off loopback)
  --ipfs URL             also store every block in Kubo (its RPC API, e.g. http://127.0.0.1:5001) and pin each
                         record's DAG and the netlock root; the data directory stays as a local cache
  --upstream-ca FILE     also trust this PEM CA for upstream TLS (repeatable)
  --variant-header HOST=NAME  also key requests to HOST by request header NAME (repeatable; e.g. a registry that
                         answers differently by a custom header); stored in the netlock, so replay follows it
  --refresh              fetch every recorded request again once in this run; an answer that changed is kept
                         as a new version beside the old one and reported (upstream mutation)
  --report FILE          on shutdown write the upstream mutations seen and the stats as JSON
${SYNC_HELP}${FRONT_HELP}${UPSTREAM_HELP}  -h, --help             show this help
`;

export const recordCommand: Command = {
  help: RECORD_HELP,
  run: runRecord,
};

export async function runRecord(args: string[], context: CommandContext): Promise<number> {
  const { values } = parseOptions(args, { ...PROXY_OPTIONS, ...UPSTREAM_OPTIONS, ...SYNC_OPTIONS }, RECORD_HELP);
  if (values['help'] === true) {
    context.stdout.write(RECORD_HELP);
    return 0;
  }
  const logger = stderrLogger();
  const { oracle, init } = await createOracle(values, context, logger);
  await serveUntilSignal(oracle, { label: 'recording', listen: init.listen, dataDir: init.dataDir, netlockPath: init.netlockPath }, logger, context.stdout);
  const reportPath = str(values['report']);
  if (reportPath !== undefined) {
    await writeFile(reportPath, `${JSON.stringify({ mutations: oracle.mutations, stats: oracle.stats }, null, 2)}\n`);
  }
  return 0;
}

/** The recording Oracle of these flags (kept in one place: OracleInit is the oracle's to reshape). */
async function createOracle(values: Record<string, unknown>, context: CommandContext, logger: Logger): Promise<{ oracle: Oracle; init: RecordInit }> {
  const netlock = str(values['netlock']);
  const admin = str(values['admin']);
  if (strs(values['trust']).length > 0) throw new UsageError('--trust is a replay option: record signs with this data directory\'s key');
  if (values['ipfs-timeout'] !== undefined) throw new UsageError('--ipfs-timeout is a replay option: record reads only the blocks its own Kubo holds');
  const init: RecordInit = {
    mode: 'record',
    dataDir: resolve(str(values['data']) ?? context.defaultDataDir),
    listen: parseListen(str(values['listen']) ?? DEFAULT_LISTEN),
    logger,
    upstreamCaPem: await readUpstreamCaPem(strs(values['upstream-ca']), process.env['NODE_EXTRA_CA_CERTS'], (m) => logger.warn('%s', m)),
    ...(netlock === undefined ? {} : { netlockPath: resolve(netlock) }),
    ...(admin === undefined ? {} : { admin: parseListen(admin, '--admin') as ListenAddress }),
    ...adminTokenOf(str(values['admin-token'])),
    ...(values['refresh'] === true ? { refresh: true } : {}),
    ...variantRulesOf(strs(values['variant-header'])),
    ...(str(values['ipfs']) === undefined ? {} : { ipfs: str(values['ipfs'])! }),
    ...frontInitFromFlags(values, process.env),
    ...syncInitFromFlags(values),
  };
  if (init.admin !== undefined && 'path' in init.admin) throw new UsageError('--admin expects HOST:PORT');
  return { oracle: new Oracle(init), init };
}

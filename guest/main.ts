// fetch-oracle guest shim: the replay proxy that runs inside the Cartesi Machine. Every block (netlock
// index pages, records, bodies) comes by CID through the dehashing device and is verified; there is no
// network client in this program at all.
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CID } from 'multiformats/cid';
import { clientEnvironment, exportLines, SYSTEM_CA_BUNDLE } from '../src/tls/client-env.ts';
import { parseCommandLine, parseHostPort, parseQuorum, parseTrustedKeys, UsageError } from '../src/config/flags.ts';
import { OracleError } from '../src/errors.ts';
import { createLogger } from '../src/log.ts';
import { openReplay } from '../src/oracle/open-replay.ts';
import { CachingBlockSource } from '../src/protocol/blocks.ts';
import { ProxyServer } from '../src/proxy/proxy-server.ts';
import { CA_CERT_FILE, CertAuthority } from '../src/tls/cert-authority.ts';
import { DeviceBlockSource } from './device-block-source.ts';
import { runMachineMode } from './machine-mode.ts';

const DEFAULT_CONFIG = '/etc/fetch-oracle/guest.json';
const DEFAULT_HELPER = '/usr/bin/cmio-helper';
const DEFAULT_LISTEN = '127.0.0.1:8899';
const DEFAULT_CACHE_MIB = 64;
const DEFAULT_RUN_DIR = '/run/fetch-oracle';

const HELP = `fetch-oracle-guest: offline replay proxy for the Cartesi Machine (blocks by CID through the dehashing device)

Usage:
  fetch-oracle-guest serve [--config FILE] [--netlock-root CID] [--trust KEY]... [--quorum K] [--ca-dir DIR] [--listen HOST:PORT]
                           [--helper PATH] [--cache-mib N]
  fetch-oracle-guest env   [--config FILE] [--ca-dir DIR] [--listen HOST:PORT] [--bundle FILE]
  fetch-oracle-guest machine [--helper PATH] [--listen HOST:PORT] [--run-dir DIR]

serve   answers HTTP/HTTPS proxy requests from the netlock, verifying every block hash and record signature;
        a request not in the netlock gets a 504 that explains the miss. Nothing ever dials out.
env     writes a CA bundle (system bundle + the provisioned CA) and prints the export lines a build needs.
machine the shim of \`fetch-oracle machine run\` (started by /sbin/fetch-oracle-init): makes its CA, asks the
        host for the run's config over GIO 0x27, serves it, writes RUN_DIR/run.sh and prints \`ready\`;
        a block that does not hash to its CID is fatal (RUN_DIR/fatal). Default run dir ${DEFAULT_RUN_DIR}.

Options (each may also come from the JSON config file, default ${DEFAULT_CONFIG}, keys in camelCase):
  --netlock-root CID   root CID of the netlock to serve
  --trust KEY          trusted oracle ed25519 public key, hex (repeatable; required)
  --ca-dir DIR         directory holding ${CA_CERT_FILE} and the CA key provisioned with the image
  --listen HOST:PORT   proxy address (default ${DEFAULT_LISTEN})
  --helper PATH        the cmio helper (default ${DEFAULT_HELPER}); CMIO_SIM_SOCKET is passed to it
  --quorum K           serve a record only when K distinct --trust keys signed it (its oracle and witnesses'
                       countersignatures; default 1)
  --cache-mib N        verified blocks kept in memory (default ${DEFAULT_CACHE_MIB})
  --bundle FILE        env: where to write the CA bundle (default CA_DIR/ca-bundle.pem)
`;

interface GuestConfig {
  netlockRoot?: string;
  trust?: string[];
  caDir?: string;
  listen?: string;
  helper?: string;
  cacheMib?: number;
  quorum?: number;
}

function loadConfig(path: string | undefined): GuestConfig {
  const file = path ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
  if (file === undefined) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as GuestConfig;
  } catch (err) {
    throw new UsageError(`Cannot read config ${file}: ${(err as Error).message}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  const { values } = parseCommandLine({
    args,
    strict: true,
    options: {
      config: { type: 'string' },
      'netlock-root': { type: 'string' },
      trust: { type: 'string', multiple: true },
      'ca-dir': { type: 'string' },
      listen: { type: 'string' },
      helper: { type: 'string' },
      'cache-mib': { type: 'string' },
      quorum: { type: 'string' },
      bundle: { type: 'string' },
      'run-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }, HELP);
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === 'machine') {
    // Warnings and errors only: the console is the user's build log.
    const logger = createLogger('oracle:guest', (level, _namespace, line) => {
      if (level === 'warn' || level === 'error') process.stderr.write(`fetch-oracle-guest: ${level}: ${line}\n`);
    });
    const code = await runMachineMode({
      helperPath: values.helper ?? DEFAULT_HELPER,
      runDir: resolve(values['run-dir'] ?? DEFAULT_RUN_DIR),
      listen: parseHostPort(values.listen ?? DEFAULT_LISTEN, '--listen'),
      logger,
      ready: (line) => process.stdout.write(line),
    });
    // The helper and the proxy's last sockets must not keep a stopped shim alive.
    process.exit(code);
  }
  const config = loadConfig(values.config);
  const caDir = values['ca-dir'] ?? config.caDir;
  if (caDir === undefined) throw new UsageError('--ca-dir (or caDir in the config) is required: the CA is provisioned with the image');
  if (!existsSync(join(caDir, CA_CERT_FILE))) throw new UsageError(`No CA in ${caDir}: provision one on the host with \`fetch-oracle env --data DIR\` and copy DIR/ca into the image`);
  const listen = parseHostPort(values.listen ?? config.listen ?? DEFAULT_LISTEN, '--listen');

  if (command === 'env') {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const bundle = resolve(values.bundle ?? join(caDir, 'ca-bundle.pem'));
    const system = existsSync(SYSTEM_CA_BUNDLE) ? readFileSync(SYSTEM_CA_BUNDLE, 'utf8') : '';
    await writeFile(bundle, `${system}${system === '' || system.endsWith('\n') ? '' : '\n'}${ca.certPem.trim()}\n`);
    process.stdout.write(exportLines(clientEnvironment({ proxyUrl: `http://${listen.host}:${listen.port}`, bundlePath: bundle })));
    return 0;
  }
  if (command !== 'serve') throw new UsageError(`Unknown command ${JSON.stringify(command)}\n\n${HELP}`);

  const rootText = values['netlock-root'] ?? config.netlockRoot;
  if (rootText === undefined) throw new UsageError('--netlock-root CID (or netlockRoot in the config) is required');
  let root: CID;
  try {
    root = CID.parse(rootText);
  } catch {
    throw new UsageError(`--netlock-root is not a CID: ${JSON.stringify(rootText)}`);
  }
  const trustText = values.trust ?? config.trust ?? [];
  if (trustText.length === 0) throw new UsageError('--trust KEY (or trust in the config) is required: the guest accepts records only from named oracle keys');
  const trusted = parseTrustedKeys(trustText);
  const quorumText = values.quorum ?? (config.quorum === undefined ? undefined : String(config.quorum));
  const quorum = parseQuorum(quorumText, trustText);
  const cacheMib = Number(values['cache-mib'] ?? config.cacheMib ?? DEFAULT_CACHE_MIB);

  const logger = createLogger('oracle:guest', (level, namespace, line) => process.stderr.write(`${level} ${namespace}: ${line}\n`));
  const device = new DeviceBlockSource({ helperPath: values.helper ?? config.helper ?? DEFAULT_HELPER, logger });
  const blocks = new CachingBlockSource(device, cacheMib * 1024 * 1024);
  const replay = await openReplay({ root, source: blocks, trusted, quorum, logger });
  const ca = await CertAuthority.loadOrCreate({ dir: caDir });
  const proxy = new ProxyServer({ handler: replay.handler, certs: ca, logger: logger.child('proxy') });
  const stopped = new Promise<string>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  await proxy.listen(listen);
  process.stdout.write(`listening http://${listen.host}:${proxy.address().port}\n`);
  const signal = await stopped;
  await proxy.close();
  await device.close();
  logger.info('%s: stopped; %d requests, %d hits, %d misses; device: %d round trips, %d bytes', signal, replay.stats.requests, replay.stats.hits, replay.stats.misses, device.roundTrips, device.bytes);
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`fetch-oracle-guest: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`fetch-oracle-guest: ${err instanceof OracleError ? `${err.code}: ` : ''}${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

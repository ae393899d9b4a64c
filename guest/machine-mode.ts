// `fetch-oracle-guest machine`: the shim as the init of `fetch-oracle machine run` starts it (guest/init/
// fetch-oracle-init.sh). It makes its CA, asks the host for the run's config over GIO 0x27, serves the
// netlock (replay) or records through the host (record, GIO 0x26) on 127.0.0.1:8899, writes run.sh for the
// init and prints `ready`. docs/cartesi.md "Guest flow".
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { parseTrustedKeys } from '../src/config/flags.ts';
import type { OracleError } from '../src/errors.ts';
import { asOracleError, BlockCorruptError, BlockMissingError, DeviceError } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import { asRunConfig, encodeControlRequest, GIO_DOMAIN_CONTROL } from '../src/machine/control.ts';
import type { ControlRequest, RunConfig } from '../src/machine/control.ts';
import { openReplay } from '../src/oracle/open-replay.ts';
import type { OracleStats } from '../src/oracle/stats.ts';
import { CachingBlockSource } from '../src/protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../src/protocol/blocks.ts';
import { ProxyServer } from '../src/proxy/proxy-server.ts';
import { createCaCertificate } from '../src/tls/ca-certificate.ts';
import { CA_CERT_FILE, CA_KEY_FILE, CertAuthority } from '../src/tls/cert-authority.ts';
import { clientEnvironment, shellQuote, writeCombinedBundle } from '../src/tls/client-env.ts';
import { generateP256KeyPair, privateKeyToPem } from '../src/tls/p256-key.ts';
import { DeviceBlockSource } from './device-block-source.ts';
import { openDeviceRecord } from './device-recorder.ts';
import type { ReplayHandler } from '../src/proxy/replay-handler.ts';

/**
 * The CA's validity is fixed, not taken from the clock: the machine's clock starts at 1970 and is set to
 * the run's time only after the snapshot point, and the CA must be the same whatever that time is.
 * 9999-12-31T23:59:59Z is RFC 5280 §4.1.2.5's "no well-defined expiration date".
 */
export const GUEST_CA_NOT_BEFORE = new Date(Date.UTC(1970, 0, 1));
export const GUEST_CA_NOT_AFTER = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));
/** Where the command's input and output live in the machine (its drives are unpacked/packed here). */
export const GUEST_INPUT_DIR = '/mnt/input';
export const GUEST_OUTPUT_DIR = '/mnt/output';
const CACHE_BYTES = 64 * 1024 * 1024;
/** Exit status of the shim after a fatal device answer (the init reads the fatal file, not this). */
const FATAL_EXIT = 3;

export interface MachineModeInit {
  helperPath: string;
  /** /run/fetch-oracle: run.sh, fatal, cmd.pid, the CA and its bundle. */
  runDir: string;
  listen: { host: string; port: number };
  logger: Logger;
  /** Where `ready` goes (the init's fifo). */
  ready: (line: string) => void;
}

/** Makes the shim's CA in `dir` (P-256, fixed validity), unless one is there already. */
export async function makeGuestCa(dir: string): Promise<CertAuthority> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await generateP256KeyPair();
  const cert = await createCaCertificate(keys, 'fetch-oracle machine CA', undefined, { notBefore: GUEST_CA_NOT_BEFORE, notAfter: GUEST_CA_NOT_AFTER });
  await writeFile(join(dir, CA_KEY_FILE), privateKeyToPem(keys.privateKey), { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await writeFile(join(dir, CA_CERT_FILE), cert.toString('pem'), { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return CertAuthority.loadOrCreate({ dir });
}

/** The shell lines the init sources before it runs the command. */
export function runScript(config: RunConfig, proxyUrl: string, bundlePath: string): string {
  const lines = [`date -s @${config.time} >/dev/null`];
  const vars: Array<readonly [string, string]> = [
    ...clientEnvironment({ proxyUrl, bundlePath, noProxy: '' }),
    // npm reads its own proxy settings before the variables above (as `fetch-oracle run` sets them).
    ['npm_config_proxy', proxyUrl],
    ['npm_config_https_proxy', proxyUrl],
    ['npm_config_noproxy', ''],
    ['FETCH_ORACLE_INPUT', GUEST_INPUT_DIR],
    ['FETCH_ORACLE_OUTPUT', GUEST_OUTPUT_DIR],
    ...Object.entries(config.env),
  ];
  for (const [name, value] of vars) lines.push(`export ${name}=${shellQuote(value)}`);
  lines.push(`fo_input=${config.input ? 1 : 0}`, `fo_output=${config.output ? 1 : 0}`);
  lines.push(`set -- ${config.argv.map(shellQuote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Blocks through the device, verified and cached; a block the host answers wrongly (bytes that do not hash
 * to the CID, an empty reply, a device failure) is fatal for the whole run, not just for one request: the
 * host is lying or broken, and nothing built from here on could be trusted.
 */
class FatalOnBadBlock extends CachingBlockSource {
  readonly #fatal: (err: OracleError) => void;

  constructor(source: BlockSource, fatal: (err: OracleError) => void) {
    super(source, CACHE_BYTES);
    this.#fatal = fatal;
  }

  override get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    return super.get(cid, options).catch((err: unknown) => {
      if (err instanceof BlockCorruptError || err instanceof BlockMissingError || err instanceof DeviceError) this.#fatal(err);
      throw err;
    });
  }
}

/** Runs machine mode until SIGTERM (0) or a fatal block (FATAL_EXIT). */
export async function runMachineMode(init: MachineModeInit): Promise<number> {
  const { logger, runDir } = init;
  await mkdir(runDir, { recursive: true });
  const ca = await makeGuestCa(join(runDir, 'ca'));
  const device = new DeviceBlockSource({ helperPath: init.helperPath, logger });
  const control = async (request: ControlRequest): Promise<Uint8Array> => device.request(GIO_DOMAIN_CONTROL, encodeControlRequest(request));

  let proxy: ProxyServer | undefined;
  let done!: (code: number) => void;
  const finished = new Promise<number>((r) => (done = r));
  let fatalSeen = false;
  const fatal = (err: OracleError): void => {
    if (fatalSeen) return;
    fatalSeen = true;
    // One line the init copies into the result drive; the host prints it and copies no output.
    writeFileSync(join(runDir, 'fatal'), `${err.code}: ${err.message.replace(/\s+/g, ' ')}\n`);
    logger.error('FATAL: %s: %s', err.code, err.message);
    stopCommand(runDir, logger);
    void (proxy?.close() ?? Promise.resolve()).finally(() => done(FATAL_EXIT));
  };

  let opened: { handler: ReplayHandler; stats: OracleStats };
  try {
    const config = asRunConfig(JSON.parse(Buffer.from(await control({ op: 'config' })).toString('utf8')));
    // Everything above (CA, helper, the config yield) is the same in both modes: one snapshot serves both.
    const source = new FatalOnBadBlock(device, fatal);
    const trusted = parseTrustedKeys(config.trust);
    if (config.mode === 'record') {
      // Each request goes to the host over GIO 0x26; its record and body come back by CID as in replay.
      opened = openDeviceRecord({ device, source, trusted, logger });
    } else {
      opened = await openReplay({
        root: CID.parse(config.netlockRoot!), // asRunConfig: replay has one
        source,
        trusted,
        logger,
        onMiss: async (miss) => {
          await control({ op: 'miss', method: miss.method, url: miss.url, accept: miss.accept, nearest: miss.nearest.map((n) => ({ ...n, differs: [...n.differs] })) });
        },
      });
    }
    proxy = new ProxyServer({ handler: opened.handler, certs: ca, logger: logger.child('proxy') });
    await proxy.listen(init.listen);
    const proxyUrl = `http://${init.listen.host}:${proxy.address().port}`;
    const bundle = join(runDir, 'ca-bundle.pem');
    await writeCombinedBundle(ca.certPem, bundle);
    await writeFile(join(runDir, 'run.sh'), runScript(config, proxyUrl, bundle));
  } catch (err) {
    // Before `ready` every failure is the run's end: the init finds it in the fatal file.
    fatal(err instanceof SyntaxError ? new DeviceError(`The host's run config is not JSON: ${err.message}`) : asOracleError(err));
    return finished;
  }
  process.once('SIGTERM', () => {
    if (fatalSeen) return;
    void (async () => {
      await proxy?.close();
      const s = opened.stats;
      await control({ op: 'stats', requests: s.requests, hits: s.hits, misses: s.misses, errors: s.errors, roundTrips: device.roundTrips + 1, bytes: device.bytes }).catch((err: unknown) => {
        logger.warn('could not send the stats: %s', (err as Error).message);
      });
      await device.close();
      done(0);
    })();
  });
  init.ready('ready\n');
  return finished;
}

/** Kills the command's session (the init starts it with setsid and writes its pid). */
function stopCommand(runDir: string, logger: Logger): void {
  let pid: number;
  try {
    pid = Number(readFileSync(join(runDir, 'cmd.pid'), 'utf8').trim());
  } catch {
    return; // not started yet: the init sees the fatal file before it starts anything
  }
  if (!Number.isSafeInteger(pid) || pid <= 1) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    logger.warn('could not stop the command (pid %d): %s', pid, (err as Error).message);
  }
}

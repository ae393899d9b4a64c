/**
 * `fetch-oracle enclave serve` (inside the Nitro Enclave, started by enclave/boot.sh) and
 * `fetch-oracle enclave parent` (on the parent instance).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseAddress, parseCommandLine, stderrLogger, untilSignal, UsageError } from './common.ts';
import { birthKey, checkRngSource, createEnclaveConfig, RNG_CURRENT_PATH } from '../enclave/key-birth.ts';
import { HelperNsmClient } from '../enclave/nsm-client.ts';
import { ParentProxy, parseAllowRule } from '../enclave/parent-proxy.ts';
import { InvalidConfigError } from '../errors.ts';
import { Oracle } from '../oracle/oracle.ts';
import { toHex } from '../protocol/signature.ts';
import { describeProxy } from '../upstream/connect-tunnel.ts';
import type { ProxyAddress } from '../upstream/connect-tunnel.ts';

/** fetch-oracle's version, part of the attested enclave configuration (kept equal to package.json's; a test checks). */
export const ORACLE_VERSION = '0.1.0';
export const DEFAULT_ENCLAVE_LISTEN = '127.0.0.1:8899';
/** The in-enclave end of the outbound vsock bridge (enclave/boot.sh). */
export const DEFAULT_UPSTREAM_PROXY = '127.0.0.1:3128';
export const DEFAULT_NSM_HELPER = '/usr/local/bin/nsm-helper';

export const ENCLAVE_HELP = `Usage: fetch-oracle enclave serve [options]     (inside a Nitro Enclave; enclave/boot.sh runs it)
       fetch-oracle enclave parent --listen ADDR --allow HOST[:PORT]...   (on the parent instance)

enclave serve: the recording proxy with a key born in the enclave. The ed25519 key is derived from NSM
randomness and held only in memory; the NSM attests it (public_key = the key, user_data = SHA-256 of the
configuration block printed at start). Every record carries the attestation document's CID. Every upstream
connection is a CONNECT tunnel through --upstream-proxy with TLS ending here; a connection that fails gets
the client a 502 and records nothing. On SIGINT/SIGTERM the netlock is written to --netlock.

  --listen HOST:PORT       proxy address inside the enclave (default ${DEFAULT_ENCLAVE_LISTEN})
  --upstream-proxy ADDR    CONNECT proxy for every origin: HOST:PORT or unix:/path (default ${DEFAULT_UPSTREAM_PROXY})
  --nsm-helper PATH        the NSM helper binary (default ${DEFAULT_NSM_HELPER})
  --data DIR               data directory (in an enclave: memory-backed; default as for record)
  --netlock FILE           write this run's netlock here on shutdown
  --admin HOST:PORT        serve the admin API (GET /netlock /records?url= /ca.pem …)
  --admin-token TOKEN      bearer token for the admin API (required off loopback)
  --upstream-ca FILE       also trust this PEM CA upstream (repeatable; its SHA-256 enters the attested config)
  --no-rng-check           do not require ${RNG_CURRENT_PATH} to be nsm-hwrng (simulated enclaves only)
  --attestation-out FILE   also write the attestation document's bytes here

enclave parent: the CONNECT proxy the enclave's outbound vsock bridge reaches. Relays bytes only; refuses
targets not on the allowlist with 403 (and a log line), answers anything but CONNECT with 405.

  --listen ADDR            HOST:PORT or unix:/path (default 127.0.0.1:8001)
  --allow RULE             HOST (port 443), HOST:PORT, HOST:*, *.DOMAIN[:PORT]; repeatable
`;

/** `HOST:PORT` or `unix:/path`. */
export function parseProxyAddress(text: string, flag: string): ProxyAddress {
  return parseAddress(text, flag);
}

export const enclaveCommand: Command = {
  help: ENCLAVE_HELP,
  run: (args, context) => runEnclave(args, context.defaultDataDir, context),
};

/** `fetch-oracle enclave serve|parent …`; returns the exit code. */
export async function runEnclave(args: string[], dataDirDefault: string, context: Pick<CommandContext, 'stdout'>): Promise<number> {
  const out = (t: string): void => void context.stdout.write(t);
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    out(ENCLAVE_HELP);
    return 0;
  }
  if (sub === undefined) throw new UsageError(`enclave needs a command: serve or parent\n\n${ENCLAVE_HELP}`);
  if (sub === 'serve') return serve(rest, dataDirDefault, out);
  if (sub === 'parent') return parent(rest, out);
  throw new UsageError(`Unknown enclave command ${JSON.stringify(sub)} (serve or parent)\n\n${ENCLAVE_HELP}`);
}

async function serve(args: string[], dataDirDefault: string, out: (t: string) => void): Promise<number> {
  const { values } = parseCommandLine({
    args,
    strict: true,
    options: {
      listen: { type: 'string' },
      'upstream-proxy': { type: 'string' },
      'nsm-helper': { type: 'string' },
      data: { type: 'string' },
      netlock: { type: 'string' },
      admin: { type: 'string' },
      'admin-token': { type: 'string' },
      'upstream-ca': { type: 'string', multiple: true },
      'no-rng-check': { type: 'boolean' },
      'attestation-out': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }, ENCLAVE_HELP);
  if (values.help === true) {
    out(ENCLAVE_HELP);
    return 0;
  }
  const logger = stderrLogger();
  const listenText = values.listen ?? DEFAULT_ENCLAVE_LISTEN;
  const listen = parseProxyAddress(listenText, '--listen');
  const proxyText = values['upstream-proxy'] ?? DEFAULT_UPSTREAM_PROXY;
  const upstreamProxy = parseProxyAddress(proxyText, '--upstream-proxy');
  const upstreamCaPem = await Promise.all((values['upstream-ca'] ?? []).map((f) => readFile(f, 'utf8')));
  const admin = values.admin === undefined ? undefined : parseProxyAddress(values.admin, '--admin');
  if (admin !== undefined && 'path' in admin) throw new InvalidConfigError('--admin expects HOST:PORT');
  if (values['no-rng-check'] !== true) await checkRngSource();
  else logger.warn('RNG source check skipped (--no-rng-check): only for a simulated enclave');

  const config = createEnclaveConfig({ oracle: ORACLE_VERSION, listen: 'path' in listen ? `unix:${listen.path}` : listenText, upstreamProxy: describeProxy(upstreamProxy), upstreamCaPem });
  const nsm = new HelperNsmClient({ helperPath: values['nsm-helper'] ?? DEFAULT_NSM_HELPER });
  const born = await birthKey({ nsm, config });
  const oracle = new Oracle({
    mode: 'record',
    dataDir: resolve(values.data ?? dataDirDefault),
    listen,
    logger,
    upstreamCaPem,
    signer: born.signer,
    upstreamProxy,
    recordUpstreamFailures: false,
    ...(values.netlock === undefined ? {} : { netlockPath: resolve(values.netlock) }),
    ...(admin === undefined ? {} : { admin: admin }),
    ...(values['admin-token'] === undefined || values['admin-token'] === '' ? {} : { adminToken: values['admin-token'] }),
  });
  // The document and the configuration it digests are blocks of the store before anything is signed, so
  // every record's `attestation` link resolves and exports carry the document.
  await oracle.store.put(born.document.cid, born.document.bytes);
  await oracle.store.put(born.config.cid, born.config.bytes);
  if (values['attestation-out'] !== undefined) await writeFile(values['attestation-out'], born.document.bytes);
  const stopped = untilSignal(logger);
  await oracle.start();
  logger.info('enclave key %s attested by document %s (config %s)', toHex(born.signer.publicKey), born.document.cid.toString(), born.config.cid.toString());
  out(`oracle ${toHex(born.signer.publicKey)}\n`);
  out(`attestation ${born.document.cid.toString()}\n`);
  out(`config ${born.config.cid.toString()} ${JSON.stringify(config)}\n`);
  out(`listening ${'path' in listen ? `unix:${listen.path}` : `http://${listenText}`}\n`);
  await stopped;
  await oracle.close();
  return 0;
}

async function parent(args: string[], out: (t: string) => void): Promise<number> {
  const { values } = parseCommandLine({
    args,
    strict: true,
    options: { listen: { type: 'string' }, allow: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } },
  }, ENCLAVE_HELP);
  if (values.help === true) {
    out(ENCLAVE_HELP);
    return 0;
  }
  const allow = (values.allow ?? []).map(parseAllowRule);
  if (allow.length === 0) throw new InvalidConfigError('enclave parent needs at least one --allow HOST[:PORT] (an empty allowlist refuses everything)');
  const logger = stderrLogger();
  const proxy = new ParentProxy({ allow, logger: logger.child('parent') });
  const stopped = untilSignal(logger);
  await proxy.listen(parseProxyAddress(values.listen ?? '127.0.0.1:8001', '--listen'));
  out(`listening ${describeProxy(proxy.address())}\n`);
  await stopped;
  await proxy.close();
  out(`tunnels ${proxy.counts.tunnels}, refused ${proxy.counts.refused}, failed ${proxy.counts.failed}\n`);
  return 0;
}

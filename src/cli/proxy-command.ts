/**
 * What `record` and `replay` share: their flags (one set, as before the split: each ignores the other's
 * flags or refuses them itself) and the life of the proxy once constructed (start, print, signal, close).
 */
import type { Writable } from 'node:stream';
import { untilSignal, UsageError } from './common.ts';
import { FRONT_OPTIONS } from './front-flags.ts';
import { urlOf } from './options.ts';
import type { Logger } from '../log.ts';
import type { Oracle } from '../oracle/oracle.ts';
import type { ListenAddress } from '../proxy/proxy-server.ts';

export const PROXY_OPTIONS = {
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
  'ipfs-timeout': { type: 'string' },
  ...FRONT_OPTIONS,
} as const;

/** `--variant-header HOST=NAME[,NAME…]` (repeatable) → per-host extra variant headers. */
export function variantRulesOf(values: string[]): { variantRules?: Record<string, string[]> } {
  if (values.length === 0) return {};
  const rules: Record<string, string[]> = {};
  for (const v of values) {
    const m = /^([A-Za-z0-9.\-:[\]]+)=([A-Za-z0-9!#$%&'*+.^_`|~,-]+)$/.exec(v);
    if (m === null) throw new UsageError(`--variant-header expects HOST=HEADER[,HEADER…], got ${JSON.stringify(v)}`);
    rules[m[1]!.toLowerCase()] = [...(rules[m[1]!.toLowerCase()] ?? []), ...m[2]!.split(',').filter((h) => h !== '').map((h) => h.toLowerCase())];
  }
  return { variantRules: rules };
}

/** --admin-token, else $FETCH_ORACLE_ADMIN_TOKEN; empty means none. */
export function adminTokenOf(flag: string | undefined): { adminToken?: string } {
  const adminToken = flag ?? process.env['FETCH_ORACLE_ADMIN_TOKEN'];
  return adminToken === undefined || adminToken === '' ? {} : { adminToken };
}

/** What the start-up log line says about a proxy (not its OracleInit, whose shape is the oracle's business). */
export interface ProxyDescription {
  label: 'recording' | 'replay';
  listen: ListenAddress | { path: string };
  dataDir: string;
  netlockPath: string | undefined;
}

/** Starts the proxy, prints `listening …` (and `admin …`), and closes it on the first SIGINT/SIGTERM. */
export async function serveUntilSignal(oracle: Oracle, proxy: ProxyDescription, logger: Logger, out: Writable): Promise<void> {
  // Signal handlers go in before anything is printed: a script that waits for `listening` and then
  // sends SIGTERM must never find the default handler still in place.
  const stopped = untilSignal(logger);
  await oracle.start();
  const where = 'path' in proxy.listen ? `unix:${proxy.listen.path}` : urlOf(oracle.proxyAddress());
  const adminAddress = oracle.adminAddress();
  logger.info('%s proxy on %s (data %s%s)', proxy.label, where, proxy.dataDir, proxy.netlockPath === undefined ? '' : `, netlock ${proxy.netlockPath}`);
  logger.info('CA certificate: %s', oracle.caCertPath);
  out.write(`listening ${where}\n`);
  if (adminAddress !== undefined) out.write(`admin ${urlOf(adminAddress)}\n`);
  await stopped;
  await oracle.close();
}

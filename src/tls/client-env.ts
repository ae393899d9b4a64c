import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Debian's system bundle: on these machines egress may be TLS-intercepted by a CA that only it holds. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * CA variables that common clients obey (tested per client in docs/clients.md). Each points at one
 * combined bundle (system + oracle CA): replacing the system bundle would break a client's direct
 * connections, and some of these variables override config files.
 */
export const CA_VARIABLES = [
  'SSL_CERT_FILE', // OpenSSL-based tools, Go, Python ssl, curl without CURL_CA_BUNDLE
  'CURL_CA_BUNDLE', // curl (wins over SSL_CERT_FILE)
  'NODE_EXTRA_CA_CERTS', // Node (added to its roots)
  'npm_config_cafile', // npm: its global npmrc may set cafile, which NODE_EXTRA_CA_CERTS cannot override
  'REQUESTS_CA_BUNDLE', // requests, pip
  'PIP_CERT', // pip
  'GIT_SSL_CAINFO', // git (libcurl-gnutls ignores SSL_CERT_FILE)
  'CARGO_HTTP_CAINFO', // cargo
  'AWS_CA_BUNDLE',
  'HTTPLIB2_CA_CERTS',
  'NIX_SSL_CERT_FILE',
  'GRPC_DEFAULT_SSL_ROOTS_FILE_PATH',
] as const;

export interface ClientEnvInit {
  /** `http://host:port` of the proxy. */
  proxyUrl: string;
  bundlePath: string;
  /** Hosts that bypass the proxy. @default '' (nothing: whatever bypasses the proxy is not recorded and fails in replay) */
  noProxy?: string;
}

/** The variables that point a build at the oracle, in a stable order. */
export function clientEnvironment(init: ClientEnvInit): Array<[string, string]> {
  const noProxy = init.noProxy ?? '';
  return [
    ['HTTP_PROXY', init.proxyUrl],
    ['HTTPS_PROXY', init.proxyUrl],
    ['http_proxy', init.proxyUrl],
    ['https_proxy', init.proxyUrl],
    ['NO_PROXY', noProxy],
    ['no_proxy', noProxy],
    ...CA_VARIABLES.map((v): [string, string] => [v, init.bundlePath]),
  ];
}

/** Quotes for POSIX shells. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function exportLines(vars: ReadonlyArray<readonly [string, string]>): string {
  return vars.map(([n, v]) => `export ${n}=${shellQuote(v)}\n`).join('');
}

/** Writes system bundle + oracle CA to `out` atomically (mode 0644: certificates are public). */
export async function writeCombinedBundle(caPem: string, out: string, systemBundle = SYSTEM_CA_BUNDLE): Promise<void> {
  const system = existsSync(systemBundle) ? readFileSync(systemBundle, 'utf8') : '';
  await mkdir(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  await writeFile(tmp, `${system}${system.endsWith('\n') || system === '' ? '' : '\n'}# fetch-oracle CA\n${caPem.trim()}\n`);
  await chmod(tmp, 0o644);
  await rename(tmp, out);
}

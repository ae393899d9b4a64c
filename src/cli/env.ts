/** `fetch-oracle env`: the shell exports that point clients at the proxy and make them trust its CA. */
import { join, resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { UsageError } from './common.ts';
import { DEFAULT_LISTEN, parseListen, parseOptions, str, urlOf } from './options.ts';
import { CertAuthority } from '../tls/cert-authority.ts';
import { clientEnvironment, exportLines, writeCombinedBundle } from '../tls/client-env.ts';

export const ENV_HELP = `Usage: fetch-oracle env [--listen HOST:PORT] [--data DIR] [--no-proxy LIST]

Prints export lines for HTTP_PROXY, HTTPS_PROXY (and lower-case forms), NO_PROXY and the CA variables common
clients obey, each pointing at one combined system + oracle CA bundle written to DIR/ca-bundle.pem.
Use: eval "$(fetch-oracle env --listen 127.0.0.1:8899)"

Options:
  --listen HOST:PORT     the proxy's address (default ${DEFAULT_LISTEN})
  --data DIR             data directory (default as for record)
  --no-proxy LIST        value for NO_PROXY (default empty: a request that bypasses the proxy is not recorded)
  -h, --help             show this help
`;

export const envCommand: Command = {
  help: ENV_HELP,
  run: runEnv,
};

export async function runEnv(args: string[], context: CommandContext): Promise<number> {
  const { values } = parseOptions(args, { listen: { type: 'string' }, 'no-proxy': { type: 'string' } }, ENV_HELP);
  if (values['help'] === true) {
    context.stdout.write(ENV_HELP);
    return 0;
  }
  const dataDir = resolve(str(values['data']) ?? context.defaultDataDir);
  const listen = parseListen(str(values['listen']) ?? DEFAULT_LISTEN);
  if ('path' in listen) throw new UsageError('env needs --listen HOST:PORT: clients reach a proxy by TCP address');
  const ca = await CertAuthority.loadOrCreate({ dir: join(dataDir, 'ca') });
  const bundlePath = join(dataDir, 'ca-bundle.pem');
  await writeCombinedBundle(ca.certPem, bundlePath);
  const noProxy = str(values['no-proxy']);
  context.stdout.write(exportLines(clientEnvironment({ proxyUrl: urlOf(listen), bundlePath, ...(noProxy === undefined ? {} : { noProxy }) })));
  return 0;
}

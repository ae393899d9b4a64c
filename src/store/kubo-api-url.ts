import { InvalidConfigError } from '../errors.ts';

/** `http://host:port` from a URL or a `/ip4|ip6|dns/…/tcp/PORT` multiaddr; InvalidConfigError otherwise. */
export function kuboApiUrl(text: string): string {
  const m = /^\/(ip4|ip6|dns|dns4|dns6)\/([^/]+)\/tcp\/(\d{1,5})(\/http)?\/?$/.exec(text.trim());
  if (m !== null) return `http://${m[1] === 'ip6' ? `[${m[2]}]` : m[2]}:${m[3]}`;
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new InvalidConfigError(`Invalid Kubo API address ${JSON.stringify(text)} (expected http://HOST:PORT or /ip4/HOST/tcp/PORT)`);
  }
  if (url.protocol !== 'http:') throw new InvalidConfigError(`Kubo API address ${JSON.stringify(text)} must be http:// (Kubo's RPC API speaks plain HTTP)`);
  return `${url.protocol}//${url.host}`;
}

/**
 * Upstream connections through an HTTP CONNECT proxy, with TLS ending HERE (enclave mode, design §8).
 *
 * Inside a Nitro Enclave the only way out is vsock to the parent instance, which runs a CONNECT proxy
 * (src/enclave/parent-proxy.ts). This connector asks that proxy for a byte tunnel to `host:port` and then
 * runs TLS to the origin inside the tunnel, verifying the origin's certificate against the image's CA
 * bundle: the parent relays ciphertext only, so it can refuse or break a connection but can neither read
 * nor alter an answer without a certificate for the name (a tampered byte fails the TLS record MAC).
 * Plain-http origins go through the same tunnel (and are, of course, not protected).
 */
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { buildConnector } from 'undici';

/** Where the CONNECT proxy listens: TCP (`127.0.0.1:3128`, the in-enclave end of the vsock bridge) or a unix socket. */
export type ProxyAddress = { host: string; port: number } | { path: string };

/** Longest CONNECT response head accepted from the proxy. */
export const MAX_CONNECT_RESPONSE_BYTES = 16 * 1024;
/** Time allowed for the proxy to open the tunnel and for the TLS handshake. */
export const TUNNEL_CONNECT_TIMEOUT_MS = 30_000;

export interface TunnelConnectorInit {
  proxy: ProxyAddress;
  /** CA certificates (PEM) the origin's certificate must chain to. */
  ca: readonly string[];
}

/** An error as undici reports connect failures: `code` says what failed (reasonOf() picks it up). */
function tunnelError(code: string, message: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

export function describeProxy(proxy: ProxyAddress): string {
  return 'path' in proxy ? `unix:${proxy.path}` : `${proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;
}

/**
 * Reads the proxy's response head; resolves with any bytes after it (none is expected: the origin speaks
 * only after our ClientHello, and a plain-http origin only after our request). Read by hand: only the
 * status line counts, and the socket must come back untouched for TLS (undici's connector contract).
 */
function readConnectResponse(socket: Socket, target: string, proxy: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.byteLength > MAX_CONNECT_RESPONSE_BYTES) {
          cleanup();
          reject(tunnelError('UND_ERR_CONNECT', `CONNECT proxy ${proxy} sent a response head over ${MAX_CONNECT_RESPONSE_BYTES} bytes for ${target}`));
        }
        return;
      }
      cleanup();
      socket.pause();
      const statusLine = buffered.subarray(0, buffered.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (m === null) return reject(tunnelError('UND_ERR_CONNECT', `CONNECT proxy ${proxy} sent a malformed status line ${JSON.stringify(statusLine.slice(0, 120))} for ${target}`));
      if (m[1] !== '200') {
        return reject(tunnelError('ORACLE_TUNNEL_REFUSED', `CONNECT proxy ${proxy} refused ${target}: ${m[1]} ${m[2] ?? ''}`.trim()));
      }
      resolve(buffered.subarray(end + 4));
    };
    const onEnd = (): void => {
      cleanup();
      reject(tunnelError('ECONNRESET', `CONNECT proxy ${proxy} closed the connection before answering CONNECT ${target}`));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(tunnelError((err as { code?: string }).code ?? 'UND_ERR_CONNECT', `CONNECT proxy ${proxy}: ${err.message}`, err));
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onError);
  });
}

/** An undici `connect` function that opens every origin connection as a CONNECT tunnel through `proxy`. */
export function tunnelConnector(init: TunnelConnectorInit): buildConnector.connector {
  const proxyName = describeProxy(init.proxy);
  const ca = [...init.ca];
  return (options, callback) => {
    const https = options.protocol === 'https:';
    const port = Number(options.port) || (https ? 443 : 80);
    const hostname = options.hostname.replace(/^\[|\]$/g, '');
    const target = `${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`;
    let settled = false;
    const finish = (err: Error | null, socket?: Socket): void => {
      if (settled) return;
      settled = true;
      if (err !== null) callback(err, null);
      else callback(null, socket!);
    };
    const raw = 'path' in init.proxy ? netConnect(init.proxy.path) : netConnect(init.proxy.port, init.proxy.host);
    raw.setTimeout(TUNNEL_CONNECT_TIMEOUT_MS, () => raw.destroy(tunnelError('UND_ERR_CONNECT_TIMEOUT', `Tunnel to ${target} through ${proxyName} not open after ${TUNNEL_CONNECT_TIMEOUT_MS} ms`)));
    raw.once('error', (err) => finish(err));
    raw.once('connect', () => {
      raw.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      readConnectResponse(raw, target, proxyName).then(
        (rest) => {
          if (rest.byteLength > 0) raw.unshift(rest);
          if (!https) {
            raw.setTimeout(0);
            raw.resume();
            return finish(null, raw);
          }
          // TLS to the origin inside the tunnel. The identity check uses `host` (servername is only SNI,
          // which must not be an IP literal).
          const tls = tlsConnect({
            socket: raw,
            host: hostname,
            ...(isIP(hostname) === 0 ? { servername: options.servername ?? hostname } : {}),
            ca,
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: true,
          });
          tls.once('secureConnect', () => {
            raw.setTimeout(0);
            finish(null, tls);
          });
          tls.once('error', (err: Error) => {
            raw.destroy();
            finish(err);
          });
        },
        (err: Error) => {
          raw.destroy();
          finish(err);
        },
      );
    });
  };
}

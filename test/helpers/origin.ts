import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** A real origin on 127.0.0.1 (HTTP, or HTTPS with a test CA's leaf) that counts requests per path. */
export interface Origin {
  url: string;
  hits: Map<string, number>;
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  /** Routes an exact path (query ignored), or every unrouted path with `*`. */
  route(path: string, handler: Route): void;
  close(): Promise<void>;
}

export async function startOrigin(tls?: { certPem: string; keyPem: string }): Promise<Origin> {
  const routes = new Map<string, Route>();
  const hits = new Map<string, number>();
  const requests: Origin['requests'] = [];
  const sockets = new Set<Socket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    requests.push({ method: req.method ?? 'GET', url: path, headers: req.headers });
    const route = routes.get(path) ?? routes.get(path.split('?')[0] ?? path) ?? routes.get('*');
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no route ${path}\n`);
      return;
    }
    Promise.resolve(route(req, res)).catch((err: unknown) => res.destroy(err as Error));
  };
  const server: Server = tls === undefined ? createHttpServer(onRequest) : createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    hits,
    requests,
    route: (path, handler) => routes.set(path, handler),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Deterministic pseudo-random bytes (xorshift32), generated chunk by chunk. */
export function* pseudoRandomChunks(total: number, seed = 1, chunk = 256 * 1024): Generator<Buffer> {
  let x = seed >>> 0 || 1;
  for (let off = 0; off < total; off += chunk) {
    const n = Math.min(chunk, total - off);
    const buf = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      buf[i] = x & 0xff;
    }
    yield buf;
  }
}

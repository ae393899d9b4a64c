// A plain pass-through forward proxy (absolute-form HTTP only, no store, no hashing): the baseline
// the record-overhead target is measured against. Prints `listening http://…` like fetch-oracle.
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '');
  const up = request({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: req.method, headers: req.headers }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    upRes.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

// Issue #15: keep-alive load through a forward proxy, over HTTP (absolute-form requests, as wrk sends in
// bench/anchors) or HTTPS (a CONNECT tunnel per connection, TLS through it, as a build's HTTPS_PROXY client
// does), which wrk cannot do. Raw sockets and a minimal response reader, so that one core of load generator
// outruns the proxy under test. Prints one JSON line: requests/s, MB/s, p50/p99 latency, errors.
// Usage: node bin/run-ts.js bench/proxy-load.ts --proxy 127.0.0.1:8899 --url https://host/path [--ca FILE]
//        [--connections 64] [--seconds 10] [--sha256 HEX]
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    proxy: { type: 'string' },
    url: { type: 'string' },
    ca: { type: 'string' },
    connections: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '10' },
    sha256: { type: 'string' },
  },
});
if (values.proxy === undefined || values.url === undefined) throw new Error('usage: proxy-load.ts --proxy HOST:PORT --url URL [--ca FILE] [--connections N] [--seconds S] [--sha256 HEX]');
const [proxyHost, proxyPort] = values.proxy.split(':') as [string, string];
const url = new URL(values.url);
const https = url.protocol === 'https:';
const ca = values.ca === undefined ? undefined : readFileSync(values.ca);
const CONNS = Number(values.connections);
const SECONDS = Number(values.seconds);
const port = url.port === '' ? (https ? 443 : 80) : url.port;
const request = Buffer.from(`GET ${https ? `${url.pathname}${url.search}` : url.href} HTTP/1.1\r\nhost: ${url.host}\r\naccept: */*\r\nuser-agent: proxy-load\r\n\r\n`);

const latencies: number[] = [];
let bytes = 0;
let errors = 0;
let checked = false;
let stopping = false;

function tunnel(): Promise<Socket | TLSSocket> {
  return new Promise((resolve, reject) => {
    const raw = connect(Number(proxyPort), proxyHost);
    raw.setNoDelay(true);
    raw.once('error', reject);
    if (!https) {
      raw.once('connect', () => resolve(raw));
      return;
    }
    raw.once('connect', () => raw.write(`CONNECT ${url.hostname}:${port} HTTP/1.1\r\nhost: ${url.hostname}:${port}\r\n\r\n`));
    let head: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      raw.off('data', onData);
      if (!/^HTTP\/1\.[01] 200/.test(head.toString('latin1', 0, 12))) {
        reject(new Error(`CONNECT refused: ${head.toString('latin1', 0, end)}`));
        return;
      }
      const tls = tlsConnect({ socket: raw, servername: url.hostname, ...(ca === undefined ? {} : { ca }) });
      tls.once('secureConnect', () => resolve(tls));
      tls.once('error', reject);
    };
    raw.on('data', onData);
  });
}

/** One connection (already through the proxy): a request, its whole answer, the next one, until the time is up. */
function worker(socket: Socket | TLSSocket): Promise<void> {
  return new Promise<void>((done) => {
    let buf: Buffer = Buffer.alloc(0);
    let need = -1; // total bytes of the answer being read, once its head is in
    let headLen = 0;
    let started = 0;
    const send = (): void => {
      if (stopping) {
        socket.destroy();
        done();
        return;
      }
      started = performance.now();
      socket.write(request);
    };
    socket.on('data', (d: Buffer) => {
      buf = buf.byteLength === 0 ? d : Buffer.concat([buf, d]);
      for (;;) {
        if (need < 0) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.toString('latin1', 0, end);
          const status = Number(head.slice(9, 12));
          const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          if (status !== 200 || len === null) {
            errors++;
            socket.destroy();
            done();
            return;
          }
          headLen = end + 4;
          need = headLen + Number(len[1]);
        }
        if (buf.byteLength < need) return;
        latencies.push(performance.now() - started);
        bytes += need - headLen;
        if (!checked && values.sha256 !== undefined) {
          checked = true;
          const got = createHash('sha256').update(buf.subarray(headLen, need)).digest('hex');
          if (got !== values.sha256) throw new Error(`body sha256 ${got}, expected ${values.sha256}`);
        }
        buf = buf.subarray(need);
        need = -1;
        send();
      }
    });
    socket.on('error', () => {
      errors++;
      done();
    });
    socket.on('close', () => done());
    send();
  });
}

// Connections (and TLS handshakes) first: the clock measures requests only.
const sockets = await Promise.all(Array.from({ length: CONNS }, () => tunnel()));
const t0 = performance.now();
setTimeout(() => (stopping = true), SECONDS * 1000);
await Promise.all(sockets.map((s) => worker(s)));
const seconds = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
process.stdout.write(
  `${JSON.stringify({ url: url.href, scheme: url.protocol.slice(0, -1), connections: CONNS, requests: latencies.length, seconds: Number(seconds.toFixed(2)), rps: Math.round(latencies.length / seconds), mbps: Math.round(bytes / 1e6 / seconds), p50_ms: Number(pct(50).toFixed(2)), p99_ms: Number(pct(99).toFixed(2)), errors })}\n`,
);

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { markOutcome } from '../../src/proxy/exchange.ts';
import { RequestLog } from '../../src/report/request-log.ts';
import { tempDir } from '../helpers/run.ts';

const servers: Array<ReturnType<typeof createServer>> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A real HTTP server whose every request goes through `log.observe`, logged as the URL in its `x-url` header. */
async function serve(log: RequestLog): Promise<(url: string) => Promise<number>> {
  const handler = log.observe({
    handle: (req, res) => {
      const url = req.headers['x-url'] as string;
      if (url.endsWith('/moved')) {
        markOutcome(res, 'hit');
        res.setHeader('location', 'https://example.test/there');
        res.setHeader('content-type', 'text/plain');
        res.writeHead(302).end('moved');
      } else if (url.endsWith('/missing')) {
        markOutcome(res, 'miss');
        res.setHeader('content-type', 'text/plain');
        res.writeHead(504).end('not in the netlock');
      } else {
        markOutcome(res, 'recorded');
        res.setHeader('content-type', 'application/octet-stream');
        res.writeHead(200);
        res.write(Buffer.alloc(1000));
        res.end(Buffer.alloc(24));
      }
      return Promise.resolve();
    },
  });
  const server = createServer((req, res) => void handler.handle(req, res, req.headers['x-url'] as string));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return async (url) => {
    const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { 'x-url': url }, redirect: 'manual' });
    await res.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 5)); // the event is logged when the response closes
    return res.status;
  };
}

let dir: { path: string; remove(): Promise<void> } | undefined;
afterEach(async () => {
  await dir?.remove();
  dir = undefined;
});

describe.each([
  { held: 'as one flat string per request', spill: false },
  { held: 'in scratch files', spill: true },
])('RequestLog: the live page timeline, held $held (issue #15)', ({ spill }) => {
  const newLog = async (capacity?: number): Promise<RequestLog> => {
    dir = spill ? await tempDir('fo-request-log-') : undefined;
    return new RequestLog({ ...(capacity === undefined ? {} : { capacity }), ...(dir === undefined ? {} : { spillDir: dir.path }) });
  };

  it('gives each request in order with what was sent, its URL without credentials, and the ones after a number', async () => {
    const log = await newLog();
    const get = await serve(log);
    await get('http://user:secret@example.test/a?token=hidden&v=1');
    await get('https://example.test/moved');
    await get('https://example.test/missing');
    const all = log.snapshot();
    expect(all.dropped).toBe(0);
    expect(all.counts).toEqual({ hit: 1, miss: 1, recorded: 1, error: 0 });
    expect(all.events.map((e) => [e.i, e.m, e.s, e.z, e.c, e.o])).toEqual([
      [0, 'GET', 200, 1024, 'application/octet-stream', 'recorded'],
      [1, 'GET', 302, 5, 'text/plain', 'hit'],
      [2, 'GET', 504, 18, 'text/plain', 'miss'],
    ]);
    expect(all.events[0]!.u).not.toMatch(/secret|user|hidden/);
    expect(all.events[0]!.u).toContain('example.test/a');
    expect(all.events[1]!.l).toBe('https://example.test/there');
    expect('l' in all.events[0]!).toBe(false);
    expect(all.events.every((e) => e.t >= 0 && e.d >= 0)).toBe(true);
    expect(log.snapshot(0).events.map((e) => e.i)).toEqual([1, 2]);
    expect(log.snapshot(2).events).toEqual([]);
    expect(log.snapshot(-5).events).toHaveLength(3);
    log.close();
  });

  it('keeps the newest events within its capacity, counting the dropped ones and every outcome', async () => {
    const log = await newLog(10);
    const get = await serve(log);
    for (let n = 0; n < 25; n++) await get(`https://example.test/f${n}`);
    const snap = log.snapshot();
    expect(log.size).toBe(25);
    expect(snap.dropped).toBe(15);
    expect(snap.events.map((e) => e.i)).toEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    expect(snap.events.map((e) => e.u)).toEqual(Array.from({ length: 10 }, (_, n) => `https://example.test/f${n + 15}`));
    expect(snap.counts.recorded).toBe(25);
    expect(log.snapshot(3).events).toHaveLength(10); // numbered before the window: every event kept
    expect(log.snapshot(22).events.map((e) => e.i)).toEqual([23, 24]);
    const paged = log.pages(undefined, 3);
    expect(paged.dropped).toBe(15);
    const pages = [...paged.pages];
    expect(pages.map((p) => p.length)).toEqual([3, 3, 3, 1]);
    expect(pages.flat()).toEqual(snap.events);
    log.close();
  });
});

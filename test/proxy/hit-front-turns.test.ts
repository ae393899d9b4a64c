/**
 * Issue #15: the replay front writes the first looked-up answer of a turn of the event loop at once and holds
 * the others of that turn until its check phase, so that a client sleeping on another CPU is woken once for
 * them, not once each (`turn-writes.ts`); answers at once are never held. Holding must never reorder, lose or
 * delay an answer past that turn: not before a hand-off to Node's server, not before a half-close's end, not for
 * a connection closed meanwhile.
 */
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HitFront } from '../../src/proxy/hit-front.ts';
import type { AtOnceAnswer, HitFrontInit } from '../../src/proxy/hit-front.ts';
import { BodyBuffers } from '../../src/proxy/leaf-buffers.ts';

const request = (path: string, fields = ''): Buffer => Buffer.from(`GET http://example.test${path} HTTP/1.1\r\nHost: example.test\r\n${fields}\r\n`, 'latin1');
const answerFor = (path: string): string => `HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`;

interface Pair {
  /** The proxy's side, read by the front. */
  server: Socket;
  /** The client's side, and everything it received once it saw the end. */
  client: Socket;
  ended: Promise<string>;
}

describe('answers held until the end of a turn of the event loop', () => {
  let listener: Server | undefined;
  /** What the front did, in order: `write <connection> <body>`, `hand-off <connection> <path>`. */
  let events: () => string[] = () => [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    events = () => [];
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise<void>((resolve) => (listener === undefined ? resolve() : listener.close(() => resolve())));
    listener = undefined;
  });

  /**
   * `n` loopback connections, and a front answering `/x` with `x` once looked up (`/now…` at once; lent memory for
   * `/lent`), leaving `/node` to "Node's server".
   */
  async function setUp(n: number, lent: Uint8Array[] = []): Promise<Pair[]> {
    const accepted: Socket[] = [];
    // Node's HTTP server lets a half-closed connection still be written to; so does this one.
    const server = createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
    listener = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const clients = await Promise.all(Array.from({ length: n }, () => new Promise<Socket>((resolve) => {
      const c = createConnection(port, '127.0.0.1', () => resolve(c));
    })));
    while (accepted.length < n) await new Promise((resolve) => setTimeout(resolve, 5));
    // Each proxy-side socket beside its client's.
    accepted.sort((a, b) => clients.findIndex((c) => c.localPort === a.remotePort) - clients.findIndex((c) => c.localPort === b.remotePort));
    sockets.push(...accepted, ...clients);
    const handOff = vi.fn((socket: Socket, _unread: Buffer | undefined) => void socket.end('HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\n\r\n'));
    const init: HitFrontInit = {
      answer: (req): AtOnceAnswer | Promise<AtOnceAnswer> | undefined => {
        const path = new URL(req.url).pathname;
        if (path === '/node') return undefined;
        let bytes: Uint8Array = Buffer.from(answerFor(path), 'latin1');
        if (path === '/lent') {
          const memory = BodyBuffers.take(bytes.byteLength);
          memory.set(bytes);
          lent.push(memory);
          bytes = memory;
        }
        const answer = { bytes, lent: path === '/lent', status: 200, bodyBytes: path.length, contentType: 'text/plain' };
        return path.startsWith('/now') ? answer : Promise.resolve(answer);
      },
      handOff,
      keepAliveTimeoutMs: 5000,
      headerTimeoutMs: 5000,
      headerTimedOut: (socket) => socket.destroy(),
      maxHeadBytes: 16 * 1024,
      maxFields: 100,
      mayTargetSelf: () => false,
      answered: () => {},
    };
    const front = new HitFront(init);
    const writes = accepted.map((s) => vi.spyOn(s, 'write'));
    events = () => {
      const all: Array<[number, string]> = [];
      for (const [i, spy] of writes.entries()) {
        for (const [k, [chunk]] of spy.mock.calls.entries()) all.push([spy.mock.invocationCallOrder[k]!, `write ${i} ${Buffer.from(chunk as Uint8Array).toString('latin1').split('\r\n\r\n')[1]}`]);
      }
      for (const [k, [socket, unread]] of handOff.mock.calls.entries()) {
        all.push([handOff.mock.invocationCallOrder[k]!, `hand-off ${accepted.indexOf(socket)} ${new URL(unread!.toString('latin1').split(' ')[1]!).pathname}`]);
      }
      return all.sort((x, y) => x[0] - y[0]).map(([, e]) => e);
    };
    const pairs = accepted.map((s, i): Pair => {
      front.adopt(s);
      let got = '';
      const client = clients[i]!;
      client.on('data', (c: Buffer) => (got += c.toString('latin1')));
      const ended = new Promise<string>((resolve) => client.on('end', () => resolve(got)));
      return { server: s, client, ended };
    });
    return pairs;
  }

  const turnEnds = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  /** Lets the answers looked up arrive, within this turn. */
  const lookedUp = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };

  it('writes the first looked-up answer of a turn at once and the others of that turn at its end, answers at once at once', async () => {
    const pairs = await setUp(4);
    pairs[0]!.server.emit('data', request('/a0'));
    pairs[1]!.server.emit('data', request('/now1'));
    pairs[2]!.server.emit('data', request('/a2'));
    pairs[3]!.server.emit('data', request('/a3'));
    expect(events()).toEqual(['write 1 /now1']);
    await lookedUp();
    expect(events()).toEqual(['write 1 /now1', 'write 0 /a0']);
    await turnEnds();
    expect(events()).toEqual(['write 1 /now1', 'write 0 /a0', 'write 2 /a2', 'write 3 /a3']);
    // The next turn's first answer is written at once again.
    pairs[2]!.server.emit('data', request('/b2'));
    await lookedUp();
    expect(events().at(-1)).toBe('write 2 /b2');
    for (const p of pairs) p.client.end();
    const got = await Promise.all(pairs.map((p) => p.ended));
    expect(got).toEqual([answerFor('/a0'), answerFor('/now1'), answerFor('/a2') + answerFor('/b2'), answerFor('/a3')]);
  });

  it('keeps the order of pipelined answers, writing the held ones before a hand-off to Node\'s server', async () => {
    const pairs = await setUp(2);
    pairs[0]!.server.emit('data', request('/first'));
    // A looked-up answer held, then one at once: held behind it.
    pairs[1]!.server.emit('data', Buffer.concat([request('/p1'), request('/now2'), request('/node'), request('/p3')]));
    await lookedUp();
    expect(events()).toEqual(['write 0 /first', 'write 1 /p1', 'write 1 /now2', 'hand-off 1 /node']);
    const got = await pairs[1]!.ended;
    expect(got).toBe(answerFor('/p1') + answerFor('/now2') + 'HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\n\r\n');
    pairs[0]!.client.end();
    expect(await pairs[0]!.ended).toBe(answerFor('/first'));
  });

  it('ends a half-closed connection only after its held answers', async () => {
    const pairs = await setUp(2);
    pairs[0]!.server.emit('data', request('/first'));
    pairs[1]!.server.emit('data', request('/held'));
    await lookedUp();
    expect(events()).toEqual(['write 0 /first']);
    pairs[1]!.server.emit('end'); // the client's half-close, seen in the same turn
    expect(events()).toEqual(['write 0 /first', 'write 1 /held']);
    expect(await pairs[1]!.ended).toBe(answerFor('/held'));
    pairs[0]!.client.end();
    await pairs[0]!.ended;
  });

  it('drops the held answers of a connection closed before its turn ends, giving back their lent memory', async () => {
    const lent: Uint8Array[] = [];
    const pairs = await setUp(2, lent);
    pairs[0]!.server.emit('data', request('/first'));
    pairs[1]!.server.emit('data', request('/lent'));
    await lookedUp();
    expect(lent).toHaveLength(1);
    pairs[1]!.server.destroy();
    await turnEnds();
    expect(events()).toEqual(['write 0 /first']);
    // Given back: the next answer of that size is lent the same memory.
    const again = BodyBuffers.take(lent[0]!.byteLength);
    expect(again.buffer).toBe(lent[0]!.buffer);
    BodyBuffers.give(again);
    pairs[0]!.client.end();
    await pairs[0]!.ended;
  });
});

import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DeviceBlockSource } from '../../guest/device-block-source.ts';
import { DeviceRecorder, openDeviceRecord } from '../../guest/device-recorder.ts';
import { BadRequestError, DeviceError, UntrustedKeyError } from '../../src/errors.ts';
import { NOOP_LOGGER } from '../../src/log.ts';
import { encodeRecordRequest, GIO_DOMAIN_RECORD } from '../../src/machine/gio-record-wire.ts';
import { GIO_RESPONSE_OK } from '../../src/machine/gio-responder.ts';
import { MachineRecordSession } from '../../src/machine/record-session.ts';
import { startGioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import type { GioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import { createStats } from '../../src/oracle/stats.ts';
import type { OracleStats } from '../../src/oracle/stats.ts';
import { verifyingSource } from '../../src/protocol/blocks.ts';
import { decodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import { verifyRecordSignature } from '../../src/protocol/signature.ts';
import { readBody } from '../../src/protocol/unixfs.ts';
import type { ReplayAnswer } from '../../src/proxy/replay-handler.ts';
import { ProxyServer } from '../../src/proxy/proxy-server.ts';
import { CertAuthority } from '../../src/tls/cert-authority.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { netlockLines, tempDir } from '../helpers/run.ts';
import { ensureHostSimHelper } from './cmio-helper-process.ts';

const MiB = 1024 * 1024;
let helperPath: string;
beforeAll(async () => {
  helperPath = await ensureHostSimHelper();
});

interface Rig {
  dir: string;
  netlockPath: string;
  session: MachineRecordSession;
  sim: GioSimulator;
  device: DeviceBlockSource;
  recorder: DeviceRecorder;
  stats: OracleStats;
  origin: Origin;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * The whole record path of `machine run --record` minus the emulator: the host's MachineRecordSession behind
 * the GIO simulator (0x25 from its store, 0x26 to its handler), the host-sim cmio helper, and the guest's
 * DeviceRecorder over DeviceBlockSource, against a real origin on 127.0.0.1.
 */
async function rig(): Promise<Rig> {
  const tmp = await tempDir('fo-gio-record-');
  cleanups.push(() => tmp.remove());
  const origin = await startOrigin();
  cleanups.push(() => origin.close());
  const netlockPath = join(tmp.path, 'out', 'netlock.json');
  const session = await MachineRecordSession.open({ dataDir: join(tmp.path, 'data'), netlockPath });
  cleanups.push(() => session.close());
  const sim = await startGioSimulator({ socketPath: join(tmp.path, 'sim.sock'), source: session.store, handlers: new Map([[GIO_DOMAIN_RECORD, session.gio.handle]]) });
  cleanups.push(() => sim.close());
  const device = new DeviceBlockSource({ helperPath, env: { CMIO_SIM_SOCKET: sim.socketPath } });
  cleanups.push(() => device.close());
  const stats = createStats('record');
  const recorder = new DeviceRecorder({ device, source: device, trusted: [session.publicKey], stats, logger: NOOP_LOGGER });
  return { dir: tmp.path, netlockPath, session, sim, device, recorder, stats, origin };
}

function getKey(url: string, method = 'GET'): ReturnType<typeof computeRequestKey> {
  return computeRequestKey({ method, url, headers: { accept: '*/*' } });
}

function hit(answer: ReplayAnswer): FetchRecord {
  if (answer.kind !== 'hit') throw new Error(`expected a hit, got a miss: ${answer.error.message}`);
  return answer.record;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('recording from inside the machine over GIO 0x26 (host-sim cmio helper, SIMULATED device)', () => {
  it('records a GET once upstream, signed and journalled; the body read back by CID over 0x25 is byte-identical', async () => {
    const r = await rig();
    const body = Buffer.concat([...pseudoRandomChunks(3 * MiB + 4321, 7)]);
    r.origin.route('/pkg.tgz', (_q, res) => void res.writeHead(200, { 'content-type': 'application/gzip' }).end(body));
    const url = `${r.origin.url}/pkg.tgz`;
    const key = getKey(url);

    const record = hit(await r.recorder.answer(key, { url, headers: [['accept', '*/*'], ['user-agent', 'curl/8'], ['proxy-authorization', 'Basic eA==']] }));
    expect(record.response.status).toBe(200);
    expect(Buffer.from(record.oracle).equals(Buffer.from(r.session.publicKey))).toBe(true);
    expect(record.request).toMatchObject({ method: 'GET', url: key.url });
    const got = await collect(readBody(record.response.body!, verifyingSource(r.device)));
    expect(got.equals(body)).toBe(true);
    // The request as the client sent it went upstream, minus what the proxy owns.
    expect(r.origin.requests[0]!.headers['user-agent']).toBe('curl/8');
    expect(r.origin.requests[0]!.headers['proxy-authorization']).toBeUndefined();

    // The same request again, and a HEAD of it: answered from the record, the origin is not asked again.
    const again = hit(await r.recorder.answer(key, { url, headers: [['accept', '*/*']] }));
    expect(again).toEqual(record);
    const head = hit(await r.recorder.answer(getKey(url, 'HEAD'), { url, headers: [] }));
    expect(head.request.method).toBe('GET');
    expect(r.origin.hits.get('/pkg.tgz')).toBe(1);
    expect(r.session.gio.counters).toEqual({ recorded: 3, fetched: 1, refused: 0 });
    expect(r.stats).toMatchObject({ hits: 2, misses: 1, upstreamFetches: 1 });
    expect([...r.recorder.recorded]).toEqual([key.id]);

    // The host journalled the signed record before answering, and writes it into the netlock.
    const journal = (await readFile(r.session.journalPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { key: string; record: string; signature: string });
    expect(journal).toHaveLength(1);
    expect(journal[0]!.key).toBe(key.id);
    const signed = { record: CID.parse(journal[0]!.record), signature: new Uint8Array(Buffer.from(journal[0]!.signature, 'base64')) };
    verifyRecordSignature(signed, r.session.publicKey);
    expect(decodeRecord(await r.session.store.get(signed.record))).toEqual(record);
    const file = await r.session.writeNetlock();
    const lines = await netlockLines(r.netlockPath);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'GET', url: key.url, status: 200, size: body.byteLength, body: record.response.body!.toString(), record: journal[0]!.record, signature: journal[0]!.signature });
    expect(JSON.parse(await readFile(r.netlockPath, 'utf8'))).toMatchObject({ netlock: file.netlock, count: 1, oracles: [r.session.publicKeyHex] });
  });

  it('an origin that gives no answer becomes the recorded 502, answered and journalled like any record', async () => {
    const r = await rig();
    const closed = createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((res) => closed.close(() => res()));
    const url = `http://127.0.0.1:${port}/gone`;

    const record = hit(await r.recorder.answer(getKey(url), { url, headers: [] }));
    expect(record.response.status).toBe(502);
    expect(Object.fromEntries(record.response.headers)).toMatchObject({ 'x-oracle-error': 'ORACLE_ERR_UPSTREAM', 'x-fetch-oracle-upstream-failure': 'ECONNREFUSED' });
    const text = (await collect(readBody(record.response.body!, verifyingSource(r.device)))).toString();
    expect(text).toContain('ECONNREFUSED');
    expect(r.session.gio.counters.refused).toBe(0);
    expect((await readFile(r.session.journalPath, 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('a malformed 0x26 id is refused in band with a clear message, and the device keeps serving', async () => {
    const r = await rig();
    r.origin.route('/ok', (_q, res) => void res.end('fine'));
    const refusal = (id: string): Promise<unknown> => r.device.request(GIO_DOMAIN_RECORD, new TextEncoder().encode(id)).catch((e: unknown) => e);

    const garbage = await refusal('{"v":1,"method":"GET"');
    expect(garbage).toBeInstanceOf(DeviceError);
    expect((garbage as Error).message).toMatch(/ORACLE_ERR_DEVICE: Malformed GIO 0x26 record request: not JSON/);
    const relative = await refusal('{"v":1,"method":"GET","url":"/ok","headers":[]}');
    expect(relative).toBeInstanceOf(BadRequestError);
    expect((relative as Error).message).toMatch(/ORACLE_ERR_BAD_REQUEST: Invalid URL/);
    const post = await refusal(`{"v":1,"method":"POST","url":"${r.origin.url}/ok","headers":[],"body":"eA=="}`);
    expect(post).toBeInstanceOf(BadRequestError);
    expect((post as Error).message).toContain('only GET and HEAD are recorded');
    expect(r.session.gio.counters.refused).toBe(3);
    expect(r.sim.stats.errors).toBe(3);

    // The guest refuses a request with a body itself (501), without a round trip.
    const trips = r.device.roundTrips;
    const withBody = computeRequestKey({ method: 'POST', url: `${r.origin.url}/ok`, headers: {}, bodyDigest: 'sha256:00' });
    const refused = await r.recorder.answer(withBody).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ORACLE_ERR_BAD_REQUEST', status: 501 });
    expect(r.device.roundTrips).toBe(trips);

    // Still in frame: a good request goes through (without the client's request, from its key alone).
    const ok = hit(await r.recorder.answer(getKey(`${r.origin.url}/ok`)));
    expect(ok.response.status).toBe(200);
    expect(r.origin.hits.get('/ok')).toBe(1);
  });

  it('the guest refuses a record signed by a key it does not trust', async () => {
    const r = await rig();
    r.origin.route('/x', (_q, res) => void res.end('x'));
    const other = new DeviceRecorder({ device: r.device, source: r.device, trusted: [new Uint8Array(32).fill(9)], stats: createStats('record'), logger: NOOP_LOGGER });
    const err = await other.answer(getKey(`${r.origin.url}/x`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedKeyError);
    expect((err as Error).message).toContain(r.session.publicKeyHex);
  });

  it('serves a client through the guest proxy front: credentials reach the origin, never the record', async () => {
    const r = await rig();
    r.origin.route('/private', (q, res) => {
      const ok = q.headers.authorization === 'Bearer s3cret' && (q.url ?? '').includes('token=abc');
      res.writeHead(ok ? 200 : 401, { 'content-type': 'text/plain' }).end(ok ? 'secret bytes' : 'no');
    });
    const opened = openDeviceRecord({ device: r.device, source: r.device, trusted: [r.session.publicKey], logger: NOOP_LOGGER });
    const tmpCa = await CertAuthority.loadOrCreate({ dir: join(r.dir, 'ca') });
    const proxy = new ProxyServer({ handler: opened.handler, certs: tmpCa, logger: NOOP_LOGGER });
    await proxy.listen({ host: '127.0.0.1', port: 0 });
    onTestFinished(() => proxy.close());
    const target = `${r.origin.url}/private?token=abc`;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.address().port, path: target, headers: { authorization: 'Bearer s3cret', host: new URL(target).host } }, (m) => {
        let body = '';
        m.on('data', (d: Buffer) => (body += d.toString()));
        m.on('end', () => resolve({ status: m.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res).toEqual({ status: 200, body: 'secret bytes' });
    expect(opened.stats).toMatchObject({ requests: 1, misses: 1 });
    const file = await r.session.writeNetlock();
    expect(file.count).toBe(1);
    expect((await netlockLines(r.netlockPath)).map((e) => e.url)).toEqual([`${r.origin.url}/private`]);
    const stored = await readFile(r.netlockPath, 'utf8');
    expect(stored).not.toContain('s3cret');
    expect(stored).not.toContain('token=abc');
  });
});

describe('MachineRecordSession', () => {
  it('takes back what an interrupted run journalled, and keeps the netlock already at its path', async () => {
    const tmp = await tempDir('fo-gio-session-');
    cleanups.push(() => tmp.remove());
    const origin = await startOrigin();
    cleanups.push(() => origin.close());
    origin.route('*', (q, res) => void res.end(`body of ${q.url ?? ''}`));
    const dataDir = join(tmp.path, 'data');
    const netlockPath = join(tmp.path, 'netlock.json');
    const ask = async (session: MachineRecordSession, path: string): Promise<void> => {
      const res = await session.gio.handle(encodeRecordRequest({ method: 'GET', url: `${origin.url}${path}`, headers: [] }));
      expect(res.code).toBe(GIO_RESPONSE_OK);
    };

    // A run that never wrote its netlock (the machine or the host died): only its journal is left.
    const first = await MachineRecordSession.open({ dataDir, netlockPath });
    await ask(first, '/a');
    await first.close();
    await first.close();

    const second = await MachineRecordSession.open({ dataDir, netlockPath });
    await ask(second, '/b');
    const file = await second.writeNetlock();
    await second.close();
    expect(file.count).toBe(2);
    expect((await netlockLines(netlockPath)).map((e) => e.url).sort()).toEqual([`${origin.url}/a`, `${origin.url}/b`]);

    // A later run adds to the netlock at its path; the earlier entries stay, nothing is fetched again.
    const third = await MachineRecordSession.open({ dataDir, netlockPath });
    await ask(third, '/a');
    await ask(third, '/c');
    const grown = await third.writeNetlock();
    await third.close();
    expect(grown.count).toBe(3);
    expect((await netlockLines(netlockPath)).map((e) => e.url).sort()).toEqual([`${origin.url}/a`, `${origin.url}/b`, `${origin.url}/c`]);
    expect(grown.oracles).toEqual([third.publicKeyHex]);
    expect([...origin.hits.values()]).toEqual([1, 1, 1]);
  });
});


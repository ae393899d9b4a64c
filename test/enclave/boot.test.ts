/**
 * Enclave mode end to end WITHOUT Nitro hardware. What is simulated, and nothing else:
 *   - the NSM: enclave/dist/nsm-helper-sim (the helper with its device layer swapped, -DNSM_SIM) talks to the
 *     SIMULATED NSM of ./nsm-simulator.ts, which signs real COSE_Sign1 documents with a test PKI;
 *   - vsock: enclave/boot.sh runs as the image runs it, but its vsock endpoints are unix sockets
 *     (ENCLAVE_INBOUND / ENCLAVE_ADMIN_INBOUND = UNIX-LISTEN, ENCLAVE_OUTBOUND = UNIX-CONNECT), and it runs in a
 *     network namespace with only loopback (unshare -n), so its only way out is the parent's CONNECT proxy;
 *   - the parent's inbound socat (TCP-LISTEN ↔ VSOCK-CONNECT) is a TCP→unix relay in this process.
 * The oracle, key birth, CONNECT tunnel, TLS, parent proxy, netlock, verify and export are the production code.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CarReader } from '@ipld/car';
import { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParentProxy, parseAllowRule } from '../../src/enclave/parent-proxy.ts';
import { decodeRecord, encodeRecord } from '../../src/protocol/record.ts';
import { toHex } from '../../src/protocol/signature.ts';
import { buildNetlockFile, renderNetlockFile } from '../../src/netlock/file.ts';
import type { NetlockFile } from '../../src/netlock/file.ts';
import { parseKeyId } from '../../src/protocol/request-key.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, run } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { ensureNsmHelpers, NSM_HELPER_SIM, ROOT, startSimulatedNsm } from './nsm-simulator.ts';
import type { SimulatedNsm } from './nsm-simulator.ts';

type Tamper = 'handshake' | 'body';

/**
 * A MALICIOUS stretch of the parent: sits between the enclave's outbound bridge and the real parent proxy,
 * passes the CONNECT exchange untouched, then flips one bit of the origin's TLS stream for chosen targets:
 * in the ServerHello (`handshake`) or inside the 20th encrypted record (`body`, well into a 1 MiB body).
 */
/** Every socket a test relay opened, destroyed in afterAll (a net.Server's close waits for its connections). */
const relaySockets = new Set<Socket>();
function tracked(s: Socket): Socket {
  relaySockets.add(s);
  s.once('close', () => relaySockets.delete(s));
  return s;
}

function startTamperingRelay(listenPath: string, parentPath: string, tamperByPort: Map<number, Tamper>): Promise<Server> {
  const server = createServer((client: Socket) => {
    tracked(client);
    const up = tracked(connect(parentPath));
    let mode: Tamper | 'none' | undefined;
    let request = '';
    client.on('data', (d: Buffer) => {
      if (mode === undefined) {
        request += d.toString('latin1');
        const m = /^CONNECT \S+:(\d+) /.exec(request);
        if (m !== null) mode = tamperByPort.get(Number(m[1])) ?? 'none';
      }
      up.write(d);
    });
    let head: Buffer | undefined = Buffer.alloc(0);
    const header: number[] = [];
    let remaining = 0;
    let records = 0;
    let appRecords = 0;
    let pos = 0;
    let flipAt = -1;
    up.on('data', (d: Buffer) => {
      let data = d;
      if (head !== undefined) {
        head = Buffer.concat([head, data]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        client.write(head.subarray(0, end + 4));
        data = head.subarray(end + 4);
        head = undefined;
      }
      if (mode === 'none' || mode === undefined) {
        client.write(data);
        return;
      }
      const out = Buffer.from(data);
      for (let i = 0; i < out.length; i++) {
        if (remaining === 0) {
          header.push(out[i]!);
          if (header.length === 5) {
            remaining = (header[3]! << 8) | header[4]!;
            records++;
            if (header[0] === 0x17) appRecords++;
            pos = 0;
            // ServerHello payload offset 10 = server random byte 4; or 100 bytes into the 20th encrypted record.
            flipAt = mode === 'handshake' && records === 1 ? 10 : mode === 'body' && header[0] === 0x17 && appRecords === 20 ? 100 : -1;
            header.length = 0;
          }
          continue;
        }
        if (pos === flipAt) out[i]! ^= 0x01;
        pos++;
        remaining--;
      }
      client.write(out);
    });
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  });
  return new Promise((resolve) => server.listen(listenPath, () => resolve(server)));
}

/** The parent's inbound socat (TCP-LISTEN ↔ VSOCK-CONNECT), with a unix socket for the vsock end. */
function startInboundBridge(unixPath: string): Promise<{ server: Server; port: number }> {
  const server = createServer((client: Socket) => {
    tracked(client);
    const up = tracked(connect(unixPath));
    client.pipe(up);
    up.pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

function getOverUnix(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path, headers: { host: 'enclave' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(what: string, check: () => boolean, child: ChildProcess, stderr: () => string): Promise<void> {
  while (!check()) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`enclave boot exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('enclave mode: boot.sh with a simulated NSM, unix sockets instead of vsock, a loopback-only namespace', () => {
  let dir: string;
  let sim: SimulatedNsm;
  let origin: Origin;
  let hsOrigin: Origin;
  let bodyOrigin: Origin;
  let forbidden: Origin;
  let parent: ParentProxy;
  let relay: Server;
  let inbound: { server: Server; port: number };
  let enclave: ChildProcess;
  let exited: Promise<number | null>;
  let stdout = '';
  let stderr = '';
  let caPath: string;
  let oracleKey: string;
  let attestationCid: string;
  const bigBody = Buffer.concat([...pseudoRandomChunks(1024 * 1024, 5)]);
  const parentLog: string[] = [];

  const dataDir = (): string => join(dir, 'enclave-data');
  const netlockPath = (): string => join(dir, 'build.netlock.json');
  const curl = (url: string, extra: string[] = []): ReturnType<typeof run> =>
    run('curl', ['-sS', '--max-time', '60', '--proxy', `http://127.0.0.1:${inbound.port}`, '--cacert', caPath, ...extra, url]);

  beforeAll(async () => {
    await ensureNsmHelpers();
    dir = await mkdtemp(join(tmpdir(), 'fo-enclave-'));
    sim = await startSimulatedNsm(join(dir, 'nsm.sock'));
    await sim.writeRootPem(join(dir, 'test-root.pem'));
    const ca = await createTestCa();
    await writeFile(join(dir, 'origin-ca.pem'), ca.caPem);
    const leaf = await ca.leafFor(['localhost', '127.0.0.1']);
    origin = await startOrigin(leaf);
    origin.route('/hello', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello from the origin, through the parent, TLS ending in the enclave\n');
    });
    hsOrigin = await startOrigin(leaf);
    hsOrigin.route('/hs', (_req, res) => {
      res.end('never seen\n');
    });
    bodyOrigin = await startOrigin(leaf);
    bodyOrigin.route('/big', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bigBody.byteLength) });
      res.end(bigBody);
    });
    forbidden = await startOrigin(leaf);
    forbidden.route('/secret', (_req, res) => {
      res.end('not for enclaves\n');
    });
    const port = (o: Origin): number => Number(new URL(o.url).port);
    parent = new ParentProxy({
      allow: [origin, hsOrigin, bodyOrigin].map((o) => parseAllowRule(`127.0.0.1:${port(o)}`)),
      logger: { info: () => {}, debug: () => {}, error: () => {}, warn: (m: string, ...a: unknown[]) => parentLog.push(`${m} ${a.join(' ')}`), child() { return this; } },
    });
    await parent.listen({ path: join(dir, 'parent.sock') });
    relay = await startTamperingRelay(join(dir, 'relay.sock'), join(dir, 'parent.sock'), new Map<number, Tamper>([[port(hsOrigin), 'handshake'], [port(bodyOrigin), 'body']]));
    inbound = await startInboundBridge(join(dir, 'in.sock'));

    enclave = spawn('unshare', ['-n', 'sh', join(ROOT, 'enclave', 'boot.sh')], {
      detached: true, // its own process group: the socat bridges are ended with it
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: dir,
        ENCLAVE_INBOUND: `UNIX-LISTEN:${join(dir, 'in.sock')},fork`,
        ENCLAVE_ADMIN_INBOUND: `UNIX-LISTEN:${join(dir, 'admin.sock')},fork`,
        ENCLAVE_OUTBOUND: `UNIX-CONNECT:${join(dir, 'relay.sock')}`,
        ORACLE_DATA: dataDir(),
        ORACLE_CMD: `${process.execPath} ${join(ROOT, 'bin', 'fetch-oracle.js')}`,
        NSM_HELPER: NSM_HELPER_SIM,
        NSM_SIM_SOCKET: sim.socketPath,
        ORACLE_ARGS: `--netlock ${netlockPath()} --upstream-ca ${join(dir, 'origin-ca.pem')} --no-rng-check`,
      },
    });
    exited = new Promise((r) => enclave.once('exit', (code) => r(code)));
    enclave.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    enclave.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor('listening', () => /^listening /m.test(stdout) && existsSync(join(dir, 'in.sock')) && existsSync(join(dir, 'admin.sock')), enclave, () => stderr);
    oracleKey = /^oracle ([0-9a-f]{64})$/m.exec(stdout)![1]!;
    attestationCid = /^attestation (\S+)$/m.exec(stdout)![1]!;
    const caPem = await getOverUnix(join(dir, 'admin.sock'), '/ca.pem');
    expect(caPem.status).toBe(200);
    caPath = join(dir, 'enclave-ca.pem');
    await writeFile(caPath, caPem.body);
  });

  afterAll(async () => {
    if (enclave !== undefined && enclave.exitCode === null) enclave.kill('SIGKILL');
    if (enclave?.pid !== undefined) {
      try {
        process.kill(-enclave.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    }
    await parent?.close();
    for (const s of relaySockets) s.destroy();
    await Promise.all([relay, inbound?.server].map((s) => (s === undefined ? Promise.resolve() : new Promise<void>((r) => s.close(() => r())))));
    await Promise.all([origin, hsOrigin, bodyOrigin, forbidden].map((o) => o?.close()));
    await sim?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('births the key from the simulated NSM and records through the parent CONNECT proxy', async () => {
    // One GetRandom, then one attestation binding the printed key.
    expect(sim.requests.map((r) => r.kind)).toEqual(['GetRandom', 'Attestation']);
    expect(toHex(sim.requests[1]!.publicKey!)).toBe(oracleKey);
    const first = await curl(`${origin.url}/hello`);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe('hello from the origin, through the parent, TLS ending in the enclave\n');
    expect(parent.counts.tunnels).toBeGreaterThanOrEqual(1);
    const again = await curl(`${origin.url}/hello`);
    expect(again.stdout).toBe(first.stdout);
    expect(origin.hits.get('/hello')).toBe(1); // the second answer came from the record
  });

  it('refuses a host outside the parent allowlist: the client gets a 502 naming the 403, nothing is recorded', async () => {
    const res = await curl(`${forbidden.url}/secret`, ['-i']);
    expect(res.stdout).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 502 /);
    expect(res.stdout).toMatch(/x-oracle-error: ORACLE_ERR_UPSTREAM/i);
    expect(res.stdout).toMatch(/refused 127\.0\.0\.1:\d+: 403 Forbidden/);
    expect(forbidden.hits.size).toBe(0);
    expect(parentLog.some((l) => /refused CONNECT .*not in the allowlist/.test(l))).toBe(true);
  });

  it('a parent that flips a bit of the ServerHello: TLS fails, 502, the origin never sees the request', async () => {
    const res = await curl(`${hsOrigin.url}/hs`, ['-i']);
    expect(res.stdout).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 502 /);
    expect(res.stdout).toMatch(/x-oracle-error: ORACLE_ERR_UPSTREAM/i);
    expect(hsOrigin.hits.size).toBe(0);
  });

  it('a parent that flips a bit inside the body: the TLS record fails to decrypt, the client gets an explained 502 or a failed transfer', async () => {
    const res = await curl(`${bodyOrigin.url}/big`, ['-o', join(dir, 'big.out'), '-w', '%{http_code}']);
    // Broken within the first MiB, the failure comes before the head (defect 6 of issue 13): a 502 with
    // x-oracle-error; later, the head is out and the transfer is cut. Either way not one wrong byte counts as whole.
    expect(res.code !== 0 || res.stdout.trim() === '502', `curl exit ${res.code}, status ${res.stdout}`).toBe(true);
    expect(bodyOrigin.hits.get('/big')).toBe(1);
    const got = existsSync(join(dir, 'big.out')) ? await readFile(join(dir, 'big.out')) : Buffer.alloc(0);
    expect(got.byteLength).toBeLessThan(bigBody.byteLength);
  });

  describe('after shutdown (SIGTERM writes the netlock)', () => {
    let file: NetlockFile;
    const pcr0 = (): string => toHex(sim.pcrs.get(0)!);
    const root = (): string => join(dir, 'test-root.pem');

    beforeAll(async () => {
      enclave.kill('SIGTERM');
      expect(await exited).toBe(0);
      file = JSON.parse(await readFile(netlockPath(), 'utf8')) as NetlockFile;
    });

    it('holds only the answer that arrived whole, signed by the attested key; the key was never written', async () => {
      expect(file.entries.map((e) => e.url)).toEqual([`${origin.url}/hello`]);
      expect(file.oracles).toEqual([oracleKey]);
      const store = new FsBlockStore(dataDir());
      const record = decodeRecord(await store.get(CID.parse(file.entries[0]!.record)));
      expect(record.attestation?.toString()).toBe(attestationCid);
      expect(readdirSync(dataDir())).not.toContain('oracle-key.json');
    });

    it('verify --attested accepts it with the simulated PCR0 and the test root', async () => {
      const res = await cli(['verify', netlockPath(), '--data', dataDir(), '--attested', '--pcr0', pcr0(), '--attestation-root', root()]);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      expect(res.stdout).toContain(`attested by: ${attestationCid}`);
      expect(res.stdout).toContain('OK: every signature, block and body verified, every key attested');
    });

    it('verify --attested fails with a wrong PCR0, with the default (AWS) root, and without --pcr0', async () => {
      const wrong = await cli(['verify', netlockPath(), '--data', dataDir(), '--attested', '--pcr0', '00'.repeat(47) + '01', '--attestation-root', root()]);
      expect(wrong.code).toBe(1);
      expect(wrong.stdout).toMatch(/FAIL GET https:\/\/127\.0\.0\.1:\d+\/hello: ORACLE_ERR_ATTESTATION_PCR_MISMATCH: Attestation document \S+ of record \S+: PCR0 is/);
      const aws = await cli(['verify', netlockPath(), '--data', dataDir(), '--attested', '--pcr0', pcr0()]);
      expect(aws.code).toBe(1);
      expect(aws.stdout).toContain('ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT');
      const noPcr = await cli(['verify', netlockPath(), '--data', dataDir(), '--attested', '--attestation-root', root()]);
      expect(noPcr.code).toBe(1);
      expect(noPcr.stderr).toMatch(/--attested needs --pcr0/);
    });

    it('verify --attested refuses records signed by keys no document binds', async () => {
      const store = new FsBlockStore(dataDir());
      const original = decodeRecord(await store.get(CID.parse(file.entries[0]!.record)));
      const other = LocalSigner.fromSeed(new Uint8Array(32).fill(11));
      // The same answer re-signed by a host key: once without an attestation, once naming the enclave's document.
      const plain = { ...original, oracle: other.publicKey };
      delete (plain as { attestation?: CID }).attestation;
      const stolen = { ...original, oracle: other.publicKey, request: { ...original.request, url: `${origin.url}/hello?copy` } };
      const entries = [];
      for (const record of [plain, stolen]) {
        const block = await encodeRecord(record);
        await store.put(block.cid, block.bytes);
        const key = `${record.request.url}\nGET\naccept=*/*\nbody=`;
        expect(parseKeyId(key).url).toBe(record.request.url);
        entries.push({ key, signed: await other.sign(block.cid), record });
      }
      const forged = await buildNetlockFile(entries, store);
      await writeFile(join(dir, 'forged.netlock.json'), renderNetlockFile(forged));
      const plainVerify = await cli(['verify', join(dir, 'forged.netlock.json'), '--data', dataDir()]);
      expect(plainVerify.code).toBe(0); // validly signed: only --attested tells them apart
      const res = await cli(['verify', join(dir, 'forged.netlock.json'), '--data', dataDir(), '--attested', '--pcr0', pcr0(), '--attestation-root', root()]);
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(/FAIL GET \S+\/hello: ORACLE_ERR_NOT_ATTESTED: Record \S+ names no attestation document/);
      expect(res.stdout).toMatch(new RegExp(`FAIL GET \\S+/hello\\?copy: ORACLE_ERR_NOT_ATTESTED: Attestation document ${attestationCid} binds public_key ${oracleKey}, not the oracle key ${toHex(other.publicKey)}`));
      expect(res.stdout).toContain('2 failure(s)');
    });

    it('export carries the attestation document; an import elsewhere verifies --attested', async () => {
      const car = join(dir, 'build.car');
      const exported = await cli(['export', '--car', car, netlockPath(), '--data', dataDir()]);
      expect(exported.stderr).toBe('');
      expect(exported.code).toBe(0);
      const reader = await CarReader.fromBytes(await readFile(car));
      const doc = await reader.get(CID.parse(attestationCid));
      expect(Buffer.from(doc!.bytes).equals(Buffer.from(sim.documents[0]!))).toBe(true);
      const elsewhere = join(dir, 'elsewhere');
      const imported = await cli(['import', car, '--data', elsewhere]);
      expect(imported.code).toBe(0);
      await writeFile(join(dir, 'root.txt'), `${file.netlock}\n`); // a bare root CID: nothing from the enclave's data dir
      const res = await cli(['verify', join(dir, 'root.txt'), '--data', elsewhere, '--attested', '--pcr0', pcr0(), '--attestation-root', root()]);
      expect(res.stderr).toBe('');
      expect(res.stdout).toContain('every key attested');
      expect(res.code).toBe(0);
    });
  });
});

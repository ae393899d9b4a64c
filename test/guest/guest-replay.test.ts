import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { startGioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import type { BlockSource } from '../../src/protocol/blocks.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { serveNpmPackages } from '../helpers/npm-registry.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { ROOT, run, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';

const GUEST = join(ROOT, 'guest', 'dist', 'fetch-oracle-guest.mjs');
const HELPER = join(ROOT, 'guest', 'dist', 'cmio-helper-host-sim');
const BIG = 3 * 1024 * 1024 + 11;

/**
 * The guest shim as it runs in the Cartesi Machine — the real bundle, the real cmio helper framing, the real
 * host responder — with only the machine's yield replaced by the SIMULATED device (src/machine/gio-simulator.ts
 * over a unix socket), and real clients inside a loopback-only namespace.
 */
describe('guest shim over the simulated dehashing device', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let data: string;
  let netlock: { root: string; key: string; file: string };
  let registry: string;
  const hostBytes = new Map<string, string>();

  beforeAll(async () => {
    const built = await run('bash', [join(ROOT, 'guest', 'build.sh'), 'host']);
    expect(built.code, built.stderr).toBe(0);
    dir = await tempDir('fo-guest-');
    data = join(dir.path, 'data');
    const ca = await createTestCa();
    origin = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
    registry = origin.url.replace('127.0.0.1', 'localhost');
    origin.route('/big.bin', async (_q, r) => {
      r.writeHead(200, { 'content-length': String(BIG) });
      for (const c of pseudoRandomChunks(BIG, 5)) if (!r.write(c)) await new Promise((d) => r.once('drain', d));
      r.end();
    });
    origin.route('/hello.txt', (_q, r) => {
      r.end('hello from the host\n');
    });
    await serveNpmPackages(origin, join(dir.path, 'pkgs'), [{ name: 'guest-dep', version: '1.2.3' }], registry);
    const file = join(dir.path, 'guest.netlock.json');
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: file, upstreamCaPem: [ca.caPem] });
    for (const p of ['/big.bin', '/hello.txt']) expect((await rec.fetch(`${origin.url}${p}`)).status).toBe(200);
    const project = join(dir.path, 'rec-proj');
    await run('mkdir', ['-p', project]);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', dependencies: { 'guest-dep': '1.2.3' } }));
    const bundle = join(dir.path, 'bundle.pem');
    await writeFile(bundle, rec.caPem);
    const npm = await run('npm', ['install', '--no-audit', '--no-fund', '--cache', join(project, 'c'), '--registry', `${registry}/`], {
      cwd: project,
      env: { PATH: process.env['PATH'] ?? '', HOME: dir.path, HTTPS_PROXY: rec.proxyUrl, npm_config_cafile: bundle, npm_config_noproxy: '' },
    });
    expect(npm.code, npm.stderr).toBe(0);
    const written = await rec.oracle.close();
    await rec.close();
    netlock = { root: written!.netlock, key: written!.oracles[0]!, file };
    // What host replay serves, to compare the guest against byte for byte.
    const host = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: file });
    for (const p of ['/big.bin', '/hello.txt']) hostBytes.set(p, createHash('sha256').update((await host.fetch(`${origin.url}${p}`)).body).digest('hex'));
    await host.close();
  }, 180_000);

  afterAll(async () => {
    await origin.close();
    await dir.remove();
  });

  it('serves curl and npm in a loopback-only namespace byte-identically to host replay, every block by CID', async () => {
    const socketPath = join(dir.path, 'gio.sock');
    const sim = await startGioSimulator({ socketPath, source: new FsBlockStore(data) });
    try {
      const out = join(dir.path, 'guest-out');
      const project = join(dir.path, 'guest-proj');
      await run('mkdir', ['-p', out, project]);
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', dependencies: { 'guest-dep': '1.2.3' } }));
      const script = `
set -u
ip link set lo up
export CMIO_SIM_SOCKET=${socketPath}
node ${GUEST} serve --netlock-root ${netlock.root} --trust ${netlock.key} --ca-dir ${data}/ca --listen 127.0.0.1:8899 --helper ${HELPER} >${out}/guest.out 2>${out}/guest.err &
pid=$!
for i in $(seq 1 100); do grep -q listening ${out}/guest.out 2>/dev/null && break; sleep 0.1; done
eval "$(node ${GUEST} env --ca-dir ${data}/ca --listen 127.0.0.1:8899 --bundle ${out}/bundle.pem)"
echo "direct: $(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' ${origin.url}/hello.txt; echo " rc=$?")"
curl -sS -o ${out}/big.bin ${origin.url}/big.bin; echo "big rc=$?"
curl -sS -o ${out}/hello.txt ${origin.url}/hello.txt; echo "hello rc=$?"
echo "miss: $(curl -s -o /dev/null -w '%{http_code}' ${origin.url}/nope)"
cd ${project} && npm install --no-audit --no-fund --cache ${project}/c --registry ${registry}/ >${out}/npm.out 2>&1; echo "npm rc=$?"
kill -TERM $pid; wait $pid; echo "guest rc=$?"
`;
      const r = await run('unshare', ['-n', 'bash', '-c', script], { env: { PATH: process.env['PATH'] ?? '', HOME: dir.path }, timeoutMs: 150_000 });
      const log = `${r.stdout}\n${r.stderr}\n${await readFile(join(out, 'guest.err'), 'utf8').catch(() => '')}`;
      expect(r.stdout, log).toMatch(/direct: 000 rc=7/);
      expect(r.stdout, log).toContain('big rc=0');
      expect(r.stdout, log).toContain('miss: 504');
      expect(r.stdout, `${log}\n${await readFile(join(out, 'npm.out'), 'utf8')}`).toContain('npm rc=0');
      expect(r.stdout, log).toContain('guest rc=0');
      for (const p of ['/big.bin', '/hello.txt']) {
        expect(createHash('sha256').update(await readFile(join(out, p.slice(1)))).digest('hex'), p).toBe(hostBytes.get(p));
      }
      expect(await readFile(join(project, 'node_modules', 'guest-dep', 'index.js'), 'utf8')).toContain('guest-dep@1.2.3');
      // Every byte came through the device: the big body alone is 4 leaves + a root.
      expect(sim.stats.requests).toBeGreaterThanOrEqual(5);
      expect(sim.stats.bytes).toBeGreaterThan(BIG);
      expect(await readFile(join(out, 'guest.err'), 'utf8')).toMatch(/device: \d+ round trips/);
    } finally {
      await sim.close();
    }
  }, 180_000);

  async function guestOnce(source: BlockSource, trust: string, path: string): Promise<{ curl: Awaited<ReturnType<typeof run>>; err: string }> {
    const socketPath = join(dir.path, `gio-${Math.random().toString(16).slice(2)}.sock`);
    const sim = await startGioSimulator({ socketPath, source });
    const errFile = join(dir.path, `err-${Math.random().toString(16).slice(2)}`);
    try {
      const script = `
CMIO_SIM_SOCKET=${socketPath} node ${GUEST} serve --netlock-root ${netlock.root} --trust ${trust} --ca-dir ${data}/ca --listen 127.0.0.1:0 --helper ${HELPER} >${errFile}.out 2>${errFile} &
pid=$!
for i in $(seq 1 100); do grep -q listening ${errFile}.out 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening http:\\/\\/127.0.0.1://p' ${errFile}.out)
curl -s -i --noproxy '' -x http://127.0.0.1:$port --cacert ${data}/ca/ca-cert.pem ${origin.url}${path}; rc=$?; echo; echo "curl rc=$rc"
kill -TERM $pid; wait $pid`;
      const curl = await run('bash', ['-c', script], { env: { PATH: process.env['PATH'] ?? '', HOME: dir.path } });
      return { curl, err: await readFile(errFile, 'utf8') };
    } finally {
      await sim.close();
    }
  }

  it('refuses a tampered block from the device: a 502 naming it before any byte of the body, wrong bytes never served', async () => {
    const store = new FsBlockStore(data);
    const file = JSON.parse(await readFile(netlock.file, 'utf8')) as { entries: Array<{ url: string; body: string }> };
    const hello = file.entries.find((e) => e.url.endsWith('/hello.txt'))!.body;
    const tampering: BlockSource = {
      async get(cid: CID) {
        const bytes = await store.get(cid);
        if (cid.toString() !== hello) return bytes;
        const copy = bytes.slice();
        copy[0] = copy[0]! ^ 1;
        return copy;
      },
    };
    const { curl, err } = await guestOnce(tampering, netlock.key, '/hello.txt');
    expect(curl.stdout).not.toContain('hello from the host');
    // A one-block body is read before the head is sent (defect 6 of issue 13): the client gets an explained 502.
    expect(curl.stdout).toMatch(/\r\n\r\nHTTP\/1.1 502/); // after the CONNECT's 200
    expect(curl.stdout).toMatch(/x-oracle-error: ORACLE_ERR_BLOCK_CORRUPT/);
    expect(err).toMatch(/does not hash to its CID/);
  }, 60_000);

  it('refuses records signed by an untrusted key with a clear error', async () => {
    const { curl } = await guestOnce(new FsBlockStore(data), 'cd'.repeat(32), '/hello.txt');
    expect(curl.stdout).toMatch(/\r\n\r\nHTTP\/1.1 502/); // after the CONNECT's 200
    expect(curl.stdout).toMatch(/x-oracle-error: ORACLE_ERR_UNTRUSTED_KEY/);
    expect(curl.stdout).not.toContain('hello from the host');
  }, 60_000);

  it('runs from an empty folder with plain node (no node_modules) and prints its help', async () => {
    const empty = await tempDir('fo-guest-empty-');
    try {
      await run('cp', [GUEST, empty.path]);
      const r = await run(process.execPath, [join(empty.path, 'fetch-oracle-guest.mjs'), '--help'], { cwd: empty.path });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^fetch-oracle-guest: offline replay proxy/);
    } finally {
      await empty.remove();
    }
  });
});

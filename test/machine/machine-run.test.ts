import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { reportMachineRun } from '../../src/cli/machine-run.ts';
import { createLogger } from '../../src/log.ts';
import { locateMachineTools } from '../../src/machine/emulator.ts';
import { GIO_RESPONSE_OK } from '../../src/machine/gio-responder.ts';
import { runInMachine } from '../../src/machine/machine-run.ts';
import { SnapshotCache } from '../../src/machine/snapshot.ts';
import { readNetlockRoot } from '../../src/netlock/file.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { blockLinks } from '../../src/store/block-links.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { removeBlock } from '../helpers/blocks.ts';
import { alive, cartesiProblem, EMULATOR_DIR, IN_CI, KERNEL, MACHINE_FLAGS, machineImage } from '../helpers/cartesi.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { CLI, cli, ROOT, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { hashTree } from '../helpers/tree-hash.ts';

const BIG = 3 * 1024 * 1024 + 11;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const fixture = cartesiProblem();
const built = fixture === undefined ? await machineImage() : { problem: fixture };
const problem = 'problem' in built ? built.problem : undefined;
const explain = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').slice(-60).join('\n')}`;

describe('fetch-oracle machine run without the emulator', () => {
  it('exits 125 naming what to install and where it looked (emulator dir, PATH, kernel)', async () => {
    const r = await cli(['machine', 'run', '--replay', 'x.netlock.json', '--emulator', '/nonexistent/cartesi', '--kernel', '/nonexistent/linux.bin', '--', 'true']);
    expect(r.code, explain(r)).toBe(125);
    expect(r.stderr).toContain('cartesi-jsonrpc-machine not found in --emulator /nonexistent/cartesi (looked for /nonexistent/cartesi/cartesi-jsonrpc-machine and /nonexistent/cartesi/bin/cartesi-jsonrpc-machine)');
    expect(r.stderr).toContain('kernel /nonexistent/linux.bin not found');
    expect(r.stderr).toContain('Install the Cartesi Machine emulator');
    const onPath = await cli(['machine', 'run', '--replay', 'x.netlock.json', '--', 'true'], { env: { PATH: '/nonexistent-bin' } });
    expect(onPath.code, explain(onPath)).toBe(125);
    expect(onPath.stderr).toContain('cartesi-jsonrpc-machine not found on PATH (/nonexistent-bin)');
    expect(onPath.stderr).toContain('kernel /usr/share/cartesi-machine/images/linux.bin not found');
  });

  it('refuses --record with --replay, --trust with --record, --upstream-ca or --sync with --replay, a bad --sync, and a missing command as usage errors', async () => {
    for (const args of [
      ['--record', 'x.netlock.json', '--replay', 'y.netlock.json'],
      ['--record', 'x.netlock.json', '--trust', '00'.repeat(32)],
      ['--replay', 'x.netlock.json', '--upstream-ca', 'ca.pem'],
      ['--replay', 'x.netlock.json', '--sync', 'each'],
    ]) {
      const r = await cli(['machine', 'run', ...args, '--', 'true']);
      expect(r.code, explain(r)).toBe(2);
    }
    const both = await cli(['machine', 'run', '--record', 'x.netlock.json', '--replay', 'y.netlock.json', '--', 'true']);
    expect(both.stderr).toContain('--replay NETLOCK or --record NETLOCK, not both');
    const sync = await cli(['machine', 'run', '--replay', 'x.netlock.json', '--sync', 'each', '--', 'true']);
    expect(sync.stderr).toContain('--sync is a record option');
    const badSync = await cli(['machine', 'run', '--record', 'x.netlock.json', '--sync', 'sometimes', '--emulator', '/nonexistent/cartesi', '--', 'true']);
    expect(badSync.code, explain(badSync)).not.toBe(0);
    expect(badSync.stderr).toContain('--sync (each, or a duration) expects a duration');
    const none = await cli(['machine', 'run', '--replay', 'x.netlock.json']);
    expect(none.code, explain(none)).toBe(2);
    expect(none.stderr).toContain('machine run needs a command');
  });
});

describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle machine run --replay in the real Cartesi Machine${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let netlock: string;
  let image: string;
  let plain: Origin;
  let tls: Origin;
  const hostBytes = new Map<string, string>();

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`The real Cartesi Machine is required under CI: ${problem}`);
    image = (built as { image: string }).image;
    dir = await tempDir('fo-machine-');
    data = join(dir.path, 'data');
    const ca = await createTestCa();
    plain = await startOrigin();
    tls = await startOrigin(await ca.leafFor(['127.0.0.1']));
    for (const o of [plain, tls]) {
      o.route('/hello.txt', (_q, r) => {
        r.end('hello from the host\n');
      });
      o.route('/big.bin', async (_q, r) => {
        r.writeHead(200, { 'content-length': String(BIG) });
        for (const c of pseudoRandomChunks(BIG, 9)) if (!r.write(c)) await new Promise((d) => r.once('drain', d));
        r.end();
      });
    }
    netlock = join(dir.path, 'm.netlock.json');
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: netlock, upstreamCaPem: [ca.caPem] });
    for (const u of [`${plain.url}/hello.txt`, `${tls.url}/big.bin`, `${plain.url}/big.bin`]) expect((await rec.fetch(u)).status).toBe(200);
    await rec.oracle.close();
    await rec.close();
    const host = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: netlock });
    for (const u of [`${plain.url}/hello.txt`, `${tls.url}/big.bin`]) hostBytes.set(u, sha256((await host.fetch(u)).body));
    await host.close();
    // Snapshots are keyed by image, kernel, emulator and sizes: test runs may share them (the first stores one).
    const shared = join(tmpdir(), 'fetch-oracle-test-machine-snapshots');
    await mkdir(shared, { recursive: true });
    await symlink(shared, join(data, 'machine-snapshots'));
  }, 600_000);

  afterAll(async () => {
    await plain?.close();
    await tls?.close();
    await dir?.remove();
  });

  const machineRun = (args: string[], command: string[], timeoutMs = 300_000): Promise<RunResult> =>
    cli(['machine', 'run', '--replay', netlock, '--data', data, '--image', image, ...MACHINE_FLAGS, ...args, '--', ...command], { timeoutMs });

  it('curl over HTTP and HTTPS inside the real Cartesi Machine gets the host replay\'s bytes; a miss is explained on the host; input in, output out, exit status out', async () => {
    const input = join(dir.path, 'in');
    await mkdir(join(input, 'sub'), { recursive: true });
    await writeFile(join(input, 'sub', 'note.txt'), 'from the host input\n');
    const out = join(dir.path, 'out-curl');
    const script = [
      'set -u',
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/hello.txt" ${plain.url}/hello.txt`,
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/big.bin" ${tls.url}/big.bin`,
      `echo "miss: $(curl -s -o /dev/null -w '%{http_code}' ${tls.url}/nope)"`,
      'cp sub/note.txt "$FETCH_ORACLE_OUTPUT/note.txt"',
      'echo "guest date: $(date -u +%Y)"',
      'exit 7',
    ].join('\n');
    const r = await machineRun(['--input', input, '--output', out, '--env', 'GREETING=hi there'], ['sh', '-c', script]);
    expect(r.code, explain(r)).toBe(7);
    expect(r.stdout, explain(r)).toMatch(/^root hash: [0-9a-f]{64}\n$/);
    expect(r.stderr).toContain('miss: 504');
    expect(r.stderr).toContain(`MISS GET ${tls.url}/nope`);
    expect(r.stderr).toContain(`nearest recorded: GET ${tls.url}/big.bin (differs in: path)`);
    expect(r.stderr).toMatch(/device: \d+ GIO round trips \(\d+ blocks, \d+ control\)/);
    // The guest clock is the netlock's newest record time, not 1970.
    expect(r.stderr).toContain(`guest date: ${new Date().getUTCFullYear()}`);
    expect(sha256(await readFile(join(out, 'hello.txt')))).toBe(hostBytes.get(`${plain.url}/hello.txt`));
    expect(sha256(await readFile(join(out, 'big.bin')))).toBe(hostBytes.get(`${tls.url}/big.bin`));
    expect(await readFile(join(out, 'note.txt'), 'utf8')).toBe('from the host input\n');
  }, 600_000);

  it('two replay runs in the real Cartesi Machine end with the same root hash and identical outputs, from the snapshot and from a cold boot', async () => {
    const script = `curl -sS -o "$FETCH_ORACLE_OUTPUT/big.bin" ${plain.url}/big.bin && sha256sum "$FETCH_ORACLE_OUTPUT/big.bin" > "$FETCH_ORACLE_OUTPUT/sum"`;
    const runs: Array<{ hash: string; tree: string; stderr: string; ready: string; halted: string }> = [];
    for (const flags of [[], [], ['--no-snapshot']]) {
      const out = join(dir.path, `out-det-${runs.length}`);
      const r = await machineRun(['--output', out, ...flags], ['sh', '-c', script]);
      expect(r.code, explain(r)).toBe(0);
      const mcycles = /\(mcycle (\d+)\); halted at mcycle (\d+)/.exec(r.stderr);
      expect(mcycles, explain(r)).not.toBeNull();
      runs.push({ hash: /root hash: ([0-9a-f]{64})/.exec(r.stdout)![1]!, tree: (await hashTree(out)).digest, stderr: r.stderr, ready: mcycles![1]!, halted: mcycles![2]! });
    }
    // A difference says where it arose: at the config yield (the boot), later (the run), or in the hash alone.
    const seen = runs.map((r, i) => `run ${i}: ready at mcycle ${r.ready}, halted at mcycle ${r.halted}, root hash ${r.hash}, outputs ${r.tree}\n${r.stderr.split('\n').slice(-8).join('\n')}`).join('\n');
    expect(runs[1]!.stderr).toContain('started from the snapshot');
    expect(runs[2]!.stderr).toMatch(/booted cold;/);
    expect(runs.map((r) => [r.ready, r.halted]), seen).toEqual(runs.map(() => [runs[0]!.ready, runs[0]!.halted]));
    expect(runs.map((r) => r.hash), seen).toEqual(runs.map(() => runs[0]!.hash));
    expect(runs.map((r) => r.tree), seen).toEqual(runs.map(() => runs[0]!.tree));
  }, 900_000);

  it('a host that answers a body block with wrong bytes makes the guest in the real Cartesi Machine stop the run naming the CID: exit 125, no output', async () => {
    const store = new FsBlockStore(data);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; body: string }> };
    const bodyRoot = CID.parse(file.entries.find((e) => e.url === `${tls.url}/big.bin`)!.body);
    const leaf = blockLinks(bodyRoot, await store.get(bodyRoot))[1]!;
    const out = join(dir.path, 'out-tampered');
    const stderr: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, done) => (stderr.push(c.toString()), done()) });
    const tools = locateMachineTools({ emulatorDir: EMULATOR_DIR, kernel: KERNEL });
    const own = (await LocalSigner.publicKeyIn(data))!;
    const outcome = await runInMachine({
      tools,
      image,
      netlockRoot: (await readNetlockRoot(netlock)).root,
      store,
      blockHandler: async (id) => {
        const cid = CID.decode(id);
        const bytes = (await store.get(cid)).slice();
        if (cid.equals(leaf)) bytes[100] = bytes[100]! ^ 1;
        return { code: GIO_RESPONSE_OK, data: bytes };
      },
      trust: [own],
      argv: ['sh', '-c', `curl -sS -o "$FETCH_ORACLE_OUTPUT/big.bin" ${tls.url}/big.bin; echo "curl exit $?"`],
      env: {},
      outputDir: out,
      ramMib: 2048,
      inputMib: 64,
      outputMib: 256,
      snapshots: new SnapshotCache(join(data, 'machine-snapshots'), createLogger('test')),
      console: sink,
      logger: createLogger('test'),
    });
    expect(outcome.result.fatal, stderr.join('')).toContain(leaf.toString());
    expect(outcome.result.fatal).toContain('ORACLE_ERR_BLOCK_CORRUPT');
    expect(existsSync(out)).toBe(false);
    const said: string[] = [];
    const said2 = new Writable({ write: (c: Buffer, _e, done) => (said.push(c.toString()), done()) });
    const code = await reportMachineRun(outcome, netlock, store, { stdout: said2, stderr: said2 });
    expect(code).toBe(125);
    expect(said.join('')).toContain(`the guest stopped the run: ORACLE_ERR_BLOCK_CORRUPT`);
    expect(said.join('')).toContain(leaf.toString());
    expect(said.join('')).not.toContain('root hash:');
  }, 600_000);

  it('refuses a netlock whose blocks this host lacks before the real Cartesi Machine boots, naming the first missing CID', async () => {
    const copy = join(dir.path, 'data-missing');
    await cp(data, copy, { recursive: true, dereference: false, verbatimSymlinks: true });
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; body: string }> };
    const hello = CID.parse(file.entries.find((e) => e.url === `${plain.url}/hello.txt`)!.body);
    await removeBlock(copy, hello);
    const r = await cli(['machine', 'run', '-v', '--replay', netlock, '--data', copy, '--image', image, ...MACHINE_FLAGS, '--', 'true']);
    expect(r.code, explain(r)).toBe(125);
    expect(r.stderr).toContain(`ORACLE_ERR_BLOCK_MISSING: Block ${hello} of GET ${plain.url}/hello.txt is not in this host's store`);
    expect(r.stderr).not.toContain('cartesi-jsonrpc-machine (pid');
  }, 120_000);

  it('stops the real Cartesi Machine at --max-mcycle with a clear error and leaves no emulator running', async () => {
    const r = await machineRun(['-v', '--no-snapshot', '--max-mcycle', '200000000'], ['true'], 120_000);
    expect(r.code, explain(r)).toBe(125);
    expect(r.stderr).toContain('The machine reached --max-mcycle 200000000 (mcycle 200000000) before it halted; the emulator was stopped');
    const pid = Number(/cartesi-jsonrpc-machine \(pid (\d+)\)/.exec(r.stderr)![1]);
    expect(alive(pid)).toBe(false);
  }, 180_000);

  it('SIGTERM stops a guest that never yields again: the real Cartesi Machine is killed, nothing left running', async () => {
    const child = spawn(process.execPath, [CLI, 'machine', 'run', '-v', '--replay', netlock, '--data', data, '--image', image, ...MACHINE_FLAGS, '--', 'sh', '-c', 'echo looping; while :; do :; done'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise<void>((resolveLoop, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/looping\r?\n/.test(stderr)) resolveLoop();
      });
      void exited.then(() => reject(new Error(`exited before looping:\n${stderr}`)));
    });
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(143);
    const pid = Number(/cartesi-jsonrpc-machine \(pid (\d+)\)/.exec(stderr)![1]);
    expect(alive(pid)).toBe(false);
    expect(stderr).toContain('SIGTERM: stopping the machine');
  }, 300_000);
});

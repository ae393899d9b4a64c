import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/protocol/signature.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { alive, cartesiProblem, IN_CI, MACHINE_FLAGS, machineImage } from '../helpers/cartesi.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { CLI, cli, ROOT, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { hashTree } from '../helpers/tree-hash.ts';

const BIG = 1024 * 1024 + 7;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const fixture = cartesiProblem();
const built = fixture === undefined ? await machineImage() : { problem: fixture };
const problem = 'problem' in built ? built.problem : undefined;
const explain = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').slice(-60).join('\n')}`;
const rootHashOf = (r: RunResult): string => /^root hash: ([0-9a-f]{64})\n$/.exec(r.stdout)?.[1] ?? '';

describe('fetch-oracle machine check without the emulator', () => {
  it('prints its help, and refuses a missing command as a usage error', async () => {
    const help = await cli(['machine', 'check', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: fetch-oracle machine check');
    expect(help.stdout).toContain('a record run is not promised to be deterministic');
    const none = await cli(['machine', 'check', '--netlock', 'x.netlock.json']);
    expect(none.code, explain(none)).toBe(2);
    expect(none.stderr).toContain('machine check needs a command');
  });

  it('exits 125 naming what to install when the emulator is missing', async () => {
    const r = await cli(['machine', 'check', '--emulator', '/nonexistent/cartesi', '--kernel', '/nonexistent/linux.bin', '--', 'true']);
    expect(r.code, explain(r)).toBe(125);
    expect(r.stderr).toContain('cartesi-jsonrpc-machine not found in --emulator /nonexistent/cartesi');
  });
});

describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle machine run --record and machine check in the real Cartesi Machine${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let image: string;
  let caFile: string;
  let plain: Origin;
  let tls: Origin;
  let counter = 0;
  const big = Buffer.concat([...pseudoRandomChunks(BIG, 5)]);

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`The real Cartesi Machine is required under CI: ${problem}`);
    image = (built as { image: string }).image;
    dir = await tempDir('fo-machine-record-');
    data = join(dir.path, 'data');
    await mkdir(data, { recursive: true });
    const ca = await createTestCa();
    caFile = join(dir.path, 'origin-ca.pem');
    await writeFile(caFile, ca.caPem);
    plain = await startOrigin();
    tls = await startOrigin(await ca.leafFor(['127.0.0.1']));
    for (const o of [plain, tls]) {
      o.route('/hello.txt', (_q, r) => {
        r.end('hello from the origin\n');
      });
      o.route('/big.bin', (_q, r) => {
        r.writeHead(200, { 'content-length': String(big.byteLength) });
        r.end(big);
      });
      // A different body on every upstream fetch: shows what was fetched once and replayed.
      o.route('/counter', (_q, r) => {
        r.end(`upstream fetch ${++counter}\n`);
      });
    }
    // Snapshots are keyed by image, kernel, emulator and sizes: test runs may share them (the first stores one).
    const shared = join(tmpdir(), 'fetch-oracle-test-machine-snapshots');
    await mkdir(shared, { recursive: true });
    await symlink(shared, join(data, 'machine-snapshots'));
  }, 900_000);

  afterAll(async () => {
    await plain?.close();
    await tls?.close();
    await dir?.remove();
  });

  const machine = (sub: 'run' | 'check', args: string[], command: string[], timeoutMs = 300_000): Promise<RunResult> =>
    cli(['machine', sub, '--data', data, '--image', image, ...MACHINE_FLAGS, ...args, '--', ...command], { timeoutMs });

  it('machine run --record of curl over HTTP and HTTPS in the real Cartesi Machine writes a netlock of those URLs signed by the host key, bodies byte-identical, a URL asked twice fetched upstream once; --replay of it gives the same output', async () => {
    const netlock = join(dir.path, 'rec.netlock.json');
    const script = [
      'set -eu',
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/hello.txt" ${plain.url}/hello.txt`,
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/big.bin" ${tls.url}/big.bin`,
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/counter-1" ${plain.url}/counter`,
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/counter-2" ${plain.url}/counter`,
      'echo "guest year: $(date -u +%Y)"',
    ].join('\n');
    const recOut = join(dir.path, 'rec-out');
    const rec = await machine('run', ['--record', netlock, '--upstream-ca', caFile, '--output', recOut], ['sh', '-c', script]);
    expect(rec.code, explain(rec)).toBe(0);
    expect(rootHashOf(rec), explain(rec)).toMatch(/^[0-9a-f]{64}$/);
    // The snapshot is taken before the run's mode is told: record and replay runs share it.
    expect(rec.stderr).toMatch(/record run (started from the snapshot|booted cold and stored the snapshot);/);
    // No --time: the host's clock.
    expect(rec.stderr).toContain(`guest year: ${new Date().getUTCFullYear()}`);
    expect(rec.stderr).toContain(`recorded 3 request(s): netlock `);
    expect(rec.stderr).toContain(` written to ${netlock}`);
    expect(rec.stderr).toMatch(/recorded through the device: 4 answer\(s\), 3 fetched upstream, 1 already recorded, 0 refused/);
    expect(existsSync(`${netlock}.journal`)).toBe(false);

    const own = toHex((await LocalSigner.publicKeyIn(data))!);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { oracles: string[]; entries: Array<{ url: string; status: number }> };
    expect(file.entries.map((e) => e.url).sort()).toEqual([`${plain.url}/counter`, `${plain.url}/hello.txt`, `${tls.url}/big.bin`].sort());
    expect(file.oracles).toEqual([own]);
    const verify = await cli(['verify', netlock, '--data', data, '--trust', own]);
    expect(verify.code, explain(verify)).toBe(0);

    expect(await readFile(join(recOut, 'hello.txt'), 'utf8')).toBe('hello from the origin\n');
    expect(sha256(await readFile(join(recOut, 'big.bin')))).toBe(sha256(big));
    expect(plain.hits.get('/counter')).toBe(1);
    expect(await readFile(join(recOut, 'counter-1'), 'utf8')).toBe('upstream fetch 1\n');
    expect(await readFile(join(recOut, 'counter-2'), 'utf8')).toBe('upstream fetch 1\n');
    // The host's own replay of the netlock serves the bytes the machine got.
    const host = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: netlock });
    try {
      expect(sha256((await host.fetch(`${tls.url}/big.bin`)).body)).toBe(sha256(big));
    } finally {
      await host.close();
    }

    const repOut = join(dir.path, 'rep-out');
    const rep = await machine('run', ['--replay', netlock, '--output', repOut], ['sh', '-c', script]);
    expect(rep.code, explain(rep)).toBe(0);
    expect(rep.stderr).toContain('replay run started from the snapshot');
    expect(rep.stderr).toMatch(/shim: 4 request\(s\), 4 hit\(s\), 0 miss\(es\)/);
    expect((await hashTree(repOut)).digest).toBe((await hashTree(recOut)).digest);
    expect(plain.hits.get('/counter')).toBe(1);
  }, 900_000);

  it('machine check of curl into the output in the real Cartesi Machine exits 0 with matching outputs; its replay root hash is what machine run --replay re-checks', async () => {
    const netlock = join(dir.path, 'check.netlock.json');
    const input = join(dir.path, 'check-in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'name'), 'x\n');
    const command = ['sh', '-c', `curl -sS ${tls.url}/hello.txt > "$FETCH_ORACLE_OUTPUT/$(cat name)"`];
    const flags = ['--input', input, '--time', '1750000000'];
    const r = await machine('check', ['--netlock', netlock, '--upstream-ca', caFile, ...flags], command);
    expect(r.code, explain(r)).toBe(0);
    expect(r.stderr).toContain('the two runs match: exit 0, every request replayed, 1 output entry identical');
    const hash = rootHashOf(r);
    expect(hash, explain(r)).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stderr).toContain(`replay run root hash: ${hash}`);
    expect(r.stderr).toMatch(/record run root hash: [0-9a-f]{64} \(a record run is not deterministic/);
    expect((JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> }).entries.map((e) => e.url)).toEqual([`${tls.url}/hello.txt`]);

    const out = join(dir.path, 'recheck-out');
    const again = await machine('run', ['--replay', netlock, '--output', out, ...flags], command);
    expect(again.code, explain(again)).toBe(0);
    expect(rootHashOf(again)).toBe(hash);
    expect(await readFile(join(out, 'x'), 'utf8')).toBe('hello from the origin\n');
  }, 900_000);

  it('machine check in the real Cartesi Machine exits 1 naming the output path that differs: curl\'s time_total, since a recorded download takes other guest time than a replayed one', async () => {
    const netlock = join(dir.path, 'differs.netlock.json');
    const script = [
      'set -eu',
      `for u in ${plain.url}/hello.txt ${tls.url}/hello.txt ${plain.url}/big.bin; do curl -sS -o /dev/null -w '%{time_total}\\n' "$u"; done > "$FETCH_ORACLE_OUTPUT/timing"`,
      `curl -sS -o "$FETCH_ORACLE_OUTPUT/same.txt" ${tls.url}/hello.txt`,
    ].join('\n');
    const r = await machine('check', ['--netlock', netlock, '--upstream-ca', caFile, '--time', '1750000000'], ['sh', '-c', script]);
    expect(r.code, explain(r)).toBe(1);
    expect(r.stderr).toContain('the outputs differ in 1 path(s):');
    expect(r.stderr).toContain('$FETCH_ORACLE_OUTPUT/timing: content');
    expect(r.stderr).not.toContain('$FETCH_ORACLE_OUTPUT/same.txt:');
    expect(rootHashOf(r), explain(r)).toMatch(/^[0-9a-f]{64}$/);
  }, 900_000);

  it('a record run in the real Cartesi Machine stopped by SIGTERM writes no netlock, keeps its journal, and recover writes it', async () => {
    const netlock = join(dir.path, 'stopped.netlock.json');
    const child = spawn(process.execPath, [CLI, 'machine', 'run', '-v', '--record', netlock, '--data', data, '--image', image, ...MACHINE_FLAGS, '--', 'sh', '-c', `curl -sS -o /dev/null ${plain.url}/hello.txt && echo fetched; while :; do :; done`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise<void>((resolveFetched, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/fetched\r?\n/.test(stderr)) resolveFetched();
      });
      void exited.then(() => reject(new Error(`exited before fetching:\n${stderr}`)));
    });
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(143);
    expect(alive(Number(/cartesi-jsonrpc-machine \(pid (\d+)\)/.exec(stderr)![1]))).toBe(false);
    expect(existsSync(netlock)).toBe(false);
    expect(stderr).toContain(`what was recorded is kept in ${netlock}.journal`);
    const recovered = await cli(['recover', '--netlock', netlock, '--data', data]);
    expect(recovered.code, explain(recovered)).toBe(0);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> };
    expect(file.entries.map((e) => e.url)).toEqual([`${plain.url}/hello.txt`]);
  }, 300_000);
});

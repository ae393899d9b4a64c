/**
 * `fetch-oracle build --machine`: a Dockerfile built by buildah inside the real Cartesi Machine. The context is
 * kept tiny so that CI time stays small: `FROM scratch` + busybox (taken from the machine image), a RUN that
 * reads /dev/urandom and one that downloads through the guest shim. The full Debian demo (apt-get install
 * hello, curl over HTTPS) is bench/build-machine.ts.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cartesiProblem, IN_CI, MACHINE_FLAGS } from '../helpers/cartesi.ts';
import { machineImageProblem, testMachineImage } from '../helpers/machine-image.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';

/** The machine image for builds: the test set plus buildah (and netavark, which buildah wants to start). */
const BUILD_PACKAGES = ['nodejs', 'busybox-static', 'curl', 'ca-certificates', 'buildah', 'netavark'];
const problem = cartesiProblem() ?? (await machineImageProblem());
const explain = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').slice(-60).join('\n')}`;
const imageIdOf = (r: RunResult): string => /^(sha256:[0-9a-f]{64})\n/.exec(r.stdout)?.[1] ?? '';
const rootHashOf = (r: RunResult): string => /root hash: ([0-9a-f]{64})\n$/.exec(r.stdout)?.[1] ?? '';

describe('fetch-oracle build --machine without a machine', () => {
  it('states its sizes in --help and refuses host-build options', async () => {
    const help = await cli(['build', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--machine');
    expect(help.stdout).toMatch(/--ram-mib N +guest RAM \(default 2048/);
    expect(help.stdout).toMatch(/--input-mib N +input drive: the context, as a tar \(default 512\)/);
    const r = await cli(['build', '--machine', '--storage', '/tmp/x', '.']);
    expect(r.code, explain(r)).toBe(2);
    expect(r.stderr).toContain('--storage is an option of the host build, not of --machine');
  });

  it('exits 125 naming what to install when the emulator is missing, before anything is built', async () => {
    const dir = await tempDir('fo-build-machine-none-');
    try {
      await writeFile(join(dir.path, 'Dockerfile'), 'FROM scratch\n');
      const r = await cli(['build', '--machine', '--data', join(dir.path, 'data'), '--emulator', '/nonexistent/cartesi', '--kernel', '/nonexistent/linux.bin', '--out', join(dir.path, 'x.oci.tar'), dir.path]);
      expect(r.code, explain(r)).toBe(125);
      expect(r.stderr).toContain('cartesi-jsonrpc-machine not found in --emulator /nonexistent/cartesi');
      expect(existsSync(join(dir.path, 'x.oci.tar'))).toBe(false);
    } finally {
      await dir.remove();
    }
  });
});

describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle build --machine in the real Cartesi Machine${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let image: string;
  let origin: Origin;
  let context: string;

  /** A context: busybox as the base, RUN steps in its shell. */
  const makeContext = async (name: string, busybox: string, runs: string[]): Promise<string> => {
    const ctx = join(dir.path, name);
    await mkdir(join(ctx, 'bin'), { recursive: true });
    const r = await run('cp', [busybox, join(ctx, 'bin', 'busybox')]);
    if (r.code !== 0) throw new Error(r.stderr);
    await chmod(join(ctx, 'bin', 'busybox'), 0o755);
    const lines = ['FROM scratch', 'COPY bin/ /bin/', 'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin"]', ...runs.map((c) => `RUN ${c}`)];
    await writeFile(join(ctx, 'Dockerfile'), `${lines.join('\n')}\n`);
    return ctx;
  };

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`The real Cartesi Machine is required under CI: ${problem}`);
    image = (await testMachineImage({ packages: BUILD_PACKAGES })).image;
    dir = await tempDir('fo-build-machine-');
    data = join(dir.path, 'data');
    await mkdir(data, { recursive: true });
    const shared = join(tmpdir(), 'fetch-oracle-test-machine-snapshots');
    await mkdir(shared, { recursive: true });
    await symlink(shared, join(data, 'machine-snapshots'));
    origin = await startOrigin();
    origin.route('/file.txt', (_q, r) => {
      r.end('a file from the origin\n');
    });
    // The machine image's busybox (static, riscv64) is the base: debugfs reads it out of the ext2.
    const busybox = join(dir.path, 'busybox');
    const d = await run('debugfs', ['-R', `dump /usr/bin/busybox ${busybox}`, image]);
    if (!existsSync(busybox)) throw new Error(`debugfs could not read busybox from ${image}: ${d.stderr}`);
    context = await makeContext('ctx', busybox, [`wget -q -O - ${origin.url}/file.txt | sha256sum > /x`]);
    await makeContext('ctx-random', busybox, ['head -c16 /dev/urandom > /random', `wget -q -O - ${origin.url}/file.txt | sha256sum > /x`]);
    await makeContext('ctx-miss', busybox, [`wget -q -O - ${origin.url}/not-recorded.txt > /y`]);
  }, 900_000);

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  const build = (args: string[], ctx: string): Promise<RunResult> => cli(['build', '--machine', '--data', data, '--image', image, ...MACHINE_FLAGS, ...args, ctx], { timeoutMs: 900_000 });

  it('build --machine --check in the real Cartesi Machine records from inside and rebuilds offline with the same image ID; two replay builds of a Dockerfile reading /dev/urandom give the same image and root hash', async () => {
    const netlock = join(dir.path, 'build.netlock.json');
    const out = join(dir.path, 'image.oci.tar');
    const check = await build(['--check', '--netlock', netlock, '--out', out], context);
    expect(check.code, explain(check)).toBe(0);
    const id = imageIdOf(check);
    expect(id, explain(check)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(check.stderr).toContain('recorded 1 request(s) from inside the machine');
    expect(check.stderr).toContain(`reproducible: the offline rebuild in the machine gave the recorded image ${id}`);
    expect(existsSync(out)).toBe(true);
    expect(origin.hits.get('/file.txt')).toBe(1);

    // Two replay builds that read /dev/urandom: the machine's entropy is deterministic, so the same image and
    // the same machine root hash (docs/reproducible-builds.md; the host build cannot do this).
    const random = join(dir.path, 'ctx-random');
    const a = await build(['--replay', netlock, '--out', join(dir.path, 'a.oci.tar')], random);
    expect(a.code, explain(a)).toBe(0);
    const b = await build(['--replay', netlock, '--out', join(dir.path, 'b.oci.tar')], random);
    expect(b.code, explain(b)).toBe(0);
    expect(imageIdOf(a)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(imageIdOf(b)).toBe(imageIdOf(a));
    expect(imageIdOf(a)).not.toBe(id);
    expect(rootHashOf(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(rootHashOf(b)).toBe(rootHashOf(a));
    expect(origin.hits.get('/file.txt')).toBe(1);
  }, 1_800_000);

  it('build --machine --replay in the real Cartesi Machine: a step that needs what the netlock lacks fails with the miss explained on the host, and no archive is written', async () => {
    const netlock = join(dir.path, 'build.netlock.json');
    const out = join(dir.path, 'miss.oci.tar');
    const r = await build(['--replay', netlock, '--out', out], join(dir.path, 'ctx-miss'));
    expect(r.code, explain(r)).not.toBe(0);
    expect(r.stderr).toContain(`${origin.url}/not-recorded.txt`);
    expect(r.stderr).toContain(`${origin.url}/file.txt`); // the nearest entry the netlock holds
    expect(r.stderr).toMatch(/the build in the machine failed \(exit \d+\); it asked for 1 request\(s\) the netlock lacks/);
    expect(existsSync(out)).toBe(false);
    expect(origin.hits.get('/not-recorded.txt')).toBeUndefined();
  }, 900_000);

  it('build --machine in the real Cartesi Machine refuses a context larger than its input drive before boot', async () => {
    const big = join(dir.path, 'ctx-big');
    await mkdir(big, { recursive: true });
    await writeFile(join(big, 'Dockerfile'), 'FROM scratch\nCOPY blob /\n');
    await writeFile(join(big, 'blob'), Buffer.alloc(3 * 1024 * 1024, 7));
    const r = await build(['--replay', join(dir.path, 'build.netlock.json'), '--input-mib', '2', '--out', join(dir.path, 'big.oci.tar')], big);
    expect(r.code, explain(r)).toBe(125);
    expect(r.stderr).toContain('larger than the input drive');
    expect(r.stderr).not.toMatch(/run (booted cold|started from the snapshot)/);
  }, 120_000);
});

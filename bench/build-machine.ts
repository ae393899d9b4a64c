// Issue #16 benchmark: one Dockerfile rebuilt offline inside the real Cartesi Machine (`build --machine
// --replay`) against the host's offline rebuild of the same Dockerfile (`build --replay`), in one run. The
// Dockerfile is the test's: `FROM scratch`, busybox (riscv64 in the machine, this host's in the host build),
// `head -c16 /dev/urandom`, `wget | sha256sum` of a replayed body. Where the machine's time goes comes from
// the run's own lines (shim ready, halted at mcycle) and the guest script's marks (uptime at buildah build,
// done: buildah commits straight into the OCI archive). Report only, no target.
// Usage: npm run bench:build-machine [-- --image FILE --body-kib 1024 --emulator DIR --kernel FILE]
import { copyFile, chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EMULATOR_DIR, KERNEL } from '../test/helpers/cartesi.ts';
import { testMachineImage } from '../test/helpers/machine-image.ts';
import { startOrigin } from '../test/helpers/origin.ts';
import { cli, run } from '../test/helpers/run.ts';
import type { RunResult } from '../test/helpers/run.ts';

const { values } = parseArgs({
  options: {
    image: { type: 'string' },
    emulator: { type: 'string', default: EMULATOR_DIR },
    kernel: { type: 'string', default: KERNEL },
    'body-kib': { type: 'string', default: '1024' },
  },
});
const BODY = Buffer.alloc(Number(values['body-kib']) * 1024, 0x5a);
const say = (line: string): void => void process.stderr.write(`bench:build-machine: ${line}\n`);
const image = values.image ?? (await testMachineImage({ packages: ['nodejs', 'busybox-static', 'curl', 'ca-certificates', 'buildah', 'netavark'] })).image;
const dir = await mkdtemp(join(tmpdir(), 'fo-bench-build-machine-'));
const data = join(dir, 'data');
const origin = await startOrigin();
origin.route('/body.bin', (_q, r) => {
  r.end(BODY);
});
const machineFlags = ['--emulator', values.emulator, '--kernel', values.kernel];

async function context(name: string, busybox: () => Promise<void>): Promise<string> {
  const ctx = join(dir, name);
  await mkdir(join(ctx, 'bin'), { recursive: true });
  await busybox();
  await chmod(join(ctx, 'bin', 'busybox'), 0o755);
  const runs = ['RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin"]', 'RUN head -c16 /dev/urandom > /random', `RUN wget -q -O - ${origin.url}/body.bin | sha256sum > /x`];
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nCOPY bin/ /bin/\n${runs.join('\n')}\n`);
  return ctx;
}

async function timed(label: string, args: string[]): Promise<{ r: RunResult; s: number }> {
  const t = performance.now();
  const r = await cli(args, { timeoutMs: 3_600_000 });
  const s = (performance.now() - t) / 1000;
  if (r.code !== 0) throw new Error(`${label} failed (exit ${r.code}):\n${r.stderr.split('\n').slice(-30).join('\n')}`);
  return { r, s };
}

try {
  await mkdir(data, { recursive: true });
  const machineCtx = await context('machine', async () => {
    const d = await run('debugfs', ['-R', `dump /usr/bin/busybox ${join(dir, 'machine', 'bin', 'busybox')}`, image]);
    if (d.code !== 0) throw new Error(d.stderr);
  });
  const hostCtx = await context('host', () => copyFile('/usr/bin/busybox', join(dir, 'host', 'bin', 'busybox')));
  // The tests' snapshot store, so that a machine of the same sizes starts from a stored snapshot.
  await mkdir(join(tmpdir(), 'fetch-oracle-test-machine-snapshots'), { recursive: true });
  await symlink(join(tmpdir(), 'fetch-oracle-test-machine-snapshots'), join(data, 'machine-snapshots')).catch(() => undefined);
  const machineLock = join(dir, 'machine.netlock.json');
  const hostLock = join(dir, 'host.netlock.json');
  say('recording (machine, then host)');
  await timed('machine record', ['build', '--machine', '--data', data, '--image', image, ...machineFlags, '--netlock', machineLock, '--out', join(dir, 'rec.oci.tar'), machineCtx]);
  await timed('host record', ['build', '--data', data, '--netlock', hostLock, hostCtx]);
  say('rebuilding offline (machine, then host)');
  const m = await timed('machine replay', ['build', '--machine', '--data', data, '--image', image, ...machineFlags, '--replay', machineLock, '--out', join(dir, 'rep.oci.tar'), machineCtx]);
  const h = await timed('host replay', ['build', '--data', data, '--replay', hostLock, hostCtx]);
  const ready = /shim ready ([\d.]+) s after the emulator started \(mcycle (\d+)\); halted at mcycle (\d+), ([\d.]+) s in all/.exec(m.r.stderr);
  const marks = [...m.r.stderr.matchAll(/fetch-oracle-build: t=([\d.]+) (.+)/g)].map((x) => [x[2]!, Number(x[1])] as const);
  const mark = (name: string): number => marks.find(([n]) => n === name)?.[1] ?? NaN;
  const lines = [
    `| step | time |`,
    `|---|---:|`,
    `| host \`build --replay\` (amd64 busybox, same Dockerfile) | ${h.s.toFixed(1)} s |`,
    `| machine \`build --machine --replay\`, wall | ${m.s.toFixed(1)} s |`,
    `| … emulator start → shim ready (snapshot load or boot), host | ${ready?.[1] ?? '?'} s |`,
    `| … guest: boot → \`buildah build\` starts (uptime) | ${mark('buildah build').toFixed(1)} s |`,
    `| … guest: \`buildah build\` (COPY, 3 RUN, commit into the OCI archive) | ${(mark('done') - mark('buildah build')).toFixed(1)} s |`,
    `| … machine cycles to halt | ${ready?.[3] ?? '?'} (${(Number(ready?.[3]) / 128e6).toFixed(1)} guest s at 128 MHz) |`,
    `| … host s per guest s | ${(Number(ready?.[4]) / (Number(ready?.[3]) / 128e6)).toFixed(2)} |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await origin.close();
  await rm(dir, { recursive: true, force: true });
}

// Issue #16's Debian demonstration, end to end in the real Cartesi Machine: a riscv64 Debian base recorded
// through the oracle (`machine image --base-tar`), then a Dockerfile `FROM scratch` + `ADD rootfs.tar /` with
// `apt-get install -y hello && hello` and an HTTPS download, built with `build --machine --check` (recorded
// inside the machine, rebuilt offline inside it, image IDs compared; --scrub debian keeps apt's and dpkg's logs out) and once more with `--replay` (the same
// image ID and machine root hash as the check's offline rebuild); then the same Dockerfile plus a read of
// /dev/urandom, rebuilt offline twice from that netlock (the same image: the machine's entropy is
// deterministic; a record and its rebuild run different guest code, so --check is not the test for it).
// It needs the network (deb.debian.org) while recording and takes long (apt in the emulated CPU): a report,
// not a test. Usage: npm run bench:build-machine-debian [-- --keep DIR --emulator DIR --kernel FILE]
import { spawn } from 'node:child_process';
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EMULATOR_DIR, KERNEL } from '../test/helpers/cartesi.ts';
import { testMachineImage } from '../test/helpers/machine-image.ts';
import { CLI } from '../test/helpers/run.ts';
import type { RunResult } from '../test/helpers/run.ts';

const { values } = parseArgs({
  options: {
    keep: { type: 'string' },
    emulator: { type: 'string', default: EMULATOR_DIR },
    kernel: { type: 'string', default: KERNEL },
  },
});
const say = (line: string): void => void process.stderr.write(`bench:build-machine-debian: ${new Date().toISOString()} ${line}\n`);
const DOCKERFILE = `FROM scratch
ADD rootfs.tar /
RUN apt-get update && apt-get install -y hello && hello && rm -rf /var/lib/apt/lists/*
RUN curl -fsS https://deb.debian.org/debian/dists/trixie/main/binary-riscv64/Release | sha256sum > /x
`;
const URANDOM_STEP = 'RUN head -c16 /dev/urandom > /r\n';
const machineFlags = ['--emulator', values.emulator, '--kernel', values.kernel];
const dir = values.keep ?? (await mkdtemp(join(tmpdir(), 'fo-bench-build-machine-debian-')));
const data = join(dir, 'data');
const ctx = join(dir, 'ctx');
const ctxRandom = join(dir, 'ctx-urandom');
const rows: string[] = ['| step | result | host time |', '|---|---|---:|'];

/** Runs the CLI with its stderr shown as it comes (the machine's console: these runs take many minutes). */
function cliLive(args: string[]): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code: code ?? 1, stdout, stderr }));
  });
}

async function timed(label: string, args: string[]): Promise<RunResult> {
  say(`${label}: fetch-oracle ${args.join(' ')}`);
  const t = performance.now();
  const r = await cliLive(args);
  const s = (performance.now() - t) / 1000;
  const id = /^(sha256:[0-9a-f]{64})$/m.exec(r.stdout)?.[1];
  const root = /root hash: ([0-9a-f]{64})/.exec(r.stdout)?.[1];
  const marks = [...r.stderr.matchAll(/fetch-oracle-build: t=([\d.]+) (.+)/g)].map((x) => `${x[2]!} @${x[1]!}`).join(', ');
  rows.push(`| ${label} | exit ${r.code}${id === undefined ? '' : `, ${id.slice(0, 19)}…`}${root === undefined ? '' : `, root ${root.slice(0, 12)}…`}${marks === '' ? '' : ` (guest s: ${marks})`} | ${s.toFixed(0)} s |`);
  if (r.code !== 0) throw new Error(`${label} failed (exit ${r.code}):\n${r.stderr.split('\n').slice(-40).join('\n')}`);
  return r;
}

try {
  await mkdir(ctx, { recursive: true });
  await mkdir(data, { recursive: true });
  // The tests' snapshot store, so that a machine of the same sizes starts from a stored snapshot.
  await mkdir(join(tmpdir(), 'fetch-oracle-test-machine-snapshots'), { recursive: true });
  await symlink(join(tmpdir(), 'fetch-oracle-test-machine-snapshots'), join(data, 'machine-snapshots')).catch(() => undefined);
  const image = (await testMachineImage({ packages: ['nodejs', 'busybox-static', 'curl', 'ca-certificates', 'buildah', 'netavark'], freeMiB: 4096 })).image;
  await timed('base tar, recorded (`machine image --base-tar`)', ['machine', 'image', '--base-tar', '--data', data, '--out', join(ctx, 'rootfs.tar'), '--netlock', join(dir, 'base.netlock.json')]);
  await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  const netlock = join(dir, 'build.netlock.json');
  // --scrub debian (logs, apt, ldconfig), as for the host's `build --check` of a Debian Dockerfile: apt's and
  // dpkg's logs hold the guest clock at the step, and a record run reaches it at another guest second.
  const common = ['build', '--machine', '--scrub', 'debian', '--data', data, '--image', image, ...machineFlags];
  const check = await timed('`build --machine --check` (record in the machine, rebuild offline in it)', [...common, '--check', '--netlock', netlock, '--out', join(dir, 'check.oci.tar'), ctx]);
  // The check's offline half ran with the record's clock; the re-check line it prints names it.
  const time = /re-check the root hash with: .* --time (\S+)/.exec(check.stderr)?.[1];
  if (time === undefined) throw new Error('the check printed no re-check line with --time');
  const replay = await timed('`build --machine --replay --time T` (a second offline rebuild)', [...common, '--replay', netlock, '--time', time, '--out', join(dir, 'replay.oci.tar'), ctx]);
  const idOf = (r: RunResult): string | undefined => /^(sha256:[0-9a-f]{64})$/m.exec(r.stdout)?.[1];
  const rootOf = (r: RunResult): string | undefined => /root hash: ([0-9a-f]{64})/.exec(r.stdout)?.[1];
  rows.push(`| same image ID (check vs second replay) | ${String(idOf(check) === idOf(replay))} | |`);
  rows.push(`| same machine root hash (check's offline rebuild vs second replay) | ${String(rootOf(check) === rootOf(replay))} | |`);
  // The same steps plus one that reads /dev/urandom (no request: the netlock serves it as it is).
  await mkdir(ctxRandom, { recursive: true });
  await link(join(ctx, 'rootfs.tar'), join(ctxRandom, 'rootfs.tar'));
  await writeFile(join(ctxRandom, 'Dockerfile'), DOCKERFILE + URANDOM_STEP);
  const random1 = await timed('+ `RUN head -c16 /dev/urandom`: `--replay --time T`', [...common, '--replay', netlock, '--time', time, '--out', join(dir, 'urandom1.oci.tar'), ctxRandom]);
  const random2 = await timed('+ `RUN head -c16 /dev/urandom`: `--replay --time T` again', [...common, '--replay', netlock, '--time', time, '--out', join(dir, 'urandom2.oci.tar'), ctxRandom]);
  rows.push(`| urandom Dockerfile: same image ID in both replays | ${String(idOf(random1) !== undefined && idOf(random1) === idOf(random2))} | |`);
  rows.push(`| urandom Dockerfile: same machine root hash in both replays | ${String(rootOf(random1) !== undefined && rootOf(random1) === rootOf(random2))} | |`);
  process.stdout.write(`${rows.join('\n')}\n`);
} catch (err) {
  process.stdout.write(`${rows.join('\n')}\n`);
  throw err;
} finally {
  if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
}

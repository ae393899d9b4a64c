// Issue #7 benchmark: `fetch-oracle build --check` on the test Dockerfile (test/image/build.test.ts: a
// debootstrap minbase root file system, apt-get install from a local Debian-style repository, curl | sha256sum
// of a 3 MiB HTTPS payload), against the same Dockerfile built by plain buildah with direct network access
// (same buildah flags, same scrub mounts, no proxy, no namespace) in the same run.
// Prints wall time of each half and of the whole check, the fetch-oracle process's peak RSS, and whether the
// offline rebuild stays within 1.2x the direct build.
// Usage: npm run bench:build [-- --base ROOTFS.tar] [--rounds N (default 3; the medians are compared)]
//   --base: a root file system tar (as the test packs it); without it debootstrap runs once through
//   `fetch-oracle run` (about a minute; needs the Debian mirror).
import { spawn } from 'node:child_process';
import { copyFile, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findBuildah, storageArgs, storageOf } from '../src/image/buildah.ts';
import { parseScrub, scrubVolumes } from '../src/image/scrub.ts';
import { serveDebianRepo } from '../test/helpers/debian-repo.ts';
import { fetchOracleRun } from '../test/helpers/fetch-oracle-run.ts';
import { pseudoRandomChunks, startOrigin } from '../test/helpers/origin.ts';
import { CLI, run } from '../test/helpers/run.ts';
import { createTestCa } from '../test/helpers/test-ca.ts';

const { values } = parseArgs({ options: { base: { type: 'string' }, rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);
const LIMIT = 1.2;
const buildah = findBuildah();
if (buildah === undefined) throw new Error('buildah is not installed (apt-get install -y buildah)');

const dir = await mkdtemp(join(tmpdir(), 'fo-bench-build-'));
const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' };
const plain = await startOrigin();
const ca = await createTestCa();
const tls = await startOrigin(await ca.leafFor(['127.0.0.1']));

try {
  const originCa = join(dir, 'origin-ca.pem');
  await writeFile(originCa, ca.caPem);
  const arch = (await run('dpkg', ['--print-architecture'])).stdout.trim();
  const repo = await serveDebianRepo(plain, dir, { pkg: 'fo-build-demo', archs: [arch] });
  const payload = Buffer.concat([...pseudoRandomChunks(3 * 1024 * 1024 + 7, 5)]);
  tls.route('/payload.bin', (_q, r) => {
    r.writeHead(200, { 'content-length': String(payload.byteLength) });
    r.end(payload);
  });

  let base = values.base;
  if (base === undefined) {
    process.stderr.write('bench: debootstrap --variant=minbase through fetch-oracle run (no --base given)\n');
    const rootfs = join(dir, 'rootfs');
    const r = await fetchOracleRun(['--data', join(dir, 'base-data'), '--netlock', join(dir, 'base.netlock.json'), '--', 'debootstrap', '--variant=minbase', '--include=curl,ca-certificates', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { env, cwd: dir, timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`debootstrap failed: ${r.stderr.slice(-2000)}`);
    base = join(dir, 'rootfs.tar');
    const t = await run('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '--exclude=./var/log/*', '--exclude=./var/cache/ldconfig/aux-cache', '-C', rootfs, '-cf', base, '.'], { timeoutMs: 300_000 });
    if (t.code !== 0) throw new Error(`tar failed: ${t.stderr}`);
    await rm(rootfs, { recursive: true, force: true });
  }

  const ctx = join(dir, 'ctx');
  await mkdir(ctx, { recursive: true });
  await link(base, join(ctx, 'rootfs.tar')).catch(async () => copyFile(base, join(ctx, 'rootfs.tar')));
  await writeFile(
    join(ctx, 'Dockerfile'),
    `FROM scratch
ADD rootfs.tar /
ARG REPO
RUN echo "deb [trusted=yes] $REPO stable main" > /etc/apt/sources.list && apt-get update && apt-get install -y fo-build-demo
ARG PAYLOAD_URL
RUN curl -fsS "$PAYLOAD_URL" | sha256sum > /payload.sha256 && cat /payload.sha256
`,
  );
  const buildArgs = ['--build-arg', `REPO=${repo.url}`, '--build-arg', `PAYLOAD_URL=${tls.url}/payload.bin`];

  /** Plain buildah on the host network: RUN steps reach the origins directly and trust the origin CA. */
  async function direct(round: number): Promise<{ ms: number; digest: string }> {
    const storage = storageOf(join(dir, `direct-${round}`));
    const iid = join(dir, `direct-${round}.iid`);
    const args = [
      ...storageArgs(storage), 'build', '--quiet', '--isolation', 'chroot', '--no-cache', '--timestamp', '0', '--iidfile', iid,
      '--volume', `${originCa}:/etc/ssl/certs/ca-certificates.crt:ro`,
      ...(await scrubVolumes(parseScrub(['debian']), join(dir, `direct-scrub-${round}`))),
      ...buildArgs, ctx,
    ];
    const t0 = performance.now();
    const r = await run(buildah!, args, { env, cwd: dir, timeoutMs: 900_000 });
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`direct buildah build failed: ${r.stderr.slice(-2000)}`);
    await rm(join(dir, `direct-${round}`), { recursive: true, force: true });
    return { ms, digest: (await readFile(iid, 'utf8')).trim() };
  }

  /** `fetch-oracle build --check` as its own process; its peak RSS is polled from /proc (VmHWM only grows). */
  async function check(round: number): Promise<{ ms: number; peakMb: number; recordMs: number; replayMs: number; digest: string }> {
    const report = join(dir, `check-${round}.json`);
    const args = [CLI, 'build', '--check', '--scrub', 'debian', '--data', join(dir, 'data'), '--storage', join(dir, `check-storage-${round}`), '--netlock', join(dir, `check-${round}.netlock.json`), '--upstream-ca', originCa, '--report', report, ...buildArgs, ctx];
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    let peakKb = 0;
    const poll = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8')
        .then((s) => (peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0))))
        .catch(() => undefined);
    }, 100);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearInterval(poll);
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(`build --check exited ${code}: ${stderr.slice(-3000)}`);
    const json = JSON.parse(await readFile(report, 'utf8')) as { record: { elapsedMs: number; digest: string }; replay: { elapsedMs: number } };
    return { ms, peakMb: (peakKb * 1024) / 1e6, recordMs: json.record.elapsedMs, replayMs: json.replay.elapsedMs, digest: json.record.digest };
  }

  const s = (ms: number): string => `${(ms / 1000).toFixed(1).padStart(6)} s`;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const directMs: number[] = [];
  const replayMs: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate the order: on a shared 2-core machine the load drifts, and neither side should always go first.
    let d: Awaited<ReturnType<typeof direct>>;
    let c: Awaited<ReturnType<typeof check>>;
    if (round % 2 === 1) {
      d = await direct(round);
      c = await check(round);
    } else {
      c = await check(round);
      d = await direct(round);
    }
    directMs.push(d.ms);
    replayMs.push(c.replayMs);
    process.stdout.write(
      [
        `round ${round}/${ROUNDS}${round % 2 === 1 ? ' (direct first)' : ' (check first)'}`,
        `  direct buildah build (host network)     ${s(d.ms)}   ${d.digest}`,
        `  build --check: record half              ${s(c.recordMs)}`,
        `  build --check: offline replay half      ${s(c.replayMs)}   ${c.digest}`,
        `  build --check: total                    ${s(c.ms)}   fetch-oracle peak RSS ${c.peakMb.toFixed(0)} MB`,
        `  replay / direct = ${(c.replayMs / d.ms).toFixed(2)}x`,
        '',
      ].join('\n'),
    );
  }
  const ratio = median(replayMs) / median(directMs);
  process.stdout.write(`median of ${ROUNDS}: direct ${s(median(directMs))}, offline replay half ${s(median(replayMs))}: ${ratio.toFixed(2)}x\n`);
  process.stdout.write(`${ratio <= LIMIT ? 'PASS' : 'FAIL'}: the offline rebuild took ${ratio.toFixed(2)}x the direct build (limit ${LIMIT}x)\n`);
  process.exitCode = ratio <= LIMIT ? 0 : 1;
} finally {
  await plain.close();
  await tls.close();
  await rm(dir, { recursive: true, force: true });
}

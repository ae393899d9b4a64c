import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, link, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuildah, storageArgs, storageOf } from '../../src/image/buildah.ts';
import { cleanEnv } from '../helpers/client-session.ts';
import { DEBIAN_MIRROR, DEBIAN_SUITE, debianMirrorProblem, debootstrapArgs, explainRun, packRootfs, recordedDebianBase } from '../helpers/debian-base.ts';
import type { RecordedBase } from '../helpers/debian-base.ts';
import { serveDebianRepo } from '../helpers/debian-repo.ts';
import type { DebianRepo } from '../helpers/debian-repo.ts';
import { fetchOracleRun } from '../helpers/fetch-oracle-run.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { CLI, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';

/**
 * `fetch-oracle build` with the real parts: real buildah 1.28 (chroot isolation, vfs storage), a base root
 * file system made by real debootstrap (--variant=minbase) from the real Debian mirror through
 * `fetch-oracle run` and rebuilt offline from its netlock in `unshare -n`, real apt-get installing from a
 * local Debian-style repository, real curl over HTTPS from a local origin. `build --check` records the
 * build, rebuilds it offline in an empty storage and compares the image IDs.
 *
 * The recorded base (netlock, data directory, packed tar) is the one shared, read-only fixture: recorded once
 * per run for every build test file (test/helpers/debian-base.ts). Every test works on its own state (its own
 * data directory, storage, netlock, build context) and none depends on another, so any one runs alone:
 * npx vitest run test/image/build.test.ts -t 'build --replay'. The offline rebuild of the base runs every time.
 */

const MIRROR = DEBIAN_MIRROR;
const SUITE = DEBIAN_SUITE;
const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const problem = findBuildah() === undefined ? 'buildah is not installed (bash scripts/setup.sh installs it)' : await debianMirrorProblem();
const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';

function fetchOracleBuild(args: string[], options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs?: number }): Promise<RunResult> {
  return run(process.execPath, [CLI, 'build', ...args], { ...options, timeoutMs: options.timeoutMs ?? 300_000 });
}

const explain = explainRun;

describe.skipIf(problem !== undefined && !inCi)(`fetch-oracle build (real buildah, debootstrap, apt-get, curl)${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let originCa: string;
  let plain: Origin;
  let tls: Origin;
  let repo: DebianRepo;
  let payload: Buffer;
  /** The shared fixture: the recorded base (read-only for the tests). */
  let base: RecordedBase;
  const env = (): NodeJS.ProcessEnv => cleanEnv(join(dir.path, 'home'), { DEBIAN_FRONTEND: 'noninteractive' });

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`${problem}; CI must run this file, so it fails instead of skipping`);
    dir = await tempDir('fo-build-');
    await mkdir(join(dir.path, 'home'), { recursive: true });
    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    plain = await startOrigin();
    tls = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
    const arch = (await run('dpkg', ['--print-architecture'])).stdout.trim();
    repo = await serveDebianRepo(plain, dir.path, { pkg: 'fo-build-demo', archs: [arch] });
    payload = Buffer.concat([...pseudoRandomChunks(3 * 1024 * 1024 + 7, 5)]);
    tls.route('/payload.bin', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(payload.byteLength) });
      r.end(payload);
    });
    base = await recordedDebianBase();
  }, 1_500_000);

  afterAll(async () => {
    await plain?.close();
    await tls?.close();
    await dir?.remove();
  });

  it('records debootstrap --variant=minbase from the Debian mirror through `fetch-oracle run`', async () => {
    const file = JSON.parse(await readFile(base.netlock, 'utf8')) as { entries: Array<{ url: string; status: number }> };
    // Every package debootstrap installed came through the proxy, and so did the signed Release file.
    expect(file.entries.map((e) => e.url)).toContain(`${MIRROR}/dists/${SUITE}/InRelease`);
    expect(file.entries.filter((e) => e.url.endsWith('.deb')).length).toBeGreaterThan(50);
    expect(file.entries.some((e) => /\/curl_[^/]+\.deb$/.test(e.url))).toBe(true);
    // The packed root file system holds what debootstrap installed.
    const list = await run('tar', ['-tf', base.tar], { timeoutMs: 120_000 });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')).toEqual(expect.arrayContaining(['./usr/bin/curl', './var/lib/dpkg/status']));
  });

  it('rebuilds that base offline from its netlock (debootstrap in unshare -n): the same tar, byte for byte', async () => {
    const rootfs = join(dir.path, 'rootfs-replay');
    const out = join(dir.path, 'rootfs-replay.tar');
    const report = join(dir.path, 'base-replay-report.json');
    const r = await fetchOracleRun(['--replay', base.netlock, '--data', base.data, '--report', report, '--', ...debootstrapArgs(rootfs)], { env: env(), cwd: dir.path, timeoutMs: 600_000 });
    expect(r.code, explain(r)).toBe(0);
    const rep = JSON.parse(await readFile(report, 'utf8')) as { misses: unknown[] };
    expect(rep.misses).toEqual([]);
    await packRootfs(rootfs, out);
    await rm(rootfs, { recursive: true, force: true });
    expect(await sha256File(out)).toBe(await sha256File(base.tar));
    await rm(out, { force: true });
  }, 600_000);

  /** A test's own build context: the base tar (hard-linked: nothing writes it), the Dockerfile, nothing else. */
  async function context(name: string, dockerfile: string): Promise<string> {
    const ctx = join(dir.path, name);
    await mkdir(ctx, { recursive: true });
    await link(base.tar, join(ctx, 'rootfs.tar')).catch(async () => copyFile(base.tar, join(ctx, 'rootfs.tar')));
    await writeFile(join(ctx, 'Dockerfile'), dockerfile);
    return ctx;
  }

  // An ordinary Dockerfile: nothing in it knows about fetch-oracle (no proxy, no CA, no cleanup).
  const APT_CURL_DOCKERFILE = `FROM scratch
ADD rootfs.tar /
ARG REPO
RUN echo "deb [trusted=yes] $REPO stable main" > /etc/apt/sources.list && apt-get update && apt-get install -y fo-build-demo
ARG PAYLOAD_URL
RUN curl -fsS "$PAYLOAD_URL" | sha256sum > /payload.sha256 && cat /payload.sha256
`;
  const buildArgs = (): string[] => ['--build-arg', `REPO=${repo.url}`, '--build-arg', `PAYLOAD_URL=${tls.url}/payload.bin`];

  /** A test's own data directory and buildah storage (the recorded base stays untouched). */
  function own(name: string): { data: string; storage: string } {
    return { data: join(dir.path, `data-${name}`), storage: join(dir.path, `storage-${name}`) };
  }

  it('build --check --scrub debian: apt-get install from a local repository and curl | sha256sum rebuild offline to the same image ID', async () => {
    const { data, storage } = own('apt');
    const ctx = await context('ctx-apt', APT_CURL_DOCKERFILE);
    const netlock = join(dir.path, 'apt.netlock.json');
    const report = join(dir.path, 'apt-check.json');
    const hitsBefore = new Map([...plain.hits, ...tls.hits]);
    const r = await fetchOracleBuild(['--check', '--scrub', 'debian', '--keep-storage', '--data', data, '--storage', storage, '--netlock', netlock, '--upstream-ca', originCa, '--report', report, ...buildArgs(), ctx], { env: env(), cwd: dir.path });
    expect(r.code, explain(r)).toBe(0);
    const digest = r.stdout.trim();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.stderr).toContain(`reproducible: the offline rebuild gave the recorded image ${digest}`);
    const json = JSON.parse(await readFile(report, 'utf8')) as { reproducible: boolean; record: { digest: string; count: number }; replay: { digest: string; replay: { misses: unknown[]; unused: unknown[] } } };
    expect(json.reproducible).toBe(true);
    expect(json.record.digest).toBe(digest);
    expect(json.replay.digest).toBe(digest);
    expect(json.replay.replay.misses).toEqual([]);
    expect(json.replay.replay.unused).toEqual([]);

    // The RUN steps really went through the recording proxy to the local origins, once each.
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; status: number; sha256: string }> };
    const urls = file.entries.map((e) => e.url);
    expect(urls).toContain(`${repo.url}/dists/stable/Release`);
    expect(urls.some((u) => u.endsWith('_all.deb'))).toBe(true);
    expect(file.entries.find((e) => e.url === `${tls.url}/payload.bin`)?.sha256).toBe(sha256(payload));
    expect(tls.hits.get('/payload.bin')).toBe((hitsBefore.get('/payload.bin') ?? 0) + 1);

    // What the image holds: the package, the payload's digest; not the scrubbed logs and caches, not the
    // oracle's CA (the bind mount left the base's bundle as it was).
    const kept = /storages kept: record (\S+), replay (\S+)/.exec(r.stderr);
    expect(kept, r.stderr).not.toBeNull();
    const s = storageOf(join(kept![2]!, '..'));
    const b = ['buildah', ...storageArgs(s)];
    const from = await run(b[0]!, [...b.slice(1), 'from', digest]);
    expect(from.code, from.stderr).toBe(0);
    const mount = await run(b[0]!, [...b.slice(1), 'mount', from.stdout.trim()]);
    expect(mount.code, mount.stderr).toBe(0);
    const root = mount.stdout.trim();
    try {
      expect(await readFile(join(root, repo.file.path), 'utf8')).toBe(repo.file.content);
      expect(await readFile(join(root, 'payload.sha256'), 'utf8')).toBe(`${sha256(payload)}  -\n`);
      expect(await readFile(join(root, 'var/lib/dpkg/status'), 'utf8')).toContain('Package: fo-build-demo');
      expect(existsSync(join(root, 'var/cache/apt/pkgcache.bin'))).toBe(false);
      expect(existsSync(join(root, 'var/log/apt/history.log'))).toBe(false);
      const bundle = await readFile(join(root, 'etc/ssl/certs/ca-certificates.crt'), 'utf8');
      expect(bundle).not.toContain('# fetch-oracle CA');
      expect(bundle.length).toBeGreaterThan(100_000); // Debian's bundle, from the base
      const inspect = await run(b[0]!, [...b.slice(1), 'inspect', '--type', 'image', digest]);
      expect(inspect.stdout).not.toContain('127.0.0.1:8899'); // no proxy address in config or history
    } finally {
      await run(b[0]!, [...b.slice(1), 'rm', '--all']);
      await rm(join(kept![1]!, '..', '..'), { recursive: true, force: true });
    }
  }, 600_000);

  it('build --check without --scrub: apt\'s logs and caches make it fail, and the report names them and the fix', async () => {
    const { data, storage } = own('noscrub');
    const ctx = await context('ctx-noscrub', APT_CURL_DOCKERFILE);
    const report = join(dir.path, 'noscrub-check.json');
    const r = await fetchOracleBuild(['--check', '--data', data, '--storage', storage, '--netlock', join(dir.path, 'noscrub.netlock.json'), '--upstream-ca', originCa, '--report', report, ...buildArgs(), ctx], { env: env(), cwd: dir.path });
    expect(r.code, explain(r)).toBe(1);
    // Without --layers the stage is one layer: the hint lists the instructions in it and the paths that differ.
    expect(r.stderr).toContain('first differing layer: 1 of 1, made by these instructions');
    expect(r.stderr).toMatch(/^ {4}ADD file:[0-9a-f]{64} in \/$/m);
    expect(r.stderr).toMatch(/^ {4}echo "deb \[trusted=yes\] \$REPO stable main" .* && apt-get update && apt-get install/m);
    // The logs and caches are named as such, with the profiles that keep them out.
    expect(r.stderr).toMatch(/^ {2}- logs \(3 paths\)\n(.*\n)*? {6}fix: --scrub logs keeps them out of the layers$/m);
    expect(r.stderr).toMatch(/^ {2}- caches \(\d paths?\)\n(.*\n)*? {6}fix: --scrub apt keeps them out of the layers$/m);
    const json = JSON.parse(await readFile(report, 'utf8')) as { difference: { layer: { paths: Array<{ path: string; what: string }> }; scrubHints: string[] } };
    const paths = json.difference.layer.paths.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['/var/log/dpkg.log', '/var/log/apt/history.log', '/var/cache/apt/pkgcache.bin']));
    // Nothing outside the logs and caches --scrub debian covers differs: the package, the payload are equal.
    expect(paths.filter((p) => !/^\/var\/(log|cache\/apt|cache\/ldconfig)\//.test(p))).toEqual([]);
    expect(json.difference.scrubHints).toEqual(expect.arrayContaining(['logs', 'apt']));
    expect(r.stderr).toMatch(/--scrub logs,apt/);
    expect(await readdir(storage)).toEqual([]); // both storages removed
  }, 600_000);

  it('build --replay: requests to a URL and to a host not in the netlock are reported by host and URL, exit 1', async () => {
    // Its own netlock, recorded here: the payload fetched with curl through `fetch-oracle run` on the host.
    const { data } = own('miss');
    const netlock = join(dir.path, 'miss.netlock.json');
    const rec = await fetchOracleRun(['--data', data, '--netlock', netlock, '--upstream-ca', originCa, '--', 'curl', '-sSf', '-o', '/dev/null', `${tls.url}/payload.bin`], { env: env(), cwd: dir.path });
    expect(rec.code, explain(rec)).toBe(0);
    expect((JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> }).entries.map((e) => e.url)).toEqual([`${tls.url}/payload.bin`]);
    const ctx = await context('ctx-miss', `FROM scratch
ADD rootfs.tar /
ARG PAYLOAD_URL
RUN curl -sS -o /dev/null "$PAYLOAD_URL"; curl -sS -o /dev/null https://not-recorded.example/x.tar.gz; echo "curl done"
`);
    const hits = new Map(tls.hits);
    const storageMiss = join(dir.path, 'storage-miss');
    const r = await fetchOracleBuild(['--replay', netlock, '--data', data, '--storage', storageMiss, '--build-arg', `PAYLOAD_URL=${tls.url}/other.bin`, ctx], { env: env(), cwd: dir.path });
    // The RUN step ignores curl's failures and succeeds: the misses alone fail the build.
    expect(r.code, explain(r)).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`MISS GET ${tls.url}/other.bin`);
    expect(r.stderr).toMatch(/nearest recorded: GET https:\/\/127\.0\.0\.1:\d+\/payload\.bin/);
    expect(r.stderr).toContain('MISS GET https://not-recorded.example/x.tar.gz');
    expect(r.stderr).toContain('hosts not in the netlock at all: not-recorded.example');
    expect(r.stderr).toContain('the build succeeded but made 2 request(s) outside the netlock');
    expect(tls.hits).toEqual(hits); // offline: the origin saw nothing
    await rm(storageMiss, { recursive: true, force: true });
  }, 600_000);
});

describe('fetch-oracle build: what it reports without the network (real buildah, busybox image)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-build-bb-');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  const busybox = async (name: string, steps: string): Promise<string> => {
    const ctx = join(dir.path, name);
    await mkdir(ctx, { recursive: true });
    await copyFile('/bin/busybox', join(ctx, 'busybox'));
    await writeFile(
      join(ctx, 'Dockerfile'),
      `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/usr/sbin", "/sbin"]
RUN ["/bin/busybox", "--install", "-s"]
${steps}`,
    );
    return ctx;
  };

  it.skipIf(findBuildah() === undefined && !inCi)('build --check of a step that is not reproducible even offline fails, naming the layer, its instruction and the path', async () => {
    const ctx = await busybox('ctx-random', 'RUN echo stable > /stable\nRUN head -c16 /dev/urandom > /x\n');
    const report = join(dir.path, 'random.json');
    // --layers (a buildah option, passed through): one layer per instruction, so the hint names the instruction.
    const r = await fetchOracleBuild(['--check', '--data', join(dir.path, 'data'), '--storage', join(dir.path, 'storage'), '--netlock', join(dir.path, 'random.netlock.json'), '--report', report, '--layers', ctx], { env: cleanEnv(dir.path), cwd: dir.path });
    expect(r.code, explain(r)).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/NOT reproducible: the offline rebuild gave sha256:[0-9a-f]{64}, the recorded build sha256:[0-9a-f]{64}/);
    expect(r.stderr).toContain('first differing layer: 5 of 5, made by: head -c16 /dev/urandom > /x');
    expect(r.stderr).toMatch(/paths that differ in that layer \(1\), by cause:\n {2}- random data \(1 path\), made by: `head -c16 \/dev\/urandom > \/x` \(reads random data\)\n {6}\/x: content\n {6}fix: .*Cartesi Machine/);
    const json = JSON.parse(await readFile(report, 'utf8')) as { reproducible: boolean; difference: { layer: { index: number; paths: Array<{ path: string; what: string }> } } };
    expect(json.reproducible).toBe(false);
    expect(json.difference.layer.index).toBe(5);
    expect(json.difference.layer.paths).toEqual([{ path: '/x', what: 'content' }]);
    // --check removes both storages when it is done.
    expect(await readdir(join(dir.path, 'storage'))).toEqual([]);
  }, 300_000);

  it('build without buildah on PATH says how to install it and exits 125', async () => {
    const ctx = await busybox('ctx-nobuildah', 'RUN true\n');
    const r = await fetchOracleBuild(['--data', join(dir.path, 'data'), ctx], { env: { ...cleanEnv(dir.path), PATH: join(dir.path, 'empty-path') }, cwd: dir.path });
    expect(r.code, explain(r)).toBe(125);
    expect(r.stderr).toContain('buildah was not found on PATH');
    expect(r.stderr).toContain('apt-get install -y buildah');
  });
});

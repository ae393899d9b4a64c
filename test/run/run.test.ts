import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv } from '../helpers/client-session.ts';
import { fetchOracleRun, fetchOracleRunArgv } from '../helpers/fetch-oracle-run.ts';
import { npmProject, serveNpmPackages } from '../helpers/npm-registry.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { buildWheel, serveCargoCrate, serveGitRepo, serveGoModule, serveSimpleIndex } from '../helpers/package-origins.ts';
import { ROOT, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { hashPaths } from '../helpers/tree-hash.ts';
import type { TreeHash } from '../helpers/tree-hash.ts';

/**
 * `fetch-oracle run` with real clients against real local origins (127.0.0.1 only): each build command is
 * recorded with `run -- COMMAND`, then run again in a fresh directory with `run --replay NETLOCK -- COMMAND`,
 * which puts it in a loopback-only network namespace (unshare -n) where the origins cannot be reached. The
 * files each command produced must hash the same, the origins must see nothing during the replay, and the
 * replay must report no miss and leave no recorded request unused.
 */

interface ReplayReportJson {
  commandExitCode: number;
  exitCode: number;
  entries: number;
  used: number;
  misses: Array<{ method: string; url: string; accept: string; nearest: Array<{ method: string; url: string; differs: string[] }> }>;
  unused: Array<{ method: string; url: string }>;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const BIG = 2 * 1024 * 1024 + 5;
/** What of a clone's .git is compared: HEAD, refs and the pack (not the index or logs, which hold timestamps). */
const GIT_KEEP = ['.git/HEAD', '.git/packed-refs', '.git/objects', '.git/objects/pack'];

describe('fetch-oracle run: record a build command, replay it offline (unshare -n) with identical results', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let originCa: string;
  let tls: Origin;
  let plain: Origin;
  let python: string;

  /** Requests the origins have answered so far (both of them). */
  const originHits = (): number => [...tls.hits.values(), ...plain.hits.values()].reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    dir = await tempDir('fo-run-');
    data = join(dir.path, 'data');
    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    // 0.0.0.0 is for Go: its proxy selection never proxies `localhost` or loopback IPs (net/http
    // ProxyFromEnvironment), but 0.0.0.0 is neither and Linux connects it to the local host.
    tls = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost', '0.0.0.0']));
    plain = await startOrigin();
    const which = await run('python3', ['-c', 'import sys; print(sys.executable)']);
    expect(which.code, `python3 is needed: ${which.stderr}`).toBe(0);
    python = which.stdout.trim();
  }, 60_000);

  afterAll(async () => {
    await tls?.close();
    await plain?.close();
    await dir?.remove();
  });

  interface RoundTrip {
    record: RunResult;
    replay: RunResult;
    recorded: Record<string, TreeHash>;
    replayed: Record<string, TreeHash>;
    report: ReplayReportJson;
    netlock: { count: number; entries: Array<{ method: string; url: string }> };
  }

  /**
   * Records `command` with `run` in `NAME/record`, replays it with `run --replay` in `NAME/replay` (each
   * prepared by `setup`), and hashes `outputs` (paths relative to the work directory) after each.
   */
  async function roundTrip(name: string, init: {
    setup?: (work: string) => Promise<void>;
    command: (work: string) => string[];
    env?: (work: string) => NodeJS.ProcessEnv;
    outputs: readonly string[];
    exclude?: (path: string) => boolean;
    timeoutMs?: number;
  }): Promise<RoundTrip> {
    const netlockPath = join(dir.path, name, 'build.netlock.json');
    const reportPath = join(dir.path, name, 'replay-report.json');
    const phase = async (which: 'record' | 'replay'): Promise<{ result: RunResult; hashes: Record<string, TreeHash> }> => {
      const work = join(dir.path, name, which);
      await mkdir(join(work, 'home'), { recursive: true });
      await init.setup?.(work);
      const env = { ...cleanEnv(join(work, 'home')), ...(init.env?.(work) ?? {}) };
      const args = which === 'record'
        ? ['--data', data, '--netlock', netlockPath, '--upstream-ca', originCa, '--', ...init.command(work)]
        : ['--replay', netlockPath, '--data', data, '--report', reportPath, '--', ...init.command(work)];
      const result = await fetchOracleRun(args, { env, cwd: work, timeoutMs: init.timeoutMs ?? 90_000 });
      expect(result.code, `${which} ${name}: exit ${result.code}\n${result.stdout}\n${result.stderr}`).toBe(0);
      return { result, hashes: await hashPaths(work, init.outputs, init.exclude) };
    };
    const before = originHits();
    const record = await phase('record');
    expect(originHits(), 'the recording went through to the origins').toBeGreaterThan(before);
    const netlock = JSON.parse(await readFile(netlockPath, 'utf8')) as RoundTrip['netlock'];
    expect(netlock.count).toBeGreaterThan(0);
    const hitsAfterRecord = originHits();
    const replay = await phase('replay');
    expect(originHits(), 'nothing reached an origin during the replay').toBe(hitsAfterRecord);
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as ReplayReportJson;
    expect(report.misses, replay.result.stderr).toEqual([]);
    expect(report.used).toBe(netlock.count);
    expect(report.unused).toEqual([]);
    expect(replay.result.stderr).not.toContain('MISS');
    for (const out of init.outputs) {
      expect(Object.keys(record.hashes[out]!.files).length, `${out} is empty after the recording`).toBeGreaterThan(0);
    }
    expect(replay.hashes).toEqual(record.hashes);
    return { record: record.result, replay: replay.result, recorded: record.hashes, replayed: replay.hashes, report, netlock };
  }

  it('curl: HTTP and HTTPS (a 2 MiB body) replay byte for byte', async () => {
    plain.route('/run/plain.txt', (_q, r) => {
      r.end('plain http file for fetch-oracle run\n');
    });
    tls.route('/run/big.bin', async (_q, r) => {
      r.writeHead(200, { 'content-length': String(BIG) });
      for (const c of pseudoRandomChunks(BIG, 11)) if (!r.write(c)) await new Promise((d) => r.once('drain', d));
      r.end();
    });
    const t = await roundTrip('curl', {
      command: () => ['sh', '-c', `curl -sSf -o out/plain.txt ${plain.url}/run/plain.txt && curl -sSf -o out/big.bin ${tls.url}/run/big.bin`],
      setup: (work) => mkdir(join(work, 'out'), { recursive: true }).then(() => undefined),
      outputs: ['out'],
    });
    expect(Object.keys(t.replayed['out']!.files).sort()).toEqual(['big.bin', 'plain.txt']);
    expect(t.netlock.entries.map((e) => e.url).sort()).toEqual([`${plain.url}/run/plain.txt`, `${tls.url}/run/big.bin`].sort());
    expect(t.record.stderr).toMatch(/recorded 2 request\(s\): netlock bafy\w+ written to /);
  });

  it('npm ci: a lockfile install from a registry-like origin replays to the same node_modules', async () => {
    const registry = tls.url.replace('127.0.0.1', 'localhost'); // npm checks an IP-literal registry's cert against "localhost"
    const pkgDir = join(dir.path, 'npm-packages');
    const packages = [
      { name: 'run-left-x', version: '1.0.0', dependencies: { 'run-right-x': '^2.0.0' } },
      { name: 'run-right-x', version: '2.1.0' },
    ];
    await serveNpmPackages(tls, pkgDir, packages, registry);
    const { packageJson, lockJson } = await npmProject(pkgDir, packages, registry, { 'run-left-x': '^1.0.0' });
    const t = await roundTrip('npm', {
      setup: async (work) => {
        await writeFile(join(work, 'package.json'), packageJson);
        await writeFile(join(work, 'package-lock.json'), lockJson);
      },
      command: (work) => ['npm', 'ci', '--no-audit', '--no-fund', '--cache', join(work, '.npm-cache'), '--registry', `${registry}/`],
      env: () => ({ npm_config_update_notifier: 'false' }),
      outputs: ['node_modules'],
      timeoutMs: 120_000,
    });
    expect(t.replayed['node_modules']!.files['run-right-x/index.js']).toBeDefined();
    expect(await readFile(join(dir.path, 'npm', 'replay', 'node_modules', 'run-right-x', 'index.js'), 'utf8')).toContain('run-right-x@2.1.0');
    expect(t.netlock.entries.map((e) => e.url).sort()).toEqual(packages.map((p) => `${registry}/${p.name}/-/${p.name}-${p.version}.tgz`).sort());
  }, 150_000);

  it('pip download: a wheel from a PEP 503 simple index replays with the same bytes', async () => {
    const wheelName = 'forundemo-1.0.0-py3-none-any.whl';
    const wheel = await buildWheel(python, join(dir.path, wheelName), 'forundemo', '1.0.0');
    serveSimpleIndex(tls, 'forundemo', wheelName, wheel);
    const t = await roundTrip('pip', {
      command: (work) => [python, '-m', 'pip', 'download', '--no-deps', '--no-cache-dir', '--retries', '0', '--timeout', '15', '--index-url', `${tls.url}/simple/`, '--dest', join(work, 'wheels'), 'forundemo==1.0.0'],
      env: () => ({ PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONDONTWRITEBYTECODE: '1' }),
      outputs: ['wheels'],
    });
    expect(t.replayed['wheels']!.files[wheelName]).toBe(`file:${sha256(wheel)}`);
  });

  it('cargo fetch: a crate from a sparse registry (source replacement for crates-io) replays to the same registry cache and Cargo.lock', async () => {
    const rustup = await run('rustup', ['which', 'cargo']);
    const cargo = rustup.code === 0 ? rustup.stdout.trim() : 'cargo';
    const rustcWhich = await run('rustup', ['which', 'rustc']);
    const rustc = rustcWhich.code === 0 ? rustcWhich.stdout.trim() : 'rustc';
    const registry = tls.url.replace('127.0.0.1', 'localhost');
    const { indexUrl, crate } = await serveCargoCrate(tls, join(dir.path, 'cargo-registry'), { name: 'forundemo', version: '0.1.0' }, registry);
    const t = await roundTrip('cargo', {
      setup: async (work) => {
        await mkdir(join(work, 'app', 'src'), { recursive: true });
        await mkdir(join(work, 'cargo-home'), { recursive: true });
        await writeFile(join(work, 'app', 'Cargo.toml'), '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nforundemo = "0.1"\n');
        await writeFile(join(work, 'app', 'src', 'main.rs'), 'fn main() {\n    println!("{}", forundemo::greeting());\n}\n');
        await writeFile(
          join(work, 'cargo-home', 'config.toml'),
          `[source.crates-io]\nreplace-with = "fo-local"\n\n[source.fo-local]\nregistry = "${indexUrl}"\n\n[registries.fo-local]\nindex = "${indexUrl}"\n\n[http]\nmultiplexing = false\n\n[net]\nretry = 0\n`,
        );
      },
      command: (work) => [cargo, 'fetch', '--manifest-path', join(work, 'app', 'Cargo.toml')],
      env: (work) => ({ CARGO_HOME: join(work, 'cargo-home'), RUSTC: rustc, CARGO_TERM_COLOR: 'never' }),
      outputs: ['app/Cargo.lock', 'cargo-home/registry/cache', 'cargo-home/registry/src'],
    });
    const cached = Object.entries(t.replayed['cargo-home/registry/cache']!.files);
    expect(cached).toEqual([[expect.stringMatching(/\/forundemo-0\.1\.0\.crate$/), `file:${sha256(crate)}`]]);
    expect(await readFile(join(dir.path, 'cargo', 'replay', 'app', 'Cargo.lock'), 'utf8')).toContain('name = "forundemo"');
  });

  it('go mod download: a module from a GOPROXY origin replays to the same module cache and go.sum', async () => {
    const mod = { path: 'example.com/forundemo', version: 'v1.0.0' };
    const { zip } = await serveGoModule(tls, join(dir.path, 'goproxy'), python, mod);
    const goproxy = tls.url.replace('127.0.0.1', '0.0.0.0');
    const t = await roundTrip('go', {
      setup: async (work) => {
        await mkdir(join(work, 'app'), { recursive: true });
        await writeFile(join(work, 'app', 'go.mod'), `module example.com/app\n\ngo 1.21\n\nrequire ${mod.path} ${mod.version}\n`);
        await writeFile(join(work, 'app', 'main.go'), `package main\n\nimport "${mod.path}"\n\nfunc main() { println(forundemo.Greeting()) }\n`);
      },
      command: (work) => ['sh', '-c', `cd '${join(work, 'app')}' && go mod download -x all 2>'${join(work, 'go-download.log')}' && go mod verify`],
      env: (work) => ({
        GOPROXY: goproxy,
        GOFLAGS: '-mod=mod',
        GOSUMDB: 'off',
        GONOSUMDB: 'example.com',
        GONOSUMCHECK: '1',
        GOPRIVATE: '',
        GOTOOLCHAIN: 'local',
        GOENV: 'off',
        GOPATH: join(work, 'gopath'),
        GOMODCACHE: join(work, 'gomodcache'),
        GOCACHE: join(work, 'gocache'),
      }),
      outputs: ['app/go.sum', 'gomodcache'],
    });
    const files = t.replayed['gomodcache']!.files;
    expect(files[`cache/download/${mod.path}/@v/${mod.version}.zip`]).toBe(`file:${sha256(zip)}`);
    expect(files[`${mod.path}@${mod.version}/forundemo.go`]).toBeDefined();
    expect(t.netlock.entries.every((e) => e.url.startsWith(goproxy))).toBe(true);
  });

  it('git clone: a repository over smart HTTPS (git http-backend) replays to the same commit, files and pack', async () => {
    const { commit } = await serveGitRepo(tls, join(dir.path, 'git-origin'), 'forundemo', { 'README.md': '# forundemo\n', 'src/main.c': 'int main(void) { return 0; }\n' });
    const url = `${tls.url.replace('127.0.0.1', 'localhost')}/forundemo.git`;
    const t = await roundTrip('git', {
      command: (work) => ['sh', '-c', `git clone -q '${url}' '${join(work, 'clone')}' && git -C '${join(work, 'clone')}' rev-parse HEAD >'${join(work, 'head.txt')}'`],
      env: () => ({ GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' }),
      outputs: ['head.txt', 'clone'],
      exclude: (p) => p.startsWith('.git/') && !GIT_KEEP.includes(p) && !p.startsWith('.git/objects/pack/'),
    });
    expect((await readFile(join(dir.path, 'git', 'replay', 'head.txt'), 'utf8')).trim()).toBe(commit);
    expect(Object.keys(t.replayed['clone']!.files)).toEqual(expect.arrayContaining(['README.md', 'src/main.c', '.git/HEAD']));
    expect(Object.keys(t.replayed['clone']!.files).some((p) => p.endsWith('.pack'))).toBe(true);
    expect(t.netlock.entries.map((e) => `${e.method} ${e.url.replace(/^https:\/\/[^/]+/, '')}`)).toEqual(
      expect.arrayContaining(['GET /forundemo.git/info/refs?service=git-upload-pack', 'POST /forundemo.git/git-upload-pack']),
    );
  });

  it('a request outside the netlock fails the replay: the report names the host and URL, --allow-misses accepts it', async () => {
    tls.route('/run/only.txt', (_q, r) => {
      r.end('the only recorded file\n');
    });
    const work = join(dir.path, 'miss');
    await mkdir(join(work, 'home'), { recursive: true });
    const env = cleanEnv(join(work, 'home'));
    const netlock = join(work, 'miss.netlock.json');
    const rec = await fetchOracleRun(['--data', data, '--netlock', netlock, '--upstream-ca', originCa, '--', 'curl', '-sSf', '-o', 'recorded.txt', `${tls.url}/run/only.txt`], { env, cwd: work });
    expect(rec.code, rec.stderr).toBe(0);
    const hits = originHits();

    // 1. The command fails on the 504 (curl -f: exit 22): run exits with its code and lists the miss.
    const foreign = 'https://not-recorded.invalid/pkg/archive.tar.gz?v=2';
    const probe = `curl -s -o /dev/null --noproxy '*' --max-time 5 ${tls.url}/run/only.txt; echo $? >direct.txt`;
    const failed = await fetchOracleRun(
      ['--replay', netlock, '--data', data, '--report', 'report-1.json', '--', 'sh', '-c', `${probe}; curl -sSf -o replayed.txt ${tls.url}/run/only.txt && curl -sSf -o foreign.tgz '${foreign}'`],
      { env, cwd: work },
    );
    expect(failed.code, failed.stderr).toBe(22);
    expect(failed.stderr).toContain(`MISS GET ${foreign}`);
    expect(failed.stderr).toContain('hosts not in the netlock at all: not-recorded.invalid');
    expect(failed.stderr).toContain('nearest recorded: none (the netlock has no request to https://not-recorded.invalid)');
    expect(failed.stderr).toMatch(/the command failed \(exit 22\) and made 1 request\(s\) outside the netlock/);
    expect(await readFile(join(work, 'replayed.txt'))).toEqual(await readFile(join(work, 'recorded.txt')));
    // The origin really is unreachable from inside: curl's direct attempt is refused (exit 7).
    expect((await readFile(join(work, 'direct.txt'), 'utf8')).trim()).toBe('7');
    const report = JSON.parse(await readFile(join(work, 'report-1.json'), 'utf8')) as ReplayReportJson;
    expect(report.commandExitCode).toBe(22);
    expect(report.misses.map((m) => `${m.method} ${m.url}`)).toEqual([`GET ${foreign}`]);

    // 2. The command ignores the failure and succeeds: the miss alone fails the run (exit 1), naming the
    //    nearest recorded request on the same host.
    const tolerant = ['sh', '-c', `curl -sSf -o replayed.txt ${tls.url}/run/only.txt && curl -s -o /dev/null ${tls.url}/run/other.txt; exit 0`];
    const missed = await fetchOracleRun(['--replay', netlock, '--data', data, '--', ...tolerant], { env, cwd: work });
    expect(missed.code, missed.stderr).toBe(1);
    expect(missed.stderr).toContain(`MISS GET ${tls.url}/run/other.txt`);
    expect(missed.stderr).toContain(`nearest recorded: GET ${tls.url}/run/only.txt (differs in: path)`);
    expect(missed.stderr).toContain('the command succeeded but made 1 request(s) outside the netlock: failing (--allow-misses to accept that)');
    expect(missed.stderr).not.toContain('hosts not in the netlock at all');

    // 3. --allow-misses: the command's own exit code, with the same report.
    const allowed = await fetchOracleRun(['--replay', netlock, '--data', data, '--allow-misses', '--', ...tolerant], { env, cwd: work });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).toContain(`MISS GET ${tls.url}/run/other.txt`);
    expect(originHits()).toBe(hits);
  });

  it('forwards SIGTERM to the command (record and replay), exits with its code and still writes the netlock', async () => {
    const work = join(dir.path, 'signals');
    await mkdir(join(work, 'home'), { recursive: true });
    const env = cleanEnv(join(work, 'home'));
    const netlock = join(work, 'signals.netlock.json');
    const script = (tag: string): string[] => ['sh', '-c', `trap 'echo TERM >got-term-${tag}; exit 7' TERM; touch ready-${tag}; while :; do sleep 0.05; done`];
    const runAndSignal = async (tag: string, args: string[]): Promise<{ code: number | null; stderr: string }> => {
      const [node, ...rest] = fetchOracleRunArgv([...args, '--', ...script(tag)]);
      const child = spawn(node!, rest, { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      for (let i = 0; i < 300 && !existsSync(join(work, `ready-${tag}`)); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(join(work, `ready-${tag}`)), stderr).toBe(true);
      child.kill('SIGTERM');
      return { code: await exited, stderr };
    };
    const recorded = await runAndSignal('record', ['--data', data, '--netlock', netlock]);
    expect(recorded.code, recorded.stderr).toBe(7);
    expect(await readFile(join(work, 'got-term-record'), 'utf8')).toBe('TERM\n');
    expect(JSON.parse(await readFile(netlock, 'utf8'))).toMatchObject({ count: 0 });
    const replayed = await runAndSignal('replay', ['--replay', netlock, '--data', data]);
    expect(replayed.code, replayed.stderr).toBe(7);
    expect(await readFile(join(work, 'got-term-replay'), 'utf8')).toBe('TERM\n');
  });

  it('says clearly why it cannot replay: no unshare on PATH, unshare not permitted (no CAP_SYS_ADMIN), no command', async () => {
    const work = join(dir.path, 'errors');
    await mkdir(join(work, 'home'), { recursive: true });
    const netlock = join(work, 'empty.netlock.json');
    const rec = await fetchOracleRun(['--data', data, '--netlock', netlock, '--', 'true'], { env: cleanEnv(join(work, 'home')), cwd: work });
    expect(rec.code, rec.stderr).toBe(0);

    const noUnshare = await fetchOracleRun(['--replay', netlock, '--data', data, '--', 'true'], { env: { ...cleanEnv(join(work, 'home')), PATH: join(work, 'empty-path') }, cwd: work });
    expect(noUnshare.code).toBe(125);
    expect(noUnshare.stderr).toContain('`unshare` was not found on PATH');

    // As root, but with CAP_SYS_ADMIN dropped from the bounding set: like an unprivileged user.
    const [node, ...rest] = fetchOracleRunArgv(['--replay', netlock, '--data', data, '--', 'true']);
    const unprivileged = await run('setpriv', ['--bounding-set', '-sys_admin', '--', node!, ...rest], { env: cleanEnv(join(work, 'home')), cwd: work });
    expect(unprivileged.code, unprivileged.stderr).toBe(125);
    expect(unprivileged.stderr).toMatch(/unshare -n is not permitted here \(.*Operation not permitted.*\)\. run --replay creates a network namespace, which needs root/);

    const noCommand = await fetchOracleRun(['--replay', netlock], { env: cleanEnv(join(work, 'home')), cwd: ROOT });
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain('run needs a command');
  });
});

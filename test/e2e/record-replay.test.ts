import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNpmPackages } from '../helpers/npm-registry.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { expectReplayMiss, parseCurlHead } from '../helpers/replay-miss.ts';
import { CLI, cli, run, startDaemon, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';

/**
 * The whole product as a user runs it: `fetch-oracle record` with real curl and npm against real local origins,
 * SIGTERM writes the netlock, `verify` checks it, then `fetch-oracle replay` runs with curl and npm inside a
 * loopback-only network namespace (unshare -n) where no origin is reachable.
 */
describe('record then offline replay (CLI, curl, npm, unshare -n)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let tlsOrigin: Origin;
  let data: string;
  let netlock: string;
  let originCa: string;
  let registry: string;
  const BIG = 5 * 1024 * 1024 + 3;
  const cleanEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });

  beforeAll(async () => {
    dir = await tempDir('fo-e2e-');
    data = join(dir.path, 'data');
    netlock = join(dir.path, 'build.netlock.json');
    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    origin = await startOrigin();
    tlsOrigin = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
    registry = tlsOrigin.url.replace('127.0.0.1', 'localhost');
    origin.route('/file.txt', (_q, r) => {
      r.end('plain http file\n');
    });
    tlsOrigin.route('/big.bin', async (_q, r) => {
      r.writeHead(200, { 'content-length': String(BIG) });
      for (const c of pseudoRandomChunks(BIG, 3)) if (!r.write(c)) await new Promise((d) => r.once('drain', d));
      r.end();
    });
    await serveNpmPackages(tlsOrigin, join(dir.path, 'pkgs'), [
      { name: 'left-pad-x', version: '1.0.0', dependencies: { 'right-pad-x': '^2.0.0' } },
      { name: 'right-pad-x', version: '2.1.0' },
    ], registry);
  }, 60_000);

  afterAll(async () => {
    await origin.close();
    await tlsOrigin.close();
    await dir.remove();
  });

  async function npmInstall(env: NodeJS.ProcessEnv, project: string): Promise<string> {
    const r = await run('npm', ['install', '--no-audit', '--no-fund', '--cache', join(project, '.npm-cache'), '--registry', `${registry}/`], { cwd: project, env, timeoutMs: 120_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    return readFile(join(project, 'node_modules', 'right-pad-x', 'index.js'), 'utf8');
  }

  it('records curl (HTTP, HTTPS, 5 MiB) and npm install, writes the netlock on SIGTERM, and verifies it', async () => {
    const daemon = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock, '--upstream-ca', originCa, '--admin', '127.0.0.1:0'], cleanEnv());
    const exported = await cli(['env', '--listen', daemon.url.replace('http://', ''), '--data', data], { env: cleanEnv() });
    expect(exported.code).toBe(0);
    const env: NodeJS.ProcessEnv = { ...cleanEnv() };
    for (const m of exported.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]!] = m[2]!.replace(/^'|'$/g, '');
    expect(env['HTTPS_PROXY']).toBe(daemon.url);
    expect(env['NODE_EXTRA_CA_CERTS']).toBe(join(data, 'ca-bundle.pem'));

    const a = await run('curl', ['-sS', '--noproxy', '', `${origin.url}/file.txt`], { env });
    expect(a.stdout).toBe('plain http file\n');
    const b = await run('curl', ['-sS', '--noproxy', '', '-o', join(dir.path, 'big.rec'), `${tlsOrigin.url}/big.bin`], { env });
    expect(b.code, b.stderr).toBe(0);
    const project = join(dir.path, 'proj-record');
    await run('mkdir', ['-p', project]);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'proj', version: '1.0.0', dependencies: { 'left-pad-x': '^1.0.0' } }));
    expect(await npmInstall({ ...env, npm_config_noproxy: '' }, project)).toContain('right-pad-x@2.1.0');

    const stats = (await (await fetch(`${daemon.admin!}/stats`)).json()) as { upstreamFetches: number };
    expect(stats.upstreamFetches).toBeGreaterThanOrEqual(6);
    expect(await daemon.stop('SIGTERM')).toBe(0);

    const file = JSON.parse(await readFile(netlock, 'utf8')) as { netlock: string; count: number; entries: Array<{ url: string }> };
    expect(file.count).toBe(file.entries.length);
    expect(file.entries.map((e) => e.url)).toEqual(expect.arrayContaining([`${origin.url}/file.txt`, `${tlsOrigin.url}/big.bin`, `${registry}/right-pad-x`]));
    const verified = await cli(['verify', netlock, '--data', data], { env: cleanEnv() });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toContain('OK: every signature, block and body verified');
  }, 180_000);

  it('replays every byte offline in a loopback-only namespace and explains a miss', async () => {
    const project = join(dir.path, 'proj-replay');
    await run('mkdir', ['-p', project]);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'proj', version: '1.0.0', dependencies: { 'left-pad-x': '^1.0.0' } }));
    const bundle = join(data, 'ca-bundle.pem');
    const script = `
set -u
ip link set lo up
node ${CLI} replay --netlock ${netlock} --data ${data} --listen 127.0.0.1:8899 >${dir.path}/replay.out 2>${dir.path}/replay.err &
pid=$!
for i in $(seq 1 100); do grep -q listening ${dir.path}/replay.out 2>/dev/null && break; sleep 0.1; done
export HTTP_PROXY=http://127.0.0.1:8899 HTTPS_PROXY=http://127.0.0.1:8899 http_proxy=http://127.0.0.1:8899 https_proxy=http://127.0.0.1:8899 NO_PROXY= no_proxy= CURL_CA_BUNDLE=${bundle} NODE_EXTRA_CA_CERTS=${bundle} npm_config_cafile=${bundle} npm_config_noproxy=
echo "direct: $(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' ${origin.url}/file.txt; echo " rc=$?")"
echo "file: $(curl -sS ${origin.url}/file.txt)"
curl -sS -o ${dir.path}/big.rep ${tlsOrigin.url}/big.bin
echo "miss: $(curl -s -D ${dir.path}/miss.head -w ' status=%{http_code}' ${tlsOrigin.url}/not-recorded?x=1)"
cd ${project} && npm install --no-audit --no-fund --cache ${project}/.npm-cache --registry ${registry}/ >${dir.path}/npm.out 2>&1; echo "npm rc=$?"
kill -TERM $pid; wait $pid; echo "replay rc=$?"
`;
    const hitsBefore = tlsOrigin.hits.get('/big.bin');
    const r = await run('unshare', ['-n', 'bash', '-c', script], { env: { ...cleanEnv(), HOME: dir.path }, timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/direct: 000 rc=7/); // the origin really is unreachable in the namespace
    expect(r.stdout, r.stderr + await readFile(join(dir.path, 'replay.err'), 'utf8')).toContain('file: plain http file');
    const rec = await readFile(join(dir.path, 'big.rec'));
    const rep = await readFile(join(dir.path, 'big.rep'));
    expect(rep.byteLength).toBe(BIG);
    expect(createHash('sha256').update(rep).digest('hex')).toBe(createHash('sha256').update(rec).digest('hex'));
    expect(r.stdout).toMatch(/miss: fetch-oracle replay miss: GET https:\/\/127\.0\.0\.1:\d+\/not-recorded\?x=1/);
    expect(r.stdout).toContain('status=504');
    const missBody = /^miss: ([\s\S]*?) status=\d+$/m.exec(r.stdout)?.[1] ?? '';
    expectReplayMiss({ ...parseCurlHead(await readFile(join(dir.path, 'miss.head'), 'utf8')), body: missBody }, 'GET', `${tlsOrigin.url}/not-recorded?x=1`);
    expect(r.stdout, await readFile(join(dir.path, 'npm.out'), 'utf8')).toContain('npm rc=0');
    expect(await readFile(join(project, 'node_modules', 'right-pad-x', 'index.js'), 'utf8')).toContain('right-pad-x@2.1.0');
    expect(r.stdout).toContain('replay rc=0');
    expect(tlsOrigin.hits.get('/big.bin')).toBe(hitsBefore);
    expect(await readFile(join(dir.path, 'replay.err'), 'utf8')).toMatch(/replay miss: GET https:\/\/127\.0\.0\.1:\d+\/not-recorded/);
    expect((await readdir(join(project, 'node_modules'))).sort()).toEqual(expect.arrayContaining(['left-pad-x', 'right-pad-x']));
  }, 180_000);
});

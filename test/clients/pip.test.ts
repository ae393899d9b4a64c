import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, replayScript, reportPath, startRecording } from '../helpers/client-session.ts';
import type { ReplayReport } from '../helpers/client-session.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { run, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { buildWheel, serveSimpleIndex } from '../helpers/package-origins.ts';

/**
 * Real pip (python3 -m pip) against a local PEP 503 simple index served over HTTPS: `pip download` through
 * `fetch-oracle record`, then the same downloads inside a loopback-only network namespace (`unshare -n`)
 * through `fetch-oracle replay`, where the index is unreachable.
 */

const PKG = 'fodemo';
const VERSION = '1.0.0';
const WHEEL = `${PKG}-${VERSION}-py3-none-any.whl`;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');


describe('pip download through fetch-oracle (HTTPS PEP 503 index, record then offline replay in unshare -n)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let python: string;
  let data: string;
  let netlock: string;
  let originCa: string;
  let index: string;
  let wheel: Buffer;
  let recorded = false;
  /** pip with no config file, no version check (it would query pypi.org), no cache, no retries. */
  const pipEnv = (): NodeJS.ProcessEnv =>
    cleanEnv(dir.path, { PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONDONTWRITEBYTECODE: '1' });
  const pipArgs = (dest: string): string[] => ['-m', 'pip', 'download', '--no-deps', '--no-cache-dir', '--retries', '0', '--timeout', '15', '--index-url', `${index}/simple/`, '--dest', dest];

  beforeAll(async () => {
    dir = await tempDir('fo-pip-');
    data = join(dir.path, 'data');
    netlock = join(dir.path, 'pip.netlock.json');
    // pyenv shims need the real HOME: resolve the interpreter once, then run it by absolute path.
    const which = await run('python3', ['-c', 'import sys; print(sys.executable)']);
    expect(which.code, `python3 is needed (Debian: python3, python3-pip): ${which.stderr}`).toBe(0);
    python = which.stdout.trim();
    const pipVersion = await run(python, ['-m', 'pip', '--version'], { env: pipEnv() });
    expect(pipVersion.code, `pip is needed (Debian: python3-pip): ${pipVersion.stderr}`).toBe(0);

    wheel = await buildWheel(python, join(dir.path, WHEEL), PKG, VERSION);

    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    origin = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
    index = origin.url; // pip (urllib3) checks an IP literal against the IP SAN: 127.0.0.1 works
    serveSimpleIndex(origin, PKG, WHEEL, wheel, index);
  }, 60_000);

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  it('records pip download once per URL: a second pip run through the recorder is answered from the record', async () => {
    const rec = await startRecording({ data, netlock, home: dir.path, upstreamCa: originCa, extraEnv: pipEnv() });
    try {
      expect(rec.env['PIP_CERT']).toBe(join(data, 'ca-bundle.pem'));
      expect(rec.env['HTTPS_PROXY']).toBe(rec.daemon.url);
      for (const dest of ['dl-1', 'dl-2']) {
        const r = await run(python, [...pipArgs(join(dir.path, dest)), `${PKG}==${VERSION}`], { env: rec.env });
        expect(r.code, `${r.stdout}\n${r.stderr}\n${rec.daemon.stderr()}`).toBe(0);
        expect(sha256(await readFile(join(dir.path, dest, WHEEL)))).toBe(sha256(wheel));
      }
      // pip really went through the proxy (the origin saw requests) and the recorder fetched each URL once.
      expect(origin.hits.get(`/simple/${PKG}/`)).toBe(1);
      expect(origin.hits.get(`/files/${WHEEL}`)).toBe(1);
      const stats = (await (await fetch(`${rec.daemon.admin!}/stats`)).json()) as { upstreamFetches: number };
      expect(stats.upstreamFetches).toBe(2);
    } finally {
      expect(await rec.daemon.stop('SIGTERM')).toBe(0);
    }
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { count: number; entries: Array<{ url: string }> };
    expect(file.entries.map((e) => e.url).sort()).toEqual([`${index}/files/${WHEEL}`, `${index}/simple/${PKG}/`].sort());
    recorded = true;
  }, 60_000);

  it('replays offline in unshare -n: identical wheel, --hash checking passes (a wrong hash fails), an unrecorded project is a named 504 miss', async () => {
    expect(recorded, 'the recording test must pass first').toBe(true);
    const work = join(dir.path, 'replay');
    await mkdir(work, { recursive: true });
    const good = join(work, 'req-good.txt');
    const bad = join(work, 'req-bad.txt');
    await writeFile(good, `${PKG}==${VERSION} --hash=sha256:${sha256(wheel)}\n`);
    await writeFile(bad, `${PKG}==${VERSION} --hash=sha256:${'0'.repeat(64)}\n`);
    const pip = (dest: string, rest: string): string => `'${python}' ${pipArgs(join(work, dest)).join(' ')} ${rest}`;
    const body = `
${pip('plain', `${PKG}==${VERSION}`)} >'${work}/plain.log' 2>&1; echo "plain rc=$?"
${pip('hashed', `--require-hashes -r '${good}'`)} >'${work}/hashed.log' 2>&1; echo "hashed rc=$?"
${pip('wrong', `--require-hashes -r '${bad}'`)} >'${work}/wrong.log' 2>&1; echo "wrong rc=$?"
${pip('miss', '-vv notrecorded==1.0.0')} >'${work}/miss.log' 2>&1; echo "miss rc=$?"
`;
    const hits = new Map(origin.hits);
    const script = replayScript({ netlock, data, workDir: work, body, probe: `${index}/simple/${PKG}/` });
    const r = await run('unshare', ['-n', 'bash', '-c', script], { env: pipEnv(), timeoutMs: 90_000 });
    const log = async (name: string): Promise<string> => readFile(join(work, name), 'utf8').catch(() => `(no ${name})`);
    const context = `${r.stdout}\n${r.stderr}\n${await log('replay.err')}`;
    expect(r.code, context).toBe(0);
    // The origin is unreachable from inside the namespace (curl exit 7: connection refused).
    expect(r.stdout, context).toContain('direct rc=7');

    expect(r.stdout, `${context}\n${await log('plain.log')}`).toContain('plain rc=0');
    expect(sha256(await readFile(join(work, 'plain', WHEEL)))).toBe(sha256(wheel));

    expect(r.stdout, `${context}\n${await log('hashed.log')}`).toContain('hashed rc=0');
    expect(await readFile(join(work, 'hashed', WHEEL))).toEqual(wheel);

    // Hash checking is really on: the same replayed bytes against a wrong pinned hash are rejected.
    expect(r.stdout, await log('wrong.log')).toMatch(/wrong rc=[1-9]/);
    expect(await log('wrong.log')).toContain('THESE PACKAGES DO NOT MATCH THE HASHES');
    expect(await readdir(join(work, 'wrong')).catch(() => [])).not.toContain(WHEEL);

    // A project that was never recorded: pip fails, and the replay names the URL it could not answer.
    const missLog = await log('miss.log');
    expect(r.stdout, missLog).toMatch(/miss rc=[1-9]/);
    expect(missLog).toContain('No matching distribution found for notrecorded==1.0.0');
    // pip -vv shows why: the replay proxy answered 504 (not a connection error) for exactly that URL.
    expect(missLog).toContain(`Could not fetch URL ${index}/simple/notrecorded/: 504 Server Error`);
    expect(await log('replay.err')).toContain(`replay miss: GET ${index}/simple/notrecorded/`);
    expect(r.stdout).toContain('replay rc=0');
    const report = JSON.parse(await readFile(reportPath(work), 'utf8')) as ReplayReport;
    expect(report.misses.map((m) => `${m.method} ${m.url}`)).toEqual([`GET ${index}/simple/notrecorded/`]);
    expect(report.unused).toEqual([]);

    // Nothing reached the origin during replay.
    expect(origin.hits).toEqual(hits);
  }, 90_000);
});

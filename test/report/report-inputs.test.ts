import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetlockFile } from '../../src/netlock/file.ts';
import type { ReportData } from '../../src/report/model.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';

/** The data a report page carries (its JSON element, `<` escaped as JSON allows). */
async function pageData(path: string): Promise<ReportData> {
  const html = await readFile(path, 'utf8');
  const m = /<script type="application\/json" id="fo-data">(.*?)<\/script>/s.exec(html);
  if (m === null) throw new Error('no page data');
  return JSON.parse(m[1]!) as ReportData;
}

describe('fetch-oracle report: what a run reported', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let version = 1;
  const dataDir = (): string => join(dir.path, 'data');
  const netlockPath = (): string => join(dir.path, 'netlock.json');

  beforeAll(async () => {
    dir = await tempDir('fo-report-inputs-');
    origin = await startOrigin();
    origin.route('/latest.json', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.end(`{"version":${version}}`);
    });
    origin.route('/stable.txt', (_q, r) => {
      r.writeHead(200, { 'content-type': 'text/plain' });
      r.end('same');
    });
  });

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  it('marks the new version of an answer that changed upstream (record --refresh report)', async () => {
    const first = await startTestOracle({ mode: 'record', dataDir: dataDir(), netlockPath: netlockPath() });
    await first.fetch(`${origin.url}/latest.json`);
    await first.fetch(`${origin.url}/stable.txt`);
    await first.close();
    version = 2;
    const second = await startTestOracle({ mode: 'record', dataDir: dataDir(), netlockPath: netlockPath(), refresh: true });
    await second.fetch(`${origin.url}/latest.json`);
    await second.fetch(`${origin.url}/stable.txt`);
    const mutations = second.oracle.mutations;
    const stats = { ...second.oracle.stats };
    await second.close();
    expect(mutations).toHaveLength(1);
    const recordReport = join(dir.path, 'record-report.json');
    await writeFile(recordReport, JSON.stringify({ mutations, stats }));
    const out = join(dir.path, 'mutated.html');
    const r = await cliInProcess(['report', netlockPath(), '--data', dataDir(), '--replay-report', recordReport, '--html', out]);
    expect(r.code).toBe(0);
    const data = await pageData(out);
    const file = JSON.parse(await readFile(netlockPath(), 'utf8')) as NetlockFile;
    expect(data.totals.entries).toBe(file.count);
    const latest = data.entries!.find((e) => e.u.endsWith('/latest.json'))!;
    expect(latest.x).toBe(mutations[0]!.oldRecord);
    expect(latest.r).toBe(mutations[0]!.newRecord);
    expect(data.entries!.find((e) => e.u.endsWith('/stable.txt'))!.x).toBeUndefined();
    expect(data.mutations).toEqual([expect.objectContaining({ u: `${origin.url}/latest.json`, oldStatus: 200, newStatus: 200 })]);
  });

  it('reads the misses of a build --check report (under replay.replay) with the build as the command', async () => {
    const misses = [{ method: 'GET', url: `${origin.url}/new.tgz`, accept: '', nearest: [{ method: 'GET', url: `${origin.url}/stable.txt`, differs: ['path'] }] }];
    const build = { context: '/src/app', mode: 'check', exitCode: 1, record: {}, replay: { buildahExitCode: 1, replay: { netlock: 'x', entries: 2, used: 1, misses, unused: [], stats: { hits: 1, misses: 1, upstreamFetches: 0, errors: 0 } } } };
    const path = join(dir.path, 'build-report.json');
    await writeFile(path, JSON.stringify(build));
    const out = join(dir.path, 'build.html');
    expect((await cliInProcess(['report', netlockPath(), '--data', dataDir(), '--replay-report', path, '--html', out])).code).toBe(0);
    const data = await pageData(out);
    expect(data.command).toEqual({ argv: ['fetch-oracle build --replay', '/src/app'], exitCode: 1 });
    expect(data.misses).toEqual([expect.objectContaining({ u: `${origin.url}/new.tgz`, count: 1, advice: [expect.stringContaining('fetch-oracle seed')] })]);
    expect(data.totals.misses).toBe(1);
  });

  it('refuses a report file it cannot show, and a missing --html, with clear errors', async () => {
    const bad = join(dir.path, 'bad.json');
    await writeFile(bad, JSON.stringify({ misses: 'none' }));
    const r = await cliInProcess(['report', netlockPath(), '--data', dataDir(), '--replay-report', bad, '--html', join(dir.path, 'x.html')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ORACLE_ERR_\w+: .*bad\.json is not a report written by run\/build\/replay\/record --report/);
    const u = await cliInProcess(['report', netlockPath()]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('report needs --html OUT.html');
    const n = await cliInProcess(['report', join(dir.path, 'nope.json'), '--html', join(dir.path, 'y.html')]);
    expect(n.code).toBe(1);
    expect(n.stderr).toContain('ORACLE_ERR_INVALID_NETLOCK');
  });
});

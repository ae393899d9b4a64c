import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { NetlockFile } from '../../src/netlock/file.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { ROOT, tempDir } from '../helpers/run.ts';
import { browserMissing, launchBrowser } from './browser.ts';
import type { TestBrowser } from './browser.ts';
import { parseExposition } from './prom-text.ts';

const missing = browserMissing();
/** A content type that carries markup: the page must show it as text and never run it. */
const EVIL_TYPE = 'text/plain; x="<script>window.__pwned=1</script>"';
const BIG = 300 * 1024;

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent()) ?? '';
}

/** Waits until the element's text matches (the page redraws as it polls or filters). */
async function waitText(page: Page, id: string, re: RegExp): Promise<void> {
  // A function, not a string: the page's CSP forbids eval, which a string predicate needs.
  try {
    await page.waitForFunction(([i, src]) => new RegExp(src).test((globalThis as unknown as PageGlobal).document.getElementById(i)?.textContent ?? ''), [id, re.source] as const);
  } catch (err) {
    throw new Error(`#${id} never matched ${re}: it says ${JSON.stringify(await text(page, `#${id}`))} (${await text(page, '#updated')})`, { cause: err });
  }
}

/** The little of the DOM these predicates touch (test/tsconfig has no DOM lib). */
interface PageGlobal {
  document: { getElementById(id: string): { textContent: string | null } | null; querySelector(s: string): { id: string } | null };
  __pwned?: number;
}

/** What an injected script would have set. */
async function pwned(page: Page): Promise<unknown> {
  return page.evaluate(() => (globalThis as unknown as PageGlobal).__pwned);
}

async function ready(page: Page): Promise<void> {
  await page.waitForSelector('body[data-ready="1"]');
}

describe.skipIf(missing !== undefined)(`report page and metrics in a real browser (headless Chromium)${missing === undefined ? '' : `: skipped, ${missing}`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let browser: TestBrowser;
  let oracle: TestOracle | undefined;
  let admin: string;
  const dataDir = (): string => join(dir.path, 'data');
  const netlockPath = (): string => join(dir.path, 'netlock.json');
  const paths = ['/app.json', '/big.tgz', '/old', '/gone', '/x?q=<script>alert(1)</script>'];

  beforeAll(async () => {
    dir = await tempDir('fo-report-');
    origin = await startOrigin();
    origin.route('/app.json', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.end('{"name":"app"}');
    });
    origin.route('/big.tgz', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/gzip', 'content-length': String(BIG) });
      for (const c of pseudoRandomChunks(BIG, 7, 64 * 1024)) r.write(c);
      r.end();
    });
    origin.route('/old', (_q, r) => {
      r.writeHead(302, { location: '/app.json', 'content-type': 'text/plain' });
      r.end('moved');
    });
    origin.route('/gone', (_q, r) => {
      r.writeHead(404, { 'content-type': 'text/plain' });
      r.end('not here\n');
    });
    origin.route('/x', (_q, r) => {
      r.writeHead(200, { 'content-type': EVIL_TYPE });
      r.end('<script>window.__pwned=2</script>');
    });
    browser = await launchBrowser();
    oracle = await startTestOracle({ mode: 'record', dataDir: dataDir(), netlockPath: netlockPath(), admin: { host: '127.0.0.1', port: 0 } });
    admin = `http://127.0.0.1:${oracle.oracle.adminAddress()!.port}`;
  });

  afterAll(async () => {
    await oracle?.close();
    await browser?.close();
    await origin?.close();
    await dir?.remove();
  });

  it('GET / shows the running oracle and updates as requests arrive; GET /metrics counts them', async () => {
    const o = oracle!;
    await o.fetch(`${origin.url}/app.json`, { headers: { accept: 'application/json' } });
    const context = await browser.context();
    const page = await context.newPage();
    await page.goto(`${admin}/`);
    await ready(page);
    expect(await text(page, '#mode')).toBe('live record oracle');
    expect(await page.getAttribute('#total-entries', 'data-value')).toBeNull();
    expect(await text(page, '#total-entries')).toBe('1');
    // The rest arrive while the page is open: it polls report.json and redraws.
    for (const p of paths.slice(1)) await o.fetch(`${origin.url}${p}`);
    await o.fetch(`${origin.url}/app.json`, { headers: { accept: 'application/json' } });
    await waitText(page, 'total-entries', new RegExp(`^${paths.length}$`));
    await waitText(page, 'row-count', /^6 of 6 rows/);
    expect(await text(page, '#total-hits')).toBe('1');
    expect(await text(page, '#total-fetches')).toBe(String(paths.length));
    // The request log counts the repeated request as a hit, the first ones as recorded.
    await page.click('button[data-kind="hit"]');
    expect(await text(page, '#row-count')).toMatch(/^1 of 6 rows/);
    await page.click('button[data-view="entries"]');
    expect(await text(page, '#row-count')).toMatch(new RegExp(`^${paths.length} of ${paths.length} rows`));
    expect(await pwned(page)).toBeUndefined();
    await context.close();

    // A poll that has the entries and the requests so far gets neither again.
    const full = (await (await fetch(`${admin}/report.json`)).json()) as { entriesVersion: string; entries: unknown[]; requests: { events: Array<{ i: number }> } };
    expect(full.entries).toHaveLength(paths.length);
    expect(full.requests.events.map((e) => e.i)).toEqual([0, 1, 2, 3, 4, 5]);
    const poll = (await (await fetch(`${admin}/report.json?have=${encodeURIComponent(full.entriesVersion)}&after=3`)).json()) as { entries?: unknown[]; requests: { events: Array<{ i: number }> } };
    expect(poll.entries).toBeUndefined();
    expect(poll.requests.events.map((e) => e.i)).toEqual([4, 5]);

    // The records reach the disk at a checkpoint within a second (`--sync`'s default).
    await expect.poll(() => o.oracle.stats.checkpoints, { timeout: 10_000 }).toBeGreaterThan(0);
    const res = await fetch(`${admin}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parseExposition(await res.text());
    expect(m.types.get('fetch_oracle_requests_total')).toBe('counter');
    expect(m.types.get('fetch_oracle_upstream_latency_seconds')).toBe('histogram');
    expect(m.value('fetch_oracle_requests_total', { outcome: 'recorded' })).toBe(paths.length);
    expect(m.value('fetch_oracle_requests_total', { outcome: 'hit' })).toBe(1);
    expect(m.value('fetch_oracle_requests_total', { outcome: 'miss' })).toBe(0);
    expect(m.value('fetch_oracle_requests_total', { outcome: 'error' })).toBe(0);
    const stats = o.oracle.stats;
    expect(m.value('fetch_oracle_bytes_served_total')).toBe(stats.bytesServed);
    expect(m.value('fetch_oracle_bytes_fetched_total')).toBe(stats.bytesRecorded);
    expect(stats.bytesRecorded).toBeGreaterThan(BIG);
    expect(m.value('fetch_oracle_upstream_fetches_total')).toBe(paths.length);
    expect(m.value('fetch_oracle_upstream_latency_seconds_count')).toBe(paths.length);
    expect(m.value('fetch_oracle_upstream_latency_seconds_bucket', { le: '+Inf' })).toBe(paths.length);
    expect(m.value('fetch_oracle_block_store_operations_total', { op: 'put' })).toBeGreaterThan(paths.length);
    expect(m.value('fetch_oracle_device_round_trips_total')).toBe(0);
    expect(m.value('fetch_oracle_checkpoints_total')).toBeGreaterThan(0);
    expect(m.value('fetch_oracle_checkpoints_total')).toBeLessThanOrEqual(stats.checkpoints);
    expect(m.value('fetch_oracle_checkpoint_seconds_total')).toBeGreaterThan(0);
  });

  it('report --html writes one page that opens with no network; its numbers are the netlock\'s; a filter narrows it', async () => {
    await oracle!.close();
    oracle = undefined;
    const file = JSON.parse(await readFile(netlockPath(), 'utf8')) as NetlockFile;
    const out = join(dir.path, 'report.html');
    const r = await cliInProcess(['report', netlockPath(), '--data', dataDir(), '--html', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${file.count} entries`);

    const context = await browser.context();
    const asked: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      asked.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    await page.goto(pathToFileURL(out).href);
    await ready(page);
    expect(asked).toEqual([]);
    expect(await text(page, '#root')).toBe(file.netlock);
    expect(await text(page, '#keys')).toBe(file.oracles.join(', '));
    expect(await text(page, '#total-entries')).toBe(String(file.count));
    expect(await page.getAttribute('#total-bytes', 'data-value')).toBe(String(file.entries.reduce((n, e) => n + e.size, 0)));
    expect(await text(page, '#total-hosts')).toBe('1');
    expect(await text(page, '#row-count')).toMatch(new RegExp(`^${file.count} of ${file.count} rows`));
    // A negative answer and a redirect are told apart.
    await page.click('button[data-kind="negative"]');
    expect(await text(page, '#row-count')).toMatch(/^1 of /);
    expect(await text(page, '#rows')).toContain('/gone');
    await page.click('button[data-kind="redirect"]');
    expect(await text(page, '#rows')).toContain('redirect to /app.json');
    // Markup in a URL and a header is shown as text and never runs.
    await page.click('button[data-kind="all"]');
    await page.fill('#q', 'script');
    await waitText(page, 'row-count', /^1 of /);
    const rows = await text(page, '#rows');
    expect(rows).toContain(EVIL_TYPE);
    expect(rows).toContain('q=%3Cscript%3Ealert(1)%3C/script%3E');
    expect(await pwned(page)).toBeUndefined();
    await context.close();
  });

  it('a failed replay: the misses come first, each with the nearest request, what differs and what to do', async () => {
    const replay = await startTestOracle({ mode: 'replay', dataDir: dataDir(), netlockPath: netlockPath(), admin: { host: '127.0.0.1', port: 0 } });
    let report: unknown;
    try {
      expect((await replay.fetch(`${origin.url}/app.json`, { headers: { accept: 'application/json' } })).status).toBe(200);
      expect((await replay.fetch(`${origin.url}/app.json`, { headers: { accept: 'text/html' } })).status).toBe(504);
      expect((await replay.fetch(`${origin.url}/app.json?v=2`, { headers: { accept: 'application/json' } })).status).toBe(504);
      expect((await replay.fetch('http://127.0.0.2:9/new-host.tgz')).status).toBe(504);
      report = { command: ['npm', 'ci'], commandExitCode: 1, ...(await replay.oracle.replayReport()) };
      // The live page of the replay shows the same misses while it runs.
      const live = await browser.context();
      const page = await live.newPage();
      await page.goto(`http://127.0.0.1:${replay.oracle.adminAddress()!.port}/`);
      await ready(page);
      expect(await text(page, '#mode')).toBe('live replay oracle');
      expect(await text(page, '#misses')).toContain('3 request(s) are not in the netlock');
      expect(await text(page, '#total-entries')).toBe(String(paths.length));
      await page.click('button[data-kind="miss"]');
      expect(await text(page, '#row-count')).toMatch(/^3 of 4 rows/);
      await live.close();
    } finally {
      await replay.close();
    }
    const reportPath = join(dir.path, 'run-report.json');
    await writeFile(reportPath, JSON.stringify(report));
    const out = join(dir.path, 'failed.html');
    const r = await cliInProcess(['report', netlockPath(), '--data', dataDir(), '--replay-report', reportPath, '--html', out]);
    expect(r.code).toBe(0);

    const context = await browser.context();
    const page = await context.newPage();
    await page.goto(pathToFileURL(out).href);
    await ready(page);
    // Misses are the first section of the page.
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobal).document.querySelector('main > section:not([hidden])')?.id)).toBe('misses');
    const misses = await text(page, '#misses');
    expect(misses).toContain('3 request(s) are not in the netlock: npm ci exited 1');
    expect(misses).toContain('differs in: header accept');
    expect(misses).toContain('differs in: query');
    expect(misses).toContain('nearest recorded: none');
    expect(misses).toContain('The netlock has no request to 127.0.0.2:9');
    expect(misses).toContain('send the accept the build sent when it was recorded');
    expect(misses).toContain('pin it in the build, or record again');
    expect(await text(page, '#total-misses')).toBe('3');
    expect(await text(page, '#total-unused')).toBe(String(paths.length - 1));
    await page.click('button[data-kind="miss"]');
    expect(await text(page, '#row-count')).toMatch(/^3 of /);
    // The picture docs/report.md shows (written there on request, so a test run leaves the tree clean).
    const shot = process.env['FETCH_ORACLE_SCREENSHOTS'] === '1' ? join(ROOT, 'docs', 'img', 'report.png') : join(dir.path, 'report.png');
    await page.click('button[data-kind="all"]');
    await page.evaluate(() => (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0));
    const png = await page.screenshot({ path: shot });
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    await context.close();
  });
});

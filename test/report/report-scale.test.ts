import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { renderReportHtml, scriptSafe } from '../../src/report/html.ts';
import { adviceFor, totalsOf } from '../../src/report/model.ts';
import type { EntryRow, ReportData } from '../../src/report/model.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { tempDir } from '../helpers/run.ts';
import { browserMissing, launchBrowser } from './browser.ts';
import type { TestBrowser } from './browser.ts';

const missing = browserMissing();

/** The little of the DOM these predicates touch (test/tsconfig has no DOM lib). */
interface PageGlobal {
  document: { getElementById(id: string): { textContent: string | null } | null };
  __pwned?: number;
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent()) ?? '';
}

async function waitText(page: Page, id: string, re: RegExp): Promise<void> {
  await page.waitForFunction(([i, src]) => new RegExp(src).test((globalThis as unknown as PageGlobal).document.getElementById(i)?.textContent ?? ''), [id, re.source] as const);
}

/** A page's data of `n` entries over 50 hosts, sizes growing with the index (entry n-1 is the heaviest). */
function bigReport(n: number): ReportData {
  const entries: EntryRow[] = [];
  for (let i = 0; i < n; i++) {
    const h = `host${i % 50}.example`;
    entries.push({ m: 'GET', u: `https://${h}/pkg-${i}.tgz`, h, a: '', s: i % 1000 === 0 ? 404 : 200, z: i * 10, c: 'application/gzip', t: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(), r: `bafyrecord${i}`, ...(i % 1000 === 0 ? { n: 'status 404' } : {}) });
  }
  return { v: 1, live: false, mode: 'file', netlock: { root: 'bafyroot', count: n, keys: ['ab'.repeat(32)] }, totals: totalsOf(entries), entries, misses: [], mutations: [] };
}

describe('report page data', () => {
  it('embeds JSON that cannot close its script element', () => {
    const embedded = scriptSafe(JSON.stringify({ u: '</script><script>alert(1)</script>\u2028' }));
    expect(embedded).not.toContain('<');
    expect(embedded).not.toContain('\u2028');
    expect(JSON.parse(embedded)).toEqual({ u: '</script><script>alert(1)</script>\u2028' });
  });

  it('advises from the field the nearest recorded request differs in', () => {
    expect(adviceFor({ url: 'https://a.example/x', nearest: [] }).join(' ')).toContain('no request to a.example');
    expect(adviceFor({ url: 'https://a.example/x', nearest: [{ differs: ['header x-api-version'] }] }).join(' ')).toContain('--variant-header');
    expect(adviceFor({ url: 'https://a.example/x', nearest: [{ differs: ['path'] }] }).join(' ')).toContain('fetch-oracle seed');
  });
});

describe.skipIf(missing !== undefined)(`report page in a real browser (headless Chromium): bad input${missing === undefined ? '' : `: skipped, ${missing}`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let browser: TestBrowser;

  beforeAll(async () => {
    dir = await tempDir('fo-report-scale-');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await dir?.remove();
  });

  it('a 100,000-entry netlock opens, renders one page of rows, filters and sorts', async () => {
    const n = 100_000;
    const out = join(dir.path, 'big.html');
    await writeFile(out, renderReportHtml(bigReport(n)));
    const context = await browser.context();
    const page = await context.newPage();
    await page.goto(pathToFileURL(out).href);
    await page.waitForSelector('body[data-ready="1"]');
    expect(await text(page, '#total-entries')).toBe(String(n));
    expect(await text(page, '#row-count')).toBe(`${n} of ${n} rows`);
    expect(await page.locator('#rows tr').count()).toBe(100);
    await page.click('button[data-kind="negative"]');
    await waitText(page, 'row-count', new RegExp(`^${n / 1000} of ${n} rows`));
    await page.click('button[data-kind="all"]');
    await page.fill('#q', 'pkg-99999.tgz');
    await waitText(page, 'row-count', new RegExp(`^1 of ${n} rows`));
    expect(await text(page, '#rows')).toContain('https://host49.example/pkg-99999.tgz');
    await page.fill('#q', '');
    await waitText(page, 'row-count', new RegExp(`^${n} of`));
    // Size, largest first: the heaviest download leads.
    await page.click('th[data-sort="z"]');
    expect(await text(page, '#rows tr:first-child td.url')).toBe(`https://host49.example/pkg-${n - 1}.tgz`);
    await page.click('#next');
    expect(await text(page, '#page-info')).toBe(`page 2 of ${n / 100}`);
    await context.close();
  });

  it('markup in a URL, a host, a content type or a miss is shown as text and never runs', async () => {
    const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
    const entries: EntryRow[] = [{ m: 'GET', u: `https://a.example/${evil}`, h: `a.example${evil}`, a: evil, s: 302, z: 1, c: evil, t: '2026-01-01T00:00:00Z', r: 'bafy', l: evil, n: evil }];
    const data: ReportData = {
      v: 1, live: false, mode: 'file', netlock: { root: evil, count: 1, keys: [evil] }, totals: totalsOf(entries), entries,
      misses: [{ m: 'GET', u: `https://a.example/?${evil}`, a: evil, count: 1, nearest: [{ m: 'GET', u: evil, differs: [evil] }], advice: [evil] }],
      mutations: [], command: { argv: [evil] },
    };
    const out = join(dir.path, 'evil.html');
    await writeFile(out, renderReportHtml(data));
    const context = await browser.context();
    const page = await context.newPage();
    await page.goto(pathToFileURL(out).href);
    await page.waitForSelector('body[data-ready="1"]');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobal).__pwned)).toBeUndefined();
    expect(await page.locator('#rows script, #rows img, #misses script, #misses img, header script').count()).toBe(0);
    expect(await text(page, '#root')).toBe(evil);
    expect(await text(page, '#misses')).toContain(`differs in: ${evil}`);
    expect(await text(page, '#rows')).toContain(`https://a.example/${evil}`);
    await context.close();
  });

  it('the live page and /metrics are behind the admin API\'s token', async () => {
    const token = 'report-test-token';
    const oracle = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data'), admin: { host: '127.0.0.1', port: 0 }, adminToken: token });
    try {
      const admin = `http://127.0.0.1:${oracle.oracle.adminAddress()!.port}`;
      for (const path of ['/', '/report.json', '/metrics']) {
        const res = await fetch(`${admin}${path}`);
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ code: 'ORACLE_ERR_UNAUTHORIZED' });
      }
      const context = await browser.context({ extraHTTPHeaders: { authorization: `Bearer ${token}` } });
      const page = await context.newPage();
      const res = await page.goto(`${admin}/`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toContain("script-src 'sha256-");
      await page.waitForSelector('body[data-ready="1"]');
      // Its polls of report.json carry the token too.
      await page.waitForSelector('body[data-polls]');
      expect(await text(page, '#updated')).toMatch(/^updated /);
      await context.close();
    } finally {
      await oracle.close();
    }
  });
});

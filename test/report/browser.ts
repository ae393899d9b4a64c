import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext } from 'playwright-core';

/** Debian's chromium package (scripts/setup.sh installs it). */
export const CHROMIUM = process.env['FETCH_ORACLE_CHROMIUM'] ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here (undefined when they can); under CI=true a missing browser fails. */
export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const why = `no Chromium at ${CHROMIUM} (apt-get install chromium, or set FETCH_ORACLE_CHROMIUM)`;
  if (process.env['CI'] === 'true') throw new Error(why);
  return why;
}

export interface TestBrowser {
  browser: Browser;
  /** A fresh context (extra headers go on every request the page makes, its fetches included). */
  context(options?: { extraHTTPHeaders?: Record<string, string> }): Promise<BrowserContext>;
  close(): Promise<void>;
}

/**
 * Headless Chromium with no background traffic (the test machine's network refuses it, and nothing but the
 * page under test should be fetched). Playwright gives it a fresh --user-data-dir of its own and removes it.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    browser,
    context: (options = {}) => browser.newContext({ viewport: { width: 1280, height: 900 }, ...options }),
    close: () => browser.close(),
  };
}

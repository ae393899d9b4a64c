import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { Oracle } from '../../src/oracle/oracle.ts';
import type { OracleInit } from '../../src/oracle/oracle.ts';
import type { Origin } from './origin.ts';
import { run } from './run.ts';
import type { RunResult } from './run.ts';

export interface TestOracle {
  oracle: Oracle;
  proxyUrl: string;
  caPath: string;
  caPem: string;
  agent: ProxyAgent;
  /** GET (or another method) through the proxy with undici; body as a Buffer. */
  fetch(url: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>;
  /** curl through the proxy, trusting only the oracle's CA. */
  curl(args: string[]): Promise<RunResult>;
  close(): Promise<void>;
}

/** An OracleInit whose `listen` may be left out (127.0.0.1, a free port); distributes over the mode union. */
export type TestOracleInit = OracleInit extends infer I ? (I extends OracleInit ? Omit<I, 'listen'> & { listen?: OracleInit['listen'] } : never) : never;

export async function startTestOracle(init: TestOracleInit): Promise<TestOracle> {
  const oracle = new Oracle({ listen: { host: '127.0.0.1', port: 0 }, ...init });
  await oracle.start();
  const { port } = oracle.proxyAddress();
  const proxyUrl = `http://127.0.0.1:${port}`;
  const caPath = join(init.dataDir, 'ca', 'ca-cert.pem');
  const caPem = await readFile(caPath, 'utf8');
  const agent = new ProxyAgent({ uri: proxyUrl, requestTls: { ca: caPem } });
  return {
    oracle,
    proxyUrl,
    caPath,
    caPem,
    agent,
    async fetch(url, req = {}) {
      const res = await request(url, { dispatcher: agent, method: (req.method ?? 'GET') as 'GET', headers: req.headers ?? {}, body: req.body ?? null });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers, body };
    },
    curl: (args) => run('curl', ['-sS', '--noproxy', '', '-x', proxyUrl, '--cacert', caPath, ...args], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } }),
    async close() {
      await agent.close();
      await oracle.close();
    },
  };
}

/**
 * Records `paths` of `origin` into `init`'s data directory and netlock (each must be answered 200), stops the
 * origin (a replay never asks it) and starts a replay of what was recorded.
 */
export async function replayOfRecorded(origin: Origin, paths: readonly string[], init: { dataDir: string; netlockPath: string }): Promise<TestOracle> {
  const rec = await startTestOracle({ mode: 'record', ...init });
  try {
    for (const path of paths) {
      const { status } = await rec.fetch(`${origin.url}${path}`);
      if (status !== 200) throw new Error(`recording ${path} got ${status}`);
    }
  } finally {
    await rec.close();
  }
  await origin.close();
  return startTestOracle({ mode: 'replay', ...init });
}

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pemCertificates, readUpstreamCaPem } from '../../src/upstream/fetcher.ts';
import { cleanEnv } from '../helpers/client-session.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { startDaemon, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';

/**
 * NODE_EXTRA_CA_CERTS reaches the upstream client: the real CLI (`fetch-oracle record`, a separate process)
 * fetches from a real TLS origin on 127.0.0.1 whose certificate comes from a throwaway CA that only the file
 * named by NODE_EXTRA_CA_CERTS holds. The upstream client builds its own `ca` list (which replaces Node's
 * default store, where Node put that file), so it must read the variable itself.
 */
describe('NODE_EXTRA_CA_CERTS and the upstream client (real CLI, real TLS origin)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let caFile: string;
  const body = Buffer.concat([...pseudoRandomChunks(300 * 1024 + 5, 13)]);

  beforeAll(async () => {
    dir = await tempDir('fo-extra-ca-');
    const ca = await createTestCa();
    caFile = join(dir.path, 'origin-ca.pem');
    await writeFile(caFile, ca.caPem);
    origin = await startOrigin(await ca.leafFor(['127.0.0.1']));
    origin.route('/extra-ca.bin', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength) });
      r.end(body);
    });
  }, 60_000);

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  /** Starts `fetch-oracle record` with `extra` in its environment, GETs the origin's file through it, stops it. */
  async function fetchThroughRecordProxy(name: string, extra: NodeJS.ProcessEnv): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; stderr: string }> {
    const data = join(dir.path, `data-${name}`);
    const env = cleanEnv(dir.path, extra);
    expect(env['NODE_EXTRA_CA_CERTS']).toBe(extra['NODE_EXTRA_CA_CERTS']);
    const daemon = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', join(dir.path, `${name}.netlock.json`)], env);
    const agent = new ProxyAgent({ uri: daemon.url, requestTls: { ca: await readFile(join(data, 'ca', 'ca-cert.pem'), 'utf8') } });
    try {
      const res = await request(`${origin.url}/extra-ca.bin`, { dispatcher: agent });
      return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()), stderr: daemon.stderr() };
    } finally {
      await agent.close();
      expect(await daemon.stop()).toBe(0);
    }
  }

  it('with NODE_EXTRA_CA_CERTS naming the origin CA, the fetch through the record proxy gets the origin\'s bytes', async () => {
    const hits = origin.hits.get('/extra-ca.bin') ?? 0;
    const r = await fetchThroughRecordProxy('trusted', { NODE_EXTRA_CA_CERTS: caFile });
    expect(r.status, r.body.toString('utf8').slice(0, 500)).toBe(200);
    expect(r.headers['x-oracle-error']).toBeUndefined();
    expect(r.body.equals(body)).toBe(true);
    expect(origin.hits.get('/extra-ca.bin')).toBe(hits + 1);
    expect(r.stderr).not.toContain('NODE_EXTRA_CA_CERTS');
  }, 60_000);

  it('without it, the origin\'s certificate is not trusted: the proxy answers 502 naming the certificate error', async () => {
    const r = await fetchThroughRecordProxy('untrusted', {});
    expect(r.status).toBe(502);
    expect(r.headers['x-oracle-error']).toBe('ORACLE_ERR_UPSTREAM');
    expect(r.body.toString('utf8')).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify the first certificate/);
    expect(r.body.equals(body)).toBe(false);
  }, 60_000);

  it('a missing file is a warning naming the variable, not a crash: the proxy runs and the origin stays untrusted', async () => {
    const missing = join(dir.path, 'no-such-ca.pem');
    const r = await fetchThroughRecordProxy('missing', { NODE_EXTRA_CA_CERTS: missing });
    expect(r.status).toBe(502);
    expect(r.headers['x-oracle-error']).toBe('ORACLE_ERR_UPSTREAM');
    expect(r.stderr).toContain(`warn oracle: NODE_EXTRA_CA_CERTS=${missing} cannot be read (ENOENT)`);
  }, 60_000);
});

describe('readUpstreamCaPem', () => {
  it('reads --upstream-ca files, then the NODE_EXTRA_CA_CERTS file\'s certificates; warns and goes on when that file is unusable', async () => {
    const dir = await tempDir('fo-extra-ca-unit-');
    try {
      const a = (await createTestCa()).caPem;
      const b = (await createTestCa()).caPem;
      await writeFile(join(dir.path, 'a.pem'), a);
      await writeFile(join(dir.path, 'bundle.pem'), `# a comment\r\n${b.replace(/\n/g, '\r\n')}\n${a}`);
      await writeFile(join(dir.path, 'empty.pem'), 'no certificates here\n');
      const warnings: string[] = [];
      const warn = (m: string): void => void warnings.push(m);

      expect(await readUpstreamCaPem([join(dir.path, 'a.pem')], undefined, warn)).toEqual([a]);
      expect(await readUpstreamCaPem([], '', warn)).toEqual([]);
      const withEnv = await readUpstreamCaPem([join(dir.path, 'a.pem')], join(dir.path, 'bundle.pem'), warn);
      expect(withEnv).toHaveLength(2);
      expect(withEnv[0]).toBe(a);
      expect(pemCertificates(withEnv[1]!)).toEqual([...pemCertificates(b), ...pemCertificates(a)]);
      expect(warnings).toEqual([]);

      expect(await readUpstreamCaPem([], join(dir.path, 'missing.pem'), warn)).toEqual([]);
      expect(await readUpstreamCaPem([], join(dir.path, 'empty.pem'), warn)).toEqual([]);
      expect(warnings).toEqual([
        `NODE_EXTRA_CA_CERTS=${join(dir.path, 'missing.pem')} cannot be read (ENOENT): upstream TLS trusts Node's roots, the system bundle and --upstream-ca only`,
        `NODE_EXTRA_CA_CERTS=${join(dir.path, 'empty.pem')} holds no PEM certificate: upstream TLS trusts Node's roots, the system bundle and --upstream-ca only`,
      ]);
      // A named --upstream-ca file that cannot be read is an error, as before.
      await expect(readUpstreamCaPem([join(dir.path, 'missing.pem')], undefined, warn)).rejects.toThrow(/ENOENT/);
    } finally {
      await dir.remove();
    }
  });

  it('pemCertificates re-wraps each block canonically, so one certificate in two layouts is one string', async () => {
    const { caPem } = await createTestCa();
    const [canonical] = pemCertificates(caPem);
    expect(canonical).toMatch(/^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
    const oneLine = caPem.replace(/\n(?!-----END)/g, (m, off: number) => (off < 30 ? m : ''));
    expect(pemCertificates(`junk\r\n${oneLine}\r\n`)).toEqual([canonical]);
  });
});

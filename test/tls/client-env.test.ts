import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_VARIABLES } from '../../src/tls/client-env.ts';
import { cli, tempDir } from '../helpers/run.ts';

describe('fetch-oracle env', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-env-');
  });
  afterAll(async () => dir.remove());

  it('prints proxy and CA exports pointing at one combined bundle, and keeps the CA key private', async () => {
    const r = await cli(['env', '--listen', '127.0.0.1:9999', '--data', dir.path]);
    expect(r.code, r.stderr).toBe(0);
    const vars = new Map([...r.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    for (const v of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) expect(vars.get(v)).toBe('http://127.0.0.1:9999');
    expect(vars.get('NO_PROXY')).toBe("''");
    const bundle = join(dir.path, 'ca-bundle.pem');
    for (const v of [...CA_VARIABLES, 'CURL_CA_BUNDLE', 'SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'npm_config_cafile', 'REQUESTS_CA_BUNDLE', 'PIP_CERT', 'GIT_SSL_CAINFO', 'CARGO_HTTP_CAINFO']) {
      expect(vars.get(v), v).toBe(bundle);
    }
    const text = await readFile(bundle, 'utf8');
    const ca = await readFile(join(dir.path, 'ca', 'ca-cert.pem'), 'utf8');
    expect(text).toContain(ca.trim());
    expect(text.match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThan(10); // the system roots are there too
    expect((await stat(join(dir.path, 'ca', 'ca-key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('explains bad flags and prints help for every command', async () => {
    const bad = await cli(['env', '--listen', 'nonsense']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--listen expects HOST:PORT/);
    for (const c of ['record', 'replay', 'env', 'verify', 'recover']) {
      const h = await cli([c, '--help']);
      expect(h.code).toBe(0);
      expect(h.stdout).toMatch(new RegExp(`^Usage: fetch-oracle ${c}`));
    }
    const missing = await cli(['replay', '--listen', '127.0.0.1:0']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/replay needs --netlock FILE/);
    // Seven CLI runs, each paying tsx start-up: past the default 60 s on two shared, busy cores.
  }, 180_000);
});

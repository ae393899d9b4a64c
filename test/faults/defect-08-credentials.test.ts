import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { normaliseUrl } from '../../src/protocol/request-key.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';

/** Every file under `dir`, recursively (the data directory: records.jsonl, blocks, keys). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Defect 8 of issue 13: credentials in query parameters (the `key=` API key, cloud signed-URL parameters)
 * and credential headers were stored in records, the journal and the netlock. They must reach the origin,
 * never a record, key, journal or netlock, and a request with another credential value must still hit.
 */
describe('defect 8: credentials never enter records, keys, journal or netlock', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;

  beforeAll(async () => {
    dir = await tempDir('fo-d08-');
    origin = await startOrigin();
  });
  afterAll(async () => {
    await origin.close();
    await dir.remove();
  });

  /** path+query with credentials → the same request with other credential values. */
  const cases: Array<[string, string]> = [
    ['/maps?q=paris&key=SECRETAPIKEY1', '/maps?q=paris&key=OTHERKEY'],
    ['/v1/items?api_key=SECRETAPIKEY2&page=2', '/v1/items?api_key=OTHER&page=2'],
    ['/v1/feed?apikey=SECRETAPIKEY3', '/v1/feed?apikey=OTHER'],
    ['/graph?access_token=SECRETTOKEN4', '/graph?access_token=OTHER'],
    ['/raw?token=SECRETTOKEN5', '/raw?token=OTHER'],
    ['/bucket/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIASECRETCRED6%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=SECRETSESSION6&X-Amz-Signature=SECRETSIG6', '/bucket/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAOTHER&X-Amz-Date=20270101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=OTHER'],
    ['/gcs/obj?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=SECRETGOOGCRED7&X-Goog-Date=20260101T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=SECRETGOOGSIG7', '/gcs/obj?X-Goog-Signature=OTHER&X-Goog-Credential=OTHER'],
    ['/c/blob.bin?sv=2022-11-02&se=2026-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=SECRETSASSIG8', '/c/blob.bin?sv=2022-11-02&se=2027-01-01&sr=b&sp=r&sig=OTHER'],
    ['/cf/file?Expires=1767225600&Signature=SECRETCFSIG9&Key-Pair-Id=SECRETKPID9', '/cf/file?Expires=1&Signature=OTHER&Key-Pair-Id=OTHER'],
    ['/v2/legacy?AWSAccessKeyId=SECRETAKID10&Expires=1767225600&Signature=SECRETV2SIG10', '/v2/legacy?AWSAccessKeyId=OTHER&Expires=2&Signature=OTHER'],
  ];
  const secrets = ['SECRETAPIKEY1', 'SECRETAPIKEY2', 'SECRETAPIKEY3', 'SECRETTOKEN4', 'SECRETTOKEN5', 'SECRETCRED6', 'SECRETSESSION6', 'SECRETSIG6', 'SECRETGOOGCRED7', 'SECRETGOOGSIG7', 'SECRETSASSIG8', 'SECRETCFSIG9', 'SECRETKPID9', 'SECRETAKID10', 'SECRETV2SIG10', 'SECRETBEARER11', 'SECRETPROXYAUTH12', 'SECRETDEADKEY13', 'SECRETLOCATION14'];

  it('sends credentials upstream, stores none of them anywhere, and hits with other credential values in record and replay', async () => {
    for (const [path] of cases) origin.route(path.split('?')[0]!, (req, res) => void res.end(`resource ${req.url!.split('?')[0]}\n`));
    origin.route('/private', (req, res) => void res.end(`private ${req.headers['x-api-key'] === undefined ? 'no' : 'yes'}\n`));
    origin.route('/moved', (_req, res) => {
      res.writeHead(302, { location: `${origin.url}/maps?q=paris&key=SECRETLOCATION14` });
      res.end();
    });
    const host = new URL(origin.url).host;
    const data = join(dir.path, 'data');
    const netlockPath = join(dir.path, 'creds.netlock.json');
    const dead = await closedPort();
    // A variant rule naming a credential header is ignored: its value must not enter the key.
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath, variantRules: { [host]: ['x-api-key', 'authorization'] } });
    let journal = '';
    try {
      for (const [path] of cases) {
        const r = await rec.fetch(`${origin.url}${path}`);
        expect(r.status, path).toBe(200);
      }
      const p = await rec.curl(['-H', 'x-api-key: SECRETAPIKEY2', '-H', 'authorization: Bearer SECRETBEARER11', '-H', 'proxy-authorization: Basic SECRETPROXYAUTH12', `${origin.url}/private`]);
      expect(p.stdout).toBe('private yes\n');
      expect((await rec.fetch(`${origin.url}/moved`)).status).toBe(302);
      // A request that gets no answer is recorded as the 502 the build saw: its body names the URL.
      expect((await rec.fetch(`http://127.0.0.1:${dead}/gone?key=SECRETDEADKEY13`)).status).toBe(502);
      // Upstream saw every credential.
      const seen = origin.requests.map((r) => r.url).join('\n');
      for (const s of ['SECRETAPIKEY1', 'SECRETSIG6', 'SECRETSASSIG8', 'SECRETCFSIG9']) expect(seen).toContain(s);
      expect(origin.requests.find((r) => r.url === '/private')?.headers['authorization']).toBe('Bearer SECRETBEARER11');
      // Another credential value is the same request: answered from the record.
      const before = origin.requests.length;
      for (const [, other] of cases) expect((await rec.fetch(`${origin.url}${other}`)).status, other).toBe(200);
      expect((await rec.fetch(`${origin.url}/private`, { headers: { 'x-api-key': 'other', authorization: 'Bearer other' } })).body.toString()).toBe('private yes\n');
      expect(origin.requests.length).toBe(before);
      journal = await readFile(`${netlockPath}.journal`, 'utf8');
    } finally {
      await rec.close();
    }
    const stored: Array<[string, string]> = [['journal', journal], ['netlock', await readFile(netlockPath, 'utf8')]];
    for (const f of await filesUnder(data)) stored.push([f, (await readFile(f)).toString('latin1')]);
    for (const [name, text] of stored) {
      for (const s of secrets) expect(text.includes(s), `${s} in ${name}`).toBe(false);
    }

    const rep = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath });
    try {
      for (const [path, other] of cases) {
        const r = await rep.fetch(`${origin.url}${other}`);
        expect(r.status, other).toBe(200);
        expect(r.body.toString()).toBe(`resource ${path.split('?')[0]}\n`);
      }
      expect((await rep.fetch(`${origin.url}/private`, { headers: { 'x-api-key': 'third' } })).body.toString()).toBe('private yes\n');
      const moved = await rep.fetch(`${origin.url}/moved`);
      expect(moved.headers['location']).toBe(`${origin.url}/maps?q=paris`);
    } finally {
      await rep.close();
    }
  });

  it('keeps credentials out of log lines of a failed replay', async () => {
    origin.route('/logged', (_req, res) => void res.end('logged\n'));
    const data = join(dir.path, 'log-data');
    const netlockPath = join(dir.path, 'log.netlock.json');
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath });
    expect((await rec.fetch(`${origin.url}/logged?key=SECRETLOGKEY15`)).status).toBe(200);
    await rec.close();
    const lines: string[] = [];
    const logger = createLogger('oracle', (_level, _ns, line) => lines.push(line));
    // Trusting another key makes the record fail verification: a logged replay failure.
    const rep = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath, trust: [new Uint8Array(32).fill(3)], logger });
    try {
      expect((await rep.fetch(`${origin.url}/logged?key=SECRETLOGKEY16`)).status).toBe(502);
    } finally {
      await rep.close();
    }
    expect(lines.join('\n')).toMatch(/replay of .*\/logged failed/);
    expect(lines.join('\n')).not.toMatch(/SECRETLOGKEY1[56]/);
  });

  it('keeps signature companions (Azure SAS fields, Expires) when the query carries no signature', () => {
    expect(normaliseUrl('https://h/p?se=1&sp=r&expires=3&key=k&x=1')).toBe('https://h/p?se=1&sp=r&expires=3&x=1');
    expect(normaliseUrl('https://h/p?se=1&sp=r&Expires=3&Signature=s&x=1')).toBe('https://h/p?x=1');
    expect(normaliseUrl('https://u:pw@h/p?keys=1&monkey=2')).toBe('https://h/p?keys=1&monkey=2');
  });
});

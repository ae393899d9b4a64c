import 'reflect-metadata';
import { spawn } from 'node:child_process';
import type { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { TLSSocket, checkServerIdentity, connect, createServer as createTlsServer } from 'node:tls';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
} from '@peculiar/x509';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { OracleError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { CA_CERT_FILE, CA_KEY_FILE, CertAuthority } from '../../src/tls/cert-authority.ts';
import { createTestCa } from '../helpers/test-ca.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const HTTP_OK = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok';

let workDir: string;
let caDir: string;

beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'fetch-oracle-ca-test-'));
  caDir = join(workDir, 'ca');
});

afterEach(async () => {
  vi.useRealTimers();
  await rm(workDir, { recursive: true, force: true });
});

/** Listens on 127.0.0.1:0 and closes (destroying open sockets) when the test finishes. */
async function listen(server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

/** Answers the first bytes of a (decrypted) request with a tiny HTTP response, for curl. */
function answerHttp(socket: TLSSocket): void {
  socket.on('error', () => {});
  socket.once('data', () => socket.end(HTTP_OK));
}

/** A real tls.Server picking its certificate per SNI name, as the CONNECT tunnel does. */
async function startSniServer(ca: CertAuthority): Promise<number> {
  const server = createTlsServer({
    SNICallback: (servername, callback) => {
      ca.secureContextFor(servername).then(
        (context) => callback(null, context),
        (error: Error) => callback(error),
      );
    },
  });
  server.on('secureConnection', answerHttp);
  return listen(server);
}

/**
 * A server with a fixed default context, for clients that send no SNI: RFC 6066 §3 forbids IP literals
 * in SNI, so for `https://127.0.0.1/` the proxy picks the leaf from the CONNECT target instead.
 */
async function startServerFor(context: SecureContext): Promise<number> {
  const server = createNetServer((raw) => {
    const socket = new TLSSocket(raw, { isServer: true, secureContext: context });
    answerHttp(socket);
  });
  return listen(server);
}

async function handshake(options: ConnectionOptions): Promise<{ authorized: boolean; peer: NodeX509Certificate }> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const client = connect(options, () => resolve(client));
    client.once('error', reject);
  });
  const peer = socket.getPeerX509Certificate();
  socket.destroy();
  if (peer === undefined) throw new Error('no peer certificate');
  return { authorized: socket.authorized, peer };
}

/** Runs a CLI with stdin closed and an environment stripped of preset CA bundles and proxies. */
async function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: workDir },
    timeout: 15_000,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  return { code, stdout, stderr };
}

async function writeCaFile(ca: CertAuthority): Promise<string> {
  const path = join(workDir, 'trusted-ca.pem');
  await writeFile(path, ca.certPem);
  return path;
}

function serialBytes(serialHex: string): Buffer {
  return Buffer.from(serialHex.length % 2 === 0 ? serialHex : `0${serialHex}`, 'hex');
}

describe('CertAuthority', () => {
  it('creates the directory 0700 and the key file 0600, leaving no temporary files', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    expect((await stat(caDir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(caDir, CA_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect((await readdir(caDir)).sort()).toEqual([CA_CERT_FILE, CA_KEY_FILE].sort());
    expect(isAbsolute(ca.certPath)).toBe(true);
    expect(ca.certPath).toBe(join(caDir, CA_CERT_FILE));
    expect(await readFile(ca.certPath, 'utf8')).toBe(ca.certPem);
    expect(await readFile(join(caDir, CA_KEY_FILE), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('generates a P-256 root with the CA extensions and a per-install name', async () => {
    const before = Date.now();
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const cert = new X509Certificate(ca.certPem);

    expect(cert.subject).toBe(cert.issuer);
    expect(await cert.isSelfSigned()).toBe(true);
    const [commonName] = cert.subjectName.getField('CN');
    expect(commonName).toMatch(/^fetch-oracle CA \(.+, \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/);
    expect(commonName).toContain(`fetch-oracle CA (${hostname()}, ${new Date(before).toISOString().slice(0, 10)}`);
    expect(cert.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });

    const basic = cert.getExtension(BasicConstraintsExtension);
    expect(basic).toMatchObject({ critical: true, ca: true, pathLength: 0 });
    const usage = cert.getExtension(KeyUsagesExtension);
    expect(usage?.critical).toBe(true);
    expect(usage?.usages).toBe(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign);
    expect(cert.getExtension(SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);

    expect(Math.abs(cert.notBefore.getTime() - (before - DAY_MS))).toBeLessThan(60_000);
    const tenYearsLater = new Date(cert.notBefore);
    tenYearsLater.setUTCFullYear(tenYearsLater.getUTCFullYear() + 10);
    expect(cert.notAfter.getTime()).toBe(tenYearsLater.getTime());
    const serial = serialBytes(cert.serialNumber);
    expect(serial).toHaveLength(16);
    expect((serial[0] ?? 0) & 0x80).toBe(0);
  });

  it('reuses the existing CA on a second loadOrCreate', async () => {
    const first = await CertAuthority.loadOrCreate({ dir: caDir });
    const keyBefore = await readFile(join(caDir, CA_KEY_FILE), 'utf8');
    const second = await CertAuthority.loadOrCreate({ dir: caDir });
    expect(second.certPem).toBe(first.certPem);
    expect(await readFile(join(caDir, CA_KEY_FILE), 'utf8')).toBe(keyBefore);

    // Leaves minted by the reloaded instance chain to the first instance's certificate: same key.
    const port = await startSniServer(second);
    const { authorized } = await handshake({ host: '127.0.0.1', port, servername: 'localhost', ca: first.certPem });
    expect(authorized).toBe(true);
  });

  it('settles concurrent first-time creations on one CA', async () => {
    const lines: string[] = [];
    const logger = createLogger('oracle', (_level, _namespace, line) => lines.push(line));
    const created = await Promise.all([1, 2, 3].map(() => CertAuthority.loadOrCreate({ dir: caDir, logger })));
    expect(lines.filter((line) => line.startsWith('created CA'))).toHaveLength(1);
    for (const ca of created) expect(ca.certPem).toBe(created[0]?.certPem);
    expect((await readdir(caDir)).sort()).toEqual([CA_CERT_FILE, CA_KEY_FILE].sort());
    expect((await CertAuthority.loadOrCreate({ dir: caDir })).certPem).toBe(created[0]?.certPem);
  });

  it('serves an SNI handshake that Node verifies, with the leaf fields clients check', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const port = await startSniServer(ca);
    const before = Date.now();
    const { authorized, peer } = await handshake({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.certPem });
    expect(authorized).toBe(true);

    const leaf = new X509Certificate(peer.raw);
    const root = new X509Certificate(ca.certPem);
    expect(leaf.issuer).toBe(root.subject);
    expect(leaf.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(leaf.getExtension(SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([{ type: 'dns', value: 'localhost' }]);
    expect(leaf.getExtension(ExtendedKeyUsageExtension)?.usages).toEqual([ExtendedKeyUsage.serverAuth]);
    expect(leaf.getExtension(KeyUsagesExtension)?.usages).toBe(KeyUsageFlags.digitalSignature);
    expect(leaf.getExtension(BasicConstraintsExtension)?.ca).toBe(false);
    expect(leaf.getExtension(SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
    expect(leaf.getExtension(AuthorityKeyIdentifierExtension)?.keyId).toBe(root.getExtension(SubjectKeyIdentifierExtension)?.keyId);
    expect(Math.abs(leaf.notBefore.getTime() - (before - DAY_MS))).toBeLessThan(60_000);
    // CA/B BR §6.3.2: validity period (notBefore..notAfter inclusive) of at most 397 days.
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime() + 1000).toBe(397 * DAY_MS);
    const serial = serialBytes(leaf.serialNumber);
    expect(serial).toHaveLength(16);
    expect((serial[0] ?? 0) & 0x80).toBe(0);
    expect(leaf.serialNumber).not.toBe(root.serialNumber);
  });

  it('passes `openssl s_client -verify_return_error` with only the CA file trusted', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const caFile = await writeCaFile(ca);
    const port = await startSniServer(ca);
    const result = await run('openssl', [
      's_client',
      '-connect', `127.0.0.1:${port}`,
      '-servername', 'localhost',
      '-verify_return_error',
      '-verify_hostname', 'localhost',
      '-x509_strict',
      '-CAfile', caFile,
      '-no-CApath',
      '-no-CAstore',
    ]);
    expect(result.stdout).toContain('Verify return code: 0 (ok)');
    expect(result.code).toBe(0);
  });

  it('passes `curl --cacert` for https://localhost', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const caFile = await writeCaFile(ca);
    const port = await startSniServer(ca);
    const result = await run('curl', [
      '-sS', '--fail', '--max-time', '10', '--noproxy', '*',
      '--cacert', caFile,
      '--resolve', `localhost:${port}:127.0.0.1`,
      `https://localhost:${port}/`,
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('ok');
    expect(result.code).toBe(0);
  });

  it('passes `curl --cacert` for https://127.0.0.1 through an IP SAN', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const caFile = await writeCaFile(ca);
    const port = await startServerFor(await ca.secureContextFor('127.0.0.1'));
    const result = await run('curl', ['-sS', '--fail', '--max-time', '10', '--noproxy', '*', '--cacert', caFile, `https://127.0.0.1:${port}/`]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('ok');
    expect(result.code).toBe(0);

    // Node checks the IP SAN too (it sends no SNI for an IP host either).
    const { authorized, peer } = await handshake({ host: '127.0.0.1', port, ca: ca.certPem });
    expect(authorized).toBe(true);
    expect(peer.subjectAltName).toBe('IP Address:127.0.0.1');
  });

  it('gives IPv6 literals an IP SAN, whatever their spelling', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const context = await ca.secureContextFor('[::1]');
    expect(await ca.secureContextFor('::1')).toBe(context);
    expect(await ca.secureContextFor('0:0:0:0:0:0:0:1')).toBe(context);

    const port = await startServerFor(context);
    const { authorized, peer } = await handshake({
      host: '127.0.0.1',
      port,
      ca: ca.certPem,
      checkServerIdentity: (_host, cert) => checkServerIdentity('::1', cert),
    });
    expect(authorized).toBe(true);
    expect(peer.checkIP('::1')).toBe('::1');
    expect(peer.checkHost('localhost')).toBeUndefined();
  });

  it('returns the cached context for the same host and shares concurrent generations', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    const concurrent = await Promise.all([1, 2, 3, 4, 5].map(() => ca.secureContextFor('example.test')));
    for (const context of concurrent) expect(context).toBe(concurrent[0]);
    expect(await ca.secureContextFor('example.test')).toBe(concurrent[0]);
    expect(await ca.secureContextFor('EXAMPLE.test.')).toBe(concurrent[0]);
    expect(await ca.secureContextFor('other.test')).not.toBe(concurrent[0]);
  });

  it('drops the least recently used leaf beyond maxCachedLeaves', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir, maxCachedLeaves: 2 });
    const a = await ca.secureContextFor('a.test');
    const b = await ca.secureContextFor('b.test');
    expect(await ca.secureContextFor('a.test')).toBe(a); // a is now the most recently used
    await ca.secureContextFor('c.test'); // evicts b
    expect(await ca.secureContextFor('a.test')).toBe(a);
    expect(await ca.secureContextFor('b.test')).not.toBe(b);
  });

  it('regenerates a leaf once it is within an hour of expiry', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.now();
    const original = await ca.secureContextFor('example.test');
    // notAfter = start - 1 day + 397 days - 1 s; renewal starts an hour before that.
    const notAfter = start + 396 * DAY_MS - 1000;
    vi.setSystemTime(notAfter - 2 * 60 * 60 * 1000);
    expect(await ca.secureContextFor('example.test')).toBe(original);
    vi.setSystemTime(notAfter - 30 * 60 * 1000);
    const renewed = await ca.secureContextFor('example.test');
    expect(renewed).not.toBe(original);
    expect(await ca.secureContextFor('example.test')).toBe(renewed);
  });

  it('rejects a corrupted key file with an error naming it, leaving the files alone', async () => {
    await CertAuthority.loadOrCreate({ dir: caDir });
    const keyPath = join(caDir, CA_KEY_FILE);
    const certBefore = await readFile(join(caDir, CA_CERT_FILE), 'utf8');
    await writeFile(keyPath, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');

    const error: unknown = await CertAuthority.loadOrCreate({ dir: caDir }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OracleError);
    expect(error).toMatchObject({ code: 'ORACLE_ERR_INVALID_CONFIG' });
    expect((error as Error).message).toContain(`CA key file ${keyPath} is corrupt`);
    expect(await readFile(keyPath, 'utf8')).toContain('not a key');
    expect(await readFile(join(caDir, CA_CERT_FILE), 'utf8')).toBe(certBefore);
  });

  it('rejects a certificate that does not match the key, naming the certificate file', async () => {
    await CertAuthority.loadOrCreate({ dir: caDir });
    const otherDir = join(workDir, 'other');
    await CertAuthority.loadOrCreate({ dir: otherDir });
    await writeFile(join(caDir, CA_KEY_FILE), await readFile(join(otherDir, CA_KEY_FILE)));

    await expect(CertAuthority.loadOrCreate({ dir: caDir })).rejects.toThrow(
      `CA certificate file ${join(caDir, CA_CERT_FILE)} does not match the key in ${join(caDir, CA_KEY_FILE)}`,
    );
  });

  it('rejects a half-present pair instead of regenerating it', async () => {
    await CertAuthority.loadOrCreate({ dir: caDir });
    await unlink(join(caDir, CA_CERT_FILE));
    await expect(CertAuthority.loadOrCreate({ dir: caDir })).rejects.toMatchObject({
      code: 'ORACLE_ERR_INVALID_CONFIG',
      message: expect.stringContaining(`CA certificate file ${join(caDir, CA_CERT_FILE)} is missing`) as unknown,
    });
    expect(await readdir(caDir)).toEqual([CA_KEY_FILE]);
  });

  it('rejects host names that are neither DNS names nor IP addresses', async () => {
    const ca = await CertAuthority.loadOrCreate({ dir: caDir });
    await expect(ca.secureContextFor('bad host')).rejects.toMatchObject({ code: 'ORACLE_ERR_BAD_REQUEST' });
    await expect(ca.secureContextFor('*.example.test')).rejects.toMatchObject({ code: 'ORACLE_ERR_BAD_REQUEST' });
    await expect(ca.secureContextFor('')).rejects.toMatchObject({ code: 'ORACLE_ERR_BAD_REQUEST' });
  });

  it('rejects an invalid maxCachedLeaves', async () => {
    await expect(CertAuthority.loadOrCreate({ dir: caDir, maxCachedLeaves: 0 })).rejects.toMatchObject({
      code: 'ORACLE_ERR_INVALID_CONFIG',
      message: expect.stringContaining('maxCachedLeaves') as unknown,
    });
  });
});

describe('createTestCa', () => {
  it('issues origin leaves that Node verifies for localhost and 127.0.0.1, without writing files', async () => {
    const testCa = await createTestCa();
    const { certPem, keyPem } = await testCa.leafFor(['localhost', '127.0.0.1']);
    const server = createTlsServer({ cert: certPem, key: keyPem });
    server.on('secureConnection', answerHttp);
    const port = await listen(server);

    expect((await handshake({ host: '127.0.0.1', port, servername: 'localhost', ca: testCa.caPem })).authorized).toBe(true);
    expect((await handshake({ host: '127.0.0.1', port, ca: testCa.caPem })).authorized).toBe(true);
    expect(new X509Certificate(testCa.caPem).subject).not.toContain('fetch-oracle CA (');
  });
});

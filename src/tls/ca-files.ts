// @peculiar/x509 2.x resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata
// polyfill loaded before the library itself.
import 'reflect-metadata';
import { X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname as machineHostname } from 'node:os';
import { X509Certificate } from '@peculiar/x509';
import { InvalidConfigError, StoreError } from '../errors.ts';
import { syncDir } from '../io/durable.ts';
import type { Logger } from '../log.ts';
import { createCaCertificate } from './ca-certificate.ts';
import type { CaSigner } from './ca-certificate.ts';
import { EC_KEY_ALGORITHM, generateP256KeyPair, privateKeyToPem } from './p256-key.ts';

/** How long a process that lost the race to create the CA waits for the winner's certificate file. */
const CA_CERT_APPEAR_TIMEOUT_MS = 5_000;

export interface CaFilePaths {
  /** The directory holding both files; created (mode 0700) when missing. */
  readonly dir: string;
  readonly certPath: string;
  /** Written 0600: whoever reads it can mint certificates every client of this CA trusts. */
  readonly keyPath: string;
}

/**
 * The CA kept in `certPath` + `keyPath`: loaded and validated when both exist, generated and persisted
 * when neither does. A pair that is unreadable, corrupt, mismatched, expired or half-present is an
 * InvalidConfigError naming the file: regenerating would silently invalidate every client that already
 * trusts the old CA. Two processes creating it at once end up with the same pair.
 */
export async function loadOrCreateCaFiles(paths: CaFilePaths, logger: Logger): Promise<LoadedCa> {
  const loaded = await loadCaFiles(paths.certPath, paths.keyPath);
  if (loaded !== undefined) {
    logger.debug('loaded CA %s', paths.certPath);
    return loaded;
  }
  return createCaFiles(paths.dir, paths.certPath, paths.keyPath, logger);
}

function caCommonName(now: Date): string {
  // Host and creation time make each install's CA recognisable in a trust store listing.
  return `fetch-oracle CA (${machineHostname()}, ${now.toISOString().replace(/\.\d{3}Z$/, 'Z')})`;
}

export interface LoadedCa {
  readonly signer: CaSigner;
  readonly certPem: string;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InvalidConfigError(`Cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** undefined when neither file exists; otherwise the validated pair, or an error naming the bad file. */
async function loadCaFiles(certPath: string, keyPath: string): Promise<LoadedCa | undefined> {
  const [certPem, keyPem] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
  if (certPem === undefined && keyPem === undefined) return undefined;
  const startOver = `delete both ${certPath} and ${keyPath} to generate a new CA (clients must then trust the new one)`;
  if (keyPem === undefined) throw new InvalidConfigError(`CA key file ${keyPath} is missing but ${certPath} exists; restore it or ${startOver}`);
  if (certPem === undefined) throw new InvalidConfigError(`CA certificate file ${certPath} is missing but ${keyPath} exists; restore it or ${startOver}`);

  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (cause) {
    throw new InvalidConfigError(`CA key file ${keyPath} is corrupt (expected a PEM private key): ${(cause as Error).message}; restore it or ${startOver}`, { cause });
  }
  if (keyObject.asymmetricKeyType !== 'ec' || keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InvalidConfigError(`CA key file ${keyPath} holds a ${keyObject.asymmetricKeyType ?? 'unknown'} key (expected ECDSA P-256); ${startOver}`);
  }
  let nodeCert: NodeX509Certificate;
  let certificate: X509Certificate;
  try {
    nodeCert = new NodeX509Certificate(certPem);
    certificate = new X509Certificate(certPem);
  } catch (cause) {
    throw new InvalidConfigError(`CA certificate file ${certPath} is corrupt (expected a PEM certificate): ${(cause as Error).message}; restore it or ${startOver}`, { cause });
  }
  if (!nodeCert.ca) throw new InvalidConfigError(`CA certificate file ${certPath} is not a CA certificate (basicConstraints CA:TRUE missing); ${startOver}`);
  if (!nodeCert.checkPrivateKey(keyObject)) {
    throw new InvalidConfigError(`CA certificate file ${certPath} does not match the key in ${keyPath}; restore the matching pair or ${startOver}`);
  }
  if (certificate.notAfter.getTime() <= Date.now()) {
    throw new InvalidConfigError(`CA certificate file ${certPath} expired on ${certificate.notAfter.toISOString()}; ${startOver}`);
  }
  const privateKey = await webcrypto.subtle.importKey(
    'pkcs8',
    keyObject.export({ type: 'pkcs8', format: 'der' }),
    EC_KEY_ALGORITHM,
    false,
    ['sign'],
  );
  return { signer: { certificate, privateKey }, certPem };
}

async function createCaFiles(dir: string, certPath: string, keyPath: string, logger: Logger): Promise<LoadedCa> {
  const now = new Date();
  const keys = await generateP256KeyPair();
  const certificate = await createCaCertificate(keys, caCommonName(now), now);
  const certPem = certificate.toString('pem');
  try {
    // mkdir's mode applies only to directories it creates; an existing directory is the user's choice.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The key is published without overwriting: if another process created a CA meanwhile, its pair wins
    // and we load it, rather than the two interleaving into a mismatched pair.
    const published = await writeFileAtomic(keyPath, privateKeyToPem(keys.privateKey), 0o600, { exclusive: true });
    if (!published) return await waitForCaFiles(certPath, keyPath);
    await writeFileAtomic(certPath, certPem, 0o644, { exclusive: false });
    await syncDir(dir);
  } catch (cause) {
    if (cause instanceof InvalidConfigError) throw cause;
    throw new StoreError(`Cannot write the CA to ${dir}: ${(cause as Error).message}`, { cause });
  }
  logger.info('created CA %s (%s)', certPath, certificate.subject);
  return { signer: { certificate, privateKey: keys.privateKey }, certPem };
}

/**
 * Writes `text` to a fresh temporary file (created with `mode`, so the key is never readable by others,
 * fsynced), then moves it into place: `link` when `exclusive` (atomic and fails if the target exists),
 * else `rename` (atomic replace). Returns false when `exclusive` and the target already existed.
 */
async function writeFileAtomic(path: string, text: string, mode: number, options: { exclusive: boolean }): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (!options.exclusive) {
      await rename(tmp, path);
      return true;
    }
    try {
      await link(tmp, path);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // File systems without hard links: fall back to rename (atomic, but not exclusive).
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw cause;
      await rename(tmp, path);
      return true;
    }
    await unlink(tmp);
    return true;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Another process published the key first; its certificate follows within moments. */
async function waitForCaFiles(certPath: string, keyPath: string): Promise<LoadedCa> {
  const deadline = Date.now() + CA_CERT_APPEAR_TIMEOUT_MS;
  while (Date.now() < deadline && (await readOptional(certPath)) === undefined) {
    await new Promise((done) => setTimeout(done, 25));
  }
  const loaded = await loadCaFiles(certPath, keyPath);
  if (loaded === undefined) throw new InvalidConfigError(`CA key file ${keyPath} disappeared while loading it`);
  return loaded;
}

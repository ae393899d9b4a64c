// @peculiar/x509 2.x resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata
// polyfill loaded before the library itself.
import 'reflect-metadata';
import { KeyObject, X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as machineHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
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
  X509CertificateGenerator,
} from '@peculiar/x509';
import type { JsonGeneralName, JsonName } from '@peculiar/x509';
import { BadRequestError, InvalidConfigError, StoreError } from '../errors.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { Logger } from '../log.ts';

// Node's WebCrypto types; the project compiles without the DOM lib, which would declare them globally.
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const CA_CERT_FILE = 'ca-cert.pem';
export const CA_KEY_FILE = 'ca-key.pem';

const DAY_MS = 24 * 60 * 60 * 1000;
/** CA lifetime; long, because every client that trusts the CA has to be re-provisioned when it changes. */
export const CA_CERT_LIFETIME_YEARS = 10;
/**
 * Leaf lifetime. CA/Browser Forum Baseline Requirements §6.3.2 (ballot SC-31, 2020): subscriber
 * certificates SHOULD NOT have a validity period over 397 days; Apple and Chrome enforce 398 days. Those
 * caps bind publicly trusted roots only, but staying under them means no client policy ever trips on
 * our leaves. (Ballot SC-081 lowers the public cap to 200 days from 2026-03-15; private roots are exempt.)
 */
export const LEAF_CERT_LIFETIME_DAYS = 397;
/** Certificates start a day in the past so clients with a slow clock accept them at once. */
export const CLOCK_SKEW_ALLOWANCE_MS = DAY_MS;
/** A cached leaf is replaced once it is this close to notAfter (as mockttp does). */
export const LEAF_RENEW_BEFORE_EXPIRY_MS = 60 * 60 * 1000;
export const DEFAULT_MAX_CACHED_LEAVES = 1000;

/** ECDSA over P-256 with SHA-256 (RFC 5758 §3.2): universally supported and fast to generate. */
const EC_KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
/** X.520 ub-common-name (RFC 5280 Appendix A.1): longer hostnames go into the SAN only. */
const MAX_COMMON_NAME_LENGTH = 64;
const MAX_DNS_NAME_LENGTH = 253;
const DNS_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
/** How long a process that lost the race to create the CA waits for the winner's certificate file. */
const CA_CERT_APPEAR_TIMEOUT_MS = 5_000;

export interface CertAuthorityInit {
  /** Directory holding `ca-cert.pem` and `ca-key.pem`; created (mode 0700) when missing. */
  dir: string;
  /** @default NOOP_LOGGER */
  logger?: Logger;
  /** Cap on cached leaf contexts (least recently used are dropped first). @default 1000 */
  maxCachedLeaves?: number;
}

/** A CA certificate with its signing key, in memory. */
export interface CaSigner {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
}

/** A host name as it goes into a certificate: a lower-case DNS name, or an IP address in canonical text. */
export interface CertHost {
  readonly type: 'dns' | 'ip';
  readonly value: string;
}

interface LeafEntry {
  readonly context: Promise<SecureContext>;
  /** Epoch ms after which the entry is replaced; Infinity while the leaf is still being generated. */
  renewAt: number;
}

/**
 * The local certificate authority of the recording proxy: a long-lived ECDSA P-256 CA kept on disk, and
 * a short-lived leaf (as a TLS SecureContext) per SNI host name, minted on demand and cached.
 *
 * @example
 * const ca = await CertAuthority.loadOrCreate({ dir: '/var/lib/fetch-oracle/ca' })
 * tls.createServer({ SNICallback: (name, cb) => ca.secureContextFor(name).then((c) => cb(null, c), cb) })
 */
export class CertAuthority {
  /** The CA certificate (PEM); what clients must trust. */
  readonly certPem: string;
  /** Absolute path of `ca-cert.pem`. */
  readonly certPath: string;
  readonly #signer: CaSigner;
  readonly #logger: Logger;
  readonly #maxCachedLeaves: number;
  /** Map iteration order is insertion order, so re-inserting on use makes the first key the LRU one. */
  readonly #leaves = new Map<string, LeafEntry>();
  #leafKeys: Promise<{ readonly publicKey: CryptoKey; readonly privateKeyPem: string }> | undefined;

  private constructor(signer: CaSigner, certPem: string, certPath: string, logger: Logger, maxCachedLeaves: number) {
    this.#signer = signer;
    this.certPem = certPem;
    this.certPath = certPath;
    this.#logger = logger;
    this.#maxCachedLeaves = maxCachedLeaves;
  }

  /**
   * Loads the CA from `dir`, or generates one there when neither file exists. A pair that is unreadable,
   * corrupt, mismatched, expired or half-present is an InvalidConfigError naming the file: regenerating
   * would silently invalidate every client that already trusts the old CA.
   */
  static async loadOrCreate(init: CertAuthorityInit): Promise<CertAuthority> {
    const maxCachedLeaves = init.maxCachedLeaves ?? DEFAULT_MAX_CACHED_LEAVES;
    if (!Number.isSafeInteger(maxCachedLeaves) || maxCachedLeaves < 1) {
      throw new InvalidConfigError(`Invalid maxCachedLeaves: ${String(init.maxCachedLeaves)} (expected a positive integer)`);
    }
    if (typeof init.dir !== 'string' || init.dir === '') {
      throw new InvalidConfigError(`Invalid CA dir: ${JSON.stringify(init.dir)} (expected a directory path)`);
    }
    const logger = (init.logger ?? NOOP_LOGGER).child('tls');
    const dir = resolve(init.dir);
    const certPath = join(dir, CA_CERT_FILE);
    const keyPath = join(dir, CA_KEY_FILE);

    let loaded = await loadCaFiles(certPath, keyPath);
    if (loaded === undefined) {
      loaded = await createCaFiles(dir, certPath, keyPath, logger);
    } else {
      logger.debug('loaded CA %s', certPath);
    }
    return new CertAuthority(loaded.signer, loaded.certPem, certPath, logger, maxCachedLeaves);
  }

  /**
   * The TLS context serving `hostname` (an SNI name, or the CONNECT target when the client sent no SNI,
   * as RFC 6066 §3 forbids IP literals there). Cached per host; concurrent calls share one generation.
   * @throws BadRequestError when `hostname` is neither a DNS name nor an IP address.
   */
  secureContextFor(hostname: string): Promise<SecureContext> {
    let host: CertHost;
    try {
      host = parseCertHost(hostname);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const key = `${host.type}:${host.value}`;
    const cached = this.#leaves.get(key);
    if (cached !== undefined) {
      this.#leaves.delete(key);
      if (Date.now() < cached.renewAt) {
        this.#leaves.set(key, cached);
        return cached.context;
      }
      this.#logger.debug('renewing leaf for %s (expires within %d ms)', host.value, LEAF_RENEW_BEFORE_EXPIRY_MS);
    }

    const entry: LeafEntry = { context: this.#mintContext(host, (renewAt) => (entry.renewAt = renewAt)), renewAt: Infinity };
    entry.context.catch(() => {
      // A failed generation must not be cached; the next call retries.
      if (this.#leaves.get(key) === entry) this.#leaves.delete(key);
    });
    this.#leaves.set(key, entry);
    for (const oldest of this.#leaves.keys()) {
      if (this.#leaves.size <= this.#maxCachedLeaves) break;
      this.#leaves.delete(oldest);
    }
    return entry.context;
  }

  async #mintContext(host: CertHost, setRenewAt: (renewAt: number) => void): Promise<SecureContext> {
    const keys = await this.#getLeafKeys();
    const leaf = await createLeafCertificate(this.#signer, [host], keys.publicKey);
    setRenewAt(leaf.notAfter.getTime() - LEAF_RENEW_BEFORE_EXPIRY_MS);
    this.#logger.debug('minted leaf for %s (serial %s, notAfter %s)', host.value, leaf.serialNumber, leaf.notAfter.toISOString());
    return createSecureContext({ key: keys.privateKeyPem, cert: leaf.toString('pem') });
  }

  /** One leaf key per CA instance: P-256 generation is cheap, but reusing it makes minting a pure signature. */
  #getLeafKeys(): Promise<{ readonly publicKey: CryptoKey; readonly privateKeyPem: string }> {
    if (this.#leafKeys === undefined) {
      const keys = generateP256KeyPair().then((pair) => ({
        publicKey: pair.publicKey,
        privateKeyPem: privateKeyToPem(pair.privateKey),
      }));
      keys.catch(() => {
        if (this.#leafKeys === keys) this.#leafKeys = undefined;
      });
      this.#leafKeys = keys;
    }
    return this.#leafKeys;
  }
}

/** An extractable ECDSA P-256 key pair (WebCrypto). */
export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of an extractable WebCrypto private key. */
export function privateKeyToPem(privateKey: CryptoKey): string {
  return KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * A self-signed root for issuing TLS server leaves. Extensions per RFC 5280 §4.2.1: basicConstraints
 * critical with CA:TRUE and pathLenConstraint 0 (§4.2.1.9; it signs leaves only), keyUsage critical
 * keyCertSign|cRLSign (§4.2.1.3), and a subjectKeyIdentifier (§4.2.1.2) for the leaves' AKI to point at.
 */
export async function createCaCertificate(keys: CryptoKeyPair, commonName: string, now = new Date()): Promise<X509Certificate> {
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_CERT_LIFETIME_YEARS);
  return await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: [{ CN: [commonName] }] satisfies JsonName,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
}

/**
 * A TLS server leaf for `hosts`, signed by `ca`. Names go into the subjectAltName, which is what clients
 * match (RFC 6125 §6.4.4, RFC 9110 §4.3.4): DNS names as dNSName, IP literals as iPAddress (RFC 5280
 * §4.2.1.6). The CN repeats the first host, as CA/B BR §7.1.4.3 allows, unless it exceeds ub-common-name;
 * then the subject is empty and the SAN critical (RFC 5280 §4.2.1.6). EKU serverAuth (§4.2.1.12),
 * keyUsage digitalSignature (all an ECDHE_ECDSA server key does), SKI and AKI (§4.2.1.1-2) for path building.
 * Validity is clamped to the CA's notAfter so no leaf outlives its issuer.
 */
export async function createLeafCertificate(
  ca: CaSigner,
  hosts: readonly (string | CertHost)[],
  publicKey: CryptoKey,
  now = new Date(),
): Promise<X509Certificate> {
  const names = hosts.map((host) => (typeof host === 'string' ? parseCertHost(host) : host));
  const first = names[0];
  if (first === undefined) throw new BadRequestError('Cannot issue a leaf certificate without a host name');
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS);
  // BR §1.6.1 counts the validity period from notBefore through notAfter inclusive, hence the 1 s.
  const lifetimeEnd = notBefore.getTime() + LEAF_CERT_LIFETIME_DAYS * DAY_MS - 1000;
  const notAfter = new Date(Math.min(lifetimeEnd, ca.certificate.notAfter.getTime()));
  const withCommonName = first.value.length <= MAX_COMMON_NAME_LENGTH;
  const san: JsonGeneralName[] = names.map((name) => ({ type: name.type, value: name.value }));
  const caKeyId = ca.certificate.getExtension(SubjectKeyIdentifierExtension)?.keyId;
  return await X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: withCommonName ? ([{ CN: [first.value] }] satisfies JsonName) : ([] satisfies JsonName),
      issuer: ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
        new SubjectAlternativeNameExtension(san, !withCommonName),
        await SubjectKeyIdentifierExtension.create(publicKey, false, webcrypto),
        caKeyId !== undefined
          ? new AuthorityKeyIdentifierExtension(caKeyId, false)
          : await AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
}

/**
 * Normalises a host for a certificate and for the leaf cache: brackets and IPv6 zone ids dropped, IPv6
 * fully expanded (so `::1` and `[0:0::1]` share a leaf), DNS names lower-cased (RFC 4343) without the
 * trailing root dot. Anything else is rejected: the value comes from the client's ClientHello.
 * @throws BadRequestError
 */
export function parseCertHost(hostname: string): CertHost {
  let text = hostname.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zoneless = text.split('%')[0] ?? '';
  if (isIP(zoneless) === 4) return { type: 'ip', value: zoneless };
  if (isIP(zoneless) === 6) return { type: 'ip', value: expandIpv6(zoneless) };
  const name = text.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > MAX_DNS_NAME_LENGTH || !name.split('.').every((label) => DNS_LABEL.test(label))) {
    throw new BadRequestError(`Invalid TLS host name: ${JSON.stringify(hostname)} (expected a DNS name or an IP address)`);
  }
  return { type: 'dns', value: name };
}

/** Eight colon-separated hex groups; an embedded dotted IPv4 tail (`::ffff:1.2.3.4`) becomes two groups. */
function expandIpv6(address: string): string {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros: string[] = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16).toString(16)).join(':');
}

/**
 * 16 random bytes with the top bit cleared: a positive INTEGER (RFC 5280 §4.1.2.2, at most 20 octets)
 * carrying well over the 64 bits of CSPRNG output CA/B BR §7.1 asks for. A non-zero first byte keeps the
 * DER encoding exactly 16 octets.
 */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function caCommonName(now: Date): string {
  // Host and creation time make each install's CA recognisable in a trust store listing.
  return `fetch-oracle CA (${machineHostname()}, ${now.toISOString().replace(/\.\d{3}Z$/, 'Z')})`;
}

interface LoadedCa {
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

/** Makes the new directory entries durable (POSIX: fsync on the file does not cover its name). */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Not supported on every platform/file system; the files themselves are already synced.
  } finally {
    await handle?.close();
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

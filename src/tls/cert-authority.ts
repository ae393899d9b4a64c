import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { InvalidConfigError } from '../errors.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { Logger } from '../log.ts';
import { loadOrCreateCaFiles } from './ca-files.ts';
import type { CaSigner } from './ca-certificate.ts';
import { parseCertHost } from './cert-host.ts';
import type { CertHost } from './cert-host.ts';
import { createLeafCertificate } from './leaf-certificate.ts';
import { generateP256KeyPair, privateKeyToPem } from './p256-key.ts';
import type { CryptoKey } from './p256-key.ts';
import { DEFAULT_MAX_CACHED_LEAVES, SecureContextCache } from './secure-context-cache.ts';
import type { MintedContext } from './secure-context-cache.ts';

export const CA_CERT_FILE = 'ca-cert.pem';
export const CA_KEY_FILE = 'ca-key.pem';

export interface CertAuthorityInit {
  /** Directory holding `ca-cert.pem` and `ca-key.pem`; created (mode 0700) when missing. */
  dir: string;
  /** @default NOOP_LOGGER */
  logger?: Logger;
  /** Cap on cached leaf contexts (least recently used are dropped first). @default 1000 */
  maxCachedLeaves?: number;
}

/**
 * The local certificate authority of the recording proxy: a long-lived ECDSA P-256 CA kept on disk
 * (`ca-files.ts`), and a short-lived leaf (as a TLS SecureContext) per SNI host name, minted on demand
 * (`leaf-certificate.ts`) and cached (`SecureContextCache`).
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
  readonly #contexts: SecureContextCache;
  #leafKeys: Promise<{ readonly publicKey: CryptoKey; readonly privateKeyPem: string }> | undefined;

  private constructor(signer: CaSigner, certPem: string, certPath: string, logger: Logger, maxCachedLeaves: number) {
    this.#signer = signer;
    this.certPem = certPem;
    this.certPath = certPath;
    this.#logger = logger;
    this.#contexts = new SecureContextCache({ mint: (host) => this.#mintContext(host), maxEntries: maxCachedLeaves, logger });
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
    const loaded = await loadOrCreateCaFiles({ dir, certPath, keyPath: join(dir, CA_KEY_FILE) }, logger);
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
      return Promise.reject(error);
    }
    return this.#contexts.get(host);
  }

  async #mintContext(host: CertHost): Promise<MintedContext> {
    const keys = await this.#getLeafKeys();
    const leaf = await createLeafCertificate(this.#signer, [host], keys.publicKey);
    this.#logger.debug('minted leaf for %s (serial %s, notAfter %s)', host.value, leaf.serialNumber, leaf.notAfter.toISOString());
    return { context: createSecureContext({ key: keys.privateKeyPem, cert: leaf.toString('pem') }), notAfter: leaf.notAfter };
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

import type { SecureContext } from 'node:tls';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { CertHost } from './cert-host.ts';

/** A cached leaf is replaced once it is this close to notAfter (as mockttp does). */
export const LEAF_RENEW_BEFORE_EXPIRY_MS = 60 * 60 * 1000;
export const DEFAULT_MAX_CACHED_LEAVES = 1000;

/** A minted context and the notAfter of its certificate. */
export interface MintedContext {
  readonly context: SecureContext;
  readonly notAfter: Date;
}

export interface SecureContextCacheInit {
  /** Makes the context for a host not cached (or due for renewal). */
  mint: (host: CertHost) => Promise<MintedContext>;
  /** Cap on cached contexts (least recently used are dropped first). @default DEFAULT_MAX_CACHED_LEAVES */
  maxEntries?: number;
  logger?: Logger;
}

interface Entry {
  readonly context: Promise<SecureContext>;
  /** Epoch ms after which the entry is replaced; Infinity while the leaf is still being minted. */
  renewAt: number;
}

/**
 * TLS contexts per host, minted on demand: concurrent requests for one host share one minting, a failed
 * minting is not cached, an entry is replaced LEAF_RENEW_BEFORE_EXPIRY_MS before its certificate expires,
 * and at most `maxEntries` are kept.
 */
export class SecureContextCache {
  readonly #mint: (host: CertHost) => Promise<MintedContext>;
  readonly #maxEntries: number;
  readonly #logger: Logger;
  /** Map iteration order is insertion order, so re-inserting on use makes the first key the LRU one. */
  readonly #entries = new Map<string, Entry>();

  constructor(init: SecureContextCacheInit) {
    this.#mint = init.mint;
    this.#maxEntries = init.maxEntries ?? DEFAULT_MAX_CACHED_LEAVES;
    this.#logger = init.logger ?? NOOP_LOGGER;
  }

  get(host: CertHost): Promise<SecureContext> {
    const key = `${host.type}:${host.value}`;
    const cached = this.#entries.get(key);
    if (cached !== undefined) {
      this.#entries.delete(key);
      if (Date.now() < cached.renewAt) {
        this.#entries.set(key, cached);
        return cached.context;
      }
      this.#logger.debug('renewing leaf for %s (expires within %d ms)', host.value, LEAF_RENEW_BEFORE_EXPIRY_MS);
    }

    const entry: Entry = {
      context: this.#mint(host).then(({ context, notAfter }) => {
        entry.renewAt = notAfter.getTime() - LEAF_RENEW_BEFORE_EXPIRY_MS;
        return context;
      }),
      renewAt: Infinity,
    };
    entry.context.catch(() => {
      // A failed minting must not be cached; the next call retries.
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    });
    this.#entries.set(key, entry);
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries) break;
      this.#entries.delete(oldest);
    }
    return entry.context;
  }

  get size(): number {
    return this.#entries.size;
  }
}

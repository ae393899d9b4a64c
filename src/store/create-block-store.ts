import { InvalidConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockStore } from './block-store.ts';
import { FsBlockStore } from './fs-block-store.ts';
import { KuboBlockStore } from './kubo-block-store.ts';
import { TieredBlockStore } from './tiered-block-store.ts';

export interface CreateBlockStoreInit {
  /** Data directory: the embedded store lives in `<dataDir>/blocks`. Required without `ipfs`. */
  dataDir?: string;
  /** Kubo RPC API (`--ipfs URL`): store every block in Kubo. @default none (embedded store only) */
  ipfs?: string;
  /**
   * With `ipfs`: keep the embedded store of `dataDir` beside Kubo as a local cache (read first; filled on
   * write per `cacheOnWrite`, and on read). `false` talks to Kubo alone, which is what `verify --ipfs` wants (a cache would hide blocks
   * Kubo lost).
   * @default true when `dataDir` is given
   */
  cache?: boolean;
  /** With the cache: which writes also go to it (see TieredBlockStoreInit). @default 'links' */
  cacheOnWrite?: 'all' | 'links';
  /** Kubo per-request timeout in ms. @default KUBO_TIMEOUT_MS */
  timeoutMs?: number;
  /** With `ipfs`: reads may fetch blocks Kubo lacks from its peers (bitswap) for this long each, in ms. @default local reads only */
  fetchTimeoutMs?: number;
  logger?: Logger;
}

/**
 * The block store for `--data DIR [--ipfs URL]`: the embedded store; or Kubo with the embedded store as
 * its cache (`TieredBlockStore`); or Kubo alone (`cache: false`). Nothing is contacted until first use;
 * call `close()` when done.
 */
export function createBlockStore(init: CreateBlockStoreInit): BlockStore {
  if (init.ipfs === undefined) {
    if (init.dataDir === undefined) throw new InvalidConfigError('A block store needs a data directory (--data DIR) or Kubo (--ipfs URL)');
    return new FsBlockStore(init.dataDir);
  }
  const kubo = new KuboBlockStore({
    url: init.ipfs,
    ...(init.timeoutMs === undefined ? {} : { timeoutMs: init.timeoutMs }),
    ...(init.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: init.fetchTimeoutMs }),
    ...(init.logger === undefined ? {} : { logger: init.logger.child('kubo') }),
  });
  if (init.cache === false || init.dataDir === undefined) return kubo;
  return new TieredBlockStore({
    primary: kubo,
    cache: new FsBlockStore(init.dataDir, { syncFiles: false }), // a copy of Kubo's blocks: read again from there if lost
    ...(init.cacheOnWrite === undefined ? {} : { cacheOnWrite: init.cacheOnWrite }),
    ...(init.logger === undefined ? {} : { logger: init.logger.child('store') }),
  });
}

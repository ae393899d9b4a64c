/** The block stores: one factory for the command line's `--data DIR [--ipfs URL]`, and each backing. */
export { createBlockStore } from './create-block-store.ts';
export type { CreateBlockStoreInit } from './create-block-store.ts';
export { FsBlockStore } from './fs-block-store.ts';
export { kuboApiUrl } from './kubo-api-url.ts';
export { KuboBlockStore, KUBO_FETCH_TIMEOUT_MS, KUBO_HAS_TIMEOUT_MS, KUBO_PIN_TIMEOUT_MS, KUBO_TIMEOUT_MS, KUBO_WRITE_AHEAD_BLOCKS } from './kubo-block-store.ts';
export type { KuboBlockStoreInit } from './kubo-block-store.ts';
export { MemoryBlockStore } from './memory-block-store.ts';
export { CACHE_WRITE_BEHIND_BLOCKS, TieredBlockStore } from './tiered-block-store.ts';
export type { TieredBlockStoreInit } from './tiered-block-store.ts';
export type { Block, BlockStore, PinOptions } from './block-store.ts';

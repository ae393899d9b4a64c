import { withMethod } from './request-key.ts';
import type { RequestKey } from './request-key.ts';

/** What answers a request: the entry found, and the key it is filed under (the GET's for a HEAD fallback). */
export interface Resolution<E> {
  readonly entry: E;
  readonly key: RequestKey;
  /** True when a HEAD is answered from the recorded GET of the same URL and variant. */
  readonly fallback: boolean;
}

/** Finds the entry filed under a key (a record index, a netlock), or undefined. */
export type EntryLookup<E> = (key: RequestKey) => Promise<E | undefined>;

/**
 * The one matching rule of record and replay (design §5): the exact key first; for a HEAD without one,
 * the recorded GET of the same URL and variant (its head is the HEAD's answer). Pure: `lookup` brings the I/O.
 */
export async function resolve<E>(key: RequestKey, lookup: EntryLookup<E>): Promise<Resolution<E> | undefined> {
  const exact = await lookup(key);
  if (exact !== undefined) return { entry: exact, key, fallback: false };
  if (key.method !== 'HEAD') return undefined;
  const get = withMethod(key, 'GET');
  const found = await lookup(get);
  return found === undefined ? undefined : { entry: found, key: get, fallback: true };
}

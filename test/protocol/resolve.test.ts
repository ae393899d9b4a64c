import { describe, expect, it } from 'vitest';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import type { RequestKey } from '../../src/protocol/request-key.ts';
import { resolve } from '../../src/protocol/resolve.ts';

const key = (method: string): RequestKey => computeRequestKey({ method, url: 'https://h.example/a', headers: { accept: '*/*' } });

function lookupOf(entries: Record<string, string>): { lookup: (k: RequestKey) => Promise<string | undefined>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookup: (k) => {
      asked.push(k.method);
      return Promise.resolve(entries[k.id]);
    },
  };
}

describe('resolve', () => {
  it('answers the exact key first', async () => {
    const { lookup, asked } = lookupOf({ [key('HEAD').id]: 'head', [key('GET').id]: 'get' });
    expect(await resolve(key('HEAD'), lookup)).toEqual({ entry: 'head', key: key('HEAD'), fallback: false });
    expect(asked).toEqual(['HEAD']);
  });

  it('answers a HEAD from the recorded GET of the same URL and variant', async () => {
    const { lookup, asked } = lookupOf({ [key('GET').id]: 'get' });
    const found = await resolve(key('HEAD'), lookup);
    expect(found).toEqual({ entry: 'get', key: key('GET'), fallback: true });
    expect(asked).toEqual(['HEAD', 'GET']);
  });

  it('misses without a fallback for other methods', async () => {
    const { lookup, asked } = lookupOf({ [key('GET').id]: 'get' });
    expect(await resolve(key('POST'), lookup)).toBeUndefined();
    expect(await resolve(key('HEAD'), lookupOf({}).lookup)).toBeUndefined();
    expect(asked).toEqual(['POST']);
  });
});

import { createSecureContext } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { CertHost } from '../../src/tls/cert-host.ts';
import { LEAF_RENEW_BEFORE_EXPIRY_MS, SecureContextCache } from '../../src/tls/secure-context-cache.ts';
import type { MintedContext } from '../../src/tls/secure-context-cache.ts';

const host = (value: string): CertHost => ({ type: 'dns', value });

function counter(notAfter: () => Date = () => new Date(Date.now() + 24 * 3600_000)): { mint: (h: CertHost) => Promise<MintedContext>; minted: string[] } {
  const minted: string[] = [];
  return {
    minted,
    mint: (h) => {
      minted.push(h.value);
      return Promise.resolve({ context: createSecureContext({}), notAfter: notAfter() });
    },
  };
}

describe('SecureContextCache', () => {
  it('mints once per host, sharing one minting between concurrent calls', async () => {
    const m = counter();
    const cache = new SecureContextCache({ mint: m.mint });
    const [a, b] = await Promise.all([cache.get(host('a.test')), cache.get(host('a.test'))]);
    expect(a).toBe(b);
    expect(await cache.get(host('a.test'))).toBe(a);
    expect(m.minted).toEqual(['a.test']);
  });

  it('drops the least recently used host past its cap', async () => {
    const m = counter();
    const cache = new SecureContextCache({ mint: m.mint, maxEntries: 2 });
    await cache.get(host('a.test'));
    await cache.get(host('b.test'));
    await cache.get(host('a.test'));
    await cache.get(host('c.test'));
    expect(cache.size).toBe(2);
    await cache.get(host('a.test'));
    await cache.get(host('b.test'));
    expect(m.minted).toEqual(['a.test', 'b.test', 'c.test', 'b.test']);
  });

  it('does not cache a failed minting', async () => {
    let fail = true;
    const cache = new SecureContextCache({
      mint: () => (fail ? Promise.reject(new Error('no key')) : Promise.resolve({ context: createSecureContext({}), notAfter: new Date(Date.now() + 3600_000 * 24) })),
    });
    await expect(cache.get(host('a.test'))).rejects.toThrow('no key');
    fail = false;
    await expect(cache.get(host('a.test'))).resolves.toBeDefined();
  });

  it('mints again once the certificate is within the renewal margin of expiry', async () => {
    const m = counter(() => new Date(Date.now() + LEAF_RENEW_BEFORE_EXPIRY_MS - 1000));
    const cache = new SecureContextCache({ mint: m.mint });
    await cache.get(host('a.test'));
    await cache.get(host('a.test'));
    expect(m.minted).toEqual(['a.test', 'a.test']);
  });
});

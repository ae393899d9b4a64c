import { describe, expect, it } from 'vitest';
import { computeRequestKey, normaliseUrl, parseKeyId } from '../../src/protocol/request-key.ts';

describe('normaliseUrl', () => {
  it('lower-cases scheme and host, drops default ports and fragments, keeps query order', () => {
    expect(normaliseUrl('HTTPS://Registry.NPMJS.org:443/is-number?b=2&a=1#frag')).toBe('https://registry.npmjs.org/is-number?b=2&a=1');
    expect(normaliseUrl('http://example.com:80')).toBe('http://example.com/');
    expect(normaliseUrl('http://example.com:8080/x')).toBe('http://example.com:8080/x');
  });

  it('normalises percent-encoding: unreserved decoded, the rest upper-case hex', () => {
    expect(normaliseUrl('http://h/%7euser/a%2fb?q=%41%2c')).toBe('http://h/~user/a%2Fb?q=A%2C');
  });

  it('strips credentials from the URL', () => {
    expect(normaliseUrl('https://user:secret@h.example/p')).toBe('https://h.example/p');
  });

  it('drops credential and signature query parameters, keeping the rest in order', () => {
    expect(normaliseUrl('https://b.s3.amazonaws.com/o?versionId=2&X-Amz-Credential=AK&X-Amz-Signature=abc&x=1')).toBe('https://b.s3.amazonaws.com/o?versionId=2&x=1');
    expect(normaliseUrl('https://h/p?access_token=t&page=2')).toBe('https://h/p?page=2');
    expect(normaliseUrl('https://a.blob.core.windows.net/c/b?sv=2020&se=2030&sp=r&sig=zz')).toBe('https://a.blob.core.windows.net/c/b');
    expect(normaliseUrl('https://h/p?sv=1.2&se=x')).toBe('https://h/p?sv=1.2&se=x'); // not SAS without sig
    expect(normaliseUrl('https://h/p?token=x')).toBe('https://h/p');
  });

  it('rejects relative URLs and other schemes with a clear error', () => {
    expect(() => normaliseUrl('/relative')).toThrow(/Invalid URL/);
    expect(() => normaliseUrl('ftp://h/x')).toThrow(/Unsupported URL scheme/);
  });
});

describe('computeRequestKey', () => {
  it('keys on method, URL and accept, ignoring volatile headers', () => {
    const a = computeRequestKey({ method: 'get', url: 'http://h/x', headers: { accept: 'application/json', 'user-agent': 'npm/1', authorization: 'Bearer s' } });
    const b = computeRequestKey({ method: 'GET', url: 'http://H/x', headers: { accept: ' application/json ', 'user-agent': 'pip/2', cookie: 'c=1' } });
    expect(a.id).toBe(b.id);
    expect(a.id).not.toContain('Bearer');
    const c = computeRequestKey({ method: 'GET', url: 'http://h/x', headers: { accept: 'application/vnd.npm.install-v1+json' } });
    expect(c.id).not.toBe(a.id);
  });

  it('includes the body digest and round-trips through parseKeyId', () => {
    const k = computeRequestKey({ method: 'POST', url: 'http://h/api', headers: {}, bodyDigest: 'sha256:ab' });
    expect(parseKeyId(k.id)).toEqual({ url: 'http://h/api', method: 'POST', variant: { accept: '*/*' }, bodyDigest: 'sha256:ab' });
  });

  it('treats a missing Accept as */* (RFC 9110 §12.5.1)', () => {
    const none = computeRequestKey({ method: 'GET', url: 'http://h/x', headers: {} });
    const any = computeRequestKey({ method: 'GET', url: 'http://h/x', headers: { accept: '*/*' } });
    expect(none.id).toBe(any.id);
  });

  it('rejects an invalid method', () => {
    expect(() => computeRequestKey({ method: 'G E T', url: 'http://h/', headers: {} })).toThrow(/Invalid HTTP method/);
  });
});

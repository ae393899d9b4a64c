import type { BodyDigest, Expectation } from './types.ts';

/** Strength order for SRI: only the strongest kind present counts (W3C SRI §3.3.4 "getPrioritizedHashFunction"). */
const STRENGTH: Record<BodyDigest['algorithm'], number> = { sha1: 1, sha256: 2, sha512: 3 };
const HEX_LENGTH: Record<BodyDigest['algorithm'], number> = { sha1: 40, sha256: 64, sha512: 128 };

function fromBase64(text: string, algorithm: BodyDigest['algorithm']): BodyDigest | undefined {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  const hex = bytes.toString('hex');
  return hex.length === HEX_LENGTH[algorithm] ? { algorithm, hex } : undefined;
}

function fromHexOrBase64(text: string, algorithm: BodyDigest['algorithm']): BodyDigest | undefined {
  if (new RegExp(`^[0-9a-fA-F]{${HEX_LENGTH[algorithm]}}$`).test(text)) return { algorithm, hex: text.toLowerCase() };
  return fromBase64(text, algorithm);
}

function algorithmOf(name: string): BodyDigest['algorithm'] | undefined {
  const n = name.toLowerCase().replace('-', '');
  return n === 'sha1' || n === 'sha256' || n === 'sha512' ? n : undefined;
}

/**
 * Parses one digest as lockfiles write it: SRI (`sha512-<base64>`), `sha256:<hex>`, `sha256=<hex>`, or bare hex
 * (length tells sha1/sha256/sha512). Returns undefined for anything else (an unknown algorithm such as md5).
 */
export function parseDigest(text: string): BodyDigest | undefined {
  const t = text.trim();
  const m = /^(sha-?1|sha-?256|sha-?512)[-:=](.+)$/i.exec(t);
  if (m !== null) {
    const algorithm = algorithmOf(m[1]!);
    return algorithm === undefined ? undefined : fromHexOrBase64(m[2]!, algorithm);
  }
  for (const algorithm of ['sha256', 'sha512', 'sha1'] as const) {
    if (t.length === HEX_LENGTH[algorithm] && /^[0-9a-fA-F]+$/.test(t)) return { algorithm, hex: t.toLowerCase() };
  }
  return undefined;
}

/** Parses an SRI string (space-separated, options after `?` ignored); unknown algorithms are skipped. */
export function parseSri(text: string): BodyDigest[] {
  const out: BodyDigest[] = [];
  for (const token of text.trim().split(/\s+/)) {
    if (token === '') continue;
    const d = parseDigest(token.split('?')[0]!);
    if (d !== undefined) out.push(d);
  }
  // A copy of its length: an array pushed to keeps room for ~17 elements, which a lockfile entry held for the
  // whole seed (17 MB for 100,000 entries, issue #15).
  return out.slice();
}

/** The body digests that decide: every one of the strongest kind present (SRI: any of them may match). */
export function decidingDigests(expect: readonly Expectation[]): BodyDigest[] {
  const body = expect.filter((e): e is BodyDigest => e.algorithm !== 'go-h1');
  const best = Math.max(0, ...body.map((d) => STRENGTH[d.algorithm]));
  return body.filter((d) => STRENGTH[d.algorithm] === best);
}

/** How a digest is shown in messages: the form lockfiles of that kind use. */
export function showDigest(d: BodyDigest): string {
  return d.algorithm === 'sha512' ? `sha512-${Buffer.from(d.hex, 'hex').toString('base64')}` : `${d.algorithm}:${d.hex}`;
}

export function toSri(algorithm: 'sha256' | 'sha512', bytes: Uint8Array): string {
  return `${algorithm}-${Buffer.from(bytes).toString('base64')}`;
}

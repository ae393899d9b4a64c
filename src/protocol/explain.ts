import { parseKeyId } from './request-key.ts';
import type { RequestKey } from './request-key.ts';

export interface MissCandidate {
  readonly method: string;
  readonly url: string;
  readonly variant: Readonly<Record<string, string>>;
  /** The fields in which this recorded request differs from the missed one, nearest first. */
  readonly differs: readonly string[];
}

export interface MissExplanation {
  readonly method: string;
  readonly url: string;
  readonly candidates: readonly MissCandidate[];
  /** Human-readable text for the 5xx body and the log. */
  readonly text: string;
}

function stripQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function origin(url: string): string {
  const m = /^[a-z]+:\/\/[^/]+/.exec(url);
  return m === null ? url : m[0];
}

function distance(c: MissCandidate): number {
  if (c.differs.includes('url')) return 100;
  if (c.differs.includes('path')) return 50;
  if (c.differs.includes('query')) return 10;
  return c.differs.length;
}

/**
 * Explains a replay miss from the recorded keys nearest to it (design §5, style habit 6): which
 * recorded requests come closest and which field differs, plus what to do about it.
 */
export function explainMiss(key: RequestKey, nearbyKeys: readonly string[], netlockName: string): MissExplanation {
  const candidates: MissCandidate[] = [];
  for (const id of nearbyKeys) {
    const k = parseKeyId(id);
    const differs: string[] = [];
    if (origin(k.url) !== origin(key.url)) differs.push('url');
    else if (stripQuery(k.url) !== stripQuery(key.url)) differs.push('path');
    else if (k.url !== key.url) differs.push('query');
    if (k.method !== key.method) differs.push('method');
    for (const h of new Set([...Object.keys(key.variant), ...Object.keys(k.variant)])) {
      if ((k.variant[h] ?? '') !== (key.variant[h] ?? '')) differs.push(`header ${h}`);
    }
    if (k.bodyDigest !== (key.bodyDigest ?? '')) differs.push('request body');
    candidates.push({ method: k.method, url: k.url, variant: k.variant, differs });
  }
  const ranked = candidates
    .filter((c) => !c.differs.includes('url'))
    .sort((a, b) => distance(a) - distance(b))
    .slice(0, 5);
  const lines = [
    `fetch-oracle replay miss: ${key.method} ${key.url}`,
    ...Object.keys(key.variant).map((h) => `  ${h}: ${key.variant[h] === '' ? '(none)' : (key.variant[h] ?? '')}`),
    ...(key.bodyDigest === undefined ? [] : [`  body: ${key.bodyDigest}`]),
    '',
    `This request is not in netlock ${netlockName}. Replay is fail-closed: nothing was fetched from the network.`,
  ];
  if (ranked.length > 0) {
    lines.push('', 'Nearest recorded requests:');
    for (const c of ranked) {
      const variant = Object.keys(c.variant).map((h) => `${h}=${c.variant[h] === '' ? '(none)' : (c.variant[h] ?? '')}`).join(' ');
      lines.push(`  ${c.method} ${c.url} [${variant}] differs in: ${c.differs.join(', ') || 'nothing (duplicate?)'}`);
    }
  } else {
    lines.push('', 'No recorded request has the same origin.');
  }
  lines.push('', 'To include it, record the build again with `fetch-oracle record` (or seed the URL) and replay the new netlock.');
  return { method: key.method, url: key.url, candidates: ranked, text: `${lines.join('\n')}\n` };
}

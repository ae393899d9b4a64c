import { NetlockReader, WALK_ONCE } from '../netlock/dag.ts';
import { netlockRootOf } from '../netlock/file.ts';
import type { ReplayReport } from '../oracle/oracle.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { parseKeyId } from '../protocol/request-key.ts';

/** `scheme://host[:port]` of a normalised URL (the form keys and misses carry). */
export function originOf(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+/i.exec(url);
  return m === null ? url : m[0].toLowerCase();
}

/** Every origin a netlock has entries for (what a miss report compares a missed host against). */
export async function recordedOrigins(netlockPath: string, store: BlockSource): Promise<Set<string>> {
  const reader = new NetlockReader(await netlockRootOf(netlockPath), verifyingSource(store), WALK_ONCE);
  const origins = new Set<string>();
  for await (const e of reader.entries()) origins.add(originOf(parseKeyId(e.key).url));
  return origins;
}

export interface MissGroup {
  method: string;
  url: string;
  accept: string;
  /** How many times the command asked for it (clients retry). */
  count: number;
  nearest: ReplayReport['misses'][number]['nearest'];
}

/** The misses of a replay, one per distinct request, in the order first seen. */
export function groupMisses(misses: ReplayReport['misses']): MissGroup[] {
  const groups = new Map<string, MissGroup>();
  for (const m of misses) {
    const id = `${m.method} ${m.url} ${m.accept}`;
    const g = groups.get(id);
    if (g === undefined) groups.set(id, { method: m.method, url: m.url, accept: m.accept, count: 1, nearest: m.nearest });
    else g.count++;
  }
  return [...groups.values()];
}

/**
 * The miss report `run --replay` prints to stderr: every request the command made that the netlock does not
 * hold (method, URL, accept, how often), the nearest recorded request for each, and the origins the netlock
 * has nothing at all for. Empty string when there were no misses.
 */
export function formatMissReport(
  report: ReplayReport,
  recordedOrigins: ReadonlySet<string>,
  netlockPath: string,
  /** Who is speaking and how to record again (`fetch-oracle build` words it for builds). */
  words: { who: string; rerecord: string } = { who: 'fetch-oracle run', rerecord: '`fetch-oracle run` (without --replay)' },
): string {
  const groups = groupMisses(report.misses);
  if (groups.length === 0) return '';
  const lines = [
    `${words.who}: ${groups.length} request(s) the command made are not in netlock ${netlockPath} (${report.netlock});`,
    'each was answered 504 and nothing was fetched from the network:',
  ];
  for (const g of groups) {
    lines.push(`  MISS ${g.method} ${g.url}${g.accept === '' ? '' : `  [accept: ${g.accept}]`}${g.count > 1 ? `  (${g.count} times)` : ''}`);
    const near = g.nearest[0];
    if (near !== undefined) lines.push(`       nearest recorded: ${near.method} ${near.url} (differs in: ${near.differs.join(', ') || 'nothing'})`);
    else lines.push(`       nearest recorded: none (the netlock has no request to ${originOf(g.url)})`);
  }
  const unknown = [...new Set(groups.map((g) => originOf(g.url)))].filter((o) => !recordedOrigins.has(o));
  if (unknown.length > 0) lines.push(`  hosts not in the netlock at all: ${unknown.map((o) => o.replace(/^[a-z0-9+.-]+:\/\//, '')).join(', ')}`);
  lines.push(`To include them, record the build again with ${words.rerecord} and replay the new netlock.`);
  return `${lines.join('\n')}\n`;
}

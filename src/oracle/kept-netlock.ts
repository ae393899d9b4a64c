import { stat } from 'node:fs/promises';
import { InvalidNetlockError } from '../errors.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { openEntryRecords } from '../netlock/entry-records.ts';
import { netlockRootOf } from '../netlock/file.ts';
import type { VerifiedNetlocks } from '../records/verified-netlocks.ts';
import type { RunSet } from './run-set.ts';

/** What a netlock file already at the path of a new record run held. */
export interface KeptNetlock {
  /** Its root CID. */
  root: string;
  /** How many entries it holds (kept in the run, under those the run already has). */
  count: number;
  /** The variant rules it was recorded with. */
  variantRules: VariantRules | undefined;
  /** Whether its signatures were checked by an earlier run (`verified`), so only its blocks were read now. */
  checkedBefore: boolean;
}

/**
 * Keeps in `into` (under the keys it already holds) the entries of the netlock already at `path`, which a
 * record run (or `recover`) writing to that path keeps: a netlock never shrinks behind its user's back
 * (issue 13, defect 1). They go straight into the run, which holds them out of the heap. Every index page and record
 * is read through `source` and verified (block hashes, signature by the key the record names, the record
 * answers its key; the signatures and keys not again for a root `verified` holds, which it then does);
 * bodies are `verify`'s business. Undefined when there is no file at `path`.
 *
 * A file that is there but cannot be read or verified (not a netlock, blocks not in this data directory,
 * a bad signature, other variant rules than `expectRules`) throws InvalidNetlockError naming it and what to do: the run would
 * otherwise replace it with a netlock that lacks its entries (the caller drops `into`).
 */
export async function readKeptNetlock(path: string, source: BlockSource, into: RunSet, options: { expectRules?: { variantRules: VariantRules | undefined }; verified?: VerifiedNetlocks } = {}): Promise<KeptNetlock | undefined> {
  try {
    await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw refuse(path, (err as Error).message, err);
  }
  try {
    const root = await netlockRootOf(path);
    // A root checked whole before (or written by a run of this data directory) names the same records: its
    // blocks are still checked against their CIDs as they are read, its signatures not again.
    const checkedBefore = options.verified?.has(root) === true;
    const netlock = await openEntryRecords(root, source, checkedBefore ? {} : { signedBy: 'root' });
    const { rootValue } = netlock;
    const expected = options.expectRules?.variantRules;
    if (options.expectRules !== undefined && rulesText(rootValue.variantRules) !== rulesText(expected)) {
      throw new InvalidNetlockError(`it was recorded with variant rules ${rulesText(rootValue.variantRules)}, this run has ${rulesText(expected)} (--variant-header): their request keys would not agree`);
    }
    let count = 0;
    for await (const e of netlock.entries()) {
      into.keep([e]);
      count++;
    }
    if (!checkedBefore) await options.verified?.add(root);
    return { root: root.toString(), count, variantRules: rootValue.variantRules, checkedBefore };
  } catch (err) {
    throw refuse(path, (err as Error).message, err);
  }
}

/** The start-up line of a run that keeps `kept` (from the netlock file at `path`). */
export function keptNetlockLine(kept: KeptNetlock, path: string): string {
  const checked = kept.checkedBefore ? ' (its signatures checked by an earlier run of this data directory)' : '';
  return `keeping the ${kept.count} verified entries of the netlock ${kept.root} already at ${path}${checked}; this run adds to them`;
}

function refuse(path: string, why: string, cause: unknown): InvalidNetlockError {
  return new InvalidNetlockError(
    `The netlock ${path} exists but cannot be kept: ${why}. A record run adds to the netlock at its path and never drops what it holds; move the file away (or pass another --netlock) to start a new one`,
    { cause },
  );
}

/** Variant rules as one comparable text (hosts and header names lower-cased and sorted), `none` when empty. */
function rulesText(rules: VariantRules | undefined): string {
  const out = new Map<string, Set<string>>();
  for (const [host, headers] of Object.entries(rules ?? {})) {
    const set = out.get(host.toLowerCase()) ?? new Set<string>();
    for (const h of headers) set.add(h.toLowerCase());
    if (set.size > 0) out.set(host.toLowerCase(), set);
  }
  if (out.size === 0) return 'none';
  return JSON.stringify(Object.fromEntries([...out].sort(([a], [b]) => (a < b ? -1 : 1)).map(([h, set]) => [h, [...set].sort()])));
}

import type { CID } from 'multiformats/cid';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { NetlockReader } from '../netlock/dag.ts';
import type { NetlockRoot } from '../netlock/dag.ts';
import { isBlockReader } from '../proxy/leaf-buffers.ts';
import { ReplayHandler } from '../proxy/replay-handler.ts';
import { Replayer } from './replayer.ts';
import type { ReplayMiss } from './replayer.ts';
import { createStats } from './stats.ts';
import type { OracleStats } from './stats.ts';

export interface ReplayReport {
  netlock: string;
  entries: number;
  used: number;
  misses: readonly ReplayMiss[];
  unused: Array<{ method: string; url: string; accept: string }>;
  stats: OracleStats;
}

export interface OpenReplayInit {
  /** The netlock's root CID. */
  root: CID;
  /** Where blocks come from (the host's store, the guest's device); every block is verified. */
  source: BlockSource;
  /** Oracle keys whose records are accepted; records by any other key are refused. */
  trusted: readonly Uint8Array[];
  logger: Logger;
  /** @default fresh replay counters */
  stats?: OracleStats;
  /** Distinct trusted keys (the record's oracle and witnesses that countersigned it) each record needs. @default 1 */
  quorum?: number;
  /** Told of each miss before its 504 is answered (the guest reports misses to the host). */
  onMiss?: (miss: ReplayMiss) => void | Promise<void>;
  /**
   * Every record signature under `root` was checked before by the key its record names (the host's data
   * directory lists the root in `verified-netlocks`): records are read and hashed, their keys' trust and
   * what they answer checked, their signatures not again. Never for the guest, which trusts no such list.
   */
  signaturesChecked?: boolean;
  /** `ReplayerInit.keepFromSecondAnswer` (the host's replay). */
  keepFromSecondAnswer?: boolean;
}

export interface OpenedReplay {
  /** What the proxy front serves. */
  readonly handler: ReplayHandler;
  readonly netlock: NetlockReader;
  readonly rootValue: NetlockRoot;
  readonly stats: OracleStats;
  /** Netlock keys that answered a request so far. */
  readonly used: ReadonlySet<string>;
  /** Every miss so far. */
  readonly misses: readonly ReplayMiss[];
  /** Misses, and every netlock entry no request used (`replay --report`). */
  report(): Promise<ReplayReport>;
}

/**
 * Opens a netlock for replay over a block source: host replay (`replay`, `run --replay`, `build --replay`)
 * and the guest shim alike. Reads the root (failing early on a bad one) and warns once about oracle keys
 * that sign records of this netlock but are not trusted.
 */
export async function openReplay(init: OpenReplayInit): Promise<OpenedReplay> {
  const { logger } = init;
  const source = verifyingSource(init.source);
  const netlock = new NetlockReader(init.root, source);
  const rootValue = await netlock.rootValue();
  const quorum = init.quorum ?? 1;
  const untrusted = rootValue.oracles.filter((k) => !init.trusted.some((t) => toHex(t) === toHex(k)));
  if (quorum > 1) {
    const named = [...rootValue.oracles, ...(rootValue.witnesses ?? [])].filter((k) => init.trusted.some((t) => toHex(t) === toHex(k)));
    logger.info('replay quorum %d: a record is served only when %d distinct trusted keys signed it (%d trusted key(s) sign this netlock)', quorum, quorum, named.length);
  } else if (untrusted.length > 0) {
    logger.warn('netlock %s has records signed by untrusted key(s) %s; they will be refused (use --trust)', init.root.toString(), untrusted.map(toHex).join(', '));
  }
  const stats = init.stats ?? createStats('replay');
  const signaturesChecked = init.signaturesChecked === true;
  const replayer = new Replayer({ netlock, source, trusted: init.trusted, quorum, signaturesChecked, keepFromSecondAnswer: init.keepFromSecondAnswer === true, stats, logger: logger.child('replay'), ...(init.onMiss === undefined ? {} : { onMiss: init.onMiss }) });
  const reader = isBlockReader(init.source) ? init.source : undefined;
  const handler = new ReplayHandler({ replayer, source, stats, logger: logger.child('replay'), ...(reader === undefined ? {} : { reader }) });
  logger.info('replaying netlock %s (%d entries)%s', init.root.toString(), rootValue.count, signaturesChecked ? '; its signatures checked by an earlier run of this data directory' : '');
  return {
    handler,
    netlock,
    rootValue,
    stats,
    used: replayer.used,
    misses: replayer.misses,
    async report() {
      const unused: ReplayReport['unused'] = [];
      let entries = 0;
      for await (const e of netlock.entries()) {
        entries++;
        if (replayer.used.has(e.key)) continue;
        const k = parseKeyId(e.key);
        unused.push({ method: k.method, url: k.url, accept: k.variant['accept'] ?? '' });
      }
      return { netlock: netlock.root.toString(), entries, used: replayer.used.size, misses: replayer.misses, unused, stats: { ...stats } };
    },
  };
}

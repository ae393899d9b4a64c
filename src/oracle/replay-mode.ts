import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { CID } from 'multiformats/cid';
import type { Logger } from '../log.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { decodeRecord } from '../protocol/record.ts';
import { normaliseUrl, parseKeyId } from '../protocol/request-key.ts';
import { headRootOf, netlockRootOf } from '../netlock/file.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { VerifiedNetlocks } from '../records/verified-netlocks.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import type { ReplayInit } from './config.ts';
import type { OracleMode } from './mode.ts';
import { describeRecord } from './mode.ts';
import { openReplay } from './open-replay.ts';
import type { OpenedReplay, ReplayReport } from './open-replay.ts';
import type { UpstreamMutation } from './recorder.ts';
import type { OracleStats } from './stats.ts';
import { entryRows } from '../report/file-report.ts';
import { pagesOf } from '../report/live.ts';
import type { LiveView } from '../report/live.ts';
import type { EntryRow } from '../report/model.ts';

/** The Oracle in replay mode: `openReplay` over the host's store. */
export class ReplayMode implements OracleMode {
  readonly mutations: readonly UpstreamMutation[] = [];
  readonly #init: ReplayInit;
  readonly #replay: OpenedReplay;
  readonly #store: BlockStore;
  /** The netlock's rows, read once (a replayed netlock never changes). */
  #rows: Promise<{ netlock: LiveView['netlock']; rows: EntryRow[] }> | undefined;

  private constructor(init: ReplayInit, replay: OpenedReplay, store: BlockStore) {
    this.#init = init;
    this.#replay = replay;
    this.#store = store;
  }

  static async open(init: ReplayInit, store: BlockStore, stats: OracleStats, logger: Logger): Promise<ReplayMode> {
    const root = await netlockRootOf(init.netlockPath);
    const own = await LocalSigner.publicKeyIn(init.dataDir);
    const trusted = init.trust ?? (own === undefined ? [] : [own]);
    // A root this data directory wrote, imported or kept after a whole check names records whose signatures
    // were checked then: a first hit need not check its record's again (~25% of its CPU, issue #15).
    const signaturesChecked = (await VerifiedNetlocks.open(init.dataDir)).has(root);
    // Every block is verified as it is read (measured: hashing leaves on a worker made replay slower).
    return new ReplayMode(init, await openReplay({ root, source: store, trusted, logger, stats, signaturesChecked, keepFromSecondAnswer: true, ...(init.quorum === undefined ? {} : { quorum: init.quorum }) }), store);
  }

  get handler(): OpenedReplay['handler'] {
    return this.#replay.handler;
  }

  async recordsForUrl(url: string): Promise<object[]> {
    const norm = normaliseUrl(url);
    const source = verifyingSource(this.#store);
    const out: object[] = [];
    for await (const e of this.#replay.netlock.entries()) {
      if (parseKeyId(e.key).url === norm) out.push(describeRecord(e.key, e.signed.record.toString(), decodeRecord(await source.get(e.signed.record))));
    }
    return out;
  }

  /**
   * The netlock file served, streamed from disk (never parsed whole: 100,000 entries are ~130 MB of objects);
   * its root alone when the netlock was given as a root, or the file at its path is no longer the one served.
   */
  async netlockSoFar(): Promise<Readable | object> {
    const root = this.#replay.netlock.root.toString();
    // The root is read from the very file streamed, whatever has been renamed over its path since.
    const file = await open(this.#init.netlockPath, 'r').catch(() => undefined);
    if (file === undefined) return { netlock: root };
    if ((await headRootOf(file).catch(() => undefined)) === root) return file.createReadStream({ start: 0 });
    await file.close();
    return { netlock: root };
  }

  netlockRoot(): Promise<CID> {
    return Promise.resolve(this.#replay.netlock.root);
  }

  async reportView(): Promise<LiveView> {
    this.#rows ??= entryRows(this.#replay.netlock.root, this.#store).then(({ rows, keys, count, variantRules }) => ({
      netlock: { root: this.#replay.netlock.root.toString(), count, keys, ...(variantRules === undefined ? {} : { variantRules }) },
      rows,
    }));
    this.#rows.catch(() => (this.#rows = undefined));
    const { netlock, rows } = await this.#rows;
    return { netlock, version: `replay:${this.#replay.netlock.root.toString()}`, rows: () => pagesOf(rows), misses: this.#replay.misses };
  }

  async replayReport(): Promise<ReplayReport | undefined> {
    return this.#replay.report();
  }

  close(): Promise<WrittenNetlock | undefined> {
    return Promise.resolve(undefined);
  }
}

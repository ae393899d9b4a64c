import type { WrittenNetlock } from '../netlock/file.ts';
import type { LiveView } from '../report/live.ts';

/** The netlock as the live page shows it. */
export type LiveHead = NonNullable<LiveView['netlock']>;

/** Least time between two builds of the live page's netlock head. */
export const LIVE_HEAD_MIN_INTERVAL_MS = 2000;
/** A build may take at most this share of the time between builds (a 1 s build: one every 10 s). */
const LIVE_HEAD_MAX_SHARE = 0.1;

/**
 * The netlock head a running record's live page shows (root, count, signer keys). Its root depends on every
 * entry, so it costs a build of the whole DAG (paged, blocks discarded: ~10 us an entry); the page polls
 * every second. It is rebuilt when the run changed, but no sooner than `LIVE_HEAD_MIN_INTERVAL_MS` after the
 * last build and never for more than a tenth of the time: between builds a poll gets the last head, whose
 * `count` says which entries it covers. A rebuild runs while polls get the last head; only the first build is
 * waited for. Concurrent polls share one build.
 */
export class LiveNetlockHead {
  readonly #build: () => Promise<WrittenNetlock>;
  readonly #version: () => string;
  readonly #now: () => number;
  #last: { at: string; value: LiveHead; builtAt: number; tookMs: number } | undefined;
  #building: Promise<LiveHead> | undefined;

  constructor(build: () => Promise<WrittenNetlock>, version: () => string, now: () => number = () => performance.now()) {
    this.#build = build;
    this.#version = version;
    this.#now = now;
  }

  current(): Promise<LiveHead> {
    const last = this.#last;
    if (last === undefined) return (this.#building ??= this.#startBuild());
    const due = Math.max(LIVE_HEAD_MIN_INTERVAL_MS, last.tookMs / LIVE_HEAD_MAX_SHARE);
    if (last.at !== this.#version() && this.#now() - last.builtAt >= due) this.#building ??= this.#startBuild();
    // A poll never waits for a rebuild once there is a head: it gets the last one meanwhile.
    return Promise.resolve(last.value);
  }

  #startBuild(): Promise<LiveHead> {
    const building = this.#rebuild().finally(() => (this.#building = undefined));
    // A failed rebuild keeps the last head (a poll during shutdown, the run's scratch file closed); only a
    // first build's failure reaches the poll that waits for it.
    if (this.#last !== undefined) building.catch(() => {});
    return building;
  }

  async #rebuild(): Promise<LiveHead> {
    const at = this.#version();
    const started = this.#now();
    const file = await this.#build();
    const value: LiveHead = { root: file.netlock, count: file.count, keys: file.oracles, ...(file.variantRules === undefined ? {} : { variantRules: file.variantRules }) };
    const builtAt = this.#now();
    this.#last = { at, value, builtAt, tookMs: builtAt - started };
    return value;
  }
}

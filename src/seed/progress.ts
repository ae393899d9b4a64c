import type { SeedProgress } from './seeder.ts';

/** How often a terminal progress bar is redrawn, and how often plain progress lines are written. */
export const TTY_REDRAW_MS = 100;
export const PLAIN_LINE_MS = 5_000;
const BAR_WIDTH = 24;

export interface ProgressInit {
  /** Write to the terminal (stderr). */
  write: (text: string) => void;
  /** A terminal redraws one line in place; otherwise a plain line every PLAIN_LINE_MS. */
  tty: boolean;
  /** Clock in ms (tests pass their own). @default performance.now */
  now?: () => number;
}

export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const t = Math.round(s);
  return t >= 3600 ? `${Math.floor(t / 3600)}:${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}` : `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
}

/** One progress line: counts, bytes, rate of bytes fetched, ETA from the entry rate. */
export function progressLine(p: SeedProgress, elapsedMs: number, bar: boolean): string {
  const finished = p.done + p.failed;
  const seconds = Math.max(elapsedMs / 1000, 0.001);
  const rate = p.fetchedBytes / seconds;
  const perSecond = finished / seconds;
  const eta = p.resolving > 0 || perSecond === 0 ? Number.NaN : (p.total - finished) / perSecond;
  const ratio = p.total === 0 ? 0 : finished / p.total;
  const filled = Math.round(ratio * BAR_WIDTH);
  const head = bar ? `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ` : '';
  const extra = [p.failed > 0 ? `${p.failed} failed` : '', p.resolving > 0 ? `resolving ${p.resolving}` : ''].filter((s) => s !== '').join(', ');
  return `${head}${finished}/${p.total} entries (${p.fetched} fetched, ${p.reused} reused${extra === '' ? '' : `, ${extra}`})  ${formatBytes(p.bytes)}  ${formatBytes(rate)}/s  ETA ${formatSeconds(eta)}`;
}

/** Renders seed progress: a bar redrawn in place on a terminal, plain lines otherwise. */
export class ProgressReporter {
  readonly #init: ProgressInit;
  readonly #now: () => number;
  readonly #start: number;
  #last = Number.NEGATIVE_INFINITY;
  #latest: SeedProgress | undefined;

  constructor(init: ProgressInit) {
    this.#init = init;
    this.#now = init.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  update(p: SeedProgress): void {
    this.#latest = p;
    const now = this.#now();
    if (now - this.#last < (this.#init.tty ? TTY_REDRAW_MS : PLAIN_LINE_MS)) return;
    this.#last = now;
    this.#draw(p, now);
  }

  #draw(p: SeedProgress, now: number): void {
    const line = progressLine(p, now - this.#start, this.#init.tty);
    this.#init.write(this.#init.tty ? `\r${line}\x1b[K` : `seed: ${line}\n`);
  }

  /** Draws the final state (and ends the terminal line). */
  finish(): void {
    if (this.#latest === undefined) return;
    this.#draw(this.#latest, this.#now());
    if (this.#init.tty) this.#init.write('\n');
  }
}

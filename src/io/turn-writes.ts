/**
 * Answers written together at the end of a turn of the event loop (issue #15).
 *
 * A write that makes a sleeping client's socket readable wakes the client's thread. When that thread sleeps on
 * another CPU, the wake-up (an inter-processor interrupt, dear in a VM) costs the writing process more than the
 * rest of the write: `perf` put 16% of the CPU of a replay's first hits in `sock_def_readable`. A client with
 * many connections is woken once for answers written close together, and once each for answers spread over the
 * turn (it takes one and sleeps again before the next comes).
 *
 * So the first answer of a turn is written at once (a lone connection never waits), and later ones in the same
 * turn wait for its end (`turn-end.ts`), where they go out one after another. The wait is bounded by
 * the work of that one turn. Only answers that took long to make are worth holding (`hit-front.ts` says which):
 * holding every 4 KiB replay hit cost 2–5% of them, made a few µs apart for a client that is awake anyway.
 */

import { untilTurnEnd } from './turn-end.ts';

let wroteThisTurn = false;
let atTurnEnd: Array<() => void> = [];

function endTurn(): void {
  wroteThisTurn = false;
  const flushes = atTurnEnd;
  atTurnEnd = [];
  for (const flush of flushes) flush();
}

/**
 * Whether an answer may be written now: true for the first of this turn (which marks the turn as written in),
 * false when the caller is to hold it and write it from `flush`, called once at the end of the turn.
 */
export function writeNowOrAtTurnEnd(flush: () => void): boolean {
  if (!wroteThisTurn) {
    wroteThisTurn = true;
    void untilTurnEnd().then(endTurn);
    return true;
  }
  atTurnEnd.push(flush);
  return false;
}

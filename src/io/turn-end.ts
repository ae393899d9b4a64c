/**
 * The end of this turn of the event loop, shared by everything that waits for it (issue #15): the record path's
 * commits (`Recorder`) and the replay front's held answers (`turn-writes.ts`).
 *
 * `untilTurnEnd()` resolves in the turn's check phase (`setImmediate`) with one promise for every caller of the
 * turn, so the work awaiting it resumes in one microtask checkpoint: each piece runs to its next wait, then the
 * next piece does, stage by stage. Node's `timers/promises` `setImmediate` gives each caller an immediate of
 * its own; those run one after another, each piece to its end before the next starts, and gained less than
 * half as much where the record path uses this (`Recorder`'s commit says what was measured).
 */

let turnEnd: Promise<void> | undefined;

/** A promise that resolves at the end of this turn of the event loop: the same one for every caller in the turn. */
export function untilTurnEnd(): Promise<void> {
  turnEnd ??= new Promise<void>((resolve) => {
    setImmediate(() => {
      turnEnd = undefined;
      resolve();
    });
  });
  return turnEnd;
}

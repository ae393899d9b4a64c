import { setImmediate as immediate } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { untilTurnEnd } from '../../src/io/turn-end.ts';

/** Two stages with a wait between them, logged as `${name}${stage}`. */
async function twoStages(name: string, log: string[]): Promise<void> {
  await untilTurnEnd();
  log.push(`${name}1`);
  await Promise.resolve(); // a wait that ends within the microtask checkpoint, as a commit's do
  log.push(`${name}2`);
}

describe('untilTurnEnd', () => {
  it('gives every caller of a turn the same promise, and the next turn a new one', async () => {
    const first = untilTurnEnd();
    expect(untilTurnEnd()).toBe(first);
    await first;
    const next = untilTurnEnd();
    expect(next).not.toBe(first);
    await next;
  });

  it('resolves in the check phase, in order with the immediates around it', async () => {
    const log: string[] = [];
    setImmediate(() => log.push('immediate before'));
    const ended = untilTurnEnd().then(() => log.push('turn end'));
    setImmediate(() => log.push('immediate after'));
    queueMicrotask(() => log.push('microtask'));
    await ended;
    await immediate();
    expect(log).toEqual(['microtask', 'immediate before', 'turn end', 'immediate after']);
  });

  it('resumes the work of one turn stage by stage, not one piece to its end after another', async () => {
    const log: string[] = [];
    await Promise.all([twoStages('a', log), twoStages('b', log), twoStages('c', log)]);
    expect(log).toEqual(['a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
    // What an immediate per caller gives instead (why the promise is shared):
    const apart: string[] = [];
    const stages = async (name: string): Promise<void> => {
      await immediate();
      apart.push(`${name}1`);
      await Promise.resolve();
      apart.push(`${name}2`);
    };
    await Promise.all([stages('a'), stages('b')]);
    expect(apart).toEqual(['a1', 'a2', 'b1', 'b2']);
  });

  it('makes work that waits from the end of one turn wait for the end of the next', async () => {
    await untilTurnEnd(); // resumed in a turn's check phase
    const log: string[] = [];
    setImmediate(() => log.push('next turn immediate'));
    await untilTurnEnd();
    log.push('next turn end');
    expect(log).toEqual(['next turn immediate', 'next turn end']);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/common.ts';
import { parseDurationFlag, parseTimeFlag } from '../../src/cli/time-flags.ts';

const savedTz = process.env['TZ'];
afterEach(() => {
  if (savedTz === undefined) delete process.env['TZ'];
  else process.env['TZ'] = savedTz;
});

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('parseTimeFlag', () => {
  it('reads RFC 3339 times with Z or an offset to the same instant in every TZ', () => {
    const cases: [string, string][] = [
      ['2024-09-07T14:40:00Z', '2024-09-07T14:40:00.000Z'],
      ['2024-09-07t14:40:00z', '2024-09-07T14:40:00.000Z'],
      ['2024-09-07T16:40:00+02:00', '2024-09-07T14:40:00.000Z'],
      ['2024-09-07T09:10:00-05:30', '2024-09-07T14:40:00.000Z'],
      ['2024-09-07T14:40:00-00:00', '2024-09-07T14:40:00.000Z'],
      ['2024-09-07T14:40:00.5Z', '2024-09-07T14:40:00.500Z'],
      ['2024-09-07T14:40:00.123456789Z', '2024-09-07T14:40:00.123Z'],
      ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
      ['2000-01-01T00:30:00+01:00', '1999-12-31T23:30:00.000Z'],
    ];
    for (const tz of ['UTC', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham']) {
      process.env['TZ'] = tz;
      for (const [text, iso] of cases) expect(parseTimeFlag(text, '--at').toISOString(), `${text} in ${tz}`).toBe(iso);
    }
    // The defect this replaces: Date.parse reads an offset-less time as local time.
    process.env['TZ'] = 'America/New_York';
    const newYork = Date.parse('2024-09-07T14:40:00');
    process.env['TZ'] = 'Asia/Kolkata';
    expect(Date.parse('2024-09-07T14:40:00')).not.toBe(newYork);
  });

  it('accepts now', () => {
    const fixed = new Date('2026-01-02T03:04:05Z');
    expect(parseTimeFlag('now', '--at', () => fixed)).toBe(fixed);
    expect(Math.abs(parseTimeFlag('now', '--at').getTime() - Date.now())).toBeLessThan(5000);
  });

  it('refuses times without an offset, other formats and impossible dates, naming the flag', () => {
    expect(usageMessage(() => parseTimeFlag('2024-09-07T14:40:00', '--at'))).toMatch(/^--at expects an RFC 3339 time with Z or an offset .* got "2024-09-07T14:40:00": no offset \(add Z for UTC\)$/);
    expect(usageMessage(() => parseTimeFlag('2024-09-07 14:40', '--at'))).toMatch(/no offset/);
    for (const text of ['2024-09-07', '2024-09-07T14:40Z', 'Sat, 07 Sep 2024 14:40:00 GMT', '1725720000000', '2024-09-07T14:40:00+0200', '2024-09-07 14:40:00Z', '+002024-09-07T14:40:00Z', ' 2024-09-07T14:40:00Z', 'yesterday', '']) {
      expect(usageMessage(() => parseTimeFlag(text, '--at')), text).toMatch(/^--at expects an RFC 3339 time/);
    }
    expect(usageMessage(() => parseTimeFlag('2023-02-29T00:00:00Z', '--at'))).toMatch(/day 29 is not 1\.\.28/);
    expect(usageMessage(() => parseTimeFlag('2024-13-01T00:00:00Z', '--at'))).toMatch(/month 13/);
    expect(usageMessage(() => parseTimeFlag('2024-04-31T00:00:00Z', '--at'))).toMatch(/day 31 is not 1\.\.30/);
    expect(usageMessage(() => parseTimeFlag('2024-09-07T24:00:00Z', '--at'))).toMatch(/hour or minute/);
    expect(usageMessage(() => parseTimeFlag('2016-12-31T23:59:60Z', '--at'))).toMatch(/leap seconds/);
    expect(usageMessage(() => parseTimeFlag('2024-09-07T14:40:00+24:00', '--at'))).toMatch(/offset out of range/);
  });
});

describe('parseDurationFlag', () => {
  it('reads an integer and one unit into milliseconds', () => {
    expect(parseDurationFlag('250ms', '--max-age')).toBe(250);
    expect(parseDurationFlag('30s', '--max-age')).toBe(30_000);
    expect(parseDurationFlag('15m', '--max-age')).toBe(900_000);
    expect(parseDurationFlag('12h', '--max-age')).toBe(43_200_000);
    expect(parseDurationFlag('7d', '--max-age')).toBe(604_800_000);
  });

  it('refuses anything else, naming the flag and the accepted form', () => {
    for (const text of ['0s', '15', 'm', '1.5h', '-5m', '15 m', '15M', '1h30m', 'PT15M', '99999999999999999d', '']) {
      expect(usageMessage(() => parseDurationFlag(text, '--max-age')), text).toMatch(/^--max-age expects a positive duration: an integer and one of ms, s, m, h, d \(e\.g\. 30s, 15m, 12h, 7d\), got /);
    }
  });
});

/** Flags that name a time or a duration, parsed strictly so the answer never depends on the host's TZ. */
import { UsageError } from './common.ts';

// RFC 3339 §5.6 date-time: the offset is required ("Z" or ±hh:mm); "T" and "Z" may be lower case (ABNF).
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * `now`, or an RFC 3339 time with Z or an offset (`2024-09-07T14:40:00Z`, `2024-09-07T16:40:00.5+02:00`).
 * A time without an offset is refused: Date.parse would read it as local time. Fractions beyond
 * milliseconds are truncated; a leap second (:60) cannot be represented and is refused.
 */
export function parseTimeFlag(text: string, flag: string, now: () => Date = () => new Date()): Date {
  if (text === 'now') return now();
  const m = RFC3339.exec(text);
  const bad = (why: string): UsageError =>
    new UsageError(`${flag} expects an RFC 3339 time with Z or an offset (e.g. 2024-09-07T14:40:00Z) or now, got ${JSON.stringify(text)}${why === '' ? '' : `: ${why}`}`);
  if (m === null) throw bad(/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text) ? 'no offset (add Z for UTC)' : '');
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeapYear(year) ? 1 : 0);
  if (month < 1 || month > 12) throw bad(`month ${month} is not 1..12`);
  if (day < 1 || day > daysInMonth) throw bad(`day ${day} is not 1..${daysInMonth}`);
  if (hour > 23 || minute > 59) throw bad('hour or minute out of range');
  if (second > 59) throw bad(second === 60 ? 'leap seconds are not supported' : `second ${second} is not 0..59`);
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const [sign, offsetHour, offsetMinute] = [m[9], Number(m[10]), Number(m[11])];
    if (offsetHour > 23 || offsetMinute > 59) throw bad('offset out of range');
    offsetMinutes = (sign === '-' ? -1 : 1) * (offsetHour * 60 + offsetMinute);
  }
  const millisecond = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const time = new Date(0);
  time.setUTCFullYear(year, month - 1, day); // not Date.UTC: it maps years 0..99 to 1900..1999
  time.setUTCHours(hour, minute, second, millisecond);
  return new Date(time.getTime() - offsetMinutes * 60_000);
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** A positive duration: an integer and one unit, `ms`, `s`, `m`, `h` or `d` (`30s`, `15m`, `12h`, `7d`); in ms. */
export function parseDurationFlag(text: string, flag: string): number {
  const m = DURATION.exec(text);
  const ms = m === null ? NaN : Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new UsageError(`${flag} expects a positive duration: an integer and one of ms, s, m, h, d (e.g. 30s, 15m, 12h, 7d), got ${JSON.stringify(text)}`);
  }
  return ms;
}

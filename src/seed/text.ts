import { InvalidLockfileError } from '../errors.ts';

/** 1-based line of a character offset. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** 1-based line of the first occurrence of `needle` (0 when absent): for entries of parsed JSON/TOML documents. */
export function lineOf(text: string, needle: string, from = 0): number {
  const i = text.indexOf(needle, from);
  return i < 0 ? 0 : lineAt(text, i);
}

/** Finds needles in file order, counting lines incrementally (linear over the whole file). */
export class LineCursor {
  readonly #text: string;
  #offset = 0;
  #line = 1;

  constructor(text: string) {
    this.#text = text;
  }

  /** 1-based line of the next occurrence of `needle` at or after the previous find (0 when absent). */
  find(needle: string): number {
    const i = this.#text.indexOf(needle, this.#offset);
    if (i < 0) return 0;
    for (let j = this.#offset; j < i; j++) if (this.#text.charCodeAt(j) === 10) this.#line++;
    this.#offset = i;
    return this.#line;
  }
}

/** JSON.parse with the error turned into file:line (V8 reports "at position N" or "line L column C"). */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const pos = /position (\d+)/.exec(message);
    const lc = /line (\d+) column/.exec(message);
    const line = lc !== null ? Number(lc[1]) : pos !== null ? lineAt(text, Number(pos[1])) : 1;
    throw new InvalidLockfileError(file, line, `not valid JSON: ${message}`, { cause: err });
  }
}

/** Whether `text` is an absolute http(s) URL. */
export function isHttpUrl(text: string): boolean {
  return /^https?:\/\/[^\s/]+/i.test(text);
}

/** Joins physical lines ending in a backslash (requirements.txt, Dockerfile); keeps the first line's number. */
export function logicalLines(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let t = lines[i]!;
    while (/\\\s*$/.test(t) && i + 1 < lines.length) t = t.replace(/\\\s*$/, ' ') + lines[++i]!;
    out.push({ line: start, text: t });
  }
  return out;
}

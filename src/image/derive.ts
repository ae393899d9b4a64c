/**
 * The derived Dockerfile `build` hands to buildah: the user's file, byte for byte, with `ARG NAME=VALUE` lines
 * inserted after every FROM instruction. buildah (1.28 and later, like BuildKit) gives a RUN step only the
 * variables of the image's ENV, its own proxy variables and the ARGs declared in the stage, so a declaration
 * is the one way to give every RUN step SOURCE_DATE_EPOCH without editing the user's file. What it changes in
 * the image is what the user's own `ARG SOURCE_DATE_EPOCH` would: a `#(nop) ARG NAME` history entry per stage
 * and the `|N NAME=VALUE` prefix buildah writes before each RUN's command in the history.
 */

/** A variable every RUN step should see. */
export interface StageVariable {
  name: string;
  value: string;
}

/** Where the Dockerfile sets a variable itself: its value wins from there on. */
export interface KeptVariable {
  name: string;
  /** 1-based stage number (0: the global scope before the first FROM). */
  stage: number;
  /** The instruction that sets it, as written (continuations joined). */
  instruction: string;
}

export interface DerivedDockerfile {
  text: string;
  /** Number of FROM instructions (stages). */
  stages: number;
  /** Lines inserted, as `stage N: ARG …`. */
  inserted: string[];
  kept: KeptVariable[];
}

interface Instruction {
  keyword: string;
  /** Arguments after the keyword, continuations joined with a space. */
  args: string;
  /** Index of the instruction's last physical line. */
  lastLine: number;
}

/** The escape character from a leading `# escape=` parser directive (default backslash). */
function escapeCharacter(lines: readonly string[]): string {
  for (const line of lines) {
    const m = /^\s*#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$/.exec(line.replace(/^\uFEFF/, ''));
    if (m === null) break; // directives end at the first line that is not one
    if (m[1]!.toLowerCase() === 'escape' && (m[2] === '`' || m[2] === '\\')) return m[2];
  }
  return '\\';
}

/**
 * The instructions of a Dockerfile with the line each ends on. Comment lines and empty lines inside a
 * continued instruction are skipped, as Docker's parser does.
 */
export function instructions(text: string): Instruction[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const escape = escapeCharacter(lines);
  const out: Instruction[] = [];
  let parts: string[] | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = i === 0 ? lines[i]!.replace(/^\uFEFF/, '') : lines[i]!;
    const blankOrComment = /^\s*(#.*)?$/.test(line);
    if (parts === undefined && blankOrComment) continue;
    if (parts !== undefined && blankOrComment) continue;
    const trimmed = line.replace(/\s+$/, '');
    const continues = trimmed.endsWith(escape);
    (parts ??= []).push(continues ? trimmed.slice(0, -1) : trimmed);
    if (continues && i < lines.length - 1) continue;
    const joined = parts.join(' ').trim();
    parts = undefined;
    const m = /^(\S+)\s*(.*)$/s.exec(joined);
    if (m !== null) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, lastLine: i });
  }
  return out;
}

/** Names an ARG instruction declares, each with whether it gives a default (`NAME=value`). */
function argNames(args: string): Array<{ name: string; withDefault: boolean }> {
  return args
    .split(/\s+/)
    .map((part) => /^([A-Za-z_][A-Za-z0-9_]*)(=?)/.exec(part))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[1]!, withDefault: m[2] === '=' }));
}

/** Names an ENV instruction sets (`ENV A=1 B=2` or the old `ENV A 1`). */
function envNames(args: string): string[] {
  const old = /^([A-Za-z_][A-Za-z0-9_]*)\s+[^=\s]/.exec(args);
  if (old !== null && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) return [old[1]!];
  return [...args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]!);
}

/** A value as an ARG default: bare if it is a plain word, else double-quoted. */
function argValue(value: string): string {
  return /^[A-Za-z0-9_.:/@%+,-]*$/.test(value) ? value : `"${value.replace(/(["\\$`])/g, '\\$1')}"`;
}

/**
 * Inserts `ARG NAME=VALUE` after each FROM. The Dockerfile's own settings still win where they apply, as in
 * any build: a later `ARG NAME=…` in the stage overrides the inserted default from there on, an `ENV NAME…`
 * (the stage's or its base image's) wins over any ARG, and a bare `ARG NAME` keeps the value. A global
 * `ARG NAME=…` before the first FROM is the Dockerfile's own value, which a bare `ARG NAME` brings into every
 * stage instead. A `--build-arg NAME=…` on the command line wins over defaults, as always.
 */
export function deriveDockerfile(text: string, variables: readonly StageVariable[]): DerivedDockerfile {
  const list = instructions(text);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const kept: KeptVariable[] = [];
  const globalDefaults = new Set<string>();
  const fromLines: number[] = [];
  for (const ins of list) {
    if (ins.keyword === 'FROM') {
      fromLines.push(ins.lastLine);
      continue;
    }
    const names = ins.keyword === 'ARG' ? argNames(ins.args).filter((a) => a.withDefault).map((a) => a.name) : ins.keyword === 'ENV' ? envNames(ins.args) : [];
    for (const name of names) {
      if (!variables.some((v) => v.name === name)) continue;
      if (fromLines.length === 0) globalDefaults.add(name);
      kept.push({ name, stage: fromLines.length, instruction: `${ins.keyword} ${ins.args}` });
    }
  }
  const lines = variables.map((v) => (globalDefaults.has(v.name) ? `ARG ${v.name}` : `ARG ${v.name}=${argValue(v.value)}`));
  const after = new Map(fromLines.map((l) => [l, lines]));
  const inserted = fromLines.flatMap((_, index) => lines.map((l) => `stage ${index + 1}: ${l}`));
  const physical = text.split('\n');
  const out: string[] = [];
  physical.forEach((line, i) => {
    const add = after.get(i);
    if (add === undefined) {
      out.push(line);
      return;
    }
    // The FROM may be the file's last line, without a line ending.
    const ending = line.endsWith('\r') ? line.slice(0, -1) : line;
    out.push(`${ending}${eol}${add.join(eol)}${i === physical.length - 1 ? '' : line.endsWith('\r') ? '\r' : ''}`);
  });
  return { text: out.join('\n'), stages: fromLines.length, inserted, kept };
}

/** One sample of the Prometheus text exposition format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
  /** The value of `name` with exactly these labels (undefined when absent). */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const v = Number(text);
  if (text === '' || Number.isNaN(v)) throw new Error(`bad sample value ${JSON.stringify(text)}`);
  return v;
}

/** Parses the text format (version 0.0.4): HELP/TYPE lines, escaped label values, optional timestamps. */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(.*)$/.exec(line);
      if (m === null) continue; // a plain comment
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) throw new Error(`bad TYPE line ${line}`);
        types.set(m[2]!, m[3]!);
      } else help.set(m[2]!, m[3]!.replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      continue;
    }
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (name === undefined) throw new Error(`bad sample line ${line}`);
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const ln = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i));
        if (ln === null) throw new Error(`bad label in ${line}`);
        i += ln[0].length;
        let v = '';
        while (line[i] !== '"') {
          if (i >= line.length) throw new Error(`unterminated label value in ${line}`);
          if (line[i] === '\\') {
            const e = line[i + 1];
            v += e === 'n' ? '\n' : e;
            i += 2;
          } else v += line[i++];
        }
        i++;
        labels[ln[1]!] = v;
        while (line[i] === ',' || line[i] === ' ') i++;
      }
      i++;
    }
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2) throw new Error(`bad sample line ${line}`);
    samples.push({ name, labels, value: parseValue(rest[0]!) });
  }
  return {
    types,
    help,
    samples,
    value(name, want = {}) {
      const keys = Object.keys(want);
      const s = samples.find((x) => x.name === name && Object.keys(x.labels).length === keys.length && keys.every((k) => x.labels[k] === want[k]));
      return s?.value;
    },
  };
}

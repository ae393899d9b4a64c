// Table for bench/record-miss.sh and bench/replay-first-hits.sh: median over reps of req/s, p50 and p99 per
// (target, connections), and each other target's requests/s as a share of squid's.
// Usage: node bench/record-miss-report.mjs raw.jsonl [ROW LABEL]
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cell = (target, conns) => {
  const rs = rows.filter((r) => r.target === target && r.conns === conns && !r.failed);
  const errs = rs.reduce((n, r) => n + r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout, 0);
  return {
    rps: median(rs.map((r) => r.requests / (r.duration_us / 1e6))),
    all: rs.map((r) => Math.round(r.requests / (r.duration_us / 1e6))),
    p50: median(rs.map((r) => r.lat_p50_us / 1e3)),
    p99: median(rs.map((r) => r.lat_p99_us / 1e3)),
    errs,
  };
};
const targets = [...new Set(rows.map((r) => r.target))];
const conns = [...new Set(rows.map((r) => r.conns))].sort((a, b) => a - b);
// Every other target's requests/s as a share of squid's, in its own column.
const ratioed = targets.includes('squid') ? targets.filter((t) => t !== 'squid') : [];
const label = process.argv[3] ?? '4 KiB miss, distinct URLs';
const ms = (x) => x.toFixed(x < 10 ? 2 : 1);
const out = [`| ${label} | ` + [...targets, ...ratioed.map((t) => `${t} / squid`)].join(' | ') + ' |', '|---|' + [...targets, ...ratioed].map(() => '---:|').join('')];
for (const c of conns) {
  const cs = targets.map((t) => cell(t, c));
  const by = Object.fromEntries(targets.map((t, i) => [t, cs[i]]));
  const ratios = ratioed.map((t) => `${(by[t].rps / by.squid.rps).toFixed(2)}×`);
  out.push(`| req/s, ${c} conn${c > 1 ? 's' : ''} (runs) | ` + [...cs.map((x) => `${Math.round(x.rps).toLocaleString('en')} (${x.all.join(', ')})${x.errs ? ` ${x.errs} errors` : ''}`), ...ratios].join(' | ') + ' |');
  out.push(`| p50 / p99 ms, ${c} conn${c > 1 ? 's' : ''} | ` + [...cs.map((x) => `${ms(x.p50)} / ${ms(x.p99)}`), ...ratioed.map(() => '')].join(' | ') + ' |');
}
process.stdout.write(out.join('\n') + '\n');

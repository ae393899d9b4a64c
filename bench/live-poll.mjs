// Polls a running oracle's GET /report.json as the live report page does (`have` = the entries version it
// holds, `after` = the last request it holds, the next poll 1 s after each answer) until SIGTERM, then prints
// what the polls cost: how many, their time and size, and how many carried only added entries.
// Usage: node bench/live-poll.mjs ADMIN_URL        (bench/record-rss.sh runs it with POLL=1)
const base = process.argv[2];
if (base === undefined) {
  process.stderr.write('usage: live-poll.mjs ADMIN_URL\n');
  process.exit(2);
}
let stop = false;
process.on('SIGTERM', () => (stop = true));
let have = '';
let after = -1;
const polls = [];
while (!stop) {
  const t0 = performance.now();
  const res = await fetch(`${base}/report.json?have=${encodeURIComponent(have)}&after=${after}`);
  const text = await res.text();
  const ms = performance.now() - t0;
  if (!res.ok) throw new Error(`report.json answered ${res.status}: ${text.slice(0, 200)}`);
  const d = JSON.parse(text);
  have = d.entriesVersion ?? '';
  const events = d.requests?.events ?? [];
  if (events.length > 0) after = events[events.length - 1].i;
  polls.push({ ms, bytes: Buffer.byteLength(text), added: d.entriesFrom !== undefined, full: d.entries !== undefined && d.entriesFrom === undefined });
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
const sorted = (k) => polls.map((p) => p[k]).sort((a, b) => a - b);
const median = (k) => sorted(k)[Math.floor(polls.length / 2)] ?? 0;
const max = (k) => sorted(k).at(-1) ?? 0;
const last = polls.slice(-5);
console.log(`polls: ${polls.length} (${polls.filter((p) => p.added).length} with added entries only, ${polls.filter((p) => p.full).length} with every entry); ` +
  `time median ${median('ms').toFixed(0)} ms, max ${max('ms').toFixed(0)} ms; size median ${(median('bytes') / 1e6).toFixed(2)} MB, max ${(max('bytes') / 1e6).toFixed(2)} MB; ` +
  `last ${last.length}: ${last.map((p) => `${p.ms.toFixed(0)} ms ${(p.bytes / 1e6).toFixed(2)} MB`).join(', ')}`);

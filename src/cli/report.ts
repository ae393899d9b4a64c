/** `fetch-oracle report`: a netlock (and what a run reported) as one self-contained HTML page. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { UsageError } from './common.ts';
import { parseOptions, str } from './options.ts';
import { InvalidConfigError } from '../errors.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { fileReportJson, openFileReport } from '../report/file-report.ts';
import { reportHtmlPiecesAsync } from '../report/html.ts';
import { openByteOutput } from '../io/byte-output.ts';
import type { ReportInput } from '../report/model.ts';
import { createBlockStore } from '../store/index.ts';

export const REPORT_HELP = `Usage: fetch-oracle report NETLOCK [--data DIR | --ipfs URL] [--replay-report FILE] --html OUT.html

Writes one self-contained HTML page (no network needed to open it) showing the netlock: totals (entries,
bytes, hosts, root, keys), every host and request (method, URL, status, size, content type, redirects,
negative answers, new versions after upstream mutation) with filters, sorting, size bars and a timeline.
With the JSON report of a failed \`run --replay\`/\`build --replay\`/\`build --check\` (\`--report FILE\`) or of \`replay --report\`,
its misses come first, each with the nearest recorded requests, the field that differs and what to do; a
\`record --report\` file adds the upstream mutations. The same page is live at the admin API (GET /).

Options:
  --html OUT.html        where to write the page (required; written atomically)
  --data DIR             data directory holding the blocks (default as for record)
  --ipfs URL             read the blocks from Kubo (its RPC API) instead
  --replay-report FILE   a run/build/replay/record --report JSON file to show with the netlock
  -h, --help             show this help
`;

export const reportCommand: Command = {
  help: REPORT_HELP,
  run: runReport,
};

export async function runReport(args: string[], context: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions(args, { ipfs: { type: 'string' }, 'replay-report': { type: 'string' }, html: { type: 'string' } }, REPORT_HELP);
  if (values['help'] === true) {
    context.stdout.write(REPORT_HELP);
    return 0;
  }
  const netlock = positionals[0];
  if (netlock === undefined || positionals.length > 1) throw new UsageError(`report takes one NETLOCK file\n\n${REPORT_HELP}`);
  const out = str(values['html']);
  if (out === undefined) throw new UsageError(`report needs --html OUT.html\n\n${REPORT_HELP}`);
  const ipfs = str(values['ipfs']);
  if (ipfs !== undefined && values['data'] !== undefined) throw new UsageError('report reads blocks from --data DIR or --ipfs URL, not both');
  const input = await readReportInput(str(values['replay-report']));
  const root = await netlockRootOf(netlock);
  const store = ipfs === undefined ? createBlockStore({ dataDir: resolve(str(values['data']) ?? context.defaultDataDir) }) : createBlockStore({ ipfs, cache: false });
  try {
    const report = await openFileReport(root, store, input);
    const path = resolve(out);
    // Written a page of rows at a time as the netlock is read, to a temporary file renamed at the end.
    const output = await openByteOutput(path);
    try {
      for await (const piece of reportHtmlPiecesAsync(report.head.netlock.root, fileReportJson(report))) await output.write([Buffer.from(piece)]);
      await output.finish();
    } catch (err) {
      await output.abort();
      throw err;
    }
    const totals = report.totals();
    context.stdout.write(`wrote ${path}: ${totals.entries} entries, ${totals.hosts} host(s), ${report.head.misses.length} miss(es)\n`);
  } finally {
    await store.close();
  }
  return 0;
}

/**
 * A `build --report` file holds the replay report under `replay` (`build --replay`) or under `replay.replay`
 * (`build --check`): that report, with the build as its command.
 */
function fromBuildReport(value: unknown): ReportInput | undefined {
  if (typeof value !== 'object' || value === null || !('replay' in value)) return undefined;
  const top = value as { context?: unknown; buildahExitCode?: unknown; replay?: { misses?: unknown; buildahExitCode?: unknown; replay?: { misses?: unknown } } };
  const half = top.replay?.replay !== undefined ? top.replay : top;
  const replay = half.replay as (ReportInput & { misses?: unknown }) | undefined;
  if (replay === undefined || !Array.isArray(replay.misses)) return undefined;
  const exit = half.buildahExitCode;
  return {
    ...replay,
    command: ['fetch-oracle build --replay', ...(typeof top.context === 'string' ? [top.context] : [])],
    ...(typeof exit === 'number' ? { commandExitCode: exit } : {}),
  };
}

/** The --replay-report file, checked enough that the page never meets a shape it cannot show. */
async function readReportInput(path: string | undefined): Promise<ReportInput> {
  if (path === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new InvalidConfigError(`Cannot read the report ${path}: ${(cause as Error).message}`, { cause });
  }
  const r = fromBuildReport(value) ?? (value as ReportInput);
  const bad = typeof value !== 'object' || value === null
    || (r.misses !== undefined && (!Array.isArray(r.misses) || r.misses.some((m) => typeof m?.url !== 'string' || typeof m.method !== 'string' || !Array.isArray(m.nearest))))
    || (r.mutations !== undefined && !Array.isArray(r.mutations))
    || (r.unused !== undefined && !Array.isArray(r.unused));
  if (bad) throw new InvalidConfigError(`${path} is not a report written by run/build/replay/record --report (misses, unused, mutations)`);
  return r;
}

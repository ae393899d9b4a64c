/**
 * `fetch-oracle machine check`: a `--record` run then a `--replay` run of the same command in the machine
 * (same image, input, env and clock), and a comparison of what each left in $FETCH_ORACLE_OUTPUT: does the
 * build replay from the netlock it just recorded, and give the same files?
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CID } from 'multiformats/cid';
import type { Command, CommandContext } from './command.ts';
import { UsageError } from './common.ts';
import { DEFAULT_IMAGE, hostTimeSeconds, MACHINE_OPTIONS, machineTools, parseMachineFlags, parseMachineCommandLine, withMachineSignals } from './machine-flags.ts';
import { MACHINE_RUN_FAILED, reportRunLines, runBase, sayJournalKept, sayRunnerFailure } from './machine-run.ts';
import { DEFAULT_RUN_NETLOCK } from './run.ts';
import { groupMisses } from '../run/report.ts';
import { diffTarEntries, readTarEntries } from '../image/tar-entries.ts';
import type { EntryDifference, TarEntry } from '../image/tar-entries.ts';
import { recordInMachine } from '../machine/machine-record.ts';
import { runInMachine } from '../machine/machine-run.ts';
import { checkOutputDir } from '../machine/output-dir.ts';
import { fromHex } from '../protocol/signature.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';

/** Exit status when the two runs differ, or the command failed. */
export const MACHINE_CHECK_DIFFERS = 1;

export const MACHINE_CHECK_HELP = `Usage: fetch-oracle machine check [options] -- CMD [ARGS...]

Runs CMD twice inside the Cartesi Machine, both from IMAGE with the same --input, --env and clock: first a
record run (fetch-oracle machine run --record NETLOCK: CMD's network recorded from inside the machine through
this host), then a replay run of the netlock it wrote (machine run --replay NETLOCK). Then it compares the two
runs: CMD's exit status, requests the replay could not answer, and the files each left in $FETCH_ORACLE_OUTPUT
(type, content, mode, symlink target: what --output copies out; not mtimes or owners). Every difference is
printed with its path and what differs.

What may differ: a record run is not promised to be deterministic. Its downloads take different guest time
(the guest's clock runs with its cycle counter, and a request recorded through the host costs other cycles
than one replayed from the netlock), and an origin may answer differently each time; a build that writes
either into its output (timings, timestamps taken after a download, a changing file it fetched twice under
different URLs) differs here. Replay runs are deterministic: the root hash printed last on stdout is the
replay run's, the one a third party re-checks with 'fetch-oracle machine run --replay NETLOCK --time T …'.
Both root hashes are printed on stderr; they normally differ.

Options:
  --netlock FILE         where the record run writes its netlock (default ./${DEFAULT_RUN_NETLOCK}); a netlock
                         already there is kept and added to
  --image FILE           the root file system (default ./${DEFAULT_IMAGE})
  --input DIR            copied into the machine for both runs ($FETCH_ORACLE_INPUT, CMD's working directory)
  --output DIR           also copy the replay run's output into DIR (new or empty)
  --env NAME=VALUE       an environment variable for CMD (repeatable)
  --time SECONDS         the guest's clock when CMD starts, in both runs (default: this host's clock, whole seconds)
  --upstream-ca FILE     also trust this PEM CA for upstream TLS while recording (repeatable)
  --data DIR             data directory: blocks, record index, oracle key, machine-snapshots (default
                         $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle)
  --max-mcycle N, --ram-mib N, --input-mib N, --output-mib N, --no-snapshot, --emulator DIR, --kernel FILE
                         as for fetch-oracle machine run (the same for both runs)
  -v, --verbose          also log the runner's info lines to stderr
  -h, --help             show this help

Exit status: 0 when CMD exited 0 in both runs, the replay answered every request, and the outputs are
identical; ${MACHINE_CHECK_DIFFERS} when they differ or CMD failed (the reasons are printed); ${MACHINE_RUN_FAILED} when a run could not be
completed (no emulator, the guest stopped a run, --max-mcycle reached, …); 2 for a usage error.
`;

const OPTIONS = { ...MACHINE_OPTIONS, netlock: { type: 'string' } } as const;
const WHO = 'fetch-oracle machine check';

function say(context: Pick<CommandContext, 'stderr'>, text: string): void {
  context.stderr.write(`${WHO}: ${text}\n`);
}

/** What is compared: what `--output` copies out (mtimes and owners are not copied, so not compared). */
function asCopied(entries: readonly TarEntry[]): TarEntry[] {
  return entries.filter((e) => e.path !== '/').map((e) => ({ ...e, mtime: 0, uid: 0, gid: 0 }));
}

/** One line per differing path: `  PATH: content (12 bytes in the record, 13 in the replay)`. */
function describe(d: EntryDifference, record: ReadonlyMap<string, TarEntry>, replay: ReadonlyMap<string, TarEntry>): string {
  const a = record.get(d.path);
  const b = replay.get(d.path);
  const name = `$FETCH_ORACLE_OUTPUT${d.path}`;
  if (a === undefined || b === undefined) return `  ${name}: ${d.what}`;
  const details: string[] = [];
  if (a.type !== b.type) details.push(`a ${a.type} in the record, a ${b.type} in the replay`);
  if (a.size !== b.size) details.push(`${a.size} bytes in the record, ${b.size} in the replay`);
  if (a.mode !== b.mode) details.push(`mode ${a.mode.toString(8)} in the record, ${b.mode.toString(8)} in the replay`);
  if (a.link !== b.link) details.push(`-> ${a.link} in the record, -> ${b.link} in the replay`);
  return `  ${name}: ${d.what}${details.length > 0 ? ` (${details.join('; ')})` : ''}`;
}

/** `fetch-oracle machine check …`: returns the exit code. */
export async function runMachineCheck(args: string[], context: CommandContext): Promise<number> {
  const parsed = parseMachineCommandLine(args, OPTIONS, MACHINE_CHECK_HELP, context);
  if (parsed === undefined) return 0;
  const { values, argv } = parsed;
  if (argv.length === 0) throw new UsageError(`machine check needs a command: fetch-oracle machine check [options] -- CMD [ARGS...]\n\n${MACHINE_CHECK_HELP}`);
  const flags = parseMachineFlags(values, context.defaultDataDir);
  const netlockPath = resolve(values.netlock ?? DEFAULT_RUN_NETLOCK);
  // One clock for both runs, so that a build that writes the date can still match.
  const time = flags.time ?? hostTimeSeconds();

  return withMachineSignals(context, WHO, async (signal) => {
    const work = await mkdtemp(join(tmpdir(), 'fetch-oracle-check-'));
    const tars = { record: join(work, 'record.tar'), replay: join(work, 'replay.tar') };
    let stage = 'the record run';
    try {
      const tools = machineTools(values);
      const { outputDir, ...shared } = flags;
      if (outputDir !== undefined) await checkOutputDir(outputDir); // not only after the record run
      const base = runBase({ ...shared, time }, tools, argv, context, signal);
      const upstreamCaPem = await readUpstreamCaPem(values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => flags.logger.warn('%s', m));

      say(context, `1/2: record run of ${JSON.stringify(argv.join(' '))} (clock ${time}), netlock ${netlockPath}`);
      const recorded = await recordInMachine({ ...base, time, dataDir: flags.dataDir, netlockPath, upstreamCaPem, outputTar: tars.record });
      if (reportRunLines(recorded.run, context, WHO) || recorded.netlock === undefined) {
        sayJournalKept(context, WHO, netlockPath);
        return MACHINE_RUN_FAILED;
      }
      say(context, `recorded ${recorded.netlock.count} request(s) (${recorded.gio.fetched} fetched upstream): netlock ${recorded.netlock.netlock} written to ${netlockPath}`);

      stage = 'the replay run';
      say(context, `2/2: replay run of ${netlockPath}`);
      const store = new FsBlockStore(flags.dataDir);
      const replayed = await runInMachine({
        ...base,
        netlockRoot: CID.parse(recorded.netlock.netlock),
        store,
        trust: [fromHex(recorded.publicKeyHex)],
        ...(outputDir === undefined ? {} : { outputDir }),
        outputTar: tars.replay,
      }).finally(() => store.close());
      if (reportRunLines(replayed, context, WHO)) return MACHINE_RUN_FAILED;

      stage = 'the comparison';
      const reasons: string[] = [];
      const [a, b] = [recorded.run.result.exit, replayed.result.exit];
      if (a !== b) reasons.push(`CMD exited ${a} in the record run and ${b} in the replay run`);
      else if (a !== 0) reasons.push(`CMD failed (exit ${a}) in both runs`);
      const misses = groupMisses(replayed.misses);
      if (misses.length > 0) {
        reasons.push(`the replay made ${misses.length} request(s) the record run did not record:`);
        for (const m of misses) reasons.push(`  ${m.method} ${m.url}`);
      }
      const record = asCopied(await readTarEntries(tars.record, { signal }));
      const replay = asCopied(await readTarEntries(tars.replay, { signal }));
      const diffs = diffTarEntries(record, replay);
      if (diffs.length > 0) {
        const byPath = (l: TarEntry[]): Map<string, TarEntry> => new Map(l.map((e) => [e.path, e]));
        reasons.push(`the outputs differ in ${diffs.length} path(s):`);
        for (const d of diffs) reasons.push(describe(d, byPath(record), byPath(replay)));
      }
      say(context, `record run root hash: ${recorded.run.rootHash} (a record run is not deterministic: not for re-checking)`);
      const recheck = [`--replay ${netlockPath}`, `--time ${time}`, ...(flags.inputDir === undefined ? [] : [`--input ${flags.inputDir}`]), '--output DIR', ...Object.keys(flags.env).map((n) => `--env ${n}=…`)];
      say(context, `replay run root hash: ${replayed.rootHash} (re-check: fetch-oracle machine run ${recheck.join(' ')} -- CMD, same image and sizes)`);
      const files = replay.filter((e) => e.type !== 'dir').length;
      if (reasons.length === 0) say(context, `the two runs match: exit 0, every request replayed, ${files} output entr${files === 1 ? 'y' : 'ies'} identical`);
      else for (const r of reasons) say(context, r);
      context.stdout.write(`root hash: ${replayed.rootHash}\n`);
      return reasons.length === 0 ? 0 : MACHINE_CHECK_DIFFERS;
    } catch (err) {
      if (!signal.aborted) sayRunnerFailure(context, `${WHO} (${stage})`, err);
      if (stage === 'the record run') sayJournalKept(context, WHO, netlockPath);
      if (signal.aborted) throw err;
      return MACHINE_RUN_FAILED;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}

export const machineCheckCommand: Command = {
  help: MACHINE_CHECK_HELP,
  run: runMachineCheck,
};

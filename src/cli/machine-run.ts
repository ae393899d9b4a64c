/** `fetch-oracle machine run`: one command inside the real Cartesi Machine, its network replayed by CID (or recorded). */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseTrustedKeys, UsageError } from './common.ts';
import { DEFAULT_IMAGE, hostTimeSeconds, MACHINE_OPTIONS, machineTools, parseMachineFlags, parseMachineCommandLine, withMachineSignals } from './machine-flags.ts';
import type { MachineFlags } from './machine-flags.ts';
import { OracleError } from '../errors.ts';
import { MachineSetupError } from '../machine/emulator.ts';
import type { MachineTools } from '../machine/emulator.ts';
import { DEFAULT_INPUT_MIB, DEFAULT_OUTPUT_MIB, DEFAULT_RAM_MIB, RESULT_DRIVE_BYTES } from '../machine/machine-config.ts';
import { recordInMachine } from '../machine/machine-record.ts';
import type { MachineRecordOutcome } from '../machine/machine-record.ts';
import { runInMachine } from '../machine/machine-run.ts';
import type { MachineRunInit, MachineRunOutcome } from '../machine/machine-run.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { PROVENANCE_FLAG_HELP, writeBuildProvenance } from './provenance.ts';
import { createStats } from '../oracle/stats.ts';
import { formatMissReport, recordedOrigins } from '../run/report.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';
import { SYNC_HELP, SYNC_OPTIONS, syncInitFromFlags } from './front-flags.ts';

export { DEFAULT_IMAGE } from './machine-flags.ts';

/** Exit status when the runner or the machine failed (as `run` uses it): not CMD's. */
export const MACHINE_RUN_FAILED = 125;

export const MACHINE_RUN_HELP = `Usage: fetch-oracle machine run --replay NETLOCK [options] -- CMD [ARGS...]
       fetch-oracle machine run --record NETLOCK [--upstream-ca FILE]... [options] -- CMD [ARGS...]

Runs CMD inside the Cartesi Machine (a deterministic RISC-V emulator) booted from IMAGE, offline: the guest's
only network is the fetch-oracle shim on 127.0.0.1:8899, which gets every record and body block of NETLOCK by
CID through the machine's dehashing device (GIO 0x25), answered from this host's store, and verifies each one.
HTTP_PROXY/HTTPS_PROXY and the CA variables are set for CMD; HTTPS works (the shim's CA is made inside the
machine). The guest's clock is fixed (--time), so the run is reproducible: the same netlock, image, input and
command end with the same machine root hash, printed last on stdout.

Before boot the netlock's blocks are checked (every one must be in --data, else the first missing CID is
named and nothing runs). CMD's console output goes to stderr; after it, every request it made that NETLOCK does
not hold (explained, as run --replay does), the device round trips, and the root hash.

--record NETLOCK records CMD's network from inside the machine instead: the shim sends each request to this
host (GIO 0x26), which fetches it once through its record path (signed by the data directory's key, stored,
journalled; a request already recorded is not fetched again) and answers with the record, which the guest then
reads by CID and verifies as in replay. When the machine halted with a result, NETLOCK is written (also when
CMD failed, as 'fetch-oracle run' does: it holds what CMD fetched) and its path and entry count are printed; a
netlock already at NETLOCK is kept and added to. When the guest stopped the run, or the runner failed, no
netlock is written and NETLOCK.journal is kept for 'fetch-oracle recover --netlock NETLOCK'. A record run is not
promised to be deterministic (what the origins answer, and when, reaches the guest): re-check the root hash of
a --replay run of the netlock it wrote ('fetch-oracle machine check' does both).

Options:
  --replay NETLOCK       the netlock to replay
  --record NETLOCK       record from inside the machine into NETLOCK
  --image FILE           the root file system (fetch-oracle machine image; default ./${DEFAULT_IMAGE}); never modified
  --input DIR            copied into the machine (a tar on the input drive), at $FETCH_ORACLE_INPUT (/mnt/input),
                         which is also CMD's working directory
  --output DIR           after CMD: $FETCH_ORACLE_OUTPUT (/mnt/output) copied back into DIR (new or empty);
                         nothing is copied when the guest stopped the run
${PROVENANCE_FLAG_HELP};
                         replay only, needs --output DIR (its files are the subjects; the machine's root hash
                         is a byproduct), written when CMD exits 0 with no miss
  --env NAME=VALUE       an environment variable for CMD (repeatable)
  --time SECONDS         the guest's clock when CMD starts, unix seconds (replay default: the newest record's fetch
                         time in NETLOCK, 0 for an empty one; record default: this host's clock, whole seconds)
  --trust KEY            replay: trust records signed by this ed25519 public key (hex; repeatable; default: the
                         data directory's own oracle key); a record run trusts only the key that signs its records
  --upstream-ca FILE     record: also trust this PEM CA for upstream TLS (repeatable)
${SYNC_HELP}  --data DIR             data directory holding the blocks (and, to record, the record index and oracle key);
                         snapshots go to DIR/machine-snapshots (default $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle)
  --max-mcycle N         stop the machine (an error, exit ${MACHINE_RUN_FAILED}) when its cycle counter reaches N (default: no limit)
  --ram-mib N            guest RAM (default ${DEFAULT_RAM_MIB})
  --input-mib N          input drive size (default ${DEFAULT_INPUT_MIB}); --input's tar must fit
  --output-mib N         output drive size (default ${DEFAULT_OUTPUT_MIB}); the output tar must fit
  --no-snapshot          always boot cold, and store no snapshot (by default the machine is stored once, booted
                         with its shim ready, per image/kernel/emulator/RAM/drive sizes, and later runs start
                         from it, record and replay alike: same root hash, seconds faster)
  --emulator DIR         where cartesi-jsonrpc-machine is (DIR or DIR/bin; default: on PATH)
  --kernel FILE          the machine's kernel (default /usr/share/cartesi-machine/images/linux.bin)
  -v, --verbose          also log the runner's info lines to stderr
  -h, --help             show this help

Drives (/dev/pmemN in the guest): 0 root = IMAGE; 1 input (${DEFAULT_INPUT_MIB} MiB); 2 output (${DEFAULT_OUTPUT_MIB} MiB); 3 result (${RESULT_DRIVE_BYTES} bytes).

Exit status: CMD's (128 + N if signal N ended it); ${MACHINE_RUN_FAILED} when the runner or the machine failed (no emulator or
kernel, blocks missing before boot, --max-mcycle reached, a block from the host that did not hash to its CID,
no result); 2 for a usage error.
`;

const OPTIONS = {
  ...MACHINE_OPTIONS,
  replay: { type: 'string' },
  record: { type: 'string' },
  ...SYNC_OPTIONS,
  trust: { type: 'string', multiple: true },
  provenance: { type: 'string' },
} as const;

const WHO = 'fetch-oracle machine run';

function say(context: Pick<CommandContext, 'stderr'>, text: string): void {
  context.stderr.write(`${WHO}: ${text}\n`);
}

/** What a run in the machine needs besides the mode: the shared flags, the tools, argv, the console. */
export function runBase(flags: MachineFlags, tools: MachineTools, argv: string[], context: Pick<CommandContext, 'stderr'>, signal: AbortSignal): Omit<MachineRunInit, 'store' | 'trust'> {
  const { dataDir: _dataDir, ...rest } = flags;
  return { ...rest, tools, argv, console: context.stderr, signal };
}

/** Says why the runner failed (the emulator/kernel message as it is); the exit status is 125. */
export function sayRunnerFailure(context: Pick<CommandContext, 'stderr'>, who: string, err: unknown): void {
  const text = err instanceof MachineSetupError ? err.message : err instanceof OracleError ? `${err.code}: ${err.message}` : (err as Error).message;
  context.stderr.write(`${who}: ${text}\n`);
}

/** `fetch-oracle machine run …`: returns the exit code. */
export async function runMachineRun(args: string[], context: CommandContext): Promise<number> {
  const parsed = parseMachineCommandLine(args, OPTIONS, MACHINE_RUN_HELP, context);
  if (parsed === undefined) return 0;
  const { values, argv } = parsed;
  if (values.record !== undefined && values.replay !== undefined) throw new UsageError('machine run takes --replay NETLOCK or --record NETLOCK, not both');
  if (values.record === undefined && values.replay === undefined) throw new UsageError(`machine run needs --replay NETLOCK or --record NETLOCK\n\n${MACHINE_RUN_HELP}`);
  if (values.record !== undefined && values.trust !== undefined) throw new UsageError('--trust is a replay option: a record run trusts only the key that signs its records (the data directory\'s)');
  if (values.replay !== undefined && values['upstream-ca'] !== undefined) throw new UsageError('--upstream-ca is a record option: with --replay nothing is fetched');
  if (values.replay !== undefined && values.sync !== undefined) throw new UsageError('--sync is a record option: with --replay nothing is recorded');
  if (values.provenance !== undefined && values.replay === undefined) throw new UsageError('--provenance is a replay option (machine run --replay NETLOCK)');
  if (values.provenance !== undefined && values.output === undefined) throw new UsageError('--provenance needs --output DIR: the files CMD leaves there are the statement\'s subjects');
  if (argv.length === 0) throw new UsageError(`machine run needs a command: fetch-oracle machine run --replay NETLOCK -- CMD [ARGS...]\n\n${MACHINE_RUN_HELP}`);
  const flags = parseMachineFlags(values, context.defaultDataDir);
  const sync = syncInitFromFlags(values);
  const trustText = values.trust ?? [];
  const trustFlags = trustText.length > 0 ? parseTrustedKeys(trustText) : undefined;

  return withMachineSignals(context, WHO, async (signal) => {
    try {
      const tools = machineTools(values);
      const base = runBase(flags, tools, argv, context, signal);
      if (values.record !== undefined) {
        const netlockPath = resolve(values.record);
        const upstreamCaPem = await readUpstreamCaPem(values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => flags.logger.warn('%s', m));
        try {
          const recorded = await recordInMachine({ ...base, time: flags.time ?? hostTimeSeconds(), dataDir: flags.dataDir, netlockPath, upstreamCaPem, ...sync });
          return await reportMachineRecord(recorded, netlockPath, context);
        } catch (err) {
          if (!signal.aborted) sayRunnerFailure(context, WHO, err);
          sayJournalKept(context, WHO, netlockPath);
          if (signal.aborted) throw err;
          return MACHINE_RUN_FAILED;
        }
      }
      const netlockPath = resolve(values.replay!);
      const store = new FsBlockStore(flags.dataDir);
      try {
        const root = await netlockRootOf(netlockPath);
        const own = trustFlags === undefined ? await LocalSigner.publicKeyIn(flags.dataDir) : undefined;
        const trust = trustFlags ?? (own === undefined ? [] : [own]);
        const startedOn = new Date();
        const outcome = await runInMachine({ ...base, netlockRoot: root, store, trust });
        const code = await reportMachineRun(outcome, netlockPath, store, context);
        if (values.provenance !== undefined) {
          if (code === 0 && outcome.misses.length === 0 && flags.outputDir !== undefined) {
            say(context, await writeBuildProvenance({
              out: resolve(values.provenance),
              netlockPath,
              dataDir: flags.dataDir,
              paths: [flags.outputDir],
              tool: 'machine run',
              command: argv,
              startedOn,
              byproducts: [{ name: 'cartesi-machine-root-hash', content: Buffer.from(outcome.rootHash, 'hex').toString('base64'), mediaType: 'application/octet-stream' }],
            }));
          } else {
            say(context, `no provenance written: ${code !== 0 ? `the run exited ${code}` : 'CMD made requests outside the netlock'}`);
          }
        }
        return code;
      } finally {
        await store.close();
      }
    } catch (err) {
      if (signal.aborted) throw err;
      sayRunnerFailure(context, WHO, err);
      return MACHINE_RUN_FAILED;
    }
  });
}

/** After a record run that wrote no netlock: where what it recorded is kept, if anything was. */
export function sayJournalKept(context: Pick<CommandContext, 'stderr'>, who: string, netlockPath: string): void {
  const journal = `${netlockPath}.journal`;
  if ((statSync(journal, { throwIfNoEntry: false })?.size ?? 0) > 0) context.stderr.write(`${who}: no netlock written; what was recorded is kept in ${journal}: 'fetch-oracle recover --netlock ${netlockPath}' writes it\n`);
}

/**
 * Prints what a finished run has to say (misses explained, the device's round trips, a fatal stop) on
 * stderr and the root hash on stdout; returns the exit status: CMD's, or 125 when the guest stopped the run.
 */
export async function reportMachineRun(o: MachineRunOutcome, netlockPath: string, store: BlockSource, context: Pick<CommandContext, 'stdout' | 'stderr'>): Promise<number> {
  if (o.mode === 'replay' && o.misses.length > 0) {
    const stats = createStats('replay');
    stats.misses = o.misses.length;
    const missReport = { netlock: (await netlockRootOf(netlockPath)).toString(), entries: o.netlock.entries, used: 0, misses: o.misses, unused: [], stats };
    context.stderr.write(formatMissReport(missReport, await recordedOrigins(netlockPath, store), netlockPath, { who: WHO, rerecord: '`fetch-oracle machine run --record` (or `fetch-oracle run` on the host)' }));
  }
  const fatal = reportRunLines(o, context, WHO);
  if (fatal) return MACHINE_RUN_FAILED;
  context.stdout.write(`root hash: ${o.rootHash}\n`);
  return o.result.exit;
}

/** `reportMachineRun` for a record run, plus the netlock it wrote. */
export function reportMachineRecord(r: MachineRecordOutcome, netlockPath: string, context: Pick<CommandContext, 'stdout' | 'stderr'>): Promise<number> {
  const fatal = reportRunLines(r.run, context, WHO);
  const g = r.gio;
  say(context, `recorded through the device: ${g.recorded} answer(s), ${g.fetched} fetched upstream, ${g.recorded - g.fetched} already recorded, ${g.refused} refused`);
  if (fatal || r.netlock === undefined) {
    sayJournalKept(context, WHO, netlockPath);
    return Promise.resolve(MACHINE_RUN_FAILED);
  }
  say(context, `recorded ${r.netlock.count} request(s): netlock ${r.netlock.netlock} written to ${netlockPath} (signed by ${r.publicKeyHex})`);
  say(context, `a record run is not promised to be deterministic: re-check the root hash of 'fetch-oracle machine run --replay ${netlockPath} --time ${r.run.time} …'`);
  context.stdout.write(`root hash: ${r.run.rootHash}\n`);
  return Promise.resolve(r.run.result.exit);
}

/** The lines every finished run prints on stderr; true when the guest stopped the run (nothing else to print). */
export function reportRunLines(o: MachineRunOutcome, context: Pick<CommandContext, 'stderr'>, who: string): boolean {
  const line = (text: string): void => void context.stderr.write(`${who}: ${text}\n`);
  const d = o.driver;
  const blocks = d.byDomain[0x25] ?? 0;
  const records = d.byDomain[0x26] ?? 0;
  const perBlock = blocks === 0 ? 0 : (d.hostMsByDomain[0x25] ?? 0) / blocks;
  const started = o.start === 'snapshot' ? 'started from the snapshot' : o.start === 'cold+stored' ? 'booted cold and stored the snapshot' : 'booted cold';
  line(`${o.mode} run ${started}; shim ready ${(o.readyMs / 1000).toFixed(1)} s after the emulator started (mcycle ${o.readyMcycle}); halted at mcycle ${o.mcycle}, ${(o.totalMs / 1000).toFixed(1)} s in all`);
  const recorded = o.mode === 'record' ? `${records} record requests, ` : '';
  line(`device: ${d.gioRequests} GIO round trips (${blocks} blocks, ${recorded}${d.gioRequests - blocks - records} control), ${(d.bytes / 1048576).toFixed(2)} MiB; ${perBlock.toFixed(2)} ms of host work per block (one JSON-RPC batch per round trip)`);
  if (o.shimStats !== undefined) {
    const s = o.shimStats;
    line(o.mode === 'record' ? `shim: ${s.requests} request(s), ${s.misses} fetched upstream for it, ${s.hits} recorded before, ${s.errors} error(s)` : `shim: ${s.requests} request(s), ${s.hits} hit(s), ${s.misses} miss(es), ${s.errors} error(s)`);
  }
  if (o.result.fatal !== undefined) {
    line(`the guest stopped the run: ${o.result.fatal}`);
    line('no output was copied back; the root hash of a stopped run is not printed');
    return true;
  }
  if (o.output !== undefined) line(`output: ${o.output.files} file(s), ${o.output.bytes} bytes`);
  return false;
}

export const machineRunCommand: Command = {
  help: MACHINE_RUN_HELP,
  run: runMachineRun,
};

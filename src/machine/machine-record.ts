/**
 * `fetch-oracle machine run --record`: the same run as a replay, but the guest records its network through
 * the host (GIO 0x26, `MachineRecordSession`) instead of replaying a netlock. The host answers the guest's
 * blocks from the session's store (what it just recorded), the guest trusts the session's key, and when the
 * machine halted with a result the netlock is written. docs/cartesi.md "Record from inside the machine".
 */
import type { SyncPolicy } from '../oracle/checkpoints.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import type { RecordGioCounters } from './gio-record.ts';
import { runInMachine } from './machine-run.ts';
import { checkOutputDir } from './output-dir.ts';
import type { MachineRunInit, MachineRunOutcome } from './machine-run.ts';
import { MachineRecordSession } from './record-session.ts';

export interface MachineRecordInit extends Omit<MachineRunInit, 'netlockRoot' | 'recordHandler' | 'store' | 'blockSource' | 'blockHandler' | 'trust' | 'time'> {
  /** Data directory: blocks, record index, the oracle key that signs the records. */
  dataDir: string;
  /** The netlock this run writes; `NETLOCK.journal` beside it while it runs. A netlock already there is kept and added to. */
  netlockPath: string;
  /** Extra PEM CAs the upstream client trusts (`--upstream-ca`). */
  upstreamCaPem?: readonly string[];
  /** When what a record wrote goes on disk (`--sync`). @default a checkpoint a second at most */
  sync?: SyncPolicy;
  /** The guest's clock at the command's start: a record run has no netlock to take it from. */
  time: number;
}

export interface MachineRecordOutcome {
  run: MachineRunOutcome;
  /** The netlock written, or undefined when the guest stopped the run (the journal is kept for `recover`). */
  netlock: WrittenNetlock | undefined;
  /** The journal: removed once the netlock is written, kept otherwise. */
  journalPath: string;
  /** GIO 0x26 requests: recorded, fetched upstream for this run, refused in band. */
  gio: RecordGioCounters;
  /** The key that signed this run's records (the guest trusted only it). */
  publicKeyHex: string;
}

/**
 * Records argv's network from inside the machine. The netlock is written when the machine halted with a
 * result (whatever CMD's exit status, as `fetch-oracle run` writes it also when the command failed: it holds
 * what the command fetched). When the guest stopped the run (`fatal`) or the runner failed (throws: an
 * mcycle limit, a signal, the emulator), nothing is written and the journal stays for `fetch-oracle recover`.
 */
export async function recordInMachine(init: MachineRecordInit): Promise<MachineRecordOutcome> {
  const { dataDir, netlockPath, upstreamCaPem, sync, ...run } = init;
  if (run.outputDir !== undefined) await checkOutputDir(run.outputDir); // before anything is opened
  const session = await MachineRecordSession.open({
    dataDir,
    netlockPath,
    ...(upstreamCaPem === undefined ? {} : { upstreamCaPem }),
    ...(sync === undefined ? {} : { sync }),
    logger: init.logger,
  });
  try {
    const outcome = await runInMachine({ ...run, store: session.store, recordHandler: session.gio.handle, trust: [session.publicKey] });
    const netlock = outcome.result.fatal === undefined ? await session.writeNetlock() : undefined;
    return { run: outcome, netlock, journalPath: session.journalPath, gio: { ...session.gio.counters }, publicKeyHex: session.publicKeyHex };
  } finally {
    await session.close();
  }
}

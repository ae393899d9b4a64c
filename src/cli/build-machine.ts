/**
 * `fetch-oracle build --machine`: the Dockerfile built by buildah inside the real Cartesi Machine, every RUN
 * step's network through the guest shim: replayed from a netlock (--replay), recorded from inside the machine
 * (default), or both and the image IDs compared (--check). src/image/machine-build.ts stages the input.
 */
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { hostTimeSeconds, machineTools, parseMachineFlags, withMachineSignals } from './machine-flags.ts';
import type { MachineFlags } from './machine-flags.ts';
import { reportRunLines, runBase, sayJournalKept, sayRunnerFailure } from './machine-run.ts';
import { describeStageVariables } from '../image/build.ts';
import { findBuildah, storageOf } from '../image/buildah.ts';
import { buildahCapture } from '../image/buildah.ts';
import { compareImages, formatImageDifference } from '../image/image-diff.ts';
import { BUILD_IMAGE_PACKAGES, readMachineBuildOutput, stageMachineBuild } from '../image/machine-build.ts';
import type { MachineBuildInit } from '../image/machine-build.ts';
import type { MachineTools } from '../machine/emulator.ts';
import { recordInMachine } from '../machine/machine-record.ts';
import { runInMachine } from '../machine/machine-run.ts';
import type { MachineRunOutcome } from '../machine/machine-run.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { createStats } from '../oracle/stats.ts';
import { formatMissReport, recordedOrigins } from '../run/report.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';

const WHO = 'fetch-oracle build --machine';
export const MACHINE_BUILD_FAILED = 125;
/** Sizes a build needs by default: the context (base tar included) in, the OCI archive out. */
export const BUILD_RAM_MIB = 2048;
export const BUILD_INPUT_MIB = 512;
export const BUILD_OUTPUT_MIB = 1024;
export const DEFAULT_OCI_ARCHIVE = 'image.oci.tar';

export const MACHINE_BUILD_HELP = `
In the Cartesi Machine (--machine): buildah (Debian riscv64, in the machine image) builds the Dockerfile with the
same flags and derived Dockerfile as above, inside the machine; RUN steps share the machine's network, whose
only way out is the guest shim (127.0.0.1:8899), which replays NETLOCK by CID (--replay) or records through
this host (default); its CA is mounted at --ca-path. The image comes out as an OCI archive (--out); stdout gets
the image ID, then \`root hash: <hex>\`: the same netlock, machine image, context and --time give the same root
hash and image ID on any host. --check records in the machine, rebuilds offline in the machine with the same
clock and compares the image IDs; the root hash it prints is the rebuild's (re-checked with --replay and the
--time it names). RUN steps see the machine's entropy, which is deterministic: /dev/urandom gives the
same bytes in every run (docs/reproducible-builds.md).
  --machine              build inside the Cartesi Machine (the options below apply)
  --image FILE           the machine image, with buildah: fetch-oracle machine image --packages ${BUILD_IMAGE_PACKAGES}
                         --free-mib 4096 (default ./rootfs.ext2). buildah's vfs storage lives in its free space
                         (each RUN step copies the whole image: give ~3x the image size plus its layers)
  --out FILE             the OCI archive (default ./${DEFAULT_OCI_ARCHIVE}); written only when the build succeeded
  --time SECONDS         the guest clock (replay default: the newest record in NETLOCK; record: this host's)
  --ram-mib N            guest RAM (default ${BUILD_RAM_MIB}; a build that runs out is told so)
  --input-mib N          input drive: the context, as a tar (default ${BUILD_INPUT_MIB}); a larger context is refused before boot
  --output-mib N         output drive: the OCI archive (default ${BUILD_OUTPUT_MIB})
  --max-mcycle N, --no-snapshot, --emulator DIR, --kernel FILE: as for \`fetch-oracle machine run\`
buildah commits the image straight into the OCI archive (its --tag is the archive; your own -t/--tag names are
not applied, the guest's storage being discarded). A build that runs out of space (the image's --free-mib) or
memory (--ram-mib) says which. Time: the emulator runs ~1 guest second per host second on one core, and buildah
tars and hashes every layer with the emulated CPU (~0.5 MB/s at commit): keep layers small (a slim base, apt
lists removed in the RUN that made them); a buildah start is ~5 s, ADD of the 68 MB slim base ~1 min.
`;

export interface MachineBuildValues {
  netlock?: string;
  replay?: string;
  check?: boolean;
  data?: string;
  scrub: string[];
  caTarget: string | undefined;
  'upstream-ca'?: string[];
  trust: Uint8Array[];
  iidfile?: string;
  verbose?: boolean;
  image?: string;
  out?: string;
  time?: string;
  'ram-mib'?: string;
  'input-mib'?: string;
  'output-mib'?: string;
  'max-mcycle'?: string;
  'no-snapshot'?: boolean;
  emulator?: string;
  kernel?: string;
}

interface Io {
  stdout: Writable;
  stderr: Writable;
}

function say(io: Io, text: string): void {
  io.stderr.write(`${WHO}: ${text}\n`);
}

/** One build in the machine: its run, the image ID and archive (in `work`), or why it failed. */
interface MachineHalf {
  run: MachineRunOutcome;
  iid?: string;
  archive?: string;
  failure?: string;
  /** The guest clock the build ran with (the replay half of --check takes the record half's). */
  time: number;
}

async function half(mode: 'record' | 'replay', o: { flags: MachineFlags; tools: MachineTools; values: MachineBuildValues; init: MachineBuildInit; netlockPath: string; work: string; time?: number; io: Io; signal: AbortSignal }): Promise<MachineHalf | number> {
  const stage = await stageMachineBuild(o.init, join(o.work, `${mode}-input`));
  const outputDir = join(o.work, `${mode}-output`);
  if (mode === 'record' || o.values.replay !== undefined) {
    for (const line of describeStageVariables(stage.variables, o.init.buildahArgs)) say(o.io, line);
    if (stage.droppedTags.length > 0) say(o.io, `--tag ${stage.droppedTags.join(', ')}: not applied in the machine (its storage is discarded); the image is the OCI archive (load it with: buildah pull oci-archive:FILE, then buildah tag)`);
  }
  o.flags.logger.info('in the machine: %s', stage.buildahArgv.join(' '));
  const base = { ...runBase({ ...o.flags, inputDir: stage.inputDir, outputDir }, o.tools, stage.argv, o.io, o.signal) };
  let run: MachineRunOutcome;
  if (mode === 'record') {
    const upstreamCaPem = await readUpstreamCaPem(o.values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => o.flags.logger.warn('%s', m));
    const recorded = await recordInMachine({ ...base, time: o.time ?? hostTimeSeconds(), dataDir: o.flags.dataDir, netlockPath: o.netlockPath, upstreamCaPem });
    run = recorded.run;
    if (reportRunLines(run, o.io, WHO) || recorded.netlock === undefined) {
      sayJournalKept(o.io, WHO, o.netlockPath);
      return MACHINE_BUILD_FAILED;
    }
    say(o.io, `recorded ${recorded.netlock.count} request(s) from inside the machine: netlock ${recorded.netlock.netlock} written to ${o.netlockPath}`);
  } else {
    const store = new FsBlockStore(o.flags.dataDir);
    try {
      const root = await netlockRootOf(o.netlockPath);
      const own = o.values.trust.length > 0 ? undefined : await LocalSigner.publicKeyIn(o.flags.dataDir);
      const trust = o.values.trust.length > 0 ? o.values.trust : own === undefined ? [] : [own];
      run = await runInMachine({ ...base, ...(o.time === undefined ? {} : { time: o.time }), netlockRoot: root, store, trust });
      if (run.mode === 'replay' && run.misses.length > 0) {
        const stats = createStats('replay');
        stats.misses = run.misses.length;
        const report = { netlock: root.toString(), entries: run.netlock.entries, used: 0, misses: run.misses, unused: [], stats };
        o.io.stderr.write(formatMissReport(report, await recordedOrigins(o.netlockPath, store), o.netlockPath, { who: WHO, rerecord: '`fetch-oracle build --machine` (without --replay)' }));
      }
      if (reportRunLines(run, o.io, WHO)) return MACHINE_BUILD_FAILED;
    } finally {
      await store.close();
    }
  }
  const out = await readMachineBuildOutput(outputDir, { signal: o.signal });
  const misses = run.misses.length;
  if (run.result.exit !== 0 || out.iid === undefined || out.archive === undefined || misses > 0) {
    if (out.failure !== undefined) say(o.io, out.failure);
    const why = misses > 0 ? `; it asked for ${misses} request(s) the netlock lacks (above)` : '';
    say(o.io, `the build in the machine failed (exit ${run.result.exit})${why}; nothing written to ${resolve(o.values.out ?? DEFAULT_OCI_ARCHIVE)}`);
    return run.result.exit === 0 ? 1 : run.result.exit;
  }
  say(o.io, `${mode === 'record' ? 'built (recording)' : 'built offline'} in the machine: image ${out.iid}, machine root hash ${run.rootHash}`);
  return { run, iid: out.iid, archive: out.archive, time: run.time };
}

/** Moves the archive to `target` atomically (a temporary file beside it, then renamed). */
async function place(archive: string, target: string): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  await copyFile(archive, tmp);
  await rename(tmp, target).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
}

/** Loads both archives into host buildah storages and names the first layer that differs (when buildah is here). */
async function explainDifference(io: Io, work: string, a: MachineHalf, b: MachineHalf): Promise<void> {
  const buildah = findBuildah();
  if (buildah === undefined) {
    say(io, 'install buildah on this host to have the differing layer and paths named');
    return;
  }
  const stored = async (name: string, h: MachineHalf): Promise<{ storage: ReturnType<typeof storageOf>; image: string }> => {
    const storage = storageOf(join(work, `${name}-storage`));
    const r = await buildahCapture(buildah, ['--root', storage.root, '--runroot', storage.runroot, '--storage-driver', 'vfs', 'pull', '--quiet', `oci-archive:${h.archive!}`]);
    if (r.code !== 0) throw new Error(`buildah pull oci-archive:${h.archive!} failed: ${r.stderr.trim()}`);
    return { storage, image: h.iid! };
  };
  const d = await compareImages(buildah, await stored('record', a), await stored('replay', b), work);
  io.stderr.write(formatImageDifference(d, { record: a.iid!, replay: b.iid! }));
  if (d.causes.some((c) => c.kind === 'random')) io.stderr.write(RANDOM_IN_MACHINE);
}

/** Why a step reading entropy differs between --check's two halves although the machine is deterministic. */
export const RANDOM_IN_MACHINE = `${WHO}: in the machine, random data is the same in every offline rebuild, not between the record and its
  rebuild: recording runs other guest code (the shim forwards each request to this host over GIO 0x26), so the
  kernel's entropy pool, which mixes in the cycle counter at interrupts, has diverged by the time the step reads
  it. Check such a Dockerfile with two offline rebuilds instead: build --machine --replay NETLOCK --time T, twice
  (the same image ID and machine root hash; docs/reproducible-builds.md).
`;

/** `build --machine …` once the host options were parsed by `build`; returns the exit code. */
export async function runMachineBuild(values: MachineBuildValues, init: MachineBuildInit, defaultDataDir: string, io: Io): Promise<number> {
  const flags = parseMachineFlags({ ...values, 'ram-mib': values['ram-mib'] ?? String(BUILD_RAM_MIB), 'input-mib': values['input-mib'] ?? String(BUILD_INPUT_MIB), 'output-mib': values['output-mib'] ?? String(BUILD_OUTPUT_MIB) }, defaultDataDir);
  const netlockPath = resolve(values.replay ?? values.netlock ?? 'fetch-oracle.netlock.json');
  const target = resolve(values.out ?? DEFAULT_OCI_ARCHIVE);
  if (values.replay !== undefined) await netlockRootOf(netlockPath); // a bad path fails before anything starts
  return withMachineSignals(io, WHO, async (signal) => {
    const work = await mkdtemp(join(tmpdir(), 'fetch-oracle-build-machine-'));
    try {
      const tools = machineTools(values);
      const common = { flags, tools, values, init, netlockPath, work, io, signal, ...(flags.time === undefined ? {} : { time: flags.time }) };
      const first = await half(values.replay === undefined ? 'record' : 'replay', common);
      if (typeof first === 'number') return first;
      let result = first;
      if (values.check === true) {
        // The same clock as the record half (as machine check does): only the network's source differs.
        say(io, `2/2 rebuilding offline in the machine from ${netlockPath} (guest clock ${first.time}, as recorded)`);
        const second = await half('replay', { ...common, time: first.time });
        if (typeof second === 'number') return second;
        if (second.iid !== first.iid) {
          say(io, `NOT reproducible: recorded ${first.iid}, rebuilt offline ${second.iid}`);
          await explainDifference(io, work, first, second).catch((err: unknown) => say(io, `could not compare the images: ${(err as Error).message}`));
          return 1;
        }
        say(io, `reproducible: the offline rebuild in the machine gave the recorded image ${first.iid}`);
        say(io, `re-check the root hash with: fetch-oracle build --machine --replay ${netlockPath} --time ${first.time} (same image, context and options)`);
        result = second;
      }
      await place(result.archive!, target);
      say(io, `OCI archive: ${target}`);
      if (values.iidfile !== undefined) await writeFile(resolve(values.iidfile), result.iid!);
      io.stdout.write(`${result.iid!}\nroot hash: ${result.run.rootHash}\n`);
      return 0;
    } catch (err) {
      if (signal.aborted) throw err;
      sayRunnerFailure(io, WHO, err);
      return MACHINE_BUILD_FAILED;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}
